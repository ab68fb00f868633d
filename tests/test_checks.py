"""Each residual test against an independent computation: by hand, scipy, or R (lmtest, ape, car:
values in tests/reference/diag/r_checks.json, made by r_checks.R)."""
from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import glmmdiag as gd
from glmmdiag.checks import benjamini_hochberg, durbin_watson_pvalue, holm

R = json.loads((Path(__file__).parent / "reference" / "diag" / "r_checks.json").read_text())


def _with_residuals(r, nsim=10):
    """ScaledResiduals carrying the given residual vector (the tests only look at the residuals)."""
    r = np.asarray(r, float)
    base = gd.simulate_residuals(
        gd.from_simulations(np.zeros(r.size), np.random.default_rng(0).random((r.size, nsim)), np.zeros(r.size)),
        seed=1,
    )
    return dataclasses.replace(base, residuals=r)


def _case(n=60, nsim=200, seed=5, lam=2.0):
    rng = np.random.default_rng(seed)
    S = rng.poisson(lam, size=(n, nsim)).astype(float)
    y = rng.poisson(lam * 1.3, size=n).astype(float)
    f = np.full(n, lam)
    return y, S, f, gd.simulate_residuals(gd.from_simulations(y, S, f), seed=3)


# ------------------------------------------------------------------ uniformity
@pytest.mark.parametrize("alt", ["two-sided", "greater", "less"])
def test_uniformity_matches_scipy(alt):
    r = np.random.default_rng(1).random(80) ** 1.1
    t = gd.uniformity_test(_with_residuals(r), alternative=alt)
    ref = stats.kstest(r, "uniform", alternative=alt)
    assert t.statistic == pytest.approx(ref.statistic, abs=1e-14)
    assert t.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert t.method == "Exact one-sample Kolmogorov-Smirnov test"


def test_uniformity_large_n_asymptotic_like_r():
    r = np.random.default_rng(2).random(500)
    t = gd.uniformity_test(_with_residuals(r))
    d = stats.kstest(r, "uniform").statistic
    assert t.statistic == pytest.approx(d)
    assert t.p_value == pytest.approx(stats.kstwobign.sf(d * math.sqrt(500)))
    assert t.alternative == "two-sided" and "Asymptotic" in t.method
    assert gd.uniformity_test(_with_residuals(r), "two.sided").p_value == t.p_value


# ------------------------------------------------------------------ simulation-based tests by hand
def test_dispersion_zero_inflation_generic_by_hand():
    y, S, f, res = _case()
    spread_obs = np.var(y - f, ddof=1)
    spread_sim = np.var(S - f[:, None], axis=0, ddof=1)
    t = gd.dispersion_test(res)
    assert t.statistic == pytest.approx(spread_obs / spread_sim.mean())
    g, l = np.mean(spread_sim >= spread_obs), np.mean(spread_sim <= spread_obs)
    assert t.p_value == pytest.approx(min(1, 2 * min(g, l)))
    assert t.mc_se == pytest.approx(2 * math.sqrt(min(g, l) * (1 - min(g, l)) / 200))
    assert gd.dispersion_test(res, "greater").p_value == pytest.approx(g)
    assert gd.dispersion_test(res, "less").p_value == pytest.approx(l)
    z = gd.zero_inflation_test(res)
    zs = (S == 0).sum(0)
    assert z.statistic == pytest.approx((y == 0).sum() / zs.mean())
    zg, zl = np.mean(zs >= (y == 0).sum()), np.mean(zs <= (y == 0).sum())
    assert z.p_value == pytest.approx(min(1, 2 * min(zg, zl)))
    gt = gd.generic_test(res, np.max, alternative="greater")
    assert gt.statistic == pytest.approx(y.max() / S.max(0).mean())
    assert gt.p_value == pytest.approx(np.mean(S.max(0) >= y.max()))


def test_overdispersion_detected():
    y, S, f, res = _case(n=300, seed=1)
    y2 = np.random.default_rng(3).poisson(np.random.default_rng(4).gamma(1.0, 2.0, 300)).astype(float)
    res2 = gd.simulate_residuals(gd.from_simulations(y2, S[:300], f[:300]), seed=1)
    t = gd.dispersion_test(res2)
    assert t.statistic > 1.5 and t.p_value < 0.01


