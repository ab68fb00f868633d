"""Inference after the fit (issue 6): Wald anova, likelihood-ratio tests, marginal means,
pairwise comparisons and letters, confidence intervals.

R references: the ``extra`` sections of rust_beta.json, rust_gamma.json and
orobanche_glm_glmmTMB.json (car::Anova type II Wald, emmeans(..., type = 'response'), each with
its R call). Tolerances: 1e-3 relative on statistics and means, 1e-2 relative on SEs.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmmdiag
from glmmdiag import anova, cld, confint, marginal_means, pairwise, wald_anova
from glmmdiag.inference.contrasts import p_adjust

STAT_RTOL = 1e-3
SE_RTOL = 1e-2


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmmdiag.glmm(formula, data, **kw)


@pytest.fixture(scope="module")
def rust(load_data):
    return load_data("rust")


@pytest.fixture(scope="module")
def beta_fit(rust):
    return _fit("severity ~ fungicide + (1 | block)", rust, family="beta")


@pytest.fixture(scope="module")
def gamma_fit(rust):
    return _fit("severity_pct ~ fungicide + (1 | block)", rust, family="Gamma", link="log")


@pytest.fixture(scope="module")
def orobanche(load_data):
    return load_data("orobanche")


@pytest.fixture(scope="module")
def oro_glm(orobanche):
    return _fit("cbind(germ, n - germ) ~ extract * gen", orobanche, family="binomial")


@pytest.fixture(scope="module")
def oro_plate(orobanche):
    return _fit("cbind(germ, n - germ) ~ extract * gen + (1 | plate)", orobanche, family="binomial")


@pytest.fixture(scope="module")
def contra(load_data):
    return load_data("Contraception")


@pytest.fixture(scope="module")
def contra_fit(contra):
    return _fit("use ~ age + I(age**2) + urban * ch + (1 | district)", contra, family="binomial")


def _check_anova(tab, ref):
    vals = ref["values"]
    terms = ref["terms"] if isinstance(ref["terms"], list) else [ref["terms"]]
    as_list = (lambda v: v if isinstance(v, list) else [v])
    assert list(tab.index) == terms
    np.testing.assert_allclose(tab["Chisq"].to_numpy(), as_list(vals["Chisq"]), rtol=STAT_RTOL)
    np.testing.assert_array_equal(tab["Df"].to_numpy(), as_list(vals["Df"]))
    np.testing.assert_allclose(tab["Pr(>Chisq)"].to_numpy(), as_list(vals["Pr(>Chisq)"]), rtol=1e-2)


def _check_emmeans(mm, ref, est_name, factors):
    tab = mm.table
    for f in factors:
        assert [str(v) for v in tab[f]] == ref[f]
    np.testing.assert_allclose(tab[est_name], ref[est_name], rtol=STAT_RTOL)
    np.testing.assert_allclose(tab["SE"], ref["SE"], rtol=SE_RTOL)
    np.testing.assert_allclose(tab["df"], ref["df"])
    np.testing.assert_allclose(tab["lower.CL"], ref["lower.CL"], rtol=STAT_RTOL)
    np.testing.assert_allclose(tab["upper.CL"], ref["upper.CL"], rtol=STAT_RTOL)


# ---------------------------------------------------------------------------- R references
def test_rust_beta_anova(beta_fit, load_reference):
    ref = load_reference("rust_beta")["extra"]["anova"]
    tab = wald_anova(beta_fit)
    _check_anova(tab, ref)
    assert tab.loc["fungicide", "Chisq"] == pytest.approx(255.37, abs=0.01)
    assert "Type II" in tab.attrs["heading"]


def test_rust_beta_emmeans(beta_fit, load_reference):
    ref = load_reference("rust_beta")["extra"]["emmeans_response"]
    mm = marginal_means(beta_fit, "fungicide", type="response", df="residual")
    assert list(mm.columns) == ["fungicide", "response", "SE", "df", "lower.CL", "upper.CL"]
    _check_emmeans(mm, ref, "response", ["fungicide"])


def test_rust_gamma_anova_and_emmeans(gamma_fit, load_reference):
    extra = load_reference("rust_gamma")["extra"]
    _check_anova(wald_anova(gamma_fit), extra["anova"])
    mm = marginal_means(gamma_fit, "~ fungicide", type="response", df="residual")
    _check_emmeans(mm, extra["emmeans_response"], "response", ["fungicide"])


def test_orobanche_anova(oro_glm, load_reference):
    ref = load_reference("orobanche_glm_glmmTMB")["extra"]["anova"]
    tab = wald_anova(oro_glm)
    _check_anova(tab, ref)
    np.testing.assert_allclose(tab["Chisq"], [53.40, 3.04, 6.45], atol=0.006)


def test_orobanche_emmeans(oro_glm, load_reference):
    ref = load_reference("orobanche_glm_glmmTMB")["extra"]["emmeans_response"]
    mm = marginal_means(oro_glm, "~extract*gen", type="response", df="residual")
    assert list(mm.columns) == ["extract", "gen", "prob", "SE", "df", "lower.CL", "upper.CL"]
    _check_emmeans(mm, ref, "prob", ["extract", "gen"])


# ---------------------------------------------------------------------------- Wald anova
def test_type3_is_each_terms_own_wald_test(oro_glm):
    with pytest.warns(UserWarning, match="contrasts"):
        t3 = wald_anova(oro_glm, type=3)
    assert list(t3.index) == ["(Intercept)", "extract", "gen", "extract:gen"]
    z = (oro_glm.fixef / oro_glm.se).to_numpy()
    np.testing.assert_allclose(t3["Chisq"].to_numpy(), z**2, rtol=1e-10)
    assert "treatment contrasts" in t3.attrs["note"]
    # the highest-order term has no relatives: type II = type III for it
    t2 = wald_anova(oro_glm)
    assert t2.loc["extract:gen", "Chisq"] == pytest.approx(t3.loc["extract:gen", "Chisq"], rel=1e-12)


def test_type2_is_the_test_after_dropping_the_relatives(orobanche):
    """Type II of a main effect in a*b = the Wald test of that effect in the model without a:b
    on the quadratic approximation of the log-likelihood -- exact for least squares (at a common
    sigma), close for a binomial refit."""
    rng = np.random.default_rng(11)
    n = 60
    a = rng.choice(["a1", "a2"], n, p=[0.3, 0.7])
    b = rng.choice(["b1", "b2", "b3"], n)
    d = pd.DataFrame({"a": pd.Categorical(a), "b": pd.Categorical(b)})
    d["y"] = (a == "a2") * 0.8 + (b == "b3") * 0.5 + (a == "a2") * (b == "b2") * 0.6 + rng.normal(0, 1, n)
    full = _fit("y ~ a * b", d)
    add = _fit("y ~ a + b", d)
    t2 = wald_anova(full)
    rescale = (full.sigma / add.sigma) ** 2  # the additive model's vcov at the full model's sigma
    assert t2.loc["a", "Chisq"] == pytest.approx(add.fixef["aa2"] ** 2 / (add.vcov.loc["aa2", "aa2"] * rescale),
                                                 rel=1e-8)
    cols = ["bb2", "bb3"]
    bb = add.fixef[cols].to_numpy()
    Vb = add.vcov.loc[cols, cols].to_numpy() * rescale
    assert t2.loc["b", "Chisq"] == pytest.approx(bb @ np.linalg.solve(Vb, bb), rel=1e-8)
    assert t2.loc["b", "Df"] == 2 and t2.loc["a:b", "Df"] == 2
    # binomial: the refit differs from the quadratic approximation by a little
    full = _fit("cbind(germ, n - germ) ~ extract * gen", orobanche, family="binomial")
    add = _fit("cbind(germ, n - germ) ~ extract + gen", orobanche, family="binomial")
    z_add = (add.fixef / add.se) ** 2
    assert wald_anova(full).loc["extract", "Chisq"] == pytest.approx(z_add["extractcucumber"], rel=0.05)


def test_multi_column_terms_and_r_labels(contra_fit):
    t2 = wald_anova(contra_fit)
    assert list(t2.index) == ["age", "I(age^2)", "urban", "ch", "urban:ch"]
    # terms without relatives: their own joint Wald test
    b, V = contra_fit.fixef, contra_fit.vcov
    for term, col in [("age", "age"), ("I(age^2)", "I(age^2)"), ("urban:ch", "urbanY:chY")]:
        assert t2.loc[term, "Chisq"] == pytest.approx(b[col] ** 2 / V.loc[col, col], rel=1e-10)
    sub = wald_anova(contra_fit, terms=["I(age ** 2)", "ch:urban"])
    assert list(sub.index) == ["I(age^2)", "urban:ch"]


def test_rank_deficient_columns_do_not_count(orobanche):
    d = orobanche.copy()
    d["extract2"] = pd.Categorical(d["extract"].astype(str), categories=["bean", "cucumber"])
    fit = _fit("cbind(germ, n - germ) ~ extract + extract2 + gen", d, family="binomial")
    tab = wald_anova(fit)
    assert tab.loc["extract2", "Df"] == 0 and np.isnan(tab.loc["extract2", "Chisq"])
    assert tab.loc["extract", "Df"] == 1


def test_wald_anova_unknown_term(oro_glm):
    with pytest.raises(KeyError, match="'nitrogen' is not in the model.*'extract', 'gen', 'extract:gen'"):
        wald_anova(oro_glm, terms="nitrogen")
    with pytest.raises(ValueError, match="type must be"):
        wald_anova(oro_glm, type=1)


# ---------------------------------------------------------------------------- likelihood ratio
def test_lrt_glm_vs_glmm_matches_reference_logliks(oro_glm, oro_plate, load_reference):
    ll0 = load_reference("orobanche_glm_glmmTMB")["fit"]["logLik"]
    ll1 = load_reference("orobanche_glmmTMB_plate")["fit"]["logLik"]
    tab = anova(oro_plate, oro_glm, names=["plate", "glm"])
    assert list(tab.index) == ["glm", "plate"]  # ordered by number of parameters
    assert list(tab.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    assert tab.loc["plate", "Chisq"] == pytest.approx(2 * (ll1 - ll0), rel=STAT_RTOL)
    assert tab.loc["plate", "Df"] == 1
    assert tab.loc["plate", "Pr(>Chisq)"] == pytest.approx(stats.chi2.sf(2 * (ll1 - ll0), 1), rel=1e-2)
    assert any("boundary" in n for n in tab.attrs["notes"])


def test_lrt_refits_reml_with_ml(load_data, load_reference):
    ss = load_data("sleepstudy")
    m1 = _fit("Reaction ~ Days + (1 | Subject)", ss, reml=True)
    m2 = _fit("Reaction ~ Days + (Days | Subject)", ss, reml=True)
    with pytest.warns(UserWarning, match="refitting model.* with ML"):
        tab = anova(m1, m2)
    ref = load_reference("sleepstudy_lmer_ML")["fit"]
    assert tab.loc["model2", "logLik"] == pytest.approx(ref["logLik"], abs=0.01)
    assert tab.loc["model2", "Df"] == 2
    assert m1.reml and m2.reml  # the user's fits are untouched


def test_lrt_bad_input(orobanche, oro_glm, oro_plate):
    # same number of parameters: not nested
    other = _fit("cbind(germ, n - germ) ~ extract + gen + (1 | plate)", orobanche, family="binomial")
    with pytest.raises(ValueError, match="same number of parameters"):
        anova(oro_glm, other)
    # fixed effects not contained
    swap = _fit("cbind(germ, n - germ) ~ gen + (1 | plate)", orobanche, family="binomial")
    only_extract = _fit("cbind(germ, n - germ) ~ extract", orobanche, family="binomial")
    with pytest.raises(ValueError, match="not nested.*fixed effects"):
        anova(only_extract, swap)
    # different response
    d = orobanche.copy()
    d["germ2"] = d["germ"].where(d.index != 0, d["germ"] - 1)
    resp = _fit("cbind(germ2, n - germ2) ~ extract * gen + (1 | plate)", d, family="binomial")
    with pytest.raises(ValueError, match="different responses"):
        anova(oro_glm, resp)
    # different rows
    d = orobanche.copy()
    d["z"] = np.where(d.index == 3, np.nan, 1.0)
    rows = _fit("cbind(germ, n - germ) ~ extract * gen + z + (1 | plate)", d, family="binomial")
    with pytest.raises(ValueError, match="different rows"):
        anova(oro_plate, rows)
    # a random-effect grouping the larger model lacks
    d = orobanche.copy()
    d["half"] = pd.Categorical(np.where(np.arange(len(d)) % 2 == 0, "A", "B"))
    a = _fit("cbind(germ, n - germ) ~ extract + (1 | half)", d, family="binomial")
    b = _fit("cbind(germ, n - germ) ~ extract * gen + (1 | plate)", d, family="binomial")
    with pytest.raises(ValueError, match="no random effects for the grouping 'half'"):
        anova(a, b)
    with pytest.raises(ValueError, match="two or more"):
        anova(oro_glm)


# ---------------------------------------------------------------------------- marginal means
def test_link_scale_z_intervals_and_averaging(oro_glm):
    cells = marginal_means(oro_glm, ["extract", "gen"])
    assert list(cells.columns) == ["extract", "gen", "emmean", "SE", "df", "asymp.LCL", "asymp.UCL"]
    assert np.all(np.isinf(cells["df"]))
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(cells["asymp.LCL"], cells["emmean"] - z * cells["SE"], rtol=1e-12)
    # equal-weight average over gen on the link scale
    ex = marginal_means(oro_glm, "extract")
    e = cells["emmean"].to_numpy()
    np.testing.assert_allclose(ex["emmean"], [(e[0] + e[2]) / 2, (e[1] + e[3]) / 2], rtol=1e-12)
    b = oro_glm.fixef.to_numpy()
    assert ex["emmean"][0] == pytest.approx(b[0] + b[2] / 2, rel=1e-12)
    assert any("averaged over the levels of: gen" in n for n in ex.notes)


def test_response_scale_delta_method_and_t_df(oro_glm):
    link = marginal_means(oro_glm, "extract", df=10, level=0.9)
    resp = marginal_means(oro_glm, "extract", type="response", df=10, level=0.9)
    p = 1 / (1 + np.exp(-link["emmean"].to_numpy()))
    np.testing.assert_allclose(resp["prob"], p, rtol=1e-12)
    np.testing.assert_allclose(resp["SE"], p * (1 - p) * link["SE"].to_numpy(), rtol=1e-12)
    q = stats.t.ppf(0.95, 10)
    np.testing.assert_allclose(resp["lower.CL"], 1 / (1 + np.exp(-(link["emmean"] - q * link["SE"]))), rtol=1e-12)


def test_covariates_at_their_means(contra, contra_fit):
    mm = marginal_means(contra_fit, "urban", type="response")
    age_mean = contra["age"].mean()
    grid = pd.DataFrame({"age": age_mean, "urban": pd.Categorical(["N", "N", "Y", "Y"]),
                         "ch": pd.Categorical(["N", "Y", "N", "Y"])})
    eta = contra_fit.predict(grid, re_form="~0")
    np.testing.assert_allclose(mm["prob"], 1 / (1 + np.exp(-eta.reshape(2, 2).mean(axis=1))), rtol=1e-10)
    # the mean is recovered from the fit (age is its own term) or taken from data=
    with_data = marginal_means(contra_fit, "urban", type="response", data=contra)
    np.testing.assert_allclose(with_data["prob"], mm["prob"], rtol=1e-12)
    at = marginal_means(contra_fit, ["urban", "age"], at={"age": [-10, 0, 10]})
    assert len(at) == 6 and list(at["age"]) == [-10, -10, 0, 0, 10, 10]


def test_transformed_covariate_needs_data(contra):
    contra = contra.assign(age20=contra["age"] + 20)
    fit = _fit("use ~ log(age20) + urban + (1 | district)", contra, family="binomial")
    with pytest.raises(ValueError, match="mean of covariate 'age20'.*pass data="):
        marginal_means(fit, "urban")
    mm = marginal_means(fit, "urban", data=contra)
    b = fit.fixef.to_numpy()
    assert mm["emmean"][0] == pytest.approx(b[0] + b[1] * np.log(contra["age20"].mean()), rel=1e-10)
    mm_at = marginal_means(fit, "urban", at={"age20": 30.0})
    assert mm_at["emmean"][0] == pytest.approx(b[0] + b[1] * np.log(30.0), rel=1e-10)


def test_offset_in_the_formula_is_evaluated_on_the_grid():
    rng = np.random.default_rng(5)
    n = 90
    d = pd.DataFrame({"f": pd.Categorical(rng.choice(list("abc"), n)),
                      "g": pd.Categorical(rng.choice([f"G{i}" for i in range(6)], n)),
                      "t": rng.uniform(1, 5, n)})
    d["y"] = rng.poisson(d["t"] * np.exp(0.4 * (d["f"] == "b")))
    fit = _fit("y ~ f + offset(log(t)) + (1 | g)", d, family="poisson")
    with pytest.raises(ValueError, match="offset uses 't'.*data="):
        marginal_means(fit, "f")
    b = fit.fixef.to_numpy()
    mm = marginal_means(fit, "f", type="response", data=d)
    assert list(mm.columns)[1] == "rate"
    np.testing.assert_allclose(mm["rate"], np.exp(b[0] + np.r_[0, b[1:]] + np.log(d["t"].mean())), rtol=1e-10)
    per_unit = marginal_means(fit, "f", type="response", offset=0.0)
    np.testing.assert_allclose(per_unit["rate"], np.exp(b[0] + np.r_[0, b[1:]]), rtol=1e-10)
    pw = pairwise(per_unit).contrasts
    assert "ratio" in pw.columns and pw["ratio"][0] == pytest.approx(np.exp(-b[1]), rel=1e-10)


def test_non_estimable_means_in_a_rank_deficient_model():
    rng = np.random.default_rng(2)
    a = ["a1"] * 10 + ["a2"] * 10 + ["a1"] * 10
    b = ["b1"] * 20 + ["b2"] * 10  # the cell a2:b2 is empty
    d = pd.DataFrame({"a": pd.Categorical(a), "b": pd.Categorical(b), "y": rng.normal(size=30)})
    fit = _fit("y ~ a * b", d)
    assert len(fit.fixef) == 3
    with pytest.raises(ValueError, match="aliased.*pass data="):
        marginal_means(fit, ["a", "b"])
    cells = marginal_means(fit, ["a", "b"], data=d)
    assert np.isnan(cells["emmean"][3]) and np.all(np.isfinite(cells["emmean"][:3]))
    b_ = fit.fixef.to_numpy()
    np.testing.assert_allclose(cells["emmean"][:3], [b_[0], b_[0] + b_[1], b_[0] + b_[2]], rtol=1e-10)
    assert np.isnan(marginal_means(fit, "a", data=d)["emmean"][1])
    pw = pairwise(cells)
    assert len(pw.contrasts) == 3 and len(pw.letters) == 3
    assert any("not estimable" in n for n in pw.notes)
    tab = wald_anova(fit)
    assert tab.loc["a:b", "Df"] == 0


def test_marginal_means_bad_input(oro_glm, contra_fit):
    with pytest.raises(KeyError, match="'nitrogen', which is not a variable"):
        marginal_means(oro_glm, "nitrogen")
    with pytest.raises(ValueError, match="numeric covariate 'age'.*at="):
        marginal_means(contra_fit, "age")
    with pytest.raises(ValueError, match="type must be"):
        marginal_means(oro_glm, "extract", type="prob")
    with pytest.raises(ValueError, match="df must be"):
        marginal_means(oro_glm, "extract", df="kenward-roger")
    with pytest.raises(ValueError, match="levels.*does not have"):
        marginal_means(oro_glm, "extract", at={"extract": ["pea"]})
    with pytest.raises(KeyError, match="at= names"):
        marginal_means(oro_glm, "extract", at={"dose": 1})


# ---------------------------------------------------------------------------- pairwise
def test_tukey_matches_scipy_on_a_balanced_one_way_layout():
    rng = np.random.default_rng(3)
    k, n = 5, 6
    g = np.repeat([f"T{i}" for i in range(k)], n)
    y = rng.normal(np.repeat([0.0, 0.4, 0.8, 1.5, 1.6], n), 0.7)
    df = pd.DataFrame({"y": y, "g": pd.Categorical(g)})
    fit = _fit("y ~ g", df, reml=True)  # least squares: vcov = MSE (X'X)^-1
    mm = marginal_means(fit, "g", df=k * (n - 1))
    pw = pairwise(mm, adjust="tukey")
    # independent: the classical Tukey HSD from the group means and the pooled MSE
    groups = [y[g == f"T{i}"] for i in range(k)]
    mse = sum(((x - x.mean()) ** 2).sum() for x in groups) / (k * (n - 1))
    expect = []
    for i, j in itertools.combinations(range(k), 2):
        q = abs(groups[i].mean() - groups[j].mean()) / np.sqrt(mse / n)
        expect.append(stats.studentized_range.sf(q, k, k * (n - 1)))
    np.testing.assert_allclose(pw.contrasts["p.value"], expect, rtol=1e-6)
    hsd = stats.tukey_hsd(*groups).pvalue
    np.testing.assert_allclose(pw.contrasts["p.value"],
                               [hsd[i, j] for i, j in itertools.combinations(range(k), 2)], rtol=1e-4, atol=1e-8)
    assert list(pw.contrasts.columns) == ["contrast", "estimate", "SE", "df", "t.ratio", "p.value"]
    assert pw.contrasts["contrast"][0] == "T0 - T1"


def test_adjustments_and_odds_ratios(oro_glm):
    mm = marginal_means(oro_glm, "~ extract * gen", type="response")
    raw = pairwise(mm, adjust="none").contrasts
    assert list(raw.columns) == ["contrast", "odds.ratio", "SE", "df", "z.ratio", "p.value"]
    eta, V = mm.eta, mm.vcov_eta
    d = eta[0] - eta[1]
    se = np.sqrt(V[0, 0] + V[1, 1] - 2 * V[0, 1])
    assert raw["contrast"][0] == "bean O73 / cucumber O73"
    assert raw["odds.ratio"][0] == pytest.approx(np.exp(d), rel=1e-12)
    assert raw["SE"][0] == pytest.approx(np.exp(d) * se, rel=1e-12)
    assert raw["p.value"][0] == pytest.approx(2 * stats.norm.sf(abs(d / se)), rel=1e-10)
    p = raw["p.value"].to_numpy()
    bonf = pairwise(mm, adjust="bonferroni").contrasts["p.value"].to_numpy()
    np.testing.assert_allclose(bonf, np.minimum(1, 6 * p))
    holm = pairwise(mm, adjust="holm").contrasts["p.value"].to_numpy()
    o = np.argsort(p)
    manual = np.empty(6)
    running = 0.0
    for r, i in enumerate(o):
        running = max(running, min(1.0, (6 - r) * p[i]))
        manual[i] = running
    np.testing.assert_allclose(holm, manual)
    link = pairwise(marginal_means(oro_glm, "extract"), adjust="tukey").contrasts
    assert "estimate" in link.columns and link["contrast"][0] == "bean - cucumber"
    # two means: Tukey = unadjusted two-sided z test
    assert link["p.value"][0] == pytest.approx(2 * stats.norm.sf(abs(link["z.ratio"][0])), rel=1e-6)
    with pytest.raises(ValueError, match="adjust must be"):
        pairwise(mm, adjust="scheffe")
    with pytest.raises(TypeError, match="marginal_means"):
        pairwise(mm.table)


def test_letters_hand_checked_example():
    # four means in increasing order; A-C, A-D and B-D differ: A a, B ab, C bc, D c
    got = cld(["B", "D", "A", "C"], [("A", "C"), ("D", "A"), ("B", "D")], estimates=[2, 4, 1, 3])
    assert list(got.index) == ["A", "B", "C", "D"]
    assert list(got) == ["a", "ab", "bc", "c"]
    # no difference: one letter; all different: one letter each
    assert list(cld(list("xyz"), [])) == ["a", "a", "a"]
    allsig = list(itertools.combinations("xyz", 2))
    assert list(cld(list("xyz"), allsig, estimates=[3, 1, 2])) == ["a", "b", "c"]
    assert list(cld(list("xyz"), allsig, estimates=[3, 1, 2]).index) == ["y", "z", "x"]
    # five means, significant 1-3, 1-4, 1-5, 2-5, 3-5: A, AB, B, BC, C
    labels = list("abcde")
    sig = [("a", "c"), ("a", "d"), ("a", "e"), ("b", "e"), ("c", "e")]
    got = cld(labels, sig, estimates=[1, 2, 3, 4, 5], letters="ABCDEFG")
    assert list(got) == ["A", "AB", "B", "BC", "C"]
    # the sweep (Piepho 2004): only a-b and c-d differ; insert-absorb gives e all four letters
    # ({b,d,e}, {b,c,e}, {a,d,e}, {a,c,e}), two of which are redundant for e
    got = cld(labels, [("a", "b"), ("c", "d")])
    assert list(got) == ["ab", "cd", "ac", "bd", "bc"]


def test_letters_are_valid_for_every_pattern_of_five_means():
    """Sharing a letter <=> not significantly different, for all 2^10 patterns of 5 means."""
    labels = list("abcde")
    pairs = list(itertools.combinations(range(5), 2))
    for r in range(len(pairs) + 1):
        for sig in itertools.combinations(pairs, r):
            got = cld(labels, [(labels[i], labels[j]) for i, j in sig], estimates=[3, 1, 4, 1.5, 9])
            d = dict(zip(got.index, got))
            assert all(d.values())
            for i, j in pairs:
                assert bool(set(d[labels[i]]) & set(d[labels[j]])) == ((i, j) not in sig)


def test_letters_agree_with_the_tests(beta_fit):
    mm = marginal_means(beta_fit, "fungicide", type="response", df="residual")
    pw = pairwise(mm, adjust="tukey")
    letters = dict(zip(pw.letters["fungicide"].astype(str), pw.letters[".group"]))
    for row in pw.contrasts.rename(columns={"p.value": "p_value"}).itertuples():
        a, b = row.contrast.split(" / ")
        share = bool(set(letters[a]) & set(letters[b]))
        assert share == (row.p_value >= 0.05), row.contrast
    est = pw.letters["response"].to_numpy()
    assert np.all(np.diff(est) >= 0)  # sorted by the mean, the lowest gets "a"
    assert pw.letters[".group"].iloc[0] == "a"


def test_p_adjust_bad_method():
    with pytest.raises(ValueError, match="adjust must be"):
        p_adjust([0.1, 0.2], "fdr")


# ---------------------------------------------------------------------------- confint
def test_confint_fixed_is_wald(beta_fit):
    ci = confint(beta_fit, parm="fixed", level=0.9)
    assert list(ci.columns) == ["5 %", "95 %", "Estimate"]
    z = stats.norm.ppf(0.95)
    np.testing.assert_allclose(ci["5 %"], beta_fit.fixef - z * beta_fit.se, rtol=1e-12)
    np.testing.assert_allclose(ci["95 %"], beta_fit.fixef + z * beta_fit.se, rtol=1e-12)


def test_confint_variance_parameters_glmm(beta_fit):
    ci = confint(beta_fit, parm="random")
    assert list(ci.index) == ["sd_(Intercept)|block", "dispersion"]
    assert ci.loc["sd_(Intercept)|block", "Estimate"] == pytest.approx(beta_fit.varcorr["sdcor"][0], rel=1e-10)
    assert ci.loc["dispersion", "Estimate"] == pytest.approx(beta_fit.dispersion, rel=1e-10)
    assert np.all(ci["2.5 %"] < ci["Estimate"]) and np.all(ci["Estimate"] < ci["97.5 %"])
    # symmetric on the log scale
    lo, hi, est = ci.loc["sd_(Intercept)|block"]
    assert np.log(est) - np.log(lo) == pytest.approx(np.log(hi) - np.log(est), rel=1e-10)


def test_confint_variance_covariance_is_consistent_with_vcov(beta_fit, contra, monkeypatch):
    """The full Hessian used for the variance parameters gives back the fit's vcov of beta."""
    import glmmdiag.inference.intervals as intervals

    orig = intervals._glmm_cov
    for fit in (beta_fit, _fit("use ~ age + urban + (urban | district)", contra, family="binomial")):
        captured = {}

        def spy(*a, **k):
            captured["cov"] = orig(*a, **k)
            captured["m"] = a[1].size
            return captured["cov"]

        monkeypatch.setattr(intervals, "_glmm_cov", spy)
        confint(fit, parm="random")
        m, p = captured["m"], len(fit.fixef)
        np.testing.assert_allclose(np.sqrt(np.diag(captured["cov"])[m : m + p]), fit.se, rtol=5e-3)


