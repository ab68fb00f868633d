"""Uniformity and spread of the residuals within the levels of a categorical predictor."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from glmmdiag.errors import GlmmdiagError
from glmmdiag.results import ScaledResiduals, TestResult
from glmmdiag.checks._common import _check_res, _data_name
from glmmdiag.checks._columns import per_row
from glmmdiag.checks.pvalues import p_adjust


def _level_codes(g: pd.Series) -> tuple[np.ndarray, list]:
    """Codes and levels in the order a user expects: a Categorical's own category order (used
    categories only), numbers and numeric strings by value ('1', '2', '10', not '1', '10', '2'),
    other labels alphabetically."""
    if isinstance(g.dtype, pd.CategoricalDtype):
        cat = g.cat.remove_unused_categories()
        return cat.cat.codes.to_numpy(), list(cat.cat.categories)
    uniq = pd.unique(g)
    try:
        keys = np.array([float(v) for v in uniq])
    except (TypeError, ValueError):
        keys = None
    order = np.argsort(keys, kind="stable") if keys is not None else np.argsort(
        np.array([str(v) for v in uniq], dtype=object), kind="stable")
    levels = [uniq[i] for i in order]
    return np.asarray(pd.Categorical(g.to_numpy(), categories=levels).codes), levels


def categorical_test(res: ScaledResiduals, catpred, *, data=None) -> TestResult:
    """Per-level uniformity (KS, Holm-adjusted) and equal spread across levels (Brown-Forsythe:
    Levene's test centred on the median). p-value = min(1, 2 min(smallest Holm-adjusted KS p,
    Levene p)) (Bonferroni over the two parts); both parts are in ``table``/``estimate``.

    ``catpred``: one level per residual, one per row of the fitting data (its fitted rows are
    taken), or a column name looked up in ``data`` (the fitting data) or among the grouping
    factors the model knows (``checks._columns.per_row``). Levels keep a Categorical's order,
    numbers (and numeric strings) sort by value, other labels alphabetically."""
    res = _check_res(res)
    r = np.asarray(res.residuals, float)
    if isinstance(catpred, pd.Categorical):
        catpred = pd.Series(catpred)
    g = per_row(res, catpred, "catpred", data)
    if g.isna().any():
        raise GlmmdiagError("catpred has missing values")
    codes, levels = _level_codes(g)
    if len(levels) < 2:
        raise GlmmdiagError("catpred needs at least two levels")
    groups = [r[codes == k] for k in range(len(levels))]
    ks = [stats.kstest(gr, "uniform") for gr in groups]
    p_ks = np.array([float(k.pvalue) for k in ks])
    p_holm = p_adjust(p_ks, "holm")
    F, p_lev, lev_note = _brown_forsythe(groups)
    table = pd.DataFrame(
        {"n": [gr.size for gr in groups], "D": [float(k.statistic) for k in ks], "p_value": p_ks, "p_holm": p_holm},
        index=pd.Index([str(v) for v in levels], name="level"),
    )
    parts = [float(np.min(p_holm))] + ([p_lev] if np.isfinite(p_lev) else [])
    p = min(1.0, len(parts) * min(parts))
    return TestResult(
        method="Categorical test: per-level KS uniformity (Holm) and Brown-Forsythe homogeneity of spread",
        statistic=F,
        statistic_name="Levene F (median-centred)",
        p_value=float(p),
        alternative="two-sided",
        data_name=_data_name(res, " by level"),
        parameter={"levels": float(len(levels))},
        estimate={"smallest Holm-adjusted KS p": float(np.min(p_holm)), "Levene p": p_lev},
        simulate_re=res.simulate_re,
        note=lev_note,
        table=table,
        plot_data={"groups": dict(zip(map(str, levels), groups)), "levene_p": p_lev, "ks_holm": p_holm},
    )


def _brown_forsythe(groups) -> tuple[float, float, str | None]:
    """(F, p, note) of Levene's test centred on the median over the levels with >= 3 residuals.

    With two values the absolute deviations from their median are equal by construction (and one
    value has none), so such levels carry no within-level variation: with them the denominator of
    F can be 0 and F infinite (p = 0) for any data. They are left out. When the deviations do not
    vary within any level (constant residuals) F is 0/0: NaN, and the note says so.
    """
    usable = [gr for gr in groups if gr.size >= 3]
    if len(usable) < 2:
        return math.nan, math.nan, "Levene part undefined: it needs at least two levels with 3 or more residuals"
    dev = [np.abs(gr - np.median(gr)) for gr in usable]
    within = sum(float(np.sum((d - d.mean()) ** 2)) for d in dev)
    scale = max(float(np.max(np.abs(np.concatenate(dev)))), 1e-300)
    n_used = sum(d.size for d in dev)
    if within <= (64 * np.finfo(float).eps * scale) ** 2 * n_used:
        return math.nan, math.nan, ("Levene part undefined: the absolute deviations from the level medians do not "
                                    "vary within any level (0/0)")
    lev = stats.levene(*usable, center="median")
    skipped = len(groups) - len(usable)
    note = f"Levene part over the {len(usable)} levels with 3 or more residuals" if skipped else None
    return float(lev.statistic), float(lev.pvalue), note
