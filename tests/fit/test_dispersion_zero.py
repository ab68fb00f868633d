"""``dispformula="~0"``: a gaussian model without residual variance (glmmTMB's idiom for
structured-covariance models), against glmmTMB 1.1.5 (tests/reference/ext/ar1_disp0.json,
ar1_olre_disp0.json; script tests/reference/ext/zi13_ext.R).

glmmTMB 1.1.5 fixes betad = log sigma^2 at log(sqrt(.Machine$double.eps)) = -18.0218
(sigma = 1.2207e-4). With an observation-level random effect carrying all the residual variance
the model is the linear mixed model without that term (sigma_obs^2 + 1.5e-8 = sigma^2): the
reference stores lme4's ML fit of it too, a closed-form check independent of glmmTMB."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmdiag
from glmmdiag import checks, datasets
from glmmdiag.errors import GlmmdiagError
from glmmdiag.fit.submodels import DISP_ZERO_BETAD

REF = Path(__file__).resolve().parents[1] / "reference" / "ext"
LOGLIK_SLACK = 0.01
BETA_REL_TOL, BETA_SE_FRAC = 1e-4, 1e-3
SE_REL_TOL = 1e-2
SD_REL_TOL = 1e-3
SIGMA_FIXED = 0.0001220703125  # glmmTMB's sigma() of these fits: exp(DISP_ZERO_BETAD / 2)
_FITS: dict = {}


def _ref(case):
    return json.loads((REF / f"{case}.json").read_text())["fit"]


def _ar1_data():
    d = datasets.load("ar1_sim")
    d["obs"] = pd.Categorical([str(i) for i in range(1, len(d) + 1)])
    return d


def _fit(case):
    if case not in _FITS:
        formula = {"ar1_disp0": "y ~ x + ar1(times + 0 | group)",
                   "ar1_olre_disp0": "y ~ x + (1 | group) + (1 | obs)"}[case]
        _FITS[case] = glmmdiag.glmm(formula, _ar1_data(), dispformula="~0")
    return _FITS[case]


def _close(est, ref_est, ref_se):
    est, ref_est, ref_se = (np.asarray(a, float) for a in (est, ref_est, ref_se))
    tol = np.maximum(BETA_REL_TOL * np.abs(ref_est), BETA_SE_FRAC * ref_se)
    assert np.all(np.abs(est - ref_est) <= tol), (est - ref_est, tol)


def test_fixed_value_is_glmmtmbs():
    assert DISP_ZERO_BETAD == pytest.approx(_ref("ar1_disp0")["betad"], abs=1e-9)
    assert np.exp(DISP_ZERO_BETAD / 2) == pytest.approx(_ref("ar1_disp0")["sigma"], rel=1e-12)


@pytest.mark.parametrize("case", ["ar1_disp0", "ar1_olre_disp0"])
def test_matches_glmmtmb(case):
    fit, ref = _fit(case), _ref(case)
    assert fit.converged
    assert fit.loglik >= ref["logLik"] - LOGLIK_SLACK
    _close(fit.fixef, ref["fixed"]["estimate"], ref["fixed"]["se"])
    np.testing.assert_allclose(fit.se, ref["fixed"]["se"], rtol=SE_REL_TOL)
    assert fit.n_params == ref["df_logLik"]
    assert fit.dispersion == pytest.approx(ref["sigma"], rel=1e-12)
    assert fit.fixef_disp.empty


def test_ar1_structure_matches_glmmtmb():
    fit, ref = _fit("ar1_disp0"), _ref("ar1_disp0")
    # glmmTMB's ar1 theta (log sd, rho / sqrt(1 - rho^2)) at its optimum, fit$par (its
    # obj$env$parList() is at the last point evaluated, not the optimum)
    th = [ref["par"]["theta"], ref["par"]["theta.1"]]
    T = fit._thetamap.factors(fit.theta)[0]
    sd = np.sqrt(np.diag(T @ T.T))
    np.testing.assert_allclose(sd, np.exp(th[0]), rtol=SD_REL_TOL)
    np.testing.assert_allclose(sd, ref["random"][0]["sd"], rtol=SD_REL_TOL)
    rho = th[1] / np.sqrt(1 + th[1] ** 2)
    assert fit.covariance_parameters[0]["rho"] == pytest.approx(rho, rel=SD_REL_TOL)
    R = (T @ T.T) / np.outer(sd, sd)
    np.testing.assert_allclose(R, np.asarray(ref["random"][0]["correlation"]), rtol=SD_REL_TOL, atol=1e-5)


def test_observation_level_effect_is_the_lmm():
    """(1 | obs) with no residual variance: the SDs match glmmTMB's, and lme4's ML fit of the model
    without the term (its residual SD is the obs SD)."""
    fit, ref = _fit("ar1_olre_disp0"), _ref("ar1_olre_disp0")
    vc = fit.varcorr.set_index("grp")["sdcor"]
    for r in ref["random"]:
        assert vc[r["group"]] == pytest.approx(np.ravel(r["sd"])[0], rel=SD_REL_TOL)
    lm = ref["lmer"]
    assert fit.loglik == pytest.approx(lm["logLik"], abs=LOGLIK_SLACK)
    _close(fit.fixef, lm["fixed"], lm["se"])
    np.testing.assert_allclose(fit.se, lm["se"], rtol=SE_REL_TOL)
    assert vc["group"] == pytest.approx(lm["sd"]["group"], rel=SD_REL_TOL)
    assert vc["obs"] == pytest.approx(lm["sd"]["Residual"], rel=SD_REL_TOL)


def test_downstream_summary_predict_simulate_refit_residuals():
    fit = _fit("ar1_disp0")
    text = fit.summary()
    assert "Dispersion:                ~0" in text
    assert "Dispersion estimate" not in text and "Dispersion model:" not in text  # as glmmTMB's summary
    d = _ar1_data()
    np.testing.assert_allclose(fit.predict(type="disp"), SIGMA_FIXED, rtol=1e-12)
    np.testing.assert_allclose(fit.predict(d.iloc[:5], type="disp"), SIGMA_FIXED, rtol=1e-12)
    # conditional draws scatter around the fitted means with SD sigma = 1.22e-4
    sims = fit.simulate(200, seed=3, conditional=True)
    dev = sims - fit.fitted()[:, None]
    assert np.std(dev) == pytest.approx(SIGMA_FIXED, rel=0.02)  # 96000 draws: MC error ~0.25%
    # unconditional draws: the marginal variance sd^2 of the ar1 term (+ sigma^2, negligible)
    sims = fit.simulate(400, seed=4)
    T = fit._thetamap.factors(fit.theta)[0]
    var = np.var(sims - fit.predict(re_form="~0")[:, None])
    assert var == pytest.approx(np.mean(np.diag(T @ T.T)), rel=0.05)
    # refit to the observed response reproduces the fit
    again = fit.refit(fit.design.y)
    assert again.loglik == pytest.approx(fit.loglik, abs=1e-6)
    np.testing.assert_allclose(again.fixef, fit.fixef, rtol=1e-5)
    # the residual tests run on the unconditional simulations (a correctly specified model here)
    res = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1, simulate_re="unconditional")
    assert checks.uniformity_test(res).pvalue > 0.01
    assert checks.dispersion_test(res).pvalue > 0.01


def test_only_gaussian():
    d = datasets.load("Salamanders")
    with pytest.raises(GlmmdiagError, match="gaussian family only"):
        glmmdiag.glmm("count ~ mined + (1 | site)", d, family="nbinom2", dispformula="~0")
    # without residual variance an observation-level effect is allowed; with it, not (lme4's rule)
    with pytest.raises(GlmmdiagError, match="cannot be told apart"):
        glmmdiag.glmm("y ~ x + (1 | group) + (1 | obs)", _ar1_data())
