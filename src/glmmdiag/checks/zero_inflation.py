"""Observed against simulated numbers of zeros."""
from __future__ import annotations


import numpy as np

from glmmdiag.results import ScaledResiduals, TestResult
from glmmdiag.checks._common import _alt, _check_res, _observed_vs_simulated


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
