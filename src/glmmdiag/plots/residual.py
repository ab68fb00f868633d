"""The residual figures: uniform QQ plot, residuals against a predictor, histogram, and the
two-panel diagnostic figure.

Every function draws results that were already computed (``tests=``, ``test=``); what is missing
is computed once with the functions of ``glmmdiag.checks`` and never refitted differently, so a
figure and the tests printed next to it always agree.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from glmmdiag.plots import _style
from glmmdiag.plots._quantreg import EXACT_MAX, quantile_curves
from glmmdiag.plots._style import PALETTE, fmt_num, fmt_p, is_significant
from glmmdiag.errors import GlmmdiagError

__all__ = ["plot_qq", "plot_residuals", "plot_histogram", "plot_diagnostics"]

# above this many points the residual panel shows a density layer instead of points
MAX_POINTS = 10_000
# above this many points the QQ plot is drawn as a thinned line (it is monotone: nothing is lost)
QQ_MAX_MARKERS = 5_000


# ------------------------------------------------------------------------------ helpers
def _check(res):
    from glmmdiag.results import ScaledResiduals

    if not isinstance(res, ScaledResiduals):
        raise TypeError(
            f"expected the ScaledResiduals returned by simulate_residuals(...); got {type(res).__name__}"
        )
    return res


def _tests(res, tests) -> dict:
    """uniformity/dispersion/outliers results: the given ones, the rest computed."""
    from glmmdiag import checks

    got = {}
    if tests is not None:
        if hasattr(tests, "items"):
            got = {k: v for k, v in tests.items() if v is not None}
        else:
            raise TypeError("tests must be residual_tests(res) or a dict of TestResult")
    if "uniformity" not in got:
        got["uniformity"] = checks.uniformity_test(res)
    if "dispersion" not in got:
        got["dispersion"] = checks.dispersion_test(res)
    if "outliers" not in got:
        got["outliers"] = checks.outlier_test(res)
    return got


def _marker_size(n: int) -> float:
    return 4.0 if n <= 200 else (3.0 if n <= 1000 else (2.0 if n <= 5000 else 1.2))


def _is_factor(x, n: int, as_factor) -> bool:
    if as_factor is not None:
        return bool(as_factor)
    s = x if isinstance(x, pd.Series) else pd.Series(np.asarray(x))
    if not (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)):
        return True
    k = s.nunique()
    # DHARMa's rule: one value, or fewer than 10 values with more than 10 observations each
    return k <= 1 or (k < 10 and n / k > 10)


def _outlier_indices(r, out_test):
    """Rows the outlier test counts as outliers (its own definition: binomial type r < 1/(n_sim+1) or
    r > 1 - 1/(n_sim+1); Monte-Carlo type outside every simulation); r in {0, 1} without a test."""
    pdata = getattr(out_test, "plot_data", None) or {}
    if "lower" in pdata and "upper" in pdata:
        return np.union1d(np.asarray(pdata["lower"], int), np.asarray(pdata["upper"], int))
    return np.flatnonzero((r <= 0.0) | (r >= 1.0))


def _outlier_style(ax, x, r, out_test, alpha, max_markers=2_000):
    """Mark the outlier test's outliers with stars (signal colour only when the test rejects); rows
    with a NaN x are not drawn. Returns (legend handle, significant)."""
    from matplotlib.lines import Line2D

    x = np.asarray(x, float)
    idx = _outlier_indices(r, out_test)
    idx = idx[np.isfinite(x[idx])]
    sig = is_significant(out_test, alpha)
    col = PALETTE["signal"] if sig else PALETTE["reference"]
    if idx.size:
        show = idx
        if idx.size > max_markers:  # deterministic thinning; the count stays in the legend
            show = idx[np.linspace(0, idx.size - 1, max_markers).round().astype(int)]
        size = 60 if idx.size < 50 else (30 if idx.size < 500 else 12)
        ax.scatter(x[show], r[show], marker="*", s=size, color=col, linewidths=0, zorder=4, clip_on=False)
    count = int(round(out_test.statistic)) if out_test is not None else idx.size
    label = f"outliers: {count:,}"
    if out_test is not None:
        label += f" ({fmt_p(out_test.p_value, out_test.n_sim)})"
    return Line2D([], [], ls="none", marker="*", ms=9, color=col, label=label), sig


def _below_axis_points(ax) -> float:
    """Height in points of what hangs under the x axis (ticks, tick labels, axis label), estimated
    from the rc settings and the tick labels themselves (rotated labels are as tall as they are long)."""
    from matplotlib import rcParams
    from matplotlib.font_manager import FontProperties

    def pts(size):
        return FontProperties(size=size).get_size_in_points()

    h = rcParams["xtick.major.size"] + rcParams["xtick.major.pad"]
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    if labels:
        fs = max(t.get_fontsize() for t in labels)
        if max(abs(t.get_rotation()) % 180 for t in labels) > 45:
            h += 0.62 * fs * max(len(t.get_text()) for t in labels) + 2
        else:
            h += 1.25 * fs
    else:
        h += 1.25 * pts(rcParams["xtick.labelsize"])
    if ax.get_xlabel():
        h += rcParams["axes.labelpad"] + 1.3 * pts(rcParams["axes.labelsize"])
    return h + 3.0


def _figure_width_in(ax) -> float:
    """Width in inches of the (sub)figure the axes' position is relative to."""
    fig = ax.figure
    try:
        return float(fig.bbox.width) / float(fig.dpi)
    except (AttributeError, TypeError, ZeroDivisionError):  # pragma: no cover
        return 6.4


