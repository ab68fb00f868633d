"""scikit-learn GLMs through from_sklearn: verdicts on real data, the Pearson dispersion against
statsmodels, sample weights in the simulations, pipelines, refits and refusals."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import glmmdiag as gd
from glmmdiag.adapters import SklearnGLMAdapter, as_simulable, from_sklearn

from adapter_verdicts import fails, passes, verdict

lm = pytest.importorskip("sklearn.linear_model")
pytest.importorskip("sklearn")
from sklearn.compose import make_column_transformer  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures  # noqa: E402

sm = pytest.importorskip("statsmodels.api")
smf = pytest.importorskip("statsmodels.formula.api")


def _onehot(cols, rest="passthrough"):
    return make_column_transformer((OneHotEncoder(drop="first"), cols), remainder=rest)


def test_poisson_regressor_with_rate_weights_and_without(cbpp, grouseticks):
    # cbpp: new cases per herd size as a Poisson rate with sample_weight = size (cases are rare,
    # so Poisson ~ binomial); grouseticks: tick counts, strongly overdispersed
    X = cbpp[["period", "herd"]]
    good_est = make_pipeline(OneHotEncoder(drop="first"), lm.PoissonRegressor(alpha=0, max_iter=1000))
    good_est.fit(X, cbpp["prop"], poissonregressor__sample_weight=cbpp["size"])
    good = verdict(from_sklearn(good_est, X, cbpp["prop"], sample_weight=cbpp["size"]))
    Xg = grouseticks[["YEAR", "cHEIGHT"]]
    bad_est = make_pipeline(_onehot(["YEAR"]), lm.PoissonRegressor(alpha=0)).fit(Xg, grouseticks["TICKS"])
    bad = verdict(from_sklearn(bad_est, Xg, grouseticks["TICKS"]))
    assert passes(good), good
    assert fails(bad) and bad["ratio"] > 5, bad


def test_gamma_and_tweedie_regressors(gamma_sim, tweedie_sim):
    Xg = gamma_sim[["x", "g"]]
    gam = make_pipeline(_onehot(["g"]), lm.GammaRegressor(alpha=0, max_iter=1000)).fit(Xg, gamma_sim["y"])
    ig = make_pipeline(_onehot(["g"]), lm.TweedieRegressor(power=3, alpha=0, max_iter=1000)).fit(Xg, gamma_sim["y"])
    v_gam, v_ig = verdict(from_sklearn(gam, Xg, gamma_sim["y"])), verdict(from_sklearn(ig, Xg, gamma_sim["y"]))
    assert passes(v_gam), v_gam
    assert v_ig["ratio"] < 0.6 and v_ig["dispersion"] < 0.05, v_ig
    Xt = tweedie_sim[["x", "g"]]
    t15 = make_pipeline(_onehot(["g"]), lm.TweedieRegressor(power=1.5, alpha=0, max_iter=1000)).fit(Xt, tweedie_sim["y"])
    t19 = make_pipeline(_onehot(["g"]), lm.TweedieRegressor(power=1.9, alpha=0, max_iter=1000)).fit(Xt, tweedie_sim["y"])
    v15, v19 = verdict(from_sklearn(t15, Xt, tweedie_sim["y"])), verdict(from_sklearn(t19, Xt, tweedie_sim["y"]))
    assert passes(v15), v15
    assert fails(v19), v19


def test_normal_tweedie_on_real_data(sleepstudy, grouseticks):
    Xs = sleepstudy[["Days", "Subject"]]
    good_est = make_pipeline(_onehot(["Subject"]), lm.TweedieRegressor(power=0, alpha=0)).fit(Xs, sleepstudy["Reaction"])
    Xg = grouseticks[["YEAR", "cHEIGHT"]]
    bad_est = make_pipeline(_onehot(["YEAR"]), lm.TweedieRegressor(power=0, alpha=0)).fit(Xg, grouseticks["TICKS"])
    good = verdict(from_sklearn(good_est, Xs, sleepstudy["Reaction"]))
    bad = verdict(from_sklearn(bad_est, Xg, grouseticks["TICKS"]))
    assert passes(good), good
    assert bad["uniformity"] < 1e-8, bad


def test_logistic_regression_detects_the_missing_quadratic(contraception):
    d, cols = contraception, ["age", "urban", "livch"]
    quad = make_pipeline(
        make_column_transformer((OneHotEncoder(drop="first"), ["urban", "livch"]),
                                (PolynomialFeatures(2, include_bias=False), ["age"])),
        lm.LogisticRegression(C=1e8, max_iter=2000)).fit(d[cols], d["y"])
    lin = make_pipeline(_onehot(["urban", "livch"]), lm.LogisticRegression(C=1e8, max_iter=2000)).fit(d[cols], d["y"])
    good = verdict(from_sklearn(quad, d[cols], d["y"]), predictor=d["age"])
    bad = verdict(from_sklearn(lin, d[cols], d["y"]), predictor=d["age"])
    assert passes(good), good
    assert bad["quantile"] < 0.01, bad  # measured 0.0014
    # the same model as statsmodels' Logit: the same fitted probabilities
    ref = smf.logit("y ~ age + I(age**2) + urban + livch", d).fit(disp=0)
    assert np.allclose(from_sklearn(quad, d[cols], d["y"]).fitted(), ref.predict(), atol=1e-3)  # lbfgs tolerance


def test_pearson_dispersion_is_statsmodels_scale(gamma_sim):
    """phi = sum w (y - mu)^2 / mu^2 / (n - p): statsmodels' default scale of the same Gamma GLM."""
    rng = np.random.default_rng(3)
    w = rng.integers(1, 4, size=len(gamma_sim)).astype(float)
    est = lm.GammaRegressor(alpha=0, tol=1e-10, max_iter=10000).fit(gamma_sim[["x"]], gamma_sim["y"], sample_weight=w)
    a = from_sklearn(est, gamma_sim[["x"]], gamma_sim["y"], sample_weight=w)
    ref = sm.GLM(gamma_sim["y"], sm.add_constant(gamma_sim["x"]), family=sm.families.Gamma(sm.families.links.Log()),
                 var_weights=w).fit()
    assert np.allclose(a.fixef, ref.params, rtol=1e-4)
    assert a.dispersion == pytest.approx(ref.scale, rel=1e-4)
    assert a.df_resid == ref.df_resid


