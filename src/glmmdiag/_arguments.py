"""``seed=`` and ``rng=``: one argument under two names.

Every public function that draws random numbers takes ``seed=`` (the name DHARMa and most of
Python's statistics libraries use) and ``rng=`` (numpy's SPEC 7 name, used by scipy and new numpy
code). Both take None, an int, a ``SeedSequence`` or a ``Generator`` and mean the same thing; giving
both is an error. Neither is deprecated.

The functions take ``rng`` as an explicit keyword-only parameter and call ``seed_or_rng`` first
(not a decorator: a wrapper would become the frame that the functions' own warnings point at).
"""
from __future__ import annotations

__all__ = ["seed_or_rng"]


def seed_or_rng(seed, rng, func: str):
    """The seed given under either name (None when neither was given)."""
    if rng is None:
        return seed
    if seed is not None:
        raise TypeError(f"{func}() got both seed= and rng=; they are the same argument: give one")
    return rng
