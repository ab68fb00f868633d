"""The temporal test with several series (``temporal_autocorrelation_test(res, time, group=...)``).

Calibration evidence: uniform iid residuals in 40 series x 12 times (the null), 2000 data sets:
rejection rate at 0.05 in [0.03, 0.07]. Exactness of the null distribution: the Imhof p-value of
the pooled statistic against the empirical distribution of 20000 simulated normal series. Power:
AR(1) residuals with rho = 0.3 within series.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmmdiag as gd
from glmmdiag import datasets


def with_residuals(r):
    r = np.asarray(r, float)
    base = gd.simulate_residuals(
        gd.from_simulations(np.zeros(r.size), np.random.default_rng(0).random((r.size, 10)), np.zeros(r.size)), seed=1)
    return dataclasses.replace(base, residuals=r)


G, T = 40, 12
GROUP = np.repeat(np.arange(G), T)
TIME = np.tile(np.arange(1, T + 1), G)


def pooled_dw(e_by_series):
    e = e_by_series - e_by_series.mean(axis=1, keepdims=True)
    return np.sum(np.diff(e, axis=1) ** 2, axis=1).sum() / np.sum(e * e)


def test_null_distribution_of_the_pooled_statistic_is_exact():
    """P(DW <= d) from the pooled eigenvalues equals the simulated normal-theory probability."""
    rng = np.random.default_rng(2)
    lengths = [3, 5, 8, 8, 12]
    sims = []
    for _ in range(20000):
        parts = [rng.standard_normal(m) for m in lengths]
        e = [p - p.mean() for p in parts]
        sims.append(sum(np.sum(np.diff(x) ** 2) for x in e) / sum(np.sum(x * x) for x in e))
    sims = np.array(sims)
    from glmmdiag.checks import _dw_eigenvalues, _dw_pvalue

    for d in np.quantile(sims, [0.05, 0.3, 0.7, 0.95]):
        p = _dw_pvalue(float(d), _dw_eigenvalues(lengths), "greater")  # P(DW <= d)
        assert abs(p - np.mean(sims <= d)) < 0.01


def test_type_one_error_with_uniform_residuals_in_many_series():
    rng = np.random.default_rng(5)
    n_rep = 2000
    p = np.array([gd.temporal_autocorrelation_test(with_residuals(rng.random(G * T)), TIME, group=GROUP).p_value
                  for _ in range(n_rep)])
    assert 0.03 <= np.mean(p < 0.05) <= 0.07  # measured 0.0435 (seed 5)
    assert stats.kstest(p, "uniform").pvalue > 1e-3  # the p-values are close to uniform


def test_power_against_ar1_within_series():
    rng = np.random.default_rng(9)
    hits = 0
    for _ in range(100):
        a = np.empty((G, T))
        a[:, 0] = rng.standard_normal(G)
        for k in range(1, T):
            a[:, k] = 0.3 * a[:, k - 1] + np.sqrt(1 - 0.09) * rng.standard_normal(G)
        hits += gd.temporal_autocorrelation_test(with_residuals(stats.norm.cdf(a.ravel())), TIME,
                                                 group=GROUP, alternative="greater").p_value < 0.05
    assert hits / 100 >= 0.9


def test_statistic_is_the_pooled_within_series_durbin_watson_and_row_order_does_not_matter():
    rng = np.random.default_rng(1)
    r = rng.random(G * T)
    t = gd.temporal_autocorrelation_test(with_residuals(r), TIME, group=GROUP)
    assert t.statistic == pytest.approx(pooled_dw(r.reshape(G, T)), rel=1e-12)
    perm = rng.permutation(G * T)
    t2 = gd.temporal_autocorrelation_test(with_residuals(r[perm]), TIME[perm], group=GROUP[perm])
    assert t2.statistic == pytest.approx(t.statistic, rel=1e-12) and t2.p_value == pytest.approx(t.p_value)
    assert t.parameter["series"] == G


def test_duplicated_times_within_a_series_are_an_error_and_across_series_need_group():
    r = with_residuals(np.random.default_rng(0).random(G * T))
    with pytest.raises(gd.GlmmdiagError, match="pass group="):
        gd.temporal_autocorrelation_test(r, TIME)
    g = GROUP.copy()
    g[1] = g[0]
    t = TIME.copy()
    t[1] = t[0]
    with pytest.raises(gd.GlmmdiagError, match="within a series"):
        gd.temporal_autocorrelation_test(r, t, group=g)


def test_column_names_from_data_and_from_the_model_in_natural_order():
    df = datasets.load("ar1_sim")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gd.glmm("y ~ x + ar1(times + 0 | group)", df)
    res = gd.simulate_residuals(fit, 100, seed=1)
    by_model = gd.temporal_autocorrelation_test(res, "times", group="group")
    by_data = gd.temporal_autocorrelation_test(res, "t", group="group", data=df)
    as_text = gd.temporal_autocorrelation_test(res, df["times"].astype(str), group=df["group"])
    assert by_model.statistic == pytest.approx(by_data.statistic, rel=1e-12)
    assert as_text.statistic == pytest.approx(by_data.statistic, rel=1e-12)  # '1', '2', ..., '10' as numbers
    with pytest.raises(gd.GlmmdiagError, match="pass data="):
        gd.temporal_autocorrelation_test(res, "x", group="group")
    with pytest.raises(gd.GlmmdiagError, match="not in data"):
        gd.temporal_autocorrelation_test(res, "nothere", data=df)
    # rows dropped for missing values: data= is the fitting data, its fitted rows are used
    d2 = df.copy()
    d2.loc[5, "y"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit2 = gd.glmm("y ~ x + (1 | group)", d2)
    res2 = gd.simulate_residuals(fit2, 50, seed=1)
    assert gd.temporal_autocorrelation_test(res2, "t", group="group", data=d2).parameter["series"] == G


def test_bootstrap_calibrated_p_value_lies_on_its_grid_and_passes_the_correct_model():
    df = datasets.load("ar1_sim")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gd.glmm("y ~ x + ar1(times + 0 | group)", df)
    res = gd.simulate_residuals(fit, 100, seed=1)
    t = gd.temporal_autocorrelation_test(res, "times", group="group", n_boot=19, seed=4)
    assert "calibrated" in t.method and t.n_sim == 19
    assert round(t.p_value * 20, 9) == int(round(t.p_value * 20))  # two-sided: 2 k / 20
    assert t.p_value > 0.05
    boot = t.plot_data["bootstrap_values"]
    assert boot.size == 19 and np.all((boot > 1.5) & (boot < 2.5))