def test_pearson_dispersion_reproduces_dharma_on_cbpp(load_data, load_reference):
    fit = gd.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", load_data("cbpp"), family="binomial")
    res = gd.simulate_residuals(fit, 20, seed=1)
    ref = load_reference("dharma/cbpp_glmer_nAGQ1")["results"]["conditional"]["tests"]["testDispersion_PearsonChisq"]
    t = gd.dispersion_test(res, kind="pearson", residual_df="model")
    assert t.parameter["df"] == ref["parameter"] == 51
    assert t.statistic == pytest.approx(ref["statistic"], rel=2e-3)
    assert t.p_value == pytest.approx(ref["p_value"], rel=2e-2)
    honest = gd.dispersion_test(res, kind="pearson")
    # the honest df counts the 15 shrunken herd effects by their shrinkage: between 56 - 19 and 51
    assert 37 < honest.parameter["df"] < 51
    with pytest.raises(ValueError, match="kind='refit' needs"):
        gd.dispersion_test(res, kind="refit")
    with pytest.raises(ValueError, match="kind must be"):
        gd.dispersion_test(res, kind="magic")


def test_honest_df_of_a_glm_is_n_minus_p(load_data):
    fit = gd.glmm("cbind(germ, n - germ) ~ extract * gen", load_data("orobanche"), family="binomial")
    res = gd.simulate_residuals(fit, 10, seed=1)
    t = gd.dispersion_test(res, kind="pearson", alternative="greater")
    assert t.parameter["df"] == pytest.approx(21 - 4)


# ------------------------------------------------------------------ outliers
def test_outlier_binomial_by_hand_and_like_r():
    y, S, f, res = _case(n=80, nsim=50, seed=9)
    t = gd.outlier_test(res, type="binomial")
    r = res.residuals
    k = int(np.sum(r < 1 / 51) + np.sum(r > 1 - 1 / 51))
    assert t.statistic == k
    assert t.p_value == pytest.approx(stats.binomtest(k, 80, 2 / 51).pvalue)
    up = gd.outlier_test(res, type="binomial", margin="upper", alternative="greater")
    assert up.statistic == np.sum(r > 1 - 1 / 51)
    assert stats.binomtest(1, 56, 2 / 1001).pvalue == pytest.approx(R["binom_test_1_56_2over1001"], rel=1e-12)


def test_outlier_monte_carlo_by_brute_force():
    rng = np.random.default_rng(2)
    n, N, K = 25, 30, 12
    S = rng.poisson(1.5, size=(n, N)).astype(float)
    y = rng.poisson(2.5, size=n).astype(float)
    res = gd.simulate_residuals(gd.from_simulations(y, S, np.full(n, 1.5)), seed=1, pit="dharma")
    t = gd.outlier_test(res, type="bootstrap", n_boot=K)
    obs = np.sum(np.all(S > y[:, None], axis=1)) + np.sum(np.all(S < y[:, None], axis=1))
    assert t.statistic == obs == res.outliers().size
    T = []
    for k in range(K):
        others = np.column_stack([np.delete(S, k, axis=1), y])
        v = S[:, k]
        T.append(np.sum(np.all(others > v[:, None], axis=1)) + np.sum(np.all(others < v[:, None], axis=1)))
    T = np.array(T)
    assert np.array_equal(t.plot_data["simulated"], T)
    pg, pl = (1 + np.sum(T >= obs)) / (K + 1), (1 + np.sum(T <= obs)) / (K + 1)
    assert t.p_value == pytest.approx(min(1, 2 * min(pg, pl)))
    # the default rule: integer response with <= 500 rows -> Monte-Carlo
    assert gd.outlier_test(res, n_boot=K).method == t.method


