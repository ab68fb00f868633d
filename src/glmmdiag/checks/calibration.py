"""Tests with p-values calibrated by a parametric bootstrap of the whole procedure."""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from glmmdiag._arguments import seed_or_rng
from glmmdiag._rng import child_generator
from glmmdiag.errors import FitError, GlmmdiagError
from glmmdiag.results import ScaledResiduals, TestResult
from glmmdiag.checks._common import _check_res
from glmmdiag.checks.pvalues import _conservative_rank_pvalue, randomised_rank_pvalue
from glmmdiag.checks.dispersion import dispersion_test
from glmmdiag.checks.outliers import outlier_test
from glmmdiag.checks.quantiles import quantile_test
from glmmdiag.checks.uniformity import uniformity_test
from glmmdiag.checks.zero_inflation import zero_inflation_test


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


def _simulation_options(res) -> dict:
    """How ``res`` was simulated (mode, chunks, residual definition, rotation), to make the residuals
    of each bootstrap data set the same way."""
    rot = getattr(res, "rotation", None)
    if rot == "given":
        raise GlmmdiagError("calibration cannot replay a given rotation matrix on refitted models; use "
                            "rotation='estimated' or None")
    src = res._source or {}
    return {"simulate_re": res.simulate_re, "chunk_size": res.chunk_size, "pit": getattr(res, "pit", "dharma"),
            "rotation": rot, "rotation_blocks": src.get("rotation_blocks")}


def _bootstrap_pvalues(model, b, root, n_sim, options, names):
    """(statistic and raw p-value of each test, for bootstrap data set b; error message or None)."""
    from glmmdiag.residuals import simulate_residuals
    from glmmdiag._rng import child_seed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            y_b = np.asarray(model.simulate(1, child_generator(root, 3, b), False), float)[:, 0]
            m_b = model.refit(y_b)
            res_b = simulate_residuals(m_b, n_sim, seed=child_seed(root, 4, b), **options)
            out = []
            for k in names:
                t = _CALIBRATABLE[k][0](res_b)
                out += [float(t.statistic), float(t.p_value)]
            return out, None
        except Exception as exc:  # a failed refit is dropped (and reported if all fail)
            return [math.nan] * (2 * len(names)), f"{type(exc).__name__}: {exc}"


def _calibration_root(res, seed):
    from glmmdiag._rng import root_seed

    return root_seed(seed if seed is not None else np.random.SeedSequence(res.seed).spawn(1)[0])


def timed_first_replicate(res: ScaledResiduals, tests, seed=None) -> tuple[tuple, float, float]:
    """Bootstrap data set 0 of ``calibrated_tests(res, tests=tests, seed=seed)`` (simulate, refit,
    simulate residuals, test), its CPU time and its wall time in seconds: the cost of one bootstrap
    replicate, from which the cost of n_boot is estimated (``residual_tests``' refit budget). The
    CPU time (``time.process_time``) is what the replicate costs whatever else runs on the
    machine; the wall time grows with the load. Pass the first element as ``_first`` to
    ``calibrated_tests`` to reuse it."""
    import time

    names = list(tests)
    root = _calibration_root(res, seed)
    t0, c0 = time.perf_counter(), time.process_time()
    row = _bootstrap_pvalues(res.model, 0, root, res.n_sim, _simulation_options(res), names)
    return row, time.process_time() - c0, time.perf_counter() - t0


def calibrated_tests(
    res: ScaledResiduals,
    n_boot: int = 100,
    tests=("uniformity", "dispersion", "outliers", "zero_inflation", "quantiles"),
    *,
    seed=None,
    n_jobs=1,
    _first=None,
    _raw: dict | None = None,
    rng=None,
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
    Monte-Carlo SE. The bootstrap residuals are made as ``res`` was (n_sim, simulation mode, chunk
    size, residual definition ``pit``, rotation). (``_first``: bootstrap data set 0 already computed
    by ``timed_first_replicate``; ``_raw``: the raw tests already computed.)
    """
    seed = seed_or_rng(seed, rng, "calibrated_tests")
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
    root = _calibration_root(res, seed)
    from joblib import Parallel, delayed, effective_n_jobs

    args = (root, res.n_sim, _simulation_options(res), names)
    todo = range(0 if _first is None else 1, n_boot)
    if effective_n_jobs(n_jobs) == 1:
        P = [_bootstrap_pvalues(m, b, *args) for b in todo]
    else:
        P = Parallel(n_jobs=n_jobs)(delayed(_bootstrap_pvalues)(m, b, *args) for b in todo)
    if _first is not None:
        P = [_first] + list(P)
    errors = sorted({e for _, e in P if e})
    P = np.array([p for p, _ in P], float).reshape(n_boot, 2 * len(names))
    out = {}
    for k, name in enumerate(names):
        fn, how = _CALIBRATABLE[name]
        raw = _raw[name] if _raw is not None and name in _raw else fn(res)
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
            tie_note = ("; every bootstrap value ties with the observed one: the calibrated p-value is a pure "
                        "random draw (the test carries no information for these data)")
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
