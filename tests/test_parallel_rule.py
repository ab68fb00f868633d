"""When ``stream`` sends simulation chunks to joblib (``simulate.parallel_pays``), and that the
choice never changes a result: same seed, identical residuals, counts and per-simulation summaries
for n_jobs 1, 2 and -1, whether the chunks after the first run here or in joblib's workers."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmdiag as gd
from glmmdiag import simulate as sim_mod


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(11)
    n, k = 240, 12
    g = rng.integers(0, k, n)
    x = rng.standard_normal(n)
    b = rng.normal(0, 0.4, k)
    mu = np.exp(0.4 + 0.5 * x + b[g])
    y = np.where(rng.random(n) < 0.2, 0, rng.poisson(mu))
    df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "poisson": gd.glmm("y ~ x + (1 | g)", df, family="poisson"),
            "zip": gd.glmm("y ~ x + (1 | g)", df, family="poisson", ziformula="~1"),
            "hurdle_nb2": gd.glmm("y ~ x + (1 | g)", df, family="truncated_nbinom2", ziformula="~1"),
        }


class _Counting:
    """Stands in for ``simulate.parallel_imap`` (joblib) and counts the calls and tasks it is
    given (then runs them here, in order)."""

    calls = 0
    tasks = 0

    @classmethod
    def imap(cls, calls, n_jobs):
        cls.calls += 1
        out = []
        for fn, args, kwargs in calls:
            cls.tasks += 1
            out.append(fn(*args, **kwargs))
        return iter(out)


def _same(a, b):
    assert np.array_equal(a.residuals, b.residuals)
    assert np.array_equal(a.counts_less, b.counts_less)
    assert np.array_equal(a.counts_leq, b.counts_leq)
    assert a.sim_stats.keys() == b.sim_stats.keys()
    for k in a.sim_stats:
        assert np.array_equal(a.sim_stats[k], b.sim_stats[k])


def test_parallel_pays_rule():
    # estimated serial cost of the rest = first chunk's CPU time x (n_chunks - 1), against the threshold
    t = sim_mod.PARALLEL_MIN_SECONDS
    assert not sim_mod.parallel_pays(t / 10, 10)          # 0.9 t
    assert sim_mod.parallel_pays(t / 9, 10)               # exactly t
    assert sim_mod.parallel_pays(t, 3)
    assert not sim_mod.parallel_pays(100 * t, 2)          # one chunk left: nothing to share
    assert not sim_mod.parallel_pays(0.0, 1000)


def test_small_work_stays_in_this_process(fits, monkeypatch):
    """A few hundred rows x 200 simulations: n_jobs=2 and -1 never start joblib (and agree with 1)."""
    monkeypatch.setattr(sim_mod, "parallel_imap", _Counting.imap)
    _Counting.calls = 0
    ref = gd.simulate_residuals(fits["poisson"], 200, seed=5, chunk_size=16, simulate_re="unconditional")
    for nj in (2, -1):
        r = gd.simulate_residuals(fits["poisson"], 200, seed=5, chunk_size=16, simulate_re="unconditional", n_jobs=nj)
        _same(ref, r)
    assert _Counting.calls == 0


@pytest.mark.parametrize("name", ["poisson", "zip", "hurdle_nb2"])
@pytest.mark.parametrize("mode", ["conditional", "unconditional"])
def test_forced_parallel_gives_identical_residuals(fits, monkeypatch, name, mode):
    """With the threshold at 0 the chunks after the first go through joblib (counted), in any
    grouping: residuals, counts and summaries are bit-identical to n_jobs=1."""
    fit = fits[name]
    ref = gd.simulate_residuals(fit, 150, seed=9, chunk_size=10, simulate_re=mode)
    monkeypatch.setattr(sim_mod, "PARALLEL_MIN_SECONDS", 0.0)
    monkeypatch.setattr(sim_mod, "parallel_imap", _Counting.imap)
    _Counting.calls = _Counting.tasks = 0
    r2 = gd.simulate_residuals(fit, 150, seed=9, chunk_size=10, simulate_re=mode, n_jobs=2)
    assert _Counting.calls == 1 and _Counting.tasks == 8  # 14 chunks after the first, 4 tasks per worker
    _same(ref, r2)


def test_real_workers_identical_residuals(fits, monkeypatch):
    """The same through joblib's real process backend (loky), 2 workers."""
    monkeypatch.setattr(sim_mod, "PARALLEL_MIN_SECONDS", 0.0)
    fit = fits["zip"]
    ref = gd.simulate_residuals(fit, 120, seed=3, chunk_size=10, simulate_re="unconditional")
    r = gd.simulate_residuals(fit, 120, seed=3, chunk_size=10, simulate_re="unconditional", n_jobs=2)
    _same(ref, r)


