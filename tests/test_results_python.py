"""Results behave like Python data (issue 16): they pickle, deep-copy and joblib.dump with their
values intact, have to_frame()/to_dict(), short one-line reprs, and the fit has statsmodels'
aliases (params, bse, conf_int) and a summary that renders in Jupyter."""
from __future__ import annotations

import copy
import io
import json
import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmmdiag
from glmmdiag.datasets import load
from glmmdiag.results import ReadOnlyDict


@pytest.fixture(scope="module")
def fitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmmdiag.glmm("count ~ spp + mined + (1 | site)", load("Salamanders"), family="poisson")
        res = glmmdiag.simulate_residuals(fit, n_sim=40, seed=1)
    return fit, res, glmmdiag.residual_tests(res)


def _round_trips(obj):
    buf = io.BytesIO()
    joblib.dump(obj, buf)
    buf.seek(0)
    return [pickle.loads(pickle.dumps(obj)), copy.deepcopy(obj), joblib.load(buf)]


def test_residuals_and_tests_survive_pickle_deepcopy_and_joblib(fitted):
    fit, res, tests = fitted
    for back in _round_trips(res):
        np.testing.assert_array_equal(back.residuals, res.residuals)
        assert dict(back.sim_stats).keys() == dict(res.sim_stats).keys()
        np.testing.assert_array_equal(back.sim_stats["zeros"], res.sim_stats["zeros"])
    for back in _round_trips(tests):
        assert back.to_dict() == tests.to_dict()
    z = glmmdiag.zero_inflation_test(res)
    for back in _round_trips(z):
        assert back.p_value == z.p_value and back.to_dict() == z.to_dict()
        np.testing.assert_array_equal(back.plot_data["simulated"], z.plot_data["simulated"])
    for back in _round_trips(fit):
        assert back.loglik == fit.loglik


def test_read_only_mapping_stays_read_only():
    m = ReadOnlyDict({"a": 1.0})
    with pytest.raises(TypeError):
        m["a"] = 2.0  # type: ignore[index]
    with pytest.raises(AttributeError):
        m._data = {}  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(m)) == {"a": 1.0} and m.to_dict() == {"a": 1.0}


def test_to_frame_and_to_dict(fitted):
    _, res, tests = fitted
    frame = tests.to_frame()
    assert frame.index.tolist() == ["uniformity", "dispersion", "outliers"]
    for name, t in tests.items():
        assert frame.loc[name, "p_value"] == t.p_value and frame.loc[name, "statistic"] == t.statistic
    json.dumps(tests.to_dict())  # plain Python values only
    rf = res.to_frame()
    assert list(rf.columns) == ["residual", "observed", "fitted", "trials"] and len(rf) == res.nobs
    np.testing.assert_array_equal(rf["residual"], res.residuals)
    assert res.to_dict()["n_sim"] == 40 and len(res.to_dict()["residuals"]) == res.nobs
    u = tests.uniformity.to_frame()
    assert u.shape[0] == 1 and u["p_value"].iloc[0] == tests.uniformity.p_value


def test_short_reprs_and_full_text(fitted):
    fit, res, tests = fitted
    for obj in (fit, res, tests, tests.uniformity):
        r = repr(obj)
        assert "\n" not in r and len(r) < 400, r
    assert "Kolmogorov-Smirnov" in str(tests.uniformity) and "Verdict" in str(tests)
    text = fit.summary()
    assert isinstance(text, str) and repr(text) == str(text) and str(fit) == str(text)
    assert text._repr_html_().startswith("<pre>") and "Conditional model:" in text._repr_html_()


def test_statsmodels_aliases(fitted):
    fit, _, _ = fitted
    pd.testing.assert_series_equal(fit.params, fit.fixef)
    pd.testing.assert_series_equal(fit.bse, fit.se)
    ci = fit.conf_int(alpha=0.1)
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(ci[0], fit.fixef - z * fit.se, rtol=1e-12)
    np.testing.assert_allclose(ci[1], fit.fixef + z * fit.se, rtol=1e-12)
    wald = glmmdiag.confint(fit, level=0.9)
    np.testing.assert_allclose(ci[0], wald.loc[fit.fixef.index].iloc[:, 0], rtol=1e-8)
    np.testing.assert_allclose(ci[1], wald.loc[fit.fixef.index].iloc[:, 1], rtol=1e-8)


def test_packaging_basics():
    """glmmdiag.datasets is reachable after `import glmmdiag`; the package is typed (py.typed) and
    declares its licence files."""
    import importlib.metadata
    from importlib import resources

    assert glmmdiag.datasets.load("sleepstudy").shape == (180, 3)
    assert resources.files("glmmdiag").joinpath("py.typed").is_file()
    meta = importlib.metadata.metadata("glmmdiag")
    assert {"LICENSE", "DATA_NOTICE.md"} <= set(meta.get_all("License-File") or [])
