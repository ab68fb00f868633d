"""Tests on simulated scaled residuals. Each returns a frozen ``TestResult`` (results.py) that prints
like R's htest and carries what its plot needs; nothing here draws.

Simulation-based p-values (``dispersion_test``, ``zero_inflation_test``, ``generic_test``,
the Monte-Carlo ``outlier_test``) carry ``mc_se``, their Monte-Carlo standard error: the binomial
SE sqrt(p (1 - p) / n_sim) of the tail proportion, doubled for two-sided p-values.

Alternatives are "two-sided" (also accepted: "two.sided"), "greater" and "less".

Degenerate data. A test whose statistic is 0/0 for the data at hand (the dispersion ratio when the
observed and every simulated response have zero spread, e.g. all zeros; a Durbin-Watson or Moran
statistic of constant residuals; a spread test with fewer than two observations) is *undefined*: it
returns NaN for the statistic and the p-value, says why in ``note``, and issues an
``UndefinedTestWarning``; it never reports p = 0 or a finite statistic from a 0/0. Ratios x/0 with
x > 0 (the observed data vary, no simulation does) are infinite and their p-value is the usual
empirical one. Observed-vs-simulated counts that are 0 everywhere (no zeros observed or simulated)
keep their p-value (the counts agree: p = 1) with a NaN ratio and a note.

One module per family of tests (all importable from ``glmmdiag.checks`` as before):

=====================  ==========================================================================
module                 tests and helpers
=====================  ==========================================================================
``uniformity``         ``uniformity_test`` (Kolmogorov-Smirnov)
``dispersion``         ``dispersion_test`` (simulation, refit, Pearson)
``zero_inflation``     ``zero_inflation_test``
``generic``            ``generic_test`` (any summary, observed vs simulated)
``outliers``           ``outlier_test`` (binomial, Monte-Carlo bootstrap)
``quantiles``          ``quantile_test``
``categorical``        ``categorical_test``
``autocorrelation``    ``temporal_autocorrelation_test``, ``spatial_autocorrelation_test``,
                       ``durbin_watson_pvalue``
``calibration``        ``calibrated_tests`` (parametric bootstrap of the whole procedure)
``battery``            ``residual_tests``
``pvalues``            ``p_adjust`` (Holm, BH, Bonferroni, Tukey), ``randomised_rank_pvalue``
=====================  ==========================================================================
"""
from __future__ import annotations

from glmmdiag.checks._columns import _column_values, _model_column, _natural_order
from glmmdiag.checks._common import _alt, _check_res, _generic_p, _undefined
from glmmdiag.checks.autocorrelation import (
    _dw_eigenvalues,
    _dw_pvalue,
    durbin_watson_pvalue,
    spatial_autocorrelation_test,
    temporal_autocorrelation_test,
)
from glmmdiag.checks.battery import residual_tests
from glmmdiag.checks.calibration import _CALIBRATABLE, calibrated_tests
from glmmdiag.checks.categorical import _brown_forsythe, _level_codes, categorical_test
from glmmdiag.checks.dispersion import dispersion_test
from glmmdiag.checks.generic import generic_test
from glmmdiag.checks.outliers import outlier_test
from glmmdiag.checks.pvalues import (
    _conservative_rank_pvalue,
    benjamini_hochberg,
    holm,
    p_adjust,
    randomised_rank_pvalue,
)
from glmmdiag.checks.quantiles import _curve, _quantile_lp, _rank01, _spline_basis, quantile_test
from glmmdiag.checks.uniformity import uniformity_test
from glmmdiag.checks.zero_inflation import zero_inflation_test

__all__ = [
    "uniformity_test",
    "dispersion_test",
    "outlier_test",
    "zero_inflation_test",
    "generic_test",
    "quantile_test",
    "categorical_test",
    "temporal_autocorrelation_test",
    "spatial_autocorrelation_test",
    "residual_tests",
    "calibrated_tests",
    "randomised_rank_pvalue",
    "durbin_watson_pvalue",
    "p_adjust",
    "benjamini_hochberg",
    "holm",
]