def _legend_columns(ax, labels, max_cols: int) -> int:
    """As many columns (<= max_cols) as fit the width of the axes' slot in the figure."""
    from matplotlib.font_manager import FontProperties

    fs = FontProperties(size="small").get_size_in_points()
    # the legend may spread under the axis labels and the gap to the next panel, not past the figure
    fig_w = _figure_width_in(ax)
    slot = min(fig_w * 72 * 0.98, ax.get_position().width * fig_w * 72 * 1.45)
    n = len(labels)
    for nc in range(max(1, min(max_cols, n)), 0, -1):
        rows = -(-n // nc)
        cols = [labels[c * rows:(c + 1) * rows] for c in range(nc)]
        width = sum(fs * (2.3 + 0.56 * max(len(t) for t in col)) for col in cols if col) + (nc - 1) * 1.2 * fs
        if width <= slot:
            return nc
    return 1


def _legend_below(ax, handles, labels, highlight, ncol=None):
    """A legend under the axes' x label (constrained layout makes room: it never covers data);
    ``ncol`` is an upper bound, reduced until the legend fits the panel's width. ``handles=None``:
    text lines only."""
    from matplotlib import transforms
    from matplotlib.patches import Patch

    if not labels:
        return None
    text_only = handles is None
    if text_only:
        handles = [Patch(facecolor="none", edgecolor="none") for _ in labels]
    ncol = _legend_columns(ax, labels, 2 if ncol is None else ncol)
    trans = transforms.offset_copy(ax.transAxes, fig=ax.figure, y=-_below_axis_points(ax), units="points")
    leg = ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=trans,
                    ncol=ncol, fontsize="small", frameon=False, handlelength=0 if text_only else 1.8,
                    columnspacing=1.2, borderaxespad=0.0, handletextpad=0 if text_only else 0.5, borderpad=0.2)
    if text_only:
        for h in leg.legend_handles:
            h.set_visible(False)
    for text, hi in zip(leg.get_texts(), highlight):
        if hi:
            text.set_color(PALETTE["signal"])
            text.set_fontweight("bold")
    return leg


_UNIT_TICKS = ([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])


def _unit_axes(ax, xlabel, ylabel):
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.04, 1.04)
    if ax.get_position().width * _figure_width_in(ax) < 2.0:  # narrow panel: labels would collide
        ax.set_xticks([0, 0.5, 1], ["0", "0.5", "1"])
        ax.set_xticks([0.25, 0.75], minor=True)
    else:
        ax.set_xticks(*_UNIT_TICKS)
    ax.set_yticks(*_UNIT_TICKS)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


