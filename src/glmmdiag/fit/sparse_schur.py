"""Sparse factorisation of the Schur complement after the first term (large, sparse rest blocks).

``blocked.BlockedSystem`` eliminates the first term's diagonal level blocks and factorises the
Schur complement over the rest random effects r (qr of them) and the dense columns d (X, y):

    S = [ S_rr  S_rd ]      S_rr = L_r'(G_rr - C_r W1 C_r')L_r + I   (qr x qr, sparse),
        [ S_dr  S_dd ]      S_rd, S_dd dense (p' columns).

With many rest levels that rarely share a first-term level (teachers and schools after students),
S_rr is sparse and its dense Cholesky (O(qr^3)) dominates the fit. Here S_rr is factorised by
SuperLU (``scipy.sparse.linalg.splu``) with a symmetric fill-reducing ordering (multiple minimum
degree on S_rr's graph, diagonal pivots: P S_rr P' = L D L' with unit lower L), and the dense
columns by block elimination:

    B = S_rr^{-1} S_rd,   S_dd - S_rd' B = L_d L_d'   (p' x p', dense Cholesky).

L_d equals the trailing block of the dense Cholesky of S, so the criterion's pieces (r^2, log|R_X|,
R_X) are those of the dense path; log|S_rr| = sum log D.

Exact gradients need entries of S_m^{-1} (m = qr + p, the first p dense columns) at positions
where rows share random effects. With Z = S_rr^{-1} and H = (L_d[:p,:p] L_d[:p,:p]')^{-1},

    S_m^{-1} = [Z 0; 0 0] + P H P',   P = [B[:, :p]; -I_p],

and the entries of Z on the pattern of L + L' (which holds every pair of random effects that
share a row or a first-term level) come from the Takahashi recursion (Takahashi, Fagan and Chen
1973; Erisman and Tinney 1975) on the factor, last column first:

    Z[I, j] = -Z[I, I] l_j,   Z[j, j] = 1 / D_j - l_j' Z[I, j],   I = rows of column j of L below
    the diagonal, l_j = L[I, j],

so no dense inverse of S is ever formed (Z is stored densely but filled only on that pattern).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import splu

from glmmdiag.fit.dense import cho_solve_lower, cholesky_lower

__all__ = ["SparseEntries", "SparseSchur", "SparseRestPlan", "sparse_plan"]

MIN_QR = 1000  # below this many rest random effects the dense Schur complement is as fast
MAX_QR = 6000  # the selected inverse is stored as a dense qr x qr array
MAX_FILL = 0.15  # use the sparse factor when nnz(L) <= this fraction of qr (qr + 1) / 2
# Exact zeros on the pattern (a variance at zero, a slope column that is zero where two levels
# meet) leave SuperLU's factor with fewer stored entries than the symbolic one, and the selected
# inverse needs the whole symbolic pattern: the factor's values are put back on the symbolic
# pattern (zeros where SuperLU stored none; the factor is unique for the ordering). A factor in
# another order, or with entries off that pattern, is refused (``SparseSchur.fallback``): dense path.


class SparseRestPlan:
    """Fixed pattern of S_rr (the union of G_rr's and the Schur update's entries, closed over each
    rest term's level blocks so that Lambda_rest keeps it) with index maps for its values."""

    def __init__(self, pattern, rest_q: list[int], rest_nlev: list[int]):
        qr = pattern.qr
        pattern._build_pairs()
        if pattern._pairs is False:
            raise ValueError("too many Schur-update pairs for a fixed pattern")
        flat_s = pattern._pairs[2]
        keys = np.union1d(np.union1d(pattern.g_flat, flat_s), np.arange(qr) * (qr + 1))
        # close over level blocks: (r, c) present => every (r', c') of the same two blocks
        blk_q = np.concatenate([np.full(nl, q) for q, nl in zip(rest_q, rest_nlev)])
        blk_start = np.concatenate([[0], np.cumsum(blk_q)[:-1]])
        coef_blk = np.repeat(np.arange(len(blk_q)), blk_q)
        if np.any(blk_q > 1):
            r, c = keys // qr, keys % qr
            br, bc = coef_blk[r], coef_blk[c]
            ub = np.unique(br.astype(np.int64) * len(blk_q) + bc)
            br, bc = ub // len(blk_q), ub % len(blk_q)
            extra = []
            for a in range(int(blk_q.max())):
                for b in range(int(blk_q.max())):
                    ok = (a < blk_q[br]) & (b < blk_q[bc])
                    extra.append((blk_start[br[ok]] + a) * qr + blk_start[bc[ok]] + b)
            keys = np.unique(np.concatenate([keys] + extra))
        self.qr = qr
        self.keys = keys
        self.rows, self.cols = (keys // qr).astype(np.intp), (keys % qr).astype(np.intp)
        self.g_pos = np.searchsorted(keys, pattern.g_flat)
        self.s_pos = np.searchsorted(keys, flat_s)
        self.diag_pos = np.searchsorted(keys, np.arange(qr) * (qr + 1))
        self.coef_blk, self.blk_start = coef_blk, blk_start
        self.perm = None  # fill-reducing ordering: the original index at each position

    def csc(self, vals: np.ndarray):
        return sparse.csc_matrix((vals, (self.rows, self.cols)), shape=(self.qr, self.qr))

    def csc_permuted(self, vals: np.ndarray):
        """S_rr with rows and columns in the order ``perm`` (original index at each position)."""
        iperm = np.empty(self.qr, dtype=np.intp)
        iperm[self.perm] = np.arange(self.qr)
        return sparse.csc_matrix((vals, (iperm[self.rows], iperm[self.cols])), shape=(self.qr, self.qr))


def sparse_plan(system) -> SparseRestPlan | None:
    """A ``SparseRestPlan`` when the rest block is large and sparse enough, else None (dense path).

    The decision is made once per system from S_rr's pattern: the sparse path is used when the
    fill of its factor under the minimum-degree ordering, measured on a matrix with that pattern,
    is at most ``MAX_FILL`` of a dense triangle."""
    qr = system.qr
    if system.pattern is None or not MIN_QR <= qr <= MAX_QR:
        return None
    system.pattern._build_pairs()
    pairs = system.pattern._pairs
    if pairs is False or len(pairs[2]) > 2.0 * MAX_FILL * qr * (qr + 1) / 2:
        return None  # the Schur update alone fills more than the factor may hold
    try:
        plan = SparseRestPlan(system.pattern, system.rest_q, system.rest_nlev)
    except ValueError:
        return None
    # a diagonally dominant matrix with S_rr's pattern and generic (random, symmetric) values:
    # its factor has the pattern's symbolic fill (no exact cancellations)
    off = plan.rows != plan.cols
    sym = np.minimum(plan.rows, plan.cols).astype(np.int64) * qr + np.maximum(plan.rows, plan.cols)
    weight = 0.5 + 0.5 * ((sym * 2654435761) % 1000003) / 1000003.0  # a hash of the entry
    vals = np.where(off, -weight, 0.0)
    vals[plan.diag_pos] = np.bincount(plan.rows[off], weights=weight[off], minlength=qr) + 1.0
    lu = _splu(plan.csc(vals), "MMD_AT_PLUS_A")
    if lu is None or lu.L.nnz > MAX_FILL * qr * (qr + 1) / 2:
        return None
    # SuperLU puts original column i at position perm_c[i]: perm lists the original index at
    # each position of the factor
    plan.perm = np.argsort(lu.perm_c)
    # the symbolic structure of the factor in that order, for checking every numeric factor
    ref = _splu(plan.csc_permuted(vals), "NATURAL")
    if ref is None:
        return None
    Lref = ref.L.tocsc()
    Lref.sort_indices()
    plan.ref_perm_c, plan.ref_indptr, plan.ref_indices = np.asarray(ref.perm_c), Lref.indptr, Lref.indices
    plan.ref_keys = np.repeat(np.arange(qr, dtype=np.int64), np.diff(Lref.indptr)) * qr + Lref.indices
    return plan


def _splu(A, permc_spec: str):
    """SuperLU with diagonal pivots in symmetric mode (P A P' = L U, U = D L'), or None when
    the pivots left the diagonal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sparse.SparseEfficiencyWarning)
        lu = splu(A, permc_spec=permc_spec, diag_pivot_thresh=0.0,
                  options=dict(SymmetricMode=True))
    if not np.array_equal(lu.perm_r, lu.perm_c):
        return None
    return lu


class SparseSchur:
    """Factor of S = [S_rr S_rd; S_dr S_dd] with sparse S_rr (module docstring).

    Attributes
    ----------
    qr : number of rest random effects.
    Ld : (p', p') lower Cholesky of S_dd - S_rd' S_rr^{-1} S_rd (the dense path's trailing block).
    B : (qr, p') S_rr^{-1} S_rd.
    logdet_rr : log |S_rr|.
    ok : False when S is not positive definite.
    """

    def __init__(self, plan: SparseRestPlan, Srr_vals: np.ndarray, Srd: np.ndarray, Sdd: np.ndarray):
        self.qr = qr = plan.qr
        self.ok = False
        self.fallback = False  # True: the numeric factor lost part of the symbolic pattern
        perm = plan.perm
        iperm = np.empty(qr, dtype=np.intp)
        iperm[perm] = np.arange(qr)
        A = plan.csc_permuted(Srr_vals)
        try:
            lu = _splu(A, "NATURAL")
        except RuntimeError:  # exactly singular
            return
        if lu is None or not np.array_equal(lu.perm_c, plan.ref_perm_c):
            self.fallback = True
            return
        L = self._on_symbolic_pattern(lu.L, plan)
        if L is None:
            self.fallback = True
            return
        d = lu.U.diagonal()
        if not np.all(d > 0) or not np.all(np.isfinite(d)):
            return
        # SuperLU may postorder the natural ordering: compose the two permutations
        order = perm[np.argsort(lu.perm_c)]  # original index at each position of the factor
        self.pos = np.empty(qr, dtype=np.intp)
        self.pos[order] = np.arange(qr)
        self.lu, self.L, self.d = lu, L, d
        self.perm, self.iperm = perm, iperm
        self.logdet_rr = float(np.sum(np.log(d)))
        self.B = self.rr_solve(Srd) if Srd.shape[1] else np.zeros((qr, 0))
        if Sdd.shape[0]:
            Ld = cholesky_lower(Sdd - Srd.T @ self.B)
            if Ld is None:
                return
            self.Ld = Ld
        else:
            self.Ld = np.zeros((0, 0))
        self._Z = None
        self.ok = True

    @staticmethod
    def _on_symbolic_pattern(L, plan: SparseRestPlan):
        """SuperLU's L with its values on the plan's symbolic pattern (zeros where it stored
        none), or None when it has an entry off that pattern."""
        L = L.tocsc()
        qr = plan.qr
        keys = np.repeat(np.arange(qr, dtype=np.int64), np.diff(L.indptr)) * qr + L.indices
        at = np.searchsorted(plan.ref_keys, keys)
        if np.any(at >= len(plan.ref_keys)) or np.any(plan.ref_keys[np.minimum(at, len(plan.ref_keys) - 1)] != keys):
            return None
        data = np.zeros(len(plan.ref_keys))
        data[at] = L.data
        return sparse.csc_matrix((data, plan.ref_indices, plan.ref_indptr), shape=(qr, qr))

    # ------------------------------------------------------------------ solves
    def rr_solve(self, b: np.ndarray) -> np.ndarray:
        """S_rr^{-1} b (b of length qr, or qr x k); the factor is of S_rr's rows and columns taken in
        the order ``perm``."""
        return self.lu.solve(np.ascontiguousarray(np.asarray(b, dtype=float)[self.perm]))[self.iperm]

    def solve(self, h: np.ndarray) -> np.ndarray:
        """S^{-1} h for h over [rest random effects, dense columns] (block elimination)."""
        qr = self.qr
        hr, hd = h[:qr], h[qr:]
        zr = self.rr_solve(hr)
        if not hd.shape[0]:
            return zr
        xd = cho_solve_lower(self.Ld, hd - self.B.T @ hr)
        return np.concatenate([zr - self.B @ xd, xd])

    # ------------------------------------------------------------------ selected inverse
    def selected_inverse(self) -> np.ndarray:
        """Z = S_rr^{-1} (in the factor's order) on the pattern of L + L' (Takahashi recursion)."""
        if self._Z is not None:
            return self._Z
        L = self.L
        qr, d = self.qr, self.d
        Z = np.zeros((qr, qr))
        ip, ix, dv = L.indptr, L.indices, L.data
        Z[qr - 1, qr - 1] = 1.0 / d[qr - 1]
        for j in range(qr - 2, -1, -1):
            s, e = ip[j], ip[j + 1]
            if ix[s] == j:  # the unit diagonal (stored first once sorted)
                s += 1
            if s == e:
                Z[j, j] = 1.0 / d[j]
                continue
            I, lj = ix[s:e], dv[s:e]
            zI = Z[I[:, None], I] @ lj
            zI *= -1.0
            Z[I, j] = zI
            Z[j, I] = zI
            Z[j, j] = 1.0 / d[j] - lj @ zI
        self._Z = Z
        return Z

    def inverse_entries(self, p: int) -> "SparseEntries":
        """Entries of S_m^{-1}, m = qr + p (the first p dense columns), as ``SparseEntries``."""
        Z = self.selected_inverse()
        if p == 0:
            return SparseEntries(Z, self.pos, None, None)
        H = cho_solve_lower(self.Ld[:p, :p], np.eye(p))
        P = np.vstack([self.B[:, :p], -np.eye(p)])  # (m, p)
        return SparseEntries(Z, self.pos, P, P @ H)


class SparseEntries:
    """Entries of S_m^{-1} = [Z 0; 0 0] + P H P' (module docstring) at broadcast index arrays.

    ``z(a, b)`` gives the first part alone (zero where a or b is a dense column); ``P`` and ``PH``
    (m x p, None without dense columns) let callers apply the low-rank part in factored form.
    Only entries of Z on the pattern of L + L' are exact (rest pairs sharing a row or a first-term
    level)."""

    def __init__(self, Z: np.ndarray, pos: np.ndarray, P: np.ndarray | None, PH: np.ndarray | None):
        self.Z, self.pos, self.P, self.PH = Z, pos, P, PH
        self.qr = len(pos)
        self.lowrank = P is not None

    def zr(self, a, b):
        """Z's entries for indices of rest random effects only (a, b < qr)."""
        return self.Z[self.pos[a], self.pos[b]]

    def z(self, a, b):
        qr = self.qr
        a, b = np.asarray(a), np.asarray(b)
        if not self.lowrank:
            return self.Z[self.pos[a], self.pos[b]]
        ok = (a < qr) & (b < qr)
        pa, pb = self.pos[np.minimum(a, qr - 1)], self.pos[np.minimum(b, qr - 1)]
        return np.where(ok, self.Z[pa, pb], 0.0)

    def __call__(self, a, b):
        out = self.z(a, b)
        if not self.lowrank:
            return out
        a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
        return out + np.einsum("...k,...k->...", self.PH[a], self.P[b])
