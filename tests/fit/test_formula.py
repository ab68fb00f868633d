"""lme4 formula syntax -> fixed part, random-effects terms, offsets; and how the design encodes it."""
import numpy as np
import pandas as pd
import pytest

import glmmdiag
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


# ---------------------------------------------------------------- formulas are data, never code
def _counts(n=60, seed=5):
    rng = np.random.default_rng(seed)
    n_tr = rng.integers(3, 9, n)
    return pd.DataFrame({
        "cnt": rng.poisson(3, n), "x": rng.uniform(0.5, 2, n), "t": rng.uniform(1, 3, n),
        "s": rng.binomial(n_tr, 0.4), "n": n_tr, "log.area": rng.normal(size=n),
        "f": pd.Categorical(rng.choice(["p", "q", "r"], n)), "g": np.repeat(list("abcdef"), n // 6),
        "h": np.tile(list("uv"), n // 2), "my group": np.repeat(list("klmnop"), n // 6),
    })


@pytest.mark.parametrize(
    "formula, family, columns",
    [
        ("cnt ~ log(x) + (1 | g)", "poisson", ["(Intercept)", "log(x)"]),
        ("cnt ~ x + I(x^2) + (1 | g)", "poisson", ["(Intercept)", "x", "I(x^2)"]),
        ("cnt ~ scale(x) + (1 | g)", "poisson", ["(Intercept)", "scale(x)"]),
        ("cnt ~ poly(x, 2) + (1 | g)", "poisson", ["(Intercept)", "poly(x, 2)1", "poly(x, 2)2"]),
        ("cnt ~ poly(x, degree=2, raw=True) + (1 | g)", "poisson", None),
        ("cnt ~ bs(x, df=4) + (1 | g)", "poisson", None),
        ("cnt ~ C(f) + (1 | g)", "poisson", ["(Intercept)", "C(f)q", "C(f)r"]),
        ("cnt ~ C(f, contr.sum) + (1 | g)", "poisson", None),
        ("cnt ~ C(f, Treatment(reference='q')) + (1 | g)", "poisson", None),
        ("cnt ~ factor(h) + (1 | g)", "poisson", ["(Intercept)", "factor(h)v"]),
        ("cnt ~ `log.area` + I(`log.area`^2) + (1 | g)", "poisson", None),
        ("cnt ~ x + offset(log(t)) + (1 | g)", "poisson", ["(Intercept)", "x"]),
        ("cbind(s, n - s) ~ x + (1 | g)", "binomial", ["(Intercept)", "x"]),
        ("cnt ~ np.log(x) + numpy.sqrt(t) + (1 | g)", "poisson", None),
        ("cnt ~ sqrt(x) + abs(`log.area`) + log1p(t) + (1 | g)", "poisson", None),
        ("cnt ~ I(x > 1) + I((x > 1) & (t < 2)) + (1 | g)", "poisson", None),
        ("cnt ~ x + (1 | g/h)", "poisson", ["(Intercept)", "x"]),
        ("cnt ~ x + (x || g)", "poisson", ["(Intercept)", "x"]),
        ("cnt ~ x * f + x:t + (1 | g)", "poisson", None),
        ("cnt ~ x + (1 | `my group`)", "poisson", ["(Intercept)", "x"]),
        ("log(cnt + 1) ~ x + (1 | g)", "gaussian", ["(Intercept)", "x"]),
    ],
)
def test_formulas_users_write_still_work(formula, family, columns):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = build_design(formula, _counts(), get_family(family))
    assert np.all(np.isfinite(d.X)) and d.X.shape[0] == 60
    if columns is not None:
        assert d.xnames == columns


def test_back_quoted_names_are_column_names():
    df = _counts()
    d = build_design("`log.area` ~ x + (1 | `my group`)", df, get_family("gaussian"))
    np.testing.assert_allclose(d.y, df["log.area"])
    assert d.terms[0].group == "my group" and d.terms[0].nlev == 6
    assert formula_variables("x + `log.area` + I(`log.area` ** 2)") == {"x", "log.area"}


@pytest.mark.parametrize(
    "formula, piece",
    [
        ("cnt ~ x + I(__import__('os').getcwd()) + (1 | g)", "__import__('os').getcwd()"),
        ("cnt ~ x + (1 + I(open('f')) | g)", "open('f')"),
        ("cnt ~ x + offset(np.save('f', x)) + (1 | g)", "np.save('f', x)"),
        ("cbind(s, len(n)) ~ x + (1 | g)", "len(n)"),
        ("cnt[0] ~ x + (1 | g)", "cnt[0]"),
        ("cnt ~ x + C(f, levels=[eval('1')]) + (1 | g)", "eval('1')"),
    ],
)
def test_refused_pieces_are_named(formula, piece):
    from glmmdiag.errors import FormulaError

    with pytest.raises(FormulaError) as info:
        parse_formula(formula)
    assert piece in str(info.value) and "a formula may contain column names" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_check_expression_whitelist():
    from glmmdiag.errors import FormulaError
    from glmmdiag.fit.expressions import check_expression

    for ok in ["x", "2.5", "-x + 1", "x ** -1", "log(x) / exp(y)", "np.where(x > 0, x, 0)", "I(x % 2 == 0)",
               "~(x > 1)", "np.pi * x", "round(x, 2)", "`a b` * 2", "x // 3"]:
        check_expression(ok)
    for ok in ["C(f, contr.treatment(base=2))", "poly(x, 3)", "scale(x, center=False)", "bs(x, knots=[1, 2])",
               "center(x)", "C(f, Sum)", "factor(f, levels=['a', 'b'])"]:
        check_expression(ok, transforms=True)
    for bad in ["scale(x)", "poly(x, 2)", "C(f)", "x.real", "x[1]", "lambda: 1", "'a'", "b'x'", "1j * x",
                "x is None", "x in y", "not x", "x << 2", "x and y", "np.save", "np.log(x, out=x)",
                "exp(x, x)", "__x", "x(1)", "(x for x in y)", "{x}", "[x]", "(x,)", "x if y else z",
                "2 ** 10000", "(1e300) ** 10", "`unclosed", "``"]:
        with pytest.raises(FormulaError):
            check_expression(bad)


def test_integer_columns_are_evaluated_in_float64():
    from glmmdiag.fit.fixed import fixed_model_matrix, formulaic_matrix

    rng = np.random.default_rng(0)
    n = 60
    df = pd.DataFrame({
        "y": rng.poisson(3, n), "g": np.repeat(list("abcdef"), n // 6),
        "a": rng.integers(40_000, 50_000, n).astype("int32"), "b": rng.integers(40_000, 50_000, n).astype("int32"),
        "s": rng.integers(100, 200, n).astype("uint8"),
    })
    df["m"] = (df["s"].astype(int) + 100).clip(upper=255).astype("uint8")
    exact = np.log(df["a"].astype(float) * df["b"].astype(float))
    d = build_design("y ~ 1 + offset(log(a*b)) + (1 | g)", df, get_family("poisson"))
    np.testing.assert_allclose(d.offset, exact)  # int32 arithmetic would wrap (21.07 instead of 23.03)
    d = build_design("cbind(s, m - s) ~ 1 + (1 | g)", df, get_family("binomial"))
    np.testing.assert_allclose(d.w, df["m"].astype(float))  # uint8 m - s + s wrapped to 259 trials
    X_fast, names, spec = fixed_model_matrix("I(a*a)", df)
    X_formulaic, names2, _ = formulaic_matrix("I(a*a)", df)
    assert names == names2
    np.testing.assert_allclose(X_fast, X_formulaic)
    np.testing.assert_allclose(X_fast[:, 1], df["a"].astype(float) ** 2)
    np.testing.assert_allclose(np.asarray(spec.get_model_matrix(df.iloc[:5]))[:, 1], df["a"].astype(float)[:5] ** 2)
    _, _, spec0 = formulaic_matrix("0 + I(a*a)", df)  # a spec replayed on new integer data
    np.testing.assert_allclose(np.asarray(spec0.get_model_matrix(df.iloc[:5]))[:, 0], df["a"].astype(float)[:5] ** 2)


def test_top_level_bar_reads_as_lme4_reads_it():
    """Issue 17, item 5: lme4 reads y ~ x | g as y ~ 1 + (x | g) (34 calls in its test suites)."""
    pf = parse_formula("y ~ x | g")
    assert pf.fixed == "1" and pf.re_terms == (ReTermSpec("x", ("g",)),)
    pf = parse_formula("y ~ x + z || g")
    assert pf.fixed == "1" and [t.lhs for t in pf.re_terms] == ["1", "0 + x", "0 + z"]
    assert parse_formula("y ~ I((x > 1) | (z > 1)) + (1 | g)").fixed == "I((x > 1) | (z > 1))"
    d = _toy()
    a = glmmdiag.glmm("y ~ x | b", d)
    b = glmmdiag.glmm("y ~ 1 + (x | b)", d)
    assert a.loglik == pytest.approx(b.loglik, abs=1e-10)


def test_missing_column_is_a_column_error_naming_column_rows_and_fix():
    from glmmdiag.errors import ColumnError

    for formula in ["y ~ nope + (1 | b)", "y ~ x + (1 | nope)", "nope ~ x + (1 | b)", "y ~ x + offset(log(nope)) + (1 | b)",
                    "y ~ x + (nope | b)"]:
        with pytest.raises(ColumnError, match=r"'nope'.*60 rows.*check the spelling") as info:
            build_design(formula, _toy(), get_family("gaussian"))
        assert isinstance(info.value, KeyError)


def test_evaluate_expression_is_reexported_and_never_evals():
    from glmmdiag.fit import design, expressions

    assert design.evaluate_expression is expressions.evaluate_expression
    out = design.evaluate_expression("log(t) + 2 ** 3", _toy())
    np.testing.assert_allclose(out, np.log(_toy()["t"]) + 8)


def test_r_style_dotted_column_names_resolve():
    """Issue 17, item 5: cbind(final.snail.density, snails.lost) with such columns in the data is
    the binomial model on those columns (it failed with "name 'final' is not defined"); dotted
    names that are not columns (np.log) and strings are left alone."""
    from glmmdiag.fit.formula import quote_dotted_names

    cols = ["final.snail.density", "snails.lost", "site.id", "x"]
    text = 'cbind(final.snail.density, snails.lost) ~ np.log(x) + I(x == "a.b") + (1 | site.id)'
    assert quote_dotted_names(text, cols) == (
        'cbind(`final.snail.density`, `snails.lost`) ~ np.log(x) + I(x == "a.b") + (1 | `site.id`)')
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"final.snail.density": rng.poisson(5, 60), "snails.lost": rng.poisson(3, 60),
                      "site.id": np.repeat(list("abcdef"), 10), "x": rng.normal(size=60)})
    dotted = glmmdiag.glmm("cbind(final.snail.density, snails.lost) ~ x + (1 | site.id)", d, family="binomial")
    plain = d.rename(columns=lambda c: c.replace(".", "_"))
    ref = glmmdiag.glmm("cbind(final_snail_density, snails_lost) ~ x + (1 | site_id)", plain, family="binomial")
    assert dotted.loglik == pytest.approx(ref.loglik, abs=1e-10)
    np.testing.assert_allclose(dotted.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-10)


def test_ordered_factor_gets_r_polynomial_contrasts():
    """Issue 17, item 5: an ordered Categorical used bare is encoded as R encodes an ordered factor
    (contr.poly), with R's column names dose.L, dose.Q, dose.C (tests/reference/rstyle/ordered_factor.R)."""
    import json
    import warnings
    from pathlib import Path

    here = Path(__file__).resolve().parents[1] / "reference" / "rstyle"
    ref = json.loads((here / "ordered_factor.json").read_text())
    d = pd.read_csv(here / "ordered_factor.csv")
    d["dose"] = pd.Categorical(d["dose"], ["low", "mid", "high", "max"], ordered=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the g variance is 0 in lme4 too
        fit = glmmdiag.glmm("y ~ dose * x + (1 | g)", d)
    assert fit.fixef.index.tolist() == ref["names"]
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref["fixef"], rtol=1e-5, atol=1e-7)
    assert fit.loglik == pytest.approx(ref["logLik"], abs=1e-6)
    np.testing.assert_allclose(fit.predict(newdata=d.iloc[:5]), fit.predict()[:5], rtol=1e-10)
    d["dose"] = d["dose"].cat.as_unordered()  # unordered: treatment contrasts as before
    assert glmmdiag.glmm("y ~ dose + (1 | g)", d).fixef.index[1] == "dosemid"


def test_ordered_factor_in_a_dispersion_model_gets_poly_contrasts_too():
    """The zero and dispersion models encode an ordered factor as the conditional model does."""
    import warnings
    from pathlib import Path

    here = Path(__file__).resolve().parents[1] / "reference" / "rstyle"
    d = pd.read_csv(here / "ordered_factor.csv")
    d["dose"] = pd.Categorical(d["dose"], ["low", "mid", "high", "max"], ordered=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmmdiag.glmm("y ~ dose + (1 | g)", d, dispformula="~ dose")
        same = glmmdiag.glmm("y ~ dose + (1 | g)", d, dispformula="~ C(dose, contr.poly)")
    assert fit.fixef_disp.index.tolist() == ["(Intercept)", "dose.L", "dose.Q", "dose.C"]
    np.testing.assert_allclose(fit.fixef_disp.to_numpy(), same.fixef_disp.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(fit.predict(newdata=d.iloc[:4], type="disp"), fit.predict(type="disp")[:4], rtol=1e-10)
