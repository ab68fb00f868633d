"""``residual_tests``: the main tests together, with calibrated p-values when they are affordable.

Simulated residuals of a fitted model are judged against simulations from a fit to the same data,
so under a correct model the usual p-values are conservative at small n (benchmarks/calibration.py:
0-3% rejections at alpha = 0.05 with 300 rows). ``calibrated_tests`` repeats the whole procedure on
data sets simulated from the fit and refitted, which makes the p-values exact up to the estimation
error of the fitted parameters, at the cost of ``n_boot`` refits. ``residual_tests`` does so by
default when it is affordable: it times one bootstrap replicate (simulate, refit, simulate
residuals, test), estimates the cost of ``n_boot`` of them, and calibrates when the estimate is
within ``refit_budget`` seconds. At large n the refits are expensive and the calibration is not
needed: the parameters are then estimated precisely, and with the default residuals
(``pit="ranks"``) the uncalibrated tests keep their size at any n (benchmarks/calibration_large_n.py).

The decision depends on the measured time, so two runs on machines of different speed may use
different p-values; ``calibrate=True`` / ``False`` fixes it, and the result always says which
p-values were used (``ResidualTests.p_values``). Given the decision, the p-values depend only on
the seed, whatever ``n_jobs``.
"""
from __future__ import annotations

import dataclasses

from glmmdiag._arguments import seed_or_rng
from glmmdiag.errors import GlmmdiagError
from glmmdiag.results import ResidualTests, ScaledResiduals
from glmmdiag.checks._common import _check_res
from glmmdiag.checks.calibration import calibrated_tests, timed_first_replicate
from glmmdiag.checks.dispersion import dispersion_test
from glmmdiag.checks.outliers import outlier_test
from glmmdiag.checks.uniformity import uniformity_test

__all__ = ["residual_tests", "calibration_decision", "CalibrationDecision", "DEFAULT_REFIT_BUDGET",
           "DEFAULT_N_BOOT"]

#: seconds the automatic calibration may spend on its refits (``residual_tests``, ``glmmdiag check``)
DEFAULT_REFIT_BUDGET = 10.0
#: bootstrap refits of the automatic calibration
DEFAULT_N_BOOT = 100
BATTERY = ("uniformity", "dispersion", "outliers")


@dataclasses.dataclass(frozen=True)
class CalibrationDecision:
    """Whether the p-values are calibrated, and why.

    ``calibrated``: the decision; ``n_boot``: bootstrap refits; ``estimated_seconds``: the estimated
    time of the n_boot replicates (the CPU time of one timed replicate x n_boot / workers), None
    when no replicate was timed; ``timed_wall_seconds``: the wall time of that replicate; ``budget``: the refit budget in seconds; ``reason``: one sentence;
    ``first``: the timed replicate (reused by the calibration).
    """

    calibrated: bool
    n_boot: int
    estimated_seconds: float | None
    budget: float | None
    reason: str
    first: tuple | None = None
    timed_wall_seconds: float | None = None

    @property
    def p_values(self) -> str:
        """'calibrated (...)' or 'uncalibrated (...)': which p-values were used, and why."""
        return ("calibrated" if self.calibrated else "uncalibrated") + f" ({self.reason})"

    def to_dict(self) -> dict:
        return {"calibrated": self.calibrated, "n_boot": self.n_boot, "estimated_seconds": self.estimated_seconds,
                "timed_wall_seconds": self.timed_wall_seconds, "refit_budget": self.budget, "reason": self.reason}


def _not_calibratable(res: ScaledResiduals) -> str | None:
    """Why ``res`` cannot be calibrated by refits, or None."""
    m = res.model
    if m is None or not hasattr(m, "refit"):
        return "the model cannot be refitted"
    if res.method != "PIT":
        return "refit-based residuals"
    if res.group is not None:
        return "grouped residuals (recalculate_residuals)"
    if getattr(res, "rotation", None) == "given":
        return "residuals rotated by a given covariance matrix"
    return None


