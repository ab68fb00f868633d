"""Tests on simulated scaled residuals. Each returns a frozen ``TestResult`` (results.py) that prints
like R's htest and carries what its plot needs; nothing here draws.

Simulation-based p-values (``dispersion_test``, ``zero_inflation_test``, ``generic_test``,
the Monte-Carlo ``outlier_test``) carry ``mc_se``, their Monte-Carlo standard error: the binomial
SE sqrt(p (1 - p) / n_sim) of the tail proportion, doubled for two-sided p-values.

Alternatives are "two-sided" (also accepted: "two.sided"), "greater" and "less".

Degenerate data. A test whose statistic is 0/0 for the data at hand (the dispersion ratio when the
observed and every simulated response have zero spread, e.g. all zeros; a Durbin-Watson or Moran
statistic of constant residuals; a spread test with fewer than two observations) is *undefined*: it
returns NaN for the statistic and the p-value, says why in ``note``, and issues an
``UndefinedTestWarning``; it never reports p = 0 or a finite statistic from a 0/0. Ratios x/0 with
x > 0 (the observed data vary, no simulation does) are infinite and their p-value is the usual
empirical one. Observed-vs-simulated counts that are 0 everywhere (no zeros observed or simulated)
keep their p-value (the counts agree: p = 1) with a NaN ratio and a note.
"""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
from scipy import integrate, interpolate, stats

from glmmdiag._rng import child_generator
from glmmdiag.errors import FitError, GlmmdiagError, UndefinedTestWarning
from glmmdiag.residuals import replay
from glmmdiag.results import ResidualTests, ScaledResiduals, TestResult
from glmmdiag.simulate import Reductions

__all__ = [
    "uniformity_test",
    "dispersion_test",
    "outlier_test",
    "zero_inflation_test",
    "generic_test",
    "quantile_test",
    "categorical_test",
    "temporal_autocorrelation_test",
    "spatial_autocorrelation_test",
    "residual_tests",
    "calibrated_tests",
    "randomised_rank_pvalue",
    "durbin_watson_pvalue",
    "benjamini_hochberg",
    "holm",
]


# ---------------------------------------------------------------------------------- helpers
def _alt(alternative: str) -> str:
    a = str(alternative).lower().replace(".", "-").replace("_", "-")
    if a in ("two-sided", "twosided", "both"):
        return "two-sided"
    if a in ("greater", "less"):
        return a
    raise GlmmdiagError(f"alternative must be 'two-sided', 'greater' or 'less'; got {alternative!r}")


def _check_res(res) -> ScaledResiduals:
    if not isinstance(res, ScaledResiduals):
        raise TypeError(
            f"expected the ScaledResiduals returned by simulate_residuals(...); got {type(res).__name__}"
        )
    return res


def _generic_p(obs: float, sims: np.ndarray, alternative: str) -> tuple[float, float]:
    """DHARMa's testGeneric p-value (no +1 correction) and its Monte-Carlo SE (NaN, NaN when the
    observed value or every simulated one is NaN)."""
    sims = np.asarray(sims, float)
    sims = sims[~np.isnan(sims)]
    n = sims.size
    if n == 0 or math.isnan(obs):
        return math.nan, math.nan
    p_gr = float(np.mean(sims >= obs))
    p_le = float(np.mean(sims <= obs))
    if alternative == "greater":
        p = p_gr
        se = math.sqrt(p * (1 - p) / n)
    elif alternative == "less":
        p = p_le
        se = math.sqrt(p * (1 - p) / n)
    else:
        m = min(p_gr, p_le)
        p = min(1.0, 2 * m)
        se = min(1.0, 2 * math.sqrt(m * (1 - m) / n))
    # a p-value of exactly 0 or 1 has binomial SE 0: report the resolution 1/n instead
    return p, max(se, 1.0 / n) if p in (0.0, 1.0) else se


def _ratio(obs, sims):
    m = float(np.nanmean(sims))
    if m == 0:
        return math.inf if obs > 0 else math.nan
    return float(obs / m)


def _ratio_note(obs, sims) -> str | None:
    """Why the ratio observed / mean simulated is not an ordinary number, or None."""
    finite = np.asarray(sims, float)
    finite = finite[~np.isnan(finite)]
    if finite.size == 0 or math.isnan(obs) or np.any(finite != 0):
        return None
    if obs == 0:
        return ("ratio undefined (0/0): the observed and every simulated value are 0; the p-value compares the "
                "values themselves (they agree)")
    return "ratio infinite: every simulated value is 0 and the observed one is not"


def _undefined(res, method: str, statistic_name: str, alt: str, why: str, **extra) -> "TestResult":
    """A test that cannot be computed on these data: NaN statistic and p-value, a note and a warning."""
    warnings.warn(f"{method}: undefined for these data: {why}", UndefinedTestWarning, stacklevel=3)
    return TestResult(
        method=method,
        statistic=math.nan,
        statistic_name=statistic_name,
        p_value=math.nan,
        alternative=alt,
        data_name=_data_name(res),
        simulate_re=res.simulate_re,
        note=f"undefined: {why}",
        **extra,
    )


