"""Relative covariance factors: theta <-> T_k (lower triangular, q_k x q_k) per term.

As lme4 for unstructured terms: theta holds each term's lower triangle column by column; diagonal
elements have lower bound 0 (boundary = singular fit), off-diagonals are unbounded. Structured
terms (``ar1``, ``cs``, ``exp``, ...) hold their own parameters (:mod:`glmmdiag.fit.covstruct`). b_k = (I_l (x) T_k) u_k and the
random-effect covariance of term k is sigma^2 T_k T_k' (sigma = 1 without a scale parameter).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from glmmdiag.fit.covstruct import Structure, Unstructured, make_structure

__all__ = ["ThetaMap", "varcorr_table"]


class ThetaMap:
    """The random-effects parameter vector theta: each term's structure parameters in turn.

    ``ThetaMap(qs)`` is lme4's layout (every term unstructured); ``ThetaMap.for_terms(terms)``
    reads each term's ``structure`` (``us``, ``diag``, ``cs``, ``ar1``, ``ou``, ``exp``, ...; see
    :mod:`glmmdiag.fit.covstruct`)."""

    def __init__(self, qs: list[int], structures: list[Structure] | None = None):
        self.structs = list(structures) if structures is not None else [Unstructured(q) for q in qs]
        self.qs = [s.q for s in self.structs]
        self.sizes = [s.n_par for s in self.structs]
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.n = int(self.starts[-1])
        # lme4's lower-triangle order of the unstructured terms (None for structured ones)
        self._order = [s.order if isinstance(s, Unstructured) else None for s in self.structs]

    @classmethod
    def for_terms(cls, terms) -> "ThetaMap":
        structs = [make_structure(getattr(t, "structure", "us"), t.q, getattr(t, "coords", None)) for t in terms]
        return cls([t.q for t in terms], structs)

    @property
    def any_structured(self) -> bool:
        return any(o is None for o in self._order)

    def structured(self, k: int) -> bool:
        return self._order[k] is None

    def segment(self, theta, k: int) -> np.ndarray:
        return np.asarray(theta)[self.starts[k] : self.starts[k + 1]]

    def lower_bounds(self) -> np.ndarray:
        return np.concatenate([s.lower() for s in self.structs] or [np.zeros(0)])

    def initial(self) -> np.ndarray:
        return np.concatenate([s.initial() for s in self.structs] or [np.zeros(0)])

    def factors(self, theta) -> list[np.ndarray]:
        return [s.factor(self.segment(theta, k)) for k, s in enumerate(self.structs)]

    def diag_mask(self) -> np.ndarray:
        """Parameters that are standard deviations (lower bound 0; at 0 the fit is singular)."""
        return np.concatenate([s.sd_mask() for s in self.structs] or [np.zeros(0, bool)])

    def pullback(self, k: int, theta, G) -> np.ndarray:
        """Term k's part of the gradient from G = dF/dT_k (q_k x q_k)."""
        return self.structs[k].pullback(self.segment(theta, k), G)

    def describe(self, theta) -> list[dict]:
        return [s.describe(self.segment(theta, k)) for k, s in enumerate(self.structs)]

    def names(self, term_names: list[str], cnames: list[list[str]]) -> list[str]:
        out = []
        for k, s in enumerate(self.structs):
            out.extend(s.names(term_names[k], cnames[k]))
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
