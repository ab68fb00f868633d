"""Streaming simulation: chunks of simulated responses, each from its own spawned stream, reduced
to counts and per-simulation summaries as they are made (memory O(nobs x chunk)).

The plan
--------
``n_sim`` simulations are cut into chunks of ``chunk_size`` columns (the last may be shorter).
Chunk ``i`` is drawn by ``model.simulate(stop - start, rng_i, conditional)`` with
``rng_i = Generator(PCG64(SeedSequence(entropy, spawn_key=(0, i))))`` (see _rng.py). Chunks are
grouped into joblib tasks; a task reduces its chunks to integer counts (exact to add up) and to
per-simulation values stored by simulation index, so the result does not depend on how chunks are
grouped into tasks or on ``n_jobs``. Because each chunk can be redrawn on its own, any later
computation that needs the simulations again (a user summary, grouped residuals, the outlier
bootstrap) replays exactly the same draws instead of storing them.

Parallel backends
-----------------
Work goes through ``joblib.Parallel``: ``n_jobs=-1`` uses all cores with joblib's default
process backend (loky), when it pays (below); ``n_jobs=None`` defers to an enclosing
``joblib.parallel_config``, so

    with joblib.parallel_config(backend="dask"):      # a dask.distributed Client must exist
        res = simulate_residuals(fit, 250, refit=True, n_jobs=None)

ships the chunks (or the refits) to a dask or ray cluster unchanged.

When parallel execution pays
----------------------------
Starting joblib's worker processes and shipping them the model costs about a second on an idle
machine (tens of seconds on a loaded one, measured: 23 s for the first call with a load average of
13 on 2 cores), and each later call tens of milliseconds; a diagnostic step on a few hundred
rows x 1000 simulations is ~0.05 s of work. So for an integer ``n_jobs`` other than 1 (-1, 2, ...)
``stream`` first draws and reduces chunk 0 in this process, takes its CPU time t0 as the cost of a
chunk, and estimates the serial cost of the rest as t0 x (n_chunks - 1). Below
``PARALLEL_MIN_SECONDS`` the remaining chunks are drawn here too; otherwise they go to joblib in
about four tasks per worker. Either way every chunk is drawn from its own stream and the
reductions are combined by simulation index (counts are integers), so the result is bit-identical
for every ``n_jobs`` and every decision; only the time differs. ``n_jobs=None`` (an enclosing
``parallel_config``, e.g. a dask cluster) always dispatches: the caller chose the backend.

Threads for mid-size work
-------------------------
Between ``THREADS_MIN_SECONDS`` and ``PARALLEL_MIN_SECONDS`` of estimated work (a few hundred to
a few thousand rows x 1000 simulations), in chunks of at least ``THREADS_MIN_CHUNK_ELEMENTS``
values, the remaining chunks are drawn on a pool of threads in this process, one chunk per call,
when the model says its ``simulate`` is thread-safe (``thread_safe = True``: the glmmdiag sampler
of non-gaussian and zero-inflated, hurdle or dispersion-model fits; fixed simulation matrices)
and no user summary function is computed. numpy's generators and array operations release the
GIL, so the draws and the counting run side by side on the cores with nothing to start or ship
(the whole residual step of the 360- to 1934-row models took 0.59-0.87 of its one-thread wall
time on 2 cores; benchmarks/README.md). The threads run under the caller's ``np.errstate``. Each
chunk still has its own stream and its reductions are combined by simulation index, so results
stay bit-identical. Warnings raised on the threads are recorded by one ``catch_warnings`` in the
calling thread.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping

import numpy as np
from joblib import delayed, effective_n_jobs

from glmmdiag._parallel import parallel_imap
from glmmdiag._rng import child_generator
from glmmdiag.errors import GlmmdiagError

__all__ = ["SimulationPlan", "default_chunk_size", "draw_chunk", "stream", "StreamResult", "row_variances",
           "BlockMoments", "parallel_pays", "threads_pay", "PARALLEL_MIN_SECONDS", "THREADS_MIN_SECONDS",
           "THREADS_MIN_CHUNK_ELEMENTS"]

#: elements (nobs x chunk) per chunk that the automatic chunk size aims at (16 MB of float64)
CHUNK_ELEMENTS = 1 << 21
MAX_CHUNK = 64
#: from this many rows on, chunks are reduced column by column (see _run_task)
COLUMNWISE_NOBS = 20000
#: for an integer n_jobs != 1, the chunks after the first go to joblib's workers only when their
#: estimated serial CPU time (the first chunk's CPU time x the number of remaining chunks) is at
#: least this many seconds (module docstring, "When parallel execution pays")
PARALLEL_MIN_SECONDS = 2.0
#: below PARALLEL_MIN_SECONDS, the chunks after the first go to a thread pool when their estimated
#: serial CPU time is at least this (module docstring, "Threads for mid-size work"): below it the
#: per-chunk Python work, which holds the GIL, is as large as the array work that runs in parallel
THREADS_MIN_SECONDS = 0.02
#: ... and when a chunk holds at least this many values (rows x simulations): on smaller arrays the
#: per-call Python work, which holds the GIL, dominates, and threads only contend for it (measured
#: in two runs: the whole residual step of the 56- and 60-row models took 0.94-1.08 of its
#: one-thread wall time on threads)
THREADS_MIN_CHUNK_ELEMENTS = 16384


def default_chunk_size(nobs: int) -> int:
    """Simulations per chunk: ~2M values per chunk, at most 64 columns, at least 1."""
    return int(max(1, min(MAX_CHUNK, CHUNK_ELEMENTS // max(int(nobs), 1))))


@dataclasses.dataclass(frozen=True)
class SimulationPlan:
    n_sim: int
    chunk_size: int
    seed: np.random.SeedSequence
    conditional: bool

    @property
    def n_chunks(self) -> int:
        return -(-self.n_sim // self.chunk_size)

    def bounds(self, i: int) -> tuple[int, int]:
        start = i * self.chunk_size
        return start, min(start + self.chunk_size, self.n_sim)


def draw_chunk(model, plan: SimulationPlan, i: int) -> np.ndarray:
    """Simulations start..stop-1 of chunk i as a float (nobs, stop - start) array (validated)."""
    start, stop = plan.bounds(i)
    fixed = getattr(model, "simulations", None)
    if fixed is not None:
        S = np.asarray(fixed[:, start:stop])
    else:
        S = np.asarray(model.simulate(stop - start, child_generator(plan.seed, 0, i), plan.conditional))
    if S.dtype.kind not in "iuf":  # integer draws stay integer (no float copy); bool, object -> float
        S = S.astype(float)
    n = model.nobs
    if S.ndim == 1 and stop - start == 1:
        S = S[:, None]
    if S.shape != (n, stop - start):
        raise GlmmdiagError(
            f"the model's simulate({stop - start}, ...) returned shape {S.shape}; expected ({n}, {stop - start}) "
            f"= (nobs, nsim)"
        )
    if S.dtype.kind == "f" and not np.all(np.isfinite(S)):
        bad = ~np.isfinite(S)
        rows = np.flatnonzero(bad.any(axis=1))
        raise GlmmdiagError(
            f"simulated responses contain {int(bad.sum())} NaN/infinite values (rows {rows[:5].tolist()}"
            f"{'...' if rows.size > 5 else ''}, simulations {start}..{stop - 1}): the model cannot simulate "
            f"valid responses for these rows (check fitted means, weights and trials)"
        )
    return S


@dataclasses.dataclass
class Reductions:
    """What a pass over the simulations computes (all optional)."""

    target: np.ndarray | None = None  # count #{sims < target} and #{sims <= target}
    agg: Any = None  # sparse (groups x nobs) matrix applied to every chunk first
    centres: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)  # per-sim var(S - c)
    zeros: bool = False
    summaries: Mapping[str, Callable] = dataclasses.field(default_factory=dict)  # per-sim fn(column)
    envelope: bool = False  # two smallest / two largest values per row
    keep: bool = False  # return every column
    keep_first: int = 0  # return the first k columns
    blocks: "BlockMoments | None" = None  # per-block moments of the simulations (rotation)


@dataclasses.dataclass(frozen=True)
class BlockMoments:
    """Which moments of the simulations ``stream`` accumulates per block of rows (for rotation).

    ``index`` holds the row positions of every block, concatenated, and ``sizes`` their lengths;
    with x = s[block] - centre[block] for each simulated response s, every chunk contributes
    sum x, sum x x' and sum (x * x)(x * x)' per block (``moments_of_chunk``). Partial sums are kept
    per chunk and added in chunk order, so the result does not depend on ``n_jobs``.
    """

    index: np.ndarray
    sizes: np.ndarray
    centre: np.ndarray  # (nobs,)

    def moments_of_chunk(self, S: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        X = np.asarray(S, float)[self.index] - self.centre[self.index][:, None]
        out = []
        sizes = self.sizes
        if sizes.size and np.all(sizes == sizes[0]):  # equal blocks: one batched product
            k = int(sizes[0])
            B = X.reshape(sizes.size, k, X.shape[1])
            B2 = B * B
            s1 = B.sum(axis=2)
            s2 = np.einsum("bic,bjc->bij", B, B)
            s4 = np.einsum("bic,bjc->bij", B2, B2)
            return [(s1[b], s2[b], s4[b]) for b in range(sizes.size)]
        start = 0
        for k in sizes:
            B = X[start : start + k]
            B2 = B * B
            out.append((B.sum(axis=1), B @ B.T, B2 @ B2.T))
            start += k
        return out


@dataclasses.dataclass
class StreamResult:
    less: np.ndarray | None
    leq: np.ndarray | None
    sim_stats: dict
    envelope: tuple | None
    kept: np.ndarray | None
    warnings: list
    block_moments: list | None = None  # per block (sum x, sum xx', sum (x*x)(x*x)') (Reductions.blocks)


#: a one-pass sum of squares about the mean that keeps less than 1/_CANCELLATION of the raw sum of
#: squares has lost that many digits to cancellation: such rows are recomputed by a shifted two-pass
_CANCELLATION = 1e3


def row_variances(D: np.ndarray) -> np.ndarray:
    """Sample variances (ddof = 1) of the rows of ``D``: exact 0 for constant rows, stable under offsets.

    Parameters
    ----------
    D : (k, n) or (n,) float array
        One row per simulation (a 1-D array is one row).

    Returns
    -------
    (k,) float array
        NaN for n < 2 (a spread needs two values).

    Notes
    -----
    The fast path is the one-pass formula (sum d^2 - (sum d)^2 / n) / (n - 1): two reductions and
    no temporary, which keeps the streaming engine at the speed of its counting. It loses digits
    when the mean is large against the spread (1e9 + noise; a constant row, where it returns
    +-1e-17 instead of 0). Rows where the result is below 1/_CANCELLATION of the raw sum of
    squares (or not positive) are recomputed: shifted by their own first value (a constant row
    becomes exactly zero) and then by the shifted mean, with the corrected two-pass formula
    (Chan, Golub & LeVeque 1983). Under a sensible centre no row takes the slow path.
    """
    D = np.asarray(D)
    if D.ndim == 1:
        return np.array([_variance_1d(D)])
    k, n = D.shape
    if n < 2:
        return np.full(k, np.nan)
    s1 = D.sum(axis=1)
    s2 = np.einsum("ij,ij->i", D, D)
    ss = s2 - s1 * s1 / n
    redo = ~(ss * _CANCELLATION > s2)  # also catches ss <= 0 and NaN
    if redo.any():
        ss[redo] = _stable_sum_of_squares(D[redo])
    return np.maximum(ss, 0.0) / (n - 1)


def _variance_1d(d: np.ndarray) -> float:
    """``row_variances`` of one vector (BLAS dot for the sum of squares: the large-model path)."""
    n = d.shape[0]
    if n < 2:
        return float("nan")
    s1 = float(d.sum())
    s2 = float(d @ d)
    ss = s2 - s1 * s1 / n
    if not ss * _CANCELLATION > s2:
        ss = float(_stable_sum_of_squares(d[None, :])[0])
    return max(ss, 0.0) / (n - 1)


def _stable_sum_of_squares(D: np.ndarray) -> np.ndarray:
    """Sum of squared deviations from the row means, shifted first by each row's first value."""
    E = np.asarray(D, float) - D[:, :1]
    E -= E.mean(axis=1, keepdims=True)
    return np.einsum("ij,ij->i", E, E) - E.sum(axis=1) ** 2 / E.shape[1]


