"""Markov random-effects terms (``ar1``; ``ou`` over sorted 1-D times) in precision form.

A term with l levels and q times has b_l = s L u_l (u_l ~ N(0, I)), R = L L' the correlation
and s its SD (relative to sigma in the linear mixed model). For a Markov correlation the
precision Q = R^-1 is tridiagonal and L^-1 lower bidiagonal (``Structure.markov_steps``: diagonal
a_i, subdiagonal -b_i, a_1 = 1). Every row i of the design has a single nonzero value v_i, at
time t_i of level l_i, so D_l = Z_l' W Z_l = diag(d_l) is diagonal. Then, per level,

    A_l = s^2 L' D_l L + I = L' (s^2 D_l + Q) L = L' M_l L        (L' Q L = I)
    log|A_l| = log|M_l| + log|R|,           log|R| = -sum_i log(1 + g_i)
    A_l^-1 = L^-1 M_l^-1 L^-T                (L^-1, L^-T: bidiagonal products, no solve)
    W1_l = (s L) A_l^-1 (s L)' = s^2 M_l^-1
    C W1 C' = s^2 sum_l C_l M_l^-1 C_l'      (C_l = D' W Z_l, the fixed-effects/response rows)

M_l = s^2 D_l + Q is tridiagonal and well defined at s = 0 (M_l = Q, A_l = I). The l matrices
side by side form one tridiagonal matrix of order l q (no coupling between levels): one LAPACK
``dpttrf`` (M = L_M Dg L_M', L_M unit lower bidiagonal) and one ``dpttrs`` per evaluation, O(l q)
and O(l q m) for m right-hand sides, instead of O(l q^3) for dense q x q blocks.

Gradient of the log-determinant part. With Gamma = S_m^-1 the inverse of the criterion's rows
of the Schur complement S = G - C W1 C' (none for the random-effects block alone, the fixed
effects' rows for REML), phi = (s, c):

    d log|A| / dphi = sum_l [tr(M_l^-1 dM_l) + dlog|R|] - tr(Gamma d(C W1 C')_m)
    dM_l/ds = 2 s D_l,  dM_l/dc = dQ/dc (tridiagonal),
    d(C W1 C')/ds = 2 s U - 2 s^3 sum_l Y_l' D_l Y_l,   d(C W1 C')/dc = -s^2 sum_l Y_l' dQ Y_l,

U = sum_l C_l M_l^-1 C_l', Y_l = M_l^-1 C_l'. Only the tridiagonal band of M_l^-1 enters
(``selected_inverse``: from the LDL' factor, Z_qq = 1 / Dg_q, Z_{t,t+1} = -l_t Z_{t+1,t+1},
Z_tt = 1 / Dg_t + l_t^2 Z_{t+1,t+1}), and of Y_l Gamma Y_l' only the diagonal and first
off-diagonal: O(l q m^2). The data part of the gradient (the residual and mode terms) stays a
q x q matrix G = sum_i z_i alpha_i' pulled back by the structure (``data_g``).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

__all__ = ["MarkovTerm", "MarkovFactor", "markov_first_term"]


def _one_hot(z: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(column, value) of each row's single nonzero entry, or None if some row has another count."""
    nonzero = z != 0
    if not np.all(nonzero.sum(axis=1) == 1):
        return None
    col = nonzero.argmax(axis=1)
    return col, z[np.arange(z.shape[0]), col]


def markov_first_term(term, struct) -> "MarkovTerm | None":
    """The precision-form helper of ``term`` when its structure is Markov (ar1, sorted 1-D ou) and
    every row has one time point; else None (the dense blocked path)."""
    if struct is None or struct.q < 2 or struct.markov_steps(struct.initial()[struct.n_sd:]) is None:
        return None
    oh = _one_hot(term.z)
    if oh is None:
        return None
    return MarkovTerm(term.refs, oh[0], oh[1], term.nlev, struct.q)


