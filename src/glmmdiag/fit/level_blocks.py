"""The first term's coupling to the Schur rows, level by level (no dense qr x l1 q1 arrays).

With M1 = L~' C Lambda_1 (the Schur rows' coupling to the first term's coefficients, C = D'WZ_1
as in ``blocked``), the gradient needs, for every row i of level j = j(i) of the first term,

    SM[r, c] = (S^{-1} M1)[r, c]   at r in row i's own Schur rows, c in level j's columns, and
    K_j      = M1[:, c_j]' S^{-1} M1[:, c_j]   (q1 x q1 per level).

Column c_j of M1 is nonzero only at the rest random effects R_j that share a row with level j (and
at every dense row: X). So both come from small gathers of S^{-1}:

    SM[R_j, c_j] = S^{-1}[R_j, R_j] M1[R_j, c_j] + S^{-1}[R_j, X] M1[X, c_j],
    SM[X,   c_j] = S^{-1}[X, R_j]  M1[R_j, c_j] + S^{-1}[X, X]  M1[X, c_j],
    K_j = M1[R_j, c_j]' SM[R_j, c_j] + M1[X, c_j]' SM[X, c_j],

costing O(l1 (|R_j| + p)^2 q1) instead of the O(m^2 l1 q1) of forming S^{-1} M1 densely. R_j is
kept as whole level blocks (all q_k coefficients of a rest level), padded to the largest count,
so Lambda_rest applies block by block. S^{-1} entries come from a callable ``sinv(rows, cols)``
(a dense inverse, or the selected inverse of a sparse factor).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["LevelBlocks"]

GATHER_LIMIT = 40_000_000  # l1 * (padded |R_j|)^2 above which the level blocks are not used

SinvFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class LevelBlocks:
    """Static index structure of the rest random effects R_j met by each first-term level j.

    Parameters
    ----------
    pattern : RestPattern
        Fixed pattern of C_r = Z_r' W Z_1 (``c_rows``, ``c_cols``, ``rest_cols``).
    rest_q, rest_nlev : list of int
        Coefficients and levels of each rest term (term order).
    refs1 : ndarray (n,)
        Level of the first term for each row.
    q1, l1 : int
        Coefficients and levels of the first term.
    """

    def __init__(self, pattern, rest_q: list[int], rest_nlev: list[int], refs1: np.ndarray, q1: int, l1: int):
        self.q1, self.l1 = q1, l1
        self.rest_q = list(rest_q)
        self.qmax = qmax = max(rest_q)
        # rest coefficient -> (level block, position in block); level block -> term, first coefficient
        blk_term = np.concatenate([np.full(nl, k) for k, nl in enumerate(rest_nlev)])
        blk_q = np.asarray(rest_q)[blk_term]
        blk_start = np.concatenate([[0], np.cumsum(blk_q)[:-1]]).astype(np.intp)
        coef_blk = np.repeat(np.arange(len(blk_term)), blk_q)
        coef_pos = np.arange(len(coef_blk)) - blk_start[coef_blk]
        self.nb = nb = len(blk_term)
        # (level j, block) pairs that occur; slots numbered within each level
        c_lev = pattern.c_cols // q1
        key = c_lev.astype(np.int64) * nb + coef_blk[pattern.c_rows]
        ukey = np.unique(key)
        ulev, ublk = ukey // nb, ukey % nb
        counts = np.bincount(ulev, minlength=l1)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slot = np.arange(len(ukey)) - first[ulev]
        self.nbmax = nbmax = int(counts.max()) if len(ukey) else 0
        self.width = width = nbmax * qmax
        # padded Schur-row index of each (level, slot, coefficient); padding points at entry 0
        # (its rows of M1 are zero, see ``sm_and_k``)
        idx = np.zeros((l1, nbmax, qmax), dtype=np.intp)
        term = np.zeros((l1, nbmax), dtype=np.intp)
        for a in range(qmax):
            ok = a < blk_q[ublk]
            idx[ulev[ok], slot[ok], a] = blk_start[ublk[ok]] + a
        term[ulev, slot] = blk_term[ublk]
        self.idx = idx.reshape(l1, width)
        self.term = term
        self.occupied = np.zeros((l1, nbmax), dtype=bool)
        self.occupied[ulev, slot] = True
        # C_r's entries -> flat positions in an (l1, width, q1) array
        c_slot = slot[np.searchsorted(ukey, key)]
        self.c_flat = ((c_lev * nbmax + c_slot) * qmax + coef_pos[pattern.c_rows]) * q1 + pattern.c_cols % q1
        # each row's rest coefficients -> positions within its first level's padded R_j
        rc = pattern.rest_cols
        rkey = refs1[:, None].astype(np.int64) * nb + coef_blk[rc]
        self.row_pos = slot[np.searchsorted(ukey, rkey)] * qmax + coef_pos[rc]  # (n, kr)
        self.size = l1 * width * width

    @classmethod
    def build(cls, system) -> "LevelBlocks | None":
        """The structure for a ``BlockedSystem``, or None when the padded gathers would be too large."""
        lb = cls(system.pattern, system.rest_q, system.rest_nlev, system.refs1, system.q1, system.l1)
        return lb if lb.size <= GATHER_LIMIT else None

    # ------------------------------------------------------------------ values
    def m1_blocks(self, c_vals: np.ndarray, T1: np.ndarray, T_rest: list[np.ndarray]) -> np.ndarray:
        """M1[R_j, c_j] = (Lambda_r' C_r Lambda_1)[R_j, c_j] as an (l1, width, q1) array.

        C_r's values are scattered into the padded blocks, multiplied on the right by T1 (Lambda_1
        per level) and on the left by T_k' for each rest level block (Lambda_rest' row by row)."""
        l1, q1, nbmax, qmax = self.l1, self.q1, self.nbmax, self.qmax
        B = np.zeros(l1 * self.width * q1)
        B[self.c_flat] = c_vals  # one C_r entry per position: (row, column) -> (j, slot, a, b) is 1:1
        B = B.reshape(l1, nbmax, qmax, q1) @ T1  # C Lambda_1
        Tpad = np.zeros((len(T_rest), qmax, qmax))
        for k, T in enumerate(T_rest):
            Tpad[k, : T.shape[0], : T.shape[1]] = T
        # (Lambda_r' B)[block rows] = T_k' B_block
        B = np.swapaxes(Tpad[self.term], -1, -2) @ B
        B *= self.occupied[:, :, None, None]
        return B.reshape(l1, self.width, q1)

    def sm_and_k(self, M1b: np.ndarray, M1x: np.ndarray | None, sinv: SinvFn, qr: int):
        """Gathered pieces of S^{-1} M1 and the per-level K_j (module docstring).

        Parameters
        ----------
        M1b : (l1, width, q1) rest rows of M1 per level (``m1_blocks``).
        M1x : (p, l1 q1) dense rows of M1 (Cx Lambda_1), or None.
        sinv : callable giving S^{-1} entries at broadcast index arrays.
        qr : number of rest random effects (the dense rows follow them in S).

        Returns
        -------
        SMr : (l1, width, q1) S^{-1} M1 at (R_j, c_j);  SMx : (l1, p, q1) at (X, c_j) or None;
        K : (l1, q1, q1).
        """
        idx = self.idx
        if getattr(sinv, "lowrank", False):
            return self._sm_and_k_lowrank(M1b, M1x, sinv, qr)
        # padded slots point at entry 0: their rows of M1b are zero, and their rows of SMr are
        # never read, so the gathered values there need no masking
        Srr = sinv(idx[:, :, None], idx[:, None, :])  # (l1, w, w)
        SMr = Srr @ M1b
        K = np.swapaxes(M1b, 1, 2) @ SMr
        SMx = None
        if M1x is not None and M1x.shape[0]:
            p = M1x.shape[0]
            xi = qr + np.arange(p)
            Mx = np.moveaxis(M1x.reshape(p, self.l1, self.q1), 1, 0)  # (l1, p, q1)
            Srx = sinv(idx[:, :, None], xi[None, None, :])  # (l1, w, p)
            Sxx = sinv(xi[:, None], xi[None, :])  # (p, p)
            SMr += Srx @ Mx
            SMx = np.swapaxes(Srx, 1, 2) @ M1b + Sxx[None] @ Mx
            K += np.swapaxes(M1b, 1, 2) @ (Srx @ Mx) + np.swapaxes(Mx, 1, 2) @ SMx
        return SMr, SMx, K

    def _sm_and_k_lowrank(self, M1b, M1x, sinv, qr: int):
        """``sm_and_k`` for S^{-1} = [Z 0; 0 0] + P H P' with P = [B; -I] (``SparseEntries``):
        S^{-1} M1 = Z M1 + (P H)(P' M1), P' M1 at level j = B[R_j]' M1[R_j, c_j] - M1[X, c_j]."""
        idx = self.idx
        SMr = sinv.zr(idx[:, :, None], idx[:, None, :]) @ M1b  # padded slots: as in ``sm_and_k``
        p = M1x.shape[0] if M1x is not None else 0
        Mx = np.moveaxis(M1x.reshape(p, self.l1, self.q1), 1, 0) if p else np.zeros((self.l1, 0, self.q1))
        U = np.einsum("lwp,lwq->lpq", sinv.P[idx], M1b, optimize=True)  # P' M1 per level (l1, p, q1)
        if p:
            U[:, :p] -= Mx
        SMr += sinv.PH[idx] @ U
        SMx = sinv.PH[qr + np.arange(p)][None] @ U if p else None
        K = np.swapaxes(M1b, 1, 2) @ SMr
        if p:
            K += np.swapaxes(Mx, 1, 2) @ SMx
        return SMr, SMx, K