def _min2(S):
    if S.shape[1] == 1:
        return S[:, 0], np.full(S.shape[0], np.inf)
    part = np.partition(S, 1, axis=1)
    return part[:, 0], part[:, 1]


def _merge_min2(a, b):
    # two smallest of the union of (a1 <= a2) and (b1 <= b2)
    a1, a2 = a
    b1, b2 = b
    m1 = np.minimum(a1, b1)
    m2 = np.minimum(np.maximum(a1, b1), np.minimum(a2, b2))
    return m1, m2


def _run_task(model, plan: SimulationPlan, chunk_ids, red: Reductions) -> dict:
    """The reductions of ``chunk_ids`` (``_reduce_chunks``) with the warnings they raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _reduce_chunks(model, plan, chunk_ids, red)
    out["warnings"] = _warning_messages(caught)
    return out


def _warning_messages(caught) -> list[str]:
    return sorted({str(w.message) for w in caught if issubclass(w.category, (UserWarning, RuntimeWarning))})


def _reduce_chunks(model, plan: SimulationPlan, chunk_ids, red: Reductions) -> dict:
    """Draw the chunks ``chunk_ids`` and reduce them: counts, per-simulation values by index,
    envelopes, kept columns and block moments (no warnings handling: safe to run on a thread)."""
    n_out = None
    less = leq = None
    stats: dict[str, list] = {}
    env_lo = env_hi = None
    kept = []
    moments = []
    for i in chunk_ids:
        start, stop = plan.bounds(i)
        S = draw_chunk(model, plan, i)
        if red.agg is not None:
            S = np.asarray(red.agg @ S)
        if n_out is None:
            n_out = S.shape[0]
            if red.target is not None:
                less = np.zeros(n_out, np.int32)
                leq = np.zeros(n_out, np.int32)
        c = S.shape[1]
        cstats = {name: np.empty(c) for name in red.centres}
        zeros = np.empty(c) if red.zeros else None
        if n_out >= COLUMNWISE_NOBS:
            # large models: column by column on a Fortran-ordered chunk, each column contiguous,
            # every reduction one pass over nobs values (row-wise counting over an (n, 2) C array
            # is ~4x slower)
            S = np.asfortranarray(S)
            for j in range(c):
                x = S[:, j]
                if red.target is not None:
                    lt = x < red.target
                    less += lt
                    leq += lt
                    leq += x == red.target
                for name, cen in red.centres.items():
                    cstats[name][j] = _variance_1d(x - cen)
                if zeros is not None:
                    zeros[j] = np.count_nonzero(x == 0)
        else:
            # small models: whole-chunk operations on the (chunk, nobs) transpose (few numpy calls)
            T = np.ascontiguousarray(S.T)
            if red.target is not None:
                c_less = np.count_nonzero(T < red.target, axis=0)
                less += c_less.astype(np.int32)
                leq += (c_less + np.count_nonzero(T == red.target, axis=0)).astype(np.int32)
            for name, cen in red.centres.items():
                cstats[name][:] = row_variances(T - cen)
            if zeros is not None:
                zeros[:] = np.count_nonzero(T == 0, axis=1)
        for name in red.centres:
            stats.setdefault(name, []).append((start, cstats[name]))
        if zeros is not None:
            stats.setdefault("zeros", []).append((start, zeros))
        for name, fn in red.summaries.items():
            vals = np.array([float(fn(S[:, j])) for j in range(c)])
            stats.setdefault(name, []).append((start, vals))
        if red.envelope:
            lo = _min2(S)
            hi = _min2(-S)
            env_lo = lo if env_lo is None else _merge_min2(env_lo, lo)
            env_hi = hi if env_hi is None else _merge_min2(env_hi, hi)
        if red.blocks is not None:
            moments.append((start, red.blocks.moments_of_chunk(S)))
        if red.keep:
            kept.append((start, np.ascontiguousarray(S)))
        elif red.keep_first and start < red.keep_first:
            kept.append((start, np.ascontiguousarray(S[:, : red.keep_first - start])))
    return {"less": less, "leq": leq, "stats": stats, "env": (env_lo, env_hi), "kept": kept, "moments": moments}


def _task_groups(n_chunks: int, n_jobs) -> list[list[int]]:
    try:
        jobs = effective_n_jobs(n_jobs)
    except Exception:  # pragma: no cover
        jobs = 1
    n_tasks = 1 if jobs == 1 else min(n_chunks, 4 * jobs)
    edges = np.linspace(0, n_chunks, n_tasks + 1).round().astype(int)
    return [list(range(edges[k], edges[k + 1])) for k in range(n_tasks) if edges[k + 1] > edges[k]]


def _worker_view(model, plan: SimulationPlan):
    """What other workers or threads draw from: the model's light ``worker_view`` where it has one."""
    return model.worker_view(plan.conditional) if hasattr(model, "worker_view") else model


