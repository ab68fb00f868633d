"""Every pandas dtype a user meets gives the fit that the classic dtypes give.

Nullable integer/float/boolean/string columns (``df.convert_dtypes()``), categoricals, object and
datetime grouping keys; ``pd.NA`` is a missing value like NaN/None/NaT: its rows are dropped,
counted in ``fit.n_dropped`` and reported with a DroppedRowsWarning. Each fit is compared with an
independent one: the same data in classic dtypes, with the incomplete rows removed by hand.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmdiag
from glmmdiag import datasets
from glmmdiag.errors import DroppedRowsWarning
from glmmdiag.fit import columns
from glmmdiag.fit.fixed import fixed_model_matrix, formulaic_matrix

MODELS = {  # name: (formula, family, data)
    "sleepstudy": ("Reaction ~ Days + (Days | Subject)", "gaussian"),
    "cbpp": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    "Contraception": ("use ~ age + urban + livch + (1 | district)", "binomial"),
    "Salamanders": ("count ~ mined + cover + (1 | site)", "poisson"),
}
NA_ROWS = [0, 3, 17, 40]


def _fit(formula, data, family, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DroppedRowsWarning)
        return glmmdiag.glmm(formula, data, family=family, **kw)


def _assert_same_fit(a, b):
    assert a.nobs == b.nobs
    assert list(a.fixef.index) == list(b.fixef.index)
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.loglik, b.loglik, rtol=1e-12)
    np.testing.assert_allclose(a.se.to_numpy(), b.se.to_numpy(), rtol=1e-7)
    assert a.ngroups == b.ngroups
    for g in a.ranef:
        assert list(a.ranef[g].index) == list(b.ranef[g].index)
        np.testing.assert_allclose(a.ranef[g].to_numpy(), b.ranef[g].to_numpy(), rtol=1e-8, atol=1e-10)


def _as_nullable_strings(df):
    """Categorical columns as nullable strings; the classic twin has them as object (same level
    order as long as the categories are sorted, which holds for the columns used here)."""
    out, classic = df.copy(), df.copy()
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            out[c] = df[c].astype(str).astype("string")
            classic[c] = df[c].astype(str).astype(object)
    return out.convert_dtypes(), classic


@pytest.mark.parametrize("name", list(MODELS))
def test_convert_dtypes_gives_the_same_fit(name):
    formula, family = MODELS[name]
    df = datasets.load(name)
    _assert_same_fit(_fit(formula, df.convert_dtypes(), family), _fit(formula, df, family))


@pytest.mark.parametrize("name", ["sleepstudy", "cbpp", "Contraception"])
def test_nullable_string_factors_give_the_object_fit(name):
    formula, family = MODELS[name]
    nullable, classic = _as_nullable_strings(datasets.load(name))
    group = {"cbpp": "herd", "sleepstudy": "Subject", "Contraception": "district"}[name]
    assert isinstance(nullable[group].dtype, pd.StringDtype) and nullable[group].dtype.na_value is pd.NA
    _assert_same_fit(_fit(formula, nullable, family), _fit(formula, classic, family))


@pytest.mark.parametrize("name", list(MODELS))
def test_na_in_every_used_column_is_dropped_like_removing_the_rows(name):
    formula, family = MODELS[name]
    df = datasets.load(name)
    used = {"sleepstudy": ["Reaction", "Days", "Subject"], "cbpp": ["incidence", "size", "period", "herd"],
            "Contraception": ["use", "age", "urban", "livch", "district"],
            "Salamanders": ["count", "mined", "cover", "site"]}[name]
    nullable, classic = _as_nullable_strings(df)
    for row, col in zip(NA_ROWS, used):
        nullable.loc[row, col] = pd.NA
    by_hand = classic.drop(index=NA_ROWS[: len(used)]).reset_index(drop=True)
    k = min(len(used), len(NA_ROWS))
    with pytest.warns(DroppedRowsWarning, match=f"dropped {k} of {len(df)} rows"):
        fit = glmmdiag.glmm(formula, nullable, family=family)
    assert fit.n_dropped == k
    _assert_same_fit(fit, _fit(formula, by_hand, family))


def test_int64_grouping_column_with_na_is_not_an_extra_level():
    ss = datasets.load("sleepstudy")
    ss["Subject"] = ss["Subject"].astype(int)
    nullable = ss.copy()
    nullable["Subject"] = nullable["Subject"].astype("Int64")
    nullable.loc[[3, 50], "Subject"] = pd.NA
    with pytest.warns(DroppedRowsWarning, match="Subject"):
        fit = glmmdiag.glmm("Reaction ~ Days + (Days | Subject)", nullable)
    assert fit.n_dropped == 2
    assert fit.ngroups == {"Subject": 18}
    assert list(fit.ranef["Subject"].index[:3]) == ["308", "309", "310"]  # labels of ints, not "308.0"
    _assert_same_fit(fit, _fit("Reaction ~ Days + (Days | Subject)", ss.drop(index=[3, 50]), "gaussian"))


def test_int64_count_response_with_na():
    sal = datasets.load("Salamanders")
    nullable = sal.convert_dtypes()
    nullable.loc[[0, 9], "count"] = pd.NA
    with pytest.warns(DroppedRowsWarning, match="count"):
        fit = glmmdiag.glmm("count ~ mined + (1 | site)", nullable, family="poisson")
    assert fit.n_dropped == 2
    _assert_same_fit(fit, _fit("count ~ mined + (1 | site)", sal.drop(index=[0, 9]), "poisson"))


@pytest.mark.parametrize("nullable", [False, True])
def test_bool_and_boolean_binomial_response(nullable):
    co = datasets.load("Contraception")
    ref = _fit("use ~ age + urban + (1 | district)", co, "binomial")  # factor N/Y: Y = success
    data = co.assign(use=co["use"].eq("Y"))
    if nullable:
        data["use"] = data["use"].astype("boolean")
    _assert_same_fit(_fit("use ~ age + urban + (1 | district)", data, "binomial"), ref)


def test_boolean_response_with_na_equals_dropping_the_rows():
    co = datasets.load("Contraception")
    data = co.assign(use=co["use"].eq("Y").astype("boolean"))
    data.loc[[0, 5], "use"] = pd.NA
    with pytest.warns(DroppedRowsWarning):
        fit = glmmdiag.glmm("use ~ age + urban + (1 | district)", data, family="binomial")
    assert fit.n_dropped == 2
    _assert_same_fit(fit, _fit("use ~ age + urban + (1 | district)", co.drop(index=[0, 5]), "binomial"))


def test_boolean_predictor_with_na_equals_the_0_1_column():
    co = datasets.load("Contraception")
    data = co.assign(urb=co["urban"].eq("Y").astype("boolean"))
    data.loc[[2, 11], "urb"] = pd.NA
    with pytest.warns(DroppedRowsWarning, match="urb"):
        fit = glmmdiag.glmm("use ~ age + urb + (1 | district)", data, family="binomial")
    classic = co.assign(urb=co["urban"].eq("Y").astype(float)).drop(index=[2, 11])
    ref = _fit("use ~ age + urb + (1 | district)", classic, "binomial")
    assert fit.n_dropped == 2
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(fit.loglik, ref.loglik, rtol=1e-12)


def test_string_fixed_factor_is_a_factor_not_a_number():
    """cbpp's period as nullable strings "1".."4": four levels, not one numeric column."""
    cb = datasets.load("cbpp")
    data = cb.assign(period=cb["period"].astype(str).astype("string"))
    fit = _fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, "binomial")
    assert list(fit.fixef.index) == ["(Intercept)", "period2", "period3", "period4"]
    _assert_same_fit(fit, _fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb, "binomial"))