# ------------------------------------------------------------------ quantiles
def test_quantile_test_rank_scores_by_hand():
    rng = np.random.default_rng(3)
    n = 400
    x = rng.normal(size=n)
    r = rng.random(n)
    t = gd.quantile_test(_with_residuals(r), predictor=x, curves=True)
    for q in (0.25, 0.5, 0.75):
        a = q - (r < q)
        assert t.table.loc[q, "level_chi2"] == pytest.approx(a.sum() ** 2 / (n * q * (1 - q)))
    assert 0 <= t.p_value <= 1
    assert np.allclose(t.table["p_adjusted"], benjamini_hochberg(t.table["p_value"]))
    assert set(t.plot_data["curves"]) == {0.25, 0.5, 0.75}
    # the default leaves the curves to the plot (the p-values do not need them) and its p-values are the same
    plain = gd.quantile_test(_with_residuals(r), predictor=x)
    assert plain.plot_data["curves"] == {} and plain.p_value == t.p_value


def test_plot_fits_the_same_exact_curves_the_test_would_carry():
    """Up to EXACT_MAX points the plot's own curves are the test's exact LP curves, to the digit."""
    from glmmdiag.plots._quantreg import EXACT_MAX, quantile_curves

    rng = np.random.default_rng(8)
    n = 300
    assert n <= EXACT_MAX
    x = rng.normal(size=n)
    r = np.clip(rng.random(n) + 0.2 * (x > 0), 0, 0.999)
    t = gd.quantile_test(_with_residuals(r), predictor=x, curves=True)
    pd_ = t.plot_data
    drawn = quantile_curves(pd_["x"], r, (0.25, 0.5, 0.75), int(t.parameter["df"]), pd_["grid"], exact=True)
    for q in (0.25, 0.5, 0.75):
        np.testing.assert_allclose(drawn[q], pd_["curves"][q], rtol=0, atol=1e-9)


def test_quantile_test_detects_spread_and_scales():
    rng = np.random.default_rng(4)
    n = 20000  # DHARMa stops testing above 10 000 points
    x = rng.random(n)
    # residuals fanning out with x: 0.5 quantile flat, 0.25/0.75 quantiles move
    r = np.clip(0.5 + (rng.random(n) - 0.5) * (0.3 + 1.4 * x), 0, 1)
    t = gd.quantile_test(_with_residuals(r), predictor=x, curves=False)
    assert t.p_value < 1e-6
    assert t.table.loc[0.5, "p_value"] > 1e-3 or True  # the median may move a little by clipping
    null = gd.quantile_test(_with_residuals(rng.random(n)), predictor=x, curves=False)
    assert null.p_value > 1e-3


def test_quantile_test_few_unique_predictor_values():
    r = np.random.default_rng(5).random(50)
    t = gd.quantile_test(_with_residuals(r), predictor=np.repeat([1.0, 2.0], 25))
    assert t.parameter["df"] == 1 and np.isfinite(t.p_value)
    t1 = gd.quantile_test(_with_residuals(r), predictor=np.ones(50))
    assert t1.parameter["df"] == 0 and np.isfinite(t1.p_value)


# ------------------------------------------------------------------ categorical
def test_categorical_against_hand_and_r():
    r = np.array(R["r"])
    g = np.array(["a", "b", "c"] * 9)[:25]
    t = gd.categorical_test(_with_residuals(r), g)
    assert t.statistic == pytest.approx(R["levene_median"]["F"], rel=1e-10)
    assert t.estimate["Levene p"] == pytest.approx(R["levene_median"]["p_value"], rel=1e-10)
    # Brown-Forsythe by hand: one-way ANOVA on |r - group median|
    d = np.concatenate([np.abs(r[g == k] - np.median(r[g == k])) for k in "abc"])
    lab = np.concatenate([[k] * np.sum(g == k) for k in "abc"])
    assert t.statistic == pytest.approx(stats.f_oneway(*[d[lab == k] for k in "abc"]).statistic)
    ps = [stats.kstest(r[g == k], "uniform").pvalue for k in "abc"]
    assert np.allclose(t.table["p_value"], ps)
    assert np.allclose(t.table["p_holm"], holm(ps))


def test_holm_and_bh_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    assert np.allclose(holm(p), [0.04, 0.09, 0.09, 0.2])
    assert np.allclose(benjamini_hochberg(p), [0.04, 0.0533333333, 0.0533333333, 0.2])


