"""``predict(newdata)``: levels matched by value across dtypes, unseen fixed-effect levels and
missing columns refused, ``re_form`` selecting terms as lme4's ``re.form``, NA rows predicting NaN.

Every expected value is computed by hand from ``fit.fixef`` and ``fit.ranef`` (pandas look-ups by
the level labels), independently of the prediction code.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmdiag
from glmmdiag import datasets
from glmmdiag.errors import ColumnError, GlmmdiagError


def _quiet_fit(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmmdiag.glmm(*args, **kw)


@pytest.fixture(scope="module")
def sleep():
    ss = datasets.load("sleepstudy")
    ss["Subject"] = ss["Subject"].astype(int)  # an integer grouping column
    return ss, _quiet_fit("Reaction ~ Days + (Days | Subject)", ss)


def _sleep_by_hand(fit, days, subjects, with_re=True):
    """beta0 + beta1 Days + b0[s] + b1[s] Days; unseen subjects (or with_re=False) get b = 0."""
    fe = fit.fixef
    eta = fe["(Intercept)"] + fe["Days"] * np.asarray(days, float)
    if with_re:
        re = fit.ranef["Subject"].reindex([str(s) for s in subjects]).fillna(0.0)
        eta = eta + re["(Intercept)"].to_numpy() + re["Days"].to_numpy() * np.asarray(days, float)
    return eta


@pytest.mark.parametrize("convert", ["int", "float", "str", "categorical", "Int64", "object"])
def test_grouping_column_matched_by_value_across_dtypes(sleep, convert):
    ss, fit = sleep
    new = ss.iloc[::7].reset_index(drop=True)
    subjects = new["Subject"].to_numpy()
    new["Subject"] = {
        "int": lambda s: s,
        "float": lambda s: s.astype(float),
        "str": lambda s: s.astype(str),
        "categorical": lambda s: pd.Categorical(s.astype(str)),
        "Int64": lambda s: s.astype("Int64"),
        "object": lambda s: s.astype(object),
    }[convert](new["Subject"])
    expected = _sleep_by_hand(fit, new["Days"], subjects)
    np.testing.assert_allclose(fit.predict(new), expected, rtol=1e-12)
    assert np.abs(fit.predict(new) - fit.predict(new, re_form="~0")).max() > 1.0  # the REs are in


def test_string_labels_of_a_categorical_fit_match_numbers():
    """Fitted with Subject a Categorical of strings ("308", ...), predicted with ints / floats."""
    ss = datasets.load("sleepstudy")
    fit = _quiet_fit("Reaction ~ Days + (Days | Subject)", ss)
    new = ss.iloc[::5].reset_index(drop=True)
    labels = new["Subject"].astype(str).to_numpy()
    expected = _sleep_by_hand(fit, new["Days"], labels)
    for values in (labels.astype(int), labels.astype(float)):
        np.testing.assert_allclose(fit.predict(new.assign(Subject=values)), expected, rtol=1e-12)


def test_unseen_grouping_level_gets_a_zero_random_effect(sleep):
    _, fit = sleep
    new = pd.DataFrame({"Days": [0.0, 3.0, 9.0], "Subject": [308, 999, 372.0]})
    expected = _sleep_by_hand(fit, new["Days"], [308, 999, 372])
    np.testing.assert_allclose(fit.predict(new), expected, rtol=1e-12)
    np.testing.assert_allclose(fit.predict(new)[1], _sleep_by_hand(fit, [3.0], [0], with_re=False)[0], rtol=1e-12)


def test_missing_values_in_newdata_predict_nan(sleep):
    _, fit = sleep
    new = pd.DataFrame({"Days": pd.array([1, pd.NA, 4, 2], dtype="Int64"),
                        "Subject": pd.array([308, 309, pd.NA, 310], dtype="Int64")})
    pred = fit.predict(new, type="response")
    assert np.isnan(pred[1]) and np.isnan(pred[2])
    np.testing.assert_allclose(pred[[0, 3]], _sleep_by_hand(fit, [1, 2], [308, 310]), rtol=1e-12)
    # a missing grouping value does not matter at the population level
    pop = fit.predict(new, re_form="~0")
    assert np.isnan(pop[1]) and not np.isnan(pop[2])
    np.testing.assert_allclose(pop[2], _sleep_by_hand(fit, [4], [0], with_re=False)[0], rtol=1e-12)


def test_missing_column_is_a_column_error(sleep):
    _, fit = sleep
    with pytest.raises(ColumnError, match="Days"):
        fit.predict(pd.DataFrame({"Subject": [308]}))
    with pytest.raises(KeyError, match="Subject"):
        fit.predict(pd.DataFrame({"Days": [1.0]}))
    fit.predict(pd.DataFrame({"Days": [1.0]}), re_form="~0")  # no grouping column needed


# ------------------------------------------------------------------ fixed-effect factors
@pytest.fixture(scope="module")
def contraception():
    co = datasets.load("Contraception")
    return co, _quiet_fit("use ~ age + urban + livch + (1 | district)", co, family="binomial")


def _contra_by_hand(fit, new, with_re=True):
    fe = fit.fixef
    eta = fe["(Intercept)"] + fe["age"] * new["age"].to_numpy(float)
    eta = eta + np.where(new["urban"].astype(str) == "Y", fe["urbanY"], 0.0)
    eta = eta + new["livch"].astype(str).map({"0": 0.0, "1": fe["livch1"], "2": fe["livch2"],
                                               "3+": fe["livch3+"]}).to_numpy(float)
    if with_re:
        eta = eta + fit.ranef["district"]["(Intercept)"].reindex(new["district"].astype(str)).fillna(0).to_numpy()
    return eta


def test_fixed_factors_in_other_dtypes(contraception):
    co, fit = contraception
    new = co.iloc[::40].reset_index(drop=True)
    expected = _contra_by_hand(fit, new)
    variants = [
        new.assign(urban=new["urban"].astype(str), livch=new["livch"].astype(object)),
        new.assign(urban=new["urban"].astype(str).astype("string"), district=new["district"].astype(int)),
        new.assign(livch=pd.Categorical(new["livch"].astype(str), categories=["3+", "2", "1", "0"])),
    ]
    for v in variants:
        np.testing.assert_allclose(fit.predict(v), expected, rtol=1e-12)


@pytest.mark.parametrize("column, value", [("livch", "4+"), ("urban", "y"), ("urban", "yes")])
def test_unseen_fixed_effect_level_is_an_error(contraception, column, value):
    co, fit = contraception
    new = co.iloc[:5].reset_index(drop=True)
    new[column] = new[column].astype(str)
    new.loc[2, column] = value
    with pytest.raises(GlmmdiagError) as info:
        fit.predict(new)
    msg = str(info.value)
    assert repr(column) in msg and repr(value) in msg
    known = {"livch": ["0", "1", "2", "3+"], "urban": ["N", "Y"]}[column]
    assert str(known) in msg


def test_integer_newdata_for_a_string_factor():
    """cbpp's period is a factor with levels "1".."4": ints 1..4 are those levels (R labels)."""
    cb = datasets.load("cbpp")
    fit = _quiet_fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb, family="binomial")
    new = pd.DataFrame({"period": [1, 2, 3, 4, 2], "herd": [1, 1, 2, 15, 99]})
    fe, re = fit.fixef, fit.ranef["herd"]["(Intercept)"]
    expected = (fe["(Intercept)"] + np.array([0, fe["period2"], fe["period3"], fe["period4"], fe["period2"]])
                + re.reindex(["1", "1", "2", "15", "99"]).fillna(0).to_numpy())
    np.testing.assert_allclose(fit.predict(new), expected, rtol=1e-12)
    with pytest.raises(GlmmdiagError, match="period"):
        fit.predict(new.assign(period=[1, 2, 3, 5, 2]))


