"""glmmdiag: generalized linear mixed models and simulation-based residual diagnostics."""
from glmmdiag.adapters import as_simulable, from_simulations
from glmmdiag.checks import (
    categorical_test,
    dispersion_test,
    generic_test,
    outlier_test,
    quantile_test,
    residual_tests,
    spatial_autocorrelation_test,
    temporal_autocorrelation_test,
    uniformity_test,
    zero_inflation_test,
)
from glmmdiag.compare import compare_families
from glmmdiag.fit import glmm
from glmmdiag.inference import anova, cld, confint, marginal_means, pairwise, wald_anova
from glmmdiag.plots import (
    plot_comparison,
    plot_diagnostics,
    plot_dispersion,
    plot_histogram,
    plot_qq,
    plot_residuals,
    plot_spatial,
    plot_temporal,
    plot_zero_inflation,
)
from glmmdiag.protocol import SimulableModel
from glmmdiag.residuals import recalculate_residuals, simulate_residuals
from glmmdiag.results import ResidualTests, ScaledResiduals, TestResult

__version__ = "0.1.0.dev0"
__all__ = [
    "glmm",
    "__version__",
    "simulate_residuals",
    "recalculate_residuals",
    "from_simulations",
    "as_simulable",
    "SimulableModel",
    "ScaledResiduals",
    "TestResult",
    "ResidualTests",
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
    "wald_anova",
    "anova",
    "marginal_means",
    "pairwise",
    "cld",
    "confint",
    "compare_families",
    "plot_diagnostics",
    "plot_qq",
    "plot_residuals",
    "plot_histogram",
    "plot_dispersion",
    "plot_zero_inflation",
    "plot_temporal",
    "plot_spatial",
    "plot_comparison",
]