def _force_threads(monkeypatch):
    """Every job with n_jobs != 1 is "mid-size": the chunks after the first go to the threads."""
    monkeypatch.setattr(sim_mod, "THREADS_MIN_SECONDS", 0.0)
    monkeypatch.setattr(sim_mod, "THREADS_MIN_CHUNK_ELEMENTS", 0)


def test_threads_pay_rule():
    t, big = sim_mod.THREADS_MIN_SECONDS, sim_mod.THREADS_MIN_CHUNK_ELEMENTS
    assert t < sim_mod.PARALLEL_MIN_SECONDS
    assert not sim_mod.threads_pay(t / 10, 10, big)
    assert sim_mod.threads_pay(t / 9, 10, big)
    assert not sim_mod.threads_pay(t, 10, big - 1)  # small arrays: the GIL-bound Python work dominates
    assert not sim_mod.threads_pay(100 * t, 2, big)  # one chunk left: nothing to share


def test_small_models_stay_on_one_thread(fits, monkeypatch):
    """240 rows x chunks of 64 (15 360 values) are below THREADS_MIN_CHUNK_ELEMENTS: even a costly
    first chunk leaves the rest in the calling thread."""
    monkeypatch.setattr(sim_mod, "THREADS_MIN_SECONDS", 0.0)
    counter = _ThreadCounter(monkeypatch)
    gd.simulate_residuals(fits["zip"], 300, seed=1, n_jobs=2)
    assert counter.on_threads == 0 and len(counter.names) == 2


class _ThreadCounter:
    """Wraps ``simulate._reduce_chunks`` and records the names of the threads it ran on."""

    def __init__(self, monkeypatch):
        import threading

        self.names = []
        inner = sim_mod._reduce_chunks

        def wrapped(*args, **kwargs):
            self.names.append(threading.current_thread().name)
            return inner(*args, **kwargs)

        monkeypatch.setattr(sim_mod, "_reduce_chunks", wrapped)

    @property
    def on_threads(self) -> int:
        return sum(name.startswith("glmmdiag-sim") for name in self.names)


@pytest.mark.parametrize("name", ["poisson", "zip", "hurdle_nb2"])
@pytest.mark.parametrize("mode", ["conditional", "unconditional"])
def test_threads_give_identical_residuals(fits, monkeypatch, name, mode):
    """Mid-size work (THREADS_MIN_SECONDS forced to 0): the chunks after the first are drawn on
    the thread pool, never through joblib, and residuals, counts and summaries are bit-identical."""
    fit = fits[name]
    ref = gd.simulate_residuals(fit, 150, seed=9, chunk_size=10, simulate_re=mode)
    _force_threads(monkeypatch)
    monkeypatch.setattr(sim_mod, "parallel_imap", _Counting.imap)
    counter = _ThreadCounter(monkeypatch)
    _Counting.calls = 0
    for nj in (2, -1):
        counter.names.clear()
        r = gd.simulate_residuals(fit, 150, seed=9, chunk_size=10, simulate_re=mode, n_jobs=nj)
        _same(ref, r)
        assert counter.on_threads == 14  # 15 chunks: the first here (timed), 14 on threads
    assert _Counting.calls == 0


def test_outlier_bootstrap_and_envelope_on_threads(fits, monkeypatch):
    """Replays (the exact outlier bootstrap's envelope) give the same numbers on threads; user
    summaries keep their values and stay in the calling thread."""
    fit = fits["zip"]
    ref = gd.simulate_residuals(fit, 150, seed=4, chunk_size=10, summaries={"mean": np.mean})
    ref_out = gd.outlier_test(ref, type="bootstrap")
    _force_threads(monkeypatch)
    counter = _ThreadCounter(monkeypatch)
    r = gd.simulate_residuals(fit, 150, seed=4, chunk_size=10, summaries={"mean": np.mean}, n_jobs=2)
    _same(ref, r)
    assert counter.on_threads == 0  # a user's summary function need not be thread-safe: never on threads
    out = gd.outlier_test(r, type="bootstrap", n_jobs=2)
    assert counter.on_threads == 14  # the bootstrap's replay (no user function) ran on threads
    assert out.p_value == ref_out.p_value and out.statistic == ref_out.statistic
    assert np.array_equal(r.sim_stats["mean"], ref.sim_stats["mean"])


class _WarningModel:
    """A thread-safe user model whose draws warn (as a sampler clipping a mean would)."""

    family_name, integer_response, thread_safe = "poisson", True, True

    def __init__(self, n=200):
        self.nobs = n
        self._mu = np.linspace(0.5, 4.0, n)
        self._y = np.random.default_rng(0).poisson(self._mu).astype(float)

    def observed(self):
        return self._y

    def trials(self):
        return np.ones(self.nobs)

    def fitted(self):
        return self._mu

    def simulate(self, n, rng, conditional=True):
        warnings.warn("a mean was clipped", RuntimeWarning)
        return rng.poisson(self._mu[:, None], size=(self.nobs, n)).astype(float)


