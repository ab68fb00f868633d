"""Model specifications (dict and string forms, the parser's refusals) and the remedy table."""
import pytest
import pandas as pd

import glmmdiag as gd
from glmmdiag import datasets

from glmmdiag.errors import FormulaError, GlmmdiagError
from glmmdiag.remedies import (REMEDIES, Remedy, format_spec, model_remedies, normalize_spec, parse_spec, problems,
                               remedies, remedy_specs)
from glmmdiag.results import ResidualTests, TestResult


@pytest.mark.parametrize("text,family,zi,disp,label", [
    ("nbinom2", "nbinom2", None, None, "nbinom2"),
    ("nbinom2; ziformula=~1", "nbinom2", "~1", None, "ZI nbinom2 (zi ~1)"),
    ("truncated_nbinom2; ziformula=~1", "truncated_nbinom2", "~1", None, "hurdle nbinom2 (zi ~1)"),
    ("Gamma ; link = log ; dispformula = ~x + I(x^2)", "gamma", None, "~ x + I(x^2)", "gamma (log, disp ~ x + I(x^2))"),
    ("family=poisson; olre=yes; label=OLRE;", "poisson", None, None, "OLRE"),
    ("nbinom2; dispformula=~ a/b", "nbinom2", None, "~ a/b", "nbinom2 (disp ~ a\u2215b)"),
])
def test_parse_valid_specs(text, family, zi, disp, label):
    s = parse_spec(text)
    assert (s["family"], s["ziformula"], s["dispformula"], s["label"]) == (family, zi, disp, label)
    assert parse_spec(format_spec(s))["family"] == family  # the string form round-trips
    assert normalize_spec(format_spec(s))["dispformula"] == disp


@pytest.mark.parametrize("text,cls,needle", [
    ("", GlmmdiagError, "starts with a family"),
    ("nbinom2; zi=~1", GlmmdiagError, "unknown key"),
    ("weibull", GlmmdiagError, "weibull"),
    ("nbinom2; ziformula=1", FormulaError, "one-sided"),
    ("nbinom2; ziformula=~", FormulaError, "nothing after"),
    ("nbinom2; ziformula=~ __import__('os').system('x')", FormulaError, "fixed term"),
    ("nbinom2; dispformula=~ open('f')", FormulaError, "may not contain"),
    ("nbinom2; ziformula=~ (1 | site)", FormulaError, "random effects"),
    ("nbinom2; link=logit", GlmmdiagError, "logit"),
    ("nbinom2; ziformula=~1; ziformula=~x", GlmmdiagError, "twice"),
    ("nbinom2; ~1", GlmmdiagError, "key=value"),
    ("nbinom2;; link=log", GlmmdiagError, "empty"),
    ("poisson; olre=maybe", GlmmdiagError, "yes or no"),
    ("poisson; label=a/b", GlmmdiagError, "without '/'"),
    ("poisson; link=", GlmmdiagError, "no value"),
    ("poisson; " + "x" * 600, GlmmdiagError, "at most"),
])
def test_parse_refuses(text, cls, needle):
    with pytest.raises(cls, match=needle):
        parse_spec(text)


def test_dict_specs():
    assert normalize_spec({"family": "nbinom2", "ziformula": "~1"})["label"] == "ZI nbinom2 (zi ~1)"
    with pytest.raises(GlmmdiagError, match="unknown key"):
        normalize_spec({"family": "poisson", "zi": "~1"})
    with pytest.raises(GlmmdiagError, match="needs a family"):
        normalize_spec({"link": "log"})
    with pytest.raises(GlmmdiagError, match="dict or a string"):
        normalize_spec(3)


def _t(stat, p, method="test"):
    return TestResult(method=method, statistic=stat, statistic_name="s", p_value=p, alternative="two.sided")


def test_problems_from_tests():
    tests = {"dispersion": _t(3.0, 0.001), "zero_inflation": _t(1.2, 0.01), "quantiles": _t(20, 0.001),
             "uniformity": _t(0.1, 0.5), "outliers": _t(2, 0.9)}
    assert problems(tests) == ["overdispersion", "zero_inflation", "heteroscedasticity"]
    assert problems({"dispersion": _t(0.3, 0.001), "zero_inflation": _t(0.8, 0.01)}) == \
        ["underdispersion", "too_few_zeros"]
    assert problems({"dispersion": _t(3.0, float("nan"))}) == []  # undefined is not a failure
    assert problems(tests, alpha=0.0005) == []


def test_remedy_table_lookups():
    f = "count ~ spp + mined + (1 | site)"
    assert remedy_specs("poisson", ["overdispersion"]) == ["nbinom2", "nbinom1", "poisson; olre=yes"]
    zi = remedy_specs("nbinom2", ["zero_inflation"])
    assert zi == ["nbinom2; ziformula=~1", "truncated_nbinom2; ziformula=~1"]
    assert remedy_specs("binomial", ["overdispersion"])[0] == "betabinomial"
    assert remedy_specs("gamma", ["heteroscedasticity"], f) == ["gamma; dispformula=~ spp + mined"]
    assert remedy_specs("poisson", ["heteroscedasticity"], f) == ["nbinom2; dispformula=~ spp + mined"]
    under = remedies("poisson", ["underdispersion"])
    assert under[0].specs == () and "consider" in under[0].why and "Conway-Maxwell" in under[0].why
    assert remedies("poisson", []) == []
    # every spec in the table parses (with the formula filled in)
    for (fam, prob), (specs, _) in REMEDIES.items():
        for s in specs:
            parse_spec(s.replace("{fixed}", "~ x"))
    assert isinstance(remedies("nbinom1", ["overdispersion"])[0], Remedy)


