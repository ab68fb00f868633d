"""Small dense linear algebra straight through LAPACK.

scipy.linalg's high-level wrappers validate and copy their inputs, which costs 10-50 us a call:
more than the arithmetic on the few-by-few matrices of a small model, called hundreds of times
a fit. These helpers call the LAPACK routines directly (inputs are trusted: finite, float64).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, lapack

__all__ = ["cholesky_lower", "cho_solve_lower", "solve_pd", "solve_triangular", "lstsq"]


def cholesky_lower(S: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor L (S = L L'), or None if S is not positive definite."""
    L, info = lapack.dpotrf(S, lower=1, clean=1)
    return L if info == 0 else None


def cho_solve_lower(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve (L L') x = b given the lower Cholesky factor L."""
    x, info = lapack.dpotrs(L, b, lower=1)
    if info != 0:
        raise LinAlgError(f"dpotrs failed (info {info})")
    return x


def solve_pd(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve A x = b for symmetric positive definite A (raises LinAlgError otherwise)."""
    _, x, info = lapack.dposv(A, b, lower=1)
    if info != 0 or not np.all(np.isfinite(x)):
        raise LinAlgError("matrix is not positive definite (or not finite)")
    return x


def solve_triangular(T: np.ndarray, b: np.ndarray, lower: bool = True, trans: bool = False) -> np.ndarray:
    """Solve T x = b (or T' x = b with ``trans``) for triangular T."""
    x, info = lapack.dtrtrs(T, b, lower=int(lower), trans=int(trans))
    if info != 0:
        raise LinAlgError("singular triangular matrix")
    return x


def lstsq(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares coefficients (numpy's SVD-based solver: rank-deficient X is fine)."""
    return np.linalg.lstsq(X, y, rcond=None)[0]
