"""Small array helpers shared by the adapters (validation of responses, weights and counts)."""
from __future__ import annotations

import numpy as np

from glmmdiag.errors import GlmmdiagError

__all__ = ["_vector", "_is_integral", "_whole", "_first_bad", "convergence_warnings"]


def _vector(x, name: str, n: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise GlmmdiagError(f"{name} must be one-dimensional; got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise GlmmdiagError(f"{name} has {a.shape[0]} values, expected {n} (one per observation)")
    return a


def _is_integral(a: np.ndarray) -> bool:
    a = np.asarray(a)
    if a.dtype.kind in "iub":
        return True
    finite = a[np.isfinite(a)]
    return bool(np.all(finite == np.round(finite)))


def _whole(a: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Elementwise: is ``a`` a whole number (up to ``tol`` relative to max(1, |a|))?"""
    return np.abs(a - np.round(a)) <= tol * np.maximum(1.0, np.abs(a))


def _first_bad(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    return f"{rows.size} rows, first row {rows[0]}"




def convergence_warnings(converged: bool, what: str) -> list[str]:
    """The warning ``simulate_residuals`` gives for a fit that did not converge (none when it did)."""
    if converged:
        return []
    return [f"the {what} fit did not converge: its residuals describe the estimates where the optimiser "
            f"stopped, which may not be the maximum-likelihood fit"]
