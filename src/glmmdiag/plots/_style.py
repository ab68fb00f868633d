"""Colours, number formatting and small drawing helpers shared by the plots.

Colours come from the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), which stays
distinguishable under the common forms of colour blindness. Significance is never shown by colour
alone: highlighted text is also bold, highlighted curves are also thicker.

Everything else (font family and sizes, line widths, figure DPI, grid, spines) comes from
matplotlib's rc settings, so ``plt.rc_context({...})`` or a style sheet restyles every figure.
The colours live in ``PALETTE``, a plain dict users may edit (DHARMa's ``DHARMaSignalColor``):

    glmmdiag.plots.PALETTE["signal"] = "#CC79A7"
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from glmmdiag.errors import GlmmdiagError

__all__ = ["PALETTE", "OKABE_ITO", "fmt_p", "fmt_num", "fmt_ratio"]

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

PALETTE = {
    "signal": OKABE_ITO["vermillion"],  # a significant test: text, curves, markers
    "neutral": OKABE_ITO["blue"],  # a non-significant curve or statistic
    "points": "#3A3A3A",  # residual points
    "reference": "#000000",  # reference lines (diagonal, expected quantiles)
    "fill": OKABE_ITO["sky_blue"],  # histogram bars of simulated statistics / residuals
    "muted": "#8C8C8C",  # secondary lines and notes
    "density": "#6E6E6E",  # darkest shade of the density layer for large data (from white)
    "diverging": "RdBu",  # residual maps (0 red, 0.5 white, 1 blue, as DHARMa)
}


def density_cmap():
    """White to PALETTE["density"]: a light layer under the curves."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("glmmdiag_density", ["#FFFFFF", PALETTE["density"]])


def fmt_num(x, digits: int = 2) -> str:
    """Short human number: 2 significant digits, no scientific notation for ordinary sizes."""
    if x is None:
        return "NA"
    x = float(x)
    if not math.isfinite(x):
        return "NA" if math.isnan(x) else ("∞" if x > 0 else "−∞")
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e5:
        if abs(x) >= 10 ** digits:
            return f"{x:.0f}"
        out = np.format_float_positional(x, precision=digits, fractional=False, trim="k", unique=False)
        return out.rstrip(".")  # keeps 1.0 (not "1") but not "26."
    return f"{x:.{digits - 1}e}"


def fmt_ratio(x) -> str:
    """A ratio to 1 (dispersion, zeros): three significant digits near 1 (1.03, not 1.0)."""
    if x is None or not math.isfinite(float(x)):
        return fmt_num(x)
    return fmt_num(x, 3 if 0.9 <= abs(float(x)) < 1.1 else 2)


def fmt_p(p, n_sim: int | None = None) -> str:
    """'p = 0.048', 'p < 0.001'; a simulation p-value of 0 is shown as below its resolution 1/n_sim."""
    if p is None:
        return "p = NA"
    p = float(p)
    if math.isnan(p):
        return "p = NA"
    if p <= 0 and n_sim:
        res = np.format_float_positional(1.0 / n_sim, precision=2, fractional=False, trim="-")
        return f"p < {res}"
    if p < 1e-3:
        return "p < 0.001"
    if p >= 0.995:
        return "p = 1"
    return "p = " + np.format_float_positional(p, precision=2, fractional=False, trim="-")


def is_significant(test, alpha: float) -> bool:
    p = getattr(test, "p_value", None)
    return p is not None and not (isinstance(p, float) and math.isnan(p)) and p < alpha


