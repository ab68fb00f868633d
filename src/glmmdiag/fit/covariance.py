"""Relative covariance factors: theta <-> T_k (lower triangular, q_k x q_k) per term.

As lme4: theta holds each term's lower triangle column by column; diagonal elements have lower
bound 0 (boundary = singular fit), off-diagonals are unbounded. b_k = (I_l (x) T_k) u_k and the
random-effect covariance of term k is sigma^2 T_k T_k' (sigma = 1 without a scale parameter).
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd

__all__ = ["ThetaMap", "varcorr_table"]


@functools.lru_cache(maxsize=64)
def _lower_triangle_colmajor(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a q x q lower triangle in column-major order (lme4's theta)."""
    r, c = np.tril_indices(q)
    o = np.lexsort((r, c))
    return r[o], c[o]


class ThetaMap:
    def __init__(self, qs: list[int]):
        self.qs = list(qs)
        self.sizes = [q * (q + 1) // 2 for q in qs]
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.n = int(self.starts[-1])
        self._order = [_lower_triangle_colmajor(q) for q in qs]

    def lower_bounds(self) -> np.ndarray:
        lb = np.full(self.n, -np.inf)
        for k, (r, c) in enumerate(self._order):
            lb[self.starts[k] : self.starts[k + 1]][r == c] = 0.0
        return lb

    def initial(self) -> np.ndarray:
        th = np.zeros(self.n)
        for k, (r, c) in enumerate(self._order):
            th[self.starts[k] : self.starts[k + 1]][r == c] = 1.0
        return th

    def factors(self, theta) -> list[np.ndarray]:
        out = []
        for k, (r, c) in enumerate(self._order):
            T = np.zeros((self.qs[k], self.qs[k]))
            T[r, c] = theta[self.starts[k] : self.starts[k + 1]]
            out.append(T)
        return out

    def diag_mask(self) -> np.ndarray:
        m = np.zeros(self.n, bool)
        for k, (r, c) in enumerate(self._order):
            m[self.starts[k] : self.starts[k + 1]] = r == c
        return m

    def names(self, term_names: list[str], cnames: list[list[str]]) -> list[str]:
        out = []
        for k, (r, c) in enumerate(self._order):
            for i, j in zip(r, c):
                out.append(
                    f"{term_names[k]}.{cnames[k][i]}" if i == j else f"{term_names[k]}.{cnames[k][i]}.{cnames[k][j]}"
                )
        return out


def varcorr_table(terms, factors, sigma: float | None) -> pd.DataFrame:
    """lme4's as.data.frame(VarCorr(m)): grp, var1, var2, vcov, sdcor."""
    scale = 1.0 if sigma is None else sigma
    rows = []
    for term, T in zip(terms, factors):
        S = scale**2 * (T @ T.T)
        sd = np.sqrt(np.diag(S))
        for i, nm in enumerate(term.cnames):
            rows.append((term.group, nm, None, S[i, i], sd[i]))
        for i in range(len(term.cnames)):
            for j in range(i + 1, len(term.cnames)):
                corr = S[i, j] / (sd[i] * sd[j]) if sd[i] > 0 and sd[j] > 0 else np.nan
                rows.append((term.group, term.cnames[i], term.cnames[j], S[i, j], corr))
    if sigma is not None:
        rows.append(("Residual", None, None, sigma**2, sigma))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
