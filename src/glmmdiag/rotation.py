"""Rotated (decorrelated) residuals for models whose responses are correlated by design.

A model with an autoregressive or spatial random effect (``ar1(times + 0 | group)``,
``exp(numFactor(x, y) + 0 | group)``, ...) makes the responses of a series or of a field
correlated. Simulating new random effects (unconditional simulation) puts that correlation into
the simulations' variance, but the observed realisation still correlates the PIT values within a
series, so a temporal or spatial test on the residuals fires even for the correct model.

Rotation (DHARMa >= 0.4.7's idea, written here from its description): with Sigma the covariance of
the response vector and Sigma = L L' its Cholesky factorisation, the observed response y and every
simulated response y*_j are replaced by L^-1 y and L^-1 y*_j before the PIT. Under the model the
rotated vectors have covariance I: their components are uncorrelated (independent for a gaussian
model), so the residuals are uniform *and* free of the designed correlation.

Blocks
------
Sigma is block-diagonal: under unconditional simulation two rows are correlated only if they
share a level of some random-effects term. ``correlation_blocks`` finds the connected
components of that relation (rows as nodes, shared levels as edges); for
``y ~ x + ar1(times + 0 | group)`` the blocks are the groups, for a single-level spatial term one
n x n block. Every block is factored on its own (cost sum_b k_b^3 instead of n^3). Within a block
the rows are ordered by the structured term's time (or location) index, then by row, so that for
a time series the k-th rotated component is the standardised innovation of the k-th time point
given the earlier ones (L lower triangular): the rotated residual stays attached to its row and
time.

The estimated covariance
------------------------
``rotation="estimated"`` estimates each block's covariance from the n_sim simulated responses
*together with the observed one* (N = n_sim + 1 vectors): a symmetric function of the N vectors,
so under the model the rotated observed vector is exchangeable with the rotated simulations and
its PIT is exactly uniform whatever the estimation error. With k rows in a block and N not much
larger than k, the sample covariance C is noisy (its small eigenvalues are too small), so the
correlations are shrunk towards 0 (Schaefer & Strimmer 2005, their target "D"):

    R_lambda = (1 - lambda) R + lambda I,    Sigma_hat = D^1/2 R_lambda D^1/2,  D = diag(C),
    lambda = sum_{i != j} Var(r_ij) / sum_{i != j} r_ij^2   (clipped to [0, 1]),

with Var(r_ij) ~ Var(c_ij) / (c_ii c_jj) and Var(c_ij) = N / (N - 1)^3 sum_k (w_kij - mean_k w_kij)^2,
w_kij = x_ki x_kj (x centred at the population-level fitted mean). Rows without variation (every
vector equal there) keep variance 1 and correlation 0.

``rotation=Sigma`` (an n x n covariance matrix) uses the given covariance, one block.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp
from scipy import linalg
from scipy.sparse.csgraph import connected_components

from glmmdiag.errors import GlmmdiagError

__all__ = ["correlation_blocks", "structured_terms", "estimated_rotation", "given_rotation", "RotationInfo",
           "MAX_BLOCK"]

#: largest block of rows rotated jointly (its k x k moments are kept per chunk of simulations)
MAX_BLOCK = 2000


@dataclasses.dataclass(frozen=True)
class RotationInfo:
    """What was rotated: the kind, the blocks (row positions, in rotation order) and the shrinkage."""

    kind: str  # "estimated" or "given"
    matrix: sp.csr_matrix  # (n, n): rotated = matrix @ response
    n_blocks: int
    largest_block: int
    shrinkage: np.ndarray  # lambda per block (0 for "given")


def _fit_of(model):
    """The glmmdiag fit behind an adapter (None for other models)."""
    fit = getattr(model, "fit", None)
    return fit if fit is not None and hasattr(fit, "design") else None


def structured_terms(model) -> list:
    """The random-effects terms of ``model`` with a time or distance structure (ar1, ou, exp, ...)."""
    fit = _fit_of(model)
    if fit is None:
        return []
    return [t for t in fit.design.terms if getattr(t, "index_vars", ())]


def correlation_blocks(model, labels=None) -> list[np.ndarray]:
    """Row positions of each block of correlated rows, each block in rotation order.

    Parameters
    ----------
    model
        The ``SimulableModel`` (a glmmdiag fit's adapter knows its random-effects terms).
    labels : (n,) array, optional
        Block labels given by the user; otherwise the connected components of "shares a level of
        some random-effects term" (one block of every row when the model does not say).

    Returns
    -------
    list of int arrays
        One per block, rows ordered by the structured term's index (time or location) and then
        by position.
    """
    n = int(model.nobs)
    fit = _fit_of(model)
    key = np.zeros(n)
    if fit is not None:
        st = [t for t in fit.design.terms if getattr(t, "index_vars", ())]
        if st:
            key = np.argmax(np.asarray(st[0].z), axis=1).astype(float)
    if labels is not None:
        lab = np.asarray(labels)
        if lab.ndim != 1 or lab.shape[0] != n:
            raise GlmmdiagError(f"rotation blocks must have one label per observation ({n}); got shape {lab.shape}")
        import pandas as pd

        codes, _ = pd.factorize(lab, sort=True)
        if (codes < 0).any():
            raise GlmmdiagError("rotation blocks have missing labels")
    elif fit is not None and fit.design.terms:
        rows_, cols_, off = [], [], 0
        for t in fit.design.terms:
            refs = np.asarray(t.refs, np.int64)
            ok = refs >= 0
            rows_.append(np.flatnonzero(ok))
            cols_.append(refs[ok] + off)
            off += t.nlev
        r_, c_ = np.concatenate(rows_), np.concatenate(cols_)
        B = sp.csr_matrix((np.ones(r_.size), (r_, c_)), shape=(n, off))
        G = sp.bmat([[None, B], [B.T, None]]).tocsr()
        _, comp = connected_components(G, directed=False)
        codes = comp[:n]
    else:
        codes = np.zeros(n, np.int64)
    order = np.lexsort((np.arange(n), key, codes))
    sorted_codes = codes[order]
    cuts = np.flatnonzero(np.diff(sorted_codes)) + 1
    return np.split(order, cuts)


def _matrix(blocks, factors, n) -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for idx, Linv in zip(blocks, factors):
        k = idx.size
        ii, jj = np.tril_indices(k)
        rows.append(idx[ii])
        cols.append(idx[jj])
        vals.append(Linv[ii, jj])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def _inverse_factor(S: np.ndarray) -> np.ndarray:
    L = linalg.cholesky(S, lower=True)
    return linalg.solve_triangular(L, np.eye(S.shape[0]), lower=True)


def shrunk_covariance(s1, s2, s4, N: int) -> tuple[np.ndarray, float]:
    """(Sigma_hat, lambda) from the sums over N vectors x (centred at a fixed point) of x, x x' and
    (x * x)(x * x)'. See the module docstring."""
    k = s1.size
    m = s1 / N
    C = (s2 - N * np.outer(m, m)) / (N - 1)
    d = np.diag(C).copy()
    scale = float(np.max(d)) if d.size and np.max(d) > 0 else 1.0
    flat = d <= 1e-12 * scale
    d[flat] = 1.0
    sd = np.sqrt(d)
    R = C / np.outer(sd, sd)
    R[flat, :] = 0.0
    R[:, flat] = 0.0
    np.fill_diagonal(R, 1.0)
    lam = 0.0
    if k > 1:
        off = ~np.eye(k, dtype=bool) & ~flat[:, None] & ~flat[None, :]
        var_c = N / (N - 1.0) ** 3 * np.maximum(s4 - s2 * s2 / N, 0.0)
        var_r = var_c / np.outer(d, d)
        den = float(np.sum(R[off] ** 2))
        lam = 1.0 if den <= 0 else float(min(1.0, max(0.0, np.sum(var_r[off]) / den)))
    Rl = (1.0 - lam) * R
    np.fill_diagonal(Rl, 1.0)
    return Rl * np.outer(sd, sd), lam


def estimated_rotation(blocks, moments, y, centre, n_sim: int) -> RotationInfo:
    """Rotation from the simulations' block moments plus the observed response (N = n_sim + 1)."""
    n = y.size
    N = n_sim + 1
    factors, lams = [], []
    for idx, (s1, s2, s4) in zip(blocks, moments):
        x0 = y[idx] - centre[idx]
        x2 = x0 * x0
        S, lam = shrunk_covariance(s1 + x0, s2 + np.outer(x0, x0), s4 + np.outer(x2, x2), N)
        try:
            Linv = _inverse_factor(S)
        except linalg.LinAlgError:  # numerically singular: a little more shrinkage
            dd = np.sqrt(np.diag(S))
            S = 0.9 * S + 0.1 * np.diag(dd * dd)
            Linv = _inverse_factor(S)
            lam = 1 - 0.9 * (1 - lam)
        factors.append(Linv)
        lams.append(lam)
    return RotationInfo("estimated", _matrix(blocks, factors, n), len(blocks), max(b.size for b in blocks),
                        np.array(lams))


def given_rotation(Sigma, n: int) -> RotationInfo:
    """Rotation by a user's n x n covariance matrix of the response (one block)."""
    S = np.asarray(Sigma.toarray() if sp.issparse(Sigma) else Sigma, float)
    if S.shape != (n, n):
        raise GlmmdiagError(f"the rotation covariance must be ({n}, {n}) (one row and column per observation); "
                            f"got {S.shape}")
    if not np.all(np.isfinite(S)) or not np.allclose(S, S.T, rtol=1e-8, atol=1e-12 * max(1.0, np.abs(S).max())):
        raise GlmmdiagError("the rotation covariance must be a finite symmetric matrix")
    try:
        Linv = _inverse_factor(0.5 * (S + S.T))
    except linalg.LinAlgError:
        raise GlmmdiagError("the rotation covariance is not positive definite (its Cholesky factorisation "
                            "failed)") from None
    idx = np.arange(n)
    return RotationInfo("given", _matrix([idx], [Linv], n), 1, n, np.zeros(1))