# ------------------------------------------------------------------ re_form
@pytest.fixture(scope="module")
def salamanders():
    sal = datasets.load("Salamanders")
    fit = _quiet_fit("count ~ mined + cover + (1 | site) + (0 + cover | spp)", sal, family="poisson")
    return sal, fit


def _sal_by_hand(fit, new, site=True, spp=True):
    fe = fit.fixef
    eta = fe["(Intercept)"] + np.where(new["mined"].astype(str) == "no", fe["minedno"], 0.0) \
        + fe["cover"] * new["cover"].to_numpy(float)
    if site:
        eta = eta + fit.ranef["site"]["(Intercept)"].reindex(new["site"].astype(str)).fillna(0).to_numpy()
    if spp:
        eta = eta + new["cover"].to_numpy(float) * \
            fit.ranef["spp"]["cover"].reindex(new["spp"].astype(str)).fillna(0).to_numpy()
    return eta


@pytest.mark.parametrize("re_form, site, spp", [
    (None, True, True),
    ("~0", False, False), ("~ 0", False, False), ("NA", False, False),
    ("~(1|site)", True, False), ("~ (1 | site)", True, False),
    ("~(0 + cover | spp)", False, True), ("~ (0+cover|spp)", False, True),
    ("~ (1 | site) + (0 + cover | spp)", True, True), ("~(cover - 1 | spp) + (1|site)", True, True),
])
def test_re_form_selects_terms(salamanders, re_form, site, spp):
    sal, fit = salamanders
    new = sal.iloc[::11].reset_index(drop=True)
    expected = _sal_by_hand(fit, new, site, spp)
    np.testing.assert_allclose(fit.predict(new, re_form=re_form), expected, rtol=1e-12)
    # and on the fitted rows
    np.testing.assert_allclose(fit.predict(re_form=re_form), _sal_by_hand(fit, sal, site, spp), rtol=1e-12)


@pytest.mark.parametrize("re_form", ["~(1|spp)", "~(1|sites)", "~ cover + (1|site)", "all", "~", "~1", 1, True])
def test_re_form_outside_the_model_is_an_error(salamanders, re_form):
    sal, fit = salamanders
    with pytest.raises(GlmmdiagError) as info:
        fit.predict(sal.iloc[:3], re_form=re_form)
    assert "(1 | site)" in str(info.value) and "(0 + cover | spp)" in str(info.value)


