"""Pairwise comparisons of marginal means, multiplicity adjustments, compact letter displays.

Every pair (i, j) of means gives the link-scale difference d = eta_i - eta_j with
SE = sqrt(c'Vc), c = l_i - l_j (V the covariance of the fixed effects), and the statistic d / SE,
referred to the normal distribution (asymptotic) or to t with the means' df. On the response
scale a difference of logits is reported as an odds ratio exp(d) and a difference of logs as a
ratio exp(d), with SE exp(d) SE(d) (delta method); the tests are the link-scale ones. Other links
keep the link-scale differences (as emmeans does), with a note.

Adjustments for the family of m = k(k-1)/2 comparisons among k means:

* ``tukey``: P(Q_k,df > sqrt(2) |d| / SE) with Q the studentized range of k means
  (Tukey-Kramer when the SEs differ), ``scipy.stats.studentized_range``;
* ``holm``: step-down Bonferroni, p_(i) -> max_{j <= i} min(1, (m - j + 1) p_(j));
* ``bonferroni``: min(1, m p); ``none``: the unadjusted p-values.

The compact letter display (Piepho 2004, "An algorithm for a letter-based representation of
all-pairwise comparisons", JCGS 13:456-466): means that share a letter are not significantly
different at ``alpha``. Means are sorted by estimate (ascending unless ``decreasing``), letters
are built by insert-and-absorb over the significant pairs, redundant letters are swept out, and
the letters are named in the order of their first mean, so the first mean in the sort order gets
"a" -- the layout of ``multcomp::cld``.
"""
from __future__ import annotations

import itertools
import string
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from glmmdiag.checks.pvalues import p_adjust
from glmmdiag.errors import ColumnError, GlmmdiagError

__all__ = ["pairwise", "PairwiseComparisons", "p_adjust", "cld"]

ADJUSTMENTS = ("tukey", "holm", "bonferroni", "none")  # of pairwise(); the one p_adjust is glmmdiag.checks.pvalues


# ---------------------------------------------------------------------------- letters
def _letter_names(n: int, alphabet: str) -> list[str]:
    if n <= len(alphabet):
        return list(alphabet[:n])
    names = list(alphabet)
    k = 2
    while len(names) < n:  # then aa, ab, ... (never reached with <= 52 groups)
        names += ["".join(t) for t in itertools.product(alphabet, repeat=k)]
        k += 1
    return names[:n]


def cld(labels, significant, estimates=None, decreasing: bool = False,
        letters: str = string.ascii_lowercase + string.ascii_uppercase) -> pd.Series:
    """Compact letter display from the significant pairs (Piepho 2004).

    Parameters
    ----------
    labels : sequence of str
        The means' names.
    significant : (k, k) bool array, or iterable of (label_a, label_b) pairs
        Which pairs differ significantly.
    estimates : sequence of float, optional
        The means; the display is sorted by them (ascending, or descending if ``decreasing``);
        without them the given order is kept.
    letters : str
        The alphabet, used in order of the first mean carrying each letter.

    Returns
    -------
    Series of letter strings (e.g. "a", "ab", "bc") indexed by label, in display order.
    """
    labels = [str(x) for x in labels]
    k = len(labels)
    if len(set(labels)) != k:
        raise GlmmdiagError("cld labels must be distinct")
    pos = {lb: i for i, lb in enumerate(labels)}
    S = np.zeros((k, k), bool)
    if isinstance(significant, np.ndarray) and significant.shape == (k, k):
        S = np.asarray(significant, bool) | np.asarray(significant, bool).T
    else:
        for a, b in significant:
            if str(a) not in pos or str(b) not in pos:
                raise ColumnError(f"significant pair ({a!r}, {b!r}) names a mean not in labels")
            S[pos[str(a)], pos[str(b)]] = S[pos[str(b)], pos[str(a)]] = True
    np.fill_diagonal(S, False)
    if estimates is not None:
        est = np.asarray(estimates, float)
        order = np.argsort(-est if decreasing else est, kind="stable")
    else:
        order = np.arange(k)
    rank = np.empty(k, int)
    rank[order] = np.arange(k)

    # insert and absorb, with the means numbered in display order
    cols: list[set] = [set(range(k))] if k else []
    Sr = S[np.ix_(order, order)]
    for i in range(k):
        for j in range(i + 1, k):
            if not Sr[i, j]:
                continue
            new = []
            for c in cols:
                if i in c and j in c:
                    new.append(c - {i})
                    new.append(c - {j})
                else:
                    new.append(c)
            cols = _absorb(new)
    # sweep: drop a mean from a letter if every mean it shares that letter with also shares another
    for ci in range(len(cols)):
        for t in sorted(cols[ci]):
            others = cols[ci] - {t}
            if all(any(t in c and s in c for cj, c in enumerate(cols) if cj != ci) for s in others):
                if others or any(t in c for cj, c in enumerate(cols) if cj != ci):
                    cols[ci] = cols[ci] - {t}
    cols = _absorb([c for c in cols if c])
    cols.sort(key=lambda c: sorted(c))
    names = _letter_names(len(cols), letters)
    out = ["".join(names[ci] for ci, c in enumerate(cols) if r in c) for r in range(k)]
    idx = [labels[i] for i in order]
    return pd.Series(out, index=pd.Index(idx), name=".group")


