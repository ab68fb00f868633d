"""Behaviour of the results object (issue 2, "the results contract").

Every expectation is computed independently of the fitter where possible: design matrices and
linear predictors by hand, inverse links by hand, the moments of simulated responses from the fitted
parameters (gaussian and Poisson closed forms), the LMM conditional modes from the usual formula.
Statistical checks use fixed seeds and bounds of 4-6 standard errors, so they are deterministic and
far from flaky.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
GROUSE = "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)"
CONTRA = "use ~ age + I(age**2) + urban + livch + (1 | district)"
OROB_GLM = "cbind(germ, n - germ) ~ extract * gen"

# estimates of two fits of the same model given in two equivalent ways (same tolerance as the
# reference comparisons: max(1e-4 relative, 1e-3 of the SE))
SAME_BETA_REL, SAME_BETA_SE = 1e-4, 1e-3
SAME_SD_REL = 1e-3
SAME_LOGLIK_ABS = 1e-5
# refit with the original response, warm-started at the optimum
REFIT_REL = 1e-5


def _glmm():
    import glmmdiag

    return glmmdiag.glmm


def expit(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, float)))


INVERSE_LINK = {"gaussian": lambda e: np.asarray(e, float), "binomial": expit, "poisson": np.exp}

# ---------------------------------------------------------------------------------------------- fits


@pytest.fixture(scope="module")
def sleep(load_data):
    data = load_data("sleepstudy")
    return data, _glmm()(SLEEP, data, family="gaussian", reml=False)


@pytest.fixture(scope="module")
def cbpp(load_data):
    data = load_data("cbpp")
    return data, _glmm()(CBPP, data, family="binomial")


@pytest.fixture(scope="module")
def grouse(load_data):
    data = load_data("grouseticks")
    return data, _glmm()(GROUSE, data, family="poisson")


@pytest.fixture(scope="module")
def contra(load_data):
    data = load_data("Contraception")
    return data, _glmm()(CONTRA, data, family="binomial")


FIT_FAMILY = {"sleep": "gaussian", "cbpp": "binomial", "grouse": "poisson", "contra": "binomial"}


@pytest.fixture
def any_fit(request):
    """(name, data, fit) for the fixture named by the test's `which` parameter."""
    data, fit = request.getfixturevalue(request.param)
    return request.param, data, fit


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=float)


def _no_var2(vc: pd.DataFrame) -> np.ndarray:
    """Rows of a varcorr table that hold a variance (var2 missing: NA, None or "")."""
    return np.array([v is None or v == "" or bool(pd.isna(v)) for v in vc["var2"]], dtype=bool)


def _variance_rows(fit, group: str) -> dict[str, float]:
    vc = fit.varcorr
    rows = vc[(vc["grp"] == group).to_numpy() & _no_var2(vc)]
    return {str(r["var1"]): float(r["vcov"]) for _, r in rows.iterrows()}


def _covariance(fit, group: str, a: str, b: str) -> float:
    vc = fit.varcorr
    rows = vc[(vc["grp"] == group).to_numpy() & ~_no_var2(vc)]
    for _, r in rows.iterrows():
        if {str(r["var1"]), str(r["var2"])} == {a, b}:
            return float(r["vcov"])
    raise AssertionError(f"no covariance row for {group}: {a}, {b} in\n{vc}")


def _assert_same_fit(fit_a, fit_b, what: str):
    fa, fb = _arr(fit_a.fixef), _arr(fit_b.fixef)
    assert fa.shape == fb.shape, what
    tol = np.maximum(SAME_BETA_REL * np.abs(fa), SAME_BETA_SE * _arr(fit_a.se))
    assert np.all(np.abs(fa - fb) <= tol), f"{what}: {fa} vs {fb}"
    sa = fit_a.varcorr["sdcor"].to_numpy(float)
    sb = fit_b.varcorr["sdcor"].to_numpy(float)
    np.testing.assert_allclose(sb, sa, rtol=SAME_SD_REL, atol=1e-6, err_msg=what)
    assert abs(float(fit_a.loglik) - float(fit_b.loglik)) <= SAME_LOGLIK_ABS, what


