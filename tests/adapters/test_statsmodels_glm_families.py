"""statsmodels GLM, every family: verdicts on real data (correct vs misspecified), simulations with
the closed-form moments of each family (weights included), and what cannot be simulated refused."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import glmmdiag as gd
from glmmdiag.adapters import StatsmodelsGLMAdapter, as_simulable

from adapter_verdicts import fails, passes, verdict

sm = pytest.importorskip("statsmodels.api")
smf = pytest.importorskip("statsmodels.formula.api")
fam = sm.families


def _glm(formula, data, family, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smf.glm(formula, data, family=family, **kw).fit()


# ------------------------------------------------------------------ verdicts on real data
def test_poisson_vs_negative_binomial_on_grouseticks(grouseticks):
    nb_alpha = smf.negativebinomial("TICKS ~ YEAR + cHEIGHT", grouseticks).fit(disp=0).params["alpha"]
    good = verdict(_glm("TICKS ~ YEAR + cHEIGHT", grouseticks, fam.NegativeBinomial(alpha=nb_alpha)))
    bad = verdict(_glm("TICKS ~ YEAR + cHEIGHT", grouseticks, fam.Poisson()))
    assert passes(good), good
    assert fails(bad) and bad["ratio"] > 5, bad  # measured: ratio 21.5


def test_binomial_with_trials_on_cbpp(cbpp):
    good = verdict(_glm("prop ~ period + herd", cbpp, fam.Binomial(), var_weights=cbpp["size"]))
    bad = verdict(_glm("prop ~ period", cbpp, fam.Binomial(), var_weights=cbpp["size"]))
    assert passes(good), good
    # cbpp has only 56 rows: the herd-level extra-binomial variation shows as a ratio of 1.65
    assert bad["ratio"] > 1.4 and bad["dispersion"] < 0.05 and bad["dispersion"] < good["dispersion"], bad


def test_gaussian_on_skewed_counts_fails_uniformity(grouseticks, sleepstudy):
    good = verdict(_glm("Reaction ~ Days + Subject", sleepstudy, fam.Gaussian()))
    bad = verdict(_glm("TICKS ~ YEAR + cHEIGHT", grouseticks, fam.Gaussian()))
    assert passes(good), good
    assert bad["uniformity"] < 1e-8, bad


def test_gamma_vs_inverse_gaussian_on_gamma_responses(gamma_sim):
    good = verdict(_glm("y ~ x + g", gamma_sim, fam.Gamma(fam.links.Log())))
    bad = verdict(_glm("y ~ x + g", gamma_sim, fam.InverseGaussian(fam.links.Log())))
    assert passes(good), good
    # an inverse Gaussian is far more skewed than a Gamma of shape 3: the simulated spread is too
    # wide (ratio 0.32, measured)
    assert bad["ratio"] < 0.5 and bad["dispersion"] < 0.05, bad


def test_tweedie_power_matters(tweedie_sim):
    good = verdict(_glm("y ~ x + g", tweedie_sim, fam.Tweedie(var_power=1.5)))
    bad = verdict(_glm("y ~ x + g", tweedie_sim, fam.Tweedie(var_power=1.9)))
    assert passes(good), good
    assert fails(bad), bad  # measured: uniformity p = 1.8e-4 (too few zeros simulated)


# ------------------------------------------------------------------ closed-form moments per family
@pytest.fixture(scope="module")
def design():
    rng = np.random.default_rng(11)
    x = rng.normal(size=400)
    w = np.where(rng.random(400) < 0.5, 1.0, 4.0)
    return x, sm.add_constant(x), w


def _moments(fit, n=4000, seed=3):
    a = StatsmodelsGLMAdapter(fit)
    S = np.asarray(a.simulate(n, np.random.default_rng(seed)), float)
    return a, S.mean(axis=1), S.var(axis=1)


@pytest.mark.parametrize("family, power", [
    (fam.Gaussian(), 0.0),
    (fam.Gamma(fam.links.Log()), 2.0),
    (fam.InverseGaussian(fam.links.Log()), 3.0),
    (fam.Tweedie(var_power=1.5), 1.5),
    (fam.Tweedie(var_power=2.0), 2.0),
    (fam.Tweedie(var_power=3.0), 3.0),
])
def test_dispersion_families_have_variance_phi_mu_power_over_w(design, family, power):
    x, X, w = design
    rng = np.random.default_rng(12)
    mu_true = np.exp(0.5 + 0.3 * x)
    y = rng.gamma(2.0, mu_true / 2.0) + (0.0 if power == 0.0 else 0.0)
    fit = sm.GLM(y, X, family=family, var_weights=w).fit()
    a, m, v = _moments(fit)
    mu, phi = a.fitted(), float(fit.scale)
    target = phi * mu ** power / w
    # 4000 draws: the mean within 5 standard errors, the variance within 12% (median over rows)
    assert np.all(np.abs(m - mu) < 5 * np.sqrt(target / 4000) + 1e-12)
    for cls in (1.0, 4.0):
        assert np.median(v[w == cls] / target[w == cls]) == pytest.approx(1.0, abs=0.12)


def test_tweedie_compound_poisson_has_exact_zero_mass(design):
    x, X, _ = design
    rng = np.random.default_rng(13)
    y = rng.poisson(np.exp(0.2 + 0.3 * x)) * rng.gamma(2.0, 0.5, size=x.size)
    fit = sm.GLM(y, X, family=fam.Tweedie(var_power=1.4)).fit()
    a, _, _ = _moments(fit, n=1)
    S = a.simulate(4000, np.random.default_rng(4))
    p, phi, mu = 1.4, float(fit.scale), a.fitted()
    p0 = np.exp(-(mu ** (2 - p)) / (phi * (2 - p)))  # P(Y = 0) = exp(-lambda)
    assert np.abs((S == 0).mean(axis=1) - p0).max() < 5 * np.sqrt(0.25 / 4000)


def test_negative_binomial_and_poisson_variances(design):
    x, X, _ = design
    rng = np.random.default_rng(14)
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + np.exp(1 + 0.4 * x)))
    nb = sm.GLM(y, X, family=fam.NegativeBinomial(alpha=0.5)).fit()
    a, m, v = _moments(nb)
    mu = a.fitted()
    assert np.median(v / (mu + 0.5 * mu ** 2)) == pytest.approx(1.0, abs=0.1)
    po = sm.GLM(y, X, family=fam.Poisson()).fit(scale="X2")  # quasi-Poisson: simulated as Poisson
    a, m, v = _moments(po)
    assert np.median(v / a.fitted()) == pytest.approx(1.0, abs=0.1)


def test_exposure_scales_the_simulated_counts(design):
    x, X, _ = design
    rng = np.random.default_rng(15)
    expo = rng.uniform(1, 30, size=x.size)
    y = rng.poisson(expo * np.exp(-1 + 0.2 * x))
    fit = sm.GLM(y, X, family=fam.Poisson(), exposure=expo).fit()
    a, m, v = _moments(fit)
    lam = expo * np.exp(X @ fit.params)  # the closed-form mean with the exposure
    assert np.allclose(a.fitted(), lam)
    z = (m - lam) / np.sqrt(lam / 4000)
    assert np.abs(z).max() < 5 and abs(z.mean()) < 0.2


# ------------------------------------------------------------------ refusals and reproducibility
def test_tweedie_powers_without_a_distribution_are_refused(design):
    x, X, _ = design
    y = np.exp(0.3 * x) + 0.5
    fit = sm.GLM(y, X, family=fam.Tweedie(var_power=2.5)).fit()
    with pytest.raises(gd.GlmmdiagError, match="variance power 2.5"):
        as_simulable(fit)
    over = sm.GLM(np.round(3 * y), X, family=fam.Tweedie(var_power=1.0)).fit()
    assert abs(over.scale - 1.0) > 0.05  # the Pearson scale of these counts is not 1
    with pytest.raises(gd.GlmmdiagError, match="variance power 1 and scale"):
        as_simulable(over)
    exact = sm.GLM(np.round(3 * y), X, family=fam.Tweedie(var_power=1.0)).fit(scale=1.0)
    assert as_simulable(exact).integer_response


def test_unsupported_family_is_a_type_error(design):
    x, X, _ = design
    rng = np.random.default_rng(1)
    y = rng.poisson(2.0, size=x.size)
    class Odd(fam.Poisson):  # a family statsmodels does not have
        pass
    fit = sm.GLM(y, X, family=Odd()).fit()
    with pytest.raises(TypeError, match="not supported"):
        as_simulable(fit)


def test_same_seed_same_residuals_any_n_jobs(grouseticks):
    fit = _glm("TICKS ~ YEAR + cHEIGHT", grouseticks, fam.Poisson())
    a = gd.simulate_residuals(fit, 100, seed=5).residuals
    b = gd.simulate_residuals(fit, 100, seed=5, n_jobs=2).residuals
    c = gd.simulate_residuals(fit, 100, seed=6).residuals
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_binomial_proportions_with_freq_weights_are_trials(cbpp):
    """A proportion response with freq_weights = trials is the binomial model of var_weights = trials."""
    fw = _glm("prop ~ period", cbpp, fam.Binomial(), freq_weights=cbpp["size"])
    vw = _glm("prop ~ period", cbpp, fam.Binomial(), var_weights=cbpp["size"])
    a, b = StatsmodelsGLMAdapter(fw), StatsmodelsGLMAdapter(vw)
    assert a.freq_weights_are_trials and not b.freq_weights_are_trials
    assert a.nobs == len(cbpp) and np.array_equal(a.trials(), cbpp["size"].to_numpy(float))
    assert np.array_equal(a.observed(), cbpp["incidence"].to_numpy(float))
    ra, rb = gd.simulate_residuals(fw, 250, seed=2), gd.simulate_residuals(vw, 250, seed=2)
    assert np.allclose(np.asarray(ra.residuals), np.asarray(rb.residuals))
    S = np.asarray(a.simulate(4000, np.random.default_rng(1)), float)  # Binomial(n, p): mean n p
    n, p = a.trials(), a.fitted()
    assert np.abs(S.mean(axis=1) - n * p).max() < 5 * np.sqrt((n * p * (1 - p)).max() / 4000)
    assert np.median(S.var(axis=1) / (n * p * (1 - p))) == pytest.approx(1.0, abs=0.08)
    # binary responses with freq_weights are still repeated rows
    rng = np.random.default_rng(2)
    x = rng.normal(size=80)
    yb = (rng.random(80) < 0.4).astype(float)
    rep = _glm("y ~ x", {"y": yb, "x": x}, fam.Binomial(), freq_weights=np.full(80, 3.0))
    r = StatsmodelsGLMAdapter(rep)
    assert not r.freq_weights_are_trials and r.nobs == 240