class MarkovTerm:
    """Static index of a Markov term: row i sits at flat position l_i q + t_i with value v_i.

    Parameters
    ----------
    refs, col, val : ndarray
        Level, time index and design value of each row.
    nlev, q : int
        Levels and times.
    """

    def __init__(self, refs: np.ndarray, col: np.ndarray, val: np.ndarray, nlev: int, q: int):
        self.nlev, self.q = int(nlev), int(q)
        self.pos = np.asarray(refs, np.intp) * q + np.asarray(col, np.intp)
        self.val = np.asarray(val, float)
        self.refs, self.col = refs, col

    def level_sums(self, v: np.ndarray) -> np.ndarray:
        """(l, q) array of Z_l' v: sum over the rows at each level and time of v_i z_i."""
        return np.bincount(self.pos, self.val * v, minlength=self.nlev * self.q).reshape(self.nlev, self.q)

    def row_values(self, B: np.ndarray) -> np.ndarray:
        """Per row, z_i' b_{l_i} for (l, q) coefficients B: v_i B[l_i, t_i] (O(n), no n x q gather)."""
        return self.val * B.ravel()[self.pos]

    def cross(self, D: np.ndarray) -> np.ndarray:
        """Z' D as an (m, l q) array for the n x m matrix D (one bincount per column)."""
        size = self.nlev * self.q
        return np.stack([np.bincount(self.pos, self.val * D[:, j], minlength=size) for j in range(D.shape[1])])

    def data_g(self, alpha: np.ndarray, U: np.ndarray) -> np.ndarray:
        """G = sum_i z_i (alpha_i U_{l_i})' (q x q) for per-row weights alpha and (l, q) rows U:
        the level sums A = Z'alpha by level and time, then A' U (O(n + l q^2), not O(n q^2))."""
        return self.level_sums(alpha).T @ U

    def factor(self, struct, par: np.ndarray, d1: np.ndarray, C: np.ndarray | None) -> "MarkovFactor | None":
        """Factor of every M_l = s^2 diag(d1_l) + Q for the structure's parameters ``par``; None if
        M is not positive definite. ``C`` (m x l q) are the Schur rows' cross-products (or None)."""
        par = np.asarray(par, float)
        s = float(par[0])
        c = par[struct.n_sd:]
        g, h, dg, dh = struct.markov_steps(c)
        q, nl = self.q, self.nlev
        qd = np.ones(q)
        qd[1:] += g
        qd[:-1] += g
        diag = (s * s) * d1 + qd[None, :]
        off = np.zeros((nl, q))
        off[:, :-1] = -h
        with np.errstate(invalid="ignore"):
            dd, ee, info = lapack.dpttrf(diag.ravel(), off.ravel()[:-1])
        if info != 0 or not np.all(np.isfinite(dd)) or not np.all(dd > 0):
            return None
        return MarkovFactor(self, s, (g, h, dg, dh), d1, dd, ee, C)


