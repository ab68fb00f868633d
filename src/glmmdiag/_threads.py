"""BLAS thread control. The fitter's dense blocks are small; letting OpenBLAS spread a 200 x 200
Cholesky over busy cores made it ~100x slower on a loaded 2-core machine (45 ms vs 0.25 ms),
and joblib workers each starting BLAS threads oversubscribe the cores. Fits therefore run BLAS
single-threaded unless a dense block is large enough to profit."""
from __future__ import annotations

import contextlib

_controller = None


def blas_threads(limit: int | None):
    """Context manager limiting BLAS threads (no-op when ``limit`` is None)."""
    global _controller
    if limit is None:
        return contextlib.nullcontext()
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=limit, user_api="blas")