def _dispatch(model, plan: SimulationPlan, red: Reductions, chunk_ids: list[int], n_jobs) -> list:
    """The parts of ``chunk_ids``: in this process when they make one task, else through joblib."""
    groups = _task_groups(len(chunk_ids), n_jobs)
    if len(groups) <= 1:
        return [_run_task(model, plan, chunk_ids, red)] if chunk_ids else []
    view = _worker_view(model, plan)
    return parallel_imap((delayed(_run_task)(view, plan, [chunk_ids[k] for k in g], red) for g in groups), n_jobs)


def parallel_pays(first_chunk_cpu_s: float, n_chunks: int) -> bool:
    """Whether the chunks after the first are worth sending to joblib's workers.

    The estimated serial cost of the rest is ``first_chunk_cpu_s * (n_chunks - 1)`` (chunks are
    equal but for the last); parallel execution pays when it is at least ``PARALLEL_MIN_SECONDS``
    (joblib's start-up and shipping the model cost about a second; see the module docstring).
    """
    return n_chunks > 2 and first_chunk_cpu_s * (n_chunks - 1) >= PARALLEL_MIN_SECONDS


def threads_pay(first_chunk_cpu_s: float, n_chunks: int, chunk_elements: int) -> bool:
    """Whether the chunks after the first are worth drawing on threads (below ``parallel_pays``).

    The same estimate as ``parallel_pays``, against ``THREADS_MIN_SECONDS``, and chunks of at least
    ``THREADS_MIN_CHUNK_ELEMENTS`` values: threads cost nothing to start, but below either the
    GIL-holding Python work per chunk is as large as the array work they would share.
    """
    return (n_chunks > 2 and chunk_elements >= THREADS_MIN_CHUNK_ELEMENTS
            and first_chunk_cpu_s * (n_chunks - 1) >= THREADS_MIN_SECONDS)


