"""p-value helpers: multiplicity adjustment (``p_adjust``) and the randomised Monte-Carlo rank p-value.

``p_adjust`` is the package's one implementation of p-value adjustment (the residual tests'
Holm/Benjamini-Hochberg combinations and ``glmmdiag.inference.pairwise``'s adjustments use it).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from glmmdiag.errors import GlmmdiagError

__all__ = ["p_adjust", "holm", "benjamini_hochberg", "randomised_rank_pvalue", "ADJUSTMENTS"]

#: the methods of ``p_adjust`` (R's p.adjust names; "tukey" for all pairwise comparisons of means)
ADJUSTMENTS = ("holm", "BH", "bonferroni", "tukey", "none")


def p_adjust(p, method: str, n_means: int | None = None, stat=None, df: float = np.inf) -> np.ndarray:
    """Adjusted p-values of one family of m tests (as R's ``p.adjust``; NaN p-values are not allowed).

    With the p-values sorted increasingly, p_(1) <= ... <= p_(m):

    * ``"holm"``: step-down Bonferroni, p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j));
    * ``"BH"`` (Benjamini-Hochberg; also "benjamini-hochberg"): step-up false discovery rate,
      p~_(i) = min_{j >= i} min(1, m p_(j) / j);
    * ``"bonferroni"``: min(1, m p);
    * ``"tukey"``: for the m = k(k - 1)/2 pairwise differences of ``n_means`` = k means with
      statistics ``stat`` (difference / SE), P(Q_{k,df} > sqrt(2) |stat|), Q the studentized range
      (Tukey-Kramer when the SEs differ; ``df`` = inf for asymptotic tests);
    * ``"none"``: the p-values unchanged.

    Returns an array in the order of ``p``.
    """
    p = np.asarray(p, float)
    m = p.size
    key = str(method).lower()
    if key == "none" or (m == 0 and key in ("holm", "bh", "benjamini-hochberg", "bonferroni", "tukey")):
        return p.copy()
    if key == "bonferroni":
        return np.minimum(1.0, m * p)
    if key == "holm":
        o = np.argsort(p, kind="stable")
        adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[o]))
        out = np.empty(m)
        out[o] = adj
        return out
    if key in ("bh", "benjamini-hochberg"):
        o = np.argsort(p, kind="stable")[::-1]
        adj = np.minimum.accumulate(p[o] * m / np.arange(m, 0, -1))
        out = np.empty(m)
        out[o] = np.minimum(adj, 1.0)
        return out
    if key == "tukey":
        if stat is None or n_means is None:
            raise GlmmdiagError("the Tukey adjustment needs the statistics and the number of means")
        if n_means < 2:
            return p.copy()
        q = np.sqrt(2.0) * np.abs(np.asarray(stat, float))
        return np.clip(stats.studentized_range.sf(q, n_means, df), 0.0, 1.0)
    raise GlmmdiagError(f"adjust must be one of {list(ADJUSTMENTS)}; got {method!r}")


def holm(p) -> np.ndarray:
    """Holm adjusted p-values: ``p_adjust(p, "holm")``."""
    return p_adjust(p, "holm")


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values: ``p_adjust(p, "BH")``."""
    return p_adjust(p, "BH")