def _absorb(cols: list[set]) -> list[set]:
    """Remove duplicate columns and columns contained in another column."""
    uniq = []
    for c in cols:
        if not any(c == u for u in uniq):
            uniq.append(c)
    return [c for c in uniq if not any(c < o for o in uniq)]


# ---------------------------------------------------------------------------- pairwise
@dataclass
class PairwiseComparisons:
    """``contrasts``: one row per pair (emmeans' ``pairs()`` table); ``letters``: the means table
    sorted by estimate with the compact letter display in column ``.group``."""

    contrasts: pd.DataFrame
    letters: pd.DataFrame
    adjust: str
    alpha: float
    notes: list = field(default_factory=list)

    def __repr__(self):
        return (self.contrasts.to_string(index=False) + "\n\n" + "\n".join(self.notes) + "\n\n"
                + self.letters.to_string(index=False))


def pairwise(means, adjust: str = "tukey", alpha: float = 0.05, type: str | None = None,
             reverse: bool = False, decreasing: bool = False) -> PairwiseComparisons:
    """All pairwise comparisons of marginal means, as ``pairs(emmeans(...), adjust=...)``, and the
    compact letter display, as ``multcomp::cld``.

    Parameters
    ----------
    means : MarginalMeans
        From ``marginal_means``; its df (z or t) carry over.
    adjust : "tukey", "holm", "bonferroni" or "none"
    alpha : float
        Significance level for the letters (on the adjusted p-values).
    type : "link" or "response", optional
        Scale of the reported contrasts; the means' scale by default. On the response scale,
        logit links give odds ratios (``odds.ratio``) and log links ratios (``ratio``).
    reverse : bool
        ``j - i`` instead of emmeans' ``i - j`` (the earlier level first).
    decreasing : bool
        Sort the letter display by decreasing estimate.

    Examples
    --------
    ``pairs(emmeans(m, ~ period), adjust = "tukey")``:

    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> cbpp = datasets.load("cbpp")
    >>> fit = glmmdiag.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
    ...                     family="binomial")
    >>> pairs = glmmdiag.pairwise(glmmdiag.marginal_means(fit, "period"), adjust="tukey")
    >>> print(pairs.contrasts[["contrast", "estimate", "p.value"]].round(3).to_string(index=False))
    contrast  estimate  p.value
       1 - 2     0.992    0.007
       1 - 3     1.129    0.003
       1 - 4     1.580    0.001
       2 - 3     0.136    0.984
       2 - 4     0.588    0.595
       3 - 4     0.452    0.787
    >>> print(pairs.letters[["period", ".group"]].to_string(index=False))
    period .group
         4      a
         3      a
         2      a
         1      b
    """
    from glmmdiag.inference.emmeans import MarginalMeans

    if not isinstance(means, MarginalMeans):
        raise TypeError(f"pairwise() takes the result of marginal_means(); got {type_name(means)}")
    adjust = str(adjust).lower()
    if adjust not in ADJUSTMENTS:
        raise GlmmdiagError(f"adjust must be one of {list(ADJUSTMENTS)}; got {adjust!r}")
    if not 0 < alpha < 1:
        raise GlmmdiagError(f"alpha must be in (0, 1); got {alpha}")
    scale = means.type if type is None else type
    if scale not in ("link", "response"):
        raise GlmmdiagError(f"type must be 'link' or 'response'; got {scale!r}")
    ok = np.isfinite(means.eta)
    keep = np.flatnonzero(ok)
    k = keep.size
    if k < 2:
        raise GlmmdiagError("pairwise comparisons need at least two (estimable) means")
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    if reverse:
        pairs = [(j, i) for i, j in pairs]
    eta, V, df = means.eta[keep], means.vcov_eta[np.ix_(keep, keep)], means.df
    C = np.zeros((len(pairs), k))
    for r, (i, j) in enumerate(pairs):
        C[r, i], C[r, j] = 1.0, -1.0
    d = C @ eta
    se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", C, V, C), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        # no statistic (NaN, never p = 0) from a zero or missing standard error
        tstat = np.where(np.isfinite(se) & (se > 0), d / se, np.nan)
    raw = 2 * (stats.norm.sf(np.abs(tstat)) if np.isinf(df) else stats.t.sf(np.abs(tstat), df))
    p = p_adjust(raw, adjust, n_means=k, stat=tstat, df=df)

    link = means.link.name
    notes = []
    if k < len(means.labels):
        dropped = [means.labels[i] for i in np.flatnonzero(~ok)]
        notes.append(f"not estimable, left out of the comparisons: {', '.join(dropped)}")
    ratio = scale == "response" and link in ("logit", "log")
    sep = " / " if ratio else " - "
    labels = [means.labels[i] for i in keep]
    out = pd.DataFrame({"contrast": [f"{labels[i]}{sep}{labels[j]}" for i, j in pairs]})
    if ratio:
        est_name = "odds.ratio" if link == "logit" else "ratio"
        out[est_name] = np.exp(d)
        out["SE"] = np.exp(d) * se
        notes.append(f"Tests are performed on the {link} scale")
    else:
        out["estimate"] = d
        out["SE"] = se
        if scale == "response" and link != "identity":
            notes.append(f"Note: contrasts are still on the {link} scale")
        elif link != "identity":
            notes.append(f"Results are given on the {link} (not the response) scale.")
    out["df"] = df
    out["z.ratio" if np.isinf(df) else "t.ratio"] = tstat
    out["p.value"] = p
    if adjust == "none":
        notes.append("P values are not adjusted for multiplicity")
    else:
        notes.append(f"P value adjustment: {adjust} method for "
                     + (f"comparing a family of {k} estimates" if adjust == "tukey" else f"{len(pairs)} tests"))

    sig = np.zeros((k, k), bool)
    for (i, j), pv in zip(pairs, p):
        sig[i, j] = sig[j, i] = bool(pv < alpha)
    letters = cld(labels, sig, estimates=means.table[means.estimate_name].to_numpy()[keep], decreasing=decreasing)
    tab = means.table.iloc[keep].copy()
    tab.index = pd.Index(labels)
    tab = tab.loc[letters.index].reset_index(drop=True)
    tab[".group"] = letters.to_numpy()
    notes.append(f"significance level used: alpha = {alpha:g}; means sharing a letter are not "
                 f"significantly different")
    return PairwiseComparisons(out, tab, adjust, alpha, notes)


def type_name(x) -> str:
    return type(x).__name__