# ------------------------------------------------------------------------------ QQ
def plot_qq(res, ax=None, *, tests=None, alpha: float = 0.05, title: str | None = "QQ plot (uniform)"):
    """Uniform QQ plot of the scaled residuals with the uniformity (KS), dispersion and outlier tests.

    Parameters
    ----------
    res : ScaledResiduals
    ax : matplotlib Axes, optional (a new figure otherwise)
    tests : ``residual_tests(res)`` or dict with any of "uniformity", "dispersion", "outliers"
        Results to show; missing ones are computed with the defaults of ``glmmdiag.checks``.
    alpha : float
        Results with p < alpha are written bold in the signal colour.

    Returns the Axes.
    """
    res = _check(res)
    t = _tests(res, tests)
    fig, ax = _style.new_axes(ax)
    r = np.sort(np.asarray(res.residuals, float))
    n = r.size
    expected = (np.arange(1, n + 1) - 0.5) / n
    ax.plot([0, 1], [0, 1], color=PALETTE["reference"], lw=0.9, zorder=3 if n > 500 else 1)
    if n > QQ_MAX_MARKERS:
        idx = np.unique(np.r_[np.linspace(0, n - 1, 4000).round().astype(int), n - 1])
        ax.plot(expected[idx], r[idx], color=PALETTE["points"], lw=2.2, zorder=2, solid_capstyle="round")
    else:  # many points: lighter, under the diagonal, so the reference stays visible
        ax.plot(expected, r, ls="none", marker="o", ms=_marker_size(n), mec="none",
                mfc=PALETTE["points"] if n <= 500 else PALETTE["muted"], alpha=0.75 if n > 200 else 0.9, zorder=2)
    _unit_axes(ax, "Expected quantile", "Observed residual")
    u, d, o = t["uniformity"], t["dispersion"], t["outliers"]
    lines = [
        (f"KS test: D = {fmt_num(u.statistic)}, {fmt_p(u.p_value)}", is_significant(u, alpha)),
        (f"Dispersion: {_style.fmt_ratio(d.statistic)}, {fmt_p(d.p_value, d.n_sim)}", is_significant(d, alpha)),
        (f"Outliers: {int(round(o.statistic)):,}, {fmt_p(o.p_value, o.n_sim)}", is_significant(o, alpha)),
    ]
    _legend_below(ax, None, [t for t, _ in lines], [h for _, h in lines], ncol=1)
    if title:
        ax.set_title(title)
    return ax


# ------------------------------------------------------------------------------ residuals vs predictor
def _predictor(res, predictor, data=None):
    """(values per residual, axis label, whether they are the fitted values). ``predictor``: None
    (the fitted values), a column name (looked up in ``data``, the fitting data, or among the
    columns the model knows), or a vector per residual or per row of the fitting data
    (``checks._columns.per_row``)."""
    from glmmdiag.checks._columns import per_row

    if predictor is None:
        label = "Predicted value" if res.group is None else "Predicted group total"
        return np.asarray(res.fitted, float), label, True
    name = predictor if isinstance(predictor, str) else getattr(predictor, "name", None)
    label = str(name) if name is not None else "Predictor"
    if isinstance(predictor, pd.Categorical):
        predictor = pd.Series(predictor)
    if not isinstance(predictor, (str, pd.Series, pd.Index)):
        predictor = np.asarray(predictor)
        if predictor.ndim != 1:
            predictor = predictor.reshape(-1)
    x = per_row(res, predictor, "predictor", data)
    if not isinstance(x.dtype, pd.CategoricalDtype) and x.dtype != object:
        x = x.to_numpy()
    return x, label, False


