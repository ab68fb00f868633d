"""Calibration of the residual tests: a reduced study in ``make test`` (wide bands); the full study
is benchmarks/calibration.py (200 replicates per scenario), run by ``make calibrate``.

The reduced bands are wide on purpose: with 40 replicates a rejection rate has a binomial SD of
~0.035 at 0.05. They assert what must hold whatever the Monte-Carlo luck: the raw simulation tests
do not reject a correct Poisson GLMM more often than 15% of the time (they are conservative, as
DHARMa's), the dispersion test finds sigma = 0.5 observation-level overdispersion at least 80% of
the time with conditional simulation, and bootstrap-calibrated p-values look uniform under H0.

The calibrated p-values break ties between the observed and the bootstrap pivots at random
(``randomised_rank_pvalue``): the fast tests below pin that this makes them exactly uniform under
exchangeability however discrete the pivot, and reproducible from the seed.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import glmmdiag as gd
from glmmdiag.checks import _conservative_rank_pvalue, calibrated_tests, randomised_rank_pvalue

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
    # Uniform(0, 1) p-values (ties broken at random): mean 0.5, SD of a mean of 24 ~ 0.06
    assert np.all(np.abs(ps.mean(axis=0) - 0.5) < 0.2)
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


def test_randomised_rank_pvalue_all_tied_is_uniform():
    """Every bootstrap value equals the observed one: the rank carries no information and the p-value is the
    tie-breaking draw itself, p = u (two-sided 2 min(u, 1 - u)) -- uniform on [0, 1], where the untie-broken
    rule (1 + #{at least as extreme}) / (B + 1) is 1 every time."""
    rng = np.random.default_rng(20240613)
    u = rng.random(4000)
    boot = np.full(39, 0.7)
    for how in ("p", "upper", "two"):
        p = np.array([randomised_rank_pvalue(0.7, boot, how, ui)[0] for ui in u])
        closed_form = u if how != "two" else 2 * np.minimum(u, 1 - u)
        np.testing.assert_allclose(p, closed_form, rtol=0, atol=1e-15)
        assert stats.kstest(p, "uniform").pvalue > 0.01
        assert abs(np.mean(p <= 0.05) - 0.05) < 0.012
        assert _conservative_rank_pvalue(0.7, boot, how) == 1.0
    assert randomised_rank_pvalue(0.7, boot, "p", 0.5)[1] == 39


def test_randomised_rank_pvalue_closed_form_with_partial_ties():
    """A = 1 bootstrap value more extreme, m = 3 tied, B = 39: p = (1 + 4u) / 40, so p <= 0.05 exactly when
    u <= 1/4 -- P(reject) = (alpha (B + 1) - A) / (m + 1), the exact conditional size of the randomised rule."""
    boot = np.r_[0.01, 0.2, 0.2, 0.2, np.linspace(0.3, 1.0, 35)]  # small = extreme ("p")
    assert boot.size == 39
    p, ties = randomised_rank_pvalue(0.2, boot, "p", 0.25)
    assert ties == 3 and p == pytest.approx(0.05, abs=1e-15)
    assert randomised_rank_pvalue(0.2, boot, "p", 0.0)[0] == pytest.approx(1 / 40)
    assert randomised_rank_pvalue(0.2, boot, "p", 1.0)[0] == pytest.approx(5 / 40)
    assert _conservative_rank_pvalue(0.2, boot, "p") == pytest.approx(5 / 40)
    # large = extreme ("upper") on the mirrored values; two-sided from the lower tail
    assert randomised_rank_pvalue(-0.2, -boot, "upper", 0.25)[0] == pytest.approx(0.05)
    assert randomised_rank_pvalue(0.2, boot, "two", 0.25)[0] == pytest.approx(0.10)
    with pytest.raises(ValueError):
        randomised_rank_pvalue(0.2, boot, "sideways", 0.5)
    with pytest.raises(ValueError):
        randomised_rank_pvalue(float("nan"), boot, "p", 0.5)


@pytest.mark.parametrize("how", ["p", "upper", "two"])
def test_randomised_rank_pvalue_exact_under_exchangeable_discrete_pivots(how):
    """T_0, ..., T_B iid from a discrete law (Poisson(0.7): most values tie): the randomised p-value is
    Uniform(0, 1), while the untie-broken one rejects far less often than alpha -- the conservativeness the
    calibration study measured for the outlier test's p-value."""
    rng = np.random.default_rng(7)
    T = rng.poisson(0.7, size=(4000, 40)).astype(float)
    u = rng.random(4000)
    p = np.array([randomised_rank_pvalue(t[0], t[1:], how, ui)[0] for t, ui in zip(T, u)])
    p_old = np.array([_conservative_rank_pvalue(t[0], t[1:], how) for t in T])
    assert stats.kstest(p, "uniform").pvalue > 0.01
    for alpha in (0.05, 0.1, 0.5):
        assert abs(np.mean(p <= alpha) - alpha) < 4 * np.sqrt(alpha * (1 - alpha) / p.size)
    assert np.all(p <= p_old + 1e-12)
    assert np.mean(p_old <= 0.05) < 0.03


def test_calibrated_tests_tie_breaking_is_seeded():
    """Same seed, same calibrated p-values and tie-breaking draws (for n_jobs see test_calibrated_tests_interface);
    another seed, another draw. The randomised p-value never exceeds the untie-broken one; ties are counted and
    noted."""
    df = cal.simulate_data("poisson", np.random.default_rng(3))
    fit = gd.glmm("y ~ x + (1 | g)", df, family="poisson")
    res = gd.simulate_residuals(fit, 40, seed=2)  # no outlier: raw outlier p-value 1, as for 2 of 7 refits
    names = ("outliers", "uniformity", "dispersion")
    a = calibrated_tests(res, 7, names, seed=11)
    b = calibrated_tests(res, 7, names, seed=11)
    c = calibrated_tests(res, 7, names, seed=12)
    for t in names:
        assert a[t].p_value == b[t].p_value
        assert a[t].plot_data["tie_break_u"] == b[t].plot_data["tie_break_u"]
        assert a[t].plot_data["tie_break_u"] != c[t].plot_data["tie_break_u"]
        assert 0 < a[t].p_value <= a[t].plot_data["p_value_conservative"] <= 1
        how = a[t].plot_data["bootstrap_compares"]
        pivot = a[t].estimate["uncalibrated p-value"] if how == "p" else a[t].statistic
        ties = int(np.sum(a[t].plot_data["bootstrap_values"] == pivot))
        assert a[t].plot_data["bootstrap_ties"] == ties
        assert ("tie with the observed" in a[t].note or "ties with the observed" in a[t].note) == (ties > 0)
    assert a["outliers"].plot_data["bootstrap_ties"] > 0


def test_calibrated_test_with_no_information_says_so():
    """Continuous data: no zeros observed or simulated, every zero-inflation p-value is 1 -- all tied. The
    calibrated p-value is then the tie-breaking draw itself, and the note says the test is uninformative."""
    df = cal.simulate_data("gauss_het", np.random.default_rng(2))
    fit = gd.glmm("y ~ x + (1 | g)", df, family="gaussian")
    res = gd.simulate_residuals(fit, 40, seed=1)
    out = calibrated_tests(res, 4, ("zero_inflation",), seed=3)["zero_inflation"]
    assert out.plot_data["bootstrap_ties"] == 4
    assert out.p_value == pytest.approx(out.plot_data["tie_break_u"])
    assert out.plot_data["p_value_conservative"] == 1.0
    assert "pure random draw" in out.note
