"""The betabinomial, tweedie and ordbeta families: glmmTMB 1.1.5 reference fits
(tests/reference/ext/*.json) and unit tests of each density (normalisation, an independent
computation, moments and CDF by simulation, analytic derivatives against finite differences).

Tolerances are those of tests/fit/test_reference_fits.py (the issue's "Done means").
"""
from __future__ import annotations

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import glmmdiag
from glmmdiag.fit.families import BetaBinomial, OrdBeta, Tweedie, get_family
from glmmdiag.fit.tweedie import log_series

TESTS_DIR = Path(__file__).resolve().parents[1]
DATA_DIR = TESTS_DIR / "data"
EXT_DIR = TESTS_DIR / "reference" / "ext"

LOGLIK_SLACK = 0.01
BETA_REL_TOL = 1e-4
BETA_SE_FRAC = 1e-3
SE_REL_TOL = 1e-2
RE_SD_REL_TOL = 1e-3
RE_SD_BOUNDARY = 1e-3  # both SDs below this: on the boundary (cbpp betabinomial's herd SD is 1.4e-4)
DISPERSION_REL_TOL = 1e-3
PSI_ABS_TOL = 1e-3  # glmmTMB's raw family parameters (tweedie power, ordbeta cutpoints)


# --------------------------------------------------------------------------------------------------
# reference fits
# --------------------------------------------------------------------------------------------------
def _read_csv(name, factors):
    df = pd.read_csv(DATA_DIR / f"{name}.csv")
    for f in factors:
        lab = df[f].astype(str)
        # R's levels: cbpp's herd/period are numbers (1..15), the others zero-padded strings
        levels = sorted(lab.unique(), key=lambda s: (len(s), s))
        df[f] = pd.Categorical(lab, categories=levels)
    return df


def _fit_plain(formula, df, family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmmdiag.glmm(formula, df, family=family)


CASES = {
    "cbpp_betabinomial": lambda: _fit_plain(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)", _read_csv("cbpp", ["herd", "period"]),
        "betabinomial"),
    "tweedie_sim": lambda: _fit_plain("y ~ x + (1 | g)", _read_csv("tweedie_sim", ["g"]), "tweedie"),
    "ordbeta_sim": lambda: _fit_plain(
        "severity ~ trt + (1 | block)", _read_csv("ordbeta_sim", ["block", "trt"]), "ordbeta"),
}


@functools.lru_cache(maxsize=None)
def _fit(case):
    return CASES[case]()


