"""The Tweedie compound Poisson-gamma density (1 < p < 2) by its series, with derivatives in
log(phi) and p.

For mean mu, dispersion phi and power p (var = phi mu^p), Y = sum_{i <= N} G_i with
N ~ Poisson(lam), lam = mu^(2-p) / (phi (2-p)), and G_i ~ Gamma(shape alpha, scale gam),
alpha = (2-p)/(p-1), gam = phi (p-1) mu^(p-1).  Then P(Y = 0) = exp(-lam) and for y > 0

    log f(y) = (y theta - kappa) / phi - log y + log S(y, phi, p),
    theta = mu^(1-p) / (1-p),  kappa = mu^(2-p) / (2-p),
    S = sum_{j >= 1} W_j,  log W_j = j z - lgamma(j + 1) - lgamma(j alpha),
    z = alpha log y - (1 + alpha) log phi - log(2-p) - alpha log(p-1),

(expand the Poisson weights and the gamma densities: the powers of mu cancel, so S does not
depend on mu).  log W_j is concave in j with its maximum near j* = y^(2-p) / (phi (2-p)); the sum is
taken over a window around j* that is widened until the terms at both ends are below
exp(-40) times the largest (Dunn & Smyth 2005, Statistics and Computing 15, 267-280, describe
the same series; the code here is derived from the expansion above).

Wide windows (p -> 2, where j* ~ 1 / (2 - p), or small phi) are summed with a stride h: W_j is
the restriction to the integers of a function of j analytic for Re j > 0, bell-shaped with SD
s = (trigamma(j* + 1) + alpha^2 trigamma(j* alpha))^(-1/2) in j, and by Poisson summation
sum_j W_j = h sum_k W_(j0 + k h) + O(exp(-2 pi^2 s^2 / h^2)) S.  With h <= s / 3 the relative
error is below exp(-177), so the strided sum is the series itself to machine precision, at
about 65 terms per row instead of ~18 s (p = 2 - 1e-5, j* ~ 1e5: 6000 terms, 65 with the stride).
"""
from __future__ import annotations

import numpy as np
from scipy import special

from glmmdiag.fit.families import _tri_tetra

__all__ = ["log_series", "series_terms"]

_DROP = 40.0  # terms below exp(-_DROP) x the largest are left out (relative error < 1e-17 per term)
_MAX_HALF_WIDTH = 1 << 16  # (the window for j* ~ 1e9 would still be narrower: ~ 40 sqrt(j*))
_SD_PER_STRIDE = 3.0  # stride h = floor(s / 3): Poisson-summation error below exp(-2 pi^2 9)
_STRIDE_CLEARANCE = 12.0  # strided windows only where j* - 12 s > 1 (the bell lies clear of j = 1)


def _by_j(fn, j, alpha):
    """fn(j * alpha) for the integer-valued array j (its rows' windows) and alpha broadcast
    against it: when alpha is one number and the range of j is shorter than j itself (the windows
    of neighbouring rows overlap), fn is evaluated once per distinct integer and gathered (the
    same products j * alpha, so the same values); otherwise elementwise."""
    a = np.asarray(alpha, float)
    if j.size > 64 and (a.ndim == 0 or a.size == 1 or np.all(a == a.flat[0])):
        a0 = float(a.flat[0])
        lo, hi = float(j.min()), float(j.max())
        if hi - lo + 1.0 < j.size:
            table = fn(np.arange(lo, hi + 1.0) * a0)
            return table[(j - lo).astype(np.intp)]
    return fn(j * a)


def _log_w(j, logy, c, p):
    """log W_j for integer j (array broadcast against the rows)."""
    alpha = (2.0 - p) / (p - 1.0)
    z = alpha * logy - (1.0 + alpha) * c - np.log(2.0 - p) - alpha * np.log(p - 1.0)
    return j * z - _by_j(special.gammaln, j + 1.0, 1.0) - _by_j(special.gammaln, j, alpha)


def _strides(centre, p):
    """The stride h per row (see the module doc): floor(s / 3) where the terms' bell (SD s in j
    around j*) lies clear of j = 1, else 1 (every term)."""
    alpha = (2.0 - p) / (p - 1.0)
    sd = 1.0 / np.sqrt(special.polygamma(1, centre + 1.0) + alpha * alpha * special.polygamma(1, centre * alpha))
    h = np.maximum(np.floor(sd / _SD_PER_STRIDE), 1.0)
    return np.where(centre - _STRIDE_CLEARANCE * sd > 1.0, h, 1.0)