def test_model_remedies_skip_the_model_itself():
    tests = {"zero_inflation": _t(1.3, 0.001)}
    own = normalize_spec("nbinom2; ziformula=~1")
    specs = [s for r in model_remedies(own, "nbinom2", tests) for s in r.specs]
    assert "nbinom2; ziformula=~1" not in specs and "truncated_nbinom2; ziformula=~1" in specs


def test_residual_tests_verdict_and_remedies_text():
    rt = ResidualTests(_t(0.05, 0.4), _t(3.1, 0.002), _t(1, 0.6))
    assert rt.verdict.startswith("overdispersion 3.1") and rt.remedies() == []
    assert "Verdict (alpha = 0.05): overdispersion" in str(rt)
    named = rt.with_family("poisson")
    assert [r.problem for r in named.remedies()] == ["overdispersion"]
    assert "remedy for overdispersion: try 'nbinom2'" in str(named)
    assert [k for k, _ in named.items()] == ["uniformity", "dispersion", "outliers"]
    assert ResidualTests(_t(0.05, 0.4), _t(1.0, 0.6), _t(1, 0.6)).verdict == "no problems detected"


def test_residual_tests_of_a_fit_name_the_remedies():
    """residual_tests(res) knows the fitted family from the residuals, so its text names the remedies
    for what failed (overdispersed Poisson counts -> negative binomial or an observation-level effect)."""
    import warnings

    import glmmdiag
    from glmmdiag import datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmmdiag.glmm("count ~ spp + mined + (1 | site)", datasets.load("Salamanders"), family="poisson")
        rt = glmmdiag.residual_tests(glmmdiag.simulate_residuals(fit, n_sim=100, seed=1))
    assert rt.family == "poisson"
    assert "remedy for overdispersion: try 'nbinom2'" in str(rt)


def test_underdispersion_of_a_continuous_family_does_not_suggest_count_families():
    """A Gamma fitted to proportions that comes out underdispersed needs another variance function,
    not a Conway-Maxwell-Poisson (the demo's Beta-vs-Gamma case)."""
    from glmmdiag.remedies import remedies

    (gamma,) = remedies("gamma", ["underdispersion"])
    assert "Conway" not in gamma.why and "'beta'" in gamma.why
    (pois,) = remedies("poisson", ["underdispersion"])
    assert "Conway-Maxwell-Poisson" in pois.why


# ------------------------------------------------------------------ autocorrelation remedies
def test_structured_terms_for_failed_autocorrelation_tests():
    from glmmdiag.remedies import autocorrelation_remedy, equally_spaced, structured_term, with_term

    assert structured_term("temporal", time="times", series="site") == "ar1(times + 0 | site)"
    assert structured_term("temporal", time="day", series="site", equal_steps=False) == \
        "ou(numFactor(day) + 0 | site)"
    assert structured_term("spatial", coords=("x", "y"), group="field") == "exp(numFactor(x, y) + 0 | field)"
    assert with_term("y ~ x + (1 | g)", "ar1(t + 0 | g)") == "y ~ x + (1 | g) + ar1(t + 0 | g)"
    r = autocorrelation_remedy("temporal", "ar1(t + 0 | g)", "y ~ x")
    assert r.specs == ("y ~ x + ar1(t + 0 | g)",) and str(r).startswith("temporal autocorrelation: try")
    assert equally_spaced([1, 2, 3, 5, 4]) and not equally_spaced([1, 2, 4, 8])
    assert equally_spaced(pd.Categorical(["1", "2", "3"])) and equally_spaced(["a", "b", "c"])
    with pytest.raises(gd.GlmmdiagError):
        structured_term("temporal", time="t")
    with pytest.raises(gd.GlmmdiagError):
        structured_term("seasonal", time="t", series="g")


def test_suggested_structured_terms_are_valid_formulas_the_fitter_accepts():
    """ar1 for equal steps, ou for unequal ones: each suggested formula fits."""
    import warnings

    from glmmdiag.remedies import SINGLE_LEVEL, equally_spaced, structured_term, with_term

    df = datasets.load("ar1_sim")
    irregular = df.assign(day=df["t"].map({k: v for k, v in zip(range(1, 13), [0, 1, 2, 4, 5, 7, 8, 9, 12, 13,
                                                                                 15, 16])}))
    for d, col in ((df, "t"), (irregular, "day")):
        term = structured_term("temporal", time=col, series="group", equal_steps=equally_spaced(d[col]))
        assert term.startswith("ar1(" if col == "t" else "ou(")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = gd.glmm(with_term("y ~ x", term), d)
        assert fit.loglik > gd.glmm("y ~ x + (1 | group)", d).loglik
    # one field over all rows: "| 1", fitted as it is written (no column to add)
    term = structured_term("spatial", coords=("t", "x"), group=SINGLE_LEVEL)
    assert term == "exp(numFactor(t, x) + 0 | 1)"


def test_run_check_names_and_fits_the_remedy_and_the_test_then_passes():
    from glmmdiag import report

    df = datasets.load("ar1_sim")
    check = report.run_check(df, "y ~ x + (1 | group)", "gaussian", time="t", series="group", suggest=True,
                             n_sim=200, seed=1)
    main = check.table.index[0]
    t = check.autocorrelation[main]["temporal"]
    assert t.p_value < 1e-6 and "temporal autocorrelation" in report.combined_verdict(check, main, "no problems detected")
    (row,) = check.structured
    assert row["formula"] == "y ~ x + (1 | group) + ar1(t + 0 | group)"
    assert row["autocorrelation_passes"] and row["passes"] and row["rotation"] == "estimated"
    out = report.results_dict(check)
    assert out["structured_suggestions"][0]["passes"] is True