@functools.lru_cache(maxsize=None)
def _ref(case):
    return json.loads((EXT_DIR / f"{case}.json").read_text(encoding="utf-8"))["fit"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_loglik(case):
    fit, ref = _fit(case), _ref(case)
    assert fit.loglik >= ref["logLik"] - LOGLIK_SLACK
    assert fit.nobs == ref["nobs"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_fixed_effects_and_se(case):
    fit, ref = _fit(case), _ref(case)
    est = np.asarray(ref["fixed"]["estimate"])
    se = np.asarray(ref["fixed"]["se"])
    assert list(fit.fixef.index) == ref["fixed"]["names"]
    tol = np.maximum(BETA_REL_TOL * np.abs(est), BETA_SE_FRAC * se)
    np.testing.assert_array_less(np.abs(np.asarray(fit.fixef) - est), tol)
    np.testing.assert_allclose(np.asarray(fit.se), se, rtol=SE_REL_TOL)


@pytest.mark.parametrize("case", sorted(CASES))
def test_random_effect_sd(case):
    fit, ref = _fit(case), _ref(case)
    ours = float(fit.varcorr["sdcor"].iloc[0])
    theirs = ref["random"][0]["sd"]
    if theirs < RE_SD_BOUNDARY:
        assert ours < RE_SD_BOUNDARY
    else:
        assert ours == pytest.approx(theirs, rel=RE_SD_REL_TOL)


@pytest.mark.parametrize("case", sorted(CASES))
def test_dispersion_and_family_parameters(case):
    fit, ref = _fit(case), _ref(case)
    fam = fit.family
    assert fit.dispersion == pytest.approx(ref["sigma"], rel=DISPERSION_REL_TOL)
    assert fam.dispersion(fit.psi) == pytest.approx(ref["sigma"], rel=DISPERSION_REL_TOL)
    assert fam.glmmtmb_betad(fit.psi) == pytest.approx(ref["betad"], abs=PSI_ABS_TOL)
    if case == "tweedie_sim":
        assert fit.psi[1] == pytest.approx(ref["psi"], abs=PSI_ABS_TOL)
        assert fam.dispersion_extra(fit.psi)["power"] == pytest.approx(
            ref["family_params"]["Tweedie power"], abs=PSI_ABS_TOL)
    if case == "ordbeta_sim":
        np.testing.assert_allclose(fit.psi[1:], ref["psi"], atol=PSI_ABS_TOL)
        extra = fam.dispersion_extra(fit.psi)
        assert extra["lower cutoff"] == pytest.approx(ref["family_params"]["lower cutoff"], abs=1e-4)
        assert extra["upper cutoff"] == pytest.approx(ref["family_params"]["upper cutoff"], abs=1e-4)


@pytest.mark.parametrize("case", sorted(CASES))
def test_residual_diagnostics_run(case):
    fit = _fit(case)
    res = glmmdiag.simulate_residuals(fit, n_sim=100, seed=1)
    r = np.asarray(res.residuals, float)
    assert r.shape == (fit.nobs,)
    assert np.all((r >= 0) & (r <= 1))
    tests = glmmdiag.residual_tests(res)
    assert tests is not None
    sims = fit.simulate(3, seed=2)
    assert sims.shape == (fit.nobs, 3) and np.all(np.isfinite(sims))


def test_registered():
    assert isinstance(get_family("betabinomial"), BetaBinomial)
    assert isinstance(get_family("beta_binomial"), BetaBinomial)
    assert isinstance(get_family("tweedie"), Tweedie)
    assert isinstance(get_family("ordbeta"), OrdBeta)
    assert get_family("tweedie").link.name == "log"
    assert get_family("ordbeta").link.name == "logit"
    assert get_family("betabinomial").weight_role == "trials"
    with pytest.raises(glmmdiag.GlmmdiagError):
        get_family("ordbeta", "probit")


def test_support_checks():
    with pytest.raises(glmmdiag.GlmmdiagError, match="negative"):
        get_family("tweedie").check_response(np.array([1.0, -0.1]), np.ones(2), "y")
    with pytest.raises(glmmdiag.GlmmdiagError, match=r"\[0, 1\]"):
        get_family("ordbeta").check_response(np.array([0.0, 1.2]), np.ones(2), "y")
    with pytest.raises(glmmdiag.GlmmdiagError, match="successes > trials"):
        get_family("betabinomial").check_response(np.array([3.0]), np.array([2.0]), "y")


# --------------------------------------------------------------------------------------------------
# densities
# --------------------------------------------------------------------------------------------------
BB_PARAMS = [(1, 0.3, 0.5), (7, 0.2, 4.0), (25, 0.65, 30.0), (40, 0.01, 2.0)]


@pytest.mark.parametrize("n,mu,phi", BB_PARAMS)
def test_betabinomial_pmf_sums_to_one_and_matches_scipy(n, mu, phi):
    fam = get_family("betabinomial")
    k = np.arange(n + 1.0)
    lp = fam.loglik(k, np.full(k.shape, mu), np.full(k.shape, float(n)), np.array([np.log(phi)]))
    assert np.exp(lp).sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(lp, stats.betabinom.logpmf(k, n, mu * phi, (1 - mu) * phi), rtol=1e-10, atol=1e-10)
    cdf = fam.cdf(k, np.full(k.shape, mu), float(n), np.array([np.log(phi)]))
    np.testing.assert_allclose(cdf, np.cumsum(np.exp(lp)), atol=1e-12)
    low = fam.cdf_lower(k, np.full(k.shape, mu), float(n), np.array([np.log(phi)]))
    np.testing.assert_allclose(low, np.concatenate([[0.0], np.cumsum(np.exp(lp))[:-1]]), atol=1e-12)


def _tweedie_density_direct(y, mu, phi, p, jmax=400):
    """sum_j Poisson(j; lam) Gamma(y; j alpha, scale gam): the compound-Poisson definition."""
    lam = mu ** (2 - p) / (phi * (2 - p))
    alpha = (2 - p) / (p - 1)
    gam = phi * (p - 1) * mu ** (p - 1)
    j = np.arange(1, jmax + 1)
    return float(np.sum(stats.poisson.pmf(j, lam) * stats.gamma.pdf(y, j * alpha, scale=gam)))


TW_PARAMS = [(1.0, 1.0, 1.5), (2.5, 0.7, 1.2), (0.4, 2.0, 1.8), (3.0, 0.3, 1.05), (1.5, 1.0, 1.95)]


def _tw_psi(phi, p):
    return np.array([np.log(phi), special.logit(p - 1.0)])


@pytest.mark.parametrize("mu,phi,p", TW_PARAMS)
def test_tweedie_density_matches_compound_poisson_definition(mu, phi, p):
    fam = get_family("tweedie")
    ys = np.array([0.01, 0.3, 1.0, 2.7, 8.0])
    ll = fam.loglik(ys, np.full(ys.shape, mu), np.ones(ys.shape), _tw_psi(phi, p))
    direct = np.array([_tweedie_density_direct(y, mu, phi, p) for y in ys])
    np.testing.assert_allclose(np.exp(ll), direct, rtol=1e-9)
    l0 = fam.loglik(np.array([0.0]), np.array([mu]), np.ones(1), _tw_psi(phi, p))
    assert l0[0] == pytest.approx(-mu ** (2 - p) / (phi * (2 - p)), rel=1e-12)


@pytest.mark.parametrize("mu,phi,p", TW_PARAMS[:3])
def test_tweedie_mass_at_zero_plus_integral_is_one(mu, phi, p):
    fam = get_family("tweedie")
    psi = _tw_psi(phi, p)

    def dens(y):
        return float(np.exp(fam.loglik(np.array([y]), np.array([mu]), np.ones(1), psi))[0])

    p0 = float(np.exp(fam.loglik(np.array([0.0]), np.array([mu]), np.ones(1), psi))[0])
    edges = [0.0, 1e-3, 0.1, 1.0, 5.0, 20.0, 60.0, 200.0]
    total = sum(integrate.quad(dens, a, b, limit=200, epsabs=1e-13)[0] for a, b in zip(edges[:-1], edges[1:]))
    assert p0 + total == pytest.approx(1.0, abs=1e-7)


def test_tweedie_series_converges_for_large_y():
    # many terms (j* in the thousands): the window grows until both ends are negligible
    y, c, p = np.array([500.0, 5e4]), np.log(0.05), 1.3
    ls = log_series(y, c, p)
    assert np.all(np.isfinite(ls))
    ls2 = log_series(y, c, p)  # deterministic
    np.testing.assert_array_equal(ls, ls2)


def _ordbeta_loglik_direct(y, eta, phi, k1, k2):
    s1, s2, mu = special.expit(eta - k1), special.expit(eta - k2), special.expit(eta)
    if y == 0:
        return np.log(1 - s1)
    if y == 1:
        return np.log(s2)
    return np.log(s1 - s2) + stats.beta.logpdf(y, mu * phi, (1 - mu) * phi)


@pytest.mark.parametrize("eta,phi,k1,k2", [(0.3, 5.0, -1.0, 1.0), (2.0, 14.0, -3.7, 3.7), (-1.5, 2.0, -0.5, 0.2)])
def test_ordbeta_density(eta, phi, k1, k2):
    fam = get_family("ordbeta")
    psi = np.array([np.log(phi), k1, k2])
    ys = np.array([0.0, 0.05, 0.4, 0.93, 1.0])
    ll = fam.loglik(ys, np.full(ys.shape, special.expit(eta)), np.ones(ys.shape), psi)
    direct = [_ordbeta_loglik_direct(y, eta, phi, k1, k2) for y in ys]
    np.testing.assert_allclose(ll, direct, rtol=1e-10)
    mu = special.expit(eta)

    def dens(y):
        return float(np.exp(fam.loglik(np.array([y]), np.array([mu]), np.ones(1), psi))[0])

    mid = integrate.quad(dens, 0.0, 1.0, limit=200, points=[1e-6, 0.5, 1 - 1e-6])[0]
    assert np.exp(ll[0]) + np.exp(ll[-1]) + mid == pytest.approx(1.0, abs=1e-8)


# --------------------------------------------------------------------------------------------------
# moments and CDF by simulation
# --------------------------------------------------------------------------------------------------
N_DRAWS = 200_000


def _ecdf_matches(draws, cdf_vals, points):
    emp = np.array([np.mean(draws <= q) for q in points])
    se = np.sqrt(np.maximum(cdf_vals * (1 - cdf_vals), 1e-6) / draws.size)
    assert np.all(np.abs(emp - cdf_vals) < 5 * se + 1e-4)


def test_betabinomial_moments_and_cdf_by_simulation():
    fam = get_family("betabinomial")
    n, mu, phi = 12.0, 0.3, 3.0
    psi = np.array([np.log(phi)])
    rng = np.random.default_rng(11)
    y = fam.sample(np.full(N_DRAWS, mu), np.full(N_DRAWS, n), rng, psi)
    assert np.all(y == np.round(y)) and y.min() >= 0 and y.max() <= n
    var = n * n * fam.variance(mu, psi, trials=n)
    assert var == pytest.approx(n * mu * (1 - mu) * (phi + n) / (phi + 1))
    assert y.mean() == pytest.approx(n * mu, abs=5 * np.sqrt(var / N_DRAWS))
    assert y.var() == pytest.approx(var, rel=0.02)
    pts = np.array([0.0, 2.0, 4.0, 7.0, 11.0])
    _ecdf_matches(y, fam.cdf(pts, mu, n, psi), pts)
    emp_lower = np.array([np.mean(y < q) for q in pts])
    np.testing.assert_allclose(emp_lower, fam.cdf_lower(pts, mu, n, psi), atol=0.005)


def test_tweedie_moments_and_cdf_by_simulation():
    fam = get_family("tweedie")
    mu, phi, p = 1.7, 1.1, 1.45
    psi = _tw_psi(phi, p)
    rng = np.random.default_rng(12)
    y = fam.sample(np.full(N_DRAWS, mu), np.ones(N_DRAWS), rng, psi)
    var = float(fam.variance(np.array(mu), psi))
    assert var == pytest.approx(phi * mu**p)
    assert y.mean() == pytest.approx(mu, abs=5 * np.sqrt(var / N_DRAWS))
    assert y.var() == pytest.approx(var, rel=0.03)
    p0 = np.exp(-mu ** (2 - p) / (phi * (2 - p)))
    assert np.mean(y == 0) == pytest.approx(p0, abs=5 * np.sqrt(p0 * (1 - p0) / N_DRAWS))
    pts = np.array([0.0, 0.2, 1.0, 2.0, 5.0])
    cdf = fam.cdf(pts, np.full(pts.shape, mu), 1.0, psi)
    assert cdf[0] == pytest.approx(p0)
    _ecdf_matches(y, cdf, pts)
    low = fam.cdf_lower(pts, np.full(pts.shape, mu), 1.0, psi)
    assert low[0] == 0.0
    np.testing.assert_allclose(low[1:], cdf[1:])


def test_ordbeta_moments_and_cdf_by_simulation():
    fam = get_family("ordbeta")
    mu, phi, k1, k2 = 0.6, 6.0, -1.2, 1.5
    psi = np.array([np.log(phi), k1, k2])
    rng = np.random.default_rng(13)
    y = fam.sample(np.full(N_DRAWS, mu), np.ones(N_DRAWS), rng, psi)
    eta = special.logit(mu)
    p0, p1 = 1 - special.expit(eta - k1), special.expit(eta - k2)
    assert np.mean(y == 0) == pytest.approx(p0, abs=0.004)
    assert np.mean(y == 1) == pytest.approx(p1, abs=0.004)
    mean = float(fam.mean(mu, psi))
    var = float(fam.variance(mu, psi))
    assert y.mean() == pytest.approx(mean, abs=5 * np.sqrt(var / N_DRAWS))
    assert y.var() == pytest.approx(var, rel=0.02)
    pts = np.array([0.0, 0.3, 0.6, 0.9, 0.999])
    cdf = fam.cdf(pts, np.full(pts.shape, mu), 1.0, psi)
    assert cdf[0] == pytest.approx(p0)
    _ecdf_matches(y, cdf, pts)
    low = fam.cdf_lower(np.array([0.0, 0.5, 1.0]), np.full(3, mu), 1.0, psi)
    assert low[0] == 0.0 and low[2] == pytest.approx(1 - p1)
    assert fam.cdf(np.array([1.0]), np.array([mu]), 1.0, psi)[0] == 1.0


# --------------------------------------------------------------------------------------------------
# analytic derivatives vs finite differences
# --------------------------------------------------------------------------------------------------
def _case_data(name):
    rng = np.random.default_rng(5)
    n = 40
    eta = rng.normal(-0.3, 1.0, n)
    if name == "betabinomial":
        w = rng.integers(1, 20, n).astype(float)
        y = np.minimum(rng.integers(0, 10, n), w).astype(float)
        return get_family("betabinomial"), y, eta, w, np.array([1.3])
    if name == "betabinomial_probit":
        w = rng.integers(1, 20, n).astype(float)
        y = np.minimum(rng.integers(0, 10, n), w).astype(float)
        return get_family("betabinomial", "probit"), y, 0.5 * eta, w, np.array([0.4])
    if name == "tweedie":
        y = np.where(rng.random(n) < 0.2, 0.0, rng.gamma(1.5, 1.2, n))
        return get_family("tweedie"), y, eta, np.ones(n), np.array([0.2, -0.3])
    if name == "tweedie_identity":
        y = np.where(rng.random(n) < 0.2, 0.0, rng.gamma(1.5, 1.2, n))
        return get_family("tweedie", "identity"), y, np.exp(eta), rng.uniform(0.5, 2, n), np.array([-0.4, 1.1])
    y = np.where(rng.random(n) < 0.15, 0.0, np.where(rng.random(n) < 0.15, 1.0, rng.beta(2, 3, n)))
    return get_family("ordbeta"), y, eta, np.full(n, 1.5), np.array([2.0, -2.5, 2.8])


DERIV_CASES = ["betabinomial", "betabinomial_probit", "tweedie", "tweedie_identity", "ordbeta"]
H = 1e-5


def _close(a, b, what):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert np.all(np.abs(a - b) <= 1e-6 * (1.0 + np.abs(b))), (what, np.max(np.abs(a - b)))


@pytest.mark.parametrize("name", DERIV_CASES)
def test_eta_derivatives(name):
    fam, y, eta, w, psi = _case_data(name)
    l, s, W, dW = fam.eta_derivs(y, eta, w, psi, 3)
    up, dn = fam.eta_derivs(y, eta + H, w, psi, 3), fam.eta_derivs(y, eta - H, w, psi, 3)
    _close(s, (up[0] - dn[0]) / (2 * H), "s")
    _close(W, -(up[1] - dn[1]) / (2 * H), "W")
    _close(dW, (up[2] - dn[2]) / (2 * H), "dW")
    l2, s2, W2, _ = fam.eta_derivs(y, eta, w, psi, 2)
    np.testing.assert_allclose(l2, l)
    np.testing.assert_allclose(W2, W)
    # the full log density is l plus the data-only constant
    mu = fam.link.inverse(eta)
    np.testing.assert_allclose(fam.loglik(y, mu, w, psi), l + fam.loglik_const(y, w), rtol=1e-12)


@pytest.mark.parametrize("name", DERIV_CASES)
def test_psi_derivatives(name):
    fam, y, eta, w, psi = _case_data(name)
    pd_ = fam.psi_derivs(y, eta, w, psi)
    Hs = fam.psi_hessian(y, eta, w, psi)
    assert Hs.shape == (y.size, fam.n_psi, fam.n_psi)
    np.testing.assert_allclose(fam.psi_hessian(y, eta, w, psi, summed=True), Hs.sum(axis=0))
    dW, terms = fam.laplace_gradient_terms(y, eta, w, psi)
    np.testing.assert_allclose(dW, fam.eta_derivs(y, eta, w, psi, 3)[3], rtol=1e-12)
    for k in range(fam.n_psi):
        e = np.zeros(fam.n_psi)
        e[k] = H
        up, dn = fam.eta_derivs(y, eta, w, psi + e, 3), fam.eta_derivs(y, eta, w, psi - e, 3)
        _close(pd_[k][0], (up[0] - dn[0]) / (2 * H), f"l_psi{k}")
        _close(pd_[k][1], (up[1] - dn[1]) / (2 * H), f"s_psi{k}")
        _close(pd_[k][2], (up[2] - dn[2]) / (2 * H), f"W_psi{k}")
        for j in range(3):
            np.testing.assert_allclose(terms[k][j], pd_[k][j], rtol=1e-12, atol=1e-14)
        pu, pdn = fam.psi_derivs(y, eta, w, psi + e), fam.psi_derivs(y, eta, w, psi - e)
        for j in range(fam.n_psi):
            _close(Hs[:, j, k], (pu[j][0] - pdn[j][0]) / (2 * H), f"H{j}{k}")
        _close(pd_[k][3], Hs[:, k, k], f"l_psipsi{k}")


@pytest.mark.parametrize("name", ["betabinomial", "tweedie", "ordbeta"])
def test_per_row_psi_equals_scalar_psi(name):
    # dispersion formulas pass psi components as arrays over the rows
    fam, y, eta, w, psi = _case_data(name)
    rows = np.repeat(psi[:, None], y.size, axis=1)
    for a, b in zip(fam.eta_derivs(y, eta, w, psi, 3), fam.eta_derivs(y, eta, w, rows, 3)):
        np.testing.assert_allclose(b, a, rtol=1e-12)
    for ta, tb in zip(fam.psi_derivs(y, eta, w, psi), fam.psi_derivs(y, eta, w, rows)):
        for a, b in zip(ta, tb):
            np.testing.assert_allclose(b, a, rtol=1e-12)


def test_ordbeta_mu_derivatives():
    fam, y, eta, w, psi = _case_data("ordbeta")
    mu = fam.link.inverse(eta)
    l, l1, l2, l3 = fam.mu_derivs(y, mu, w, psi)
    h = 1e-6
    up, dn = fam.mu_derivs(y, mu + h, w, psi), fam.mu_derivs(y, mu - h, w, psi)
    _close(l1, (up[0] - dn[0]) / (2 * h), "l_mu")
    np.testing.assert_allclose(l2, (up[1] - dn[1]) / (2 * h), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(l3, (up[2] - dn[2]) / (2 * h), rtol=1e-5, atol=1e-3)


def test_ordbeta_crossed_cutpoints_have_no_density():
    fam = get_family("ordbeta")
    ll = fam.eta_derivs(np.array([0.0, 0.5, 1.0]), np.zeros(3), np.ones(3), np.array([1.0, 1.0, -1.0]), 1)[0]
    assert ll[1] == -np.inf and np.all(np.isfinite(ll[[0, 2]]))


def test_betabinomial_proportion_with_weights_equals_cbind():
    """A proportion with weights= trials is the same betabinomial model as cbind(successes, failures)."""
    df = _read_csv("cbpp", ["herd", "period"])
    df["prop"] = df["incidence"] / df["size"]
    a = CASES["cbpp_betabinomial"]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = glmmdiag.glmm("prop ~ period + (1 | herd)", df, family="betabinomial", weights="size")
    assert b.loglik == pytest.approx(a.loglik, abs=1e-8)
    np.testing.assert_allclose(b.fixef.to_numpy(), a.fixef.to_numpy(), rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(b.design.w, a.design.w)


def test_summary_shows_the_family_parameters():
    """summary() prints the dispersion line as glmmTMB does, plus tweedie's power and ordbeta's
    cutoffs on the probability scale (their fitted values)."""
    tw, ob = _fit("tweedie_sim"), _fit("ordbeta_sim")
    p = tw.family.dispersion_extra(tw.psi)["power"]
    assert f"Tweedie power parameter: {p:.4g}" in tw.summary()
    cut = ob.family.dispersion_extra(ob.psi)
    assert 0 < cut["lower cutoff"] < cut["upper cutoff"] < 1
    assert f"Ordered beta cutoffs (probability scale): {cut['lower cutoff']:.4g}, {cut['upper cutoff']:.4g}" \
        in ob.summary()


def test_ordbeta_reuses_a_point_only_when_eta_and_psi_are_unchanged():
    """OrdBeta keeps the special-function values of the last (eta, psi) it was asked about; a call
    after eta or psi changed in place, or asking for a higher order, must give a fresh family's
    numbers exactly."""
    fam, y, eta, w, psi = _case_data("ordbeta")
    eta, psi = eta.copy(), psi.copy()

    def fresh(e, p, order=3):
        return get_family("ordbeta").eta_derivs(y, e.copy(), w, p.copy(), order)

    def same(a, b):
        for x, z in zip(a, b):
            assert (x is None and z is None) or np.array_equal(x, z)

    fam.eta_derivs(y, eta, w, psi, 2)
    same(fam.eta_derivs(y, eta, w, psi, 3), fresh(eta, psi))  # order 3 after 2: tetragammas added
    eta += 0.25
    same(fam.eta_derivs(y, eta, w, psi, 3), fresh(eta, psi))
    psi[0] += 0.5
    same(fam.eta_derivs(y, eta, w, psi, 3), fresh(eta, psi))
    pd_ = fam.psi_derivs(y, eta, w, psi)
    pd_fresh = get_family("ordbeta").psi_derivs(y, eta.copy(), w, psi.copy())
    for ta, tb in zip(pd_, pd_fresh):
        same(ta, tb)
    out = fam.eta_derivs(y, eta, w, psi, 3)
    out[1][:] = 0.0  # the caller owns what it gets: writing into it changes nothing kept
    same(fam.eta_derivs(y, eta, w, psi, 3), fresh(eta, psi))


def test_pickled_families_leave_their_memos_behind():
    """A family shipped to a worker or pickled with a fit carries its parameters, not the memos of
    the last computation (an ordbeta point holds the fitter's stacked linear predictors)."""
    import pickle

    fam, y, eta, w, psi = _case_data("ordbeta")
    y = np.array(y, float)
    y.flags.writeable = False
    fam.eta_derivs(y, np.tile(eta, (6, 1)), w, psi, 3)
    fam.eta_derivs(y, eta, w, psi, 3)
    assert fam._point_memo is not None and fam._ycache[0] is y
    back = pickle.loads(pickle.dumps(fam))
    assert "_point_memo" not in back.__dict__ and "_ycache" not in back.__dict__
    for a, b in zip(back.eta_derivs(y, eta, w, psi, 3), fam.eta_derivs(y, eta, w, psi, 3)):
        np.testing.assert_array_equal(a, b)
    assert len(pickle.dumps(fam)) < 2000  # the memos held ~6 x 2 x n floats


def test_truncated_poisson_draw_of_one_mean():
    from glmmdiag.fit.submodels import truncated_poisson_draws

    v = truncated_poisson_draws(2.0, np.random.default_rng(1))
    assert np.ndim(v) == 0 and v >= 1 and v == np.round(v)
    big = truncated_poisson_draws(np.array([1e19, 1e-300, 0.7]), np.random.default_rng(1))
    assert np.all(np.isfinite(big)) and big[1] == 1.0 and np.all(big >= 1)