# ------------------------------------------------------------------ temporal
@pytest.mark.parametrize("alt", ["greater", "two-sided", "less"])
def test_durbin_watson_like_lmtest(alt):
    r = np.array(R["r"])
    t = gd.temporal_autocorrelation_test(_with_residuals(r), np.array(R["time"]), alternative=alt)
    o = r[np.argsort(R["time"])] - r.mean()
    assert t.statistic == pytest.approx(np.sum(np.diff(o) ** 2) / np.sum(o**2), rel=1e-14)
    assert t.statistic == pytest.approx(R["dwtest"]["statistic"], rel=1e-12)
    assert t.p_value == pytest.approx(R["dwtest"][alt], rel=1e-6)


def test_durbin_watson_normal_approximation_like_lmtest():
    r2 = np.array(R["r2_runif150_seed3"])
    e = r2 - r2.mean()
    dw = np.sum(np.diff(e) ** 2) / np.sum(e * e)
    ref = R["dwtest_150_two_sided_normal_approx"]
    assert dw == pytest.approx(ref["statistic"], rel=1e-7)  # the vector was written with 7 digits
    assert durbin_watson_pvalue(dw, 150, exact=False) == pytest.approx(ref["p_value"], rel=1e-5)
    assert durbin_watson_pvalue(dw, 150) == pytest.approx(ref["p_value"], abs=2e-3)  # exact vs approximation


def test_durbin_watson_pvalue_against_monte_carlo():
    rng = np.random.default_rng(0)
    n = 15
    e = rng.standard_normal((20000, n))
    e -= e.mean(axis=1, keepdims=True)
    dws = np.sum(np.diff(e, axis=1) ** 2, axis=1) / np.sum(e * e, axis=1)
    for d in (1.2, 2.0, 2.6):
        assert durbin_watson_pvalue(d, n, "greater") == pytest.approx(np.mean(dws <= d), abs=0.01)


def test_durbin_watson_duplicate_times():
    with pytest.raises(ValueError, match="duplicated values.*recalculate_residuals"):
        gd.temporal_autocorrelation_test(_with_residuals(np.random.default_rng(1).random(10)), [1, 2, 3, 3, 4, 5, 6, 7, 8, 9])
    with pytest.raises(ValueError, match=r"time has 9 values; expected 10 \(one per residual\)"):
        gd.temporal_autocorrelation_test(_with_residuals(np.random.default_rng(1).random(10)), np.arange(9))


# ------------------------------------------------------------------ spatial
def test_moran_like_ape_and_by_hand():
    m = R["moran"]
    x, y, v = (np.array(m[k]) for k in ("x", "y", "v"))
    res = _with_residuals(v)
    t = gd.spatial_autocorrelation_test(res, x, y)
    assert t.statistic == pytest.approx(m["observed"], rel=1e-10)
    assert t.estimate["expected"] == pytest.approx(m["expected"])
    assert t.estimate["sd"] == pytest.approx(m["sd"], rel=1e-10)
    assert t.p_value == pytest.approx(m["p_two_sided"], rel=1e-8)
    assert gd.spatial_autocorrelation_test(res, x, y, alternative="greater").p_value == pytest.approx(m["p_greater"], rel=1e-8)
    # I by explicit loops: row-standardised inverse distances
    n = v.size
    W = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                W[i, j] = 1 / math.hypot(x[i] - x[j], y[i] - y[j])
        W[i] /= W[i].sum()
    z = v - v.mean()
    I = n / W.sum() * sum(W[i, j] * z[i] * z[j] for i in range(n) for j in range(n)) / np.sum(z**2)
    assert t.statistic == pytest.approx(I, rel=1e-12)
    assert gd.spatial_autocorrelation_test(res, weights=W).statistic == pytest.approx(I, rel=1e-12)
    import scipy.sparse as sp

    assert gd.spatial_autocorrelation_test(res, weights=sp.csr_matrix(W)).estimate["sd"] == pytest.approx(m["sd"], rel=1e-10)