def plot_residuals(
    res,
    predictor=None,
    ax=None,
    quantiles=(0.25, 0.5, 0.75),
    rank: bool = True,
    *,
    test=None,
    outlier_test=None,
    as_factor: bool | None = None,
    alpha: float = 0.05,
    max_points: int = MAX_POINTS,
    title: str | None = None,
    data=None,
):
    """Scaled residuals against the (rank-transformed) fitted values or a predictor.

    Continuous predictor: points (a density layer above ``max_points``), the quantile-regression
    curves at ``quantiles`` with 95% bands (+-1.96 SE of a fitted curve when the residuals are
    uniform: ``quantile_test``'s null variance), a dashed line at each expected quantile, and
    residuals outside every simulation (0 or 1) marked with stars. Curves whose quantile deviates
    significantly (``quantile_test``'s Benjamini-Hochberg adjusted p < alpha) are thick and in
    the signal colour; the legend under the panel gives each quantile's p-value. The p-values are
    those of ``test`` (default: ``quantile_test(res, predictor, quantiles, rank=rank)``), computed
    on every point whatever the size of the data.

    Categorical predictor (non-numeric, or numeric with one value or < 10 values holding > 10
    observations each, DHARMa's rule; force with ``as_factor``): a box plot per level with the
    expected quartiles and ``categorical_test`` (per-level KS, Holm; Brown-Forsythe for spread);
    levels whose KS test rejects are highlighted. One level: its box, no test.

    ``predictor``: None (the fitted values), a column name (looked up in ``data``, the data frame
    the model was fitted to, its fitted rows taken; or, without ``data``, among the grouping,
    time and coordinate columns the model knows), or a vector with one value per residual or per
    row of the fitting data. Categorical levels keep their category / natural order.

    Returns the Axes.
    """
    ax, _test = _residual_panel(res, predictor, ax, quantiles, rank, test=test, outlier_test=outlier_test,
                                as_factor=as_factor, alpha=alpha, max_points=max_points, title=title, data=data)
    return ax


def _residual_panel(res, predictor, ax, quantiles, rank, *, test, outlier_test, as_factor, alpha, max_points,
                    title, data=None):
    from glmmdiag import checks

    res = _check(res)
    x, label, is_fitted = _predictor(res, predictor, data)
    n = res.nobs
    r = np.asarray(res.residuals, float)
    if outlier_test is None:
        outlier_test = checks.outlier_test(res)
    fig, ax = _style.new_axes(ax, figsize=(4.4, 4.6))
    if _is_factor(x, n, as_factor):
        test = _categorical_panel(ax, res, x, label, test, outlier_test, alpha, title)
        return ax, test
    xv = np.asarray(x, float)
    qs = tuple(float(q) for q in quantiles)
    if test is None:
        test = checks.quantile_test(res, None if is_fitted else xv, qs, rank=rank)
    elif test.table is None or "quantile" not in (test.table.index.name or ""):
        raise GlmmdiagError("test must be the result of quantile_test(...) for this predictor")
    pd_ = test.plot_data
    xr = np.asarray(pd_["x"], float)
    if xr.shape[0] != n:
        raise GlmmdiagError("the quantile test was computed on other residuals (length differs)")
    qs = tuple(float(q) for q in test.table.index)
    grid = np.asarray(pd_["grid"], float)
    curves = dict(pd_.get("curves") or {})
    if len(curves) < len(qs) or any(curves.get(q) is None for q in qs):
        df = int(round((test.parameter or {}).get("df", 4)))
        curves = quantile_curves(xr, r, qs, df, grid, exact=n <= EXACT_MAX)
    band = pd_.get("null_band") or {}
    p_q = pd_.get("p_per_quantile") or {}
    # display coordinates: ranks in [0, 1], or the predictor's own scale
    if rank:
        xs, gs = xr, grid
        xlabel = f"{label} (rank-transformed)"
    else:
        lo, span = float(np.min(xv)), float(np.ptp(xv)) or 1.0
        xs, gs = lo + xr * span, lo + grid * span
        xlabel = label
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, labels, highlight = [], [], []
    if n > max_points:
        ax.hexbin(xs, r, gridsize=(36, 18), extent=(gs[0], gs[-1], 0, 1), cmap=_style.density_cmap(),
                  mincnt=1, linewidths=0.0, zorder=1, rasterized=True, vmin=0)
        handles.append(Patch(facecolor="0.55", edgecolor="none"))
        labels.append("density")
        highlight.append(False)
    else:
        ax.scatter(xs, r, s=_marker_size(n) ** 2, color=PALETTE["points"], alpha=0.55 if n > 500 else 0.8,
                   linewidths=0, zorder=2, rasterized=n > 2000)
    for q in qs:
        ax.axhline(q, color=PALETTE["reference"], lw=0.8, ls=(0, (4, 3)), zorder=1.5)
    # with few distinct predictor values the curves are shown only where there are data (joined
    # by straight segments with markers), not interpolated by the spline between them
    ux = np.unique(xr)
    few = ux.size <= 10
    ux_disp = ux if rank else (lo + ux * span)
    for q in qs:
        c = curves.get(q)
        p = p_q.get(q, math.nan)
        sig = p < alpha
        col = PALETTE["signal"] if sig else PALETTE["neutral"]
        style = _quantile_linestyle(q)  # the curves stay distinguishable when all are highlighted
        if c is not None:
            hw = band.get(q)
            if few:
                xc, c = ux_disp, np.interp(ux, grid, c)
                hw = None if hw is None else np.interp(ux, grid, hw)
            else:
                xc = gs
            c = np.clip(c, 0.0, 1.0)
            if hw is not None:
                ax.fill_between(xc, np.clip(c - hw, 0, 1), np.clip(c + hw, 0, 1), color=col, alpha=0.15, lw=0,
                                zorder=2.5)
            ax.plot(xc, c, color=col, lw=2.6 if sig else 1.7, ls=style, zorder=3, marker="o" if few else None,
                    ms=5 if few else 0)
        handles.append(Line2D([], [], color=col, lw=2.6 if sig else 1.7, ls=style))
        labels.append(f"q = {_qlabel(q)}, {fmt_p(p)}")
        highlight.append(sig)
    h_out, sig_out = _outlier_style(ax, xs, r, outlier_test, alpha)
    handles.append(h_out)
    labels.append(h_out.get_label())
    highlight.append(sig_out)
    _unit_axes(ax, xlabel, "Scaled residual")
    if not rank:  # the predictor's own scale and ticks
        from matplotlib.ticker import AutoLocator, ScalarFormatter

        ax.xaxis.set_major_locator(AutoLocator())
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlim(gs[0] - 0.02 * (gs[-1] - gs[0] or 1), gs[-1] + 0.02 * (gs[-1] - gs[0] or 1))
    _legend_below(ax, handles, labels, highlight)
    ax.set_title(title if title is not None else "Residuals vs " + ("predicted" if is_fitted else label))
    return ax, test