def new_axes(ax, figsize=(3.6, 3.4)):
    """(fig, ax): the given Axes, or a new figure with one Axes (constrained layout)."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _is_figure(obj) -> bool:
    from matplotlib.figure import FigureBase

    return isinstance(obj, FigureBase)


def figure_of(ax, figsize):
    """The Figure (or SubFigure) to draw a multi-panel plot into: ``ax`` itself when it is one,
    a new constrained-layout figure when ``ax`` is None."""
    import matplotlib.pyplot as plt

    if ax is None:
        return plt.figure(figsize=figsize, layout="constrained")
    if _is_figure(ax):
        return ax
    raise GlmmdiagError(f"ax must be a matplotlib Figure or SubFigure to draw into (or None); got {type(ax).__name__}")


def panel_axes(ax, n: int, figsize, **subplots_kw) -> tuple:
    """(figure, list of n Axes) for a plot of n panels.

    ``ax`` is None (a new figure), a Figure or SubFigure (n panels in one row inside it), or a
    sequence of exactly n Axes to draw into (their figure holds the title).
    """
    if ax is None or _is_figure(ax):
        fig = figure_of(ax, figsize)
        return fig, list(np.atleast_1d(fig.subplots(1, n, **subplots_kw)))
    axes = list(np.ravel(np.asarray(ax, dtype=object))) if not hasattr(ax, "figure") else [ax]
    if len(axes) != n or not all(hasattr(a, "figure") for a in axes):
        raise GlmmdiagError(f"ax must be {n} matplotlib Axes (one per panel), a Figure or SubFigure, "
                            f"or None; got {len(axes)} object(s)")
    return axes[0].figure, axes


def renamed_argument(new_value, old_value, old: str, new: str = "ax"):
    """``new_value``, or the value given under the old keyword (with a FutureWarning)."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise GlmmdiagError(f"give {new}= only ({old}= is its old name)")
    warnings.warn(f"{old}= is now {new}=; {old}= will be removed", FutureWarning, stacklevel=3)
    return old_value


def sim_caption(res) -> str:
    """'48 observations · 1000 unconditional simulations' (what the residuals are made of)."""
    n = res.nobs
    unit = "groups" if res.group is not None else "observations"
    mode = {"given": "user-supplied", "conditional": "conditional", "unconditional": "unconditional"}.get(
        res.simulate_re, str(res.simulate_re)
    )
    how = "refits" if res.method == "refit" else "simulations"
    return f"{n:,} {unit} · {res.n_sim:,} {mode} {how}"


_UNDEFINED_LABELS = {"uniformity": "uniformity test", "dispersion": "dispersion test",
                     "outliers": "outlier test", "zero_inflation": "zero-inflation test",
                     "quantiles": "quantile test"}


def _p_is_nan(result) -> bool:
    p = getattr(result, "p_value", None)
    return p is not None and isinstance(p, float) and math.isnan(p)


def problem_phrases(tests: dict, alpha: float = 0.05, categorical: bool = False) -> list[str]:
    """Short phrases for the tests that reject at alpha, with effect sizes: the verdict of a figure
    or of a row of ``compare_families``. Keys: uniformity, dispersion, outliers, zero_inflation,
    quantiles (a ``quantile_test`` or ``categorical_test`` result). A test whose p-value is NaN is
    undefined for the data (e.g. constant responses): it is named as such, never passed over as
    'no problems'."""
    out = [f"{_UNDEFINED_LABELS[k]} undefined" for k in _UNDEFINED_LABELS
           if tests.get(k) is not None and _p_is_nan(tests[k])]
    u = tests.get("uniformity")
    if u is not None and is_significant(u, alpha):
        out.append(f"non-uniform (KS {fmt_p(u.p_value)})")
    d = tests.get("dispersion")
    if d is not None and is_significant(d, alpha):
        kind = "underdispersion" if d.statistic < 1 else "overdispersion"
        out.append(f"{kind} {fmt_ratio(d.statistic)} ({fmt_p(d.p_value, d.n_sim)})")
    o = tests.get("outliers")
    if o is not None and is_significant(o, alpha):
        out.append(f"outliers ({fmt_p(o.p_value, o.n_sim)})")
    z = tests.get("zero_inflation")
    if z is not None and is_significant(z, alpha) and math.isfinite(z.statistic):
        kind = "zero-inflation" if z.statistic > 1 else "too few zeros"
        out.append(f"{kind} {fmt_ratio(z.statistic)} ({fmt_p(z.p_value, z.n_sim)})")
    q = tests.get("quantiles")
    if q is not None and is_significant(q, alpha):
        cat = categorical or "Categorical" in getattr(q, "method", "")
        out.append(f"{'differences between levels' if cat else 'quantile deviations'} ({fmt_p(q.p_value)})")
    return out


def wrap_title(prefix: str, problems: list[str], width_in: float, fontsize="large", bold=True,
               none_text="no significant problems detected") -> str:
    """prefix + the problems joined by ' · ', wrapped between problems to the given width."""
    import textwrap

    from matplotlib.font_manager import FontProperties

    if not problems:
        return prefix + none_text
    pts = FontProperties(size=fontsize).get_size_in_points()
    chars = max(30, int(width_in * 72 / ((0.6 if bold else 0.55) * pts)))
    items = [p.replace(" ", "\u00a0") for p in problems]  # break between problems, not inside one
    return textwrap.fill(prefix + " · ".join(items), width=chars, break_long_words=False)
