"""Temporal (Durbin-Watson) and spatial (Moran's I) autocorrelation of the residuals, with their
optional parametric-bootstrap calibration."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import integrate, stats

from glmmdiag._arguments import seed_or_rng
from glmmdiag._rng import child_generator
from glmmdiag.errors import FitError, GlmmdiagError
from glmmdiag.results import ScaledResiduals, TestResult
from glmmdiag.checks._common import _alt, _check_res, _data_name, _signif_plain, _undefined
from glmmdiag.checks._columns import _column_values


def durbin_watson_pvalue(dw: float, n: int, alternative: str = "two-sided", exact: bool | None = None) -> float:
    """P-value of the Durbin-Watson statistic of intercept-only residuals of length n (iid normal H0).

    The eigenvalues of M A M (M = I - 11'/n, A the first-difference matrix) are
    2 (1 - cos(pi j / n)), j = 1..n-1, so DW = sum l_j z_j^2 / sum z_j^2. P(DW <= d) is computed by
    Imhof's (1961) inversion for n <= 2000 (``exact``), else by the normal approximation with the
    exact mean and variance. "greater" (positive autocorrelation): P(DW <= d).
    """
    if n < 3:
        raise GlmmdiagError(f"the Durbin-Watson test needs at least 3 observations; got {n}")
    return _dw_pvalue(dw, _dw_eigenvalues([n]), alternative, exact)


def _dw_eigenvalues(lengths) -> np.ndarray:
    """Eigenvalues of M A M for series of the given lengths, each centred on its own mean and
    differenced within itself only: the union over series of 2 (1 - cos(pi j / n_s)), j < n_s."""
    return np.concatenate([2.0 * (1.0 - np.cos(np.pi * np.arange(1, m) / m)) for m in lengths if m >= 2]
                          or [np.zeros(0)])


def _dw_pvalue(dw: float, lam: np.ndarray, alternative: str = "two-sided", exact: bool | None = None) -> float:
    """P-value of DW = sum l_j z_j^2 / sum z_j^2 (z iid normal) for the eigenvalues ``lam``."""
    alt = _alt(alternative)
    if not math.isfinite(dw):
        return math.nan
    n = lam.size + 1
    if exact is None:
        exact = n <= 2000
    if exact:
        c = lam - dw

        def f(u):
            if u == 0:
                return 0.5 * c.sum()
            cu = c * u
            theta = 0.5 * np.arctan(cu).sum()
            logrho = 0.25 * np.log1p(cu * cu).sum()
            return math.sin(theta) / (u * math.exp(logrho))

        # the integrand is bounded by 1 / (u rho(u)); integrate up to where that is negligible
        upper = 1.0
        while True:
            cu = c * upper
            if upper * math.exp(0.25 * np.log1p(cu * cu).sum()) > 1e12 or upper > 1e12:
                break
            upper *= 2.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", integrate.IntegrationWarning)
            val, _ = integrate.quad(f, 0, upper, limit=2000, epsabs=1e-11, epsrel=1e-10)
        p_gt0 = 0.5 + val / math.pi  # P(sum c z^2 > 0) = P(DW > d)
        lower = min(1.0, max(0.0, 1.0 - p_gt0))
    else:
        m = lam.size
        mean = lam.mean()
        var = 2.0 * np.sum((lam - mean) ** 2) / (m * (m + 2))
        lower = float(stats.norm.cdf(dw, mean, math.sqrt(var)))
    upper = 1.0 - lower
    if alt == "greater":
        return float(lower)
    if alt == "less":
        return float(upper)
    return float(min(1.0, 2 * min(lower, upper)))


def temporal_autocorrelation_test(res: ScaledResiduals, time, alternative: str = "two-sided", *, group=None,
                                  data=None, n_boot: int = 0, seed=None, n_jobs=1, rng=None) -> TestResult:
    """Durbin-Watson test of the residuals ordered by ``time`` (DHARMa: lmtest::dwtest(r ~ 1)),
    pooled within series when ``group`` is given.

    Parameters
    ----------
    res : ScaledResiduals
    time : array, Series or column name
        One time per residual. A column name is looked up in ``data``, or else among the columns
        the model knows (the time column of an ``ar1``/``ou`` term, a grouping factor).
    alternative : "two-sided", "greater" (positive autocorrelation) or "less"
    group : array, Series or column name, optional
        The series each residual belongs to (several series, e.g. ``ar1(times + 0 | group)``'s
        group). Times must be unique within a series.
    data : DataFrame, optional
        Where column names are looked up (the data the model was fitted to; its fitted rows are
        used, so rows dropped for missing values are skipped).
    n_boot : int, default 0
        > 0: calibrate the p-value by a parametric bootstrap of the whole procedure: ``n_boot``
        data sets are simulated from the fitted model (new random effects), refitted, given
        residuals as ``res`` was (same n_sim, simulation mode, rotation) and their DW computed;
        p = (1 + #{DW_b <= DW}) / (n_boot + 1) for "greater", two-sided min(1, 2 min(lower, upper)).
        Use it for models that contain the autocorrelation (``ar1``, ``ou``): their fitted
        correlation is estimated from the same series, so the Imhof p-value is not calibrated
        there (benchmarks/calibration.py ``temporal``, correct ar1 model, 200 data sets each:
        0.000 rejections at 0.05 with 30 series x 10 times, 0.075 [0.043, 0.121] with 60 x 20;
        calibrated with n_boot = 39: 0.030 [0.011, 0.064] at 30 x 10). With n_boot = 39 a
        two-sided test at 0.05 rejects only at the extreme rank, with exact size under the
        fitted model. ``seed`` / ``n_jobs`` as in ``calibrated_tests``.

    Notes
    -----
    One series: DW = sum_t (e_t - e_{t-1})^2 / sum_t e_t^2 with e = r - mean(r), ordered by time.
    Several series s = 1..S of lengths n_s: each is centred on its own mean and differenced within
    itself only, DW = sum_s sum_t (e_st - e_s,t-1)^2 / sum_s sum_t e_st^2. Under iid normal
    residuals DW = sum_j l_j z_j^2 / sum_j z_j^2 with z iid N(0, 1) and l_j the eigenvalues of
    M A M, where M centres and A differences within each series (both block-diagonal): the union
    over series of 2 (1 - cos(pi j / n_s)), j = 1..n_s - 1. The p-value is Imhof's (1961)
    inversion of that distribution (normal approximation with the exact mean and variance above
    2000 eigenvalues); with one series this is lmtest's dwtest. Series of length 1 contribute
    nothing. DW < 2 means positive autocorrelation; the reported estimate rho = 1 - DW / 2.
    Calibration (uniform residuals, 40 series x 12 times, 4000 data sets): see
    tests/test_temporal_grouped.py.
    """
    seed = seed_or_rng(seed, rng, "temporal_autocorrelation_test")
    res = _check_res(res)
    alt = _alt(alternative)
    t = _column_values(res, time, "time", data)
    r = np.asarray(res.residuals, float)
    if t.ndim != 1 or t.shape[0] != r.size:
        raise GlmmdiagError(f"time must have one value per residual ({r.size}); got shape {t.shape}")
    if pd.isna(pd.Series(t)).any():
        raise GlmmdiagError("time has missing values")
    if group is None:
        gcodes = np.zeros(r.size, np.int64)
        glabels = None
    else:
        g = _column_values(res, group, "group", data)
        if g.ndim != 1 or g.shape[0] != r.size:
            raise GlmmdiagError(f"group must have one value per residual ({r.size}); got shape {g.shape}")
        if pd.isna(pd.Series(g)).any():
            raise GlmmdiagError("group has missing values")
        gcodes, glabels = pd.factorize(pd.Series(g), sort=True)
    tcodes, tuniq = pd.factorize(pd.Series(t), sort=True)
    pair = gcodes.astype(np.int64) * (len(tuniq) + 1) + tcodes
    dup_pairs, counts = np.unique(pair, return_counts=True)
    if np.any(counts > 1):
        k = int(np.sum(counts > 1))
        ex = dup_pairs[counts > 1][0]
        ex_t = tuniq[ex % (len(tuniq) + 1)]
        if group is None:
            raise GlmmdiagError(
                f"time has duplicated values ({k} times occur more than once, e.g. {ex_t!r}): "
                f"the Durbin-Watson test needs one residual per time. Several series: pass group= (the series); "
                f"otherwise aggregate with recalculate_residuals(res, group=time) and pass the unique times"
            )
        ex_g = glabels[ex // (len(tuniq) + 1)]
        raise GlmmdiagError(
            f"time has duplicated values within a series ({k} (series, time) pairs occur more than once, e.g. "
            f"series {ex_g!r} at time {ex_t!r}): the test needs one residual per time in each series; aggregate "
            f"with recalculate_residuals first"
        )
    if group is None and r.size < 3:
        raise GlmmdiagError(f"the Durbin-Watson test needs at least 3 observations; got {r.size}")
    order = np.lexsort((tcodes, gcodes))
    gs = gcodes[order]
    lengths = np.bincount(gs)
    lengths = lengths[lengths > 0]
    n_eff = int(np.sum(lengths[lengths >= 2]))
    if n_eff - int(np.sum(lengths >= 2)) < 2:
        raise GlmmdiagError(f"the Durbin-Watson test needs at least 3 observations in one series (or 2 in two); "
                            f"got series of lengths {sorted(lengths.tolist())[-5:]}")
    ro = r[order]
    means = np.bincount(gs, weights=ro) / np.maximum(np.bincount(gs), 1)
    e = ro - means[gs]
    same = gs[1:] == gs[:-1]
    plot = {"time": t[order], "residuals": ro}
    if group is not None:
        plot["group"] = np.asarray(glabels, dtype=object)[gs]
    if np.all(r == r[0]) or float(np.sum(e * e)) == 0.0:
        return _undefined(res, "Durbin-Watson test", "DW", alt,
                          f"the residuals are {'all equal' if np.all(r == r[0]) else 'constant within every series'}"
                          f": the Durbin-Watson statistic is 0/0",
                          plot_data=plot)
    dw = float(np.sum((np.diff(e)[same]) ** 2) / np.sum(e * e))
    lam = _dw_eigenvalues(lengths)
    p = _dw_pvalue(dw, lam, alt)
    n_series = int(np.sum(lengths >= 2))
    method = "Durbin-Watson test" + (f" pooled within {n_series} series" if group is not None else "")
    note = f"residuals rotated ({res.rotation} covariance) before the test" if getattr(res, "rotation", None) else None
    extra = {}
    if n_boot:
        p, method, note, extra = _calibrated(res, _PooledDW(order, gs), dw, +1, alt, p, method, note, plot,
                                             n_boot, seed, n_jobs)
    return TestResult(
        method=method,
        statistic=dw,
        statistic_name="DW",
        p_value=p,
        alternative={"two-sided": "true autocorrelation is not 0", "greater": "true autocorrelation is greater than 0",
                     "less": "true autocorrelation is less than 0"}[alt],
        data_name=_data_name(res, " ordered by time" + (" within series" if group is not None else "")),
        parameter={"series": float(n_series)} if group is not None else None,
        estimate={"lag-1 autocorrelation (1 - DW/2)": 1.0 - dw / 2.0} if group is not None else None,
        simulate_re=res.simulate_re,
        note=note,
        plot_data=plot,
        **extra,
    )


class _PooledDW:
    """The pooled within-series Durbin-Watson statistic of residuals (picklable, for the bootstrap)."""

    def __init__(self, order, gs):
        self.order, self.gs = order, gs
        self.same = gs[1:] == gs[:-1]

    def __call__(self, r) -> float:
        ro = np.asarray(r, float)[self.order]
        means = np.bincount(self.gs, weights=ro) / np.maximum(np.bincount(self.gs), 1)
        e = ro - means[self.gs]
        ee = float(np.sum(e * e))
        return float(np.sum(np.diff(e)[self.same] ** 2) / ee) if ee > 0 else math.nan


def _bootstrap_one(model, b, root, n_sim, simulate_re, chunk_size, rotation, blocks, stat):
    from glmmdiag.residuals import simulate_residuals
    from glmmdiag._rng import child_seed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            y_b = np.asarray(model.simulate(1, child_generator(root, 5, b), False), float)[:, 0]
            m_b = model.refit(y_b)
            res_b = simulate_residuals(m_b, n_sim, seed=child_seed(root, 6, b), simulate_re=simulate_re,
                                       chunk_size=chunk_size, rotation=rotation, rotation_blocks=blocks)
            return stat(res_b.residuals), None
        except Exception as exc:  # a failed refit is dropped (all failing is an error)
            return math.nan, f"{type(exc).__name__}: {exc}"


def _bootstrap_statistics(res, stat, n_boot: int, seed, n_jobs) -> np.ndarray:
    """``stat`` of residuals of ``n_boot`` data sets simulated from the fitted model (new random
    effects), each refitted and given residuals as ``res`` was (n_sim, mode, rotation, chunks)."""
    from joblib import Parallel, delayed, effective_n_jobs

    from glmmdiag._rng import root_seed

    m = res.model
    if m is None or not hasattr(m, "refit"):
        raise TypeError("n_boot > 0 needs residuals of a model that can be refitted (not from_simulations)")
    if res.method != "PIT" or res.group is not None:
        raise GlmmdiagError("n_boot > 0 works on ungrouped PIT residuals from simulate_residuals")
    if getattr(res, "rotation", None) == "given":
        raise GlmmdiagError("n_boot > 0 cannot replay a given rotation matrix on refitted models; use "
                            "rotation='estimated' or None")
    n_boot = int(n_boot)
    if n_boot < 1:
        raise GlmmdiagError("n_boot must be >= 1")
    root = root_seed(seed if seed is not None else np.random.SeedSequence(res.seed).spawn(2)[1])
    src = res._source or {}
    args = (root, res.n_sim, res.simulate_re, res.chunk_size, getattr(res, "rotation", None),
            src.get("rotation_blocks"), stat)
    if effective_n_jobs(n_jobs) == 1:
        out = [_bootstrap_one(m, b, *args) for b in range(n_boot)]
    else:
        out = Parallel(n_jobs=n_jobs)(delayed(_bootstrap_one)(m, b, *args) for b in range(n_boot))
    vals = np.array([v for v, _ in out], float)
    errors = sorted({e for _, e in out if e})
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        raise FitError(f"every bootstrap refit failed: {errors[:3]}; use n_boot=0 (the uncalibrated p-value)")
    if vals.size < n_boot:
        from glmmdiag.errors import RefitWarning

        warnings.warn(f"{n_boot - vals.size} of {n_boot} bootstrap refits failed and were dropped ({errors[:2]})",
                      RefitWarning, stacklevel=3)
    return vals


def _calibrated(res, statistic, observed: float, sign: int, alt: str, p_raw: float, method: str, note, plot: dict,
                n_boot: int, seed, n_jobs):
    """The bootstrap-calibrated p-value of ``observed`` (``statistic`` recomputed on ``n_boot``
    refits to data simulated from the fit; ``sign`` -1 where large values mean positive
    autocorrelation), with the test's method, note and Monte-Carlo fields updated; the bootstrap
    values go into ``plot``. Returns (p, method, note, extra TestResult fields)."""
    boot = _bootstrap_statistics(res, statistic, n_boot, seed, n_jobs)
    p = _bootstrap_p(sign * observed, sign * boot, alt)
    note = ((note + "\n") if note else "") + (f"p-value calibrated by {boot.size} refits to data simulated from the "
                                                f"fit (uncalibrated p = {_signif_plain(p_raw)})")
    plot["bootstrap_values"] = boot
    extra = {"mc_se": float(max(math.sqrt(p * (1 - p) / boot.size), 1.0 / (boot.size + 1))), "n_sim": boot.size}
    return p, method + " [parametric-bootstrap calibrated]", note, extra


def _bootstrap_p(obs: float, boot: np.ndarray, alt: str) -> float:
    """Monte-Carlo p-value of a statistic where small values mean positive association (DW) -- for
    "greater" -- or large values (Moran's I, pass -I): (1 + #{T_b <= T}) / (B + 1), two-sided
    min(1, 2 min(1 + #{T_b <= T}, 1 + #{T_b >= T}) / (B + 1))."""
    B = boot.size
    lo = (1 + np.sum(boot <= obs)) / (B + 1)
    hi = (1 + np.sum(boot >= obs)) / (B + 1)
    if alt == "greater":
        return float(lo)
    if alt == "less":
        return float(hi)
    return float(min(1.0, 2 * min(lo, hi)))


# ---------------------------------------------------------------------------------- spatial
def _moran_from_weights(z: np.ndarray, W) -> tuple[float, float, float, float]:
    """(I, S0, S1, S2) for weights W (dense or sparse), z centred."""
    import scipy.sparse as sp

    if sp.issparse(W):
        W = W.tocsr()
        S0 = float(W.sum())
        cv = float(z @ (W @ z))
        Wt = W.T.tocsr()
        S1 = 0.5 * float((W + Wt).multiply(W + Wt).sum())
        S2 = float(np.sum((np.asarray(W.sum(axis=1)).ravel() + np.asarray(W.sum(axis=0)).ravel()) ** 2))
    else:
        W = np.asarray(W, float)
        S0 = float(W.sum())
        cv = float(z @ W @ z)
        S1 = 0.5 * float(np.sum((W + W.T) ** 2))
        S2 = float(np.sum((W.sum(axis=1) + W.sum(axis=0)) ** 2))
    n = z.size
    zz = float(z @ z)
    I = n / S0 * cv / zz if (zz > 0 and S0 != 0) else math.nan
    return I, S0, S1, S2


def _moran_inverse_distance(z, coords, block: int = 2048):
    """Moran's I with row-standardised 1/d weights from coordinates, in row blocks (O(n x block) memory)."""
    n = coords.shape[0]
    rs = np.empty(n)
    for s in range(0, n, block):
        d = np.sqrt(((coords[s : s + block, None, :] - coords[None, :, :]) ** 2).sum(-1))
        with np.errstate(divide="ignore"):
            w = 1.0 / d
        w[np.arange(d.shape[0]), np.arange(s, s + d.shape[0])] = 0.0
        if not np.all(np.isfinite(w)):
            i, j = np.argwhere(~np.isfinite(w))[0]
            raise GlmmdiagError(
                f"duplicate locations (rows {s + i} and {j} share coordinates): inverse-distance weights are "
                f"undefined. Aggregate with recalculate_residuals(res, group=location) or pass weights="
            )
        rs[s : s + block] = w.sum(axis=1)
    rs[rs == 0] = 1.0
    cv = S1 = 0.0
    colsum = np.zeros(n)
    rowsum = np.zeros(n)
    for s in range(0, n, block):
        d = np.sqrt(((coords[s : s + block, None, :] - coords[None, :, :]) ** 2).sum(-1))
        with np.errstate(divide="ignore"):
            inv = 1.0 / d
        inv[np.arange(d.shape[0]), np.arange(s, s + d.shape[0])] = 0.0
        w = inv / rs[s : s + block, None]  # w_ij for rows i in the block
        wt = inv / rs[None, :]  # w_ji (distances are symmetric)
        cv += float(z[s : s + block] @ (w @ z))
        S1 += 0.5 * float(np.sum((w + wt) ** 2))
        colsum += w.sum(axis=0)
        rowsum[s : s + block] = w.sum(axis=1)
    S0 = float(colsum.sum())
    S2 = float(np.sum((rowsum + colsum) ** 2))
    zz = float(z @ z)
    I = n / S0 * cv / zz if (zz > 0 and S0 != 0) else math.nan
    return I, S0, S1, S2


def spatial_autocorrelation_test(
    res: ScaledResiduals, x=None, y=None, *, distance_matrix=None, weights=None, alternative: str = "two-sided",
    data=None, n_boot: int = 0, seed=None, n_jobs=1,
    rng=None,
) -> TestResult:
    """Moran's I of the residuals (DHARMa: ape::Moran.I).

    Weights: ``weights`` as given (dense or scipy sparse), or 1/distance (zero diagonal) from
    ``distance_matrix`` or from Euclidean distances of coordinates ``x``, ``y``; rows are scaled to
    sum to 1 (as ape does). The null moments are Cliff & Ord's under randomisation (kurtosis of the
    residuals included); p-value from the normal approximation. Coordinates are processed in row
    blocks, so memory stays O(n x 2048) for large n (time is O(n^2)).

    ``x`` and ``y`` may be column names, looked up in ``data`` (the fitting data) or among the
    coordinates of the model's distance-structured term (``exp(numFactor(x, y) + 0 | g)``).
    ``n_boot`` > 0 calibrates the p-value by a parametric bootstrap of the whole procedure (as
    ``temporal_autocorrelation_test``; statistic Moran's I, large = positive autocorrelation).
    """
    seed = seed_or_rng(seed, rng, "spatial_autocorrelation_test")
    res = _check_res(res)
    alt = _alt(alternative)
    if isinstance(x, str) or isinstance(x, (pd.Series, pd.Index)):
        x = _column_values(res, x, "x", data)
    if isinstance(y, str) or isinstance(y, (pd.Series, pd.Index)):
        y = _column_values(res, y, "y", data)
    r = np.asarray(res.residuals, float)
    n = r.size
    if n < 4:
        raise GlmmdiagError(f"Moran's I test needs at least 4 observations (its variance divides by (n-1)(n-2)(n-3)); got {n}")
    z = r - r.mean()
    given = sum(v is not None for v in (weights, distance_matrix)) + (x is not None or y is not None)
    if given != 1:
        raise GlmmdiagError("give exactly one of: coordinates x and y, distance_matrix=, or weights=")
    if weights is not None or distance_matrix is not None:
        import scipy.sparse as sp

        M = weights if weights is not None else distance_matrix
        if M.shape != (n, n):
            raise GlmmdiagError(f"the matrix must be ({n}, {n}); got {M.shape}")
        if weights is not None:
            W = M.tocsr().astype(float) if sp.issparse(M) else np.array(M, float)
        else:
            D = np.asarray(M.toarray() if sp.issparse(M) else M, float)
            off = ~np.eye(n, dtype=bool)
            if np.any(D[off] <= 0):
                raise GlmmdiagError("distance_matrix has zero/negative off-diagonal distances (duplicate locations)")
            W = np.zeros((n, n))
            W[off] = 1.0 / D[off]
        if sp.issparse(W):
            rsum = np.asarray(W.sum(axis=1)).ravel()
            rsum[rsum == 0] = 1.0
            W = sp.diags(1.0 / rsum) @ W
        else:
            rsum = W.sum(axis=1)
            rsum[rsum == 0] = 1.0
            W = W / rsum[:, None]
        I, S0, S1, S2 = _moran_from_weights(z, W)
        coords = None
    else:
        if x is None or y is None:
            raise GlmmdiagError("give both x and y coordinates")
        coords = np.column_stack([np.asarray(x, float).reshape(-1), np.asarray(y, float).reshape(-1)])
        if coords.shape[0] != n:
            raise GlmmdiagError(f"x and y must have {n} values (one per residual); got {coords.shape[0]}")
        I, S0, S1, S2 = _moran_inverse_distance(z, coords)
    if np.all(r == r[0]):
        return _undefined(res, "Moran's I test for distance-based autocorrelation", "observed", alt,
                          f"the residuals are all equal ({_signif_plain(r[0])}): Moran's I is 0/0",
                          plot_data={"coords": coords, "residuals": r})
    if S0 == 0:
        return _undefined(res, "Moran's I test for distance-based autocorrelation", "observed", alt,
                          "every spatial weight is 0 (no pair of neighbours): Moran's I is 0/0",
                          plot_data={"coords": coords, "residuals": r})
    EI = -1.0 / (n - 1)
    b2 = (np.sum(z**4) / n) / (np.sum(z**2) / n) ** 2
    num = n * ((n * n - 3 * n + 3) * S1 - n * S2 + 3 * S0**2) - b2 * ((n * n - n) * S1 - 2 * n * S2 + 6 * S0**2)
    EI2 = num / ((n - 1) * (n - 2) * (n - 3) * S0**2)
    sd = math.sqrt(max(EI2 - EI**2, 0.0))
    zstat = (I - EI) / sd if sd > 0 else math.nan
    lower = float(stats.norm.cdf(zstat))
    p = {"greater": 1 - lower, "less": lower}.get(alt, 2 * min(lower, 1 - lower))
    method = "Moran's I test for distance-based autocorrelation"
    note = f"residuals rotated ({res.rotation} covariance) before the test" if getattr(res, "rotation", None) else None
    plot = {"coords": coords, "residuals": r}
    extra = {}
    if n_boot:  # large I = positive autocorrelation ("greater"): the bootstrap compares -I
        p, method, note, extra = _calibrated(res, _MoranI(coords, W if coords is None else None), float(I), -1, alt,
                                             p, method, note, plot, n_boot, seed, n_jobs)
    return TestResult(
        method=method,
        statistic=float(I),
        statistic_name="observed",
        p_value=float(min(1.0, p)),
        alternative=alt,
        data_name=_data_name(res),
        estimate={"observed": float(I), "expected": EI, "sd": sd},
        simulate_re=res.simulate_re,
        note=note,
        plot_data=plot,
        **extra,
    )


class _MoranI:
    """Moran's I of residuals for fixed coordinates or weights (picklable, for the bootstrap)."""

    def __init__(self, coords, W):
        self.coords, self.W = coords, W

    def __call__(self, r) -> float:
        r = np.asarray(r, float)
        z = r - r.mean()
        if self.coords is not None:
            return float(_moran_inverse_distance(z, self.coords)[0])
        return float(_moran_from_weights(z, self.W)[0])
