"""Calibration of the residual tests: a reduced study in ``make test`` (wide bands); the full study
is benchmarks/calibration.py (200 replicates per scenario), run by ``make calibrate``.

The reduced bands are wide on purpose: with 40 replicates a rejection rate has a binomial SD of
~0.035 at 0.05. They assert what must hold whatever the Monte-Carlo luck: the raw simulation tests
do not reject a correct Poisson GLMM more often than 15% of the time (they are conservative, as
DHARMa's), the dispersion test finds sigma = 0.5 observation-level overdispersion at least 80% of
the time with conditional simulation, and bootstrap-calibrated p-values look uniform under H0.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import glmmdiag as gd
from glmmdiag.checks import calibrated_tests

_spec = importlib.util.spec_from_file_location(
    "glmmdiag_calibration", Path(__file__).resolve().parents[1] / "benchmarks" / "calibration.py"
)
cal = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cal)


@pytest.fixture(scope="module")
def reduced():
    raw = cal.run_study(["poisson", "poisson_olre"], n_rep=40, modes=("conditional",), n_sim=100, seed=7, n_jobs=1)
    assert raw["error"].isna().all()
    return cal.summarise(raw).set_index(["scenario", "test"])


def test_reduced_type_one_error_band(reduced):
    h0 = reduced.loc["poisson"]
    for test in cal.TESTS:
        assert h0.loc[test, "rejection_rate"] <= 0.15, f"{test}: {h0.loc[test, 'rejection_rate']:.3f}"


def test_reduced_power_against_overdispersion(reduced):
    assert reduced.loc[("poisson_olre", "dispersion"), "rejection_rate"] >= 0.8
    assert reduced.loc[("poisson_olre", "dispersion_pearson"), "rejection_rate"] >= 0.8


def test_calibrated_p_values_look_uniform_under_h0():
    ps = []
    for rep in range(24):
        df = cal.simulate_data("poisson", np.random.default_rng(1000 + rep))
        fit = gd.glmm("y ~ x + (1 | g)", df, family="poisson")
        res = gd.simulate_residuals(fit, 100, seed=rep)
        out = calibrated_tests(res, 19, ("uniformity", "dispersion"), seed=rep)
        ps.append([out["uniformity"].p_value, out["dispersion"].p_value])
    ps = np.array(ps)
    # uniform p-values on {1/20, ..., 1}: mean 0.525, SD of a mean of 24 ~ 0.06
    assert np.all(np.abs(ps.mean(axis=0) - 0.525) < 0.2)
    assert np.mean(ps <= 0.05) <= 0.2


def test_calibrated_tests_interface():
    df = cal.simulate_data("poisson", np.random.default_rng(3))
    fit = gd.glmm("y ~ x + (1 | g)", df, family="poisson")
    res = gd.simulate_residuals(fit, 50, seed=1)
    a = calibrated_tests(res, 5, ("dispersion",), seed=4)
    b = calibrated_tests(res, 5, ("dispersion",), seed=4, n_jobs=2)
    assert a["dispersion"].p_value == b["dispersion"].p_value
    assert "uncalibrated p-value" in a["dispersion"].estimate
    assert np.size(a["dispersion"].plot_data["bootstrap_values"]) == 5
    y, S, f = np.zeros(10), np.ones((10, 5)), np.ones(10)
    with pytest.raises(TypeError, match="refitted"):
        calibrated_tests(gd.simulate_residuals(gd.from_simulations(y, S, f), seed=1), 5)
    with pytest.raises(ValueError, match="unknown tests"):
        calibrated_tests(res, 5, ("normality",))


def test_submodel_scenarios_smoke():
    """Issue 13's scenarios (the full numbers: ``benchmarks/calibration.py --scenarios poisson_zi zip gauss_het
    gauss_het_disp``): they fit and run, and the misspecified fits are caught -- zero-inflated counts fitted
    as Poisson by the zero-inflation test, heteroscedastic gaussian data fitted with a constant SD by the
    quantile test. The correctly specified fits (ZIP, ``dispformula="~ x"``) carry their submodels."""
    scen = ["poisson_zi", "zip", "gauss_het", "gauss_het_disp"]
    raw = cal.run_study(scen, n_rep=4, modes=("conditional",), n_sim=100, seed=11, n_jobs=1)
    assert raw["error"].isna().all(), raw["error"].dropna().tolist()
    summ = cal.summarise(raw).set_index(["scenario", "test"])
    assert summ.loc[("poisson_zi", "zero_inflation"), "rejection_rate"] >= 0.75
    assert summ.loc[("gauss_het", "quantiles"), "rejection_rate"] >= 0.75
    for sc in ("zip", "gauss_het_disp"):  # every test ran (zero inflation: counts only)
        tests = set(summ.loc[sc].index)
        assert {"uniformity", "dispersion", "outliers", "quantiles"} <= tests
        assert ("zero_inflation" in tests) == (sc == "zip")
    rng = np.random.default_rng(5)
    zip_fit = cal.fit_scenario("zip", cal.simulate_data("poisson_zi", rng))
    assert zip_fit.fixef_zi.size == 1
    het_fit = cal.fit_scenario("gauss_het_disp", cal.simulate_data("gauss_het", rng))
    assert het_fit.fixef_disp.size == 2 and het_fit.fixef_disp.iloc[1] > 0  # log SD rises with x
    # the bootstrap-calibrated tests refit the submodels
    out = calibrated_tests(gd.simulate_residuals(zip_fit, 50, seed=1), 3, ("zero_inflation", "dispersion"), seed=2)
    assert all(0 < out[t].p_value <= 1 for t in ("zero_inflation", "dispersion"))
