"""R's ``splines::bs()`` and ``splines::ns()`` as formulaic stateful transforms.

The knots are chosen from the fitted data exactly as R chooses them and stored in the model
spec, so ``predict(newdata)`` evaluates the same basis on new x (R's ``makepredictcall``).

B-spline basis (``bs(x, df=None, knots=None, degree=3, intercept=False, boundary_knots=None)``)
    With order m = degree + 1, boundary knots (b_1, b_2) = range(x) unless given, and
    ``df`` without ``knots``: K = df - m + (1 - intercept) interior knots (0 if negative, with
    a warning) at the quantiles j / (K + 1), j = 1..K, of the x inside the boundary knots
    (R's default quantile, type 7). The basis is the m-th order B-splines B_1..B_{K+m} on the
    knot sequence (b_1 x m, interior knots, b_2 x m); without ``intercept`` B_1 is dropped. For
    x outside [b_1, b_2] R uses the degree-``degree`` Taylor expansion of each B_i about a point
    of the boundary interval, i.e. the boundary interval's polynomial continued; here that
    polynomial is evaluated directly.

Natural cubic spline basis (``ns(x, df=None, knots=None, intercept=False, boundary_knots=None)``)
    K = df - 1 - intercept interior knots chosen as above; the cubic B-splines B on the knot
    sequence (b_1 x 4, interior, b_2 x 4), without B_1 unless ``intercept``, are constrained to
    zero second derivative at b_1 and b_2: with C the 2 x p matrix of those second derivatives
    and C' = QR the Householder QR (Q = H_1 H_2, H_l x = -sign(x_l) |x| e_l, as R's LINPACK
    ``qr``), the basis is the columns 3..p of B Q. Outside [b_1, b_2] each B_i is extended
    linearly, B_i(b) + (x - b) B_i'(b), so the natural spline is linear beyond its boundary.

Column j (1-based) is named ``ns(x, 3)[j]`` (R: ``ns(x, 3)j``).
"""
from __future__ import annotations

import warnings

import numpy as np
from formulaic.materializers.types import FactorValues
from formulaic.transforms import stateful_transform
from scipy.interpolate import BSpline

from glmmdiag.errors import FormulaError, GlmmdiagWarning

__all__ = ["r_bs", "r_ns", "bspline_basis", "natural_spline_basis", "r_quantile_knots"]


def r_quantile_knots(x: np.ndarray, n_knots: int) -> np.ndarray:
    """R's ``quantile(x, seq(0, 1, length.out = n_knots + 2)[-c(1, n_knots + 2)])`` (type 7)."""
    if n_knots <= 0:
        return np.zeros(0)
    probs = np.linspace(0.0, 1.0, n_knots + 2)[1:-1]
    return np.quantile(np.asarray(x, float), probs, method="linear")


def _knot_sequence(boundary: np.ndarray, knots: np.ndarray, order: int) -> np.ndarray:
    return np.sort(np.concatenate([np.repeat(boundary, order), knots]))


def _design(t: np.ndarray, order: int, x: np.ndarray, nu: int = 0) -> np.ndarray:
    """len(x) x (len(t) - order) matrix of the B-splines of order ``order`` (or their ``nu``-th
    derivatives) at x; a point outside the knot range gets the boundary piece's polynomial."""
    n_basis = len(t) - order
    spl = BSpline(t, np.eye(n_basis), order - 1, extrapolate=True)
    return np.asarray(spl(np.asarray(x, float), nu=nu)).reshape(len(x), n_basis)


def bspline_basis(x, knots, boundary, degree: int = 3, intercept: bool = False) -> np.ndarray:
    """The ``bs()`` basis at ``x`` for given interior ``knots`` and ``boundary`` knots (R's rules;
    see the module docstring). Missing x give NaN rows."""
    x = np.asarray(x, float)
    order = degree + 1
    t = _knot_sequence(np.asarray(boundary, float), np.asarray(knots, float), order)
    out = np.full((len(x), len(t) - order), np.nan)
    ok = ~np.isnan(x)
    out[ok] = _design(t, order, x[ok])
    return out if intercept else out[:, 1:]


def _householder_q(A: np.ndarray) -> np.ndarray:
    """The full p x p orthogonal Q of the Householder QR of the p x k matrix A (k <= p), with
    LINPACK's reflections (``dqrdc2`` without pivoting): H_l maps the l-th column's tail x to
    -sign(x_1) |x| e_1 (sign +1 when x_1 = 0), and a zero tail is still reflected."""
    A = np.array(A, float)
    p, k = A.shape
    Q = np.eye(p)
    for col in range(k):
        x = A[col:, col]
        norm = float(np.linalg.norm(x))
        if norm == 0.0:
            continue
        sigma = norm if x[0] == 0 else np.copysign(norm, x[0])
        v = x / sigma
        v[0] += 1.0
        H = np.eye(p)
        H[col:, col:] -= np.outer(v, v) / v[0]
        A = H @ A
        Q = Q @ H
    return Q


