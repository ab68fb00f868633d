"""Zero-inflation and hurdle models (``ziformula``, truncated families) against glmmTMB 1.1.5
(tests/reference/ext/*.json), closed forms, and the exact Laplace gradient in the new coordinates."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import glmmdiag
from glmmdiag import datasets
from glmmdiag.errors import GlmmdiagError
from glmmdiag.fit.families import get_family
from glmmdiag.fit.submodels import CompositeFamily

REF = Path(__file__).resolve().parents[1] / "reference" / "ext"

# the acceptance tolerances of the issue (as tests/fit/test_reference_fits.py)
LOGLIK_SLACK = 0.01
BETA_REL_TOL, BETA_SE_FRAC = 1e-4, 1e-3
SE_REL_TOL = 1e-2
RE_SD_REL_TOL = 1e-3

FORMULA = "count ~ spp + mined + (1 | site)"
CASES = {
    "salamanders_zip": ("poisson", "~ spp + mined"),
    "salamanders_zinb2": ("nbinom2", "~ spp + mined"),
    "salamanders_zinb1_zi1": ("nbinom1", "~1"),
    "salamanders_hurdle_pois": ("truncated_poisson", "~ spp + mined"),
    "salamanders_hurdle_nb2": ("truncated_nbinom2", "~ spp + mined"),
}
_FITS: dict = {}


def _salamanders():
    return datasets.load("Salamanders")


def _fit(case):
    if case not in _FITS:
        fam, zi = CASES[case]
        _FITS[case] = glmmdiag.glmm(FORMULA, _salamanders(), family=fam, ziformula=zi)
    return _FITS[case]


def _ref(case):
    return json.loads((REF / f"{case}.json").read_text())["fit"]


def _close_beta(est, ref_est, ref_se):
    est, ref_est, ref_se = (np.asarray(a, float) for a in (est, ref_est, ref_se))
    tol = np.maximum(BETA_REL_TOL * np.abs(ref_est), BETA_SE_FRAC * ref_se)
    assert np.all(np.abs(est - ref_est) <= tol), (est - ref_est, tol)


@pytest.mark.parametrize("case", list(CASES))
def test_matches_glmmtmb(case):
    fit, ref = _fit(case), _ref(case)
    assert fit.loglik >= ref["logLik"] - LOGLIK_SLACK
    assert fit.converged
    _close_beta(fit.fixef, ref["fixed"]["estimate"], ref["fixed"]["se"])
    np.testing.assert_allclose(fit.se, ref["fixed"]["se"], rtol=SE_REL_TOL)
    assert list(fit.fixef_zi.index) == list(np.atleast_1d(ref["zi_fixed"]["names"]))
    _close_beta(fit.fixef_zi, ref["zi_fixed"]["estimate"], ref["zi_fixed"]["se"])
    np.testing.assert_allclose(fit.se_zi, np.atleast_1d(ref["zi_fixed"]["se"]), rtol=SE_REL_TOL)
    sd = np.sqrt(fit.varcorr["vcov"].to_numpy()[0])
    np.testing.assert_allclose(sd, ref["random"][0]["sd"], rtol=RE_SD_REL_TOL)
    if ref.get("betad") is not None:  # nbinom: glmmTMB's betad = log theta / log phi
        _close_beta(fit.fixef_disp, np.atleast_1d(ref["betad"]), [1.0])
    assert fit.n_params == ref["df_logLik"]
    np.testing.assert_allclose(fit.aic, ref["AIC"], atol=0.02 + 2 * abs(fit.loglik - ref["logLik"]))


def test_summary_has_zero_inflation_block():
    text = _fit("salamanders_zip").summary()
    assert "Zero inflation:" in text and "Zero-inflation model:" in text
    assert text.index("Conditional model:") < text.index("Zero-inflation model:")


def test_vcov_full_names_and_blocks():
    fit = _fit("salamanders_zip")
    V = fit.vcov_full
    p, kz = len(fit.fixef), len(fit.fixef_zi)
    assert V.shape == (p + kz, p + kz)
    assert V.index[0] == "cond~(Intercept)" and V.index[p] == "zi~(Intercept)"
    np.testing.assert_allclose(np.sqrt(np.diag(V))[:p], fit.se, rtol=1e-6)


# ------------------------------------------------------------------------------ predictions
@pytest.mark.parametrize("case", ["salamanders_zip", "salamanders_hurdle_nb2"])
def test_predict_types(case):
    fit = _fit(case)
    eta = fit.predict(type="link")
    mu = fit.predict(type="conditional")
    pi = fit.predict(type="zprob")
    np.testing.assert_allclose(mu, np.exp(eta))
    np.testing.assert_allclose(pi, special.expit(fit.design.X @ fit.fixef_zi.to_numpy()), rtol=1e-12)
    resp = fit.predict(type="response")
    if "hurdle" in case:
        theta = np.exp(fit.fixef_disp.iloc[0])
        f0 = (theta / (theta + mu)) ** theta
        np.testing.assert_allclose(resp, (1 - pi) * mu / (1 - f0), rtol=1e-10)
    else:
        np.testing.assert_allclose(resp, (1 - pi) * mu, rtol=1e-12)
    new = _salamanders().iloc[[0, 5, 100]]
    for t in ("link", "response", "conditional", "zprob"):
        np.testing.assert_allclose(fit.predict(new, type=t), fit.predict(type=t)[[0, 5, 100]], rtol=1e-12)


# ------------------------------------------------------------------------------ simulation, residuals, refit
def test_simulate_matches_fitted_zero_share_and_mean():
    fit = _fit("salamanders_hurdle_pois")
    sims = fit.simulate(400, seed=3, conditional=True)
    assert sims.shape == (fit.nobs, 400)
    np.testing.assert_allclose((sims == 0).mean(axis=1).mean(), fit.predict(type="zprob").mean(), atol=0.01)
    np.testing.assert_allclose(sims.mean(), fit.predict(type="response").mean(), rtol=0.02)
    fit = _fit("salamanders_zip")
    sims = fit.simulate(400, seed=4, conditional=True)
    mu, pi = fit.predict(type="conditional"), fit.predict(type="zprob")
    np.testing.assert_allclose((sims == 0).mean(), np.mean(pi + (1 - pi) * np.exp(-mu)), atol=0.01)


def test_residuals_and_refit():
    fit = _fit("salamanders_zinb2")
    res = glmmdiag.simulate_residuals(fit, n_sim=100, seed=1)
    r = np.asarray(res.residuals)
    assert r.shape == (fit.nobs,) and np.all((r >= 0) & (r <= 1))
    y = fit.simulate(1, seed=5)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = fit.refit(y)
    assert len(again.fixef_zi) == len(fit.fixef_zi) and np.isfinite(again.loglik)
    same = fit.refit(fit.design.y)
    np.testing.assert_allclose(same.loglik, fit.loglik, atol=1e-6)


# ------------------------------------------------------------------------------ closed forms
def _zip_data(seed=1, n=400):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    g = rng.choice(["a", "b"], size=n)
    mu = np.exp(0.5 + 0.6 * x)
    pi = special.expit(-0.5 + 1.0 * (g == "b"))
    y = np.where(rng.random(n) < pi, 0, rng.poisson(mu))
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": g})


def test_zip_glm_matches_direct_maximisation():
    """No random effects: the fit is the ML estimate of the ZIP likelihood written out here."""
    df = _zip_data()
    fit = glmmdiag.glmm("y ~ x", df, family="poisson", ziformula="~ g")
    X = np.column_stack([np.ones(len(df)), df.x])
    Z = np.column_stack([np.ones(len(df)), (df.g == "b").astype(float)])
    y = df.y.to_numpy()

    def nll(par):
        lam = np.exp(X @ par[:2])
        xi = Z @ par[2:]
        log1pi = -np.logaddexp(0, xi)  # log(1 - pi)
        lp = np.where(y == 0, np.logaddexp(xi - np.logaddexp(0, xi), log1pi - lam),
                      log1pi + stats.poisson.logpmf(y, lam))
        return -lp.sum()

    opt = optimize.minimize(nll, np.zeros(4), method="BFGS", options={"gtol": 1e-9})
    np.testing.assert_allclose(fit.fixef, opt.x[:2], atol=2e-5)
    np.testing.assert_allclose(fit.fixef_zi, opt.x[2:], atol=2e-5)
    np.testing.assert_allclose(fit.loglik, -opt.fun, atol=1e-7)
    # SEs from the inverse of the numerical Hessian of the direct likelihood
    H = optimize.approx_fprime(opt.x, lambda p: optimize.approx_fprime(p, nll, 1e-6), 1e-5)
    se = np.sqrt(np.diag(np.linalg.inv(0.5 * (H + H.T))))
    np.testing.assert_allclose(np.r_[fit.se, fit.se_zi], se, rtol=2e-3)


@pytest.mark.parametrize("base,psi", [("poisson", None), ("nbinom2", 0.3), ("nbinom1", -0.4)])
@pytest.mark.parametrize("zero", ["zi", "hurdle"])
def test_composed_densities_sum_to_one(base, psi, zero):
    bf = get_family(base)
    n = 3
    Xz = np.ones((n, 1))
    Xd = np.ones((n, 1)) if bf.n_psi else None
    fam = CompositeFamily(bf, Xd, Xz, zero, ["(Intercept)"] if Xd is not None else [], ["(Intercept)"])
    par = np.r_[[psi] if psi is not None else [], [-0.7]]
    ks = np.arange(0, 400.0)
    mu = np.array([0.3, 2.0, 15.0])
    dens = np.exp(np.stack([fam.loglik(np.full(n, k), mu, np.ones(n), par) for k in ks]))
    np.testing.assert_allclose(dens.sum(axis=0), 1.0, atol=1e-10)
    pi = special.expit(-0.7)
    np.testing.assert_allclose(dens[0], pi + (1 - pi) * np.exp(bf.loglik(np.zeros(n), mu, np.ones(n),
                                                                        None if psi is None else np.array([psi])))
                               if zero == "zi" else pi)
    # the CDF agrees with the density
    np.testing.assert_allclose(fam.cdf(np.full(n, 4.0), mu, np.ones(n), par), dens[:5].sum(axis=0), atol=1e-12)


def test_zero_truncated_poisson_sums_to_one_and_refuses_zeros():
    fam = CompositeFamily(get_family("poisson"), None, None, "hurdle", truncated_name="truncated_poisson")
    mu = np.array([0.05, 1.0, 30.0])
    ks = np.arange(1, 400.0)
    dens = np.exp(np.stack([fam.loglik(np.full(3, k), mu, np.ones(3), np.zeros(0)) for k in ks]))
    np.testing.assert_allclose(dens.sum(axis=0), 1.0, atol=1e-12)
    df = _zip_data()
    with pytest.raises(GlmmdiagError, match="zero-truncated"):
        glmmdiag.glmm("y ~ x", df, family="truncated_poisson")
    pos = df[df.y > 0]
    fit = glmmdiag.glmm("y ~ x", pos, family="truncated_poisson")
    lam = lambda b: np.exp(b[0] + b[1] * pos.x.to_numpy())  # noqa: E731
    yy = pos.y.to_numpy()
    nll = lambda b: -np.sum(stats.poisson.logpmf(yy, lam(b)) - np.log(-np.expm1(-lam(b))))  # noqa: E731
    opt = optimize.minimize(nll, np.zeros(2), method="BFGS", options={"gtol": 1e-9})
    np.testing.assert_allclose(fit.fixef, opt.x, atol=2e-5)
    np.testing.assert_allclose(fit.loglik, -opt.fun, atol=1e-7)


# ------------------------------------------------------------------------------ the exact gradient
@pytest.mark.parametrize("case", ["salamanders_zinb2", "salamanders_hurdle_nb2", "salamanders_zinb1_zi1",
                                  "salamanders_zip"])
def test_gradient_matches_finite_differences(case, check_laplace_gradient):
    check_laplace_gradient(_fit(case), theta_scale=1.1, seed=0)


# ------------------------------------------------------------------------------ refusals
def test_unsupported_combinations_raise():
    d = _salamanders()
    with pytest.raises(GlmmdiagError, match="not supported yet"):
        glmmdiag.glmm(FORMULA, d, family="poisson", ziformula="~ mined + (1 | site)")
    with pytest.raises(GlmmdiagError, match="not supported yet"):
        glmmdiag.glmm(FORMULA, d, family="poisson", ziformula="~ mined", n_agq=3)
    with pytest.raises(GlmmdiagError, match="beta family.*ordbeta"):  # no zeros in (0, 1)
        glmmdiag.glmm("cover ~ mined + (1 | site)", d.assign(cover=d.cover.rank() / (len(d) + 1)),
                      family="beta", ziformula="~1")


def test_zero_formula_means_no_zero_model():
    d = _salamanders()
    a = glmmdiag.glmm(FORMULA, d, family="poisson", ziformula="~0")
    b = glmmdiag.glmm(FORMULA, d, family="poisson")
    assert a.loglik == b.loglik and len(a.fixef_zi) == 0


# ------------------------------------------------------------------------------ zero-truncated draws
@pytest.mark.parametrize("family, rounds", [("poisson", 40), ("nbinom2", 40), ("nbinom2", 1), ("nbinom1", 40),
                                            ("nbinom1", 1)])  # 1: most values through scipy's quantile function
def test_truncated_draws_follow_the_truncated_pmf(family, rounds, monkeypatch):
    from glmmdiag.fit import submodels

    monkeypatch.setattr(submodels, "TRUNC_ROUNDS", rounds)
    fam = get_family(family)
    psi = None if family == "poisson" else np.array([np.log(0.4)])
    rng = np.random.default_rng(3)
    # means with P(0) both below and above the rejection threshold, and a per-row layout
    for m in (0.03, 0.6, 2.5, 30.0):
        n = 60000
        y = submodels.truncated_draws(fam, np.full((2, n // 2), m), psi, rng)
        assert y.shape == (2, n // 2) and y.min() >= 1 and np.all(y == np.round(y))
        if family == "poisson":
            pmf = stats.poisson.pmf(np.arange(0, 400), m)
        else:
            size, p = fam._size_prob(np.array(m), psi)
            pmf = stats.nbinom.pmf(np.arange(0, 400), size, p)
        tp = pmf[1:] / (1 - pmf[0])
        for k in range(1, 6):
            obs = float(np.mean(y == k))
            se = np.sqrt(tp[k - 1] * (1 - tp[k - 1]) / n)
            assert abs(obs - tp[k - 1]) <= 5 * se + 1e-4, (family, m, k, obs, tp[k - 1])
    # reproducible: the same generator state gives the same draws
    a = submodels.truncated_draws(fam, np.full(500, 0.8), psi, np.random.default_rng(9))
    b = submodels.truncated_draws(fam, np.full(500, 0.8), psi, np.random.default_rng(9))
    assert np.array_equal(a, b)
