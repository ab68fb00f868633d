"""glmmTMB's start= and map= (issue 17, item 5): fixed and shared parameters.

Reference: tests/reference/mapping/mapping.R (glmmTMB 1.1.5) fitted each case with ``map=``/
``start=`` and stored logLik, its df, AIC, the fixed effects and their SEs, and glmmTMB's
parameter vectors (theta, betad, psi). ``py_start``/``py_map`` are the same arguments in this
package's spelling. Tolerances: logLik 1e-5 absolute (ours >= R's - 1e-6), df exact,
fixef 1e-4 relative to max(1, |beta|), SE 1e-3 relative, theta/betad 1e-3 absolute (glmmTMB's
optimiser stops at a relative gradient of about 1e-8 of its own).
"""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

from glmmdiag.errors import GlmmdiagError
from glmmdiag.fit import glmm
from glmmdiag.fit.mapping import ParameterLayout, _factor_to_us, _us_to_factor

ROOT = pathlib.Path(__file__).parent.parent
REF = json.loads((ROOT / "reference" / "mapping" / "mapping.json").read_text())


def _data(name):
    d = pd.read_csv(ROOT / "data" / f"{name}.csv")
    if name == "sleepstudy":
        d = pd.concat([d, pd.read_csv(ROOT / "reference" / "mapping" / "sleepstudy_extra.csv")], axis=1)
    if name == "cbpp":
        d["period"] = pd.Categorical(d["period"])  # a factor in R
    return d


def _fit(case, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmm(case["formula"], _data(case["data"]), family=case["family"],
                    start=case["py_start"], map=case["py_map"], **kw)


@pytest.mark.parametrize("name", list(REF["cases"]))
def test_matches_glmmtmb(name):
    case = REF["cases"][name]
    fit = _fit(case)
    assert case["logLik"] - 1e-6 <= fit.loglik <= case["logLik"] + 1e-5
    assert fit.n_params == case["df"]
    assert fit.aic == pytest.approx(case["AIC"], abs=2e-5)
    ref_b = np.array(case["fixef"])
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref_b, rtol=0, atol=1e-4 * np.maximum(1, np.abs(ref_b)).max())
    se = fit.se.to_numpy()
    ref_se = np.array(case["se"], dtype=float)
    fixed_beta = [j for j, lab in enumerate((case["py_map"] or {}).get("beta", [])) if lab is None]
    free = np.setdiff1d(np.arange(len(se)), fixed_beta)
    assert len(ref_se) == len(free)  # glmmTMB's vcov leaves a fixed beta out
    np.testing.assert_allclose(se[free], ref_se, rtol=1e-3)
    assert np.all(se[fixed_beta] == 0)  # a fixed beta is known: variance 0
    lay = ParameterLayout.of(fit.design, fit.family)
    from glmmdiag.fit.mapping import state_value

    v = state_value(lay, fit._st, fit._relative)
    o = lay.offsets()
    np.testing.assert_allclose(v[slice(*o["theta"])], case["theta"], atol=1e-3)
    if lay.sizes["betad"]:
        assert v[o["betad"][0]] == pytest.approx(case["betad"], abs=1e-3)
    # conditional modes (glmmTMB's ranef) of the first grouping factor, first 5 levels
    re = fit.ranef[case["ranef_group"]].iloc[:5].to_numpy()
    ref_re = np.array(case["ranef"], dtype=float)
    np.testing.assert_allclose(re, ref_re, rtol=1e-3, atol=1e-3 * np.abs(ref_re).max())


def test_fixed_values_stay_fixed_and_refit_keeps_the_map():
    case = REF["cases"]["fixed_sigma"]
    fit = _fit(case)
    assert fit.sigma == pytest.approx(25.0, abs=1e-12)
    y = fit.simulate(1, seed=2)[:, 0]
    re = fit.refit(y)
    assert re.sigma == pytest.approx(25.0, abs=1e-12)
    assert re.n_params == fit.n_params == 5


def test_unstructured_parameterisation_round_trips():
    """glmmTMB's (log SD, row-wise unit-L) -> Cholesky factor -> back; for q = 2 the correlation
    is t / sqrt(1 + t^2) (closed form)."""
    rng = np.random.default_rng(0)
    for q in (2, 3, 4):
        par = rng.normal(size=q * (q + 1) // 2)
        T = _us_to_factor(par, q)
        np.testing.assert_allclose(_factor_to_us(T), par, atol=1e-12)
        S = T @ T.T
        np.testing.assert_allclose(np.sqrt(np.diag(S)), np.exp(par[:q]), rtol=1e-12)
    T = _us_to_factor(np.array([0.0, 0.0, 0.7]), 2)
    S = T @ T.T
    assert S[0, 1] / np.sqrt(S[0, 0] * S[1, 1]) == pytest.approx(0.7 / np.sqrt(1.49), abs=1e-14)


@pytest.mark.parametrize("kw,match", [
    ({"start": {"sigma": [1.0]}}, "unknown parameter"),
    ({"start": {"theta": [1.0, 2.0]}}, "has 2 values"),
    ({"map": {"theta": [None, 0, 1]}}, "does not give its value"),
    ({"map": {"beta": [0.5, 1]}}, "labels must be integers"),
    ({"start": {"beta": [np.nan, 1.0]}}, "finite"),
    ({"map": {"theta": [0, 0, 1]}, "reml": True}, "reml=False"),
    ({"start": {"psi": [1.0]}}, "no parameter 'psi'"),
])
def test_bad_start_or_map_is_refused_clearly(kw, match):
    with pytest.raises(GlmmdiagError, match=match):
        glmm("Reaction ~ Days + (Days | Subject)", _data("sleepstudy"), **kw)


def test_fixed_is_start_plus_a_none_map():
    """fixed={"betad": [v]} is start={"betad": [v]}, map={"betad": [None]} (glmmTMB's fixed_sigma case)."""
    case = REF["cases"]["fixed_sigma"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmm(case["formula"], _data("sleepstudy"), fixed={"betad": case["py_start"]["betad"]})
    assert case["logLik"] - 1e-6 <= fit.loglik <= case["logLik"] + 1e-5
    assert fit.n_params == case["df"]
    with pytest.raises(GlmmdiagError, match="give it in one of them"):
        glmm(case["formula"], _data("sleepstudy"), fixed={"betad": [1.0]}, map={"betad": [0]})