def natural_spline_basis(x, knots, boundary, intercept: bool = False) -> np.ndarray:
    """The ``ns()`` basis at ``x`` for given interior ``knots`` and ``boundary`` knots (R's rules;
    see the module docstring). Missing x give NaN rows."""
    x = np.asarray(x, float)
    boundary = np.asarray(boundary, float)
    t = _knot_sequence(boundary, np.asarray(knots, float), 4)
    p = len(t) - 4
    B = np.full((len(x), p), np.nan)
    ok = ~np.isnan(x)
    xo = x[ok]
    Bo = _design(t, 4, np.clip(xo, boundary[0], boundary[1]))
    for side, below in ((0, True), (1, False)):
        out = xo < boundary[0] if below else xo > boundary[1]
        if out.any():
            b = boundary[side : side + 1]
            Bo[out] = _design(t, 4, b) + np.outer(xo[out] - b[0], _design(t, 4, b, nu=1)[0])
    B[ok] = Bo
    C = _design(t, 4, boundary, nu=2)
    if not intercept:
        B, C = B[:, 1:], C[:, 1:]
    Q = _householder_q(C.T)
    return (B @ Q)[:, 2:]


def _check_args(name: str, df, knots, degree) -> None:
    if df is not None and (float(df) != int(df) or int(df) < 0):
        raise FormulaError(f"{name}(): df must be a whole number >= 0, got {df!r}")
    if knots is not None and not np.all(np.isfinite(np.asarray(knots, float))):
        raise FormulaError(f"{name}(): knots must be finite numbers, got {knots!r}")
    if int(degree) != degree or degree < 1:
        raise FormulaError(f"{name}(): degree must be a whole number >= 1, got {degree!r}")


def _boundary(x: np.ndarray, state: dict, boundary_knots, lower, upper) -> tuple[np.ndarray, bool]:
    """The boundary knots (stored in ``state``) and whether they were given."""
    if "boundary" in state:
        return np.asarray(state["boundary"], float), True
    given = boundary_knots is not None or lower is not None or upper is not None
    xs = x[~np.isnan(x)]
    if not len(xs) and not given:
        raise FormulaError("a spline term needs at least one non-missing x")
    lo, hi = (float(np.min(xs)), float(np.max(xs))) if len(xs) else (np.nan, np.nan)
    if boundary_knots is not None:
        bk = np.sort(np.asarray(boundary_knots, float).reshape(-1))
        if bk.shape != (2,) or not np.all(np.isfinite(bk)):
            raise FormulaError(f"boundary_knots must be two finite numbers, got {boundary_knots!r}")
        lo, hi = bk
    lo = float(lower) if lower is not None else lo
    hi = float(upper) if upper is not None else hi
    b = np.array([lo, hi])
    state["boundary"] = b.tolist()
    return b, given


def _interior_knots(name: str, x, state, df, knots, boundary, given, n_fixed: int) -> np.ndarray:
    """Interior knots (stored in ``state``): ``knots``, or for ``df`` the R quantiles of the x
    inside the boundary (all x when the boundary was not given), K = df - n_fixed."""
    if "knots" in state:
        return np.asarray(state["knots"], float)
    if knots is not None:
        k = np.sort(np.asarray(knots, float).reshape(-1))
    elif df is not None:
        n_int = int(df) - n_fixed
        if n_int < 0:
            warnings.warn(f"{name}(): 'df' was too small; have used {n_fixed}", GlmmdiagWarning, stacklevel=2)
            n_int = 0
        xs = x[~np.isnan(x)]
        if given:
            xs = xs[(xs >= boundary[0]) & (xs <= boundary[1])]
        k = r_quantile_knots(xs, n_int) if n_int else np.zeros(0)
    else:
        k = np.zeros(0)
    state["knots"] = k.tolist()
    return k


def _values(basis: np.ndarray, intercept: bool) -> FactorValues:
    cols = {str(j + 1): basis[:, j] for j in range(basis.shape[1])}
    # never spans the intercept: R keeps every column (an aliased one is dropped by the rank check)
    return FactorValues(cols, kind="numerical", spans_intercept=False, format="{name}[{field}]")


@stateful_transform
def r_bs(x, df=None, knots=None, degree=3, intercept=False, boundary_knots=None, include_intercept=None,
         lower_bound=None, upper_bound=None, _state=None) -> FactorValues:
    """R's ``splines::bs`` (see the module docstring); ``include_intercept``, ``lower_bound``
    and ``upper_bound`` are formulaic's spellings of ``intercept`` and ``boundary_knots``."""
    _check_args("bs", df, knots, degree)
    intercept = bool(intercept if include_intercept is None else include_intercept)
    x = np.asarray(x, float).reshape(-1)
    b, given = _boundary(x, _state, boundary_knots, lower_bound, upper_bound)
    k = _interior_knots("bs", x, _state, df, knots, b, given, int(degree) + 1 - (1 - int(intercept)))
    return _values(bspline_basis(x, k, b, int(degree), intercept), intercept)


@stateful_transform
def r_ns(x, df=None, knots=None, intercept=False, boundary_knots=None, _state=None) -> FactorValues:
    """R's ``splines::ns`` (see the module docstring)."""
    _check_args("ns", df, knots, 3)
    x = np.asarray(x, float).reshape(-1)
    b, given = _boundary(x, _state, boundary_knots, None, None)
    k = _interior_knots("ns", x, _state, df, knots, b, given, 1 + int(bool(intercept)))
    return _values(natural_spline_basis(x, k, b, bool(intercept)), bool(intercept))
