"""The statsmodels GLM adapter with prior weights, exposure and offsets: simulations follow the
fitted exponential-dispersion model (variance scale V(mu) / var_weights, binomial trials), frequency
weights expand rows, and what cannot be simulated is refused with a GlmmdiagError."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import glmmdiag as gd
from glmmdiag.adapters import StatsmodelsGLMAdapter

sm = pytest.importorskip("statsmodels.api")

N = 300


@pytest.fixture(scope="module")
def covariate():
    rng = np.random.default_rng(7)
    x = rng.normal(size=N)
    return x, sm.add_constant(x)


def _binomial_data(x, seed=7, overdispersed=False):
    rng = np.random.default_rng(seed)
    trials = rng.integers(5, 40, size=x.size)
    p = 1 / (1 + np.exp(-(-0.3 + 0.8 * x)))
    if overdispersed:  # beta-binomial: extra-binomial variation
        p = rng.beta(p * 3.0, (1 - p) * 3.0)
    return rng.binomial(trials, p), trials


# ------------------------------------------------------------------ binomial proportions with trials
def test_binomial_proportion_with_var_weights_trials_is_calibrated(covariate):
    x, X = covariate
    k, trials = _binomial_data(x)
    fit = sm.GLM(k / trials, X, family=sm.families.Binomial(), var_weights=trials).fit()
    res = gd.simulate_residuals(fit, 250, seed=1)
    assert np.array_equal(res.trials, trials) and np.array_equal(res.observed, k)
    d = gd.dispersion_test(res)
    assert d.p_value > 0.05 and 0.8 < d.statistic < 1.25
    assert gd.uniformity_test(res).p_value > 0.05
    # identical to the same model given as a (successes, failures) response
    fit2 = sm.GLM(np.column_stack([k, trials - k]), X, family=sm.families.Binomial()).fit()
    d2 = gd.dispersion_test(gd.simulate_residuals(fit2, 250, seed=1))
    assert d2.statistic == pytest.approx(d.statistic, rel=1e-8)


def test_binomial_with_weights_detects_extra_binomial_variation(covariate):
    x, X = covariate
    k, trials = _binomial_data(x, seed=8, overdispersed=True)
    fit = sm.GLM(k / trials, X, family=sm.families.Binomial(), var_weights=trials).fit()
    d = gd.dispersion_test(gd.simulate_residuals(fit, 250, seed=1))
    assert d.statistic > 1.5 and d.p_value < 0.01


def test_binomial_proportion_without_trials_is_refused(covariate):
    x, X = covariate
    k, trials = _binomial_data(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns about non-integer successes
        fit = sm.GLM(k / trials, X, family=sm.families.Binomial()).fit()
    with pytest.raises(gd.GlmmdiagError, match="var_weights = trials"):
        gd.simulate_residuals(fit, 20, seed=1)


def test_binomial_refit_keeps_the_trials(covariate):
    x, X = covariate
    k, trials = _binomial_data(x)
    fit = sm.GLM(k / trials, X, family=sm.families.Binomial(), var_weights=trials).fit()
    a = StatsmodelsGLMAdapter(fit)
    again = a.refit(a.observed())  # refitting the observed counts gives back the same fit
    assert np.allclose(again.fixef, fit.params, rtol=1e-6)
    assert np.array_equal(again.trials(), a.trials())


# ------------------------------------------------------------------ exposure and offsets
def test_poisson_exposure_flows_into_fitted_and_simulations(covariate):
    x, X = covariate
    rng = np.random.default_rng(101)
    expo = rng.uniform(0.5, 20, size=N)
    y = rng.poisson(expo * np.exp(0.2 + 0.5 * x))
    fit = sm.GLM(y, X, family=sm.families.Poisson(), exposure=expo).fit()
    a = StatsmodelsGLMAdapter(fit)
    assert np.allclose(a.fitted(), expo * np.exp(X @ fit.params))
    res = gd.simulate_residuals(fit, 250, seed=1)
    d = gd.dispersion_test(res)
    assert d.p_value > 0.05 and 0.8 < d.statistic < 1.25
    # the same counts without the exposure: the model misses most of the variation
    fit0 = sm.GLM(y, X, family=sm.families.Poisson()).fit()
    d0 = gd.dispersion_test(gd.simulate_residuals(fit0, 250, seed=1))
    assert d0.statistic > 2 and d0.p_value < 0.01
    # refit passes the exposure on: refitting the observed response reproduces the estimates
    assert np.allclose(a.refit(a.observed()).fixef, fit.params, rtol=1e-6)


def test_offset_is_the_log_exposure(covariate):
    x, X = covariate
    rng = np.random.default_rng(4)
    expo = rng.uniform(1, 5, size=N)
    y = rng.poisson(expo * np.exp(0.1 + 0.3 * x))
    f_off = sm.GLM(y, X, family=sm.families.Poisson(), offset=np.log(expo)).fit()
    f_exp = sm.GLM(y, X, family=sm.families.Poisson(), exposure=expo).fit()
    assert np.allclose(StatsmodelsGLMAdapter(f_off).fitted(), StatsmodelsGLMAdapter(f_exp).fitted())


# ------------------------------------------------------------------ var_weights as precision
def test_gamma_with_var_weights_simulates_variance_scale_mu2_over_w(covariate):
    x, X = covariate
    rng = np.random.default_rng(5)
    w = np.where(rng.random(N) < 0.5, 1.0, 25.0)
    mu, phi = np.exp(1 + 0.4 * x), 0.5
    y = rng.gamma(w / phi, mu * phi / w)  # mean mu, variance phi mu^2 / w
    fit = sm.GLM(y, X, family=sm.families.Gamma(sm.families.links.Log()), var_weights=w).fit()
    a = StatsmodelsGLMAdapter(fit)
    S = a.simulate(4000, np.random.default_rng(1))
    rel_var = S.var(axis=1) / a.fitted() ** 2
    assert np.median(rel_var[w == 1]) == pytest.approx(fit.scale, rel=0.1)
    assert np.median(rel_var[w == 25]) == pytest.approx(fit.scale / 25, rel=0.1)
    res = gd.simulate_residuals(fit, 250, seed=1)
    assert gd.categorical_test(res, w).p_value > 0.05  # same residual spread in both weight classes
    # ignoring the weights: heavy rows far too central, light rows too extreme
    fit0 = sm.GLM(y, X, family=sm.families.Gamma(sm.families.links.Log())).fit()
    assert gd.categorical_test(gd.simulate_residuals(fit0, 250, seed=1), w).p_value < 1e-3


def test_gaussian_and_poisson_var_weights(covariate):
    x, X = covariate
    rng = np.random.default_rng(6)
    w = rng.integers(1, 6, size=N).astype(float)
    yg = 1 + x + rng.normal(size=N) * 2.0 / np.sqrt(w)
    fg = sm.GLM(yg, X, family=sm.families.Gaussian(), var_weights=w).fit()
    S = StatsmodelsGLMAdapter(fg).simulate(3000, np.random.default_rng(2))
    assert np.allclose(S.var(axis=1) * w, fg.scale, rtol=0.15)
    # Poisson with var_weights: counts over w units, Poisson(w mu) / w
    counts = rng.poisson(w * np.exp(0.5 + 0.2 * x))
    fp = sm.GLM(counts / w, X, family=sm.families.Poisson(), var_weights=w).fit()
    a = StatsmodelsGLMAdapter(fp)
    S = a.simulate(50, np.random.default_rng(3))
    assert np.allclose(S * w[:, None], np.round(S * w[:, None]))
    d = gd.dispersion_test(gd.simulate_residuals(fp, 250, seed=1))
    assert d.p_value > 0.05 and 0.8 < d.statistic < 1.25


def test_what_cannot_be_simulated_is_refused(covariate):
    x, X = covariate
    rng = np.random.default_rng(9)
    y = rng.poisson(np.exp(0.5 + 0.3 * x)).astype(float)
    nb = sm.GLM(y, X, family=sm.families.NegativeBinomial(alpha=0.5), var_weights=np.full(N, 2.0)).fit()
    with pytest.raises(gd.GlmmdiagError, match="NegativeBinomial GLM with var_weights"):
        gd.simulate_residuals(nb, 10, seed=1)
    odd = sm.GLM(y + 0.25, X, family=sm.families.Poisson(), var_weights=np.full(N, 3.0)).fit()
    with pytest.raises(gd.GlmmdiagError, match="whole numbers"):
        gd.simulate_residuals(odd, 10, seed=1)
    frac = sm.GLM(y, X, family=sm.families.Poisson(), freq_weights=np.full(N, 1.5)).fit()
    with pytest.raises(gd.GlmmdiagError, match="freq_weights must be whole numbers"):
        gd.simulate_residuals(frac, 10, seed=1)


# ------------------------------------------------------------------ frequency weights
def test_freq_weights_expand_rows(covariate):
    x, X = covariate
    rng = np.random.default_rng(10)
    fw = rng.integers(1, 4, size=N)
    y = rng.poisson(np.exp(0.5 + 0.3 * x))
    fit = sm.GLM(y, X, family=sm.families.Poisson(), freq_weights=fw).fit()
    a = StatsmodelsGLMAdapter(fit)
    assert a.nobs == fw.sum()
    assert np.array_equal(a.row_index, np.repeat(np.arange(N), fw))
    assert np.array_equal(a.observed(), np.repeat(y, fw))
    # the expanded data fitted without weights are the same model
    big = sm.GLM(np.repeat(y, fw), X[a.row_index], family=sm.families.Poisson()).fit()
    assert np.allclose(a.refit(a.observed()).fixef, big.params, rtol=1e-6)
    res = gd.simulate_residuals(fit, 100, seed=1)
    assert res.nobs == fw.sum()
    d = gd.dispersion_test(res)
    assert d.p_value > 0.05 and 0.8 < d.statistic < 1.25
