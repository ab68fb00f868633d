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