def _qlabel(q: float) -> str:
    return np.format_float_positional(q, trim="-")


def _quantile_linestyle(q: float):
    """Line style of a quantile curve: dashed below the median, solid at it, dotted above (so that
    three curves drawn in the same highlight colour can still be told apart)."""
    if abs(q - 0.5) < 1e-9:
        return "-"
    return "--" if q < 0.5 else ":"


def _tick_label(v) -> str:
    """A level as a tick label: numbers to 4 significant digits (a fitted value used as a factor
    printed 0.19693741232 before), anything else as its text."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


def _categorical_panel(ax, res, x, label, test, outlier_test, alpha, title):
    from glmmdiag import checks

    r = np.asarray(res.residuals, float)
    s = pd.Series(np.asarray(x, dtype=object) if not isinstance(x, pd.Series) else x).reset_index(drop=True)
    present = s.notna().to_numpy()
    codes = np.full(r.size, -1)
    # levels in the order categorical_test uses: categories, numbers by value, labels alphabetically
    codes[present], levels = checks._level_codes(s[present])
    groups = [r[codes == k] for k in range(len(levels))]
    if test is None and len(levels) >= 2:
        test = checks.categorical_test(res, s.astype(str).to_numpy())
    p_level = {}
    if test is not None and test.table is not None and "p_holm" in test.table:
        p_level = {str(k): float(v) for k, v in test.table["p_holm"].items()}
    k = len(levels)
    pos = np.arange(1, k + 1)
    bp = ax.boxplot(groups, positions=pos, widths=0.6, patch_artist=True, showfliers=True,
                    medianprops={"color": "black", "lw": 1.4}, whis=(0, 100) if r.size <= 20 else 1.5,
                    flierprops={"marker": "o", "ms": 2.5, "mfc": PALETTE["points"], "mec": "none", "alpha": 0.6})
    for lv, box in zip(levels, bp["boxes"]):
        sig = p_level.get(str(lv), math.nan) < alpha
        box.set_facecolor(PALETTE["signal"] if sig else PALETTE["fill"])
        box.set_alpha(0.55 if sig else 0.45)
        box.set_edgecolor(PALETTE["signal"] if sig else PALETTE["neutral"])
        box.set_linewidth(2.0 if sig else 1.0)
    for q in (0.25, 0.5, 0.75):
        ax.axhline(q, color=PALETTE["reference"], lw=0.8, ls=(0, (4, 3)), zorder=0.5)
    xpos = np.where(codes >= 0, pos[np.maximum(codes, 0)], np.nan).astype(float)
    _outlier_style(ax, xpos, r, outlier_test, alpha)
    ax.set_xlim(0.4, k + 0.6)
    ax.set_ylim(-0.04, 1.04)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])
    labels = [_tick_label(v) for v in levels]
    step = max(1, int(math.ceil(k / 40)))
    rot = 0 if (k <= 6 and max(len(t) for t in labels) <= 6) else 90
    ax.set_xticks(pos[::step], labels[::step], rotation=rot, fontsize="small" if k <= 20 else "x-small")
    ax.set_xlabel(label)
    ax.set_ylabel("Scaled residual")
    texts, hi = [], []
    if test is not None:
        est = test.estimate or {}
        ks = est.get("smallest Holm-adjusted KS p", math.nan)
        lev = est.get("Levene p", math.nan)
        texts += [f"uniform within levels (KS, Holm): {fmt_p(ks)}", f"equal spread (Levene): {fmt_p(lev)}"]
        hi += [ks < alpha, lev < alpha]
    else:
        texts.append("one level: no between-level test")
        hi.append(False)
    n_out = int(round(outlier_test.statistic))
    texts.append(f"outliers: {n_out:,} ({fmt_p(outlier_test.p_value, outlier_test.n_sim)})")
    hi.append(is_significant(outlier_test, alpha))
    _legend_below(ax, None, texts, hi, ncol=1)
    ax.set_title(title if title is not None else f"Residuals by {label}")
    return test


# ------------------------------------------------------------------------------ histogram
def plot_histogram(res, ax=None, *, bins: int = 20, outlier_test=None, alpha: float = 0.05,
                   title: str | None = "Histogram of residuals"):
    """Histogram of the scaled residuals (flat under the model) with the residuals outside every
    simulation (exactly 0 or 1) in separate edge bars, highlighted when the outlier test rejects.
    The dashed line is the expected count per bin. Returns the Axes."""
    from glmmdiag import checks
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    res = _check(res)
    if outlier_test is None:
        outlier_test = checks.outlier_test(res)
    fig, ax = _style.new_axes(ax, figsize=(4.2, 3.2))
    r = np.asarray(res.residuals, float)
    n = r.size
    bins = int(max(2, bins))
    pdata = outlier_test.plot_data or {}
    low = np.zeros(n, bool)
    high = np.zeros(n, bool)
    if "lower" in pdata and "upper" in pdata:  # the test's own outliers (its definition)
        low[np.asarray(pdata["lower"], int)] = True
        high[np.asarray(pdata["upper"], int)] = True
    else:
        low, high = r <= 0.0, r >= 1.0
    inner = r[~(low | high)]
    width = 1.0 / bins
    counts, edges = np.histogram(inner, bins=bins, range=(0.0, 1.0))
    ax.bar(edges[:-1], counts, width=width, align="edge", color=PALETTE["fill"], edgecolor="white", lw=0.6,
           zorder=2)
    sig = is_significant(outlier_test, alpha)
    ocol = PALETTE["signal"] if sig else PALETTE["muted"]
    gap = 0.5 * width
    edge_x = [-gap - width, 1.0 + gap]
    edge_n = [int(low.sum()), int(high.sum())]
    ax.bar(edge_x, edge_n, width=width, align="edge", color=ocol, edgecolor="white", lw=0.6, zorder=2,
           hatch=None if sig else "///")
    p_out = 1.0 / (res.n_sim + 1)
    expected = n * (1.0 - 2.0 * p_out) / bins
    ax.hlines(expected, 0, 1, colors=PALETTE["reference"], linestyles=(0, (4, 3)), lw=1.0, zorder=3)
    ax.hlines([n * p_out] * 2, edge_x, [e + width for e in edge_x], colors=PALETTE["reference"],
              linestyles=(0, (4, 3)), lw=1.0, zorder=3)
    top = max(counts.max(initial=0), max(edge_n), expected) or 1
    for xe, k in zip(edge_x, edge_n):
        ax.text(xe + width / 2, k + 0.02 * top, f"{k:,}", ha="center", va="bottom", fontsize="x-small",
                color=ocol if k else "0.4")
    ax.set_ylim(0, top * 1.12)
    ax.set_xlim(edge_x[0] - 0.3 * width, edge_x[1] + 1.3 * width)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])
    ax.set_xlabel("Scaled residual")
    ax.set_ylabel("Count")
    handles = [Patch(facecolor=PALETTE["fill"]), Patch(facecolor=ocol, hatch=None if sig else "///"),
               Line2D([], [], color="k", ls=(0, (4, 3)))]
    labels = ["residuals", f"outliers ({fmt_p(outlier_test.p_value, outlier_test.n_sim)})", "expected count"]
    _legend_below(ax, handles, labels, [False, sig, False], ncol=1)
    if title:
        ax.set_title(title)
    return ax


# ------------------------------------------------------------------------------ the two-panel figure
def plot_diagnostics(
    res,
    predictor=None,
    *,
    tests=None,
    quantile=None,
    quantiles=(0.25, 0.5, 0.75),
    rank: bool = True,
    alpha: float = 0.05,
    figsize=(7.4, 4.4),
    ax=None,
    caption: bool = True,
    fig=None,
    data=None,
):
    """DHARMa's two-panel figure: uniform QQ plot with the uniformity, dispersion and outlier tests
    (left) and residuals against the ranked predictions with quantile curves (right), under a title
    that says whether any test rejected at ``alpha`` (and which, with effect size and p-value).

    ``tests`` (``residual_tests(res)`` or a dict) and ``quantile`` (``quantile_test`` or
    ``categorical_test`` result) are used when given, computed otherwise. ``ax``: a Figure or
    SubFigure to draw into, or two Axes (QQ, residuals); a new figure when None (``fig=`` is the
    old name of ``ax=``). ``predictor``, ``data``: as for ``plot_residuals`` (a column name works).
    Returns the Figure.

    Examples
    --------
    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> rust = datasets.load("rust")
    >>> fit = glmmdiag.glmm("severity ~ fungicide + (1 | block)", rust, family="beta")
    >>> res = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1)
    >>> fig = glmmdiag.plot_diagnostics(res)
    >>> fig.get_suptitle()
    'No significant problems detected'
    >>> len(fig.axes)
    2
    """
    res = _check(res)
    t = _tests(res, tests)
    ax = _style.renamed_argument(ax, fig, "fig")
    fig, (ax1, ax2) = _style.panel_axes(ax, 2, figsize)
    plot_qq(res, ax1, tests=t, alpha=alpha)
    ax2, qtest = _residual_panel(res, predictor, ax2, quantiles, rank, test=quantile, outlier_test=t["outliers"],
                                 as_factor=None, alpha=alpha, max_points=MAX_POINTS, title=None, data=data)
    problems = _style.problem_phrases({**t, "quantiles": qtest}, alpha)
    bad = bool(problems)
    width = fig.get_figwidth() if hasattr(fig, "get_figwidth") else fig.bbox.width / fig.figure.dpi
    size = "large"
    text = (_style.wrap_title("Problems detected: ", problems, width * 0.98, size) if bad
            else "No significant problems detected")
    if text.count("\n") >= 2:  # a long list of problems: smaller type rather than a third line
        size = "medium"
        text = _style.wrap_title("Problems detected: ", problems, width * 0.98, size)
    fig.suptitle(text, color=PALETTE["signal"] if bad else "0.1", fontweight="bold" if bad else "normal",
                 fontsize=size)
    if caption:
        fig.supxlabel("Simulated scaled residuals: " + _style.sim_caption(res), fontsize="small", color="0.35")
    return fig
