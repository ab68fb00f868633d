"""Fixed sparsity patterns of the random-effects cross-products, filled by ``np.bincount``.

Z_rest' W Z_1 and Z_rest' W Z_rest keep their sparsity pattern while the weights W change (every
PIRLS iteration of a GLMM). Each row i contributes w_i z_ia z_ib to a known set of entries, so
the values are one weighted ``bincount`` over a precomputed entry index: no sparse-matrix
construction in the inner loop. The Schur update C_r W1 C_r' (W1 block diagonal over the first
term's levels) is likewise a bincount over the pairs of C_r entries that share a level.
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

__all__ = ["RestPattern"]

PAIR_LIMIT = 3_000_000  # above this many entry pairs the Schur update uses scipy.sparse instead


class RestPattern:
    """Patterns of C_r = Z_r' W Z_1 (qr x L1) and G_rr = Z_r' W Z_r (qr x qr)."""

    def __init__(self, rest_cols, rest_vals, t1_cols, t1_vals, qr: int, L1: int, q1: int):
        n, kr = rest_cols.shape
        self.n, self.qr, self.L1, self.q1 = n, qr, L1, q1
        self.rest_cols, self.rest_vals = rest_cols, rest_vals
        self.t1_vals = t1_vals
        key = (rest_cols[:, :, None].astype(np.int64) * L1 + t1_cols[:, None, :]).ravel()
        uniq, self.c_inv = np.unique(key, return_inverse=True)
        self.c_rows, self.c_cols = (uniq // L1).astype(np.intp), (uniq % L1).astype(np.intp)
        self.c_nnz = len(uniq)
        self.c_zz = (rest_vals[:, :, None] * t1_vals[:, None, :]).reshape(n, -1)
        key2 = (rest_cols[:, :, None].astype(np.int64) * qr + rest_cols[:, None, :]).ravel()
        self.g_flat, self.g_inv = np.unique(key2, return_inverse=True)
        self.g_zz = (rest_vals[:, :, None] * rest_vals[:, None, :]).reshape(n, -1)
        self._pairs = None
        self._csr = None

    # -- values ----------------------------------------------------------------------
    def c_values(self, w):
        return np.bincount(self.c_inv, (w[:, None] * self.c_zz).ravel(), minlength=self.c_nnz)

    def g_dense(self, w):
        G = np.zeros(self.qr * self.qr)
        G[self.g_flat] = np.bincount(self.g_inv, (w[:, None] * self.g_zz).ravel(), minlength=len(self.g_flat))
        return G.reshape(self.qr, self.qr)

    def c_dense(self, vals):
        C = np.zeros(self.qr * self.L1)
        C[self.c_rows * self.L1 + self.c_cols] = vals
        return C.reshape(self.qr, self.L1)

    def rest_times_dense(self, w, D):
        """Z_r' W D for dense D (n x p): (qr x p)."""
        flat = self.rest_cols.ravel()
        wz = (w[:, None] * self.rest_vals).ravel()
        return np.column_stack(
            [np.bincount(flat, wz * np.repeat(D[:, j], self.rest_cols.shape[1]), minlength=self.qr)
             for j in range(D.shape[1])]
        ) if D.shape[1] else np.zeros((self.qr, 0))

    # -- products with C_r (values given) --------------------------------------------------
    def matvec(self, vals, x):
        """C_r x for x of length L1 (or L1 x k)."""
        if x.ndim == 1:
            return np.bincount(self.c_rows, vals * x[self.c_cols], minlength=self.qr)
        return np.column_stack([self.matvec(vals, x[:, j]) for j in range(x.shape[1])])

    def rmatvec(self, vals, v):
        """C_r' v for v of length qr."""
        return np.bincount(self.c_cols, vals * v[self.c_rows], minlength=self.L1)

    def right_dense(self, vals, A):
        """A C_r' for dense A (k x L1): (k x qr)."""
        return np.stack([np.bincount(self.c_rows, vals * A[j, self.c_cols], minlength=self.qr)
                         for j in range(A.shape[0])]) if A.shape[0] else np.zeros((0, self.qr))

    def csr(self, vals):
        return sparse.csr_matrix((vals, (self.c_rows, self.c_cols)), shape=(self.qr, self.L1))

    # -- the Schur update C_r W1 C_r' --------------------------------------------------
    def _build_pairs(self):
        lev = self.c_cols // self.q1
        order = np.argsort(lev, kind="stable")
        lev_s = lev[order]
        counts = np.bincount(lev_s, minlength=self.L1 // self.q1)
        reps = counts[lev_s]
        P = int(reps.sum())
        if P > PAIR_LIMIT:
            self._pairs = False
            return
        pos_a = np.repeat(np.arange(len(order)), reps)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        within = np.arange(P) - np.repeat(np.cumsum(reps) - reps, reps)
        pos_b = first[lev_s][pos_a] + within
        pa, pb = order[pos_a], order[pos_b]
        target = self.c_rows[pa] * self.qr + self.c_rows[pb]
        flat, inv = np.unique(target, return_inverse=True)
        q1 = self.q1
        widx = lev[pa] * q1 * q1 + (self.c_cols[pa] % q1) * q1 + (self.c_cols[pb] % q1)
        self._pairs = (pa, pb, flat, inv, widx)

    def schur_update(self, vals, W1):
        """C_r W1 C_r' as a dense (qr x qr) array; W1 is (l1,) or (l1, q1, q1)."""
        if self._pairs is None:
            self._build_pairs()
        if self._pairs is False:
            C = self.csr(vals)
            Wm = sparse.diags(W1) if W1.ndim == 1 else sparse.block_diag(list(W1), format="csr")
            return (C @ Wm @ C.T).toarray()
        pa, pb, flat, inv, widx = self._pairs
        M = np.zeros(self.qr * self.qr)
        M[flat] = np.bincount(inv, vals[pa] * vals[pb] * W1.ravel()[widx], minlength=len(flat))
        return M.reshape(self.qr, self.qr)
