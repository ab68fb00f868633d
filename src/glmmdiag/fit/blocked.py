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

from glmmdiag.fit.patterns import RestPattern

__all__ = ["BlockedSystem", "CrossProducts", "Factor"]

_DENSE_LIMIT = 400_000  # entries of C_rest above which it stays sparse


@dataclass
class SparseRest:
    """Values of C_r = Z_r' W Z_1 on the system's fixed pattern."""

    vals: np.ndarray

    def vals_dense(self, pattern):
        return pattern.c_dense(self.vals)


@dataclass
class CrossProducts:
    D1: np.ndarray  # (l1, q1, q1)
    Cr: object  # (qr, l1*q1) dense array or sparse matrix, or None
    Cx: np.ndarray | None  # (p', l1*q1)
    G: np.ndarray  # (m, m) with m = qr + p'


@dataclass
class Factor:
    theta: np.ndarray
    T: list
    a11: np.ndarray  # q1 == 1: (l1,) diagonal of A11; else (l1, q1, q1)
    W1: np.ndarray  # Lambda1 A11^{-1} Lambda1' per level: (l1,) or (l1, q1, q1)
    L22: np.ndarray  # Cholesky of the Schur complement (m x m), lower
    logdet11: float
    ok: bool


class BlockedSystem:
    """Static structure of Z (first term + the rest) for repeated factorisations."""

    def __init__(self, terms, n: int):
        t1 = terms[0]
        self.n = n
        self.q1, self.l1 = t1.q, t1.nlev
        self.refs1, self.z1 = t1.refs, t1.z
        q1 = self.q1
        rows = (t1.refs[:, None] * q1 + np.arange(q1)).ravel()
        cols = np.repeat(np.arange(n), q1)
        self.Z1T = sparse.csr_matrix((t1.z.ravel(), (rows, cols)), shape=(self.l1 * q1, n))
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
            self.Zr = sparse.csr_matrix(
                (rest_vals.ravel(), (np.repeat(np.arange(n), len(r_cols)), rest_cols.ravel())), shape=(n, self.qr)
            )
            t1_cols = t1.refs[:, None] * q1 + np.arange(q1)[None, :]
            self.pattern = RestPattern(rest_cols, rest_vals, t1_cols, t1.z, self.qr, self.l1 * q1, q1)
            size = self.qr * self.l1 * q1
            self.rest_dense = size <= 4096 or (size <= _DENSE_LIMIT and self.pattern.c_nnz > 0.25 * size)
        else:
            self.Zr = None
            self.rest_dense = True
        self._pairs = [(a, b) for a in range(q1) for b in range(a, q1)]

    # ------------------------------------------------------------------ cross-products
    def crossprods(self, w: np.ndarray, D: np.ndarray | None) -> CrossProducts:
        l1, q1 = self.l1, self.q1
        D1 = np.empty((l1, q1, q1))
        z1 = self.z1
        for a, b in self._pairs:
            v = np.bincount(self.refs1, w * z1[:, a] * z1[:, b], minlength=l1)
            D1[:, a, b] = v
            D1[:, b, a] = v
        Cx = Gxx = None
        if D is not None and D.shape[1]:
            WD = D * w[:, None]
            Cx = np.asarray((self.Z1T @ WD).T)
            Gxx = D.T @ WD
        if self.pattern is None:
            return CrossProducts(D1, None, Cx, Gxx if Cx is not None else np.zeros((0, 0)))
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
        """Lambda_rest as (scale vector) when all rest terms are scalar, else a dense matrix."""
        if self.rest_scalar:
            return np.concatenate([np.full(nl, T[0, 0]) for T, nl in zip(Ts_rest, self.rest_nlev)])
        blocks = [sparse.kron(sparse.identity(nl), T) for T, nl in zip(Ts_rest, self.rest_nlev)]
        return sparse.block_diag(blocks, format="csr")

    def a11_solve(self, F: Factor, v):
        if self.q1 == 1:
            return v / F.a11
        sol = np.linalg.solve(F.a11, v.reshape(self.l1, self.q1)[..., None])
        return sol.reshape(v.shape)

    # ------------------------------------------------------------------ factorisation
    def factor(self, cp: CrossProducts, theta, thetamap) -> Factor:
        T = thetamap.factors(theta)
        T1 = T[0]
        l1, q1, qr = self.l1, self.q1, self.qr
        if q1 == 1:
            t2 = T1[0, 0] ** 2
            a11 = t2 * cp.D1[:, 0, 0] + 1.0
            logdet11 = float(np.sum(np.log(a11)))
            W1 = t2 / a11
        else:
            a11 = np.swapaxes(T1, 0, 1)[None] @ cp.D1 @ T1[None] + np.eye(q1)[None]
            try:
                L11 = np.linalg.cholesky(a11)
            except np.linalg.LinAlgError:
                return Factor(theta, T, a11, None, None, np.inf, False)
            logdet11 = float(2.0 * np.sum(np.log(np.diagonal(L11, axis1=1, axis2=2))))
            W1 = T1[None] @ np.linalg.inv(a11) @ T1.T[None]
        m = cp.G.shape[0]
        if m == 0:
            return Factor(theta, T, a11, W1, np.zeros((0, 0)), logdet11, True)
        S = cp.G.copy()
        # subtract C W1 C'
        sparse_r = isinstance(cp.Cr, SparseRest)
        if cp.Cr is not None and cp.Cx is not None and not sparse_r:
            C = np.vstack([cp.Cr, cp.Cx])
            S -= self._right_w1(C, W1) @ C.T
        else:
            if cp.Cr is not None:
                if sparse_r:
                    S[:qr, :qr] -= self.pattern.schur_update(cp.Cr.vals, W1)
                else:
                    S[:qr, :qr] -= self._right_w1(cp.Cr, W1) @ cp.Cr.T
            if cp.Cx is not None:
                CxW = self._right_w1(cp.Cx, W1)
                S[qr:, qr:] -= CxW @ cp.Cx.T
                if cp.Cr is not None:
                    blk = self.pattern.right_dense(cp.Cr.vals, CxW)
                    S[qr:, :qr] -= blk
                    S[:qr, qr:] -= blk.T
        if qr:
            lr = self.lam_rest_vec(T[1:])
            if self.rest_scalar:
                S[:qr, :] *= lr[:, None]
                S[:, :qr] *= lr[None, :]
            else:
                S[:qr, :] = np.asarray(lr.T @ S[:qr, :])
                S[:, :qr] = np.asarray((lr.T @ S[:, :qr].T).T)
            S[np.arange(qr), np.arange(qr)] += 1.0
        try:
            L22 = linalg.cholesky(S, lower=True, check_finite=False)
        except linalg.LinAlgError:
            return Factor(theta, T, a11, W1, None, logdet11, False)
        return Factor(theta, T, a11, W1, L22, logdet11, True)

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
        lr = self.lam_rest_vec(F.T[1:])
        if self.rest_scalar:
            out[:qr] = lr * x[:qr]
        else:
            out[:qr] = (lr.T @ x[:qr]) if transpose else (lr @ x[:qr])
        return out

    def solve(self, cp: CrossProducts, F: Factor, g1, grest):
        """Solve A [x1; xr] = [g1; grest]; A as in the module docstring (without y)."""
        T1 = F.T[0]
        y1 = self.a11_solve(F, g1)
        if F.L22.shape[0] == 0:
            return y1, np.zeros(0)
        # A_r1 y1 = L~' C L1 y1
        h = grest - self.lam_tilde(F, self.c_times(cp, self.lam1(T1, y1)), transpose=True)
        xr = linalg.cho_solve((F.L22, True), h, check_finite=False)
        x1 = y1 - self.a11_solve(F, self.lam1t(T1, self.c_transpose_times(cp, self.lam_tilde(F, xr))))
        return x1, xr

    def cond_var(self, F: Factor, cp: CrossProducts, terms) -> list[np.ndarray]:
        """Per term, the (l_k, q_k, q_k) diagonal blocks of Lambda H^{-1} Lambda' (cp without X)."""
        sysm = self
        out = []
        T = F.T
        # exact blocks of H^{-1} by solving with unit vectors for the (usually small) rest part;
        # for the first term use A11^{-1} + correction from the Schur complement
        q1, l1, qr = sysm.q1, sysm.l1, sysm.qr
        if q1 == 1:
            inv11 = (1.0 / F.a11)[:, None, None]
        else:
            inv11 = np.linalg.inv(F.a11)
        if qr == 0:
            blocks1 = inv11
            rest_inv = None
        else:
            Sinv = linalg.cho_solve((F.L22, True), np.eye(F.L22.shape[0]))
            rest_inv = Sinv[:qr, :qr]
            # correction for term 1: (A11^{-1} A1r) S^{-1} (Ar1 A11^{-1}), only its diagonal blocks
            M = np.zeros((qr, l1 * q1))
            for j in range(qr):
                e = np.zeros(qr)
                e[j] = 1.0
                x = sysm.lam1t(T[0], sysm.c_transpose_times(cp, sysm.lam_tilde(F, e)))
                M[j] = sysm.a11_solve(F, x)
            SM = linalg.cho_solve((F.L22, True), M)
            corr = np.einsum("ja,ja->a", M, SM) if q1 == 1 else None
            if q1 == 1:
                blocks1 = inv11 + corr[:, None, None]
            else:
                M3 = M.reshape(qr, l1, q1)
                SM3 = SM.reshape(qr, l1, q1)
                blocks1 = inv11 + np.einsum("jla,jlb->lab", M3, SM3)
        out.append(T[0][None] @ blocks1 @ T[0].T[None])
        off = 0
        for k, t in enumerate(terms[1:], start=1):
            nb = t.nlev * t.q
            R = rest_inv[off : off + nb, off : off + nb]
            blk = np.stack([R[i * t.q : (i + 1) * t.q, i * t.q : (i + 1) * t.q] for i in range(t.nlev)])
            out.append(T[k][None] @ blk @ T[k].T[None])
            off += nb
        return out