def series_terms(y, c, p):
    """The summation windows for y > 0 (y, c = log phi and p broadcast to 1-D): a list of groups
    (rows, j, log W), ``rows`` indexing y, ``j`` of shape (len(rows), m) (integers >= 1) and the
    log terms.  Every row starts with a window of 33 terms around j*; rows whose end terms are
    not yet negligible are redone with twice the width, so wide windows cost only where needed.
    Rows with a stride h > 1 (``_strides``) take every h-th term and log W + log h (the strided
    sum's weight: S = h sum_k W_(j0 + k h) to machine precision)."""
    y = np.atleast_1d(np.asarray(y, float))
    c = np.broadcast_to(np.asarray(c, float), y.shape)
    p = np.broadcast_to(np.asarray(p, float), y.shape)
    logy = np.log(y)
    jstar = np.exp((2.0 - p) * logy - c) / (2.0 - p)
    centre = np.maximum(np.round(jstar), 1.0)
    stride = _strides(centre, p)
    groups = []
    rows = np.arange(y.size)
    half = 16
    while rows.size:
        h = stride[rows]
        lo = np.maximum(centre[rows] - half * h, 1.0)
        j = lo[:, None] + h[:, None] * np.arange(2 * half + 1, dtype=float)[None, :]
        lw = _log_w(j, logy[rows, None], c[rows, None], p[rows, None]) + np.log(h)[:, None]
        top = lw.max(axis=1)
        done = ((lo == 1.0) | (lw[:, 0] < top - _DROP)) & (lw[:, -1] < top - _DROP)
        if half >= _MAX_HALF_WIDTH:
            done[:] = True
        groups.append((rows[done], j[done], lw[done]))
        rows = rows[~done]
        half *= 2
    return groups


def log_series(y, c, p, derivs: bool = False):
    """log S(y, phi, p) for y > 0 (see the module doc), and with ``derivs`` also its first and
    second derivatives in (c, p), c = log phi: returns (logS, dc, dp, dcc, dcp, dpp).

    With pi_j = W_j / S, d log S = E_pi[d log W_j] and d2 log S = E_pi[d2 log W_j] + Cov_pi, where
    d log W_j / dc = -j (1 + alpha), d log W_j / dp = j z_p - j alpha' digamma(j alpha),
    d2 log W_j / dc dp = -j alpha', d2 log W_j / dp2 = j z_pp - j alpha'' digamma(j alpha)
    - j^2 alpha'^2 trigamma(j alpha), alpha' = -1/(p-1)^2, alpha'' = 2/(p-1)^3."""
    y = np.atleast_1d(np.asarray(y, float))
    c = np.broadcast_to(np.asarray(c, float), y.shape)
    p = np.broadcast_to(np.asarray(p, float), y.shape)
    out = [np.empty(y.shape) for _ in range(6 if derivs else 1)]
    for rows, j, lw in series_terms(y, c, p):
        if rows.size:
            vals = _window_sums(y[rows], c[rows], p[rows], j, lw, derivs)
            for o, v in zip(out, vals):
                o[rows] = v
    return tuple(out) if derivs else out[0]


def _window_sums(y, c, p, j, lw, derivs):
    """log S (and its derivatives, see ``log_series``) from one group of windows."""
    top = lw.max(axis=1, keepdims=True)
    e = np.exp(lw - top)
    s = e.sum(axis=1)
    logS = np.log(s) + top[:, 0]
    if not derivs:
        return (logS,)
    pi = e / s[:, None]
    q = p - 1.0
    alpha = (2.0 - p) / q
    a1 = -1.0 / (q * q)
    a2 = 2.0 / q**3
    logy = np.log(y)
    base = logy - c - np.log(q)
    zp = a1 * base + 1.0 / (2.0 - p) - alpha / q
    zpp = a2 * base - 2.0 * a1 / q + 1.0 / (2.0 - p) ** 2 + alpha / (q * q)
    dg = _by_j(special.digamma, j, alpha[:, None])
    # trigamma (to ~1e-15 relative; scipy's polygamma is ~18x slower here)
    tg = _by_j(lambda x: _tri_tetra(x, False), j, alpha[:, None])
    wc = -j * (1.0 + alpha)[:, None]
    wp = j * zp[:, None] - j * a1[:, None] * dg
    wcp = -j * a1[:, None]
    wpp = j * zpp[:, None] - j * a2[:, None] * dg - (j * a1[:, None]) ** 2 * tg

    def mean(v):
        return (pi * v).sum(axis=1)

    mc, mp = mean(wc), mean(wp)
    rc, rp = wc - mc[:, None], wp - mp[:, None]  # centred: no cancellation in the covariances
    dcc = mean(rc * rc)
    dcp = mean(wcp) + mean(rc * rp)
    dpp = mean(wpp) + mean(rp * rp)
    return logS, mc, mp, dcc, dcp, dpp
