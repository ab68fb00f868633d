"""Degenerate data (constant or exactly fitted responses, too few rows) and models without fixed
effects (issue "hardening", items 3 and 4)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import glmmdiag
from glmmdiag.errors import DegenerateFitWarning, FitError, GlmmdiagError


def _data(seed=1, n_groups=8, per=5):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    return pd.DataFrame({"g": [f"g{k}" for k in g], "x": rng.normal(size=g.size), "y": np.full(g.size, 3.0)})


# ---------------------------------------------------------------------------- item 3
def test_constant_response_lm_is_an_honest_perfect_fit():
    with pytest.warns(DegenerateFitWarning, match=r"perfect fit.*constant.*2 fixed-effect.*40 rows"):
        fit = glmmdiag.glmm("y ~ x", _data())
    assert fit.fixef["(Intercept)"] == pytest.approx(3.0)
    assert fit.dispersion == 0.0 and fit.loglik == np.inf  # as R's lm: residual SE 0, logLik Inf
    tab = fit.coef_table()
    assert np.all(tab["Std. Error"] == 0.0)
    assert tab["z value"].isna().all() and tab["Pr(>|z|)"].isna().all()  # never p = 0 from SE 0
    row = next(line for line in fit.summary().splitlines() if line.startswith("(Intercept)"))
    assert row.split()[-2:] == ["NA", "NA"]  # z value and Pr(>|z|)


def test_saturated_lm_ml_warns_and_reml_refuses():
    d = pd.DataFrame({"y": [1.0, 2.0, 4.0], "f": ["a", "b", "c"]})
    with pytest.warns(DegenerateFitWarning, match="saturated"):
        fit = glmmdiag.glmm("y ~ f", d)
    assert np.allclose(fit.predict(), d["y"])
    with pytest.raises(GlmmdiagError, match=r"REML.*3 rows, 3 parameters.*reml=False"):
        glmmdiag.glmm("y ~ f", d, reml=True)


def test_one_row_lm():
    with pytest.warns(DegenerateFitWarning, match="1 fixed-effect parameter.*1 rows"):
        fit = glmmdiag.glmm("y ~ 1", pd.DataFrame({"y": [2.5]}))
    assert fit.fixef.iloc[0] == 2.5 and np.isnan(fit.coef_table()["Pr(>|z|)"].iloc[0])


@pytest.mark.parametrize("reml", [False, True])
def test_constant_response_lmm_is_a_clear_error(reml):
    with pytest.raises(FitError, match=r"fit the response exactly.*constant.*40 rows, 2 fixed-effect"):
        glmmdiag.glmm("y ~ x + (1 | g)", _data(), reml=reml)


def test_lmm_with_as_many_fixed_effects_as_rows_is_a_clear_error():
    d = _data()
    d["y"] = np.random.default_rng(2).normal(size=len(d))
    d["f"] = [f"r{i:02d}" for i in range(len(d))]
    with pytest.raises(GlmmdiagError, match=r"40 rows and 40 fixed-effect parameters.*residual variance"):
        glmmdiag.glmm("y ~ f + (1 | g)", d)


@pytest.mark.parametrize("family,link", [("gamma", None), ("t", None), ("gaussian", "log")])
@pytest.mark.parametrize("re", ["", " + (1 | g)"])
def test_constant_response_with_a_dispersion_family_is_a_clear_error(family, link, re):
    with pytest.raises(FitError, match=r"constant \(all 40 rows are 3\).*dispersion"):
        glmmdiag.glmm("y ~ x" + re, _data(), family=family, link=link)


def test_response_constant_within_groups_warns_degenerate():
    d = _data()
    d["y"] = np.repeat(np.random.default_rng(0).normal(size=8), 5)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = glmmdiag.glmm("y ~ 1 + (1 | g)", d)
    assert any(issubclass(w.category, DegenerateFitWarning) and "residual SD is (nearly) zero" in str(w.message)
               for w in rec)
    assert not fit.converged


# ---------------------------------------------------------------------------- item 4
def _one_way(seed=5, n_groups=15, sizes=(3, 4, 5, 6)):
    rng = np.random.default_rng(seed)
    n_g = np.resize(np.array(sizes), n_groups)
    g = np.repeat(np.arange(n_groups), n_g)
    b = 0.8 * rng.normal(size=n_groups)
    return pd.DataFrame({"g": [f"g{k:02d}" for k in g], "y": b[g] + rng.normal(size=g.size),
                         "c": rng.poisson(np.exp(0.3 + b[g]))})


def _one_way_loglik(log_s2, log_t2, groups):
    """Zero-mean one-way random-effects model: y_g ~ N(0, s2 I + t2 J), closed form."""
    s2, t2 = np.exp(log_s2), np.exp(log_t2)
    ll = 0.0
    for y in groups:
        n = y.size
        lam = s2 + n * t2
        quad = (y @ y - t2 / lam * y.sum() ** 2) / s2
        ll += -0.5 * (n * np.log(2 * np.pi) + (n - 1) * np.log(s2) + np.log(lam) + quad)
    return ll


@pytest.mark.parametrize("formula", ["y ~ 0 + (1 | g)", "y ~ -1 + (1 | g)"])
def test_gaussian_without_fixed_effects_matches_closed_form_ml(formula):
    d = _one_way()
    fit = glmmdiag.glmm(formula, d)
    groups = [grp["y"].to_numpy() for _, grp in d.groupby("g")]
    res = optimize.minimize(lambda p: -_one_way_loglik(p[0], p[1], groups), [0.0, 0.0], method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000})
    assert fit.loglik == pytest.approx(-res.fun, abs=1e-6)
    assert fit.dispersion == pytest.approx(np.exp(res.x[0] / 2), rel=1e-4)
    vc = fit.varcorr
    sd_g = float(vc.loc[vc["grp"] == "g", "sdcor"].iloc[0])
    assert sd_g == pytest.approx(np.exp(res.x[1] / 2), rel=1e-4)
    assert fit.fixef.empty and fit.vcov.shape == (0, 0) and fit.coef_table().empty
    # REML with no fixed effects is ML
    assert glmmdiag.glmm(formula, d, reml=True).loglik == pytest.approx(fit.loglik, abs=1e-8)


def _poisson_marginal_loglik(sigma, d, nodes=200):
    """log prod_g int prod_i Pois(y_i; exp(sigma z)) phi(z) dz by Gauss-Hermite with many nodes."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    ll = 0.0
    for _, grp in d.groupby("g"):
        y = grp["c"].to_numpy(float)
        eta = sigma * z[:, None]
        lp = (y * eta - np.exp(eta) - special.gammaln(y + 1)).sum(axis=1)
        ll += special.logsumexp(lp, b=w)
    return ll


