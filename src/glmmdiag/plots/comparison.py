"""``plot_comparison``: one row of panels per model, the same panels and axes in every row."""
from __future__ import annotations

import numpy as np

from glmmdiag.plots._style import PALETTE, fmt_num
from glmmdiag.errors import GlmmdiagError

__all__ = ["plot_comparison"]

_PANELS = ("qq", "residuals", "dispersion", "zero_inflation", "histogram")


def _rows(comparison):
    """[(label, res, tests dict, header extras)] from a compare_families table or a mapping."""
    from glmmdiag.results import ScaledResiduals

    res_map = getattr(comparison, "residuals", None)
    if isinstance(res_map, dict) and hasattr(comparison, "index"):  # compare_families' table
        out = []
        for label in comparison.index:
            row = comparison.loc[label]
            extra = f"{label} ({row['link']} link)"
            if "delta_AIC" in row.index and np.isfinite(row["delta_AIC"]):
                extra += f" · ΔAIC {fmt_num(row['delta_AIC'], 3)}"
            out.append((str(label), res_map[label], dict(comparison.tests.get(label, {})), extra))
        return out
    if hasattr(comparison, "items"):
        out = []
        for label, value in comparison.items():
            tests = {}
            if isinstance(value, tuple):
                value, tests = value
            if not isinstance(value, ScaledResiduals):
                raise TypeError(f"{label!r}: expected ScaledResiduals (or (residuals, tests)); got {type(value).__name__}")
            out.append((str(label), value, dict(tests), str(label)))
        return out
    raise TypeError("comparison must be the result of compare_families(...) or a dict label -> ScaledResiduals")


def _common_range(tests, ratio: bool):
    """(low, high) over every test's observed and simulated values (ratio scale for dispersion)."""
    lo, hi = np.inf, -np.inf
    for t in tests:
        pdata = t.plot_data or {}
        if "simulated" not in pdata:
            continue
        sims = np.asarray(pdata["simulated"], float)
        sims = sims[np.isfinite(sims)]
        obs = float(pdata["observed"])
        scale = 1.0
        if ratio and sims.size and np.mean(sims) != 0:
            scale = float(np.mean(sims))
        vals = np.r_[sims, obs] / scale
        vals = vals[np.isfinite(vals)]
        if vals.size:
            lo, hi = min(lo, vals.min()), max(hi, vals.max())
    return (lo, hi) if np.isfinite(lo) else None


def plot_comparison(
    comparison,
    *,
    panels=None,
    predictor=None,
    alpha: float = 0.05,
    figsize=None,
    ax=None,
):
    """Diagnostics of several models as rows of panels with shared axes, so differences show at a
    glance (e.g. ``compare_families(...)``: Beta vs Gamma).

    Parameters
    ----------
    comparison : ``compare_families`` result, or dict label -> ScaledResiduals (or label ->
        (ScaledResiduals, dict of test results)) for any set of models (GLM vs GLMM, ...).
    panels : sequence from "qq", "residuals", "dispersion", "zero_inflation", "histogram".
        Default: QQ, residuals vs predicted, dispersion, plus zero inflation for integer responses.
    predictor : optional predictor for the residual panels (default: each model's fitted values).
    alpha : significance level of the highlights and of each row's verdict.
    ax : a Figure or SubFigure to draw the rows into (a new figure when None). The rows are
        sub-figures, so single Axes cannot hold them.

    Each row is titled with the model, ΔAIC (compare_families) and the tests that reject; the
    dispersion and zero-inflation panels share their x axis across rows. Returns the Figure.
    """

    from glmmdiag import checks
    from glmmdiag.plots._style import figure_of, problem_phrases, wrap_title
    from glmmdiag.plots.residual import _residual_panel, _tests, plot_histogram, plot_qq
    from glmmdiag.plots.simulated import plot_dispersion, plot_zero_inflation

    rows = _rows(comparison)
    if not rows:
        raise GlmmdiagError("nothing to compare")
    if panels is None:
        panels = ["qq", "residuals", "dispersion"]
        if any(r[1].integer_response for r in rows):
            panels.append("zero_inflation")
    panels = list(panels)
    bad = [p for p in panels if p not in _PANELS]
    if bad:
        raise GlmmdiagError(f"unknown panels {bad}; choose from {_PANELS}")
    # complete the tests once per row (only what was not given is computed)
    for _, res, tests, _ in rows:
        tests.update(_tests(res, tests))
        if tests.get("zero_inflation") is None:
            tests["zero_inflation"] = checks.zero_inflation_test(res)
    disp_range = _common_range([t["dispersion"] for _, _, t, _ in rows], ratio=True)
    zero_range = _common_range([t["zero_inflation"] for _, _, t, _ in rows], ratio=False)
    if figsize is None:
        figsize = (2.75 * len(panels) + 0.3, 3.55 * len(rows) + 0.2)
    fig = figure_of(ax, figsize)
    subfigs = np.atleast_1d(fig.subfigures(len(rows), 1, hspace=0.02))
    disp_axes, zero_axes = [], []
    for sub, (label, res, tests, header) in zip(subfigs, rows):
        axes = np.atleast_1d(sub.subplots(1, len(panels)))
        qtest = tests.get("quantiles")
        for ax, panel in zip(axes, panels):
            if panel == "qq":
                plot_qq(res, ax, tests=tests, alpha=alpha)
            elif panel == "residuals":
                if predictor is not None:  # the stored quantile test is against the fitted values
                    qtest = None
                _, qt = _residual_panel(res, predictor, ax, (0.25, 0.5, 0.75) if qtest is None else
                                        tuple(qtest.table.index), True, test=qtest, outlier_test=tests["outliers"],
                                        as_factor=None, alpha=alpha, max_points=10_000, title=None)
                tests["quantiles"] = qt
            elif panel == "dispersion":
                plot_dispersion(res, ax, test=tests["dispersion"], alpha=alpha, value_range=disp_range)
                disp_axes.append(ax)
            elif panel == "zero_inflation":
                plot_zero_inflation(res, ax, test=tests["zero_inflation"], alpha=alpha, value_range=zero_range)
                zero_axes.append(ax)
            elif panel == "histogram":
                plot_histogram(res, ax, outlier_test=tests["outliers"], alpha=alpha)
        problems = problem_phrases(tests, alpha)
        bad_row = bool(problems)
        text = wrap_title(f"{header}: ", problems, figsize[0] * 0.98, "large", none_text="no problems detected")
        sub.suptitle(text, x=0.01, ha="left", fontsize="large",
                     color=PALETTE["signal"] if bad_row else "0.1", fontweight="bold" if bad_row else "normal")
    for group in (disp_axes, zero_axes):
        if len(group) > 1:
            lo = min(ax.get_xlim()[0] for ax in group)
            hi = max(ax.get_xlim()[1] for ax in group)
            for ax in group:
                ax.set_xlim(lo, hi)
    return fig
