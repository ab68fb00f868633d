"""Parametric-bootstrap likelihood-ratio test between nested fits (DHARMa's ``simulateLRT``).

The observed statistic is LR = 2 (l1 - l0) for the larger model m1 and the smaller m0 (REML fits
refitted by maximum likelihood, as :func:`~glmmdiag.inference.lrt.anova` does). Its null
distribution is simulated: B responses are drawn from m0 (unconditional: new random effects
per draw), both models are refitted to each, and

    p = (1 + #{b : LR_b >= LR}) / (1 + B_ok)

with B_ok the draws whose two refits succeeded. Unlike the chi-square reference of ``anova``,
this stays valid when the null puts a variance on its boundary ("is this random effect
needed?"), where the chi-square p-value is conservative, and for non-nested-looking family
comparisons that are nested at a boundary (Poisson in negative binomial).

The draws are made in the calling process from ``seed`` before any refit, so the result is the
same for every ``n_jobs``.
"""
from __future__ import annotations

import warnings

import numpy as np
from joblib import delayed

from glmmdiag._arguments import seed_or_rng
from glmmdiag._parallel import parallel_imap
from glmmdiag._progress import track
from glmmdiag.errors import GlmmdiagError, RefitWarning
from glmmdiag.inference.lrt import anova
from glmmdiag.results import TestResult

__all__ = ["simulate_lrt"]


def _ml(fit):
    if not fit.reml:
        return fit
    from glmmdiag.inference.lrt import _refit_ml

    return _refit_ml(fit)


def _pair_statistic(m0, m1, y) -> float:
    """LR of the two models refitted to the response y; NaN when a refit fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return 2.0 * (m1.refit(y).loglik - m0.refit(y).loglik)
    except (GlmmdiagError, ArithmeticError, np.linalg.LinAlgError):
        return float("nan")


def simulate_lrt(m0, m1, n_sim: int = 250, seed=None, n_jobs: int = 1, progress="auto", *, rng=None) -> TestResult:
    """Parametric-bootstrap likelihood-ratio test of the smaller fit ``m0`` against ``m1``.

    Parameters
    ----------
    m0, m1 : GLMMResults
        Nested fits to the same rows and response (checked as in :func:`anova`); m0 is the
        null model, the one the responses are simulated from.
    n_sim : int
        Bootstrap draws (each costs two refits, warm-started from the fits).
    seed : int, Generator or None
        Seed of the draws (``rng=`` is accepted as the same argument).
    n_jobs : int
        Parallel workers for the refits (joblib); the result does not depend on it.
    progress : bool or "auto"
        A progress bar over the bootstrap draws: ``"auto"`` shows one in a notebook or terminal
        once the refits take more than a couple of seconds (silent in scripts' pipes and tests).

    Returns
    -------
    TestResult
        ``statistic`` LR, ``p_value`` as in the module doc, ``mc_se`` its Monte-Carlo SE,
        ``plot_data["simulated"]`` the bootstrap statistics; ``parameter["df"]`` the difference in
        parameters and ``estimate["p_chisq"]`` the chi-square p-value for comparison.

    Examples
    --------
    Is the random effect needed? The GLM against the GLMM (under H0 the variance is on its boundary,
    where the chi-square reference of ``anova`` is conservative):

    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> cbpp = datasets.load("cbpp")
    >>> y = "cbind(incidence, size - incidence)"
    >>> glm = glmmdiag.glmm(f"{y} ~ period", cbpp, family="binomial")
    >>> glmm = glmmdiag.glmm(f"{y} ~ period + (1 | herd)", cbpp, family="binomial")
    >>> t = glmmdiag.simulate_lrt(glm, glmm, n_sim=39, seed=1)
    >>> print(f"LR = {t.statistic:.1f}, p = {t.p_value:.3f}")   # 1/(39 + 1): no simulation reached 14.0
    LR = 14.0, p = 0.025
    """
    seed = seed_or_rng(seed, rng, "simulate_lrt")
    if int(n_sim) < 1:
        raise GlmmdiagError(f"n_sim must be a positive integer; got {n_sim!r}")
    n_sim = int(n_sim)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anova's REML note: said once below
        table = anova(m0, m1, names=["m0", "m1"])
    if table.index[0] != "m0":
        raise GlmmdiagError("m0 must be the smaller model (fewer parameters) and m1 the larger: swap them")
    if m0.reml or m1.reml:
        warnings.warn("refitting model(s) with ML (instead of REML)", UserWarning, stacklevel=2)
    m0, m1 = _ml(m0), _ml(m1)
    observed = float(table["Chisq"].iloc[1])
    draws = np.asarray(m0.simulate(n_sim, seed=seed, conditional=False), float)
    pairs = parallel_imap((delayed(_pair_statistic)(m0, m1, draws[:, b]) for b in range(n_sim)), n_jobs)
    stats_b = np.fromiter(track(pairs, n_sim, "bootstrap refits", progress), float, count=n_sim)
    ok = np.isfinite(stats_b)
    n_ok = int(ok.sum())
    if n_ok == 0:
        raise GlmmdiagError("every bootstrap refit failed: the test cannot be computed for these models")
    exceed = int(np.sum(stats_b[ok] >= observed - 1e-10 * max(1.0, abs(observed))))
    p = (1 + exceed) / (1 + n_ok)
    note = None
    if n_ok < n_sim:
        note = f"{n_sim - n_ok} of {n_sim} bootstrap refits failed and were left out"
        warnings.warn(note, RefitWarning, stacklevel=2)
    return TestResult(
        method="Parametric bootstrap likelihood ratio test (responses simulated from m0)",
        statistic=observed,
        statistic_name="LR",
        p_value=float(p),
        alternative="greater",
        data_name=f"m0: {m0.formula}; m1: {m1.formula}",
        parameter={"df": float(table["Df"].iloc[1])},
        estimate={"p_chisq": float(table["Pr(>Chisq)"].iloc[1])},
        mc_se=float(np.sqrt(p * (1 - p) / n_ok)),
        n_sim=n_ok,
        simulate_re="unconditional",
        note=note,
        plot_data={"simulated": stats_b[ok]},
    )