class MarkovFactor:
    """One evaluation's factor of the Markov term's blocks (see the module docstring)."""

    def __init__(self, term: MarkovTerm, s: float, steps, d1: np.ndarray, dd: np.ndarray, ee: np.ndarray,
                 C: np.ndarray | None):
        self.term, self.s, self.d1, self.dd, self.ee = term, s, d1, dd, ee
        g, h, dg, dh = steps
        self.g, self.h, self.dg, self.dh = g, h, dg, dh
        q, nl = term.q, term.nlev
        # L^-1: diagonal a (a_1 = 1), subdiagonal -b (b_1 = 0), a_i^2 = 1 + g_i, a_i b_i = h_i
        self.a = np.ones(q)
        self.a[1:] = np.sqrt(1.0 + g)
        self.b = np.zeros(q)
        self.b[1:] = h / self.a[1:]
        self.logdet = float(np.sum(np.log(dd)) - nl * np.sum(np.log1p(g)))
        self.Y = self.U = None
        if C is not None and C.shape[0]:
            self.Y = self.m_solve(C.T)  # (l q, m); C.T of a C-ordered C is Fortran-ordered: no copy
            self.U = C @ self.Y
        self._band = None

    # ------------------------------------------------------------------ solves
    def m_solve(self, X: np.ndarray) -> np.ndarray:
        """M^-1 X for X with l q rows (a vector or a matrix): one LAPACK dpttrs."""
        vec = X.ndim == 1
        B = X.reshape(-1, 1) if vec else X
        if not B.flags.f_contiguous or B.dtype != np.float64:
            B = np.asfortranarray(B, dtype=float)
        out, info = lapack.dpttrs(self.dd, self.ee, B)
        if info != 0:
            raise np.linalg.LinAlgError(f"dpttrs failed (info {info})")
        return out[:, 0] if vec else out

    def _linv(self, V: np.ndarray, axis: int) -> np.ndarray:
        """L^-1 applied along ``axis`` (of length q): out_i = a_i V_i - b_i V_{i-1}."""
        V = np.moveaxis(V, axis, -1)
        out = V * self.a
        out[..., 1:] -= V[..., :-1] * self.b[1:]
        return np.moveaxis(out, -1, axis)

    def _linv_t(self, V: np.ndarray, axis: int) -> np.ndarray:
        """L^-T applied along ``axis``: out_i = a_i V_i - b_{i+1} V_{i+1}."""
        V = np.moveaxis(V, axis, -1)
        out = V * self.a
        out[..., :-1] -= V[..., 1:] * self.b[1:]
        return np.moveaxis(out, -1, axis)

    def a11_solve(self, v: np.ndarray) -> np.ndarray:
        """A^-1 v = L^-1 M^-1 L^-T v level by level, v of length l q."""
        nl, q = self.term.nlev, self.term.q
        x = self._linv_t(np.asarray(v, float).reshape(nl, q), 1)
        y = self.m_solve(x.ravel()).reshape(nl, q)
        return self._linv(y, 1).reshape(np.shape(v))

    # ------------------------------------------------------------------ inverses
    def selected_inverse(self) -> tuple[np.ndarray, np.ndarray]:
        """Diagonal (l, q) and first subdiagonal (l, q - 1) of every M_l^-1 from the LDL' factor."""
        if self._band is None:
            nl, q = self.term.nlev, self.term.q
            dg = self.dd.reshape(nl, q)
            lo = np.zeros(nl * q)
            lo[:-1] = self.ee
            lo = lo.reshape(nl, q)
            zd = np.empty((nl, q))
            ze = np.empty((nl, max(q - 1, 0)))
            zd[:, -1] = 1.0 / dg[:, -1]
            for t in range(q - 2, -1, -1):
                ze[:, t] = -lo[:, t] * zd[:, t + 1]
                zd[:, t] = 1.0 / dg[:, t] + lo[:, t] ** 2 * zd[:, t + 1]
            self._band = (zd, ze)
        return self._band

    def m_inverse_blocks(self) -> np.ndarray:
        """(l, q, q) dense M_l^-1 (q right-hand sides of the stacked identity: O(l q^2))."""
        nl, q = self.term.nlev, self.term.q
        eye = np.zeros((nl * q, q), order="F")  # the stacked identities, in dpttrs's own layout
        eye[np.arange(nl * q), np.tile(np.arange(q), nl)] = 1.0
        return self.m_solve(eye).reshape(nl, q, q)

    def cov_blocks(self) -> np.ndarray:
        """(l, q, q) blocks of Lambda A^-1 Lambda' = s^2 M_l^-1 (the conditional covariances of b)."""
        return self.s**2 * self.m_inverse_blocks()

    def a11_inverse(self) -> np.ndarray:
        """(l, q, q) blocks A_l^-1 = L^-1 M_l^-1 L^-T."""
        # L^-1 on the rows, then X L^-T = (L^-1 X')' on the columns: L^-1 along both axes
        return self._linv(self._linv(self.m_inverse_blocks(), 1), 2)

    def leverage(self) -> np.ndarray:
        """Per row, z_i' Lambda A^-1 Lambda' z_i = v_i^2 s^2 (M_{l_i}^-1)_{t_i t_i}."""
        zd = self.selected_inverse()[0]
        return self.term.val**2 * self.s**2 * zd.ravel()[self.term.pos]

    # ------------------------------------------------------------------ gradient
    def logdet_gradient(self, gamma: np.ndarray | None = None) -> np.ndarray:
        """d log|A| / d(s, c): the blocks' sum_l log|A_l| and, with ``gamma`` = S_m^-1 (m x m), the
        log-determinant of the Schur complement's first m rows (module docstring)."""
        nl, q = self.term.nlev, self.term.q
        s = self.s
        zd, ze = self.selected_inverse()
        dqd = np.zeros(q)
        dqd[1:] += self.dg
        dqd[:-1] += self.dg
        dqe = -self.dh
        dlogdet_r = -np.sum(self.dg / (1.0 + self.g))
        gs = 2.0 * s * float(np.sum(self.d1 * zd))
        gc = float(zd.sum(axis=0) @ dqd + 2.0 * (ze.sum(axis=0) @ dqe) + nl * dlogdet_r)
        if gamma is not None and gamma.shape[0]:
            m = gamma.shape[0]
            Ym = self.Y[:, :m]
            YG = Ym @ gamma
            kd = np.einsum("ij,ij->i", YG, Ym).reshape(nl, q)
            YG3, Y3 = YG.reshape(nl, q, m), Ym.reshape(nl, q, m)
            ke = np.einsum("ltj,ltj->lt", YG3[:, :-1], Y3[:, 1:])
            gs -= 2.0 * s * float(np.sum(gamma * self.U[:m, :m])) - 2.0 * s**3 * float(np.sum(self.d1 * kd))
            gc += s * s * float(kd.sum(axis=0) @ dqd + 2.0 * (ke.sum(axis=0) @ dqe))
        return np.array([gs, gc])
