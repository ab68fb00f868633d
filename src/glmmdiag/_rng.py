"""Seeds and random streams.

Every random quantity in the diagnostics comes from one root ``numpy.random.SeedSequence`` and a
fixed *spawn key* naming its role, so a result can be reproduced, extended or regenerated piece by
piece without replaying anything else:

=================  ==========================================================
spawn key          stream
=================  ==========================================================
``(0, i)``         simulations of chunk ``i`` (columns ``i*chunk .. (i+1)*chunk-1``)
``(1, k)``         tie-breaking uniforms of the k-th residual calculation
                   (k = 0: ``simulate_residuals``; k >= 1: recalculations)
``(2, k)``         resampling in a test (k-th call site, see checks.py)
``(3, b)``         ``calibrated_tests``: the b-th bootstrap response
``(4, b)``         ``calibrated_tests``: the b-th bootstrap's residual simulations
``(5, b)``         autocorrelation tests' ``n_boot``: the b-th bootstrap response
``(6, b)``         autocorrelation tests' ``n_boot``: the b-th bootstrap's residuals
``(7, j)``         ``calibrated_tests``: tie-breaking uniform of the j-th test
=================  ==========================================================

A child with spawn key ``(0, i)`` equals ``SeedSequence(seed).spawn(...)``'s descendants: it is
built directly as ``SeedSequence(entropy, spawn_key=(0, i))`` so that chunk ``i`` can be drawn on
its own, in any process, in any order.
"""
from __future__ import annotations

import numbers

import numpy as np
from glmmdiag.errors import GlmmdiagError

__all__ = ["as_generator", "root_seed", "child_seed", "child_generator", "spawn"]


def as_generator(rng=None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from None, an int, a SeedSequence or a Generator (returned as is)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.BitGenerator):
        return np.random.Generator(rng)
    return np.random.default_rng(rng)


def root_seed(seed=None) -> np.random.SeedSequence:
    """The root SeedSequence of a computation.

    None draws fresh entropy (recorded in the result, so the run can still be reproduced); an int
    or a sequence of ints is used as entropy; a SeedSequence is used as is; a Generator contributes
    128 bits drawn from it (so repeated calls with the same Generator give different streams).
    """
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence([int(v) for v in seed.integers(0, 2**32, size=4, dtype=np.uint64)])
    if isinstance(seed, np.random.BitGenerator):
        return root_seed(np.random.Generator(seed))
    if isinstance(seed, numbers.Integral):
        if int(seed) < 0:
            raise GlmmdiagError(f"seed must be a non-negative integer; got {seed}")
        return np.random.SeedSequence(int(seed))
    try:
        return np.random.SeedSequence([int(s) for s in seed])
    except TypeError:
        raise TypeError(
            f"seed must be None, a non-negative int, a numpy SeedSequence or Generator; got {type(seed).__name__}"
        ) from None


def child_seed(root: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    """The descendant of ``root`` with spawn key ``root.spawn_key + key``."""
    return np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + tuple(int(k) for k in key),
                                  pool_size=root.pool_size)


def child_generator(root: np.random.SeedSequence, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(child_seed(root, *key)))


def spawn(rng, k: int) -> list[np.random.Generator]:
    """k independent generators from ``rng`` (anything ``root_seed`` accepts)."""
    ss = root_seed(rng)
    return [np.random.Generator(np.random.PCG64(s)) for s in ss.spawn(int(k))]