def test_re_form_subset_with_nested_groups_and_dtype_change():
    """(1 | district/urban): district:urban is matched column by column (district given as int)."""
    co = datasets.load("Contraception")
    fit = _quiet_fit("use ~ age + (1 | district/urban)", co, family="binomial")
    new = co.iloc[::37].reset_index(drop=True)
    fe = fit.fixef
    base = fe["(Intercept)"] + fe["age"] * new["age"].to_numpy(float)
    b_d = fit.ranef["district"]["(Intercept)"].reindex(new["district"].astype(str)).to_numpy()
    keys = new["district"].astype(str) + ":" + new["urban"].astype(str)
    b_du = fit.ranef["district:urban"]["(Intercept)"].reindex(keys).fillna(0).to_numpy()
    as_int = new.assign(district=new["district"].astype(int), urban=new["urban"].astype(object))
    np.testing.assert_allclose(fit.predict(as_int), base + b_d + b_du, rtol=1e-12)
    np.testing.assert_allclose(fit.predict(as_int, re_form="~(1|district:urban)"), base + b_du, rtol=1e-12)
    np.testing.assert_allclose(fit.predict(as_int, re_form="~(1|district)"), base + b_d, rtol=1e-12)


def test_offset_argument_is_replayed_on_newdata_or_refused():
    """offset= given as a column name is part of the prediction on new data (as lme4 evaluates
    its offset argument in newdata); given as values it cannot be, and predict says so."""
    rng = np.random.default_rng(3)
    n = 120
    d = pd.DataFrame({"x": rng.normal(size=n), "g": rng.integers(0, 6, n).astype(str),
                      "t": rng.uniform(1, 5, n)})
    d["lt"] = np.log(d["t"])
    d["y"] = rng.poisson(np.exp(0.3 + 0.5 * d["x"] + d["lt"]))
    fit = glmmdiag.glmm("y ~ x + (1 | g)", d, family="poisson", offset="lt")
    new = d.iloc[:5].copy()
    new["lt"] = np.log(10.0)
    b = fit.fixef
    expected = b["(Intercept)"] + b["x"] * new["x"].to_numpy() + np.log(10.0)
    np.testing.assert_allclose(fit.predict(new, re_form="~0"), expected, rtol=1e-12)
    fit_values = glmmdiag.glmm("y ~ x + (1 | g)", d, family="poisson", offset=d["lt"].to_numpy())
    with pytest.raises(GlmmdiagError, match="offset= given as values"):
        fit_values.predict(new, re_form="~0")
    np.testing.assert_allclose(fit_values.predict(), fit.predict(), rtol=1e-10)  # fitted rows keep it


def test_simulate_conditions_on_the_terms_re_form_names():
    """lme4's simulate(re.form = ~(1 | plate)) on crossed plate x sample: the plate effects are
    kept, the sample effects drawn anew, so across draws a row's mean is X beta + b_plate and its
    variance sigma^2 + sd_sample^2 (checked within Monte-Carlo error); re_form='NA' equals
    conditional=False and re_form=None keeps the 'conditional' flag's meaning."""
    d = glmmdiag.datasets.load("Penicillin")
    fit = glmmdiag.glmm("diameter ~ 1 + (1 | plate) + (1 | sample)", d)
    n_sim = 4000
    sims = fit.simulate(n_sim, seed=5, re_form="~(1 | plate)")
    vc = fit.varcorr.set_index("grp")
    mean = fit.predict(re_form="~(1 | plate)")
    var = fit.sigma**2 + vc.loc["sample", "vcov"]
    z = (sims.mean(axis=1) - mean) / np.sqrt(var / n_sim)
    assert np.abs(z).max() < 4.5  # each row's z is N(0, 1) (rows of one sample are correlated)
    ratio = sims.var(axis=1, ddof=1) / var
    assert np.abs(ratio - 1).max() < 4.5 * np.sqrt(2 / n_sim)
    np.testing.assert_array_equal(fit.simulate(3, seed=2, re_form="NA"), fit.simulate(3, seed=2))
    np.testing.assert_array_equal(fit.simulate(3, seed=2, conditional=True),
                                  fit.simulate(3, seed=2, re_form="~(1 | plate) + (1 | sample)"))


def test_simulate_takes_n_sim_not_nsim():
    d = glmmdiag.datasets.load("sleepstudy")
    fit = glmmdiag.glmm("Reaction ~ Days + (1 | Subject)", d)
    a = fit.simulate(n_sim=3, seed=4)
    with pytest.raises(TypeError, match="nsim"):  # one name for the number of simulations everywhere
        fit.simulate(nsim=3, seed=4)
    np.testing.assert_array_equal(a, fit.simulate(3, seed=4))
    assert a.shape == (180, 3)
    with pytest.raises(GlmmdiagError, match="n_sim"):
        fit.simulate(n_sim=0)
