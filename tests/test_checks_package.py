"""The tests as a package (glmmdiag/checks/): public import paths and the one p_adjust."""
import importlib

import numpy as np
import pytest

import glmmdiag
from glmmdiag import checks
from glmmdiag.errors import GlmmdiagError


@pytest.mark.parametrize("module, name", [
    ("uniformity", "uniformity_test"), ("dispersion", "dispersion_test"), ("outliers", "outlier_test"),
    ("zero_inflation", "zero_inflation_test"), ("generic", "generic_test"), ("quantiles", "quantile_test"),
    ("categorical", "categorical_test"), ("autocorrelation", "temporal_autocorrelation_test"),
    ("autocorrelation", "spatial_autocorrelation_test"), ("calibration", "calibrated_tests"),
    ("battery", "residual_tests"), ("pvalues", "p_adjust"), ("pvalues", "randomised_rank_pvalue"),
])
def test_each_test_lives_in_the_module_its_name_says_and_keeps_its_import_paths(module, name):
    fn = getattr(importlib.import_module(f"glmmdiag.checks.{module}"), name)
    assert getattr(checks, name) is fn
    if name in glmmdiag.__all__:
        assert getattr(glmmdiag, name) is fn


def test_one_p_adjust_for_the_residual_tests_and_pairwise_comparisons():
    from glmmdiag.inference import contrasts

    assert contrasts.p_adjust is checks.p_adjust
    p = np.array([0.01, 0.04, 0.03, 0.2])
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.2), "holm" / "BH" / "bonferroni")
    np.testing.assert_allclose(checks.p_adjust(p, "holm"), [0.04, 0.09, 0.09, 0.2])
    np.testing.assert_allclose(checks.p_adjust(p, "BH"), [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    np.testing.assert_allclose(checks.p_adjust(p, "bonferroni"), [0.04, 0.16, 0.12, 0.8])
    np.testing.assert_allclose(checks.p_adjust(p, "none"), p)
    np.testing.assert_allclose(checks.holm(p), checks.p_adjust(p, "holm"))
    np.testing.assert_allclose(checks.benjamini_hochberg(p), checks.p_adjust(p, "BH"))
    with pytest.raises(GlmmdiagError, match="adjust must be one of"):
        checks.p_adjust(p, "hommel")
