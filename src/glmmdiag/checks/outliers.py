"""Too many or too few observations outside the simulation envelope."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from glmmdiag.errors import GlmmdiagError
from glmmdiag.residuals import replay
from glmmdiag.results import ScaledResiduals, TestResult
from glmmdiag.simulate import Reductions
from glmmdiag.checks._common import _alt, _check_res, _data_name


def outlier_test(
    res: ScaledResiduals,
    alternative: str = "two-sided",
    margin: str = "both",
    type: str = "default",
    n_boot: int = 100,
    n_jobs=1,
) -> TestResult:
    """Too many (or too few) observations outside the simulation envelope.

    type="binomial": the number k of outliers against Binomial(n, p0), p0 = 1/(n_sim + 1) per
        margin (2/(n_sim + 1) for both).
        Residuals of the default definition (``pit="ranks"``): an outlier is a residual in an
        extreme cell, r < 1/(n_sim + 1) (the observation is below all its simulations, ties
        broken at random) or r >= n_sim/(n_sim + 1). The residuals are exactly Uniform(0, 1) and
        independent when the observations are exchangeable with their simulations, so
        P(outlier) = 2/(n_sim + 1) exactly and k ~ Binomial(n, 2/(n_sim + 1)) exactly, for integer
        and continuous responses and any n (a correct Poisson GLMM at n = 10^6 is not flagged;
        tests/test_large_n.py).
        DHARMa's residuals (``pit="dharma"``): residuals below 1/(n_sim + 1) or above
        1 - 1/(n_sim + 1), as DHARMa: exact for continuous responses, approximate for integer
        ones, whose ties make the true rate differ from p0 (a correct Poisson GLMM with 2e5 rows
        gave p = 4e-16).
    type="bootstrap": a Monte-Carlo test. An outlier is an observation strictly outside every
        simulation (for DHARMa's residuals a residual of exactly 0 or 1). The first ``n_boot`` simulations are used in turn as pseudo-observed
        data, each judged against the other simulations plus the observed data, so under the
        model they are exchangeable with the observed data and the p-value
        (1 + #{T_k >= T_obs}) / (n_boot + 1) is exact (DHARMa resamples instead). Needs the
        simulations: replayed from their seeds when not kept.
    type="default": binomial for the default residuals (exact); for DHARMa's residuals DHARMa's rule
        (bootstrap for integer responses with at most 500 observations, binomial otherwise).

    Examples
    --------
    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> sal = datasets.load("Salamanders")
    >>> fit = glmmdiag.glmm("count ~ spp + mined + (1 | site)", sal, family="poisson")
    >>> res = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1)
    >>> t = glmmdiag.outlier_test(res)   # the exact binomial test, rate 2 / (n_sim + 1)
    >>> print(f"{t.statistic:.0f} outliers of {res.nobs}, p = {t.p_value:.2g}")
    26 outliers of 644, p = 3.8e-11
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
    ranks = getattr(res, "pit", "dharma") == "ranks"
    if type == "default":
        dharma_boot = res.integer_response and res.nobs <= 500 and res.method != "refit"
        type = "bootstrap" if (dharma_boot and not ranks) else "binomial"
    n, N = res.nobs, res.n_sim
    r = res.residuals
    if type == "binomial":
        t = 1.0 / (N + 1)
        if ranks:
            low, high = r * (N + 1) < 1.0, r * (N + 1) >= N
            method = "Outlier test: exact binomial test (rank residuals: exact expectation 1/(n_sim + 1) per margin)"
            note = None
        else:
            low, high = r < t, r > 1 - t
            method = "Outlier test: exact binomial test with approximate expectations"
            note = ("Note: for integer responses the binomial expectation is approximate (DHARMa's residuals); the "
                    "default residuals (pit='ranks') make it exact" if res.integer_response else None)
        lo, hi = int(np.sum(low)), int(np.sum(high))
        k = {"both": lo + hi, "upper": hi, "lower": lo}[margin]
        p0 = t * (2 if margin == "both" else 1)
        bt = stats.binomtest(k, n, p0, alternative=alt)
        return TestResult(
            method=method,
            statistic=float(k),
            statistic_name=f"outliers at {margin} margin(s)",
            p_value=float(bt.pvalue),
            alternative=alt,
            data_name=_data_name(res),
            parameter={"observations": float(n)},
            estimate={f"frequency of outliers (expected: {p0:.6g})": k / n},
            simulate_re=res.simulate_re,
            note=note,
            plot_data={"lower": np.flatnonzero(low), "upper": np.flatnonzero(high), "expected_frequency": p0},
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
