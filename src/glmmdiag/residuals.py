"""Simulated scaled quantile residuals.

``simulate_residuals(model, n_sim)`` draws n_sim responses per observation from the fitted model
and returns a randomised PIT of each observation within its simulations. With
less_i = #{y*_ij < y_i}, ties_i = #{y*_ij = y_i} and u_i ~ Uniform(0, 1):

``pit="ranks"`` (the default): the randomised rank of y_i among the n_sim + 1 values
{y_i, y*_i1, ..., y*_in_sim},

    r_i = (less_i + u_i (ties_i + 1)) / (n_sim + 1).

When y_i is exchangeable with its simulations (the model is right, with its true parameters), the
rank of y_i with ties broken at random is uniform on {0, ..., n_sim} and the fractional part is an
independent Uniform(0, 1), so r_i ~ Uniform(0, 1) exactly, for any n_sim, any response (integer,
continuous, with ties) and any number of observations. No grid: a KS or quantile test on these
residuals is not fooled by the 1/(n_sim + 1) granularity however large n is, and an outlier
(a residual in an extreme cell, r < 1/(n_sim + 1) or r >= n_sim/(n_sim + 1): the observation is
below or above all its simulations, ties broken at random) has probability exactly 2/(n_sim + 1).

``pit="dharma"``: DHARMa's definition,

    L_i = less_i / n_sim,  U_i = (less_i + ties_i) / n_sim,
    r_i = L_i if L_i == U_i else L_i + u_i (U_i - L_i).

For a continuous response r_i lies on the grid {0, 1/n_sim, ..., 1} with P(r_i = k/n_sim) =
1/(n_sim + 1): not uniform; at large n the KS test detects the grid (D ~ 1/(2 (n_sim + 1))) and the
quantile test its offset, and for integer responses the outlier rate has no exact expectation.
Kept to compare with R (DHARMa's simulateResiduals).

Simulations stream in chunks (simulate.py); the tie-breaking uniforms u come from their own stream
(spawn key (1, 0)), so residuals are bit-identical for any ``n_jobs``.

``recalculate_residuals(res, group)`` aggregates observed and simulated responses per group (sum by
default) and recomputes the residuals from the same simulations (replayed from their seeds when
they were not kept), with the same definition.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from joblib import Parallel, delayed, effective_n_jobs

from glmmdiag._arguments import seed_or_rng
from glmmdiag._rng import child_generator, root_seed
from glmmdiag.adapters import as_simulable
from glmmdiag.errors import FitError, GlmmdiagError, GlmmdiagWarning, RefitWarning
from glmmdiag.results import ScaledResiduals
from glmmdiag.rotation import (MAX_BLOCK, correlation_blocks, estimated_rotation, given_rotation,
                                structured_terms)
from glmmdiag.simulate import (BlockMoments, Reductions, SimulationPlan, default_chunk_size, row_variances,
                               stream)

__all__ = ["simulate_residuals", "recalculate_residuals", "pit_residuals", "replay"]

_MODES = ("conditional", "unconditional")


PIT_DEFINITIONS = ("ranks", "dharma")


def pit_residuals(less, leq, n_sim: int, rng, pit: str = "ranks") -> np.ndarray:
    """Randomised PIT residuals from the counts less = #{sims < y} and leq = #{sims <= y}.

    ``pit="ranks"``: r = (less + u (leq - less + 1)) / (n_sim + 1), the randomised rank of the
    observation among itself and its n_sim simulations (exactly Uniform(0, 1) when they are
    exchangeable). ``pit="dharma"``: r = L if L == U else L + u (U - L), L = less / n_sim,
    U = leq / n_sim (DHARMa). u ~ Uniform(0, 1); one uniform is drawn per row (used or not), so
    the stream position does not depend on the data.
    """
    pit = _check_pit(pit)
    less = np.asarray(less, float)
    leq = np.asarray(leq, float)
    u = rng.random(less.shape[0])
    if pit == "ranks":
        return (less + u * (leq - less + 1.0)) / (n_sim + 1.0)
    lo, hi = less / n_sim, leq / n_sim
    return np.where(hi > lo, lo + u * (hi - lo), lo)


def _check_pit(pit) -> str:
    if pit not in PIT_DEFINITIONS:
        raise GlmmdiagError(f"pit must be one of {list(PIT_DEFINITIONS)}; got {pit!r}")
    return str(pit)


def _check_n_sim(n_sim) -> int:
    if isinstance(n_sim, bool) or not isinstance(n_sim, (int, np.integer)):
        raise TypeError(f"n_sim must be an integer >= 2; got {n_sim!r}")
    if n_sim < 2:
        raise GlmmdiagError(f"n_sim must be >= 2 (at least two simulations are needed); got {n_sim}")
    return int(n_sim)


def simulate_residuals(
    model,
    n_sim: int | None = None,
    *,
    seed=None,
    n_jobs=1,
    simulate_re: str | None = None,
    refit: bool = False,
    keep_simulations: bool = False,
    chunk_size: int | None = None,
    summaries: dict | None = None,
    refit_batch: int | None = None,
    rotation="auto",
    rotation_blocks=None,
    pit: str = "ranks",
    rng=None,
) -> ScaledResiduals:
    """Scaled quantile residuals of ``model`` from ``n_sim`` simulated responses.

    Parameters
    ----------
    model
        A glmmdiag fit, a statsmodels GLM result, ``from_simulations(...)``, or any object with
        the ``SimulableModel`` members (protocol.py).
    n_sim : int, default 250
        Number of simulations (>= 2). For ``from_simulations`` the default is every given column.
    seed : None, int, SeedSequence or Generator
        Root of every random stream. None draws fresh entropy, recorded in ``res.seed``.
        ``rng=`` is accepted as the same argument (numpy's SPEC 7 name).
    n_jobs : int or None, default 1
        Workers (-1: all cores). The residuals do not depend on it. The first chunk of
        simulations is timed and sets how the rest run: in this process when they are estimated
        below 20 ms of work or with fewer than 256 rows; on threads up to 2 s (numpy's generators
        release the GIL; the sampler of non-gaussian glmmdiag fits is thread-safe; never with
        ``summaries``); on joblib's worker processes beyond (they cost about a second to start).
        None defers to an enclosing ``joblib.parallel_config(...)`` (e.g. ``backend="dask"``; see
        simulate.py).
    simulate_re : "conditional", "unconditional" or None (default)
        Simulate conditional on the fitted random effects (DHARMa >= 0.5's default) or with new
        random effects drawn from their estimated distribution. None chooses: "unconditional" for
        a model with a time or distance structured term (``ar1``, ``toep``, ``ou``, ``exp``, ``gau``,
        ``mat``), "conditional" otherwise. Such a term has one coefficient per observation (per
        time of a series, per location), so conditional simulation keeps the fitted field, which
        has absorbed most of the noise: on the correct ``y ~ x + ar1(times + 0 | group)`` model of
        ``ar1_sim`` the residuals then fail the uniformity and dispersion tests (measured:
        KS p = 1e-9, dispersion ratio 0.37). Unconditional simulation redraws the field.
    rotation : "auto" (default), "estimated", None, or an (nobs, nobs) covariance matrix
        Rotate (decorrelate) observed and simulated responses by L^-1, Sigma = L L', before the
        PIT (DHARMa >= 0.4.7; see ``glmmdiag.rotation``). "estimated": Sigma estimated per block of
        correlated rows from the simulations and the observed response, with shrinkage of the
        correlations (a second pass over the same simulations, replayed from their seeds). A
        matrix: that covariance (one block). "auto": "estimated" when the model has a time or
        distance structured term and the simulation is unconditional, None otherwise. Without
        rotation, residuals of such a model stay correlated within a series (a temporal or spatial
        test fires on the correct model: on ``ar1_sim``, Durbin-Watson p < 1e-15); with it they
        pass the uniformity, dispersion and autocorrelation tests (measured in
        tests/test_rotation.py and benchmarks/calibration.py's ``ar1`` scenarios). The
        dispersion, zero-inflation and generic tests and the outlier bootstrap still compare the
        unrotated responses (``res.observed`` is unrotated); ``recalculate_residuals`` aggregates
        unrotated responses.
    rotation_blocks : (nobs,) labels, optional
        The blocks of correlated rows for ``rotation="estimated"``. Default: the connected
        components of "shares a level of a random-effects term" (the series of an ``ar1`` term;
        one block for a single-level spatial term), every row in one block for models that do not
        say. At most ``glmmdiag.rotation.MAX_BLOCK`` rows per block.
    refit : bool
        Refit the model to every simulated response (a parametric bootstrap; one joblib task per
        refit, warm-started) and rank the observed model's response residual y - mu_cond among the
        refitted models' residuals, with the same randomised-PIT rule. Enables the refit-based
        dispersion test. Much slower; the model needs ``refit``.
    keep_simulations : bool
        Keep the (nobs, n_sim) matrix in ``res.simulations`` (memory O(nobs x n_sim)). Otherwise
        only counts and per-simulation summaries are kept and simulations are replayed from their
        seeds when a later test needs them.
    chunk_size : int, optional
        Simulations per random stream (default: ~2M values per chunk, at most 64). Part of what
        makes a result reproducible: the same seed with another chunk size gives other draws.
    summaries : dict name -> function, optional
        Extra per-simulation summaries fn(response vector) -> float to accumulate while streaming
        (available to ``generic_test`` without replaying).
    refit_batch : int, optional
        Refits per joblib task (default: about four tasks per worker, so each worker receives the
        model a few times only; 1 gives one task per refit, e.g. for a dask/ray cluster).
    pit : "ranks" (default) or "dharma"
        The residual definition (module docstring). "ranks": the randomised rank of the
        observation among itself and its simulations, r = (less + u (ties + 1)) / (n_sim + 1):
        exactly Uniform(0, 1) under the model whatever n, n_sim and the response type, so the
        tests keep their size at any n (with "dharma" at n = 10^6 a correct Poisson GLMM fails
        the KS, quantile and outlier tests: tests/test_large_n.py). It is the default for that
        reason. "dharma": DHARMa's definition (residuals on the 1/n_sim grid, 0 and 1 for
        observations outside the simulations), to compare with R.

    Examples
    --------
    >>> import numpy as np
    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> rust = datasets.load("rust")
    >>> fit = glmmdiag.glmm("severity ~ fungicide + (1 | block)", rust, family="beta")
    >>> res = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1)
    >>> res
    ScaledResiduals(PIT, conditional, n_sim=250, nobs=48, family='beta')
    >>> bool(np.all((res.residuals >= 0) & (res.residuals <= 1)))
    True

    The same seed gives the same residuals (whatever ``n_jobs``):

    >>> again = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1)
    >>> bool(np.array_equal(res.residuals, again.residuals))
    True
    """
    seed = seed_or_rng(seed, rng, "simulate_residuals")
    pit = _check_pit(pit)
    m = as_simulable(model)
    fixed = getattr(m, "simulations", None)
    if n_sim is None:
        n_sim = fixed.shape[1] if fixed is not None else 250
    n_sim = _check_n_sim(n_sim)
    if fixed is not None and n_sim > fixed.shape[1]:
        raise GlmmdiagError(f"n_sim = {n_sim} but only {fixed.shape[1]} simulations were given")
    structured = structured_terms(m)
    if simulate_re is None:
        simulate_re = "unconditional" if structured else "conditional"
    if simulate_re not in _MODES:
        raise GlmmdiagError(f"simulate_re must be 'conditional' or 'unconditional'; got {simulate_re!r}")
    if isinstance(rotation, str):
        if rotation not in ("auto", "estimated"):
            raise GlmmdiagError(f"rotation must be 'auto', 'estimated', None or a covariance matrix; got {rotation!r}")
        if rotation == "auto":
            rotation = "estimated" if (structured and simulate_re == "unconditional" and fixed is None) else None
    if rotation is not None and refit:
        raise GlmmdiagError("rotation is not available with refit=True (refit residuals are not simulated responses)")
    if chunk_size is None:
        chunk_size = default_chunk_size(m.nobs)
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise GlmmdiagError(f"chunk_size must be >= 1; got {chunk_size}")
    y = np.asarray(m.observed(), float)
    n = int(m.nobs)
    if y.shape != (n,):
        raise GlmmdiagError(f"the model's observed response has shape {y.shape}; expected ({n},)")
    if not np.all(np.isfinite(y)):
        raise GlmmdiagError(f"the observed response has {int((~np.isfinite(y)).sum())} NaN/infinite values")
    fitted = np.asarray(m.fitted(), float)
    if fitted.shape != (n,):
        raise GlmmdiagError(f"the model's fitted values have shape {fitted.shape}; expected ({n},)")
    trials = np.asarray(m.trials(), float)
    root = root_seed(seed)
    plan = SimulationPlan(n_sim, chunk_size, root, simulate_re == "conditional")
    mode = "given" if fixed is not None else simulate_re
    for msg in getattr(m, "simulation_warnings", lambda: [])():
        warnings.warn(msg, GlmmdiagWarning, stacklevel=2)

    centres = {"spread": fitted}
    if np.any(trials != 1.0):
        centres["spread_expected"] = trials * fitted
    summaries = dict(summaries or {})
    if refit:
        return _refit_residuals(m, plan, y, fitted, trials, mode, n_jobs, keep_simulations, centres, summaries,
                                refit_batch, pit)

    rot = None
    moments = None
    if isinstance(rotation, str):
        blocks = correlation_blocks(m, _labels(rotation_blocks, n))
        _check_rotation_blocks(blocks)
        moments = BlockMoments(np.concatenate(blocks), np.array([b.size for b in blocks]), trials * fitted)
    red = Reductions(target=None if rotation is not None else y, centres=centres, zeros=True, summaries=summaries,
                     keep=keep_simulations, blocks=moments)
    out = stream(m, plan, red, n_jobs=n_jobs)
    for msg in out.warnings:
        warnings.warn(f"while simulating: {msg}", GlmmdiagWarning, stacklevel=2)
    less, leq = out.less, out.leq
    if rotation is not None:
        if isinstance(rotation, str):
            rot = estimated_rotation(blocks, out.block_moments, y, trials * fitted, n_sim)
        else:
            rot = given_rotation(rotation, n)
        R = rot.matrix
        if out.kept is not None:
            T = np.asarray(R @ out.kept)
            yr = R @ y
            less = np.count_nonzero(T < yr[:, None], axis=1)
            leq = less + np.count_nonzero(T == yr[:, None], axis=1)
        else:
            rout = stream(m, plan, Reductions(target=R @ y, agg=R), n_jobs=n_jobs)
            less, leq = rout.less, rout.leq
    r = pit_residuals(less, leq, n_sim, child_generator(root, 1, 0), pit)
    obs_stats = _observed_stats(y, centres, summaries)
    return ScaledResiduals(
        residuals=r,
        observed=y,
        fitted=fitted,
        trials=trials,
        integer_response=bool(m.integer_response),
        n_sim=n_sim,
        simulate_re=mode,
        method="PIT",
        seed=root.entropy,
        chunk_size=chunk_size,
        counts_less=less,
        counts_leq=leq,
        sim_stats=out.sim_stats,
        obs_stats=obs_stats,
        family_name=getattr(m, "family_name", "unknown"),
        simulations=out.kept,
        model=m,
        rotation=None if rot is None else rot.kind,
        pit=pit,
        _source={"plan": plan, "agg": None, "rotation": rot, "rotation_blocks": _labels(rotation_blocks, n)},
    )


def _labels(labels, n):
    if labels is None:
        return None
    if isinstance(labels, (pd.Series, pd.Index)):
        labels = labels.to_numpy()
    return np.asarray(labels)


def _check_rotation_blocks(blocks):
    big = max(b.size for b in blocks)
    if big > MAX_BLOCK:
        raise GlmmdiagError(
            f"rotation needs the joint covariance of {big} correlated observations (one block); at most "
            f"{MAX_BLOCK} are supported. Give smaller blocks with rotation_blocks= (e.g. the series), or "
            f"use rotation=None"
        )


def _observed_stats(y, centres, summaries) -> dict:
    obs = {name: float(row_variances(y - c)[0]) for name, c in centres.items()}
    obs["zeros"] = float(np.count_nonzero(y == 0))
    for name, fn in summaries.items():
        obs[name] = float(fn(y))
    return obs


# ---------------------------------------------------------------------------------- refit
def _refit_one(model, y_new):
    """Refit to one simulated response: (response residual, Pearson chi2, fixef, converged, warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            m = model.refit(y_new)
            mu = np.asarray(m.conditional_fitted(), float)
            e = y_new - np.asarray(m.trials(), float) * mu
            pe = np.asarray(m.pearson_residuals(), float)
            conv = bool(getattr(m, "converged", True))
            fe = np.asarray(getattr(m, "fixef", np.zeros(0)), float)
            ok = bool(np.all(np.isfinite(e)) and np.all(np.isfinite(pe)))
            return (e if ok else None), float(np.sum(pe * pe)), fe, conv, sorted({str(w.message) for w in caught}), None
        except Exception as exc:  # a failed refit is recorded, not fatal
            return None, np.nan, None, False, [], f"{type(exc).__name__}: {exc}"


def _refit_many(model, Y):
    return [_refit_one(model, Y[:, j].copy()) for j in range(Y.shape[1])]


def _refit_residuals(m, plan, y, fitted, trials, mode, n_jobs, keep, centres, summaries, refit_batch=None,
                     pit="ranks"):
    for need in ("refit", "conditional_fitted", "pearson_residuals"):
        if not hasattr(m, need):
            raise TypeError(
                f"refit=True needs a model that can be refitted; this {type(m).__name__} has no {need}()"
            )
    red = Reductions(centres=centres, zeros=True, summaries=summaries, keep=True)
    sims = stream(m, plan, red, n_jobs=n_jobs)
    S = sims.kept
    jobs = effective_n_jobs(n_jobs)
    if jobs == 1:
        outs = [_refit_one(m, S[:, j].copy()) for j in range(plan.n_sim)]
    else:
        # refits are grouped into ~4 tasks per worker: each task receives the model once
        if refit_batch is None:
            refit_batch = max(1, -(-plan.n_sim // (4 * jobs)))
        groups = [list(range(a, min(a + refit_batch, plan.n_sim))) for a in range(0, plan.n_sim, refit_batch)]
        parts = Parallel(n_jobs=n_jobs)(delayed(_refit_many)(m, S[:, g]) for g in groups)
        outs = [o for part in parts for o in part]
    ok = [j for j, o in enumerate(outs) if o[0] is not None]
    failed = plan.n_sim - len(ok)
    if len(ok) < 2:
        errs = sorted({o[5] for o in outs if o[5]})
        raise FitError(f"only {len(ok)} of {plan.n_sim} refits to the simulated responses succeeded (errors: "
                       f"{errs[:3]}); use refit=False (the default) or simplify the model")
    if failed:
        warnings.warn(f"{failed} of {plan.n_sim} refits failed and were dropped", RefitWarning, stacklevel=3)
    E = np.column_stack([outs[j][0] for j in ok])
    pearson_sims = np.array([outs[j][1] for j in ok])
    fixefs = np.array([outs[j][2] for j in ok]) if outs[ok[0]][2] is not None and outs[ok[0]][2].size else None
    nconv = sum(1 for j in ok if not outs[j][3])
    if nconv:
        warnings.warn(f"{nconv} of {len(ok)} refits reported convergence problems", RefitWarning, stacklevel=3)
    if fixefs is not None and fixefs.shape[0] > 1:
        dup = len(np.unique(np.round(fixefs, 12), axis=0)) < fixefs.shape[0]
        if dup:
            warnings.warn("some refits returned identical fixed effects (possible non-convergence)", RefitWarning,
                          stacklevel=3)
    mu_c = np.asarray(m.conditional_fitted(), float)
    e_obs = y - trials * mu_c
    pe_obs = np.asarray(m.pearson_residuals(), float)
    less = np.count_nonzero(E < e_obs[:, None], axis=1)
    leq = less + np.count_nonzero(E == e_obs[:, None], axis=1)
    n_ok = len(ok)
    r = pit_residuals(less, leq, n_ok, child_generator(plan.seed, 1, 0), pit)
    sim_stats = {k: v[ok] for k, v in sims.sim_stats.items()}
    refit_info = {
        "pearson_obs": float(np.sum(pe_obs * pe_obs)),
        "pearson_sims": pearson_sims,
        "fixef": fixefs,
        "n_failed": failed,
        "n_not_converged": nconv,
        "residuals_obs": e_obs,
        "residuals_sims": E,
    }
    return ScaledResiduals(
        residuals=r,
        observed=y,
        fitted=fitted,
        trials=trials,
        integer_response=bool(m.integer_response),
        n_sim=n_ok,
        simulate_re=mode,
        method="refit",
        seed=plan.seed.entropy,
        chunk_size=plan.chunk_size,
        counts_less=less,
        counts_leq=leq,
        sim_stats=sim_stats,
        obs_stats=_observed_stats(y, centres, summaries),
        family_name=getattr(m, "family_name", "unknown"),
        simulations=S[:, ok] if keep else None,
        refit=refit_info,
        model=m,
        pit=pit,
        _source={"plan": plan, "agg": None, "columns": np.array(ok)},
    )


# ---------------------------------------------------------------------------------- replay
def replay(res: ScaledResiduals, red: Reductions, n_jobs=1):
    """Run reductions over the same simulations as ``res``, at the level of its residuals (per group
    after ``recalculate_residuals``): the kept matrix when there is one, else replayed from seeds."""
    src = res._source
    if src is None or res.model is None:
        raise GlmmdiagError("these residuals carry no simulation source (were they made by simulate_residuals?)")
    plan, agg = src["plan"], src["agg"]
    if red.agg is not None:
        raise GlmmdiagError("replay applies the residuals' own aggregation; pass Reductions without agg")
    if res.simulations is not None:
        S = res.simulations
        return stream(_MatrixSource(S), SimulationPlan(S.shape[1], plan.chunk_size, plan.seed, plan.conditional), red)
    if res.method == "refit":
        raise GlmmdiagError("refit-based residuals keep no simulations; use keep_simulations=True")
    if agg is not None:
        red = _with_agg(red, agg)
    return stream(res.model, plan, red, n_jobs=n_jobs)


class _MatrixSource:
    def __init__(self, S):
        self.simulations = S
        self.nobs = S.shape[0]


def _with_agg(red: Reductions, agg) -> Reductions:
    import dataclasses

    return dataclasses.replace(red, agg=agg)


def _selection(res: ScaledResiduals, sel, data=None) -> np.ndarray:
    """Positions of the selected rows: ``sel`` a boolean mask (one per residual or per row of the
    fitting data, a column name of ``data``) or integer positions (of the residuals)."""
    from glmmdiag.checks._columns import per_row

    n = res.nobs
    if sel is None:
        return np.arange(n)
    if not isinstance(sel, str):
        arr = np.asarray(sel.to_numpy() if isinstance(sel, (pd.Series, pd.Index)) else sel)
        if arr.ndim == 1 and arr.dtype != bool and arr.size and np.issubdtype(arr.dtype, np.integer):
            if np.any(arr < 0) or np.any(arr >= n):
                raise GlmmdiagError(f"sel has positions outside 0..{n - 1}")
            if np.unique(arr).size != arr.size:
                raise GlmmdiagError("sel has repeated positions")
            return np.sort(arr)
    mask = per_row(res, sel, "sel", data)
    if mask.isna().any() or not pd.api.types.is_bool_dtype(mask.dtype):
        raise GlmmdiagError(f"sel must be a boolean mask (or integer positions); got dtype {mask.dtype}")
    idx = np.flatnonzero(mask.to_numpy(bool))
    if idx.size == 0:
        raise GlmmdiagError("sel selects no rows")
    return idx


def _group_matrix(group, n: int, rows=None):
    """(P, labels, codes): P (k x n) sums the rows ``rows`` (default all) within the k groups of
    ``group`` (labels of the selected rows, in the order of ``rows``)."""
    rows = np.arange(n) if rows is None else np.asarray(rows)
    if isinstance(group, (pd.Series, pd.Index)):
        g = group.to_numpy()
    else:
        g = np.asarray(group)
    if g.ndim != 1:
        raise GlmmdiagError(f"group must be one-dimensional; got shape {g.shape}")
    if g.shape[0] != rows.size:
        raise GlmmdiagError(f"group has {g.shape[0]} values but the residuals have {rows.size} observations (one label per row)")
    if pd.isna(pd.Series(g)).any():
        raise GlmmdiagError("group has missing values")
    codes, uniques = pd.factorize(g, sort=True)
    P = sp.csr_matrix((np.ones(rows.size), (codes, rows)), shape=(len(uniques), n))
    return P, np.asarray(uniques), codes


def recalculate_residuals(res: ScaledResiduals, group=None, aggregate: str = "sum", *, sel=None, data=None, seed=None,
                          n_jobs=1, rng=None) -> ScaledResiduals:
    """Residuals per group: observed, fitted and every simulation aggregated within each group.

    ``group``: one label per residual, one per row of the fitting data (its fitted rows are taken),
    or a column name looked up in ``data`` (the data frame the model was fitted to, after its
    missing-value mask) or among the grouping factors the model knows. ``sel`` (DHARMa's ``sel``):
    only these rows -- a boolean mask (same forms as ``group``) or integer positions of the
    residuals; combined with ``group``, the selected rows are aggregated within their groups;
    without ``group``, the residuals of the selected rows are recomputed (labels: their positions).

    DHARMa's ``recalculateResiduals``. ``aggregate`` is "sum" (default; keeps the residuals uniform
    under the model) or "mean" (means over the rows of a group: for equal-sized groups identical
    to the sum; otherwise uniformity is not guaranteed, as DHARMa warns). The simulations are the
    same as in ``res``: taken from ``res.simulations`` when kept, replayed from their seeds
    otherwise (no extra memory). Tie-breaking uses a fresh stream: ``seed`` (default: derived from
    ``res.seed``, so the result is reproducible). Refit-based residuals aggregate the response
    residuals of the observed and refitted models instead.

    Examples
    --------
    Bernoulli responses cannot be overdispersed one by one; summed per district they can:

    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> df = datasets.load("Contraception")
    >>> glm = glmmdiag.glmm("use ~ age + I(age^2) + urban + livch", df, family="binomial")
    >>> res = glmmdiag.simulate_residuals(glm, n_sim=250, seed=1)
    >>> per_district = glmmdiag.recalculate_residuals(res, df["district"])
    >>> per_district.nobs
    60
    >>> t = glmmdiag.dispersion_test(per_district)
    >>> print(f"dispersion {t.statistic:.1f}, p = {t.p_value:.3f}")
    dispersion 4.2, p = 0.000
    """
    seed = seed_or_rng(seed, rng, "recalculate_residuals")
    if aggregate not in ("sum", "mean"):
        raise GlmmdiagError(f"aggregate must be 'sum' or 'mean'; got {aggregate!r}")
    if res.group is not None:
        raise GlmmdiagError("these residuals are already grouped; recalculate from the original residuals")
    from glmmdiag.checks._columns import per_row

    n = res.nobs
    if group is None and sel is None:
        raise GlmmdiagError("give group= (labels or a column name), sel= (rows), or both")
    rows = _selection(res, sel, data)
    if group is None:
        g = rows
    else:
        g = per_row(res, group, "group", data).to_numpy()[rows]
    P, labels, codes = _group_matrix(g, n, rows)
    if aggregate == "mean":
        sizes = np.asarray(P.sum(axis=1)).ravel()
        P = sp.diags(1.0 / sizes) @ P
    P = P.tocsr()
    plan = res._source["plan"]
    rng = child_generator(root_seed(seed), 1, 0) if seed is not None else child_generator(plan.seed, 1, 1)
    y_g = P @ res.observed
    fit_g = P @ res.fitted
    tr_g = P @ res.trials
    centres = {"spread": fit_g}
    if "spread_expected" in res.sim_stats:
        centres["spread_expected"] = P @ (res.trials * res.fitted)
    if res.method == "refit":
        e_g = P @ res.refit["residuals_obs"]
        E_g = P @ res.refit["residuals_sims"]
        less = np.count_nonzero(E_g < e_g[:, None], axis=1)
        leq = less + np.count_nonzero(E_g == e_g[:, None], axis=1)
        sim_stats = {k: v for k, v in res.sim_stats.items()}
        kept = None
        n_sim = res.n_sim
        refit_info = dict(res.refit)
        refit_info["residuals_obs"], refit_info["residuals_sims"] = e_g, E_g
    else:
        red = Reductions(target=y_g, centres=centres, zeros=True, keep=res.simulations is not None)
        if res.simulations is not None:
            holder = _MatrixSource(np.asarray(P @ res.simulations))
            out = stream(holder, SimulationPlan(res.n_sim, plan.chunk_size, plan.seed, plan.conditional), red)
        else:
            out = stream(res.model, plan, _with_agg(red, P), n_jobs=n_jobs)
        less, leq, sim_stats, kept, n_sim = out.less, out.leq, out.sim_stats, out.kept, res.n_sim
        refit_info = None
    r = pit_residuals(less, leq, n_sim, rng, res.pit)
    obs = {name: float(row_variances(y_g - c)[0]) for name, c in centres.items()}
    obs["zeros"] = float(np.count_nonzero(y_g == 0))
    return ScaledResiduals(
        residuals=r,
        observed=y_g,
        fitted=fit_g,
        trials=tr_g,
        integer_response=res.integer_response and aggregate == "sum",
        n_sim=n_sim,
        simulate_re=res.simulate_re,
        method=res.method,
        seed=res.seed,
        chunk_size=res.chunk_size,
        counts_less=less,
        counts_leq=leq,
        sim_stats=sim_stats,
        obs_stats=obs,
        family_name=res.family_name,
        simulations=kept,
        group=labels,
        aggregate=aggregate,
        refit=refit_info,
        model=res.model,
        pit=res.pit,
        _source={"plan": plan, "agg": P, "columns": res._source.get("columns")},
    )