def thread_workers(model, red: Reductions, n_jobs, n_rest: int) -> int:
    """Threads for the ``n_rest`` chunks after the first: ``effective_n_jobs(n_jobs)`` capped by the
    chunks; 1 when the model does not declare its ``simulate`` thread-safe (``thread_safe``) or
    when user summaries are computed (``red.summaries``: a user's function need not be
    thread-safe, and being Python it would hold the GIL anyway)."""
    if not getattr(model, "thread_safe", False) or red.summaries:
        return 1
    try:
        jobs = effective_n_jobs(n_jobs)
    except Exception:  # pragma: no cover
        return 1
    return max(1, min(int(jobs), n_rest))


def _on_threads(model, plan: SimulationPlan, red: Reductions, chunk_ids: list[int], workers: int) -> list:
    """Every chunk of ``chunk_ids`` reduced on a pool of ``workers`` threads (one part per chunk),
    with the warnings they raise recorded here (``catch_warnings`` is process-wide, so it is
    entered once, in this thread)."""
    err = np.geterr()  # numpy's error handling is per thread: the pool's threads get the caller's

    def one(i):
        with np.errstate(**err):
            return _reduce_chunks(model, plan, [i], red)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="glmmdiag-sim") as pool:
            parts = list(pool.map(one, chunk_ids))
    msgs = _warning_messages(caught)
    for part in parts:
        part["warnings"] = msgs
    return parts