def test_float64_nan_and_na_are_both_missing():
    ss = datasets.load("sleepstudy")
    data = ss.convert_dtypes()
    data["Reaction"] = data["Reaction"].astype("Float64")
    data.loc[4, "Reaction"] = pd.NA
    values = data["Reaction"].to_numpy(dtype=float, na_value=np.nan)
    values[8] = np.nan
    data["Reaction"] = pd.array(values, dtype="Float64")  # NaN stored next to NA
    with pytest.warns(DroppedRowsWarning):
        fit = glmmdiag.glmm("Reaction ~ Days + (1 | Subject)", data)
    assert fit.n_dropped == 2
    _assert_same_fit(fit, _fit("Reaction ~ Days + (1 | Subject)", ss.drop(index=[4, 8]), "gaussian"))


def test_object_grouping_column_with_none_and_pd_na():
    ss = datasets.load("sleepstudy")
    data = ss.assign(Subject=ss["Subject"].astype(str).astype(object))
    data.loc[1, "Subject"] = None
    data.loc[60, "Subject"] = pd.NA
    with pytest.warns(DroppedRowsWarning):
        fit = glmmdiag.glmm("Reaction ~ Days + (1 | Subject)", data)
    assert fit.n_dropped == 2 and fit.ngroups == {"Subject": 18}
    _assert_same_fit(fit, _fit("Reaction ~ Days + (1 | Subject)", ss.drop(index=[1, 60]), "gaussian"))


def test_datetime_grouping_key_with_nat():
    sal = datasets.load("Salamanders")
    day = pd.Timestamp("2020-01-01") + pd.to_timedelta(sal["site"].cat.codes.astype(int), unit="D")
    data = sal.assign(visit=day)
    data.loc[3, "visit"] = pd.NaT
    with pytest.warns(DroppedRowsWarning, match="visit"):
        fit = glmmdiag.glmm("count ~ mined + (1 | visit)", data, family="poisson")
    ref = _fit("count ~ mined + (1 | site)", sal.drop(index=[3]), "poisson")
    assert fit.n_dropped == 1
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(fit.loglik, ref.loglik, rtol=1e-12)


