"""Residuals in time and space, with the Durbin-Watson and Moran's I tests."""
from __future__ import annotations

import math

import numpy as np

from glmmdiag.plots import _style
from glmmdiag.plots._style import PALETTE, fmt_num, fmt_p, is_significant
from glmmdiag.errors import GlmmdiagError

__all__ = ["plot_temporal", "plot_spatial"]

# above this many locations Moran's I with all-pairs 1/d weights (O(n^2)) is replaced, when the
# plot has to compute the test itself, by 1/d weights over the K_NEIGHBOURS nearest locations
SPATIAL_ALL_PAIRS_MAX = 5_000
K_NEIGHBOURS = 10


def _acf(e: np.ndarray, max_lag: int) -> np.ndarray:
    e = e - e.mean()
    n = e.size
    m = 1 << int(math.ceil(math.log2(2 * n)))
    f = np.fft.rfft(e, m)
    ac = np.fft.irfft(f * np.conj(f), m)[: max_lag + 1]
    return ac / ac[0] if ac[0] > 0 else np.zeros(max_lag + 1)


def plot_temporal(res, time, ax=None, *, test=None, alpha: float = 0.05, figsize=(7.4, 3.3), axes=None, data=None):
    """Residuals against time (left) and their autocorrelation function by lag (right), with the
    Durbin-Watson test (``temporal_autocorrelation_test``; computed unless given).

    Times must be unique for the test and the ACF (DHARMa's rule): with several series or repeated
    times, aggregate first with ``recalculate_residuals(res, group=time)``; otherwise the residuals
    are drawn and the panel says why there is no test. ``ax``: two Axes (residuals, ACF) or a
    Figure/SubFigure to draw into; a new figure when None (``axes=`` is its old name). ``time``:
    a column name (looked up in ``data``, the fitting data, or among the time columns the model
    knows) or one value per residual / per row of the fitting data, as for the test.
    Returns the Figure.
    """
    from matplotlib.lines import Line2D

    from glmmdiag import checks
    from glmmdiag.plots.residual import _check, _legend_below, _marker_size

    from glmmdiag.checks._columns import _column_values

    res = _check(res)
    r = np.asarray(res.residuals, float)
    t = np.asarray(_column_values(res, time, "time", data))
    ax = _style.renamed_argument(ax, axes, "axes")
    fig, (ax1, ax2) = _style.panel_axes(ax, 2, figsize, width_ratios=(3, 2))
    error = None
    if test is None:
        try:
            test = checks.temporal_autocorrelation_test(res, t)
        except (ValueError, ZeroDivisionError, FloatingPointError) as exc:
            error = str(exc)
    duplicated = error is not None and "duplicated" in error
    order = np.argsort(t, kind="stable")
    ts, rs = t[order], r[order]
    n = r.size
    try:
        tx = ts.astype(float) if ts.dtype.kind not in "Mm" else ts
    except (TypeError, ValueError):
        tx = np.arange(n)
    if not duplicated and n <= 2000:
        ax1.plot(tx, rs, color=PALETTE["muted"], lw=0.7, zorder=1)
    ax1.scatter(tx, rs, s=_marker_size(n) ** 2, color=PALETTE["points"], linewidths=0, zorder=2,
                alpha=0.8 if n <= 2000 else 0.5, rasterized=n > 2000)
    if np.asarray(tx).dtype.kind == "M":  # dates: concise labels that do not collide
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        loc = AutoDateLocator(maxticks=6)
        ax1.xaxis.set_major_locator(loc)
        ax1.xaxis.set_major_formatter(ConciseDateFormatter(loc))
    ax1.axhline(0.5, color=PALETTE["reference"], lw=0.8, ls=(0, (4, 3)))
    ax1.set_ylim(-0.04, 1.04)
    ax1.set_yticks([0, 0.25, 0.5, 0.75, 1], ["0", "0.25", "0.5", "0.75", "1"])
    ax1.set_xlabel(str(getattr(time, "name", None) or "Time"))
    ax1.set_ylabel("Scaled residual")
    ax1.set_title("Residuals over time")
    if duplicated:
        ax2.text(0.5, 0.5, "No Durbin-Watson test:\ntimes are not unique.\nAggregate per time with\n"
                 "recalculate_residuals(res, group=time)", ha="center", va="center", transform=ax2.transAxes,
                 fontsize="small", color="0.3")
        ax2.set_xticks([])
        ax2.set_yticks([])
        ax2.set_title("Autocorrelation")
        return fig
    max_lag = int(min(n - 1, max(1, round(10 * math.log10(n)))))
    ac = _acf(rs, max_lag)
    lags = np.arange(max_lag + 1)
    sig = test is not None and is_significant(test, alpha)
    col = PALETTE["signal"] if sig else PALETTE["neutral"]
    ax2.vlines(lags[1:], 0, ac[1:], color=col, lw=2.2 if max_lag <= 40 else 1.2)
    ax2.axhline(0, color=PALETTE["reference"], lw=0.8)
    ci = 1.96 / math.sqrt(n)
    ax2.axhspan(-ci, ci, color=PALETTE["fill"], alpha=0.3, lw=0)
    lim = max(0.25, float(np.max(np.abs(ac[1:]), initial=0)) * 1.15, ci * 1.4)
    ax2.set_ylim(-lim, lim)
    ax2.set_xlim(0.3, max_lag + 0.7)
    ax2.set_xlabel("Lag")
    ax2.set_ylabel("Autocorrelation")
    ax2.set_title("Autocorrelation")
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=col, lw=2.2), Patch(facecolor=PALETTE["fill"], alpha=0.3)]
    dw = (f"Durbin-Watson {fmt_num(test.statistic, 3)}, {fmt_p(test.p_value)}" if test is not None
          else "Durbin-Watson: not computed")
    labels = [dw, "95% band, no autocorrelation"]
    _legend_below(ax2, handles, labels, [sig, False], ncol=1)
    return fig


