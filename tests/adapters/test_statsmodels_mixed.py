"""statsmodels MixedLM: conditional and marginal simulation against the closed-form moments of the
linear mixed model (with lme4's REML estimates for sleepstudy), and verdicts on real data."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import glmmdiag as gd
from glmmdiag.adapters import StatsmodelsMixedLMAdapter, as_simulable

from adapter_verdicts import passes, verdict

sm = pytest.importorskip("statsmodels.api")
smf = pytest.importorskip("statsmodels.formula.api")

REF = Path(__file__).resolve().parent.parent / "reference" / "sleepstudy_lmer_REML.json"


@pytest.fixture(scope="module")
def sleep_fit(sleepstudy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smf.mixedlm("Reaction ~ Days", sleepstudy, groups=sleepstudy["Subject"], re_formula="~Days").fit()


def test_the_estimates_simulated_from_are_lme4s(sleep_fit):
    """statsmodels' REML fit is lme4's (so the simulations below follow R's fitted model)."""
    ref = json.loads(REF.read_text())["fit"]
    re = ref["random"][0]
    sd, corr = np.array(re["sd"]), np.array(re["correlation"]["values"])
    G = corr * np.outer(sd, sd)
    assert np.allclose(np.asarray(sleep_fit.cov_re), G, rtol=2e-3, atol=0.05)
    assert sleep_fit.scale == pytest.approx(ref["sigma"] ** 2, rel=1e-3)
    assert np.allclose(sleep_fit.fe_params, ref["fixed"]["estimate"], rtol=1e-5)


def test_marginal_simulation_has_the_model_covariance(sleep_fit, sleepstudy):
    a = as_simulable(sleep_fit)
    assert isinstance(a, StatsmodelsMixedLMAdapter)
    S = np.asarray(a.simulate(6000, np.random.default_rng(1), conditional=False), float)
    rows = np.flatnonzero(sleepstudy["Subject"].astype(str).to_numpy() == "308")
    Z = np.column_stack([np.ones(rows.size), sleepstudy["Days"].to_numpy(float)[rows]])
    V = Z @ np.asarray(sleep_fit.cov_re) @ Z.T + sleep_fit.scale * np.eye(rows.size)  # Z G Z' + s2 I
    C = np.cov(S[rows])
    # 6000 draws: each covariance entry within 10% of the largest (Monte-Carlo sd about 2-3%)
    assert np.abs(C - V).max() < 0.1 * V.max()
    assert np.allclose(S.mean(axis=1), a.fitted(), atol=5 * np.sqrt(V.max() / 6000))
    other = np.flatnonzero(sleepstudy["Subject"].astype(str).to_numpy() == "309")
    cross = np.corrcoef(S[rows[0]], S[other[0]])[0, 1]  # groups are independent
    assert abs(cross) < 5 / np.sqrt(6000)


def test_conditional_simulation_is_the_fit_plus_residual_noise(sleep_fit):
    a = as_simulable(sleep_fit)
    S = np.asarray(a.simulate(6000, np.random.default_rng(2), conditional=True), float)
    assert np.allclose(a.conditional_fitted(), sleep_fit.fittedvalues)
    assert np.abs(S.mean(axis=1) - sleep_fit.fittedvalues).max() < 5 * np.sqrt(sleep_fit.scale / 6000)
    assert np.median(S.var(axis=1)) == pytest.approx(sleep_fit.scale, rel=0.05)
    assert np.corrcoef(S[0], S[1])[0, 1] == pytest.approx(0.0, abs=5 / np.sqrt(6000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = a.refit(a.observed())  # the same model refitted to its own response
    assert np.allclose(again.fixef, sleep_fit.fe_params, rtol=1e-4)


def test_the_mode_follows_simulate_re_with_glmmdiags_default(sleep_fit):
    default = gd.simulate_residuals(sleep_fit, 50, seed=3)
    cond = gd.simulate_residuals(sleep_fit, 50, seed=3, simulate_re="conditional")
    marg = gd.simulate_residuals(sleep_fit, 50, seed=3, simulate_re="unconditional")
    fit = gd.glmm("Reaction ~ Days + (Days | Subject)", gd.datasets.load("sleepstudy"))
    own_default = gd.simulate_residuals(fit, 50, seed=3).simulate_re
    assert default.simulate_re == own_default
    same = cond if own_default == "conditional" else marg
    assert np.array_equal(np.asarray(default.residuals), np.asarray(same.residuals))
    assert not np.array_equal(np.asarray(cond.residuals), np.asarray(marg.residuals))


def test_verdicts_on_real_data(sleep_fit, grouseticks):
    good = verdict(sleep_fit, simulate_re="unconditional")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ticks = smf.mixedlm("TICKS ~ YEAR + cHEIGHT", grouseticks, groups=grouseticks["BROOD"]).fit()
    bad = verdict(ticks, simulate_re="unconditional")
    bad_c = verdict(ticks, simulate_re="conditional")
    assert passes(good), good
    # a Gaussian LMM for the skewed tick counts (measured: KS p = 4e-12 marginal, 3e-19 conditional)
    assert bad["uniformity"] < 1e-6 and bad_c["uniformity"] < 1e-6, (bad, bad_c)


def test_variance_components_are_simulated(sleepstudy):
    """A variance component (exog_vc) adds its own N(0, vcomp) effects per group."""
    rng = np.random.default_rng(8)
    n_g, per = 40, 12
    g = np.repeat(np.arange(n_g), per)
    sub = np.tile(np.repeat([0, 1, 2], per // 3), n_g)  # three sub-groups within each group
    u = rng.normal(0, 1.0, n_g)[g]
    v = rng.normal(0, 0.7, (n_g, 3))[g, sub]
    y = 1 + u + v + rng.normal(0, 0.5, g.size)
    import pandas as pd

    d = pd.DataFrame({"y": y, "g": g, "sub": sub})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm("y ~ 1", d, groups="g", re_formula="1", vc_formula={"sub": "0 + C(sub)"}).fit()
    a = as_simulable(fit)
    S = np.asarray(a.simulate(6000, np.random.default_rng(1), conditional=False), float)
    s2_u, s2_v, s2 = float(fit.cov_re.iloc[0, 0]), float(fit.vcomp[0]), float(fit.scale)
    # same group, same sub-group: s2_u + s2_v; same group, other sub-group: s2_u; total: + s2
    assert np.var(S[0]) == pytest.approx(s2_u + s2_v + s2, rel=0.08)
    assert np.cov(S[0], S[1])[0, 1] == pytest.approx(s2_u + s2_v, rel=0.1)
    assert np.cov(S[0], S[per - 1])[0, 1] == pytest.approx(s2_u, rel=0.12)


def test_marginal_residuals_do_not_depend_on_n_jobs(sleep_fit):
    a = gd.simulate_residuals(sleep_fit, 60, seed=4, chunk_size=10, simulate_re="unconditional").residuals
    b = gd.simulate_residuals(sleep_fit, 60, seed=4, chunk_size=10, simulate_re="unconditional", n_jobs=2).residuals
    assert np.array_equal(np.asarray(a), np.asarray(b))
