"""Drawing responses from per-observation distributions, shared by the library adapters.

* ``draw_frozen``: n draws per row from a scipy frozen distribution whose parameters are arrays
  of length nobs (what statsmodels' ``get_distribution()`` returns). scipy's own distributions
  are drawn with their ``rvs`` (numpy ``Generator``); distributions that only define a pmf
  (statsmodels' generalized Poisson and zero-inflated families, whose generic scipy ``rvs``
  inverts the cdf one value at a time) by ``discrete_inversion``.
* ``discrete_inversion``: y = min{k >= 0 : F(k) >= u}, u ~ Uniform(0, 1), from a table of the
  cdf F on k = 0..K with K grown until every row has F(K) >= 1 - 1e-12 (the draws are exact
  except with probability < 1e-12 per value, where the largest tabulated k is returned).
* ``tweedie_draws``: the compound Poisson-gamma distribution with mean mu and variance
  phi mu^p, 1 < p < 2: N ~ Poisson(lam), lam = mu^(2-p) / (phi (2-p)), and y | N ~
  Gamma(N a, s) with a = (2-p)/(p-1), s = phi (p-1) mu^(p-1) (y = 0 when N = 0).
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from glmmdiag.errors import GlmmdiagError

__all__ = ["draw_frozen", "discrete_inversion", "tweedie_draws", "take_rows"]

_TAIL = 1e-12
_MAX_TABLE = 50_000_000  # cells of the (nobs, K) cdf table


def _has_own_rvs(frozen) -> bool:
    gen = type(frozen.dist)
    return gen._rvs is not stats.rv_discrete._rvs and gen._rvs is not stats.rv_continuous._rvs


def take_rows(frozen, idx: np.ndarray, nobs: int):
    """The frozen distribution of rows ``idx`` (its array parameters broadcast to nobs, indexed)."""
    args = [np.broadcast_to(np.asarray(a), (nobs,))[idx] for a in frozen.args]
    kwds = {k: np.broadcast_to(np.asarray(v), (nobs,))[idx] for k, v in frozen.kwds.items()}
    return frozen.dist(*args, **kwds)


def draw_frozen(frozen, nobs: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(nobs, n) draws from a frozen distribution with one parameter value per row.

    Parameters
    ----------
    frozen : scipy.stats frozen distribution
        Parameters are scalars or arrays of length ``nobs``.
    nobs, n : int
        Rows and simulations.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (nobs, n)
    """
    if _has_own_rvs(frozen):
        try:
            return np.asarray(frozen.rvs(size=(int(n), int(nobs)), random_state=rng)).T
        except ValueError as e:  # numpy's samplers refuse e.g. Poisson means above ~1e18
            raise GlmmdiagError(
                f"cannot draw from the fitted {frozen.dist.name} distribution ({e}): some fitted parameters "
                f"are out of range (did the fit converge? is the design rank-deficient?)"
            ) from e
    if isinstance(frozen.dist, stats.rv_discrete):
        return discrete_inversion(_row_pmf(frozen, nobs), nobs, n, rng)
    raise GlmmdiagError(f"cannot draw from the {frozen.dist.name} distribution (no sampler, not discrete)")


def _row_pmf(frozen, nobs: int):
    """pmf(k) for a (nobs, K) array k, row i with row i's parameters (as columns, to broadcast)."""
    args = [np.broadcast_to(np.asarray(a), (nobs,))[:, None] for a in frozen.args]
    kwds = {key: np.broadcast_to(np.asarray(v), (nobs,))[:, None] for key, v in frozen.kwds.items()}
    return lambda k: frozen.dist.pmf(k, *args, **kwds)