def _knn_weights(coords: np.ndarray, k: int):
    import scipy.sparse as sp
    from scipy.spatial import cKDTree

    n = coords.shape[0]
    k = int(min(k, n - 1))
    d, j = cKDTree(coords).query(coords, k=k + 1)
    d, j = d[:, 1:], j[:, 1:]
    if np.any(d <= 0):
        raise GlmmdiagError("duplicate locations: inverse-distance weights are undefined; aggregate with "
                         "recalculate_residuals(res, group=location)")
    W = sp.csr_matrix((1.0 / d.ravel(), (np.repeat(np.arange(n), k), j.ravel())), shape=(n, n))
    return W


def plot_spatial(res, x, y, ax=None, *, test=None, alpha: float = 0.05, title: str | None = None, data=None):
    """Map of the residuals (colour: 0 red, 0.5 white, 1 blue; size grows with the distance from
    0.5, so the map does not rely on colour alone) with Moran's I (``spatial_autocorrelation_test``;
    computed unless given: all-pairs 1/distance weights up to 5 000 locations, beyond that 1/distance
    over the 10 nearest neighbours, as the panel says). ``x``, ``y``: column names (looked up in
    ``data``, the fitting data, or among the coordinate columns the model knows) or one value per
    residual / per row of the fitting data. Returns the Axes."""
    from glmmdiag import checks
    from glmmdiag.plots.residual import _check

    from glmmdiag.checks._columns import _column_values

    res = _check(res)
    r = np.asarray(res.residuals, float)
    xc = np.asarray(_column_values(res, x, "x", data), float).reshape(-1)
    yc = np.asarray(_column_values(res, y, "y", data), float).reshape(-1)
    fig, ax = _style.new_axes(ax, figsize=(4.4, 3.8))
    weights_note = "1/distance weights"
    error = None
    if test is None:
        try:
            if r.size > SPATIAL_ALL_PAIRS_MAX:
                W = _knn_weights(np.column_stack([xc, yc]), K_NEIGHBOURS)
                test = checks.spatial_autocorrelation_test(res, weights=W)
                weights_note = f"1/distance, {K_NEIGHBOURS} nearest neighbours"
            else:
                test = checks.spatial_autocorrelation_test(res, xc, yc)
        except ValueError as exc:
            error = "duplicate locations" if "duplicate" in str(exc) else str(exc)
        except (ZeroDivisionError, FloatingPointError):  # constant residuals: Moran's I undefined
            error = "constant residuals"
    n = r.size
    base = 40.0 if n <= 200 else (24.0 if n <= 2000 else 3.0)
    size = base * (0.35 + 1.3 * np.abs(r - 0.5))
    sc = ax.scatter(xc, yc, c=r, s=size, cmap=PALETTE["diverging"], vmin=0, vmax=1, edgecolors="0.35",
                    linewidths=0.25 if n <= 2000 else 0, zorder=2, rasterized=n > 2000)
    cb = fig.colorbar(sc, ax=ax, shrink=0.85, pad=0.02)
    cb.set_label("Scaled residual")
    cb.set_ticks([0, 0.25, 0.5, 0.75, 1])
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(str(getattr(x, "name", None) or "x"))
    ax.set_ylabel(str(getattr(y, "name", None) or "y"))
    if error is not None:
        head = f"Moran's I: not computed ({error})"
        sig = False
    else:
        est = test.estimate or {}
        sig = is_significant(test, alpha)
        head = f"Moran's I = {fmt_num(test.statistic)} (expected {fmt_num(est.get('expected', math.nan))}), " \
               f"{fmt_p(test.p_value)}"
    ax.set_title(title if title is not None else "Residuals in space", fontsize="medium")
    from glmmdiag.plots.residual import _legend_below

    _legend_below(ax, None, [head, weights_note], [sig, False], ncol=1)
    return ax
