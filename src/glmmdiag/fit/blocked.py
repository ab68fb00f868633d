"""Blocked Cholesky of the penalised normal equations.

For weights w (n) and relative covariance factor Lambda(theta), the matrix

    A = [ L1'Z1'WZ1L1 + I   L1'Z1'W D L~ ]        D = [Z_rest | X (| y)]
        [ L~'D'WZ1L1        L~'D'W D L~ + J ]     L~ = diag(Lambda_rest, I),  J = diag(I_qrest, 0)

is factorised blockwise. The first (largest) term's block is block-diagonal with q1 x q1 blocks
(one per level) and is never densified; the rest is the dense Schur complement
S = L~'(D'WD - C W1 C')L~ + J with C = D'WZ1 and W1 = L1 (L1'Z1'WZ1L1 + I)^{-1} L1'
(MixedModels.jl's layout; lme4's A matrix). Only q1 x q1 blocks, the m x m Schur complement and
sparse cross-products are stored: never a dense n x q matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse
from scipy.linalg import lapack

from glmmdiag.fit.banded import markov_first_term
from glmmdiag.fit.covstruct import make_structure
from glmmdiag.fit.dense import cho_solve_lower, cholesky_lower
from glmmdiag.fit.level_blocks import LevelBlocks
from glmmdiag.fit.sparse_schur import SparseSchur, sparse_plan
from glmmdiag.fit.patterns import RestPattern

__all__ = ["BlockedSystem", "CrossProducts", "Factor"]

_DENSE_LIMIT = 400_000  # entries of C_rest above which it stays sparse
_DENSE_C_LIMIT = 10_000_000  # entries of a dense C_r when at least 10% of them are nonzero
_GATHER_LIMIT = 2_000_000  # entries of an (n, q1, q1) gather of the first term's blocks


def spd_inverse(L: np.ndarray) -> np.ndarray:
    """Inverse of S = L L' from its lower Cholesky factor (LAPACK potri), symmetrised.

    L must be zero above the diagonal (as ``cholesky_lower`` returns it): potri fills only the
    lower triangle and leaves the upper one as it found it, so inv + inv' with a halved diagonal
    is the full inverse."""
    inv, info = lapack.dpotri(L, lower=1)
    if info != 0:
        return linalg.cho_solve((L, True), np.eye(L.shape[0]), check_finite=False)
    out = inv + inv.T
    out.flat[:: out.shape[0] + 1] *= 0.5
    return out


class _DenseEntries:
    """Entries of a dense inverse at broadcast index arrays (the dense path of ``sinv_entries``)."""

    def __init__(self, array: np.ndarray):
        self.array = array

    def __call__(self, a, b):
        return self.array[a, b]


def _blocks_of(Zt, w: np.ndarray, nlev: int, q: int) -> np.ndarray:
    """(nlev, q, q) diagonal blocks of Zt W Zt' for the sparse (nlev q x n) Zt."""
    M = (Zt @ sparse.diags(w) @ Zt.T).tocoo()
    out = np.zeros((nlev, q, q))
    out[M.row // q, M.row % q, M.col % q] = M.data
    return out


def level_crossprods(refs: np.ndarray, z: np.ndarray, nlev: int, w: np.ndarray) -> np.ndarray:
    """Per level l, Z_l' W Z_l as an (nlev, q, q) array: bincounts for a few coefficients, one
    sparse product for many (an ar1 or spatial term: q (q + 1) / 2 bincounts would cost O(q^2 n))."""
    n, q = z.shape
    if q <= 8:
        out = np.empty((nlev, q, q))
        for a in range(q):
            for b in range(a, q):
                out[:, a, b] = out[:, b, a] = np.bincount(refs, w * z[:, a] * z[:, b], minlength=nlev)
        return out
    rows = (refs[:, None] * q + np.arange(q)).ravel()
    Zt = sparse.csr_matrix((z.ravel(), (rows, np.repeat(np.arange(n), q))), shape=(nlev * q, n))
    Zt.eliminate_zeros()
    return _blocks_of(Zt, w, nlev, q)


@dataclass
class SparseRest:
    """Values of C_r = Z_r' W Z_1 on the system's fixed pattern."""

    vals: np.ndarray

    def vals_dense(self, pattern):
        return pattern.c_dense(self.vals)


@dataclass
class CrossProducts:
    D1: np.ndarray | None  # (l1, q1, q1); None for a Markov first term (its diagonal in d1_diag)
    Cr: object  # (qr, l1*q1) dense array or sparse matrix, or None
    Cx: np.ndarray | None  # (p', l1*q1)
    G: np.ndarray  # (m, m) with m = qr + p'
    d1_diag: np.ndarray | None = None  # (l1, q1) diagonal of D1 (a Markov first term: D1 is diagonal)


@dataclass
class Factor:
    theta: np.ndarray
    T: list
    a11: np.ndarray  # q1 == 1: (l1,) diagonal of A11; else (l1, q1, q1)
    W1: np.ndarray  # Lambda1 A11^{-1} Lambda1' per level: (l1,) or (l1, q1, q1)
    L22: np.ndarray  # Cholesky of the Schur complement (m x m), lower
    logdet11: float
    ok: bool
    inv11: np.ndarray | None = None  # A11^{-1} per level (q1 > 1), reused by own_inverse / cond_var
    band: object = None  # a Markov first term's precision-form factor (banded.MarkovFactor): a11, W1 None
    chol11: np.ndarray | None = None  # lower Cholesky factors of the first term's blocks (q1 > 1)
    sparse: SparseSchur | None = None  # the Schur complement's sparse factor (then L22 is None)

    def a11_inverse(self) -> np.ndarray:
        """(l1, q1, q1) inverses of the first term's blocks (computed once per factor)."""
        if self.inv11 is None:
            if self.band is not None:
                self.inv11 = self.band.a11_inverse()
            elif self.a11.ndim == 1:
                self.inv11 = (1.0 / self.a11)[:, None, None]
            elif self.chol11 is not None and self.chol11.shape[0] == 1:  # one large block: LAPACK potri
                self.inv11 = spd_inverse(np.tril(self.chol11[0]))[None]
            else:
                self.inv11 = np.linalg.inv(self.a11)
        return self.inv11


class BlockedSystem:
    """Static structure of Z (first term + the rest) for repeated factorisations."""

    def __init__(self, terms, n: int):
        t1 = terms[0]
        self.n = n
        self.q1, self.l1 = t1.q, t1.nlev
        self.refs1, self.z1 = t1.refs, t1.z
        q1 = self.q1
        self._Z1T = None  # Z1' as a sparse matrix, built on first use (``z1t``)
        self._Z1T_nz = None  # the same without explicit zeros (``_d1_sparse``)
        self._level_rows = None  # rows of each level of the first term (``by_level``)
        self._one_hot = self._one_hot_columns(t1.z) if q1 > 8 else None
        self.rest = terms[1:]
        self.rest_q = [t.q for t in self.rest]
        self.rest_nlev = [t.nlev for t in self.rest]
        self.qr = int(sum(t.q * t.nlev for t in self.rest))
        self.rest_scalar = all(q == 1 for q in self.rest_q)
        self.pattern = None
        if self.rest:
            r_cols, r_vals, off = [], [], 0
            for t in self.rest:
                for a in range(t.q):
                    r_cols.append(off + t.refs * t.q + a)
                    r_vals.append(t.z[:, a])
                off += t.q * t.nlev
            rest_cols, rest_vals = np.column_stack(r_cols), np.column_stack(r_vals)
            t1_cols = t1.refs[:, None] * q1 + np.arange(q1)[None, :]
            self.pattern = RestPattern(rest_cols, rest_vals, t1_cols, t1.z, self.qr, self.l1 * q1, q1)
            size = self.qr * self.l1 * q1
            nnz = self.pattern.c_nnz
            # dense C_r where it is small, or filled enough that BLAS products beat sparse ones
            # (crossed factors with many rows per level pair: C_r W1 C_r' as one gemm)
            self.rest_dense = (size <= 4096 or (size <= _DENSE_LIMIT and nnz > 0.25 * size)
                               or (size <= _DENSE_C_LIMIT and nnz > 0.1 * size))
        else:
            self.rest_dense = True
        self._pairs = [(a, b) for a in range(q1) for b in range(a, q1)] if q1 <= 8 else None
        # a single Markov term (ar1, sorted 1-D ou): its blocks in precision form (fit/banded.py)
        self.markov = None
        if not self.rest and getattr(t1, "structure", "us") in ("ar1", "ou"):
            self.markov = markov_first_term(t1, make_structure(t1.structure, q1, getattr(t1, "coords", None)))
        self._level_blocks = None  # LevelBlocks gather structure (``level_blocks``), built on first use
        self._sparse_plan = None  # SparseRestPlan, False for the dense Schur complement (``sparse_plan``)
        self.allow_sparse = True  # False forces the dense Schur complement (tests compare the two)

    def z1t(self):
        """Z1' (l1 q1 x n) as a sparse matrix."""
        if self._Z1T is None:
            q1, n = self.q1, self.n
            rows = (self.refs1[:, None] * q1 + np.arange(q1)).ravel()
            cols = np.repeat(np.arange(n), q1)
            self._Z1T = sparse.csr_matrix((self.z1.ravel(), (rows, cols)), shape=(self.l1 * q1, n))
        return self._Z1T

    # ------------------------------------------------------------------ cross-products
    @staticmethod
    def _one_hot_columns(z: np.ndarray):
        """(column, value) per row when every row of z has exactly one nonzero entry (an ar1 or
        spatial term's time/location indicator), else None."""
        nonzero = z != 0
        if not np.all(nonzero.sum(axis=1) == 1):
            return None
        col = nonzero.argmax(axis=1)
        return col, z[np.arange(z.shape[0]), col]

    def _d1_one_hot(self, w: np.ndarray) -> np.ndarray:
        """Z1_l' W Z1_l for a one-hot first term: diagonal blocks, one bincount (O(n))."""
        col, val = self._one_hot
        q1 = self.q1
        diag = np.bincount(self.refs1 * q1 + col, w * val * val, minlength=self.l1 * q1).reshape(self.l1, q1)
        D1 = np.zeros((self.l1, q1, q1))
        idx = np.arange(q1)
        D1[:, idx, idx] = diag
        return D1

    def _d1_sparse(self, w: np.ndarray) -> np.ndarray:
        """The per-level blocks Z1_l' W Z1_l through one sparse product (``level_crossprods``)."""
        if self._Z1T_nz is None:
            self._Z1T_nz = self.z1t().copy()
            self._Z1T_nz.eliminate_zeros()
        return _blocks_of(self._Z1T_nz, w, self.l1, self.q1)

    def crossprods(self, w: np.ndarray, D: np.ndarray | None) -> CrossProducts:
        l1, q1 = self.l1, self.q1
        z1 = self.z1
        d1_diag = None
        if self.markov is not None:  # only the diagonal (l1 q1 numbers, not l1 q1^2)
            D1, d1_diag = None, self.markov.level_sums(w * self.markov.val)
        elif self._one_hot is not None:
            D1 = self._d1_one_hot(w)
        elif q1 > 8:
            D1 = self._d1_sparse(w)
        else:
            D1 = np.empty((l1, q1, q1))
            for a, b in self._pairs:
                v = np.bincount(self.refs1, w * z1[:, a] * z1[:, b], minlength=l1)
                D1[:, a, b] = v
                D1[:, b, a] = v
        Cx = Gxx = None
        if D is not None and D.shape[1]:
            WD = D * w[:, None]
            Cx = self.markov.cross(WD) if self.markov is not None else np.asarray((self.z1t() @ WD).T)
            Gxx = D.T @ WD
        if self.pattern is None:
            return CrossProducts(D1, None, Cx, Gxx if Cx is not None else np.zeros((0, 0)), d1_diag)
        vals = self.pattern.c_values(w)
        Cr = self.pattern.c_dense(vals) if self.rest_dense else SparseRest(vals)
        Grr = self.pattern.g_dense(w)
        if Cx is not None:
            Grx = self.pattern.rest_times_dense(w, D)
            G = np.block([[Grr, Grx], [Grx.T, Gxx]])
        else:
            G = Grr
        return CrossProducts(D1, Cr, Cx, G)

    def cr_dense(self, cp: CrossProducts) -> np.ndarray:
        return cp.Cr.vals_dense(self.pattern) if isinstance(cp.Cr, SparseRest) else cp.Cr

    # ------------------------------------------------------------------ Lambda helpers
    def lam1(self, T1, v):
        """Lambda1 v for v of length l1*q1 (or rows of a matrix, last axis)."""
        if self.q1 == 1:
            return T1[0, 0] * v
        return (v.reshape(-1, self.l1, self.q1) @ T1.T).reshape(v.shape)

    def lam1t(self, T1, v):
        if self.q1 == 1:
            return T1[0, 0] * v
        return (v.reshape(-1, self.l1, self.q1) @ T1).reshape(v.shape)

    def lam_rest_vec(self, Ts_rest):
        """Lambda_rest as (scale vector) when all rest terms are scalar, else a sparse matrix
        (``lam_rest`` applies it without building it)."""
        if self.rest_scalar:
            return np.concatenate([np.full(nl, T[0, 0]) for T, nl in zip(Ts_rest, self.rest_nlev)])
        blocks = [sparse.kron(sparse.identity(nl), T) for T, nl in zip(Ts_rest, self.rest_nlev)]
        return sparse.block_diag(blocks, format="csr")

    def lam_rest(self, Ts_rest, A, transpose=False):
        """Lambda_rest A (Lambda_rest' A with ``transpose``) for A with qr rows (a vector or a
        matrix): each term's q x q factor applied level by level, without building the sparse
        block-diagonal matrix (``sparse.kron`` costs about 1 ms a call, several calls a Newton step)."""
        if self.rest_scalar:
            lr = self.lam_rest_vec(Ts_rest)
            return lr * A if A.ndim == 1 else lr[:, None] * A
        out = np.empty(A.shape)
        off = 0
        for T, nl in zip(Ts_rest, self.rest_nlev):
            k = nl * T.shape[0]
            blk = A[off : off + k]
            M = T.T if transpose else T
            out[off : off + k] = (M[None] @ blk.reshape(nl, T.shape[0], -1)).reshape(blk.shape)
            off += k
        return out

    def a11_solve(self, F: Factor, v):
        if F.band is not None:
            return F.band.a11_solve(v)
        if self.q1 == 1:
            return v / F.a11
        # (not F.inv11 @ v: where a structure absorbs the residual variance A11 is ill-conditioned,
        # and the explicit inverse's rounding moved a toep fit along its flat ridge)
        if F.chol11 is not None and self.l1 == 1:  # one large block: the Cholesky factor's solves
            return cho_solve_lower(F.chol11[0], v.reshape(self.q1, 1)).reshape(v.shape)
        sol = np.linalg.solve(F.a11, v.reshape(self.l1, self.q1)[..., None])
        return sol.reshape(v.shape)

    # ------------------------------------------------------------------ factorisation
    def factor(self, cp: CrossProducts, theta, thetamap) -> Factor:
        T = thetamap.factors(theta)
        if self.markov is not None:
            return self._factor_markov(cp, theta, thetamap, T)
        T1 = T[0]
        q1, qr = self.q1, self.qr
        if q1 == 1:
            t2 = T1[0, 0] ** 2
            a11 = t2 * cp.D1[:, 0, 0] + 1.0
            logdet11 = float(np.sum(np.log(a11)))
            W1 = t2 / a11
        else:
            a11 = self._a11_blocks(cp.D1, T1)
            try:
                L11 = np.linalg.cholesky(a11)
            except np.linalg.LinAlgError:
                return Factor(theta, T, a11, None, None, np.inf, False)
            logdet11 = float(2.0 * np.sum(np.log(np.diagonal(L11, axis1=1, axis2=2))))
            if cp.G.shape[0] == 0:  # no Schur rows: W1 is not needed, A11^-1 only on demand
                return Factor(theta, T, a11, None, np.zeros((0, 0)), logdet11, True, None, chol11=L11)
            inv11 = np.linalg.inv(a11)
            W1 = T1[None] @ inv11 @ T1.T[None]
        m = cp.G.shape[0]
        if m == 0:
            return Factor(theta, T, a11, W1, np.zeros((0, 0)), logdet11, True, None if q1 == 1 else inv11)
        if qr and self.sparse_plan() is not None:
            sch = self._sparse_schur(cp, W1, T)
            if not sch.fallback:
                return Factor(theta, T, a11, W1, None, logdet11, sch.ok, None if q1 == 1 else inv11, sparse=sch)
        S = self.scale_rest(cp.G - self.c_w_ct(cp, W1), T)
        if qr:
            S[np.arange(qr), np.arange(qr)] += 1.0
        L22 = cholesky_lower(S) if np.isfinite(S).all() else None
        if L22 is None:
            return Factor(theta, T, a11, W1, None, logdet11, False)
        return Factor(theta, T, a11, W1, L22, logdet11, True, None if q1 == 1 else inv11)

    def _a11_blocks(self, D1: np.ndarray, T1: np.ndarray) -> np.ndarray:
        """A11 = T1' D1_l T1 + I per level. One-hot first terms (diagonal D1_l, an ar1 or spatial
        term): (sqrt(d) T1)' (sqrt(d) T1), one product (a symmetric rank update) per level."""
        q1 = self.q1
        if self._one_hot is not None:
            d = np.diagonal(D1, axis1=1, axis2=2)
            if np.all(d >= 0):
                Td = np.sqrt(d)[:, :, None] * T1[None]
                a11 = np.swapaxes(Td, 1, 2) @ Td
                a11[:, np.arange(q1), np.arange(q1)] += 1.0
                return a11
        return np.swapaxes(T1, 0, 1)[None] @ D1 @ T1[None] + np.eye(q1)[None]

    def _factor_markov(self, cp: CrossProducts, theta, thetamap, T) -> Factor:
        """``factor`` for a single Markov term: banded blocks (fit/banded.py), then the Schur
        complement of the dense rows S = G - s^2 C M^-1 C' (C W1 C' with W1 = s^2 M^-1)."""
        band = self.markov.factor(thetamap.structs[0], thetamap.segment(theta, 0), cp.d1_diag, cp.Cx)
        if band is None:
            return Factor(theta, T, None, None, None, np.inf, False)
        if cp.G.shape[0] == 0:
            return Factor(theta, T, None, None, np.zeros((0, 0)), band.logdet, True, band=band)
        S = cp.G - band.s**2 * band.U
        L22 = cholesky_lower(S) if np.isfinite(S).all() else None
        return Factor(theta, T, None, None, L22, band.logdet, L22 is not None, band=band)

    # ------------------------------------------------------------------ sparse Schur complement
    def sparse_plan(self):
        """The ``SparseRestPlan`` of the rest block when it is large and sparse (decided once), else
        None: the dense Schur complement. Needs the ``LevelBlocks`` gathers for the gradients."""
        if self._sparse_plan is None:
            plan = sparse_plan(self) if self.allow_sparse and self.pattern is not None else None
            if plan is not None and self._level_blocks_any() is None:
                plan = None
            self._sparse_plan = plan if plan is not None else False
        return self._sparse_plan if self.allow_sparse and self._sparse_plan else None

    def _sparse_schur(self, cp: CrossProducts, W1, T) -> SparseSchur:
        """S = L~'(G - C W1 C')L~ + J as sparse S_rr (on the plan's pattern) and dense S_rd, S_dd."""
        plan, pat, qr = self._sparse_plan, self.pattern, self.qr
        cvals = cp.Cr.vals if isinstance(cp.Cr, SparseRest) else cp.Cr[pat.c_rows, pat.c_cols]
        vals = cp.G[plan.rows, plan.cols].copy()
        pa, pb, _, inv, widx = pat._pairs
        vals[plan.s_pos] -= np.bincount(inv, cvals[pa] * cvals[pb] * W1.ravel()[widx], minlength=len(plan.s_pos))
        if self.rest_scalar:
            lr = self.lam_rest_vec(T[1:])
            vals *= lr[plan.rows] * lr[plan.cols]
        else:  # L_r' M L_r stays on the pattern (closed over each term's level blocks)
            Lr = self.lam_rest_vec(T[1:])
            R = (Lr.T @ plan.csc(vals) @ Lr).tocoo()
            keys = R.row.astype(np.int64) * qr + R.col
            vals = np.zeros(len(plan.keys))
            np.add.at(vals, np.searchsorted(plan.keys, keys), R.data)
        vals[plan.diag_pos] += 1.0
        if cp.Cx is not None:
            CxW = self._right_w1(cp.Cx, W1)
            Srd = cp.G[:qr, qr:] - pat.csr(cvals) @ CxW.T
            Srd = self.lam_rest(T[1:], Srd, transpose=True)
            Sdd = cp.G[qr:, qr:] - CxW @ cp.Cx.T
        else:
            Srd, Sdd = np.zeros((qr, 0)), np.zeros((0, 0))
        return SparseSchur(plan, vals, Srd, Sdd)

    def tail(self, F: Factor) -> np.ndarray:
        """Lower Cholesky factor of the dense columns' block after eliminating every random effect
        (the trailing block of the Schur complement's factor)."""
        return F.sparse.Ld if F.sparse is not None else F.L22[self.qr :, self.qr :]

    def sinv_entries(self, F: Factor, m: int):
        """Callable (a, b) -> entries of S_m^{-1} (S's leading m x m block) at broadcast indices:
        a dense inverse, or the sparse factor's selected inverse (entries on the pattern only)."""
        if F.sparse is not None:
            return F.sparse.inverse_entries(m - self.qr)
        Sinv = spd_inverse(F.L22[:m, :m])
        return _DenseEntries(Sinv)

    def c_w_ct(self, cp: CrossProducts, W1) -> np.ndarray:
        """C W1 C' over the Schur rows (rest RE, then dense columns), W1 block diagonal per level."""
        qr, m = self.qr, cp.G.shape[0]
        sparse_r = isinstance(cp.Cr, SparseRest)
        if cp.Cr is not None and cp.Cx is not None and not sparse_r:
            C = np.vstack([cp.Cr, cp.Cx])
            return self._right_w1(C, W1) @ C.T
        M = np.zeros((m, m))
        if cp.Cr is not None:
            if sparse_r:
                M[:qr, :qr] = self.pattern.schur_update(cp.Cr.vals, W1)
            else:
                M[:qr, :qr] = self._right_w1(cp.Cr, W1) @ cp.Cr.T
        if cp.Cx is not None:
            CxW = self._right_w1(cp.Cx, W1)
            M[qr:, qr:] = CxW @ cp.Cx.T
            if cp.Cr is not None:
                blk = self.pattern.right_dense(cp.Cr.vals, CxW)
                M[qr:, :qr] = blk
                M[:qr, qr:] = blk.T
        return M

    def scale_rest(self, M: np.ndarray, T) -> np.ndarray:
        """L~' M L~: rows and columns of the rest random effects multiplied by Lambda_rest."""
        qr = self.qr
        if not qr:
            return M
        M = M.copy()
        if self.rest_scalar:
            lr = self.lam_rest_vec(T[1:])
            M[:qr, :] *= lr[:, None]
            M[:, :qr] *= lr[None, :]
        else:
            M[:qr, :] = self.lam_rest(T[1:], M[:qr, :], transpose=True)
            M[:, :qr] = self.lam_rest(T[1:], M[:, :qr].T, transpose=True).T
        return M

    def _right_w1(self, C, W1):
        """C W1 where W1 is block diagonal (l1 blocks of q1 x q1)."""
        if self.q1 == 1:
            if sparse.issparse(C):
                return C @ sparse.diags(W1)
            return C * W1[None, :]
        if sparse.issparse(C):
            return C @ sparse.block_diag(list(W1), format="csr")
        m = C.shape[0]
        return np.einsum("mlq,lqr->mlr", C.reshape(m, self.l1, self.q1), W1).reshape(C.shape)

    def logdet_rest(self, F: Factor, upto: int | None = None) -> float:
        if F.sparse is not None:
            extra = 0 if upto is None else upto - self.qr
            return F.sparse.logdet_rr + float(2.0 * np.sum(np.log(np.diag(F.sparse.Ld)[:extra])))
        d = np.diag(F.L22)[: (self.qr if upto is None else upto)]
        return float(2.0 * np.sum(np.log(d)))

    def c_transpose_times(self, cp: CrossProducts, v):
        """C' v for v over the Schur rows (rest RE rows first, then the dense columns)."""
        out = np.zeros(self.l1 * self.q1)
        qr = self.qr
        if isinstance(cp.Cr, SparseRest):
            out += self.pattern.rmatvec(cp.Cr.vals, v[:qr])
        elif cp.Cr is not None:
            out += cp.Cr.T @ v[:qr]
        if cp.Cx is not None:
            out += cp.Cx.T @ v[qr:]
        return out

    def c_times(self, cp: CrossProducts, x):
        parts = []
        if isinstance(cp.Cr, SparseRest):
            parts.append(self.pattern.matvec(cp.Cr.vals, x))
        elif cp.Cr is not None:
            parts.append(cp.Cr @ x)
        if cp.Cx is not None:
            parts.append(cp.Cx @ x)
        return np.concatenate(parts) if parts else np.zeros(0)

    def lam_tilde(self, F: Factor, x, transpose=False):
        """L~ x: rest-RE part multiplied by Lambda_rest (or its transpose), the rest unchanged."""
        qr = self.qr
        if not qr:
            return x
        out = x.copy()
        out[:qr] = self.lam_rest(F.T[1:], x[:qr], transpose)
        return out

    def solve(self, cp: CrossProducts, F: Factor, g1, grest):
        """Solve A [x1; xr] = [g1; grest]; A as in the module docstring (without y)."""
        T1 = F.T[0]
        y1 = self.a11_solve(F, g1)
        if F.sparse is None and F.L22.shape[0] == 0:
            return y1, np.zeros(0)
        # A_r1 y1 = L~' C L1 y1
        h = grest - self.lam_tilde(F, self.c_times(cp, self.lam1(T1, y1)), transpose=True)
        xr = F.sparse.solve(h) if F.sparse is not None else cho_solve_lower(F.L22, h)
        x1 = y1 - self.a11_solve(F, self.lam1t(T1, self.c_transpose_times(cp, self.lam_tilde(F, xr))))
        return x1, xr

    def cond_var(self, F: Factor, cp: CrossProducts, terms) -> list[np.ndarray]:
        """Per term, the (l_k, q_k, q_k) diagonal blocks of Lambda H^{-1} Lambda' (cp without X).

        Term 1: A11^{-1} + (A11^{-1} M1') S^{-1} (M1 A11^{-1}) on its diagonal blocks, with
        M1 = Lambda_r' C_r Lambda_1; the rest: diagonal blocks of S^{-1}.
        """
        T = F.T
        q1, l1, qr = self.q1, self.l1, self.qr
        if F.band is not None and not qr:  # a single Markov term: s^2 M_l^-1, no dense inverse
            return [F.band.cov_blocks()]
        inv11 = F.a11_inverse()
        blocks1 = inv11
        if qr:
            sinv = self.sinv_entries(F, qr)
            Sinv = getattr(sinv, "array", None)  # the dense inverse (None on the sparse path)
            lr = self.lam_rest_vec(T[1:]) if self.rest_scalar else None
        if qr and self.level_blocks() is not None:
            # per-level gathers of S^{-1} (``LevelBlocks``): K_j = M1_j' S^{-1} M1_j, no dense M1
            lb = self.level_blocks()
            vals = cp.Cr.vals if isinstance(cp.Cr, SparseRest) else cp.Cr[self.pattern.c_rows, self.pattern.c_cols]
            _, _, K = lb.sm_and_k(lb.m1_blocks(vals, T[0], T[1:]), None, sinv, qr)
            blocks1 = inv11 + inv11 @ K @ inv11
        elif qr and q1 == 1 and self.rest_scalar and isinstance(cp.Cr, SparseRest):
            # sparse C_r: m_j' S^{-1} m_j for every column m_j of M1 from (S^{-1} M1) at M1's entries only
            pat = self.pattern
            m1 = cp.Cr.vals * lr[pat.c_rows] * T[0][0, 0]
            SM1 = np.asarray(pat.csr(m1).T @ Sinv)  # (l1 x qr) = (S^{-1} M1)'
            quad = np.bincount(pat.c_cols, m1 * SM1[pat.c_cols, pat.c_rows], minlength=l1)
            blocks1 = inv11 + (quad / F.a11**2)[:, None, None]
        elif qr:
            M1 = self.lam1t(T[0], self.cr_dense(cp))
            M1 = lr[:, None] * M1 if self.rest_scalar else self.lam_rest(T[1:], M1, transpose=True)
            M = np.einsum("rla,lab->rlb", M1.reshape(qr, l1, q1), inv11)  # M1 A11^{-1}
            SM = (Sinv @ M.reshape(qr, -1)).reshape(qr, l1, q1)
            blocks1 = inv11 + np.einsum("rla,rlb->lab", M, SM)
        out = [T[0][None] @ blocks1 @ T[0].T[None]]
        off = 0
        for k, t in enumerate(terms[1:], start=1):
            idx = off + np.arange(t.nlev)[:, None] * t.q + np.arange(t.q)[None, :]
            blk = sinv(idx[:, :, None], idx[:, None, :])
            out.append(T[k][None] @ blk @ T[k].T[None])
            off += t.nlev * t.q
        return out

    def _own_pieces_dense(self, F: Factor, cp: CrossProducts, terms, X, Sinv):
        """S^{-1} M1 formed as an (m, l1 q1) array (dense or sparse M1), gathered at each row's own
        entries: (SMg (n, k, q1), K (l1, q1, q1), pos (n, k), bt (n, k), kr)."""
        T = F.T
        t1 = terms[0]
        q1, qr = self.q1, self.qr
        p = 0 if X is None else X.shape[1]
        m = qr + p
        n = len(t1.refs)
        SM = np.zeros((m, self.l1 * q1))
        K = np.zeros((self.l1, q1, q1))
        bt_parts, pos_parts = [], []
        if qr:
            lr = self.lam_rest_vec(T[1:]) if self.rest_scalar else None
            pat = self.pattern
            if q1 == 1 and self.rest_scalar and not self.rest_dense:
                m1 = cp.Cr.vals * lr[pat.c_rows] * T[0][0, 0]
                SM += np.asarray((pat.csr(m1).T @ Sinv[:qr, :]).T)
                M1r = None
            else:
                M1r = self.lam1t(T[0], self.cr_dense(cp))
                M1r = lr[:, None] * M1r if self.rest_scalar else self.lam_rest(T[1:], M1r, transpose=True)
                SM += Sinv[:, :qr] @ M1r
            bt_parts.append(np.column_stack([t.z @ Tk for t, Tk in zip(terms[1:], T[1:])]))
            pos_parts.append(pat.rest_cols)
        if p:
            M1x = self.lam1t(T[0], cp.Cx[:p])
            SM += Sinv[:, qr:] @ M1x
            bt_parts.append(X)
            pos_parts.append(np.broadcast_to(qr + np.arange(p), (n, p)))
        # K_j = (M1' S^{-1} M1) diagonal blocks, from the dense pieces of M1
        dense_rows = []
        if qr and M1r is not None:
            dense_rows.append((M1r, slice(0, qr)))
        if p:
            dense_rows.append((M1x, slice(qr, m)))
        for M, rows in dense_rows:
            K += np.einsum("rla,rlb->lab", M.reshape(-1, self.l1, q1), SM[rows].reshape(-1, self.l1, q1))
        if qr and M1r is None:  # the sparse rest rows, once SM is complete
            K[:, 0, 0] += np.bincount(pat.c_cols, m1 * SM[pat.c_rows, pat.c_cols], minlength=pat.L1)
        pos = np.concatenate(pos_parts, axis=1)
        bt = np.concatenate(bt_parts, axis=1)
        kr = pos_parts[0].shape[1] if qr else 0
        cols1 = t1.refs[:, None] * q1 + np.arange(q1)[None, :]
        SMg = SM[pos[:, :, None], cols1[:, None, :]]  # (n, k, q1)
        return SMg, K, pos, bt, kr

    def level_blocks(self):
        """The ``LevelBlocks`` gather structure, or None where it does not pay: small systems with a
        dense Schur complement (the dense S^{-1} M1 is cheap) and large padded gathers. The
        sparse Schur complement always uses it (it has no dense S^{-1})."""
        if self.sparse_plan() is None:
            if self.qr * self.l1 * self.q1 <= _DENSE_LIMIT:
                return None
            if self.q1 == 1 and self.rest_scalar and not self.rest_dense:
                return None  # scalar terms, sparse C_r: (S^{-1} C_r)' as one sparse product is cheaper
        return self._level_blocks_any()

    def _level_blocks_any(self):
        """The ``LevelBlocks`` structure (built once) when its padded gathers are small enough."""
        if self._level_blocks is None:
            lb = LevelBlocks.build(self) if self.pattern is not None else None
            self._level_blocks = lb if lb is not None else False
        return self._level_blocks or None

    def _own_pieces_by_level(self, lb, F: Factor, cp: CrossProducts, terms, X, sinv):
        """As ``_own_pieces_dense``, from per-level gathers of S^{-1} (``LevelBlocks``)."""
        T = F.T
        qr = self.qr
        p = 0 if X is None else X.shape[1]
        n = len(self.refs1)
        vals = cp.Cr.vals if isinstance(cp.Cr, SparseRest) else cp.Cr[self.pattern.c_rows, self.pattern.c_cols]
        M1b = lb.m1_blocks(vals, T[0], T[1:])
        M1x = self.lam1t(T[0], cp.Cx[:p]) if p else None
        SMr, SMx, K = lb.sm_and_k(M1b, M1x, sinv, qr)
        refs = self.refs1
        parts = [SMr[refs[:, None], lb.row_pos]]
        pos_parts = [self.pattern.rest_cols]
        bt_parts = [np.column_stack([t.z @ Tk for t, Tk in zip(terms[1:], T[1:])])]
        if p:
            parts.append(SMx[refs])
            pos_parts.append(np.broadcast_to(qr + np.arange(p), (n, p)))
            bt_parts.append(X)
        kr = pos_parts[0].shape[1]
        return (np.concatenate(parts, axis=1), K, np.concatenate(pos_parts, axis=1),
                np.concatenate(bt_parts, axis=1), kr)

    def by_level(self, M: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Rows M[level of row i] @ V[i] for the first term's (l1, q1, q1) blocks M.

        Small blocks: one gather and einsum. Large ones (a long ar1 series, a spatial term): level by
        level, so that no large (n, q1, q1) array of gathered blocks is ever formed."""
        refs = self.refs1
        if self.l1 == 1:  # one level (a single spatial field): one product
            return V @ M[0].T
        if self.q1 <= 8 or len(refs) * self.q1 * self.q1 <= _GATHER_LIMIT:
            return np.einsum("iab,ib->ia", M[refs], V)
        if self._level_rows is None:
            order = np.argsort(refs, kind="stable")
            bounds = np.searchsorted(refs[order], np.arange(self.l1 + 1))
            self._level_rows = [order[bounds[j] : bounds[j + 1]] for j in range(self.l1)]
        out = np.empty_like(V, dtype=float)
        for j, rows in enumerate(self._level_rows):
            if rows.size:
                out[rows] = V[rows] @ M[j].T
        return out

    def own_inverse(self, F: Factor, cp: CrossProducts, terms, X: np.ndarray | None = None) -> list[np.ndarray]:
        """Per term k, (n, q_k): entries of A^{-1} zbar_i at row i's own random-effect positions.

        A is the random-effects block H (X None) or the (u, beta) block of the system (X given,
        cp built with D = [X, ...] whose first X.shape[1] dense rows are X); zbar_i =
        [Lambda'Z'e_i; X'e_i]. Block elimination: y1 = A11^{-1} a_i, x_i = S^{-1}(b_i - M1 y1),
        A^{-1} zbar_i = [y1 - A11^{-1} M1' x_i; x_i], M1 = L~' C Lambda_1; only row i's own entries
        are formed, by gathers from S^{-1} and S^{-1} M1, so the cost is O(n k^2) for k own entries.
        """
        T = F.T
        t1 = terms[0]
        qr = self.qr
        a = t1.z @ T[0]
        inv11 = F.a11_inverse()
        y1 = self.by_level(inv11, a)
        p = 0 if X is None else X.shape[1]
        m = qr + p
        if m == 0:
            return [y1]
        sinv = self.sinv_entries(F, m)
        lb = self.level_blocks() if qr else None
        if lb is not None:
            SMg, K, pos, bt, kr = self._own_pieces_by_level(lb, F, cp, terms, X, sinv)
        else:
            SMg, K, pos, bt, kr = self._own_pieces_dense(F, cp, terms, X, sinv.array)
        v = np.einsum("ikc,ik->ic", SMg, bt) - self.by_level(K, y1)
        own = [y1 - self.by_level(inv11, v)]
        if qr:
            pr = pos[:, :kr]
            if getattr(sinv, "lowrank", False):  # [Z 0; 0 0] + P H P': the low-rank part factored
                x_own = np.einsum("ick,ik->ic", sinv.zr(pr[:, :, None], pr[:, None, :]), bt[:, :kr])
                v = np.einsum("ikp,ik->ip", sinv.P[pr], bt[:, :kr]) - bt[:, kr:]  # P[pos_i]' bt_i
                x_own += np.einsum("icp,ip->ic", sinv.PH[pr], v)
            else:
                x_own = np.einsum("ick,ik->ic", sinv(pr[:, :, None], pos[:, None, :]), bt)
            x_own -= np.einsum("icd,id->ic", SMg[:, :kr, :], y1)
            c = 0
            for t in terms[1:]:
                own.append(x_own[:, c : c + t.q])
                c += t.q
        return own
