"""Separation, near-collinearity and missing or zero standard errors (issue "hardening", item 2).

Nothing silently wrong: separated fits warn (SeparationWarning, R's glm message), nearly
collinear columns are dropped or flagged (RankDeficiencyWarning), and a NaN or zero standard
error never turns into p = 0 in the coefficient table, wald_anova, confint or pairwise."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmdiag
from glmmdiag.errors import RankDeficiencyWarning, SeparationWarning


def _base(seed=1, n_groups=12, per=10):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    return pd.DataFrame({"g": [f"g{k:02d}" for k in g], "x": x}), rng


def _record(formula, d, **kw):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = glmmdiag.glmm(formula, d, **kw)
    return fit, [w for w in rec if issubclass(w.category, glmmdiag.errors.GlmmdiagWarning)]


def _complete(seed=1):
    d, _ = _base(seed)
    d["y"] = (d["x"] > 0).astype(float)
    return d


def _quasi(seed=1):
    d, rng = _base(seed)
    d["x"] = np.round(d["x"])  # ties at x = 0 ...
    d["y"] = np.where(d["x"] > 0, 1.0, np.where(d["x"] < 0, 0.0, rng.integers(0, 2, len(d))))  # ... mixed there
    return d


@pytest.mark.parametrize("make", [_complete, _quasi])
@pytest.mark.parametrize("re", ["", " + (1 | g)"])
def test_binomial_separation_warns(make, re):
    fit, rec = _record("y ~ x" + re, make(), family="binomial")
    sep = [w for w in rec if issubclass(w.category, SeparationWarning)]
    assert len(sep) == 1
    msg = str(sep[0].message)
    assert "fitted probabilities numerically 0 or 1 occurred" in msg and "x" in msg
    assert any("separation" in w for w in fit.warnings)


def test_separation_warning_only_for_separated_data():
    d, rng = _base(2)
    d["y"] = (rng.random(len(d)) < 1 / (1 + np.exp(-3 * d["x"]))).astype(float)  # overlapping
    d["y_sep"] = (d["x"] > 0.3).astype(float)
    for re in ("", " + (1 | g)"):
        _, rec = _record("y ~ x" + re, d, family="binomial")
        assert not [w for w in rec if issubclass(w.category, SeparationWarning)]
        _, rec = _record("y_sep ~ x" + re, d, family="binomial")
        assert [w for w in rec if issubclass(w.category, SeparationWarning)]


@pytest.mark.parametrize("re", ["", " + (1 | g)"])
def test_poisson_level_with_only_zeros(re):
    d, rng = _base(3)
    d["f"] = np.tile(["a", "b", "c"], len(d) // 3)
    d["c"] = np.where(d["f"] == "c", 0, rng.poisson(3.0, len(d)))
    fit, rec = _record("c ~ f" + re, d, family="poisson")
    sep = [w for w in rec if issubclass(w.category, SeparationWarning)]
    assert len(sep) == 1 and "fc" in str(sep[0].message) and "all 0" in str(sep[0].message)
    tab = glmmdiag.wald_anova(fit)
    # the rank of the term's covariance, scale-free: the diverging level still counts
    assert tab.loc["f", "Df"] == 2


def _near_duplicate(seed=4, eps=1e-9):
    d, rng = _base(seed)
    d["x2"] = d["x"] + eps * rng.normal(size=len(d))
    d["b"] = rng.integers(0, 2, len(d)).astype(float)
    d["yn"] = 0.5 * d["x"] + rng.normal(size=len(d))
    return d


@pytest.mark.parametrize("formula,family", [
    ("b ~ x + x2", "binomial"), ("b ~ x + x2 + (1 | g)", "binomial"),
    ("yn ~ x + x2", "gaussian"), ("yn ~ x + x2 + (1 | g)", "gaussian"),
])
def test_near_duplicate_column_is_dropped(formula, family):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", glmmdiag.errors.SingularFitWarning)
        with pytest.warns(RankDeficiencyWarning, match="rank deficient so dropping 1 column.*x2"):
            fit = glmmdiag.glmm(formula, _near_duplicate(), family=family)
    assert list(fit.fixef.index) == ["(Intercept)", "x"]  # the later column goes, as in R
    tab = fit.coef_table()
    assert np.all(np.isfinite(tab.to_numpy())) and np.all(tab["Std. Error"] < 1.0)
    an = glmmdiag.wald_anova(fit)
    assert an.loc["x2", "Df"] == 0 and an.loc["x", "Df"] == 1


@pytest.mark.parametrize("formula,family", [("yn ~ x + x2", "gaussian"), ("b ~ x + x2 + (1 | g)", "binomial")])
def test_nearly_collinear_columns_above_tolerance_warn(formula, family):
    fit, rec = _record(formula, _near_duplicate(eps=1e-6), family=family)
    rank = [w for w in rec if issubclass(w.category, RankDeficiencyWarning)]
    assert len(rank) == 1 and "nearly unidentifiable" in str(rank[0].message)
    assert "x, x2" in str(rank[0].message)


def test_zero_standard_errors_give_no_p_values():
    d = pd.DataFrame({"y": [1.0, 2.0, 4.0, 1.0, 2.0, 4.0], "f": ["a", "b", "c"] * 2})
    with pytest.warns(glmmdiag.errors.DegenerateFitWarning):
        fit = glmmdiag.glmm("y ~ f", d)
    tab = fit.coef_table()
    assert np.all(tab["Std. Error"] == 0) and tab["Pr(>|z|)"].isna().all() and tab["z value"].isna().all()
    with pytest.warns(UserWarning, match="no Wald test"):
        an = glmmdiag.wald_anova(fit)
    assert np.isnan(an.loc["f", "Chisq"]) and np.isnan(an.loc["f", "Pr(>Chisq)"])
    ci = glmmdiag.confint(fit, parm="fixed")
    assert ci.iloc[:, :2].isna().all().all()
    mm = glmmdiag.marginal_means(fit, "f")
    assert mm["SE"].isna().all()
    pw = glmmdiag.pairwise(mm)
    assert pw.contrasts["p.value"].isna().all()


def test_nan_standard_errors_give_nan_z_and_p():
    fit = glmmdiag.glmm("yn ~ x", _near_duplicate())
    V = fit._st.vcov.copy()
    V[1, 1] = -1.0  # a Hessian that is not positive definite
    fit._st.vcov = V
    tab = fit.coef_table()
    assert np.isnan(tab.loc["x", "Std. Error"]) and np.isnan(tab.loc["x", "Pr(>|z|)"])
    assert np.isfinite(tab.loc["(Intercept)", "Pr(>|z|)"])
    assert "NA" in fit.summary()
    with pytest.warns(UserWarning, match="no Wald test for x"):
        assert np.isnan(glmmdiag.wald_anova(fit).loc["x", "Pr(>Chisq)"])
