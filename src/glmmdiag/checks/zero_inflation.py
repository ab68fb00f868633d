"""Observed against simulated numbers of zeros."""
from __future__ import annotations


import numpy as np

from glmmdiag.results import ScaledResiduals, TestResult
from glmmdiag.checks._common import _alt, _check_res, _observed_vs_simulated


def zero_inflation_test(res: ScaledResiduals, alternative: str = "two-sided") -> TestResult:
    """Observed number of zeros against the simulated numbers; statistic = observed / mean simulated."""
    res = _check_res(res)
    alt = _alt(alternative)
    obs, sims = res.obs_stats["zeros"], res.sim_stats["zeros"]
    return _observed_vs_simulated(res, obs, sims, alt, "Zero-inflation test: observed vs simulated number of zeros",
                                  "ratioObsSim", int(np.size(sims)))
