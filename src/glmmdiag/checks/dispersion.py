"""Over- and underdispersion: simulation-based (DHARMa), refit-based and Pearson chi-square tests."""
from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from glmmdiag.errors import GlmmdiagError
from glmmdiag.results import ScaledResiduals, TestResult
from glmmdiag.checks._common import _alt, _check_res, _data_name, _observed_vs_simulated, _signif_plain, _undefined


def _spread_test(res, obs, sims, alt, what, method):
    """The observed spread against the simulated ones, or an undefined result when both are 0."""
    n_sim = int(np.isfinite(sims).sum())
    why = _spread_undefined(res, obs, sims, what)
    if why:
        return _undefined(res, method, "dispersion", alt, why, n_sim=n_sim)
    notes = [n for n in (_no_simulated_spread(obs, sims), _bernoulli_note(res)) if n]
    return _observed_vs_simulated(res, obs, sims, alt, method, "dispersion", n_sim,
                                  note="\n".join(notes) or None)


BERNOULLI_NOTE = (
    "Note: the responses are 0/1 (one trial each), and a single 0/1 observation cannot be over- or "
    "underdispersed: this test has little power here and its p-values are conservative. Test residuals "
    "grouped by a factor instead (recalculate_residuals(res, group=...)), as DHARMa recommends."
)


def _bernoulli_note(res) -> str | None:
    """``BERNOULLI_NOTE`` for ungrouped residuals of 0/1 responses with one trial each, else None.

    Var(y) = mu (1 - mu) is fixed by the mean for a 0/1 response, so overdispersion can only show
    between observations that share something (a group, a site, a time): the spread of single 0/1
    values around their means carries almost no information about it. Measured on correct
    Bernoulli GLMMs (30 groups x 10 rows, 600 data sets, ``benchmarks/calibration.py``): the raw
    test rejected 0.000 of the time at alpha = 0.05 and the refit-calibrated one 0.012 [0.005,
    0.024]."""
    if res.group is not None:
        return None
    y = np.asarray(res.observed, float)
    trials = np.asarray(res.trials, float)
    if y.size and np.all(trials == 1.0) and np.all((y == 0.0) | (y == 1.0)) and res.model is not None \
            and getattr(res.model, "family_name", "") == "binomial":
        return BERNOULLI_NOTE
    return None


def dispersion_test(
    res: ScaledResiduals,
    alternative: str = "two-sided",
    kind: str | None = None,
    *,
    residual_df: str = "honest",
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
        Pearson chi-square / residual df against chi-square(df). ``residual_df="honest"`` uses
        n - tr(2H - H^2) with H the hat matrix of the penalised fit (random effects counted by
        their shrinkage: E[chi2] = df for a linear Gaussian smoother); ``residual_df="model"`` uses
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
    >>> model = glmmdiag.dispersion_test(res, kind="pearson", residual_df="model", alternative="greater")
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
        if residual_df == "honest":
            edf = m.edf() if hasattr(m, "edf") else None
            if edf is None:
                warnings.warn("effective df unavailable for this model; using the model's residual df", UserWarning, stacklevel=2)
                rdf = float(m.df_resid)
                df_label = "model"
            else:
                rdf = float(n - (2 * edf[0] - edf[1]))
                df_label = "honest"
        elif residual_df == "model":
            rdf = float(m.df_resid)
            df_label = "model"
        else:
            raise GlmmdiagError(f"residual_df must be 'honest' or 'model'; got {residual_df!r}")
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