def _observed_vs_simulated(res, obs, sims, alt, method, statistic_name, n_sim, note=None) -> "TestResult":
    """DHARMa's testGeneric result: ratio observed / mean simulated, empirical p-value and its MC SE."""
    p, se = _generic_p(obs, sims, alt)
    notes = [t for t in (_ratio_note(obs, sims), note) if t]
    return TestResult(
        method=method,
        statistic=_ratio(obs, sims),
        statistic_name=statistic_name,
        p_value=p,
        alternative=alt,
        data_name=_data_name(res),
        mc_se=se,
        n_sim=n_sim,
        simulate_re=res.simulate_re,
        note="\n".join(notes) if notes else None,
        plot_data={"observed": obs, "simulated": np.asarray(sims)},
    )


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (as R's p.adjust(method = "BH"))."""
    p = np.asarray(p, float)
    n = p.size
    if n == 0:
        return p
    order = np.argsort(p)[::-1]
    ranks = np.arange(n, 0, -1)
    adj = np.minimum.accumulate(p[order] * n / ranks)
    out = np.empty(n)
    out[order] = np.minimum(adj, 1.0)
    return out


def holm(p) -> np.ndarray:
    """Holm adjusted p-values (as R's p.adjust(method = "holm"))."""
    p = np.asarray(p, float)
    n = p.size
    if n == 0:
        return p
    order = np.argsort(p)
    adj = np.maximum.accumulate(p[order] * (n - np.arange(n)))
    out = np.empty(n)
    out[order] = np.minimum(adj, 1.0)
    return out


def _data_name(res, extra="") -> str:
    return "simulated scaled residuals" + extra


# ---------------------------------------------------------------------------------- uniformity
def _all_tied_note(res) -> str | None:
    """A note when every observation ties with all of its simulations (e.g. all zeros observed and
    simulated): each residual is then a pure tie-breaking draw, uniform by construction, so a
    residual test cannot detect anything."""
    less, leq = np.asarray(res.counts_less), np.asarray(res.counts_leq)
    if res.method == "PIT" and less.size and np.all(less == 0) and np.all(leq == res.n_sim):
        return ("Note: every observation equals all of its simulations (constant data): the residuals are pure "
                "tie-breaking noise and carry no information about the model")
    return None


def uniformity_test(res: ScaledResiduals, alternative: str = "two-sided") -> TestResult:
    """One-sample Kolmogorov-Smirnov test of the scaled residuals against Uniform(0, 1).

    "greater": the residuals' ECDF lies above the uniform CDF somewhere (R's and scipy's
    convention; statistic D+), "less": below (D-).

    Examples
    --------
    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> rust = datasets.load("rust")
    >>> fit = glmmdiag.glmm("severity ~ fungicide + (1 | block)", rust, family="beta")
    >>> res = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1)
    >>> t = glmmdiag.uniformity_test(res)
    >>> print(f"D = {t.statistic:.3f}, p = {t.p_value:.2f}")
    D = 0.072, p = 0.95
    """
    res = _check_res(res)
    alt = _alt(alternative)
    r = np.asarray(res.residuals, float)
    kt = stats.kstest(r, "uniform", alternative=alt if alt != "two-sided" else "two-sided")
    exact = r.size < 100
    method = ("Exact" if exact else "Asymptotic") + " one-sample Kolmogorov-Smirnov test"
    if not exact:
        # R's asymptotic p-value (Kolmogorov distribution / Smirnov's limit) for n >= 100
        n = r.size
        if alt == "two-sided":
            p = float(stats.kstwobign.sf(kt.statistic * math.sqrt(n)))
        else:
            p = float(math.exp(-2.0 * n * kt.statistic**2))
    else:
        p = float(kt.pvalue)
    rs = np.sort(r)
    return TestResult(
        method=method,
        note=_all_tied_note(res),
        statistic=float(kt.statistic),
        statistic_name="D" if alt == "two-sided" else ("D^+" if alt == "greater" else "D^-"),
        p_value=min(1.0, p),
        alternative=alt,
        data_name=_data_name(res),
        simulate_re=res.simulate_re,
        plot_data={"sorted_residuals": rs, "expected": (np.arange(1, rs.size + 1) - 0.5) / rs.size},
    )


# ---------------------------------------------------------------------------------- dispersion
def _spread_test(res, obs, sims, alt, what, method):
    """The observed spread against the simulated ones, or an undefined result when both are 0."""
    n_sim = int(np.isfinite(sims).sum())
    why = _spread_undefined(res, obs, sims, what)
    if why:
        return _undefined(res, method, "dispersion", alt, why, n_sim=n_sim)
    return _observed_vs_simulated(res, obs, sims, alt, method, "dispersion", n_sim,
                                  note=_no_simulated_spread(obs, sims))


def dispersion_test(
    res: ScaledResiduals,
    alternative: str = "two-sided",
    kind: str | None = None,
    *,
    df: str = "honest",
    centre: str = "fitted",
) -> TestResult:
    """Over/underdispersion.

    kind="simulation" (default unless the residuals were made with refit=True)
        DHARMa's test: spread(y) = var(y - mu_pop), mu_pop the population-level fitted value;
        statistic = spread(observed) / mean(spread(simulation_j)); p-value as ``generic_test``.
        > 1 overdispersion, < 1 underdispersion. ``centre="expected"`` centres binomial counts on
        trials * mu_pop instead of DHARMa's mu_pop (the probability).
    kind="refit" (default for refit residuals)
        Pearson chi-square of the observed model against those of the models refitted to each
        simulation (a parametric bootstrap).
    kind="pearson"
        Pearson chi-square / residual df against chi-square(df). ``df="honest"`` uses
        n - tr(2H - H^2) with H the hat matrix of the penalised fit (random effects counted by
        their shrinkage: E[chi2] = df for a linear Gaussian smoother); ``df="model"`` uses
        n - #parameters as R's df.residual and DHARMa, which is biased towards underdispersion
        for mixed models.

    Examples
    --------
    A Poisson GLMM of overdispersed counts:

    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> sal = datasets.load("Salamanders")
    >>> fit = glmmdiag.glmm("count ~ spp + mined + (1 | site)", sal, family="poisson")
    >>> res = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1)
    >>> t = glmmdiag.dispersion_test(res)
    >>> print(f"dispersion {t.statistic:.2f}, p = {t.p_value:.3f}")
    dispersion 3.05, p = 0.000

    Pearson's chi-square with the honest residual df (random effects counted by their shrinkage)
    and with R's ``df.residual``:

    >>> honest = glmmdiag.dispersion_test(res, kind="pearson", alternative="greater")
    >>> model = glmmdiag.dispersion_test(res, kind="pearson", df="model", alternative="greater")
    >>> print(f"{honest.statistic:.2f} on {honest.parameter['df']:.1f} df")
    2.39 on 616.3 df
    >>> print(f"{model.statistic:.2f} on {model.parameter['df']:.0f} df")
    2.32 on 635 df
    """
    res = _check_res(res)
    alt = _alt(alternative)
    if kind is None:
        kind = "refit" if res.method == "refit" else "simulation"
    kind = {"dharma": "simulation", "pearsonchisq": "pearson"}.get(kind.lower(), kind.lower())
    if kind == "simulation":
        key = "spread" if centre == "fitted" else "spread_expected"
        if centre not in ("fitted", "expected"):
            raise GlmmdiagError("centre must be 'fitted' or 'expected'")
        if key not in res.sim_stats:
            key = "spread"
        obs, sims = res.obs_stats[key], res.sim_stats[key]
        return _spread_test(res, obs, sims, alt, "spread around the fitted values",
                            "Simulation-based dispersion test: var(y - fitted) observed vs simulated")
    if kind == "refit":
        if res.method != "refit" or res.refit is None:
            raise GlmmdiagError("kind='refit' needs residuals made with simulate_residuals(..., refit=True)")
        obs, sims = res.refit["pearson_obs"], np.asarray(res.refit["pearson_sims"])
        return _spread_test(res, obs, sims, alt, "Pearson chi-square",
                            "Refit-based (parametric bootstrap) dispersion test: Pearson chi-square observed vs refitted")
    if kind == "pearson":
        m = res.model
        if m is None or not hasattr(m, "pearson_residuals"):
            raise GlmmdiagError("kind='pearson' needs a model with Pearson residuals (a fitted model, not simulations)")
        if res.group is not None:
            raise GlmmdiagError("kind='pearson' is not available for grouped residuals")
        pr = np.asarray(m.pearson_residuals(), float)
        chi2 = float(np.sum(pr * pr))
        n = pr.size
        method = "Parametric dispersion test via Pearson chi-square"
        if df == "honest":
            edf = m.edf() if hasattr(m, "edf") else None
            if edf is None:
                warnings.warn("effective df unavailable for this model; using the model's residual df", UserWarning, stacklevel=2)
                rdf = float(m.df_resid)
                df_label = "model"
            else:
                rdf = float(n - (2 * edf[0] - edf[1]))
                df_label = "honest"
        elif df == "model":
            rdf = float(m.df_resid)
            df_label = "model"
        else:
            raise GlmmdiagError("df must be 'honest' or 'model'")
        if not rdf > 0:
            return _undefined(res, f"{method} ({df_label} residual df)", "dispersion", alt,
                              f"the residual degrees of freedom are {rdf:g} (n = {n}): nothing is left to "
                              f"estimate the dispersion", parameter={"df": rdf})
        lo, hi = stats.chi2.cdf(chi2, rdf), stats.chi2.sf(chi2, rdf)
        p = {"greater": hi, "less": lo}.get(alt, min(1.0, 2 * min(lo, hi)))
        return TestResult(
            method=f"{method} ({df_label} residual df)",
            statistic=chi2 / rdf,
            statistic_name="dispersion",
            p_value=float(p),
            alternative=alt,
            data_name=_data_name(res),
            parameter={"df": rdf},
            estimate={"Pearson chi-square": chi2},
            simulate_re=res.simulate_re,
            note=None if alt == "greater" else "Note: the Pearson test is reliable for overdispersion (alternative='greater')",
            plot_data={"pearson_residuals": pr},
        )
    raise GlmmdiagError(f"kind must be 'simulation', 'refit' or 'pearson'; got {kind!r}")


def _spread_undefined(res, obs: float, sims, what: str) -> str | None:
    """Why the ratio of the observed to the mean simulated ``what`` is undefined (0/0), or None."""
    sims = np.asarray(sims, float)
    if math.isnan(obs) or not np.any(~np.isnan(sims)):
        return f"the {what} needs at least 2 observations; there are {res.nobs}"
    finite = sims[~np.isnan(sims)]
    if obs != 0 or np.any(finite != 0):
        return None
    y = np.asarray(res.observed, float)
    if what.startswith("spread") and y.size and np.all(y == y[0]):
        return (f"the observed and simulated responses are all constant ({_signif_plain(y[0])}): the observed "
                f"and every simulated {what} is 0, so the dispersion ratio is 0/0")
    return f"the observed and every simulated {what} is 0, so the dispersion ratio is 0/0"


def _no_simulated_spread(obs: float, sims) -> str | None:
    finite = np.asarray(sims, float)
    finite = finite[~np.isnan(finite)]
    if obs > 0 and finite.size and np.all(finite == 0):
        return "no simulation varies: the model cannot produce the observed variation"
    return None


def _signif_plain(v: float) -> str:
    return f"{float(v):.6g}"


# ---------------------------------------------------------------------------------- outliers
def outlier_test(
    res: ScaledResiduals,
    alternative: str = "two-sided",
    margin: str = "both",
    type: str = "default",
    n_boot: int = 100,
    n_jobs=1,
) -> TestResult:
    """Too many (or too few) observations outside the simulation envelope.

    type="binomial": the number of residuals below 1/(n_sim + 1) and/or above 1 - 1/(n_sim + 1)
        against Binomial(n, p0), p0 = 1/(n_sim + 1) per margin (exact for continuous responses,
        approximate for integer ones), as DHARMa.
    type="bootstrap": a Monte-Carlo test. An outlier is a residual of exactly 0 or 1 (outside
        every simulation). The first ``n_boot`` simulations are used in turn as pseudo-observed
        data, each judged against the other simulations plus the observed data, so under the
        model they are exchangeable with the observed data and the p-value
        (1 + #{T_k >= T_obs}) / (n_boot + 1) is exact (DHARMa resamples instead). Needs the
        simulations: replayed from their seeds when not kept.
    type="default": bootstrap for integer responses with at most 500 observations, binomial
        otherwise (DHARMa's rule).

    Examples
    --------
    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> sal = datasets.load("Salamanders")
    >>> fit = glmmdiag.glmm("count ~ spp + mined + (1 | site)", sal, family="poisson")
    >>> res = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1)
    >>> t = glmmdiag.outlier_test(res)   # 644 rows: the binomial test (DHARMa's default rule)
    >>> print(f"{t.statistic:.0f} outliers of {res.nobs}, p = {t.p_value:.2g}")
    31 outliers of 644, p = 5.3e-15
    >>> small = glmmdiag.outlier_test(res, type="bootstrap", n_boot=99)   # the exact Monte-Carlo test
    >>> print(f"p = {small.p_value:.2f}")
    p = 0.02
    """
    res = _check_res(res)
    alt = _alt(alternative)
    if margin not in ("both", "upper", "lower"):
        raise GlmmdiagError("margin must be 'both', 'upper' or 'lower'")
    if type not in ("default", "binomial", "bootstrap"):
        raise GlmmdiagError("type must be 'default', 'binomial' or 'bootstrap'")
    if type == "default":
        type = "bootstrap" if (res.integer_response and res.nobs <= 500 and res.method != "refit") else "binomial"
    n, N = res.nobs, res.n_sim
    r = res.residuals
    if type == "binomial":
        t = 1.0 / (N + 1)
        lo, hi = int(np.sum(r < t)), int(np.sum(r > 1 - t))
        k = {"both": lo + hi, "upper": hi, "lower": lo}[margin]
        p0 = t * (2 if margin == "both" else 1)
        bt = stats.binomtest(k, n, p0, alternative=alt)
        return TestResult(
            method="Outlier test: exact binomial test with approximate expectations",
            statistic=float(k),
            statistic_name=f"outliers at {margin} margin(s)",
            p_value=float(bt.pvalue),
            alternative=alt,
            data_name=_data_name(res),
            parameter={"observations": float(n)},
            estimate={f"frequency of outliers (expected: {p0:.6g})": k / n},
            simulate_re=res.simulate_re,
            note=(
                "Note: for integer responses the binomial expectation is approximate; type='bootstrap' is exact"
                if res.integer_response
                else None
            ),
            plot_data={"lower": np.flatnonzero(r < t), "upper": np.flatnonzero(r > 1 - t), "expected_frequency": p0},
        )
    # Monte-Carlo test with exchangeable pseudo-observations
    if res.method == "refit":
        raise GlmmdiagError("the bootstrap outlier test needs simulated responses; use type='binomial' for refit residuals")
    K = int(min(n_boot, N))
    if K < 1:
        raise GlmmdiagError("n_boot must be >= 1")
    out = replay(res, Reductions(envelope=True, keep_first=K), n_jobs=n_jobs)
    min1, min2, max1, max2 = out.envelope
    y = np.asarray(res.observed, float)
    obs_lo = int(np.sum(y < min1))
    obs_hi = int(np.sum(y > max1))
    V = out.kept[:, :K]
    min_ex = np.minimum(np.where(V == min1[:, None], min2[:, None], min1[:, None]), y[:, None])
    max_ex = np.maximum(np.where(V == max1[:, None], max2[:, None], max1[:, None]), y[:, None])
    T_lo = np.sum(V < min_ex, axis=0)
    T_hi = np.sum(V > max_ex, axis=0)
    T = {"both": T_lo + T_hi, "upper": T_hi, "lower": T_lo}[margin].astype(float)
    t_obs = float({"both": obs_lo + obs_hi, "upper": obs_hi, "lower": obs_lo}[margin])
    p_gr = (1 + np.sum(T >= t_obs)) / (K + 1)
    p_le = (1 + np.sum(T <= t_obs)) / (K + 1)
    p = {"greater": p_gr, "less": p_le}.get(alt, min(1.0, 2 * min(p_gr, p_le)))
    pm = min(p_gr, p_le) if alt == "two-sided" else p
    se = math.sqrt(max(pm * (1 - pm), 0.0) / K) * (2 if alt == "two-sided" else 1)
    floor = (2.0 if alt == "two-sided" else 1.0) / (K + 1)
    note = None
    if p <= floor + 1e-12:  # no pseudo-observation was as extreme: the smallest p-value K draws can give
        note = (f"Note: p = {p:.3g} is the smallest p-value {K} bootstrap draws can give (none was as extreme "
                f"as the data); the evidence may be stronger: increase n_boot (and n_sim) to resolve it")
    return TestResult(
        method="Outlier test: Monte-Carlo (simulations as exchangeable pseudo-observations)",
        statistic=t_obs,
        statistic_name=f"outliers at {margin} margin(s)",
        p_value=float(min(1.0, p)),
        alternative=alt,
        data_name=_data_name(res),
        parameter={"observations": float(n)},
        estimate={f"outlier frequency (expected: {np.mean(T) / n:.6g})": t_obs / n},
        mc_se=max(se, 1.0 / (K + 1)),
        n_sim=K,
        simulate_re=res.simulate_re,
        note=note,
        plot_data={"simulated": T, "observed": t_obs, "lower": np.flatnonzero(y < min1), "upper": np.flatnonzero(y > max1)},
    )


# ---------------------------------------------------------------------------------- zero inflation, generic
def zero_inflation_test(res: ScaledResiduals, alternative: str = "two-sided") -> TestResult:
    """Observed number of zeros against the simulated numbers; statistic = observed / mean simulated.

    Examples
    --------
    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> sal = datasets.load("Salamanders")
    >>> fit = glmmdiag.glmm("count ~ spp + mined + (1 | site)", sal, family="poisson")
    >>> res = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1)
    >>> t = glmmdiag.zero_inflation_test(res)
    >>> print(f"observed / simulated zeros: {t.statistic:.2f}, p = {t.p_value:.3f}")
    observed / simulated zeros: 1.25, p = 0.000
    """
    res = _check_res(res)
    alt = _alt(alternative)
    obs, sims = res.obs_stats["zeros"], res.sim_stats["zeros"]
    return _observed_vs_simulated(res, obs, sims, alt, "Zero-inflation test: observed vs simulated number of zeros",
                                  "ratioObsSim", int(np.size(sims)))


def generic_test(res: ScaledResiduals, summary_fn, alternative: str = "two-sided", *, name: str | None = None,
                 n_jobs=1) -> TestResult:
    """Any summary of the response, observed against simulated (DHARMa's testGeneric).

    statistic = summary(observed) / mean(summary(simulation_j)); p-values: greater =
    mean(T_j >= T_obs), less = mean(T_j <= T_obs), two-sided = min(1, 2 min). When ``name`` names
    a summary accumulated by ``simulate_residuals(..., summaries={name: fn})`` it is reused;
    otherwise the simulations are replayed from their seeds (or read when kept).
    """
    res = _check_res(res)
    alt = _alt(alternative)
    if not callable(summary_fn):
        raise TypeError("summary_fn must be a function of a response vector returning a number")
    label = name or getattr(summary_fn, "__name__", "summary")
    if name is not None and name in res.sim_stats:
        sims = res.sim_stats[name]
    else:
        out = replay(res, Reductions(summaries={"_user": summary_fn}), n_jobs=n_jobs)
        sims = out.sim_stats["_user"]
    obs = float(summary_fn(np.asarray(res.observed)))
    return _observed_vs_simulated(res, obs, sims, alt, f"Simulation-based test of {label}: observed vs simulated",
                                  "ratioObsSim", int(np.size(sims)))


# ---------------------------------------------------------------------------------- quantiles
def _rank01(x) -> np.ndarray:
    x = np.asarray(x, float)
    rk = stats.rankdata(x, method="average")
    return rk / rk.max()


def _spline_basis(x: np.ndarray, df: int):
    """Cubic B-spline basis (partition of unity) on [0, 1] with df + 1 columns and interior knots at
    quantiles of x; returns (basis function, n_columns)."""
    n_int = df - 3
    if df < 1:
        return None, 1
    if df <= 3:  # polynomial of degree df: a B-spline basis without interior knots
        k = df
        t = np.r_[np.zeros(k + 1), np.ones(k + 1)]
    else:
        k = 3
        inner = np.quantile(x, np.linspace(0, 1, n_int + 2)[1:-1])
        inner = np.unique(np.clip(inner, 1e-9, 1 - 1e-9))
        t = np.r_[np.zeros(k + 1), inner, np.ones(k + 1)]
    ncol = len(t) - k - 1

    def basis(z):
        z = np.clip(np.asarray(z, float), 0.0, 1.0)
        return interpolate.BSpline.design_matrix(z, t, k, extrapolate=False).toarray()

    return basis, ncol


def _quantile_lp(B: np.ndarray, r: np.ndarray, q: float):
    """Exact linear quantile regression (pinball loss) through its dual LP, solved by HiGHS:
    max r'a subject to B'a = (1 - q) B'1, 0 <= a <= 1 (Koenker 2005, section 6.2); the
    coefficients are minus the duals of the equality constraints. None when the solver fails."""
    from scipy.optimize import linprog

    try:
        sol = linprog(-r, A_eq=B.T, b_eq=(1 - q) * B.sum(axis=0), bounds=(0, 1), method="highs")
    except Exception:  # pragma: no cover
        return None
    if not sol.success:
        return None
    return -np.asarray(sol.eqlin.marginals, float)


def quantile_test(
    res: ScaledResiduals,
    predictor=None,
    quantiles=(0.25, 0.5, 0.75),
    *,
    rank: bool = True,
    df: int = 4,
    curves: bool = True,
    max_curve_points: int = 10000,
) -> TestResult:
    """Do the quantiles of the residuals depend on the predictor (default: fitted values)?

    For each quantile q, under the model the residuals are Uniform(0, 1) whatever the predictor, so
    the q-quantile of r given x is exactly q: a completely specified null. With sign scores
    a_i = q - 1{r_i < q} (mean 0, variance q(1 - q) under H0) and a cubic B-spline basis B of the
    rank-transformed predictor (``df`` shape degrees of freedom), two rank-score tests follow:
    level: (sum a)^2 / (n q(1-q)) ~ chi2(1); shape: S'(Bc'Bc)^-1 S / (q(1-q)) ~ chi2(df) with Bc the
    centred non-constant columns and S = Bc'a. Per q, p = min of the two Benjamini-Hochberg
    adjusted p-values; overall p = smallest BH-adjusted per-q p-value (DHARMa's combination).
    No model is fitted for the p-values, so the test cannot fail and works for any n.

    With ``curves=True`` the plot data also hold the quantile-regression curves (exact pinball LP on
    the same basis, on at most ``max_curve_points`` points, evenly subsampled by rank) and the null
    +-1.96 SE band around each q.

    Examples
    --------
    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> rust = datasets.load("rust")
    >>> fit = glmmdiag.glmm("severity ~ fungicide + (1 | block)", rust, family="beta")
    >>> res = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1)
    >>> t = glmmdiag.quantile_test(res, curves=False)
    >>> print(f"p = {t.p_value:.2f}")
    p = 1.00
    """
    res = _check_res(res)
    r = np.asarray(res.residuals, float)
    n = r.size
    x = np.asarray(res.fitted if predictor is None else predictor, float).reshape(-1)
    if x.shape[0] != n:
        raise GlmmdiagError(f"predictor has {x.shape[0]} values but there are {n} residuals")
    if not np.all(np.isfinite(x)):
        raise GlmmdiagError("predictor has NaN/infinite values")
    xr = _rank01(x) if rank else (x - x.min()) / max(np.ptp(x), 1e-300)
    n_unique = np.unique(xr).size
    dfe = int(min(df, n_unique - 1))
    basis, ncol = _spline_basis(xr, dfe) if dfe >= 1 else (None, 1)
    qs = np.asarray(quantiles, float)
    if np.any((qs <= 0) | (qs >= 1)):
        raise GlmmdiagError("quantiles must lie strictly between 0 and 1")
    rows = []
    B = basis(xr) if basis is not None else None
    if B is not None:
        Bc = B[:, 1:] - B[:, 1:].mean(axis=0)
        G = Bc.T @ Bc
        Ginv = np.linalg.pinv(G)
        rank_G = int(np.linalg.matrix_rank(G))
    grid = np.linspace(0, 1, 101)
    curves_out = {}
    for q in qs:
        a = q - (r < q).astype(float)
        v = q * (1 - q)
        t_level = a.sum() ** 2 / (n * v)
        p_level = float(stats.chi2.sf(t_level, 1))
        if B is not None and rank_G > 0:
            s = Bc.T @ a
            t_shape = float(s @ Ginv @ s / v)
            p_shape = float(stats.chi2.sf(t_shape, rank_G))
        else:
            t_shape, p_shape = math.nan, math.nan
        ps = [p_level] + ([p_shape] if np.isfinite(p_shape) else [])
        p_q = float(np.min(benjamini_hochberg(ps)))
        rows.append((q, t_level, p_level, t_shape, p_shape, p_q))
        if curves:
            curves_out[float(q)] = _curve(xr, r, q, basis, grid, max_curve_points)
    table = pd.DataFrame(rows, columns=["quantile", "level_chi2", "level_p", "shape_chi2", "shape_p", "p_value"])
    adj = benjamini_hochberg(table["p_value"].to_numpy())
    table["p_adjusted"] = adj
    p_all = float(np.min(adj))
    # the null band of a fitted quantile curve: Var(fit(x)) = q(1-q) b(x)'(B'B)^-1 b(x)
    band = {}
    if B is not None:
        BtBi = np.linalg.pinv(B.T @ B)
        bg = basis(grid)
        h = np.einsum("ij,jk,ik->i", bg, BtBi, bg)
        for q in qs:
            band[float(q)] = 1.96 * np.sqrt(q * (1 - q) * h)
    return TestResult(
        method=f"Quantile test: rank-score tests of residual quantiles vs predictor (cubic B-spline, {dfe} df)",
        statistic=float(np.max(table["level_chi2"].to_numpy())) if B is None else float(np.nanmax(table["shape_chi2"].to_numpy(), initial=0.0)),
        statistic_name="max shape chi-square" if B is not None else "max level chi-square",
        p_value=p_all,
        alternative="two-sided",
        data_name=_data_name(res, " vs " + ("fitted values" if predictor is None else "predictor") + (" (ranked)" if rank else "")),
        parameter={"df": float(dfe)},
        simulate_re=res.simulate_re,
        note=_all_tied_note(res),
        table=table.set_index("quantile"),
        plot_data={"x": xr, "residuals": r, "grid": grid, "curves": curves_out, "null_band": band,
                   "p_per_quantile": dict(zip(map(float, qs), adj))},
    )


def _curve(xr, r, q, basis, grid, max_points):
    if basis is None:
        return np.full(grid.shape, float(np.quantile(r, q)))
    n = xr.size
    idx = np.argsort(xr)
    if n > max_points:
        idx = idx[np.linspace(0, n - 1, max_points).round().astype(int)]
    beta = _quantile_lp(basis(xr[idx]), r[idx], q)
    if beta is None:
        return None
    return basis(grid) @ beta


# ---------------------------------------------------------------------------------- categorical
def _level_codes(g: pd.Series) -> tuple[np.ndarray, list]:
    """Codes and levels in the order a user expects: a Categorical's own category order (used
    categories only), numbers and numeric strings by value ('1', '2', '10', not '1', '10', '2'),
    other labels alphabetically."""
    if isinstance(g.dtype, pd.CategoricalDtype):
        cat = g.cat.remove_unused_categories()
        return cat.cat.codes.to_numpy(), list(cat.cat.categories)
    uniq = pd.unique(g)
    try:
        keys = np.array([float(v) for v in uniq])
    except (TypeError, ValueError):
        keys = None
    order = np.argsort(keys, kind="stable") if keys is not None else np.argsort(
        np.array([str(v) for v in uniq], dtype=object), kind="stable")
    levels = [uniq[i] for i in order]
    return np.asarray(pd.Categorical(g.to_numpy(), categories=levels).codes), levels


def categorical_test(res: ScaledResiduals, catpred) -> TestResult:
    """Per-level uniformity (KS, Holm-adjusted) and equal spread across levels (Brown-Forsythe:
    Levene's test centred on the median). p-value = min(1, 2 min(smallest Holm-adjusted KS p,
    Levene p)) (Bonferroni over the two parts); both parts are in ``table``/``estimate``."""
    res = _check_res(res)
    r = np.asarray(res.residuals, float)
    g = catpred if isinstance(catpred, pd.Series) else pd.Series(
        catpred if isinstance(catpred, pd.Categorical) else np.asarray(catpred))
    if g.shape[0] != r.size:
        raise GlmmdiagError(f"catpred has {g.shape[0]} values but there are {r.size} residuals")
    if g.isna().any():
        raise GlmmdiagError("catpred has missing values")
    codes, levels = _level_codes(g)
    if len(levels) < 2:
        raise GlmmdiagError("catpred needs at least two levels")
    groups = [r[codes == k] for k in range(len(levels))]
    ks = [stats.kstest(gr, "uniform") for gr in groups]
    p_ks = np.array([float(k.pvalue) for k in ks])
    p_holm = holm(p_ks)
    F, p_lev, lev_note = _brown_forsythe(groups)
    table = pd.DataFrame(
        {"n": [gr.size for gr in groups], "D": [float(k.statistic) for k in ks], "p_value": p_ks, "p_holm": p_holm},
        index=pd.Index([str(v) for v in levels], name="level"),
    )
    parts = [float(np.min(p_holm))] + ([p_lev] if np.isfinite(p_lev) else [])
    p = min(1.0, len(parts) * min(parts))
    return TestResult(
        method="Categorical test: per-level KS uniformity (Holm) and Brown-Forsythe homogeneity of spread",
        statistic=F,
        statistic_name="Levene F (median-centred)",
        p_value=float(p),
        alternative="two-sided",
        data_name=_data_name(res, " by level"),
        parameter={"levels": float(len(levels))},
        estimate={"smallest Holm-adjusted KS p": float(np.min(p_holm)), "Levene p": p_lev},
        simulate_re=res.simulate_re,
        note=lev_note,
        table=table,
        plot_data={"groups": dict(zip(map(str, levels), groups)), "levene_p": p_lev, "ks_holm": p_holm},
    )


def _brown_forsythe(groups) -> tuple[float, float, str | None]:
    """(F, p, note) of Levene's test centred on the median over the levels with >= 3 residuals.

    With two values the absolute deviations from their median are equal by construction (and one
    value has none), so such levels carry no within-level variation: with them the denominator of
    F can be 0 and F infinite (p = 0) for any data. They are left out. When the deviations do not
    vary within any level (constant residuals) F is 0/0: NaN, and the note says so.
    """
    usable = [gr for gr in groups if gr.size >= 3]
    if len(usable) < 2:
        return math.nan, math.nan, "Levene part undefined: it needs at least two levels with 3 or more residuals"
    dev = [np.abs(gr - np.median(gr)) for gr in usable]
    within = sum(float(np.sum((d - d.mean()) ** 2)) for d in dev)
    scale = max(float(np.max(np.abs(np.concatenate(dev)))), 1e-300)
    n_used = sum(d.size for d in dev)
    if within <= (64 * np.finfo(float).eps * scale) ** 2 * n_used:
        return math.nan, math.nan, ("Levene part undefined: the absolute deviations from the level medians do not "
                                    "vary within any level (0/0)")
    lev = stats.levene(*usable, center="median")
    skipped = len(groups) - len(usable)
    note = f"Levene part over the {len(usable)} levels with 3 or more residuals" if skipped else None
    return float(lev.statistic), float(lev.pvalue), note


# ---------------------------------------------------------------------------------- temporal
def durbin_watson_pvalue(dw: float, n: int, alternative: str = "two-sided", exact: bool | None = None) -> float:
    """P-value of the Durbin-Watson statistic of intercept-only residuals of length n (iid normal H0).

    The eigenvalues of M A M (M = I - 11'/n, A the first-difference matrix) are
    2 (1 - cos(pi j / n)), j = 1..n-1, so DW = sum l_j z_j^2 / sum z_j^2. P(DW <= d) is computed by
    Imhof's (1961) inversion for n <= 2000 (``exact``), else by the normal approximation with the
    exact mean and variance. "greater" (positive autocorrelation): P(DW <= d).
    """
    if n < 3:
        raise GlmmdiagError(f"the Durbin-Watson test needs at least 3 observations; got {n}")
    return _dw_pvalue(dw, _dw_eigenvalues([n]), alternative, exact)


def _dw_eigenvalues(lengths) -> np.ndarray:
    """Eigenvalues of M A M for series of the given lengths, each centred on its own mean and
    differenced within itself only: the union over series of 2 (1 - cos(pi j / n_s)), j < n_s."""
    return np.concatenate([2.0 * (1.0 - np.cos(np.pi * np.arange(1, m) / m)) for m in lengths if m >= 2]
                          or [np.zeros(0)])


def _dw_pvalue(dw: float, lam: np.ndarray, alternative: str = "two-sided", exact: bool | None = None) -> float:
    """P-value of DW = sum l_j z_j^2 / sum z_j^2 (z iid normal) for the eigenvalues ``lam``."""
    alt = _alt(alternative)
    if not math.isfinite(dw):
        return math.nan
    n = lam.size + 1
    if exact is None:
        exact = n <= 2000
    if exact:
        c = lam - dw

        def f(u):
            if u == 0:
                return 0.5 * c.sum()
            cu = c * u
            theta = 0.5 * np.arctan(cu).sum()
            logrho = 0.25 * np.log1p(cu * cu).sum()
            return math.sin(theta) / (u * math.exp(logrho))

        # the integrand is bounded by 1 / (u rho(u)); integrate up to where that is negligible
        upper = 1.0
        while True:
            cu = c * upper
            if upper * math.exp(0.25 * np.log1p(cu * cu).sum()) > 1e12 or upper > 1e12:
                break
            upper *= 2.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", integrate.IntegrationWarning)
            val, _ = integrate.quad(f, 0, upper, limit=2000, epsabs=1e-11, epsrel=1e-10)
        p_gt0 = 0.5 + val / math.pi  # P(sum c z^2 > 0) = P(DW > d)
        lower = min(1.0, max(0.0, 1.0 - p_gt0))
    else:
        m = lam.size
        mean = lam.mean()
        var = 2.0 * np.sum((lam - mean) ** 2) / (m * (m + 2))
        lower = float(stats.norm.cdf(dw, mean, math.sqrt(var)))
    upper = 1.0 - lower
    if alt == "greater":
        return float(lower)
    if alt == "less":
        return float(upper)
    return float(min(1.0, 2 * min(lower, upper)))


def _model_column(res, name: str):
    """Values per residual of a column the fitted model knows: a grouping factor of a
    random-effects term, or the time / coordinate of a time or distance structured term (as its
    position in time order, or its coordinate). None when the model does not know it."""
    fit = getattr(res.model, "fit", None)
    design = getattr(fit, "design", None)
    if design is None:
        return None
    for t in design.terms:
        if getattr(t, "index_vars", ()) and name in t.index_vars:
            pos = np.argmax(np.asarray(t.z), axis=1)
            if t.coords is not None:
                return np.asarray(t.coords, float)[pos, list(t.index_vars).index(name)]
            return pos.astype(float)  # ar1/toep: the time's position in time order
        if name == t.group or (len(t.group_vars) == 1 and name == t.group_vars[0]):
            return np.asarray(t.levels, dtype=object)[np.asarray(t.refs)]
    return None


def _column_values(res, value, what: str, data=None) -> np.ndarray:
    """``value`` as one value per residual: an array, a pandas Series (values, not index), or a
    column name looked up in ``data`` (the fitting data: its fitted rows are taken) or, without
    ``data``, among the columns the fitted model knows (grouping factors, time and coordinate
    columns of structured terms)."""
    n = res.nobs
    if isinstance(value, str):
        if data is not None:
            if value not in data.columns:
                raise GlmmdiagError(f"{what} column {value!r} is not in data (columns: {', '.join(map(str, data.columns[:20]))})")
            col = _natural_order(data[value])
            if col.shape[0] != n:
                rows = getattr(getattr(getattr(res.model, "fit", None), "design", None), "rows", None)
                if rows is None or res.group is not None or np.max(rows) >= col.shape[0]:
                    raise GlmmdiagError(f"data has {col.shape[0]} rows but there are {n} residuals; pass the data "
                                        f"the model was fitted to, or an array with one value per residual")
                col = col[np.asarray(rows)]
            return col
        col = _model_column(res, value) if res.group is None else None
        if col is None:
            raise GlmmdiagError(
                f"{what} = {value!r}: the model does not know this column (only grouping factors and the time or "
                f"coordinate columns of structured terms are kept); pass data= (the data frame the model was "
                f"fitted to) or the values"
            )
        return col
    if isinstance(value, (pd.Series, pd.Index)):
        return _natural_order(pd.Series(value))
    return np.asarray(value)


def _natural_order(col: pd.Series) -> np.ndarray:
    """Values that sort in the column's natural order: a Categorical's codes (its category order),
    strings that all read as numbers ('1', '2', '10') as numbers, anything else as it is."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.categories
        num = pd.to_numeric(pd.Series(cats.astype(str)), errors="coerce")
        if not col.cat.ordered and num.notna().all():
            return num.to_numpy()[col.cat.codes.to_numpy()].astype(float)
        codes = col.cat.codes.to_numpy().astype(float)
        codes[codes < 0] = np.nan
        return codes
    if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
        num = pd.to_numeric(col, errors="coerce")
        if num.notna().sum() == col.notna().sum():
            return num.to_numpy(float)
    return col.to_numpy()


def temporal_autocorrelation_test(res: ScaledResiduals, time, alternative: str = "two-sided", *, group=None,
                                  data=None, n_boot: int = 0, seed=None, n_jobs=1) -> TestResult:
    """Durbin-Watson test of the residuals ordered by ``time`` (DHARMa: lmtest::dwtest(r ~ 1)),
    pooled within series when ``group`` is given.

    Parameters
    ----------
    res : ScaledResiduals
    time : array, Series or column name
        One time per residual. A column name is looked up in ``data``, or else among the columns
        the model knows (the time column of an ``ar1``/``ou`` term, a grouping factor).
    alternative : "two-sided", "greater" (positive autocorrelation) or "less"
    group : array, Series or column name, optional
        The series each residual belongs to (several series, e.g. ``ar1(times + 0 | group)``'s
        group). Times must be unique within a series.
    data : DataFrame, optional
        Where column names are looked up (the data the model was fitted to; its fitted rows are
        used, so rows dropped for missing values are skipped).
    n_boot : int, default 0
        > 0: calibrate the p-value by a parametric bootstrap of the whole procedure: ``n_boot``
        data sets are simulated from the fitted model (new random effects), refitted, given
        residuals as ``res`` was (same n_sim, simulation mode, rotation) and their DW computed;
        p = (1 + #{DW_b <= DW}) / (n_boot + 1) for "greater", two-sided min(1, 2 min(lower, upper)).
        Use it for models that contain the autocorrelation (``ar1``, ``ou``): their fitted
        correlation is estimated from the same series, so the Imhof p-value is not calibrated
        there (benchmarks/calibration.py ``temporal``, correct ar1 model, 200 data sets each:
        0.000 rejections at 0.05 with 30 series x 10 times, 0.075 [0.043, 0.121] with 60 x 20;
        calibrated with n_boot = 39: 0.030 [0.011, 0.064] at 30 x 10). With n_boot = 39 a
        two-sided test at 0.05 rejects only at the extreme rank, with exact size under the
        fitted model. ``seed`` / ``n_jobs`` as in ``calibrated_tests``.

    Notes
    -----
    One series: DW = sum_t (e_t - e_{t-1})^2 / sum_t e_t^2 with e = r - mean(r), ordered by time.
    Several series s = 1..S of lengths n_s: each is centred on its own mean and differenced within
    itself only, DW = sum_s sum_t (e_st - e_s,t-1)^2 / sum_s sum_t e_st^2. Under iid normal
    residuals DW = sum_j l_j z_j^2 / sum_j z_j^2 with z iid N(0, 1) and l_j the eigenvalues of
    M A M, where M centres and A differences within each series (both block-diagonal): the union
    over series of 2 (1 - cos(pi j / n_s)), j = 1..n_s - 1. The p-value is Imhof's (1961)
    inversion of that distribution (normal approximation with the exact mean and variance above
    2000 eigenvalues); with one series this is lmtest's dwtest. Series of length 1 contribute
    nothing. DW < 2 means positive autocorrelation; the reported estimate rho = 1 - DW / 2.
    Calibration (uniform residuals, 40 series x 12 times, 4000 data sets): see
    tests/test_temporal_grouped.py.
    """
    res = _check_res(res)
    alt = _alt(alternative)
    t = _column_values(res, time, "time", data)
    r = np.asarray(res.residuals, float)
    if t.ndim != 1 or t.shape[0] != r.size:
        raise GlmmdiagError(f"time must have one value per residual ({r.size}); got shape {t.shape}")
    if pd.isna(pd.Series(t)).any():
        raise GlmmdiagError("time has missing values")
    if group is None:
        gcodes = np.zeros(r.size, np.int64)
        glabels = None
    else:
        g = _column_values(res, group, "group", data)
        if g.ndim != 1 or g.shape[0] != r.size:
            raise GlmmdiagError(f"group must have one value per residual ({r.size}); got shape {g.shape}")
        if pd.isna(pd.Series(g)).any():
            raise GlmmdiagError("group has missing values")
        gcodes, glabels = pd.factorize(pd.Series(g), sort=True)
    tcodes, tuniq = pd.factorize(pd.Series(t), sort=True)
    pair = gcodes.astype(np.int64) * (len(tuniq) + 1) + tcodes
    dup_pairs, counts = np.unique(pair, return_counts=True)
    if np.any(counts > 1):
        k = int(np.sum(counts > 1))
        ex = dup_pairs[counts > 1][0]
        ex_t = tuniq[ex % (len(tuniq) + 1)]
        if group is None:
            raise GlmmdiagError(
                f"time has duplicated values ({k} times occur more than once, e.g. {ex_t!r}): "
                f"the Durbin-Watson test needs one residual per time. Several series: pass group= (the series); "
                f"otherwise aggregate with recalculate_residuals(res, group=time) and pass the unique times"
            )
        ex_g = glabels[ex // (len(tuniq) + 1)]
        raise GlmmdiagError(
            f"time has duplicated values within a series ({k} (series, time) pairs occur more than once, e.g. "
            f"series {ex_g!r} at time {ex_t!r}): the test needs one residual per time in each series; aggregate "
            f"with recalculate_residuals first"
        )
    if group is None and r.size < 3:
        raise GlmmdiagError(f"the Durbin-Watson test needs at least 3 observations; got {r.size}")
    order = np.lexsort((tcodes, gcodes))
    gs = gcodes[order]
    lengths = np.bincount(gs)
    lengths = lengths[lengths > 0]
    n_eff = int(np.sum(lengths[lengths >= 2]))
    if n_eff - int(np.sum(lengths >= 2)) < 2:
        raise GlmmdiagError(f"the Durbin-Watson test needs at least 3 observations in one series (or 2 in two); "
                            f"got series of lengths {sorted(lengths.tolist())[-5:]}")
    ro = r[order]
    means = np.bincount(gs, weights=ro) / np.maximum(np.bincount(gs), 1)
    e = ro - means[gs]
    same = gs[1:] == gs[:-1]
    plot = {"time": t[order], "residuals": ro}
    if group is not None:
        plot["group"] = np.asarray(glabels, dtype=object)[gs]
    if np.all(r == r[0]) or float(np.sum(e * e)) == 0.0:
        return _undefined(res, "Durbin-Watson test", "DW", alt,
                          f"the residuals are {'all equal' if np.all(r == r[0]) else 'constant within every series'}"
                          f": the Durbin-Watson statistic is 0/0",
                          plot_data=plot)
    dw = float(np.sum((np.diff(e)[same]) ** 2) / np.sum(e * e))
    lam = _dw_eigenvalues(lengths)
    p = _dw_pvalue(dw, lam, alt)
    n_series = int(np.sum(lengths >= 2))
    method = "Durbin-Watson test" + (f" pooled within {n_series} series" if group is not None else "")
    note = f"residuals rotated ({res.rotation} covariance) before the test" if getattr(res, "rotation", None) else None
    extra = {}
    if n_boot:
        boot = _bootstrap_statistics(res, _PooledDW(order, gs), n_boot, seed, n_jobs)
        p_raw, p = p, _bootstrap_p(dw, boot, alt)
        method += " [parametric-bootstrap calibrated]"
        note = ((note + "\n") if note else "") + (f"p-value calibrated by {boot.size} refits to data simulated from the "
                                                    f"fit (uncalibrated p = {_signif_plain(p_raw)})")
        extra = {"mc_se": float(max(math.sqrt(p * (1 - p) / boot.size), 1.0 / (boot.size + 1))), "n_sim": boot.size}
        plot["bootstrap_values"] = boot
    return TestResult(
        method=method,
        statistic=dw,
        statistic_name="DW",
        p_value=p,
        alternative={"two-sided": "true autocorrelation is not 0", "greater": "true autocorrelation is greater than 0",
                     "less": "true autocorrelation is less than 0"}[alt],
        data_name=_data_name(res, " ordered by time" + (" within series" if group is not None else "")),
        parameter={"series": float(n_series)} if group is not None else None,
        estimate={"lag-1 autocorrelation (1 - DW/2)": 1.0 - dw / 2.0} if group is not None else None,
        simulate_re=res.simulate_re,
        note=note,
        plot_data=plot,
        **extra,
    )


class _PooledDW:
    """The pooled within-series Durbin-Watson statistic of residuals (picklable, for the bootstrap)."""

    def __init__(self, order, gs):
        self.order, self.gs = order, gs
        self.same = gs[1:] == gs[:-1]

    def __call__(self, r) -> float:
        ro = np.asarray(r, float)[self.order]
        means = np.bincount(self.gs, weights=ro) / np.maximum(np.bincount(self.gs), 1)
        e = ro - means[self.gs]
        ee = float(np.sum(e * e))
        return float(np.sum(np.diff(e)[self.same] ** 2) / ee) if ee > 0 else math.nan


def _bootstrap_one(model, b, root, n_sim, simulate_re, chunk_size, rotation, blocks, stat):
    from glmmdiag.residuals import simulate_residuals
    from glmmdiag._rng import child_seed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            y_b = np.asarray(model.simulate(1, child_generator(root, 5, b), False), float)[:, 0]
            m_b = model.refit(y_b)
            res_b = simulate_residuals(m_b, n_sim, seed=child_seed(root, 6, b), simulate_re=simulate_re,
                                       chunk_size=chunk_size, rotation=rotation, rotation_blocks=blocks)
            return stat(res_b.residuals), None
        except Exception as exc:  # a failed refit is dropped (all failing is an error)
            return math.nan, f"{type(exc).__name__}: {exc}"


def _bootstrap_statistics(res, stat, n_boot: int, seed, n_jobs) -> np.ndarray:
    """``stat`` of residuals of ``n_boot`` data sets simulated from the fitted model (new random
    effects), each refitted and given residuals as ``res`` was (n_sim, mode, rotation, chunks)."""
    from joblib import Parallel, delayed, effective_n_jobs

    from glmmdiag._rng import root_seed

    m = res.model
    if m is None or not hasattr(m, "refit"):
        raise TypeError("n_boot > 0 needs residuals of a model that can be refitted (not from_simulations)")
    if res.method != "PIT" or res.group is not None:
        raise GlmmdiagError("n_boot > 0 works on ungrouped PIT residuals from simulate_residuals")
    if getattr(res, "rotation", None) == "given":
        raise GlmmdiagError("n_boot > 0 cannot replay a given rotation matrix on refitted models; use "
                            "rotation='estimated' or None")
    n_boot = int(n_boot)
    if n_boot < 1:
        raise GlmmdiagError("n_boot must be >= 1")
    root = root_seed(seed if seed is not None else np.random.SeedSequence(res.seed).spawn(2)[1])
    src = res._source or {}
    args = (root, res.n_sim, res.simulate_re, res.chunk_size, getattr(res, "rotation", None),
            src.get("rotation_blocks"), stat)
    if effective_n_jobs(n_jobs) == 1:
        out = [_bootstrap_one(m, b, *args) for b in range(n_boot)]
    else:
        out = Parallel(n_jobs=n_jobs)(delayed(_bootstrap_one)(m, b, *args) for b in range(n_boot))
    vals = np.array([v for v, _ in out], float)
    errors = sorted({e for _, e in out if e})
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        raise FitError(f"every bootstrap refit failed: {errors[:3]}; use n_boot=0 (the uncalibrated p-value)")
    if vals.size < n_boot:
        from glmmdiag.errors import RefitWarning

        warnings.warn(f"{n_boot - vals.size} of {n_boot} bootstrap refits failed and were dropped ({errors[:2]})",
                      RefitWarning, stacklevel=3)
    return vals


def _bootstrap_p(obs: float, boot: np.ndarray, alt: str) -> float:
    """Monte-Carlo p-value of a statistic where small values mean positive association (DW) -- for
    "greater" -- or large values (Moran's I, pass -I): (1 + #{T_b <= T}) / (B + 1), two-sided
    min(1, 2 min(1 + #{T_b <= T}, 1 + #{T_b >= T}) / (B + 1))."""
    B = boot.size
    lo = (1 + np.sum(boot <= obs)) / (B + 1)
    hi = (1 + np.sum(boot >= obs)) / (B + 1)
    if alt == "greater":
        return float(lo)
    if alt == "less":
        return float(hi)
    return float(min(1.0, 2 * min(lo, hi)))


# ---------------------------------------------------------------------------------- spatial
def _moran_from_weights(z: np.ndarray, W) -> tuple[float, float, float, float]:
    """(I, S0, S1, S2) for weights W (dense or sparse), z centred."""
    import scipy.sparse as sp

    if sp.issparse(W):
        W = W.tocsr()
        S0 = float(W.sum())
        cv = float(z @ (W @ z))
        Wt = W.T.tocsr()
        S1 = 0.5 * float((W + Wt).multiply(W + Wt).sum())
        S2 = float(np.sum((np.asarray(W.sum(axis=1)).ravel() + np.asarray(W.sum(axis=0)).ravel()) ** 2))
    else:
        W = np.asarray(W, float)
        S0 = float(W.sum())
        cv = float(z @ W @ z)
        S1 = 0.5 * float(np.sum((W + W.T) ** 2))
        S2 = float(np.sum((W.sum(axis=1) + W.sum(axis=0)) ** 2))
    n = z.size
    zz = float(z @ z)
    I = n / S0 * cv / zz if (zz > 0 and S0 != 0) else math.nan
    return I, S0, S1, S2


def _moran_inverse_distance(z, coords, block: int = 2048):
    """Moran's I with row-standardised 1/d weights from coordinates, in row blocks (O(n x block) memory)."""
    n = coords.shape[0]
    rs = np.empty(n)
    for s in range(0, n, block):
        d = np.sqrt(((coords[s : s + block, None, :] - coords[None, :, :]) ** 2).sum(-1))
        with np.errstate(divide="ignore"):
            w = 1.0 / d
        w[np.arange(d.shape[0]), np.arange(s, s + d.shape[0])] = 0.0
        if not np.all(np.isfinite(w)):
            i, j = np.argwhere(~np.isfinite(w))[0]
            raise GlmmdiagError(
                f"duplicate locations (rows {s + i} and {j} share coordinates): inverse-distance weights are "
                f"undefined. Aggregate with recalculate_residuals(res, group=location) or pass weights="
            )
        rs[s : s + block] = w.sum(axis=1)
    rs[rs == 0] = 1.0
    cv = S1 = 0.0
    colsum = np.zeros(n)
    rowsum = np.zeros(n)
    for s in range(0, n, block):
        d = np.sqrt(((coords[s : s + block, None, :] - coords[None, :, :]) ** 2).sum(-1))
        with np.errstate(divide="ignore"):
            inv = 1.0 / d
        inv[np.arange(d.shape[0]), np.arange(s, s + d.shape[0])] = 0.0
        w = inv / rs[s : s + block, None]  # w_ij for rows i in the block
        wt = inv / rs[None, :]  # w_ji (distances are symmetric)
        cv += float(z[s : s + block] @ (w @ z))
        S1 += 0.5 * float(np.sum((w + wt) ** 2))
        colsum += w.sum(axis=0)
        rowsum[s : s + block] = w.sum(axis=1)
    S0 = float(colsum.sum())
    S2 = float(np.sum((rowsum + colsum) ** 2))
    zz = float(z @ z)
    I = n / S0 * cv / zz if (zz > 0 and S0 != 0) else math.nan
    return I, S0, S1, S2


def spatial_autocorrelation_test(
    res: ScaledResiduals, x=None, y=None, *, distance_matrix=None, weights=None, alternative: str = "two-sided",
    data=None, n_boot: int = 0, seed=None, n_jobs=1,
) -> TestResult:
    """Moran's I of the residuals (DHARMa: ape::Moran.I).

    Weights: ``weights`` as given (dense or scipy sparse), or 1/distance (zero diagonal) from
    ``distance_matrix`` or from Euclidean distances of coordinates ``x``, ``y``; rows are scaled to
    sum to 1 (as ape does). The null moments are Cliff & Ord's under randomisation (kurtosis of the
    residuals included); p-value from the normal approximation. Coordinates are processed in row
    blocks, so memory stays O(n x 2048) for large n (time is O(n^2)).

    ``x`` and ``y`` may be column names, looked up in ``data`` (the fitting data) or among the
    coordinates of the model's distance-structured term (``exp(numFactor(x, y) + 0 | g)``).
    ``n_boot`` > 0 calibrates the p-value by a parametric bootstrap of the whole procedure (as
    ``temporal_autocorrelation_test``; statistic Moran's I, large = positive autocorrelation).
    """
    res = _check_res(res)
    alt = _alt(alternative)
    if isinstance(x, str) or isinstance(x, (pd.Series, pd.Index)):
        x = _column_values(res, x, "x", data)
    if isinstance(y, str) or isinstance(y, (pd.Series, pd.Index)):
        y = _column_values(res, y, "y", data)
    r = np.asarray(res.residuals, float)
    n = r.size
    if n < 4:
        raise GlmmdiagError(f"Moran's I test needs at least 4 observations (its variance divides by (n-1)(n-2)(n-3)); got {n}")
    z = r - r.mean()
    given = sum(v is not None for v in (weights, distance_matrix)) + (x is not None or y is not None)
    if given != 1:
        raise GlmmdiagError("give exactly one of: coordinates x and y, distance_matrix=, or weights=")
    if weights is not None or distance_matrix is not None:
        import scipy.sparse as sp

        M = weights if weights is not None else distance_matrix
        if M.shape != (n, n):
            raise GlmmdiagError(f"the matrix must be ({n}, {n}); got {M.shape}")
        if weights is not None:
            W = M.tocsr().astype(float) if sp.issparse(M) else np.array(M, float)
        else:
            D = np.asarray(M.toarray() if sp.issparse(M) else M, float)
            off = ~np.eye(n, dtype=bool)
            if np.any(D[off] <= 0):
                raise GlmmdiagError("distance_matrix has zero/negative off-diagonal distances (duplicate locations)")
            W = np.zeros((n, n))
            W[off] = 1.0 / D[off]
        if sp.issparse(W):
            rsum = np.asarray(W.sum(axis=1)).ravel()
            rsum[rsum == 0] = 1.0
            W = sp.diags(1.0 / rsum) @ W
        else:
            rsum = W.sum(axis=1)
            rsum[rsum == 0] = 1.0
            W = W / rsum[:, None]
        I, S0, S1, S2 = _moran_from_weights(z, W)
        coords = None
    else:
        if x is None or y is None:
            raise GlmmdiagError("give both x and y coordinates")
        coords = np.column_stack([np.asarray(x, float).reshape(-1), np.asarray(y, float).reshape(-1)])
        if coords.shape[0] != n:
            raise GlmmdiagError(f"x and y must have {n} values (one per residual); got {coords.shape[0]}")
        I, S0, S1, S2 = _moran_inverse_distance(z, coords)
    if np.all(r == r[0]):
        return _undefined(res, "Moran's I test for distance-based autocorrelation", "observed", alt,
                          f"the residuals are all equal ({_signif_plain(r[0])}): Moran's I is 0/0",
                          plot_data={"coords": coords, "residuals": r})
    if S0 == 0:
        return _undefined(res, "Moran's I test for distance-based autocorrelation", "observed", alt,
                          "every spatial weight is 0 (no pair of neighbours): Moran's I is 0/0",
                          plot_data={"coords": coords, "residuals": r})
    EI = -1.0 / (n - 1)
    b2 = (np.sum(z**4) / n) / (np.sum(z**2) / n) ** 2
    num = n * ((n * n - 3 * n + 3) * S1 - n * S2 + 3 * S0**2) - b2 * ((n * n - n) * S1 - 2 * n * S2 + 6 * S0**2)
    EI2 = num / ((n - 1) * (n - 2) * (n - 3) * S0**2)
    sd = math.sqrt(max(EI2 - EI**2, 0.0))
    zstat = (I - EI) / sd if sd > 0 else math.nan
    lower = float(stats.norm.cdf(zstat))
    p = {"greater": 1 - lower, "less": lower}.get(alt, 2 * min(lower, 1 - lower))
    method = "Moran's I test for distance-based autocorrelation"
    note = f"residuals rotated ({res.rotation} covariance) before the test" if getattr(res, "rotation", None) else None
    plot = {"coords": coords, "residuals": r}
    extra = {}
    if n_boot:
        boot = _bootstrap_statistics(res, _MoranI(coords, W if coords is None else None), n_boot, seed, n_jobs)
        p_raw = p
        p = _bootstrap_p(-float(I), -boot, alt)  # large I = positive autocorrelation ("greater")
        method += " [parametric-bootstrap calibrated]"
        note = ((note + "\n") if note else "") + (f"p-value calibrated by {boot.size} refits to data simulated from the "
                                                    f"fit (uncalibrated p = {_signif_plain(p_raw)})")
        extra = {"mc_se": float(max(math.sqrt(p * (1 - p) / boot.size), 1.0 / (boot.size + 1))), "n_sim": boot.size}
        plot["bootstrap_values"] = boot
    return TestResult(
        method=method,
        statistic=float(I),
        statistic_name="observed",
        p_value=float(min(1.0, p)),
        alternative=alt,
        data_name=_data_name(res),
        estimate={"observed": float(I), "expected": EI, "sd": sd},
        simulate_re=res.simulate_re,
        note=note,
        plot_data=plot,
        **extra,
    )


class _MoranI:
    """Moran's I of residuals for fixed coordinates or weights (picklable, for the bootstrap)."""

    def __init__(self, coords, W):
        self.coords, self.W = coords, W

    def __call__(self, r) -> float:
        r = np.asarray(r, float)
        z = r - r.mean()
        if self.coords is not None:
            return float(_moran_inverse_distance(z, self.coords)[0])
        return float(_moran_from_weights(z, self.W)[0])


# ---------------------------------------------------------------------------------- together
def residual_tests(res: ScaledResiduals) -> ResidualTests:
    """Uniformity (KS), dispersion (default kind) and outliers (default type) together.

    Examples
    --------
    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> sal = datasets.load("Salamanders")
    >>> fit = glmmdiag.glmm("count ~ spp + mined + (1 | site)", sal, family="poisson")
    >>> res = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1)
    >>> tests = glmmdiag.residual_tests(res)
    >>> print(tests.to_frame()[["statistic", "p_value"]].round(2))
                statistic  p_value
    test
    uniformity       0.11      0.0
    dispersion       3.05      0.0
    outliers        31.00      0.0
    >>> tests.verdict
    'non-uniform (KS p < 0.001); overdispersion 3.0 (p < 0.004); outliers (p < 0.001)'

    Knowing the family, the result names what to fit next:

    >>> print(tests.with_family("poisson").remedies()[0].specs)
    ('nbinom2', 'nbinom1', 'poisson; olre=yes')
    """
    family = res.family_name if res.family_name not in ("", "unknown") else None
    return ResidualTests(uniformity_test(res), dispersion_test(res), outlier_test(res), family=family)


# ---------------------------------------------------------------------------------- calibration
# name -> (test, how the bootstrap compares it): "upper" = large statistic is evidence (one-sided
# on the statistic), "two" = both tails of the statistic, "p" = compare raw p-values (small = evidence)
_CALIBRATABLE = {
    "uniformity": (lambda r: uniformity_test(r), "upper"),
    "dispersion": (lambda r: dispersion_test(r), "two"),
    "outliers": (lambda r: outlier_test(r), "p"),
    "zero_inflation": (lambda r: zero_inflation_test(r), "two"),
    "quantiles": (lambda r: quantile_test(r, curves=False), "p"),
}


def _pivot(t: TestResult, how: str) -> float:
    return float(t.p_value) if how == "p" else float(t.statistic)


def randomised_rank_pvalue(observed: float, bootstrap, how: str, u: float) -> tuple[float, int]:
    """The Monte-Carlo p-value of ``observed`` among the ``bootstrap`` values, with ties broken at random.

    ``how``: "p" (small values are evidence against H0, e.g. raw p-values), "upper" (large values
    are) or "two" (both tails). ``u`` is a Uniform(0, 1) draw. Returns (p-value, number of ties).

    With B bootstrap values T_1..T_B and the observed T_0, let A = #{b: T_b more extreme than T_0}
    and m = #{b: T_b = T_0}. The p-value is

        p = (A + u (m + 1)) / (B + 1)                              ("p", "upper")
        p = 2 min(p_lo, 1 - p_lo),  p_lo = (#{T_b < T_0} + u (m + 1)) / (B + 1)   ("two")

    (1 - p_lo = (#{T_b > T_0} + (1 - u)(m + 1)) / (B + 1) is the upper tail with the same draw).
    Under H0, T_0..T_B are exchangeable. Give each an independent Uniform(0, 1) tie-breaker V_b and
    order by (T, V): there are no ties left, so the rank R of T_0 counted from the extreme end is
    uniform on {1, ..., B + 1}, and given the T's, R - 1 - A (the tied values whose V_b beat V_0) is
    uniform on {0, ..., m}. floor(u (m + 1)) has that same law and the fractional part of u (m + 1)
    is an independent Uniform(0, 1), so p has the law of (R - 1 + W) / (B + 1) with W ~ U(0, 1)
    independent of R: p ~ Uniform(0, 1) exactly, P(p <= alpha) = alpha for every alpha and every B,
    however many ties the statistic has; p_lo is uniform too, hence so is the two-sided p. Without
    ties (m = 0) p lies in ((R - 1)/(B + 1), R/(B + 1)]. The usual (1 + #{T_b at least as extreme}) /
    (B + 1) (``_conservative_rank_pvalue``; for "p" and "upper" the case u = 1) is never smaller
    and is conservative when ties are likely, as for a discrete statistic (an outlier count, its
    p-value) or a p-value that is often exactly 1.
    """
    b = np.asarray(bootstrap, float)
    B = b.size
    if B == 0 or not math.isfinite(observed) or not np.all(np.isfinite(b)):
        raise GlmmdiagError("randomised_rank_pvalue needs a finite observed value and finite bootstrap values")
    if not 0.0 <= u <= 1.0:
        raise GlmmdiagError(f"u must lie in [0, 1]; got {u}")
    ties = int(np.sum(b == observed))
    if how == "p":
        more = int(np.sum(b < observed))
    elif how == "upper":
        more = int(np.sum(b > observed))
    elif how == "two":
        p_lo = (int(np.sum(b < observed)) + u * (ties + 1)) / (B + 1)
        return float(min(1.0, 2.0 * min(p_lo, 1.0 - p_lo))), ties
    else:
        raise GlmmdiagError(f"how must be 'p', 'upper' or 'two'; got {how!r}")
    return float((more + u * (ties + 1)) / (B + 1)), ties


def _conservative_rank_pvalue(observed: float, bootstrap, how: str) -> float:
    """(1 + #{T_b at least as extreme as T_0}) / (B + 1), ties counted against H0 (two-sided: twice the
    smaller tail, at most 1): the rule before ties were broken at random, kept for comparison."""
    b = np.asarray(bootstrap, float)
    lo, hi = 1 + int(np.sum(b <= observed)), 1 + int(np.sum(b >= observed))
    k = {"p": lo, "upper": hi}.get(how, None)
    return float(k / (b.size + 1)) if k is not None else float(min(1.0, 2 * min(lo, hi) / (b.size + 1)))


def _bootstrap_pvalues(model, b, root, n_sim, simulate_re, chunk_size, names):
    from glmmdiag.residuals import simulate_residuals
    from glmmdiag._rng import child_seed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            y_b = np.asarray(model.simulate(1, child_generator(root, 3, b), False), float)[:, 0]
            m_b = model.refit(y_b)
            res_b = simulate_residuals(m_b, n_sim, seed=child_seed(root, 4, b), simulate_re=simulate_re,
                                       chunk_size=chunk_size)
            out = []
            for k in names:
                t = _CALIBRATABLE[k][0](res_b)
                out += [float(t.statistic), float(t.p_value)]
            return out, None
        except Exception as exc:  # a failed refit is dropped (and reported if all fail)
            return [math.nan] * (2 * len(names)), f"{type(exc).__name__}: {exc}"


def calibrated_tests(
    res: ScaledResiduals,
    n_boot: int = 100,
    tests=("uniformity", "dispersion", "outliers", "zero_inflation", "quantiles"),
    *,
    seed=None,
    n_jobs=1,
) -> dict:
    """Tests with p-values calibrated by a parametric bootstrap of the whole procedure.

    Simulated residuals of a fitted model are judged against simulations from the same fit, so
    under a correct model the usual p-values are conservative (the observations sit too well
    inside their own fit; DHARMa's tests reject far less often than alpha). Here the whole
    procedure is repeated on ``n_boot`` data sets simulated from the fitted model (new random
    effects), each refitted, given its own simulated residuals (same n_sim, mode and chunk size)
    and tested. The calibrated p-value is the position of the observed pivot among the bootstrap
    ones: the KS distance (large = evidence), the dispersion and zero-inflation ratios (both
    tails), and for the outlier and quantile tests, whose statistics are not comparable across
    data sets, the raw p-value (small = evidence; Beran's prepivoting).

    Ties are broken at random (``randomised_rank_pvalue``): with A bootstrap pivots more extreme
    than the observed one and m equal to it, p = (A + u (m + 1)) / (n_boot + 1), u ~ Uniform(0, 1)
    (two-sided: 2 min(p_lo, 1 - p_lo) with p_lo the lower-tail version). Under H0 the observed
    and bootstrap pivots are exchangeable and this p-value is exactly Uniform(0, 1), for any
    n_boot and however discrete the pivot. Without randomisation, (1 + #{at least as extreme}) /
    (n_boot + 1) is conservative for discrete pivots: the outlier test's p-value (an outlier
    count; for counts often exactly 1) and, less so, the KS distance of residuals of a continuous
    response (on a grid of 1/n_sim) and the quantile test's level part. Measured (benchmarks/
    calibration.py, zero-inflated Poisson fitted as ZIP and heteroscedastic gaussian fitted with
    its dispersion model, n_boot = 39): the outlier test's observed p-value tied with on average
    24-40% of the bootstrap ones; on 400 replicates of the gaussian scenario the untie-broken rule
    rejected 1.5% of the time at alpha = 0.05, the randomised rule 4.8% on the same bootstraps. u
    comes from the seed (spawn key (7, j), j the test's position in the list of calibratable
    tests), so the same seed gives the same p-value; ``plot_data`` keeps u (``tie_break_u``), the
    number of ties (``bootstrap_ties``) and the untie-broken p-value (``p_value_conservative``).

    The size is exact when the bootstrap world matches the real one (it differs from it by the
    estimation error of the fitted parameters); n_boot only sets the power (the p-value of the
    most extreme observed pivot is below 1/(n_boot + 1)); a two-sided test needs no particular
    n_boot. Bootstrap data sets whose refit fails or whose test is undefined are dropped; a test
    undefined for the observed data has a NaN calibrated p-value. Needs a model
    with ``refit``; one joblib task per bootstrap data set; bootstrap data sets come from spawn
    key (3, b), their residuals from (4, b). Returns {name: TestResult} whose ``p_value`` is the
    calibrated one (the raw p-value is in ``estimate``) and whose ``mc_se`` is the bootstrap's
    Monte-Carlo SE.
    """
    from glmmdiag._rng import root_seed

    res = _check_res(res)
    m = res.model
    if m is None or not hasattr(m, "refit"):
        raise TypeError("calibrated_tests needs residuals of a model that can be refitted (not from_simulations)")
    if res.method != "PIT" or res.group is not None:
        raise GlmmdiagError("calibrated_tests works on ungrouped PIT residuals from simulate_residuals")
    names = list(tests)
    unknown = [k for k in names if k not in _CALIBRATABLE]
    if unknown:
        raise GlmmdiagError(f"unknown tests {unknown}; choose from {list(_CALIBRATABLE)}")
    n_boot = int(n_boot)
    if n_boot < 1:
        raise GlmmdiagError("n_boot must be >= 1")
    root = root_seed(seed if seed is not None else np.random.SeedSequence(res.seed).spawn(1)[0])
    from joblib import Parallel, delayed, effective_n_jobs

    args = (root, res.n_sim, res.simulate_re, res.chunk_size, names)
    if effective_n_jobs(n_jobs) == 1:
        P = [_bootstrap_pvalues(m, b, *args) for b in range(n_boot)]
    else:
        P = Parallel(n_jobs=n_jobs)(delayed(_bootstrap_pvalues)(m, b, *args) for b in range(n_boot))
    errors = sorted({e for _, e in P if e})
    P = np.array([p for p, _ in P], float).reshape(n_boot, 2 * len(names))
    out = {}
    for k, name in enumerate(names):
        fn, how = _CALIBRATABLE[name]
        raw = fn(res)
        ok = np.isfinite(P[:, 2 * k + 1])  # refits that worked
        if not ok.any():
            raise FitError(f"every bootstrap refit of the calibrated tests failed: {errors[:3]}; report the "
                           f"uncalibrated p-values or simplify the model")
        stat_b = P[ok, 2 * k]
        if how != "p" and not (np.isfinite(raw.statistic) and np.all(np.isfinite(stat_b))):
            how = "p"  # e.g. a zero-inflation ratio 0/0 for a response without zeros
        pb = P[ok, 2 * k + 1] if how == "p" else stat_b
        B = pb.size
        s_obs = _pivot(raw, how)
        if not math.isfinite(s_obs):  # the test is undefined for the observed data: so is its calibration
            out[name] = dataclasses.replace(raw, method=raw.method + " [parametric-bootstrap calibrated]",
                                            p_value=math.nan, n_sim=B)
            continue
        u = float(child_generator(root, 7, list(_CALIBRATABLE).index(name)).random())
        pc, ties = randomised_rank_pvalue(s_obs, pb, how, u)
        p_conservative = _conservative_rank_pvalue(s_obs, pb, how)
        if ties == B:
            tie_note = (f"; every bootstrap value ties with the observed one: the calibrated p-value is a pure "
                        f"random draw (the test carries no information for these data)")
        elif ties:
            tie_note = f"; {ties} bootstrap values tie with the observed one, ties broken at random (seeded)"
        else:
            tie_note = ""
        est = dict(raw.estimate or {})
        est["uncalibrated p-value"] = raw.p_value
        out[name] = dataclasses.replace(
            raw,
            method=raw.method + " [parametric-bootstrap calibrated]",
            p_value=float(pc),
            estimate=est,
            mc_se=float(max(math.sqrt(pc * (1 - pc) / B), 1.0 / (B + 1))),
            n_sim=B,
            note=((raw.note + "\n") if raw.note else "") + f"p-value calibrated by {B} refits to data simulated from the fit"
            + tie_note,
            plot_data={**dict(raw.plot_data), "bootstrap_values": pb, "bootstrap_compares": how,
                       "bootstrap_ties": ties, "tie_break_u": u, "p_value_conservative": p_conservative},
        )
    return out