def test_pyarrow_strings():
    pytest.importorskip("pyarrow")
    ss = datasets.load("sleepstudy")
    data = ss.assign(Subject=ss["Subject"].astype(str).astype("string[pyarrow]"))
    data.loc[[3, 50], "Subject"] = pd.NA
    with pytest.warns(DroppedRowsWarning):
        fit = glmmdiag.glmm("Reaction ~ Days + (Days | Subject)", data)
    _assert_same_fit(fit, _fit("Reaction ~ Days + (Days | Subject)", ss.drop(index=[3, 50]), "gaussian"))


# ------------------------------------------------------------------ the column helpers
def test_missing_values_of_every_dtype():
    cases = [
        pd.Series([1.0, np.nan, 3.0]),
        pd.Series([1, None, 3], dtype="Int64"),
        pd.Series([1.0, None, 3.0], dtype="Float64"),
        pd.Series([True, None, False], dtype="boolean"),
        pd.Series(["a", None, "b"], dtype="string"),
        pd.Series(["a", None, "b"], dtype=object),
        pd.Series(["a", pd.NA, "b"], dtype=object),
        pd.Series(pd.Categorical(["a", None, "b"])),
        pd.Series(pd.to_datetime(["2020-01-01", None, "2020-01-03"])),
    ]
    for s in cases:
        assert columns.missing_values(s).tolist() == [False, True, False], s.dtype
    assert not columns.missing_values(pd.Series([1, 2, 3])).any()


def test_classic_column_keeps_integer_labels():
    assert columns.classic_column(pd.Series([3, 1], dtype="Int64")).dtype == np.int64
    assert columns.classic_column(pd.Series([True, False], dtype="boolean")).dtype == bool
    strings = columns.classic_column(pd.Series(["a", "b"], dtype="string"))
    assert not columns.is_nullable(strings.dtype) and strings.tolist() == ["a", "b"]  # object, or pandas 3's str
    with_na = columns.classic_column(pd.Series([3, None], dtype="Int64"))
    assert with_na.dtype == np.float64 and np.isnan(with_na.iloc[1])


def test_match_levels_across_dtypes():
    levels = ["1", "2", "10"]
    assert columns.match_levels(pd.Series([1, 10, 3]), levels).tolist() == [0, 2, -1]
    assert columns.match_levels(pd.Series([1.0, 2.0]), levels).tolist() == [0, 1]
    assert columns.match_levels(pd.Series(["10", "1.0", None]), levels).tolist() == [2, 0, -1]
    assert columns.match_levels(pd.Series([2, None], dtype="Int64"), [1, 2]).tolist() == [1, -1]
    assert columns.match_levels(pd.Series(["a", "B"]), ["a", "b"]).tolist() == [0, -1]


def test_fast_fixed_matrix_with_nullable_string_columns():
    rng = np.random.default_rng(3)
    base = pd.DataFrame({"s": rng.choice(["lo", "mid", "hi"], 40).astype(object), "x": rng.normal(size=40)})
    data = base.assign(s=base["s"].astype("string"), x=base["x"].astype("Float64"))
    X, names, _ = fixed_model_matrix("s*x", data)
    X0, names0, _ = formulaic_matrix("s*x", base)
    assert names == names0
    np.testing.assert_array_equal(X, X0)
    data.loc[5, "s"] = pd.NA  # a missing level is NaN, never the reference level's zeros
    X, _, _ = fixed_model_matrix("s + x", data)
    assert np.isnan(X[5, 1:3]).all() and np.isfinite(np.delete(X, 5, axis=0)).all()


def test_marginal_means_of_a_rank_deficient_model_with_nullable_data_equal_the_classic_ones():
    """The estimability check rebuilds the full X from data=: nullable dtypes must give the same
    means (and the same non-estimable cell) as classic ones."""
    rng = np.random.default_rng(1)
    n = 200
    d = pd.DataFrame({"a": rng.choice(["p", "q"], n), "b": rng.choice(["u", "v", "w"], n),
                      "g": rng.integers(0, 8, n)})
    d = d[~((d.a == "q") & (d.b == "w"))].reset_index(drop=True)  # an empty cell: a:b aliased
    d["y"] = rng.poisson(3, len(d))
    dd = d.convert_dtypes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m1 = glmmdiag.marginal_means(glmmdiag.glmm("y ~ a*b + (1|g)", d, family="poisson"), ["a", "b"], data=d)
        m2 = glmmdiag.marginal_means(glmmdiag.glmm("y ~ a*b + (1|g)", dd, family="poisson"), ["a", "b"], data=dd)
    assert int(m1["emmean"].isna().sum()) == 1
    np.testing.assert_allclose(m2["emmean"].to_numpy(float), m1["emmean"].to_numpy(float), rtol=1e-10)
