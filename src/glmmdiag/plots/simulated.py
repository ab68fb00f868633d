"""Observed statistic against its simulated distribution: dispersion and zero inflation."""
from __future__ import annotations

import math

import numpy as np

from glmmdiag.plots import _style
from glmmdiag.errors import GlmmdiagError
from glmmdiag.plots._style import PALETTE, fmt_num, fmt_p, is_significant

__all__ = ["plot_dispersion", "plot_zero_inflation", "plot_simulated_lrt"]


def _hist_simulated(ax, sims, obs, *, integer: bool, sig: bool, label_obs: str, ref: float | None,
                    value_range=None):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    sims = np.asarray(sims, float)
    sims = sims[np.isfinite(sims)]
    if value_range is not None:  # common bins (plot_comparison): pretend the data span the range
        lo_r, hi_r = value_range
    else:
        lo_r, hi_r = math.inf, -math.inf
    if integer and sims.size:
        lo = math.floor(min(sims.min(), obs, lo_r))
        hi = math.ceil(max(sims.max(), obs, hi_r))
        span = hi - lo
        step = max(1, int(math.ceil((span + 1) / 40)))
        edges = np.arange(lo - 0.5 * step, hi + step, step)
    else:
        nb = int(min(40, max(8, sims.size // 8)))
        lo = min(sims.min(initial=obs), obs, lo_r)
        hi = max(sims.max(initial=obs), obs, hi_r)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        pad = 0.02 * (hi - lo)
        edges = np.linspace(lo - pad, hi + pad, nb + 1)
    ax.hist(sims, bins=edges, color=PALETTE["fill"], edgecolor="white", lw=0.5, zorder=2)
    col = PALETTE["signal"] if sig else PALETTE["neutral"]
    ax.axvline(obs, color=col, lw=2.6 if sig else 2.0, zorder=3)
    handles = [Patch(facecolor=PALETTE["fill"]), Line2D([], [], color=col, lw=2.4)]
    labels = [f"simulated ({sims.size:,})", label_obs]
    if ref is not None:
        ax.axvline(ref, color=PALETTE["reference"], lw=0.9, ls=(0, (4, 3)), zorder=2.5)
        handles.append(Line2D([], [], color=PALETTE["reference"], lw=0.9, ls=(0, (4, 3))))
        labels.append("expected")
    return handles, labels


def _legend(ax, handles, labels, highlight):
    from glmmdiag.plots.residual import _legend_below

    _legend_below(ax, handles, labels, highlight, ncol=1)


def plot_dispersion(res, ax=None, *, test=None, alpha: float = 0.05, title: str | None = "Dispersion test",
                    value_range=None):
    """The dispersion statistic of the data against its distribution over the simulations.

    Shown on the ratio scale (each simulated statistic divided by their mean), so the observed line
    sits at the reported dispersion (1 = as the model expects; < 1 under-, > 1 overdispersion) and
    figures of different models share one axis. ``test``: a ``dispersion_test`` result (default:
    ``dispersion_test(res)``); for the Pearson kind the chi-square reference density is drawn.
    ``value_range``: (low, high) the histogram bins must cover (common bins across figures).
    Returns the Axes.
    """
    from glmmdiag import checks
    from glmmdiag.plots.residual import _check

    res = _check(res)
    if test is None:
        test = checks.dispersion_test(res)
    fig, ax = _style.new_axes(ax, figsize=(4.2, 3.2))
    sig = is_significant(test, alpha)
    label = f"observed: {_style.fmt_ratio(test.statistic)} ({fmt_p(test.p_value, test.n_sim)})"
    pdata = test.plot_data
    if "simulated" in pdata:
        sims = np.asarray(pdata["simulated"], float)
        m = float(np.nanmean(sims)) if sims.size else math.nan
        scale = m if (math.isfinite(m) and m != 0) else 1.0
        handles, labels = _hist_simulated(ax, sims / scale, float(pdata["observed"]) / scale, integer=False, sig=sig,
                                          label_obs=label, ref=1.0, value_range=value_range)
        ax.set_xlabel("Dispersion ratio")
        ax.set_ylabel("Simulations")
    else:  # Pearson chi-square / df against chi2(df) / df
        from scipy import stats

        dfree = float((test.parameter or {}).get("df", math.nan))
        xs = np.linspace(max(0.0, min(test.statistic, 1 - 4 * math.sqrt(2 / dfree)) * 0.9),
                         max(test.statistic, 1 + 4 * math.sqrt(2 / dfree)) * 1.05, 300)
        ax.fill_between(xs, stats.chi2.pdf(xs * dfree, dfree) * dfree, color=PALETTE["fill"], alpha=0.8, lw=0)
        col = PALETTE["signal"] if sig else PALETTE["neutral"]
        ax.axvline(test.statistic, color=col, lw=2.4)
        ax.axvline(1.0, color=PALETTE["reference"], lw=0.9, ls=(0, (4, 3)))
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=PALETTE["fill"]), Line2D([], [], color=col, lw=2.4)]
        df_txt = np.format_float_positional(dfree, precision=3, fractional=False, trim="-")
        labels = [f"χ²({df_txt}) / df", label]
        ax.set_xlabel("Pearson χ² / residual df")
        ax.set_ylabel("Density")
        ax.set_ylim(bottom=0)
    _legend(ax, handles, labels, [False, sig, False])
    if title:
        ax.set_title(title)
    return ax


def plot_zero_inflation(res, ax=None, *, test=None, alpha: float = 0.05,
                        title: str | None = "Zero-inflation test", value_range=None):
    """Observed number of zeros against the numbers in the simulations (``zero_inflation_test``).
    ``value_range``: (low, high) the bins must cover. Returns the Axes."""
    from glmmdiag import checks
    from glmmdiag.plots.residual import _check

    res = _check(res)
    if test is None:
        test = checks.zero_inflation_test(res)
    fig, ax = _style.new_axes(ax, figsize=(4.2, 3.2))
    sig = is_significant(test, alpha)
    obs = float(test.plot_data["observed"])
    sims = np.asarray(test.plot_data["simulated"], float)
    ratio = test.statistic
    if isinstance(ratio, float) and math.isnan(ratio):
        lab = f"observed: {int(obs):,} (no zeros simulated)"
    else:
        lab = f"observed: {int(obs):,} (ratio {_style.fmt_ratio(ratio)}, {fmt_p(test.p_value, test.n_sim)})"
    handles, labels = _hist_simulated(ax, sims, obs, integer=True, sig=sig, label_obs=lab, ref=None,
                                      value_range=value_range)
    ax.set_xlabel("Number of zeros")
    ax.set_ylabel("Simulations")
    _legend(ax, handles, labels, [False, sig])
    if title:
        ax.set_title(title)
    return ax


def plot_simulated_lrt(test, ax=None, *, alpha: float = 0.05, title: str | None = "Parametric bootstrap LRT"):
    """The observed likelihood-ratio statistic against its bootstrap distribution under m0
    (``simulate_lrt``), with the chi-square reference density of the same df for comparison.

    The chi-square reference is what ``anova`` uses; on the boundary (a variance tested against
    zero) it is too conservative, and the histogram shows by how much. Returns the Axes.
    """
    from scipy import stats

    sims = np.asarray((test.plot_data or {}).get("simulated", []), float)
    if sims.size == 0:
        raise GlmmdiagError("plot_simulated_lrt needs a simulate_lrt result (its simulated statistics)")
    fig, ax = _style.new_axes(ax, figsize=(4.2, 3.2))
    sig = is_significant(test, alpha)
    obs = float(test.statistic)
    hi = max(float(np.quantile(sims, 0.995)), obs) * 1.08 + 1e-9
    edges = np.linspace(min(0.0, sims.min()), hi, 31)
    ax.hist(np.clip(sims, edges[0], edges[-1]), bins=edges, density=True, color=PALETTE["fill"],
            edgecolor="white", lw=0.5, zorder=2)
    col = PALETTE["signal"] if sig else PALETTE["neutral"]
    ax.axvline(obs, color=col, lw=2.6 if sig else 2.0, zorder=3)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    dfree = float((test.parameter or {}).get("df", math.nan))
    handles = [Patch(facecolor=PALETTE["fill"]),
               Line2D([], [], color=col, lw=2.4)]
    labels = [f"simulated under m0 ({sims.size:,})", f"observed LR {fmt_num(obs, 3)} ({fmt_p(test.p_value, test.n_sim)})"]
    highlight = [False, sig]
    if math.isfinite(dfree) and dfree > 0:
        xs = np.linspace(max(edges[0], 1e-3), edges[-1], 300)
        ax.plot(xs, stats.chi2.pdf(xs, dfree), color=PALETTE["reference"], lw=1.0, ls=(0, (4, 3)), zorder=2.5)
        p_chi = (test.estimate or {}).get("p_chisq", math.nan)
        df_txt = np.format_float_positional(dfree, precision=3, fractional=False, trim="-")
        handles.append(Line2D([], [], color=PALETTE["reference"], lw=1.0, ls=(0, (4, 3))))
        labels.append(f"χ²({df_txt}) reference ({fmt_p(p_chi)})")
        highlight.append(False)
    ax.set_xlabel("Likelihood-ratio statistic")
    ax.set_ylabel("Density")
    ax.set_ylim(bottom=0)
    _legend(ax, handles, labels, highlight)
    if title:
        ax.set_title(title)
    return ax