def test_poisson_without_fixed_effects_agq_matches_direct_integration():
    d = _one_way()
    fit = glmmdiag.glmm("c ~ 0 + (1 | g)", d, family="poisson", n_agq=25)
    sigma = float(fit.varcorr["sdcor"].iloc[0])
    assert fit.loglik == pytest.approx(_poisson_marginal_loglik(sigma, d), abs=1e-6)
    best = optimize.minimize_scalar(lambda s: -_poisson_marginal_loglik(s, d), bounds=(0.05, 3.0),
                                    method="bounded", options={"xatol": 1e-9})
    assert fit.loglik == pytest.approx(-best.fun, abs=1e-6)
    assert sigma == pytest.approx(best.x, rel=1e-3)
    lap = glmmdiag.glmm("c ~ 0 + (1 | g)", d, family="poisson")
    assert lap.loglik == pytest.approx(fit.loglik, abs=0.2)  # Laplace: close, not exact


@pytest.mark.parametrize("family,resp", [("gaussian", "y"), ("poisson", "c"), ("binomial", "b")])
def test_model_without_fixed_effects_supports_everything(family, resp):
    d = _one_way()
    d["b"] = (d["c"] > 1).astype(float)
    fit = glmmdiag.glmm(f"{resp} ~ 0 + (1 | g)", d, family=family)
    assert fit.fixef.empty and fit.se.empty and fit.vcov.shape == (0, 0)
    assert "No fixed effect coefficients" in fit.summary()
    eta = fit.predict()
    b = fit.ranef["g"].iloc[:, 0]
    assert np.allclose(eta, b.loc[d["g"]].to_numpy())  # the linear predictor is Zb alone
    assert np.allclose(fit.predict(re_form="~0"), 0.0)
    sims = fit.simulate(5, seed=1)
    assert sims.shape == (len(d), 5)
    re = fit.refit(sims[:, 0])
    assert re.fixef.empty and np.isfinite(re.loglik)
    res = glmmdiag.simulate_residuals(fit, n_sim=50, seed=1)
    tests = glmmdiag.residual_tests(res)
    assert tests is not None and np.all((res.residuals >= 0) & (res.residuals <= 1))