def test_confint_lmm_and_lm(load_data):
    ss = load_data("sleepstudy")
    fit = _fit("Reaction ~ Days + (Days | Subject)", ss, reml=True)
    ci = confint(fit)
    assert list(ci.index[2:]) == ["sd_(Intercept)|Subject", "sd_Days|Subject", "cor_(Intercept).Days|Subject",
                                  "sigma"]
    # lme4's profile intervals (REML): .sig01 14.4-37.7, .sig02 -0.48-0.69, .sig03 3.80-8.75,
    # .sigma 22.9-28.9; the Wald intervals on the log-SD / atanh scale are close to them
    np.testing.assert_allclose(ci["2.5 %"].to_numpy()[2:], [14.4, 3.80, -0.48, 22.9], rtol=0.15, atol=0.05)
    np.testing.assert_allclose(ci["97.5 %"].to_numpy()[2:], [37.7, 8.75, 0.69, 28.9], rtol=0.15, atol=0.1)
    lm = _fit("Reaction ~ Days", ss)
    ci = confint(lm, parm="sigma")
    s, n = lm.sigma, lm.nobs
    z = stats.norm.ppf(0.975)
    assert ci.loc["sigma", "2.5 %"] == pytest.approx(s * np.exp(-z / np.sqrt(2 * n)), rel=1e-10)


def test_confint_singular_and_bad_input(beta_fit, orobanche):
    with pytest.raises(KeyError, match="not parameters"):
        confint(beta_fit, parm="sd_x|block")
    with pytest.raises(ValueError, match="method"):
        confint(beta_fit, method="profile")
    d = orobanche.copy()
    d["const"] = pd.Categorical(["A"] * 10 + ["B"] * (len(d) - 10))
    fit = _fit("cbind(germ, n - germ) ~ extract * gen + (1 | const)", d, family="binomial")
    ci = confint(fit, parm="random")
    if fit.varcorr["sdcor"][0] < 1e-4:  # on the boundary: no Wald interval on the log scale
        assert ci.isna().iloc[0, :2].all()
