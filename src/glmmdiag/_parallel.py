"""joblib in one place: results streamed back in order where the backend allows it.

``Parallel(return_as="generator")`` hands results back as they finish (in submission order), so
a streamed reduction never holds every part at once. Some backends do not support it (joblib
1.3's dask backend raises ``ValueError``); they get the ordinary list, with the same results in
the same order, so that the numbers never depend on the backend.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from joblib import Parallel


def parallel_imap(calls: Iterable, n_jobs) -> Iterator:
    """Run joblib ``delayed`` calls with ``n_jobs`` workers; yield their results in order."""
    calls = list(calls)
    try:
        return Parallel(n_jobs=n_jobs, return_as="generator")(calls)
    except ValueError as err:
        if "return_as" not in str(err):
            raise
    return iter(Parallel(n_jobs=n_jobs)(calls))