def _cdf_table(pmf, nobs: int) -> np.ndarray:
    """(nobs, K) cdf of k = 0..K-1, K grown (doubling) until every row reaches 1 - 1e-12."""
    k_max = 64
    while True:
        k = np.arange(k_max, dtype=float)
        p = np.asarray(pmf(np.broadcast_to(k[None, :], (nobs, k_max))), float)
        p = np.where(np.isfinite(p), np.clip(p, 0.0, 1.0), 0.0)
        cdf = np.cumsum(p, axis=1)
        if np.all(cdf[:, -1] >= 1.0 - _TAIL):
            return np.minimum(cdf, 1.0)
        if nobs * k_max * 2 > _MAX_TABLE:
            bad = np.flatnonzero(cdf[:, -1] < 1.0 - _TAIL)
            raise GlmmdiagError(
                f"the fitted distribution has too much mass above {k_max} for {bad.size} rows (first row "
                f"{bad[0]}: P(Y < {k_max}) = {cdf[bad[0], -1]:.6g}); cannot tabulate it to simulate"
            )
        k_max *= 2


def discrete_inversion(pmf, nobs: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(nobs, n) draws y = min{k : F_i(k) >= u} of a count distribution given by its pmf.

    Parameters
    ----------
    pmf : callable
        ``pmf(k)`` for a (nobs, K) array of counts k, row i evaluated with row i's parameters.
    nobs, n : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of int64, shape (nobs, n)
    """
    cdf = _cdf_table(pmf, int(nobs))
    K = cdf.shape[1]
    rows = np.arange(nobs, dtype=float)
    # one sorted vector: row i's cdf shifted to [i, i + 1], so one searchsorted serves all rows
    flat = (cdf + rows[:, None]).reshape(-1)
    u = rng.random((int(n), int(nobs)))
    pos = np.searchsorted(flat, u + rows[None, :], side="left") - (np.arange(nobs) * K)[None, :]
    return np.clip(pos, 0, K - 1).astype(np.int64).T


def tweedie_draws(mu: np.ndarray, phi: np.ndarray, p: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """(nobs, n) compound Poisson-gamma draws with mean mu and variance phi mu^p (1 < p < 2).

    Parameters
    ----------
    mu, phi : (nobs,) arrays
        Means (> 0) and dispersions (> 0; a prior weight w makes it phi / w).
    p : float
        The variance power, strictly between 1 and 2.
    n : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (nobs, n)
    """
    if not 1.0 < p < 2.0:
        raise GlmmdiagError(f"the compound Poisson-gamma needs 1 < p < 2; got p = {p}")
    mu = np.asarray(mu, float)[None, :]
    phi = np.asarray(phi, float)[None, :]
    lam = mu ** (2.0 - p) / (phi * (2.0 - p))
    shape = (2.0 - p) / (p - 1.0)
    scale = phi * (p - 1.0) * mu ** (p - 1.0)
    size = (int(n), mu.shape[1])
    counts = rng.poisson(np.broadcast_to(lam, size))
    y = np.zeros(size)
    pos = counts > 0
    y[pos] = rng.gamma(counts[pos] * shape, np.broadcast_to(scale, size)[pos])
    return y.T


def dispersion_family_draws(kind: str, mu: np.ndarray, phi: np.ndarray, n: int, rng: np.random.Generator,
                            power: float | None = None) -> np.ndarray:
    """(nobs, n) draws of an exponential-dispersion family with means ``mu`` and dispersions ``phi``
    (per row): "tweedie" (var = phi mu^power, ``tweedie_draws``), "normal" (var = phi), "gamma"
    (shape 1/phi, scale mu phi: var = phi mu^2) or "invgauss" (var = phi mu^3)."""
    nobs = np.asarray(mu).shape[0]
    if kind == "tweedie":
        return tweedie_draws(mu, phi, power, n, rng)
    if kind == "normal":
        return draw_frozen(stats.norm(mu, np.sqrt(phi)), nobs, n, rng)
    if kind == "gamma":
        return draw_frozen(stats.gamma(1.0 / phi, scale=mu * phi), nobs, n, rng)
    if kind == "invgauss":
        return draw_frozen(stats.invgauss(mu * phi, scale=1.0 / phi), nobs, n, rng)
    raise GlmmdiagError(f"no sampler for the dispersion family {kind!r}")