def test_warnings_on_threads_are_reported_once(monkeypatch):
    _force_threads(monkeypatch)
    counter = _ThreadCounter(monkeypatch)
    model = _WarningModel()
    with pytest.warns(Warning) as caught:
        r = gd.simulate_residuals(model, 100, seed=1, chunk_size=10, n_jobs=2)
    assert counter.on_threads == 9
    assert sum("a mean was clipped" in str(w.message) for w in caught) == 1
    with pytest.warns(Warning):
        ref = gd.simulate_residuals(model, 100, seed=1, chunk_size=10)
    _same(ref, r)


def test_models_not_declared_thread_safe_never_use_threads(monkeypatch):
    """A user's model without ``thread_safe = True`` (its simulate may share state) is drawn here."""
    _force_threads(monkeypatch)
    monkeypatch.setattr(_WarningModel, "thread_safe", False)
    counter = _ThreadCounter(monkeypatch)
    with pytest.warns(Warning):
        gd.simulate_residuals(_WarningModel(), 100, seed=1, chunk_size=10, n_jobs=2)
    assert counter.on_threads == 0 and len(counter.names) == 2  # chunk 0, then the other 9 in one task


def test_thread_pool_keeps_the_callers_numpy_error_handling(monkeypatch):
    """numpy's error state is per thread: under the caller's np.errstate(all="raise") a floating-point
    error on a pool thread raises as it does in the calling thread."""

    class _Overflowing(_WarningModel):
        def simulate(self, n, rng, conditional=True):
            rng.random()
            np.exp(np.full(3, 1000.0))  # overflow
            return rng.poisson(self._mu[:, None], size=(self.nobs, n)).astype(float)

    _force_threads(monkeypatch)
    counter = _ThreadCounter(monkeypatch)
    # under "ignore" no thread reports the overflow (a thread with numpy's default state would warn)
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        gd.simulate_residuals(_Overflowing(), 100, seed=1, chunk_size=10, n_jobs=2)
    assert counter.on_threads == 9
    with np.errstate(over="raise"), pytest.raises(FloatingPointError):
        sim_mod._on_threads(_Overflowing(), sim_mod.SimulationPlan(20, 10, np.random.SeedSequence(1), True),
                            sim_mod.Reductions(), [0, 1], 2)


@pytest.mark.parametrize("family, kwargs", [("truncated_poisson", {"ziformula": "~1"}), ("tweedie", {}),
                                            ("ordbeta", {})])
def test_changed_samplers_identical_on_threads(family, kwargs, monkeypatch):
    """The zero-truncated Poisson, Tweedie and ordered beta samplers on threads: bit-identical."""
    rng = np.random.default_rng(4)
    n, k = 200, 10
    g = rng.integers(0, k, n)
    x = rng.standard_normal(n)
    mu = np.exp(0.3 + 0.4 * x + rng.normal(0, 0.3, k)[g])
    if family == "ordbeta":
        p = 1 / (1 + np.exp(-(0.3 * x + rng.normal(0, 0.3, k)[g])))
        y = np.clip(rng.beta(p * 8, (1 - p) * 8), 0, 1)
        y[rng.random(n) < 0.1] = 0.0
        y[rng.random(n) < 0.1] = 1.0
    elif family == "tweedie":
        y = np.where(rng.random(n) < 0.3, 0.0, rng.gamma(2.0, mu / 2.0))
    else:
        y = np.where(rng.random(n) < 0.3, 0, rng.poisson(mu))
    df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = gd.glmm("y ~ x + (1 | g)", df, family=family, **kwargs)
    ref = gd.simulate_residuals(fit, 120, seed=2, chunk_size=10, simulate_re="unconditional")
    _force_threads(monkeypatch)
    counter = _ThreadCounter(monkeypatch)
    r = gd.simulate_residuals(fit, 120, seed=2, chunk_size=10, simulate_re="unconditional", n_jobs=2)
    assert counter.on_threads == 11
    _same(ref, r)


def test_zero_inflated_poisson_fast_path_draws_what_the_general_path_draws(fits, monkeypatch):
    """The one-call zero-inflated Poisson draws (mean 0 where the zero process gave a zero) equal the
    general path's (the zero process, then Poisson draws gathered at the other positions): numpy's
    Poisson sampler consumes nothing for a zero mean."""
    from glmmdiag.adapters import native

    fit = fits["zip"]
    fast = gd.simulate_residuals(fit, 100, seed=6, simulate_re="unconditional", keep_simulations=True)
    monkeypatch.setattr(native, "_POISSON_FAST_MAX", -1.0)  # every mean "too large": the general path
    slow = gd.simulate_residuals(fit, 100, seed=6, simulate_re="unconditional", keep_simulations=True)
    assert np.array_equal(fast.simulations, slow.simulations)
    _same(fast, slow)
