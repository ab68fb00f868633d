"""Diagnostic figures of simulated scaled residuals (matplotlib).

Each function draws results that were already computed -- pass ``tests=``/``test=`` to reuse the
ones you print -- and computes only what is missing, with ``glmmdiag.checks``. Panels take
``ax=`` and return the Axes; multi-panel figures return the Figure. Nothing calls ``show()``.

Colours: the Okabe-Ito colour-blind-safe palette (``PALETTE``, editable); significant results are
also bold/thick, never colour alone. Fonts, line widths and sizes follow matplotlib's rc settings
(``plt.rc_context``, style sheets).

========================  ==============================================================
``plot_diagnostics``      QQ plot + residuals vs predicted, verdict title (DHARMa's plot)
``plot_qq``               uniform QQ plot with KS, dispersion and outlier tests
``plot_residuals``        residuals vs ranked predictor: quantile curves, bands, outliers;
                          box plots per level for a categorical predictor
``plot_histogram``        histogram with the outliers in edge bars
``plot_dispersion``       observed vs simulated dispersion statistic
``plot_zero_inflation``   observed vs simulated number of zeros
``plot_temporal``         residuals over time and their autocorrelation (Durbin-Watson)
``plot_spatial``          map of residuals (Moran's I)
``plot_comparison``       one row per model (e.g. ``compare_families``), shared axes
``plot_simulated_lrt``    bootstrap LR distribution of ``simulate_lrt`` against chi-square
========================  ==============================================================
"""
from glmmdiag.plots._style import OKABE_ITO, PALETTE
from glmmdiag.plots.autocorrelation import plot_spatial, plot_temporal
from glmmdiag.plots.comparison import plot_comparison
from glmmdiag.plots.residual import plot_diagnostics, plot_histogram, plot_qq, plot_residuals
from glmmdiag.plots.simulated import plot_dispersion, plot_simulated_lrt, plot_zero_inflation

__all__ = [
    "plot_diagnostics",
    "plot_qq",
    "plot_residuals",
    "plot_histogram",
    "plot_dispersion",
    "plot_zero_inflation",
    "plot_temporal",
    "plot_spatial",
    "plot_comparison",
    "plot_simulated_lrt",
    "PALETTE",
    "OKABE_ITO",
]
