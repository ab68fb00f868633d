"""lme4 formula syntax -> fixed part, random-effects terms, offsets; and how the design encodes it."""
import numpy as np
import pandas as pd
import pytest

from glmmdiag.fit.design import build_design, r_column_name
from glmmdiag.fit.families import get_family
from glmmdiag.fit.formula import ReTermSpec, formula_variables, parse_formula


@pytest.mark.parametrize(
    "formula, fixed, terms",
    [
        ("y ~ x * f + (1 | g)", "x * f", [("1", ("g",))]),
        ("y ~ (x | g)", "1", [("x", ("g",))]),
        ("y ~ 1 + (x || g)", "1", [("1", ("g",)), ("0 + x", ("g",))]),
        ("y ~ x + (1 + x + z || g)", "x", [("1", ("g",)), ("0 + x", ("g",)), ("0 + z", ("g",))]),
        ("y ~ x + (x - 1 || g)", "x", [("0 + x", ("g",))]),
        ("y ~ (1 | a/b)", "1", [("1", ("a",)), ("1", ("a", "b"))]),
        ("y ~ (1 | a/b/c)", "1", [("1", ("a",)), ("1", ("a", "b")), ("1", ("a", "b", "c"))]),
        ("y ~ (1 | a:b)", "1", [("1", ("a", "b"))]),
        ("y ~ x - 1 + (1 | g) + (1 | h)", "x - 1", [("1", ("g",)), ("1", ("h",))]),
        ("y ~ 0 + x + (0 + x | g)", "0 + x", [("0 + x", ("g",))]),
    ],
)
def test_bar_terms_expand_as_lme4(formula, fixed, terms):
    pf = parse_formula(formula)
    assert pf.fixed == fixed
    assert list(pf.re_terms) == [ReTermSpec(lhs, g) for lhs, g in terms]


def test_offsets_cbind_and_r_powers():
    pf = parse_formula("cbind(s, n - s) ~ I(age^2) + offset(log(t)) + (1 | g)")
    assert pf.response_cbind == ("s", "n - s")
    assert pf.response is None
    assert pf.offsets == ("log(t)",)
    assert pf.fixed == "I(age**2)"  # R's ^ inside I() is a power
    assert parse_formula("y ~ (a + b)^2").fixed == "(a + b)^2"  # outside a call it stays formulaic's


@pytest.mark.parametrize("bad", ["y ~ (1 | g", "~ x", "y ~ (1 | g | h)", "y ~ (1 | g + h)"])
def test_malformed_formulas_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_formula(bad)


def test_formula_variables_see_inside_transforms():
    assert formula_variables("x*f + I(x**2) + scale(h) + np.log(z)") == {"x", "f", "h", "z"}


def test_r_column_names():
    assert r_column_name("Intercept") == "(Intercept)"
    assert r_column_name("livch[T.3+]") == "livch3+"
    assert r_column_name("age:ch[T.Y]") == "age:chY"
    assert r_column_name("I(age ** 2)") == "I(age^2)"


def _toy(n=60, seed=3):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "f": pd.Categorical(rng.choice(["lo", "mid", "hi"], n), categories=["mid", "lo", "hi"]),
            "a": pd.Categorical(rng.choice(["A2", "A1"], n), categories=["A2", "A1"]),
            "b": rng.choice(["b1", "b2", "b3"], n),
            "t": rng.uniform(1, 2, n),
        }
    )


def test_categorical_order_sets_reference_level_and_names():
    d = build_design("y ~ x + f + (1 | b)", _toy(), get_family("gaussian"))
    assert d.xnames == ["(Intercept)", "x", "flo", "fhi"]  # 'mid' (first category) is the reference


def test_interaction_grouping_levels_follow_r_order():
    d = build_design("y ~ 1 + (1 | a:b)", _toy(), get_family("gaussian"))
    t = d.terms[0]
    # R's a:b varies the first factor slowest, in a's level order (A2 before A1); unused dropped
    assert t.levels == [f"{a}:{b}" for a in ("A2", "A1") for b in ("b1", "b2", "b3")]
    df = _toy()
    labels = (df["a"].astype(str) + ":" + df["b"]).to_numpy()
    assert list(np.asarray(t.levels)[t.refs]) == list(labels)


def test_nested_term_and_sorting_by_number_of_levels():
    d = build_design("y ~ 1 + (1 | a/b)", _toy(), get_family("gaussian"))
    assert [t.group for t in d.terms] == ["a:b", "a"]  # most levels first, as lme4
    assert [t.nlev for t in d.terms] == [6, 2]


def test_one_missing_value_mask_for_all_parts():
    df = _toy()
    df.loc[[1, 5], "x"] = np.nan
    df.loc[7, "b"] = None
    df.loc[9, "y"] = np.nan
    with pytest.warns(UserWarning, match="dropped 4 of 60 rows"):
        d = build_design("y ~ x + (1 | b)", df, get_family("gaussian"))
    assert d.n == 56 and d.n_dropped == 4
    assert list(d.rows) == [i for i in range(60) if i not in (1, 5, 7, 9)]


def test_offset_term_equals_offset_argument():
    df = _toy()
    d1 = build_design("y ~ x + offset(log(t)) + (1 | b)", df, get_family("gaussian"))
    d2 = build_design("y ~ x + (1 | b)", df, get_family("gaussian"), offset=np.log(df["t"]))
    np.testing.assert_allclose(d1.offset, np.log(df["t"]))
    np.testing.assert_allclose(d1.offset, d2.offset)


def test_random_slope_columns_and_no_intercept_variant():
    df = _toy()
    d = build_design("y ~ x + (x | b)", df, get_family("gaussian"))
    assert d.terms[0].cnames == ["(Intercept)", "x"]
    np.testing.assert_allclose(d.terms[0].z[:, 1], df["x"])
    d0 = build_design("y ~ x + (0 + x | b)", df, get_family("gaussian"))
    assert d0.terms[0].cnames == ["x"]
