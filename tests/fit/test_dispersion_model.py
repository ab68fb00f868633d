"""The dispersion model (``dispformula``) against glmmTMB 1.1.5 (tests/reference/ext/*.json), closed
forms without random effects, and the exact Laplace gradient in the coefficients of the submodels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import glmmdiag
from glmmdiag import datasets
from glmmdiag.errors import GlmmdiagError

REF = Path(__file__).resolve().parents[1] / "reference" / "ext"
LOGLIK_SLACK = 0.01
BETA_REL_TOL, BETA_SE_FRAC = 1e-4, 1e-3
SE_REL_TOL = 1e-2
RE_SD_REL_TOL = 1e-3

CASES = {
    "salamanders_nb2_disp": ("Salamanders", "count ~ spp + mined + (1 | site)", "nbinom2", "~ mined"),
    "sleepstudy_disp": ("sleepstudy", "Reaction ~ Days + (1 | Subject)", "gaussian", "~ Days"),
}
_FITS: dict = {}


def _fit(case):
    if case not in _FITS:
        data, formula, fam, disp = CASES[case]
        _FITS[case] = glmmdiag.glmm(formula, datasets.load(data), family=fam, dispformula=disp)
    return _FITS[case]


def _close(est, ref_est, ref_se):
    est, ref_est, ref_se = (np.asarray(a, float) for a in (est, ref_est, ref_se))
    tol = np.maximum(BETA_REL_TOL * np.abs(ref_est), BETA_SE_FRAC * ref_se)
    assert np.all(np.abs(est - ref_est) <= tol), (est - ref_est, tol)


@pytest.mark.parametrize("case", list(CASES))
def test_matches_glmmtmb(case):
    fit = _fit(case)
    ref = json.loads((REF / f"{case}.json").read_text())["fit"]
    assert fit.loglik >= ref["logLik"] - LOGLIK_SLACK
    assert fit.converged
    _close(fit.fixef, ref["fixed"]["estimate"], ref["fixed"]["se"])
    np.testing.assert_allclose(fit.se, ref["fixed"]["se"], rtol=SE_REL_TOL)
    assert list(fit.fixef_disp.index) == ref["disp_fixed"]["names"]
    _close(fit.fixef_disp, ref["disp_fixed"]["estimate"], ref["disp_fixed"]["se"])
    np.testing.assert_allclose(fit.se_disp, ref["disp_fixed"]["se"], rtol=SE_REL_TOL)
    sd = np.sqrt(fit.varcorr["vcov"].to_numpy()[0])
    np.testing.assert_allclose(sd, ref["random"][0]["sd"], rtol=RE_SD_REL_TOL)
    assert fit.n_params == ref["df_logLik"]
    assert fit.dispersion is None  # differs between rows
    assert "Dispersion model:" in fit.summary()


def test_gaussian_dispersion_model_predict_and_simulate():
    fit = _fit("sleepstudy_disp")
    sims = fit.simulate(2000, seed=1, conditional=True)
    sd_rows = np.exp(0.5 * (fit.fixef_disp.iloc[0] + fit.fixef_disp.iloc[1] * fit.design.X[:, 1]))
    np.testing.assert_allclose(sims.std(axis=1).mean(), sd_rows.mean(), rtol=0.02)
    np.testing.assert_allclose(fit.predict(type="response"), fit.predict(type="link"))
    res = glmmdiag.simulate_residuals(fit, n_sim=100, seed=2)
    assert np.asarray(res.residuals).shape == (fit.nobs,)


@pytest.mark.parametrize("case", list(CASES))
def test_gradient_matches_finite_differences(case, check_laplace_gradient):
    check_laplace_gradient(_fit(case))


def test_gradient_with_zero_and_dispersion_models(check_laplace_gradient):
    d = datasets.load("Salamanders")
    fit = glmmdiag.glmm("count ~ spp + mined + (1 | site)", d, family="nbinom2", ziformula="~ spp",
                        dispformula="~ mined")
    assert len(fit.fixef_zi) == 7 and len(fit.fixef_disp) == 2
    check_laplace_gradient(fit)
    h = glmmdiag.glmm("count ~ spp + mined + (1 | site)", d, family="truncated_nbinom1", ziformula="~ mined",
                      dispformula="~ mined")
    assert h.converged and not h.warnings
    assert h.loglik > glmmdiag.glmm("count ~ spp + mined + (1 | site)", d, family="truncated_nbinom1",
                                    ziformula="~ mined").loglik  # the nested model cannot fit better
    check_laplace_gradient(h)


def _glm_data(seed=2, n=500):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    g = rng.choice(["a", "b", "c"], size=n)
    return pd.DataFrame({"x": x, "g": g}), rng


def test_gamma_glm_dispersion_model_matches_direct_maximisation():
    df, rng = _glm_data()
    mu = np.exp(1.0 + 0.4 * df.x)
    shape = np.exp(1.5 - 0.8 * (df.g == "b") + 0.5 * (df.g == "c"))
    df["y"] = rng.gamma(shape, mu / shape)
    fit = glmmdiag.glmm("y ~ x", df, family="gamma", link="log", dispformula="~ g")
    X = np.column_stack([np.ones(len(df)), df.x])
    D = np.column_stack([np.ones(len(df)), df.g == "b", df.g == "c"]).astype(float)
    y = df.y.to_numpy()

    def nll(par):  # glmmTMB's Gamma: betad on log shape
        k = np.exp(D @ par[2:])
        m = np.exp(X @ par[:2])
        return -np.sum(stats.gamma.logpdf(y, k, scale=m / k))

    opt = optimize.minimize(nll, np.r_[0, 0, 1, 0, 0.0], method="BFGS", options={"gtol": 1e-9})
    np.testing.assert_allclose(fit.fixef, opt.x[:2], atol=2e-5)
    np.testing.assert_allclose(fit.fixef_disp, opt.x[2:], atol=2e-5)
    np.testing.assert_allclose(fit.loglik, -opt.fun, atol=1e-7)


def test_zinb2_glm_with_dispersion_model_matches_direct_maximisation():
    df, rng = _glm_data(3, 800)
    mu = np.exp(1.0 + 0.5 * df.x)
    th = np.exp(0.5 + 1.0 * (df.g == "b"))
    pi = special.expit(-1.0 + 0.8 * df.x)
    y = rng.negative_binomial(th, th / (th + mu))
    df["y"] = np.where(rng.random(len(df)) < pi, 0, y).astype(float)
    fit = glmmdiag.glmm("y ~ x", df, family="nbinom2", ziformula="~ x", dispformula="~ g")
    X = np.column_stack([np.ones(len(df)), df.x])
    D = np.column_stack([np.ones(len(df)), df.g == "b", df.g == "c"]).astype(float)
    yy = df.y.to_numpy()

    def nll(par):
        m, t, xi = np.exp(X @ par[:2]), np.exp(D @ par[2:5]), X @ par[5:]
        lf = stats.nbinom.logpmf(yy, t, t / (t + m))
        l1p = -np.logaddexp(0, xi)
        return -np.sum(np.where(yy == 0, np.logaddexp(xi + l1p, l1p + lf), l1p + lf))

    opt = optimize.minimize(nll, np.r_[0, 0, 0, 0, 0, -1, 0.0], method="BFGS", options={"gtol": 1e-8})
    np.testing.assert_allclose(fit.loglik, -opt.fun, atol=1e-6)
    np.testing.assert_allclose(np.r_[fit.fixef, fit.fixef_disp, fit.fixef_zi], opt.x, atol=1e-4)


def test_dispersion_model_refusals():
    d = datasets.load("Salamanders")
    with pytest.raises(GlmmdiagError, match="no dispersion parameter"):
        glmmdiag.glmm("count ~ mined + (1 | site)", d, family="poisson", dispformula="~ mined")
    with pytest.raises(GlmmdiagError, match="not supported yet"):
        glmmdiag.glmm("count ~ mined + (1 | site)", d, family="nbinom2", dispformula="~ mined + (1 | spp)")
    ss = datasets.load("sleepstudy")
    with pytest.raises(GlmmdiagError, match="not supported yet"):
        glmmdiag.glmm("Reaction ~ Days + (1 | Subject)", ss, dispformula="~ Days", reml=True)


def test_constant_dispersion_formula_is_the_plain_model():
    d = datasets.load("Salamanders")
    a = glmmdiag.glmm("count ~ mined + (1 | site)", d, family="nbinom2", dispformula="~1")
    b = glmmdiag.glmm("count ~ mined + (1 | site)", d, family="nbinom2")
    assert a.loglik == b.loglik


def test_predict_disp_is_each_rows_sigma():
    """predict(type="disp") (glmmTMB's type): each row's dispersion on the sigma() scale, from the
    dispersion model; glmmTMB 1.1.5's gaussian model is on log sigma^2, nbinom2's on log theta."""
    sl = _fit("sleepstudy_disp")
    bd = sl.fixef_disp.to_numpy()
    days = sl.design.X[:, 1]
    np.testing.assert_allclose(sl.predict(type="disp"), np.exp(0.5 * (bd[0] + bd[1] * days)), rtol=1e-12)
    new = pd.DataFrame({"Days": [0.0, 9.0], "Subject": ["308", "new"]})
    np.testing.assert_allclose(sl.predict(new, type="disp"), np.exp(0.5 * (bd[0] + bd[1] * new["Days"])),
                               rtol=1e-12)
    d = datasets.load("Salamanders")
    nb = _fit("salamanders_nb2_disp")
    theta = np.exp(nb.fixef_disp["(Intercept)"] + nb.fixef_disp["minedno"] * (d["mined"] == "no").to_numpy())
    np.testing.assert_allclose(nb.predict(type="disp"), theta, rtol=1e-12)
    plain = glmmdiag.glmm("count ~ spp + mined + (1 | site)", d, family="nbinom2")
    np.testing.assert_allclose(plain.predict(type="disp"), plain.dispersion)