def _simulation_floor(res: ScaledResiduals) -> float:
    """About the CPU seconds of simulating n_sim + 1 responses from the model: a lower bound on one
    bootstrap replicate, which simulates its data set and n_sim responses from its refit, besides
    refitting. Timed on m = min(n_sim + 1, max(1, 10^5 // nobs)) responses (a throw-away random
    stream) and scaled by (n_sim + 1) / m; lets a large data set skip the timed refit."""
    import time

    import numpy as np

    m = int(min(res.n_sim + 1, max(1, 100_000 // max(1, res.nobs))))
    c0 = time.process_time()
    res.model.simulate(m, np.random.default_rng(0), False)
    return (time.process_time() - c0) * (res.n_sim + 1) / m


def calibration_decision(res: ScaledResiduals, calibrate="auto", refit_budget: float = DEFAULT_REFIT_BUDGET,
                         n_boot: int = DEFAULT_N_BOOT, *, tests=BATTERY, seed=None, n_jobs=1) -> CalibrationDecision:
    """Decide whether to calibrate the p-values of ``tests`` by ``n_boot`` refits.

    ``calibrate``: True (always; an error when the residuals cannot be calibrated), False (never)
    or "auto": run one bootstrap replicate, t_1 seconds of CPU time, and calibrate when the estimated
    total t_1 n_boot / w (w the joblib workers of ``n_jobs``) is at most ``refit_budget`` seconds
    (and the timed replicate worked). Before that, a lower bound from simulating one response
    (x (n_sim + 1) x n_boot / w) skips the timed refit when it already exceeds the budget. CPU time, not wall time: the decision should not depend on
    what else the machine runs.
    """
    from joblib import effective_n_jobs

    if calibrate not in (True, False, "auto"):
        raise GlmmdiagError(f"calibrate must be True, False or 'auto'; got {calibrate!r}")
    n_boot = int(n_boot)
    if n_boot < 1:
        raise GlmmdiagError("n_boot must be >= 1")
    budget = None if refit_budget is None else float(refit_budget)
    if calibrate is False:
        return CalibrationDecision(False, n_boot, None, budget, "calibrate=False")
    why = _not_calibratable(res)
    if why is not None:
        if calibrate is True:
            raise GlmmdiagError(f"calibrate=True: these residuals cannot be calibrated by refits ({why})")
        return CalibrationDecision(False, n_boot, None, budget, why)
    if calibrate is True:
        return CalibrationDecision(True, n_boot, None, budget, f"parametric bootstrap of {n_boot} refits, "
                                   f"calibrate=True")
    if budget is None or budget <= 0:
        return CalibrationDecision(False, n_boot, None, budget, "no refit budget")
    floor = _simulation_floor(res) * n_boot / max(1, min(effective_n_jobs(n_jobs), n_boot))
    if floor > budget:
        return CalibrationDecision(False, n_boot, floor, budget,
                                   f"{n_boot} refits would take at least {floor:.3g} s (each simulates "
                                   f"{res.n_sim + 1} responses), more than the refit budget of {budget:g} s")
    first, seconds, wall = timed_first_replicate(res, tests, seed)
    estimate = seconds * n_boot / max(1, min(effective_n_jobs(n_jobs), n_boot))
    if first[1] is not None:
        return CalibrationDecision(False, n_boot, estimate, budget, f"the timed bootstrap refit failed: {first[1]}",
                                   timed_wall_seconds=wall)
    if estimate > budget:
        return CalibrationDecision(False, n_boot, estimate, budget,
                                   f"{n_boot} refits would take about {estimate:.3g} s, more than the refit "
                                   f"budget of {budget:g} s", timed_wall_seconds=wall)
    return CalibrationDecision(True, n_boot, estimate, budget,
                               f"parametric bootstrap of {n_boot} refits, estimated {estimate:.3g} s within the "
                               f"refit budget of {budget:g} s", first, wall)


def residual_tests(
    res: ScaledResiduals,
    *,
    calibrate="auto",
    refit_budget: float = DEFAULT_REFIT_BUDGET,
    n_boot: int = DEFAULT_N_BOOT,
    seed=None,
    n_jobs=1,
    rng=None,
) -> ResidualTests:
    """Uniformity (KS), dispersion (default kind) and outliers (default type) together.

    Parameters
    ----------
    res : ScaledResiduals
    calibrate : "auto" (default), True or False
        Calibrated p-values (``calibrated_tests``: a parametric bootstrap of the whole procedure,
        ``n_boot`` refits) instead of the raw ones. "auto": when one timed bootstrap replicate
        says that ``n_boot`` of them take at most ``refit_budget`` seconds (with ``n_jobs``
        workers); the raw p-values otherwise, and for residuals that cannot be calibrated (no
        refit, grouped or refit-based residuals).
    refit_budget : float, default 10
        Seconds the automatic calibration may spend.
    n_boot : int, default 100
    seed, n_jobs
        For ``calibrated_tests`` (default seed: derived from ``res.seed``; ``rng=`` is accepted as the
        same argument).

    Returns
    -------
    ResidualTests
        ``p_values`` says which p-values were used and why; ``calibration`` holds the decision
        (estimated seconds, budget). Calibrated tests keep the raw p-value in ``estimate``.

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
    uniformity       0.10     0.01
    dispersion       3.05     0.01
    outliers        26.00     0.00
    >>> tests.verdict
    'non-uniform (KS p = 0.014); overdispersion 3.0 (p = 0.014); outliers (p = 0.0099)'

    With 644 rows the 100 refits fit the default refit budget, so these p-values are calibrated
    (a parametric bootstrap of the whole procedure) and the verdict reads them Holm-adjusted:

    >>> tests.p_values.split(" (")[0]
    'calibrated'

    Knowing the family, the result names what to fit next:

    >>> print(tests.with_family("poisson").remedies()[0].specs)
    ('nbinom2', 'nbinom1', 'poisson; olre=yes')
    """
    seed = seed_or_rng(seed, rng, "residual_tests")
    res = _check_res(res)
    family = res.family_name if res.family_name not in ("", "unknown") else None
    raw = {"uniformity": uniformity_test(res), "dispersion": dispersion_test(res), "outliers": outlier_test(res)}
    decision = calibration_decision(res, calibrate, refit_budget, n_boot, tests=BATTERY, seed=seed, n_jobs=n_jobs)
    tests = raw
    if decision.calibrated:
        tests = calibrated_tests(res, decision.n_boot, BATTERY, seed=seed, n_jobs=n_jobs, _first=decision.first,
                                 _raw=raw)
    return ResidualTests(tests["uniformity"], tests["dispersion"], tests["outliers"], family=family,
                         p_values=decision.p_values, calibration=decision.to_dict())
