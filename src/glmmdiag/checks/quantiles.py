"""Rank-score tests of the residual quantiles against a predictor, and their quantile-regression curves."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import interpolate, special, stats

from glmmdiag.errors import GlmmdiagError
from glmmdiag.results import ScaledResiduals, TestResult
from glmmdiag.checks._common import _all_tied_note, _check_res, _data_name
from glmmdiag.checks._columns import _column_values
from glmmdiag.checks.pvalues import p_adjust


def _rank01(x) -> np.ndarray:
    x = np.asarray(x, float)
    rk = stats.rankdata(x, method="average")
    return rk / rk.max()


def _spline_basis(x: np.ndarray, df: int):
    """Cubic B-spline basis (partition of unity) on [0, 1] with df + 1 columns and interior knots at
    quantiles of x; returns (basis function, n_columns)."""
    n_int = df - 3
    if df < 1:
        return None, 1
    if df <= 3:  # polynomial of degree df: a B-spline basis without interior knots
        k = df
        t = np.r_[np.zeros(k + 1), np.ones(k + 1)]
    else:
        k = 3
        inner = np.quantile(x, np.linspace(0, 1, n_int + 2)[1:-1])
        inner = np.unique(np.clip(inner, 1e-9, 1 - 1e-9))
        t = np.r_[np.zeros(k + 1), inner, np.ones(k + 1)]
    ncol = len(t) - k - 1

    def basis(z):
        z = np.clip(np.asarray(z, float), 0.0, 1.0)
        return interpolate.BSpline.design_matrix(z, t, k, extrapolate=False).toarray()

    return basis, ncol


def _quantile_lp(B: np.ndarray, r: np.ndarray, q: float):
    """Exact linear quantile regression (pinball loss) through its dual LP, solved by HiGHS:
    max r'a subject to B'a = (1 - q) B'1, 0 <= a <= 1 (Koenker 2005, section 6.2); the
    coefficients are minus the duals of the equality constraints. None when the solver fails."""
    from scipy.optimize import linprog

    try:
        sol = linprog(-r, A_eq=B.T, b_eq=(1 - q) * B.sum(axis=0), bounds=(0, 1), method="highs")
    except Exception:  # pragma: no cover
        return None
    if not sol.success:
        return None
    return -np.asarray(sol.eqlin.marginals, float)


def quantile_test(
    res: ScaledResiduals,
    predictor=None,
    quantiles=(0.25, 0.5, 0.75),
    *,
    rank: bool = True,
    spline_df: int = 4,
    curves: bool = False,
    max_curve_points: int = 10000,
    data=None,
) -> TestResult:
    """Do the quantiles of the residuals depend on the predictor (default: fitted values)?

    For each quantile q, under the model the residuals are Uniform(0, 1) whatever the predictor, so
    the q-quantile of r given x is exactly q: a completely specified null. With sign scores
    a_i = q - 1{r_i < q} (mean 0, variance q(1 - q) under H0) and a cubic B-spline basis B of the
    rank-transformed predictor (``spline_df`` shape degrees of freedom), two rank-score tests follow:
    level: (sum a)^2 / (n q(1-q)) ~ chi2(1); shape: S'(Bc'Bc)^-1 S / (q(1-q)) ~ chi2(df) with Bc the
    centred non-constant columns and S = Bc'a. Per q, p = min of the two Benjamini-Hochberg
    adjusted p-values; overall p = smallest BH-adjusted per-q p-value (DHARMa's combination).
    No model is fitted for the p-values, so the test cannot fail and works for any n.

    ``predictor``: one value per residual, one per row of the fitting data (its fitted rows are
    taken), or a column name looked up in ``data`` (the fitting data) or among the columns the
    model knows (``checks._columns.per_row``).

    With ``curves=True`` the plot data also hold the quantile-regression curves (exact pinball LP on
    the same basis, on at most ``max_curve_points`` points, evenly subsampled by rank). Off by
    default: the p-values do not need them, and the LP grows super-linearly with n (~0.25 s per
    quantile at 2 000 points, seconds at 10 000); ``plot_residuals`` fits them when it draws. The
    null +-1.96 SE band around each q is always in the plot data.

    Examples
    --------
    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> rust = datasets.load("rust")
    >>> fit = glmmdiag.glmm("severity ~ fungicide + (1 | block)", rust, family="beta")
    >>> res = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1)
    >>> t = glmmdiag.quantile_test(res, curves=False)
    >>> print(f"p = {t.p_value:.2f}")
    p = 1.00
    """
    res = _check_res(res)
    r = np.asarray(res.residuals, float)
    n = r.size
    x = np.asarray(res.fitted if predictor is None else _column_values(res, predictor, "predictor", data),
                   float).reshape(-1)
    if x.shape[0] != n:
        raise GlmmdiagError(f"predictor has {x.shape[0]} values but there are {n} residuals")
    if not np.all(np.isfinite(x)):
        raise GlmmdiagError("predictor has NaN/infinite values")
    xr = _rank01(x) if rank else (x - x.min()) / max(np.ptp(x), 1e-300)
    n_unique = np.unique(xr).size
    dfe = int(min(spline_df, n_unique - 1))
    basis, ncol = _spline_basis(xr, dfe) if dfe >= 1 else (None, 1)
    qs = np.asarray(quantiles, float)
    if np.any((qs <= 0) | (qs >= 1)):
        raise GlmmdiagError("quantiles must lie strictly between 0 and 1")
    rows = []
    B = basis(xr) if basis is not None else None
    if B is not None:
        Bc = B[:, 1:] - B[:, 1:].mean(axis=0)
        G = Bc.T @ Bc
        Ginv = np.linalg.pinv(G)
        rank_G = int(np.linalg.matrix_rank(G))
    grid = np.linspace(0, 1, 101)
    curves_out = {}
    for q in qs:
        a = q - (r < q).astype(float)
        v = q * (1 - q)
        t_level = a.sum() ** 2 / (n * v)
        p_level = float(special.chdtrc(1, t_level))  # chi2(1).sf, without scipy.stats' per-call checks
        if B is not None and rank_G > 0:
            s = Bc.T @ a
            t_shape = float(s @ Ginv @ s / v)
            p_shape = float(special.chdtrc(rank_G, t_shape))
        else:
            t_shape, p_shape = math.nan, math.nan
        ps = [p_level] + ([p_shape] if np.isfinite(p_shape) else [])
        p_q = float(np.min(p_adjust(ps, "BH")))
        rows.append((t_level, p_level, t_shape, p_shape, p_q))
        if curves:
            curves_out[float(q)] = _curve(xr, r, q, basis, grid, max_curve_points)
    values = np.array(rows, float).reshape(len(qs), 5)
    adj = p_adjust(values[:, 4], "BH")
    table = pd.DataFrame(np.column_stack([values, adj]), index=pd.Index(qs, name="quantile"),
                         columns=["level_chi2", "level_p", "shape_chi2", "shape_p", "p_value", "p_adjusted"])
    p_all = float(np.min(adj))
    # the null band of a fitted quantile curve: Var(fit(x)) = q(1-q) b(x)'(B'B)^-1 b(x)
    band = {}
    if B is not None:
        BtBi = np.linalg.pinv(B.T @ B)
        bg = basis(grid)
        h = np.einsum("ij,jk,ik->i", bg, BtBi, bg)
        for q in qs:
            band[float(q)] = 1.96 * np.sqrt(q * (1 - q) * h)
    return TestResult(
        method=f"Quantile test: rank-score tests of residual quantiles vs predictor (cubic B-spline, {dfe} df)",
        statistic=float(np.max(values[:, 0])) if B is None else float(np.nanmax(values[:, 2], initial=0.0)),
        statistic_name="max shape chi-square" if B is not None else "max level chi-square",
        p_value=p_all,
        alternative="two-sided",
        data_name=_data_name(res, " vs " + ("fitted values" if predictor is None else "predictor") + (" (ranked)" if rank else "")),
        parameter={"df": float(dfe)},
        simulate_re=res.simulate_re,
        note=_all_tied_note(res),
        table=table,
        plot_data={"x": xr, "residuals": r, "grid": grid, "curves": curves_out, "null_band": band,
                   "p_per_quantile": dict(zip(map(float, qs), adj))},
    )


def _curve(xr, r, q, basis, grid, max_points):
    if basis is None:
        return np.full(grid.shape, float(np.quantile(r, q)))
    n = xr.size
    idx = np.argsort(xr)
    if n > max_points:
        idx = idx[np.linspace(0, n - 1, max_points).round().astype(int)]
    beta = _quantile_lp(basis(xr[idx]), r[idx], q)
    if beta is None:
        return None
    return basis(grid) @ beta
