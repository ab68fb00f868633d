"""Any summary of the response, observed against simulated (DHARMa's testGeneric)."""
from __future__ import annotations


import numpy as np

from glmmdiag.residuals import replay
from glmmdiag.results import ScaledResiduals, TestResult
from glmmdiag.simulate import Reductions
from glmmdiag.checks._common import _alt, _check_res, _observed_vs_simulated


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
