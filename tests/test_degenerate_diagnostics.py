"""Degenerate data in the diagnostics: all-zero and constant responses, simulations with a single
value, one or two rows, and the numerically stable spread behind the dispersion test.

Each expectation is closed-form: constructed simulation matrices whose spreads (sample variances
of y - fitted) and ratios are known exactly."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import glmmdiag as gd
from glmmdiag.errors import UndefinedTestWarning
from glmmdiag.report import _plain

N_SIM = 40


def _res(y, S, f, **kw):
    return gd.simulate_residuals(gd.from_simulations(np.asarray(y, float), np.asarray(S, float),
                                                     np.asarray(f, float)), seed=1, **kw)


# ------------------------------------------------------------------ the spread itself
def test_row_variances_exact_zero_for_constant_rows():
    from glmmdiag.simulate import row_variances

    D = np.full((3, 7), 0.1)  # 7 * 0.1 is not exactly 0.7: the one-pass formula leaves +-1e-17
    D[1] = -3.3
    D[2] = 1e9 + 0.1
    assert np.array_equal(row_variances(D), np.zeros(3))
    assert row_variances(np.array([0.1, 0.1, 0.1]))[0] == 0.0


def test_row_variances_with_a_huge_offset_match_the_noise_alone():
    from glmmdiag.simulate import row_variances

    rng = np.random.default_rng(4)
    noise = rng.normal(0, 3.0, size=(5, 200))
    ref = noise.var(axis=1, ddof=1)
    assert np.allclose(row_variances(noise), ref, rtol=1e-12)
    assert np.allclose(row_variances(1e9 + noise), ref, rtol=1e-6)


def test_row_variances_closed_form_and_small_n():
    from glmmdiag.simulate import row_variances

    # {1, 2, 3, 4}: mean 2.5, sum of squares 5, variance 5 / 3
    assert row_variances(np.array([[1.0, 2, 3, 4]]))[0] == pytest.approx(5 / 3, rel=1e-15)
    assert row_variances(np.array([[2.0, 5.0]]))[0] == pytest.approx(4.5, rel=1e-15)
    assert np.isnan(row_variances(np.array([[7.0]]))[0])


def test_dispersion_ratio_with_huge_offset_equals_ratio_on_the_noise():
    rng = np.random.default_rng(1)
    n = 30
    y, S = rng.normal(size=n), rng.normal(size=(n, N_SIM))
    a = gd.dispersion_test(_res(y, S, np.zeros(n)))
    b = gd.dispersion_test(_res(1e9 + y, 1e9 + S, np.zeros(n)))
    assert b.statistic == pytest.approx(a.statistic, rel=1e-6)
    assert b.p_value == a.p_value
    # closed form: the ratio is var(y) / mean_j var(S_j)
    assert a.statistic == pytest.approx(np.var(y, ddof=1) / np.mean(np.var(S, axis=0, ddof=1)), rel=1e-12)


def test_constructed_matrix_with_known_ratio():
    # observed deviations +-2 around the fitted values, simulations +-1: spread ratio exactly 4
    n = 10
    f = np.linspace(1.0, 2.0, n)
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    y = f + 2 * sign
    S = f[:, None] + sign[:, None] * np.ones((n, N_SIM))
    t = gd.dispersion_test(_res(y, S, f))
    assert t.statistic == pytest.approx(4.0, rel=1e-13)
    assert t.p_value == 0.0 and t.note is None


# ------------------------------------------------------------------ dispersion undefined (0/0)
@pytest.mark.parametrize("value,fitted", [(0.0, 0.1), (3.7, 3.7), (0.0, 1e-9)])
def test_constant_observed_and_simulated_dispersion_is_undefined(value, fitted):
    n = 25
    res = _res(np.full(n, value), np.full((n, N_SIM), value), np.full(n, fitted))
    assert res.obs_stats["spread"] == 0.0
    assert np.array_equal(res.sim_stats["spread"], np.zeros(N_SIM))
    with pytest.warns(UndefinedTestWarning, match="all constant"):
        t = gd.dispersion_test(res)
    assert math.isnan(t.statistic) and math.isnan(t.p_value)
    assert t.note.startswith("undefined: the observed and simulated responses are all constant")
    assert f"({value:g})" in t.note
    assert not t.significant()
    assert "p-value = NA" in str(t)


def test_all_zero_poisson_like_through_residual_tests_and_report_wording():
    n = 30
    res = _res(np.zeros(n), np.zeros((n, N_SIM)), np.full(n, 0.1))
    with pytest.warns(UndefinedTestWarning):
        rt = gd.residual_tests(res)
    d = rt.dispersion
    assert math.isnan(d.p_value) and math.isnan(d.statistic)
    # every observation ties with all its simulations: the residuals are tie-breaking noise
    assert "pure tie-breaking noise" in rt.uniformity.note
    verdict, sig = _plain("dispersion", {"statistic": None, "p_value": None, "note": d.note}, 0.05)
    assert not sig
    assert "overdispersion" not in verdict and "underdispersion" not in verdict
    assert verdict.startswith("dispersion undefined for these data")


def test_dispersion_with_one_observation_is_undefined():
    res = _res([1.0], np.arange(N_SIM, dtype=float)[None, :], [1.0])
    with pytest.warns(UndefinedTestWarning, match="at least 2 observations"):
        t = gd.dispersion_test(res)
    assert math.isnan(t.statistic) and math.isnan(t.p_value)


def test_two_observations_give_the_exact_ratio():
    # spreads of two values a, b: (a - b)^2 / 2
    y = np.array([0.0, 4.0])
    S = np.zeros((2, N_SIM))
    S[1] = 2.0
    t = gd.dispersion_test(_res(y, S, np.zeros(2)))
    assert t.statistic == pytest.approx(8.0 / 2.0)


def test_simulations_without_spread_but_observed_with_give_infinite_ratio():
    n = 20
    y = np.r_[np.zeros(n - 1), 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UndefinedTestWarning)
        t = gd.dispersion_test(_res(y, np.zeros((n, N_SIM)), np.full(n, 0.1)))
    assert t.statistic == math.inf and t.p_value == 0.0
    assert "cannot produce the observed variation" in t.note
    verdict, sig = _plain("dispersion", {"statistic": None, "p_value": 0.0}, 0.05)  # JSON turns inf into None
    assert verdict == "evidence of overdispersion" and sig


# ------------------------------------------------------------------ the other tests on the same data
def test_zero_ratio_without_zeros_keeps_its_p_value_and_says_why():
    n = 20
    res = _res(np.full(n, 3.7), np.full((n, N_SIM), 3.7), np.full(n, 3.7))
    z = gd.zero_inflation_test(res)
    assert math.isnan(z.statistic) and z.p_value == 1.0
    assert "0/0" in z.note


def test_temporal_and_spatial_on_constant_residuals_are_undefined():
    n = 16
    res = _res(np.ones(n), np.zeros((n, N_SIM)), np.full(n, 0.1), pit="dharma")  # every residual is exactly 1
    assert np.all(res.residuals == 1.0)
    with pytest.warns(UndefinedTestWarning, match="Durbin-Watson"):
        t = gd.temporal_autocorrelation_test(res, np.arange(n))
    assert math.isnan(t.statistic) and math.isnan(t.p_value)
    with pytest.warns(UndefinedTestWarning, match="Moran"):
        s = gd.spatial_autocorrelation_test(res, np.arange(n) % 4, np.arange(n) // 4)
    assert math.isnan(s.statistic) and math.isnan(s.p_value)


def test_too_few_rows_for_temporal_and_spatial_tests_are_clear_errors():
    res = _res([1.0, 3.0], np.random.default_rng(2).poisson(2, (2, N_SIM)), [2.0, 2.0])
    with pytest.raises(gd.GlmmdiagError, match="at least 3 observations; got 2"):
        gd.temporal_autocorrelation_test(res, [1, 2])
    with pytest.raises(gd.GlmmdiagError, match="at least 4 observations"):
        gd.spatial_autocorrelation_test(res, [0.0, 1.0], [0.0, 1.0])


CASES = {
    "all zero": (np.zeros(12), np.zeros((12, N_SIM)), np.full(12, 0.1)),
    "constant gaussian": (np.full(12, 3.7), np.full((12, N_SIM), 3.7), np.full(12, 3.7)),
    "one simulated value, not the observed": (np.r_[np.zeros(11), 2.0], np.zeros((12, N_SIM)), np.full(12, 0.1)),
    "one row": (np.array([1.0]), np.random.default_rng(5).poisson(1.0, (1, N_SIM)), np.ones(1)),
    "two rows": (np.array([1.0, 3.0]), np.random.default_rng(6).poisson(2.0, (2, N_SIM)), np.full(2, 2.0)),
    "two zero rows": (np.zeros(2), np.zeros((2, N_SIM)), np.full(2, 0.1)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_no_test_reports_a_p_value_of_zero_from_zero_over_zero(case):
    y, S, f = CASES[case]
    S = np.asarray(S, float)
    res = _res(y, S, f)
    n = res.nobs
    run = {
        "uniformity": lambda: gd.uniformity_test(res),
        "dispersion": lambda: gd.dispersion_test(res),
        "outliers binomial": lambda: gd.outlier_test(res, type="binomial"),
        "outliers bootstrap": lambda: gd.outlier_test(res, type="bootstrap"),
        "zero inflation": lambda: gd.zero_inflation_test(res),
        "generic max": lambda: gd.generic_test(res, np.max),
        "quantiles": lambda: gd.quantile_test(res),
    }
    if n >= 2:
        run["categorical"] = lambda: gd.categorical_test(res, np.arange(n) % 2)
    if n >= 3:
        run["temporal"] = lambda: gd.temporal_autocorrelation_test(res, np.arange(n))
    if n >= 4:
        run["spatial"] = lambda: gd.spatial_autocorrelation_test(res, np.arange(n) % 4, np.arange(n) // 4)
    for name, fn in run.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedTestWarning)
            warnings.simplefilter("error", RuntimeWarning)  # no silent 0/0 inside a test
            t = fn()
        p, stat = t.p_value, t.statistic
        assert math.isnan(p) or 0.0 <= p <= 1.0, name
        if p == 0.0:
            # a p-value of 0 must come from a statistic that is genuinely extreme, never from 0/0
            assert not math.isnan(stat), name
        if math.isnan(p):
            assert math.isnan(stat) and t.note and t.note.startswith("undefined"), name
        if name == "dispersion" and np.all(S == y[:, None]):
            # observed == every simulation: the spread ratio is 0/0, whatever the fitted values
            assert math.isnan(p) and math.isnan(stat)


def test_large_model_columnwise_path_is_stable_too():
    from glmmdiag.simulate import COLUMNWISE_NOBS

    n = COLUMNWISE_NOBS
    res = _res(np.zeros(n), np.zeros((n, 3)), np.full(n, 0.1))
    assert res.obs_stats["spread"] == 0.0 and np.array_equal(res.sim_stats["spread"], np.zeros(3))
    rng = np.random.default_rng(2)
    y, S = rng.normal(size=n), rng.normal(size=(n, 3))
    a = _res(y, S, np.zeros(n)).sim_stats["spread"]
    b = _res(1e9 + y, 1e9 + S, np.zeros(n)).sim_stats["spread"]
    assert np.allclose(b, a, rtol=1e-6)


def test_cli_and_figure_verdict_names_an_undefined_test_instead_of_no_problems():
    """The one-line verdict (compare tables, CLI, figure titles) must not read 'no problems
    detected' when a test could not be computed."""
    from glmmdiag.compare import verdict
    from glmmdiag.plots._style import problem_phrases

    n = 30
    res = _res(np.zeros(n), np.zeros((n, N_SIM)), np.full(n, 0.1))
    with pytest.warns(UndefinedTestWarning):
        rt = gd.residual_tests(res)
    tests = {"uniformity": rt.uniformity, "dispersion": rt.dispersion, "outliers": rt.outliers}
    assert "dispersion test undefined" in problem_phrases(tests)
    line = verdict(tests)
    assert line != "no problems detected" and "dispersion test undefined" in line
    assert "underdispersion" not in line and "overdispersion" not in line