# ---------------------------------------------------------------------------------------------- predict


@pytest.mark.parametrize("any_fit", list(FIT_FAMILY), indirect=True)
@pytest.mark.parametrize("re_form", [None, "~0"])
def test_predict_response_is_inverse_link_of_link(any_fit, re_form):
    name, _, fit = any_fit
    eta = _arr(fit.predict(type="link", re_form=re_form))
    mu = _arr(fit.predict(type="response", re_form=re_form))
    assert eta.shape == mu.shape == (fit.nobs,)
    np.testing.assert_allclose(mu, INVERSE_LINK[FIT_FAMILY[name]](eta), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("any_fit", list(FIT_FAMILY), indirect=True)
@pytest.mark.parametrize("kind", ["link", "response"])
def test_predict_on_training_data_equals_fitted(any_fit, kind):
    _, data, fit = any_fit
    np.testing.assert_allclose(
        _arr(fit.predict(newdata=data, type=kind)), _arr(fit.predict(type=kind)), rtol=1e-9, atol=1e-10
    )


def test_predict_on_a_subset_reuses_the_training_transforms(grouse):
    """scale(HEIGHT) must use the training mean/SD, not those of the new rows."""
    data, fit = grouse
    sub = data.iloc[:40].copy()
    np.testing.assert_allclose(_arr(fit.predict(newdata=sub)), _arr(fit.predict())[:40], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(
        _arr(fit.predict(newdata=sub, re_form="~0")), _arr(fit.predict(re_form="~0"))[:40], rtol=1e-9, atol=1e-10
    )


def test_predict_on_a_subset_with_I_and_factor_levels_missing(contra):
    """I(age**2) per row; livch restricted to one level in newdata still uses the training dummies."""
    data, fit = contra
    rows = np.flatnonzero(data["livch"].astype(str).to_numpy() == "2")[:25]
    sub = data.iloc[rows].copy()
    np.testing.assert_allclose(_arr(fit.predict(newdata=sub)), _arr(fit.predict())[rows], rtol=1e-9, atol=1e-10)


def test_predict_newdata_without_response_column(sleep):
    data, fit = sleep
    np.testing.assert_allclose(
        _arr(fit.predict(newdata=data[["Days", "Subject"]])), _arr(fit.predict()), rtol=1e-9, atol=1e-10
    )


def test_population_prediction_is_X_beta(sleep):
    data, fit = sleep
    b0, b1 = _arr(fit.fixef)
    want = b0 + b1 * data["Days"].to_numpy(float)
    np.testing.assert_allclose(_arr(fit.predict(re_form="~0")), want, rtol=1e-10)
    np.testing.assert_allclose(_arr(fit.predict(newdata=data, re_form="~0")), want, rtol=1e-10)


def test_conditional_prediction_is_X_beta_plus_Z_b_lmm(sleep):
    data, fit = sleep
    b0, b1 = _arr(fit.fixef)
    re = fit.ranef["Subject"]
    re = re.set_axis([str(i) for i in re.index], axis=0)
    subj = data["Subject"].astype(str).to_numpy()
    days = data["Days"].to_numpy(float)
    want = (b0 + re.loc[subj, "(Intercept)"].to_numpy()) + (b1 + re.loc[subj, "Days"].to_numpy()) * days
    np.testing.assert_allclose(_arr(fit.predict()), want, rtol=1e-9)


def test_conditional_prediction_is_X_beta_plus_Z_b_binomial(cbpp):
    data, fit = cbpp
    beta = _arr(fit.fixef)
    period = data["period"].astype(str).to_numpy()
    X = np.column_stack([np.ones(len(data))] + [(period == p).astype(float) for p in ["2", "3", "4"]])
    re = fit.ranef["herd"]
    re = re.set_axis([str(i) for i in re.index], axis=0)
    eta = X @ beta + re.loc[data["herd"].astype(str).to_numpy(), "(Intercept)"].to_numpy()
    np.testing.assert_allclose(_arr(fit.predict(type="link")), eta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(_arr(fit.predict(type="response")), expit(eta), rtol=1e-9)
    np.testing.assert_allclose(_arr(fit.predict(type="link", re_form="~0")), X @ beta, rtol=1e-9, atol=1e-12)


def test_unseen_level_gets_population_prediction(sleep):
    _, fit = sleep
    b0, b1 = _arr(fit.fixef)
    re = fit.ranef["Subject"]
    re = re.set_axis([str(i) for i in re.index], axis=0)
    new = pd.DataFrame({"Days": [3.0, 3.0, 7.0], "Subject": pd.Categorical(["308", "999", "new"])})
    got = _arr(fit.predict(newdata=new))
    seen = b0 + re.loc["308", "(Intercept)"] + (b1 + re.loc["308", "Days"]) * 3.0
    np.testing.assert_allclose(got, [seen, b0 + 3 * b1, b0 + 7 * b1], rtol=1e-9)
    np.testing.assert_allclose(_arr(fit.predict(newdata=new, re_form="~0")), [b0 + 3 * b1, b0 + 3 * b1, b0 + 7 * b1])


def test_unseen_level_binomial_response_scale(cbpp):
    data, fit = cbpp
    new = pd.DataFrame({"period": pd.Categorical(["1", "3"], categories=["1", "2", "3", "4"]), "herd": ["99", "1"]})
    got = _arr(fit.predict(newdata=new, type="response"))
    pop = _arr(fit.predict(newdata=new, type="response", re_form="~0"))
    assert got[0] == pytest.approx(pop[0], rel=1e-10)  # unseen herd: zero random effect
    b = float(fit.ranef["herd"].set_axis([str(i) for i in fit.ranef["herd"].index]).loc["1", "(Intercept)"])
    assert got[1] == pytest.approx(expit(math.log(pop[1] / (1 - pop[1])) + b), rel=1e-9)


# ---------------------------------------------------------------------------------------------- ranef


def test_lmm_modes_and_condvar_by_hand(sleep):
    """b_i | y ~ N(V Z_i'(y_i - X_i beta) / sigma^2, V), V = (Z_i'Z_i / sigma^2 + Sigma^-1)^-1."""
    data, fit = sleep
    var = _variance_rows(fit, "Subject")
    cov = _covariance(fit, "Subject", "(Intercept)", "Days")
    Sigma = np.array([[var["(Intercept)"], cov], [cov, var["Days"]]])
    s2 = float(fit.dispersion) ** 2
    beta = _arr(fit.fixef)
    modes = fit.ranef["Subject"].set_axis([str(i) for i in fit.ranef["Subject"].index])
    condvar = fit.ranef_condvar["Subject"].set_axis([str(i) for i in fit.ranef_condvar["Subject"].index])
    subj = data["Subject"].astype(str).to_numpy()
    for s in ["308", "309", "335", "372"]:
        rows = subj == s
        Z = np.column_stack([np.ones(rows.sum()), data.loc[rows, "Days"].to_numpy(float)])
        r = data.loc[rows, "Reaction"].to_numpy(float) - Z @ beta
        V = np.linalg.inv(Z.T @ Z / s2 + np.linalg.inv(Sigma))
        b = V @ Z.T @ r / s2
        np.testing.assert_allclose(modes.loc[s, ["(Intercept)", "Days"]].to_numpy(float), b, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(condvar.loc[s, ["(Intercept)", "Days"]].to_numpy(float), np.diag(V), rtol=1e-6)


# ---------------------------------------------------------------------------------------------- simulate


@pytest.mark.parametrize("any_fit", list(FIT_FAMILY), indirect=True)
def test_simulate_shape_and_seed(any_fit):
    _, _, fit = any_fit
    a = np.asarray(fit.simulate(5, seed=11))
    assert a.shape == (fit.nobs, 5)
    assert np.asarray(fit.simulate(1, seed=3)).shape == (fit.nobs, 1)
    np.testing.assert_array_equal(a, np.asarray(fit.simulate(5, seed=11)))
    assert not np.array_equal(a, np.asarray(fit.simulate(5, seed=12)))
    c = np.asarray(fit.simulate(5, seed=11, conditional=True))
    assert c.shape == (fit.nobs, 5)
    np.testing.assert_array_equal(c, np.asarray(fit.simulate(5, seed=11, conditional=True)))
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(c))


@pytest.mark.parametrize("conditional", [False, True])
def test_simulate_binomial_cbind_counts(cbpp, conditional):
    data, fit = cbpp
    sims = np.asarray(fit.simulate(400, seed=5, conditional=conditional), dtype=float)
    size = data["size"].to_numpy(float)[:, None]
    assert np.array_equal(sims, np.round(sims)), "binomial simulations must be success counts"
    assert sims.min() >= 0 and np.all(sims <= size)
    assert np.all(sims.max(axis=1) > sims.min(axis=1))  # not degenerate
    if conditional:
        # E[y_i] = size_i * mu_i with mu_i the conditional fitted probability
        p = _arr(fit.predict(type="response"))
        se = np.sqrt(size[:, 0] * p * (1 - p) / sims.shape[1])
        z = (sims.mean(axis=1) - size[:, 0] * p) / se
        assert np.max(np.abs(z)) < 5.5
        assert 0.7 < np.mean(z**2) < 1.4


def test_simulate_bernoulli_factor_response(contra):
    _, fit = contra
    sims = np.asarray(fit.simulate(20, seed=2), dtype=float)
    assert set(np.unique(sims)) <= {0.0, 1.0}


def test_simulate_poisson_conditional_mean_and_variance(grouse):
    _, fit = grouse
    nsim = 2000
    sims = np.asarray(fit.simulate(nsim, seed=7, conditional=True), dtype=float)
    assert np.array_equal(sims, np.round(sims)) and sims.min() >= 0
    mu = _arr(fit.predict(type="response"))
    z = (sims.mean(axis=1) - mu) / np.sqrt(mu / nsim)
    assert np.max(np.abs(z)) < 5.5
    assert 0.75 < np.mean(z**2) < 1.3
    # Poisson: variance equals the mean
    assert sims.var(axis=1, ddof=1).sum() / mu.sum() == pytest.approx(1.0, abs=0.05)


def test_simulate_poisson_unconditional_mean(grouse):
    """New random effects: E[y] = exp(eta_fixed + s2 / 2), s2 the sum of the intercept variances."""
    _, fit = grouse
    nsim = 2000
    sims = np.asarray(fit.simulate(nsim, seed=8, conditional=False), dtype=float)
    s2 = sum(sum(_variance_rows(fit, g).values()) for g in ["BROOD", "INDEX", "LOCATION"])
    m = np.exp(_arr(fit.predict(type="link", re_form="~0")) + s2 / 2)
    var = m + m**2 * (math.exp(s2) - 1)
    z = (sims.mean(axis=1) - m) / np.sqrt(var / nsim)
    assert np.max(np.abs(z)) < 6
    assert 0.5 < np.mean(z**2) < 1.6
    assert sims.mean() == pytest.approx(m.mean(), rel=0.1)


def test_unconditional_simulations_vary_more(grouse):
    _, fit = grouse
    cond = np.asarray(fit.simulate(500, seed=9, conditional=True), dtype=float)
    uncond = np.asarray(fit.simulate(500, seed=9, conditional=False), dtype=float)
    assert uncond.var(axis=1).mean() > 1.5 * cond.var(axis=1).mean()


def test_simulate_gaussian_moments(sleep):
    """Conditional: N(fitted, sigma^2).  Unconditional: mean X beta, variance sigma^2 + z' Sigma z."""
    data, fit = sleep
    nsim = 2000
    sigma = float(fit.dispersion)
    cond = np.asarray(fit.simulate(nsim, seed=21, conditional=True), dtype=float)
    resid = cond - _arr(fit.predict())[:, None]
    assert np.abs(resid.mean(axis=1)).max() < 5.5 * sigma / math.sqrt(nsim)
    assert resid.std() == pytest.approx(sigma, rel=0.02)

    unc = np.asarray(fit.simulate(nsim, seed=22, conditional=False), dtype=float)
    var = _variance_rows(fit, "Subject")
    cov = _covariance(fit, "Subject", "(Intercept)", "Days")
    days = data["Days"].to_numpy(float)
    pop = _arr(fit.predict(re_form="~0"))
    for d in [0.0, 4.0, 9.0]:
        rows = days == d
        want = sigma**2 + var["(Intercept)"] + 2 * d * cov + d**2 * var["Days"]
        dev = unc[rows] - pop[rows][:, None]
        assert abs(dev.mean()) < 6 * math.sqrt(want / dev.size)
        assert dev.var() == pytest.approx(want, rel=0.05), f"Days={d}"


# ---------------------------------------------------------------------------------------------- refit


@pytest.mark.filterwarnings("ignore:boundary")  # a simulated response may well give a singular fit
@pytest.mark.parametrize("which", ["sleep", "cbpp"])
def test_refit_on_simulated_response(request, which):
    _, fit = request.getfixturevalue(which)
    before = _arr(fit.fixef).copy()
    y_new = np.asarray(fit.simulate(1, seed=1))[:, 0]
    new = fit.refit(y_new)
    assert new is not fit
    assert len(new.fixef) == len(fit.fixef)
    assert list(new.fixef.index) == list(fit.fixef.index)
    assert bool(new.converged)
    assert new.nobs == fit.nobs
    assert not np.allclose(_arr(new.fixef), _arr(fit.fixef), rtol=1e-8, atol=0)
    np.testing.assert_array_equal(_arr(fit.fixef), before)  # the original fit is untouched
    assert np.asarray(new.simulate(1, seed=1)).shape == (fit.nobs, 1)


@pytest.mark.parametrize("which, response", [("sleep", "Reaction"), ("cbpp", "incidence"), ("grouse", "TICKS")])
def test_refit_with_original_response_reproduces_fit(request, which, response):
    data, fit = request.getfixturevalue(which)
    before = _arr(fit.fixef).copy()
    new = fit.refit(data[response].to_numpy(float))
    got = _arr(new.fixef)
    assert np.all(np.abs(got - before) <= REFIT_REL * np.maximum(1.0, np.abs(before))), f"{got} vs {before}"
    np.testing.assert_allclose(
        new.varcorr["sdcor"].to_numpy(float), fit.varcorr["sdcor"].to_numpy(float), rtol=REFIT_REL, atol=1e-7
    )
    assert float(new.loglik) == pytest.approx(float(fit.loglik), rel=1e-7, abs=1e-6)
    np.testing.assert_array_equal(_arr(fit.fixef), before)


# ---------------------------------------------------------------------------------------------- summary


@pytest.mark.parametrize("any_fit", ["sleep", "cbpp", "grouse"], indirect=True)
def test_summary_text(any_fit):
    name, _, fit = any_fit
    text = fit.summary()
    assert isinstance(text, str)
    for needle in ["Random effects", "Number of obs", str(fit.nobs)]:
        assert needle in text, f"{needle!r} not in summary:\n{text}"
    assert FIT_FAMILY[name] in text.lower(), f"family {FIT_FAMILY[name]!r} not in summary:\n{text}"
    for coef in fit.fixef.index:
        assert str(coef) in text, f"coefficient {coef!r} not in summary:\n{text}"
    for group in fit.ngroups:
        assert str(group) in text


# ---------------------------------------------------------------------------------------------- GLM


def test_plain_glm_matches_reference(load_data, load_reference):
    ref = load_reference("orobanche_glm_glmmTMB")["fit"]
    data = load_data("orobanche")
    fit = _glmm()(OROB_GLM, data, family="binomial")
    est, se = np.asarray(ref["fixed"]["estimate"]), np.asarray(ref["fixed"]["se"])
    assert fit.fixef.index[0] == "(Intercept)" and len(fit.fixef) == 4
    assert np.all(np.abs(_arr(fit.fixef) - est) <= np.maximum(1e-4 * np.abs(est), 1e-3 * se))
    np.testing.assert_allclose(_arr(fit.se), se, rtol=1e-2)
    # a GLM has a unique maximum: the logLik must match, not only be at least as high
    assert float(fit.loglik) == pytest.approx(ref["logLik"], abs=0.01)
    assert float(fit.aic) == pytest.approx(ref["AIC"], abs=0.02)
    assert fit.nobs == 21 and fit.df_resid == 17
    assert dict(fit.ngroups) == {} and dict(fit.ranef) == {}
    assert len(fit.varcorr) == 0
    assert fit.dispersion is None and bool(fit.converged)
    np.testing.assert_allclose(_arr(fit.predict()), _arr(fit.predict(re_form="~0")))
    # the same linear predictor by hand
    X = np.column_stack(
        [
            np.ones(21),
            (data["extract"].astype(str) == "cucumber").to_numpy(float),
            (data["gen"].astype(str) == "O75").to_numpy(float),
        ]
    )
    X = np.column_stack([X, X[:, 1] * X[:, 2]])
    np.testing.assert_allclose(_arr(fit.predict(type="link")), X @ _arr(fit.fixef), rtol=1e-9, atol=1e-12)
    sims = np.asarray(fit.simulate(3, seed=1), dtype=float)
    assert sims.shape == (21, 3) and np.all(sims <= data["n"].to_numpy()[:, None])


# ---------------------------------------------------------------------------------------------- missing values


def test_rows_with_missing_values_are_dropped_and_counted(load_data):
    data = load_data("sleepstudy")
    holed = data.copy()
    holed["Days"] = holed["Days"].astype(float)
    holed.loc[[0, 5, 17], "Days"] = np.nan  # fixed-effect predictor (also the random slope)
    holed.loc[[30, 31], "Reaction"] = np.nan  # response
    holed.loc[50, "Subject"] = np.nan  # grouping factor
    glmm = _glmm()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = glmm(SLEEP, holed, reml=False)
    assert fit.nobs == len(data) - 6
    assert fit.n_dropped == 6
    # reported: as a warning (if any) that gives the count, or at least as the attribute above
    dropped_msgs = [str(w.message) for w in rec if "drop" in str(w.message).lower()]
    assert all("6" in m for m in dropped_msgs), dropped_msgs
    complete = glmm(SLEEP, holed.dropna().reset_index(drop=True), reml=False)
    assert complete.n_dropped == 0 and complete.nobs == fit.nobs
    _assert_same_fit(complete, fit, "NaN rows dropped vs complete cases")
    assert fit.df_resid == fit.nobs - 6


# ---------------------------------------------------------------------------------------------- response forms


def test_binomial_proportion_with_weights_equals_cbind(load_data, cbpp):
    _, fit_cbind = cbpp
    data = load_data("cbpp")
    data["prop"] = data["incidence"] / data["size"]
    fit_prop = _glmm()(
        "prop ~ period + (1 | herd)", data, family="binomial", weights=data["size"].to_numpy(float)
    )
    _assert_same_fit(fit_cbind, fit_prop, "proportion + weights vs cbind")
    assert fit_prop.nobs == fit_cbind.nobs


def test_two_level_factor_response_equals_0_1(load_data, contra):
    _, fit_factor = contra
    data = load_data("Contraception")
    data["use01"] = (data["use"].astype(str) == "Y").astype(int)
    fit01 = _glmm()(CONTRA.replace("use ~", "use01 ~"), data, family="binomial")
    _assert_same_fit(fit_factor, fit01, "factor N/Y vs 0/1")


def test_bool_response_equals_0_1(load_data, contra):
    _, fit_factor = contra
    data = load_data("Contraception")
    data["usebool"] = data["use"].astype(str) == "Y"
    assert data["usebool"].dtype == bool
    fit_bool = _glmm()(CONTRA.replace("use ~", "usebool ~"), data, family="binomial")
    _assert_same_fit(fit_factor, fit_bool, "bool vs factor")


def test_factor_response_success_is_second_level(load_data, contra):
    """Levels (Y, N): success is now "N", so every logit coefficient changes sign."""
    _, fit = contra
    data = load_data("Contraception")
    data["use"] = data["use"].cat.reorder_categories(["Y", "N"])
    flipped = _glmm()(CONTRA, data, family="binomial")
    beta = _arr(fit.fixef)
    tol = np.maximum(SAME_BETA_REL * np.abs(beta), SAME_BETA_SE * _arr(fit.se))
    assert np.all(np.abs(_arr(flipped.fixef) + beta) <= tol)
    assert float(flipped.loglik) == pytest.approx(float(fit.loglik), abs=SAME_LOGLIK_ABS)
