"""Quantile-regression curves of residuals on a (ranked) predictor, fast enough for 10^5 points.

The p-values drawn on a residual plot always come from ``checks.quantile_test``; this module only
draws its curves when the test result carries none (``quantile_test``'s default ``curves=False``):
up to ``EXACT_MAX`` points by the test's exact pinball LP, above it by the smoothed fit below,
because the LP grows super-linearly: ~0.25 s per quantile at 2 000 points, ~15 s at 20 000).

The curve is the minimiser over beta of sum_i rho_h(r_i - b(x_i)' beta), with b the same cubic
B-spline basis the test uses and rho_h the pinball loss smoothed on a scale h:

    rho_h(u) = q u + h log(1 + exp(-u / h))   ->  q u + max(0, -u) = pinball loss as h -> 0

(the logistic smoothing behind qgam's extended log-F loss). It is smooth and strictly convex, so
damped Newton steps (p x p systems, p = 5) converge in ~10 iterations of O(n p^2) work; h shrinks
from 0.05 to ~0.25 / sqrt(n), far below the curve's sampling error (~1 / sqrt(n)): the curve is
the exact quantile regression to within a fraction of its own confidence band.
"""
from __future__ import annotations

import numpy as np
from scipy import special

# up to this many points the test's own exact (LP) curves are used
EXACT_MAX = 1000


def _objective(B, r, q, h, beta):
    u = r - B @ beta
    z = -u / h
    return float(np.sum(q * u + h * (np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z))))))


def smooth_quantile_fit(B: np.ndarray, r: np.ndarray, q: float, *, h_final: float | None = None,
                        max_iter: int = 60) -> np.ndarray | None:
    """Coefficients of the smoothed-pinball quantile regression of r on the columns of B."""
    n, p = B.shape
    if h_final is None:
        h_final = min(0.02, 0.25 / np.sqrt(max(n, 1)))
    beta = np.linalg.lstsq(B, np.full(n, np.quantile(r, q)), rcond=None)[0]
    h = max(0.05, h_final)
    while True:
        f0 = _objective(B, r, q, h, beta)
        for _ in range(max_iter):
            u = r - B @ beta
            s = special.expit(-u / h)
            g = -(B.T @ (q - s))
            w = s * (1.0 - s) / h
            H = (B * w[:, None]).T @ B
            H[np.diag_indices(p)] += 1e-9 * (1.0 + np.trace(H))
            try:
                step = np.linalg.solve(H, g)
            except np.linalg.LinAlgError:
                return None
            if not np.all(np.isfinite(step)):
                return None
            t = 1.0
            while True:
                cand = beta - t * step
                f1 = _objective(B, r, q, h, cand)
                if f1 <= f0 or t < 1e-4:
                    break
                t *= 0.5
            if f1 > f0:  # no descent along the Newton direction: converged at this h
                break
            done = f0 - f1 <= 1e-12 * (1.0 + abs(f0))
            beta, f0 = cand, f1
            if done:
                break
        if h <= h_final:
            return beta
        h = max(h / 5.0, h_final)


def quantile_curves(x: np.ndarray, r: np.ndarray, quantiles, df: int, grid: np.ndarray, *,
                    exact: bool = False) -> dict:
    """{q: curve on grid} for the quantile-regression of r on x (x already ranked to [0, 1]),
    on the cubic B-spline basis of ``checks.quantile_test`` with ``df`` degrees of freedom.
    ``exact``: the exact pinball LP (``quantile_test(..., curves=True)``'s curves; for up to
    ``EXACT_MAX`` points), else the smoothed pinball fit above."""
    from glmmdiag.checks import _spline_basis  # the test's own basis: curve and test agree
    from glmmdiag.checks.quantiles import _quantile_lp

    x = np.asarray(x, float)
    r = np.asarray(r, float)
    out = {}
    basis = None
    if df >= 1 and np.unique(x).size > 1:
        basis, _ = _spline_basis(x, int(df))
    if basis is None:
        for q in quantiles:
            out[float(q)] = np.full(grid.shape, float(np.quantile(r, q)))
        return out
    B = basis(x)
    G = basis(grid)
    for q in quantiles:
        beta = _quantile_lp(B, r, float(q)) if exact else smooth_quantile_fit(B, r, float(q))
        out[float(q)] = None if beta is None else G @ beta
    return out