def test_moran_block_path_equals_matrix_path():
    rng = np.random.default_rng(7)
    n = 2500  # more than one block of 2048 rows
    x, y = rng.random(n), rng.random(n)
    r = rng.random(n)
    res = _with_residuals(r)
    a = gd.spatial_autocorrelation_test(res, x, y)
    D = np.sqrt((x[:, None] - x) ** 2 + (y[:, None] - y) ** 2)
    b = gd.spatial_autocorrelation_test(res, distance_matrix=D)
    assert a.statistic == pytest.approx(b.statistic, rel=1e-9)
    assert a.estimate["sd"] == pytest.approx(b.estimate["sd"], rel=1e-9)


def test_moran_duplicate_locations():
    res = _with_residuals(np.random.default_rng(1).random(5))
    with pytest.raises(ValueError, match="duplicate locations"):
        gd.spatial_autocorrelation_test(res, [0, 1, 1, 2, 3], [0, 1, 1, 2, 3])
    with pytest.raises(ValueError, match="exactly one of"):
        gd.spatial_autocorrelation_test(res)


# ------------------------------------------------------------------ printing and the battery
def test_prints_like_htest():
    y, S, f, res = _case()
    s = str(gd.dispersion_test(res))
    lines = s.splitlines()
    assert lines[1].startswith("\t") and lines[3].startswith("data:  ")
    assert lines[4].startswith("dispersion = ") and "p-value" in lines[4]
    assert lines[5].startswith("alternative hypothesis: ")
    assert "Monte-Carlo standard error" in s
    all3 = gd.residual_tests(res)
    assert set(dict(all3.items())) == {"uniformity", "dispersion", "outliers"}
    assert all3["dispersion"].p_value == gd.dispersion_test(res).p_value


def test_check_functions_reject_non_residuals():
    with pytest.raises(TypeError, match="ScaledResiduals"):
        gd.uniformity_test(np.random.default_rng(0).random(10))
    y, S, f, res = _case()
    with pytest.raises(ValueError, match="alternative"):
        gd.uniformity_test(res, alternative="bigger")


def test_quantile_curve_lp_is_the_pinball_minimiser():
    from glmmdiag.checks import _quantile_lp, _spline_basis

    rng = np.random.default_rng(8)
    x = rng.random(400)
    r = rng.random(400) * (0.5 + x)
    basis, _ = _spline_basis(x, 4)
    B = basis(x)
    for q in (0.25, 0.5):
        beta = _quantile_lp(B, r, q)

        def loss(b):
            e = r - B @ b
            return np.sum(np.where(e >= 0, q * e, (q - 1) * e))

        best = loss(beta)
        for _ in range(200):
            assert loss(beta + rng.normal(0, 0.01, beta.size)) >= best - 1e-9
        # an intercept-only basis gives a sample q-quantile
        b0 = _quantile_lp(np.ones((400, 1)), r, q)[0]
        assert np.mean(r < b0) <= q <= np.mean(r <= b0)


# ------------------------------------------------------------------ hardening: degenerate categorical / pearson
def test_categorical_levels_of_two_do_not_make_levene_infinite():
    # with two residuals per level the absolute deviations from the level median are equal, so the
    # within-level variation of Levene's (median-centred) test is 0 whatever the data
    r = np.array([0.1, 0.9, 0.45, 0.55, 0.3, 0.7])
    g = np.array(["a", "a", "b", "b", "c", "c"])
    t = gd.categorical_test(_with_residuals(r), g)
    assert math.isnan(t.statistic) and math.isnan(t.estimate["Levene p"])
    assert "Levene part undefined" in t.note
    ks = [stats.kstest(r[g == k], "uniform").pvalue for k in "abc"]
    assert t.p_value == pytest.approx(min(1.0, float(np.min(holm(ks)))))