def test_sample_weights_change_the_simulated_variance():
    rng = np.random.default_rng(5)
    x = rng.normal(size=600)
    w = np.where(rng.random(600) < 0.5, 1.0, 9.0)
    mu = np.exp(1 + 0.3 * x)
    y_gamma = rng.gamma(w / 0.4, mu * 0.4 / w)  # variance 0.4 mu^2 / w
    est = lm.GammaRegressor(alpha=0).fit(x[:, None], y_gamma, sample_weight=w)
    a = from_sklearn(est, x[:, None], y_gamma, sample_weight=w)
    S = np.asarray(a.simulate(4000, np.random.default_rng(1)), float)
    rel = S.var(axis=1) * w / (a.dispersion * a.fitted() ** 2)
    assert np.median(rel[w == 1]) == pytest.approx(1.0, abs=0.08)
    assert np.median(rel[w == 9]) == pytest.approx(1.0, abs=0.08)
    counts = rng.poisson(w * mu)  # a rate over w units: y = counts / w
    pois = lm.PoissonRegressor(alpha=0).fit(x[:, None], counts / w, sample_weight=w)
    p = from_sklearn(pois, x[:, None], counts / w, sample_weight=w)
    S = np.asarray(p.simulate(4000, np.random.default_rng(2)), float)
    assert np.allclose(S * w[:, None], np.round(S * w[:, None]))
    assert np.median(S.var(axis=1) * w / p.fitted()) == pytest.approx(1.0, abs=0.08)
    assert passes(verdict(p))
    # the same rates without the weights: Poisson(mu) counts, variance mu (9 times more on w = 9 rows)
    unweighted = from_sklearn(lm.PoissonRegressor(alpha=0).fit(x[:, None], counts / w), x[:, None], counts / w)
    S0 = np.asarray(unweighted.simulate(4000, np.random.default_rng(2)), float)
    assert np.median(S0.var(axis=1)[w == 9] / unweighted.fitted()[w == 9]) == pytest.approx(1.0, abs=0.08)


def test_refit_reproducibility_and_refusals(cbpp, contraception):
    X = cbpp[["period", "herd"]]
    est = make_pipeline(OneHotEncoder(drop="first"), lm.PoissonRegressor(alpha=0, max_iter=1000))
    est.fit(X, cbpp["prop"], poissonregressor__sample_weight=cbpp["size"])
    a = from_sklearn(est, X, cbpp["prop"], sample_weight=cbpp["size"])
    assert isinstance(a, SklearnGLMAdapter) and a.family_name == "poisson"
    assert np.allclose(a.refit(a.observed()).fixef, a.fixef, rtol=1e-5)
    r1 = gd.simulate_residuals(a, 100, seed=9).residuals
    r2 = gd.simulate_residuals(a, 100, seed=9, n_jobs=2).residuals
    assert np.array_equal(np.asarray(r1), np.asarray(r2))
    with pytest.raises(TypeError, match="from_sklearn"):
        as_simulable(est)
    d = contraception
    multi = lm.LogisticRegression(max_iter=500).fit(d[["age"]], d["livch"].astype(str))
    with pytest.raises(gd.GlmmdiagError, match="binary"):
        from_sklearn(multi, d[["age"]], d["livch"].astype(str))
    logit = lm.LogisticRegression().fit(d[["age"]], d["y"], sample_weight=np.full(len(d), 2.0))
    with pytest.raises(gd.GlmmdiagError, match="sample_weight"):
        from_sklearn(logit, d[["age"]], d["y"], sample_weight=np.full(len(d), 2.0))
    with pytest.raises(gd.GlmmdiagError, match="power 2.5"):
        from_sklearn(lm.TweedieRegressor(power=2.5).fit(d[["age"]], d["age"] + 30), d[["age"]], d["age"] + 30)
    with pytest.raises(TypeError, match="supports PoissonRegressor"):
        from_sklearn(lm.LinearRegression().fit(d[["age"]], d["y"]), d[["age"]], d["y"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(gd.GlmmdiagError, match="not fitted"):
            from_sklearn(lm.PoissonRegressor(), d[["age"]], d["y"])