def stream(model, plan: SimulationPlan, red: Reductions, n_jobs=1) -> StreamResult:
    """Draw every chunk of ``plan`` and combine the reductions.

    ``n_jobs=1``: in this process. ``n_jobs=None``: through joblib (an enclosing
    ``parallel_config``). Another integer: chunk 0 in this process, timed; the rest through
    joblib's processes when ``parallel_pays``, else on threads when ``threads_pay`` and the model
    is thread-safe, else here (module docstring). The result does not depend on the choice.
    """
    chunks = list(range(plan.n_chunks))
    if n_jobs is None or len(_task_groups(plan.n_chunks, n_jobs)) == 1:
        parts = _dispatch(model, plan, red, chunks, n_jobs)
    else:
        t0 = time.process_time()
        first = _run_task(model, plan, chunks[:1], red)
        cost = time.process_time() - t0
        rest = chunks[1:]
        if parallel_pays(cost, plan.n_chunks):
            parts = [first, *_dispatch(model, plan, red, rest, n_jobs)]
        else:
            view = _worker_view(model, plan)
            elements = int(model.nobs) * plan.chunk_size
            pays = threads_pay(cost, plan.n_chunks, elements)
            workers = thread_workers(view, red, n_jobs, len(rest)) if pays else 1
            if workers > 1:
                parts = [first, *_on_threads(view, plan, red, rest, workers)]
            else:
                parts = [first, *_dispatch(model, plan, red, rest, 1)]
    less = leq = None
    stats: dict[str, np.ndarray] = {}
    env_lo = env_hi = None
    kept_parts = []
    moment_parts = []
    msgs: set[str] = set()
    for part in parts:
        if part["less"] is not None:
            less = part["less"].astype(np.int64) if less is None else less + part["less"]
            leq = part["leq"].astype(np.int64) if leq is None else leq + part["leq"]
        for name, pieces in part["stats"].items():
            arr = stats.setdefault(name, np.full(plan.n_sim, np.nan))
            for start, vals in pieces:
                arr[start : start + len(vals)] = vals
        lo, hi = part["env"]
        if lo is not None:
            env_lo = lo if env_lo is None else _merge_min2(env_lo, lo)
            env_hi = hi if env_hi is None else _merge_min2(env_hi, hi)
        kept_parts.extend(part["kept"])
        moment_parts.extend(part.get("moments", []))
        msgs.update(part["warnings"])
    kept = None
    if kept_parts:
        kept_parts.sort(key=lambda t: t[0])
        kept = np.concatenate([k for _, k in kept_parts], axis=1)
    envelope = None
    if env_lo is not None:
        envelope = (env_lo[0], env_lo[1], -env_hi[0], -env_hi[1])  # min1, min2, max1, max2
    block_moments = None
    if red.blocks is not None:
        moment_parts.sort(key=lambda t: t[0])  # chunk order: the same sums for any n_jobs
        block_moments = [list(m) for m in moment_parts[0][1]]
        for _, parts_b in moment_parts[1:]:
            for acc, (s1, s2, s4) in zip(block_moments, parts_b):
                acc[0] = acc[0] + s1
                acc[1] = acc[1] + s2
                acc[2] = acc[2] + s4
        block_moments = [tuple(m) for m in block_moments]
    return StreamResult(less, leq, stats, envelope, kept, sorted(msgs), block_moments)