def randomised_rank_pvalue(observed: float, bootstrap, how: str, u: float) -> tuple[float, int]:
    """The Monte-Carlo p-value of ``observed`` among the ``bootstrap`` values, with ties broken at random.

    ``how``: "p" (small values are evidence against H0, e.g. raw p-values), "upper" (large values
    are) or "two" (both tails). ``u`` is a Uniform(0, 1) draw. Returns (p-value, number of ties).

    With B bootstrap values T_1..T_B and the observed T_0, let A = #{b: T_b more extreme than T_0}
    and m = #{b: T_b = T_0}. The p-value is

        p = (A + u (m + 1)) / (B + 1)                              ("p", "upper")
        p = 2 min(p_lo, 1 - p_lo),  p_lo = (#{T_b < T_0} + u (m + 1)) / (B + 1)   ("two")

    (1 - p_lo = (#{T_b > T_0} + (1 - u)(m + 1)) / (B + 1) is the upper tail with the same draw).
    Under H0, T_0..T_B are exchangeable. Give each an independent Uniform(0, 1) tie-breaker V_b and
    order by (T, V): there are no ties left, so the rank R of T_0 counted from the extreme end is
    uniform on {1, ..., B + 1}, and given the T's, R - 1 - A (the tied values whose V_b beat V_0) is
    uniform on {0, ..., m}. floor(u (m + 1)) has that same law and the fractional part of u (m + 1)
    is an independent Uniform(0, 1), so p has the law of (R - 1 + W) / (B + 1) with W ~ U(0, 1)
    independent of R: p ~ Uniform(0, 1) exactly, P(p <= alpha) = alpha for every alpha and every B,
    however many ties the statistic has; p_lo is uniform too, hence so is the two-sided p. Without
    ties (m = 0) p lies in ((R - 1)/(B + 1), R/(B + 1)]. The usual (1 + #{T_b at least as extreme}) /
    (B + 1) (``_conservative_rank_pvalue``; for "p" and "upper" the case u = 1) is never smaller
    and is conservative when ties are likely, as for a discrete statistic (an outlier count, its
    p-value) or a p-value that is often exactly 1.
    """
    b = np.asarray(bootstrap, float)
    B = b.size
    if B == 0 or not math.isfinite(observed) or not np.all(np.isfinite(b)):
        raise GlmmdiagError("randomised_rank_pvalue needs a finite observed value and finite bootstrap values")
    if not 0.0 <= u <= 1.0:
        raise GlmmdiagError(f"u must lie in [0, 1]; got {u}")
    ties = int(np.sum(b == observed))
    if how == "p":
        more = int(np.sum(b < observed))
    elif how == "upper":
        more = int(np.sum(b > observed))
    elif how == "two":
        p_lo = (int(np.sum(b < observed)) + u * (ties + 1)) / (B + 1)
        return float(min(1.0, 2.0 * min(p_lo, 1.0 - p_lo))), ties
    else:
        raise GlmmdiagError(f"how must be 'p', 'upper' or 'two'; got {how!r}")
    return float((more + u * (ties + 1)) / (B + 1)), ties


def _conservative_rank_pvalue(observed: float, bootstrap, how: str) -> float:
    """(1 + #{T_b at least as extreme as T_0}) / (B + 1), ties counted against H0 (two-sided: twice the
    smaller tail, at most 1): the rule before ties were broken at random, kept for comparison."""
    b = np.asarray(bootstrap, float)
    lo, hi = 1 + int(np.sum(b <= observed)), 1 + int(np.sum(b >= observed))
    k = {"p": lo, "upper": hi}.get(how, None)
    return float(k / (b.size + 1)) if k is not None else float(min(1.0, 2 * min(lo, hi) / (b.size + 1)))


def adjust_tests(tests: dict, method: str = "holm", exclude=()) -> dict:
    """The tests of a verdict with their p-values adjusted for multiplicity (``p_adjust``).

    A verdict that flags a model when any of its k tests rejects at alpha has a type I error of up
    to 1 - (1 - alpha)^k (k = 5 exact tests: about 0.23 at alpha = 0.05). With Holm's adjustment
    over the tests with a finite p-value it is at most alpha, whatever their dependence. Tests
    named in ``exclude`` and tests with a NaN p-value (undefined for the data) are kept as they
    are. Returns a new dict; each adjusted ``TestResult`` keeps its raw p-value in ``estimate``
    ("unadjusted p-value") and says so in ``note``.
    """
    import dataclasses

    names = [k for k, t in tests.items() if t is not None and k not in exclude
             and t.p_value is not None and math.isfinite(float(t.p_value))]
    out = dict(tests)
    if len(names) < 2:
        return out
    adj = p_adjust([float(tests[k].p_value) for k in names], method)
    for k, p in zip(names, adj):
        t = tests[k]
        est = dict(t.estimate or {})
        est["unadjusted p-value"] = float(t.p_value)
        note = f"p-value {method}-adjusted over the {len(names)} tests of the verdict"
        out[k] = dataclasses.replace(t, p_value=float(p), estimate=est,
                                     note=((t.note + "\n") if t.note else "") + note)
    return out