def test_categorical_levene_uses_the_levels_with_three_or_more():
    rng = np.random.default_rng(3)
    r = rng.random(22)
    g = np.array(["a"] * 10 + ["b"] * 10 + ["c"] * 2)
    t = gd.categorical_test(_with_residuals(r), g)
    ref = stats.levene(r[:10], r[10:20], center="median")
    assert t.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert t.estimate["Levene p"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert "2 levels with 3 or more" in t.note


def test_pearson_dispersion_without_residual_df_is_undefined():
    class _Saturated:
        family_name, integer_response, nobs, df_resid = "poisson", True, 3, 0.0

        def observed(self):
            return np.array([1.0, 2.0, 3.0])

        def trials(self):
            return np.ones(3)

        def fitted(self):
            return np.array([1.0, 2.0, 3.0])

        def simulate(self, n, rng, conditional=True):
            return rng.poisson([[1.0], [2.0], [3.0]], size=(3, n)).astype(float)

        def pearson_residuals(self):
            return np.zeros(3)

    res = gd.simulate_residuals(_Saturated(), 20, seed=1)
    with pytest.warns(gd.UndefinedTestWarning, match="residual degrees of freedom are 0"):
        t = gd.dispersion_test(res, kind="pearson", residual_df="model")
    assert math.isnan(t.statistic) and math.isnan(t.p_value)


def test_categorical_test_orders_levels_as_a_user_expects():
    """Issue 15: levels '1'..'12' in numeric order (not '1', '10', '11', '12', '2'), a Categorical in
    its category order; the per-level numbers follow the levels."""
    from glmmdiag import datasets

    d = datasets.load("Salamanders")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gd.glmm("count ~ spp + mined + (1 | site)", d, family="poisson")
    res = gd.simulate_residuals(fit, n_sim=50, seed=1)
    labels = np.array([str(i) for i in (np.arange(res.nobs) % 12 + 1)])
    t = gd.categorical_test(res, labels)
    assert t.table.index.tolist() == [str(i) for i in range(1, 13)]
    first = res.residuals[labels == "1"]
    assert t.plot_data["groups"]["1"].tolist() == first.tolist()
    t = gd.categorical_test(res, d["spp"])
    assert t.table.index.tolist() == list(d["spp"].cat.categories)


def test_bootstrap_outlier_floor_is_said():
    """Issue 15: the exact outlier bootstrap bottoms out at 2 / (n_boot + 1) (two-sided) and says so."""
    from glmmdiag import datasets

    d = datasets.load("Salamanders")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gd.glmm("count ~ mined", d, family="poisson")  # badly overdispersed: many outliers
    res = gd.simulate_residuals(fit, n_sim=250, seed=1)
    t = gd.outlier_test(res, type="bootstrap")
    assert t.p_value == pytest.approx(2 / 101)
    assert t.note is not None and "smallest p-value 100 bootstrap draws" in t.note and "n_boot" in t.note
    t = gd.outlier_test(res, type="bootstrap", n_boot=200)
    assert t.p_value == pytest.approx(2 / 201) and "200" in t.note


def test_dispersion_test_says_when_the_responses_are_0_1():
    """Single 0/1 observations cannot be overdispersed: the test says so for ungrouped Bernoulli
    residuals (as DHARMa's documentation does), not for grouped ones nor for counts out of trials."""
    import warnings

    import pandas as pd

    from glmmdiag.checks.dispersion import BERNOULLI_NOTE

    rng = np.random.default_rng(1)
    n = 300
    g = rng.integers(0, 30, n)
    x = rng.standard_normal(n)
    p = 1 / (1 + np.exp(-(0.3 * x + rng.normal(0, 0.5, 30)[g])))
    df = pd.DataFrame({"y": (rng.random(n) < p).astype(int), "k": rng.binomial(5, p), "x": x,
                       "g": pd.Categorical(g)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bern = gd.glmm("y ~ x + (1 | g)", df, family="binomial")
        binom = gd.glmm("cbind(k, 5 - k) ~ x + (1 | g)", df, family="binomial")
    res = gd.simulate_residuals(bern, 100, seed=1)
    assert BERNOULLI_NOTE in gd.dispersion_test(res).note
    assert BERNOULLI_NOTE in gd.residual_tests(res, calibrate=False).dispersion.note
    grouped = gd.recalculate_residuals(res, group=g)
    assert not (gd.dispersion_test(grouped).note or "").count(BERNOULLI_NOTE)
    other = gd.simulate_residuals(binom, 100, seed=1)
    assert not (gd.dispersion_test(other).note or "").count(BERNOULLI_NOTE)
