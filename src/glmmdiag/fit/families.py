"""Response distributions. Each family owns its support check, full log density (constants
included), derivatives in eta for the Laplace approximation, derivatives in its own extra
parameters (dispersion, t's df), variance function, random draws and CDF.

Notation
--------
y is the response (successes for binomial), ``w`` the per-row multiplier, mu = g^{-1}(eta) and
``psi`` the 1-D array of the family's extra parameters, each on an unconstrained (log) scale, named
by ``family.psi_names`` (empty for binomial and Poisson, where ``psi=None`` is accepted).  A
component of ``psi`` may also be an array broadcastable against y (per-row dispersion).

The role of ``w`` (``family.weight_role``):

* ``"trials"`` (binomial): w is the number of trials, y the number of successes.
* ``"precision"`` (gaussian): y_i ~ N(mu_i, sigma^2 / w_i), as in lme4 and R's ``glm`` (the
  identity-link LMM path of the engine uses the same convention, so both gaussian paths agree).
* ``"likelihood"`` (Poisson, Gamma, beta, nbinom1, nbinom2, t): the row's log density is
  multiplied by w_i, as glmmTMB does.  Random draws ignore such weights (a weighted likelihood has
  no generative meaning); callers that simulate should warn when weights are not all 1.

Per-row density interface (every method vectorised; y, mu, eta, w broadcast together):

``mu_derivs(y, mu, w, psi=None)``
    (l, l_mu, l_mumu, l_mumumu): the log density without the data-only constant returned by
    ``loglik_const(y, w)`` (everything that depends on mu or psi is in l) and its derivatives in mu.
``eta_derivs(y, eta, w, psi=None, order=3)``
    (l, s, W, dW) with s = dl/deta, W = -d2l/deta2 (observed, not expected, information: it can
    be negative for non-canonical links) and dW = dW/deta, the latter being what the gradient of
    the Laplace log-determinant needs; with ``order=2`` dW may be returned as None (families
    with ``dw_costly`` then skip the tetragamma function), with ``order=1`` W too.
``loglik(y, mu, w, psi=None)``
    the full log density per row, constants included.
``psi_derivs(y, eta, w, psi)``
    a list over the psi components k of (l_psi, s_psi, W_psi, l_psipsi) with l_psi = dl/dpsi_k,
    s_psi = d2l/(deta dpsi_k), W_psi = dW/dpsi_k and l_psipsi = d2l/dpsi_k^2, per row.
``psi_hessian(y, eta, w, psi, summed=False)``
    d2l/(dpsi_j dpsi_k): per row, shape ``broadcast(y, eta, w).shape + (n_psi, n_psi)``; with
    ``summed=True`` summed over the rows, shape (n_psi, n_psi).

Parameterisations follow glmmTMB (see each class's docstring for the mapping of ``psi`` to
glmmTMB's ``betad`` and to its ``sigma()``, which is what ``dispersion(psi)`` returns).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from glmmdiag.fit.links import Link, get_link
from glmmdiag.errors import FitError, GlmmdiagError

__all__ = [
    "Family",
    "Binomial",
    "Poisson",
    "Gaussian",
    "GammaFamily",
    "Beta",
    "NBinom2",
    "NBinom1",
    "StudentT",
    "BetaBinomial",
    "Tweedie",
    "OrdBeta",
    "get_family",
    "FAMILIES",
    "TRUNCATED_FAMILIES",
]

_TINY = 1e-12
_LOG_2PI = np.log(2.0 * np.pi)


# Trigamma and tetragamma for arrays: scipy's polygamma goes through the Hurwitz zeta function and
# costs ~0.25 us per element; the recurrence psi_n(x) = psi_n(x + 8) + (shift terms) followed by the
# asymptotic (Bernoulli) series at x + 8 >= 8 is accurate to ~1e-15 relative for x > 0 and 3-4x faster.
_BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510, 43867 / 798)
_TRI_SERIES = _BERNOULLI[::-1]
_TETRA_SERIES = tuple((2 * k + 3) * b for k, b in enumerate(_BERNOULLI))[::-1]
_SHIFT = np.arange(8.0)


def _trigamma(x):
    """trigamma = Hurwitz zeta(2, x) for x > 0 (scipy's polygamma(1, x) computes the same value
    through more Python layers: 8x slower on a scalar)."""
    return special.zeta(2.0, x)


def _horner(coefs, t):
    p = coefs[0]
    for c in coefs[1:]:
        p = p * t + c
    return p


def _tri_tetra(x, tetra: bool = True):
    """(trigamma(x), tetragamma(x)) for x > 0, or trigamma(x) only when ``tetra`` is False."""
    x = np.asarray(x, float)
    inv = 1.0 / (x[..., None] + _SHIFT)
    inv2 = inv * inv
    iz = 1.0 / (x + 8.0)
    iz2 = iz * iz
    tri = inv2.sum(-1) + iz + 0.5 * iz2 + _horner(_TRI_SERIES, iz2) * iz2 * iz
    if not tetra:
        return tri
    tet = -2.0 * (inv2 * inv).sum(-1) - iz2 - iz2 * iz - _horner(_TETRA_SERIES, iz2) * iz2 * iz2
    return tri, tet


POISSON_EXACT_MAX = 1e18  # numpy's Poisson sampler refuses means above about 9.2e18


def simulable_means(mu, family_name: str) -> np.ndarray:
    """The means as a float array; a FitError when some are infinite or NaN: the fitted model
    then implies responses that cannot be drawn (e.g. unconditional random effects whose
    variance, through an exponential link, push the mean beyond the floating-point range)."""
    mu = np.asarray(mu, float)
    bad = ~np.isfinite(mu)
    if bad.any():
        fin = mu[~bad]
        big = f"{float(np.max(np.abs(fin))):.3g}" if fin.size else "none"
        raise FitError(
            f"the fitted {family_name} model implies means too large to simulate: {_count_bad(bad)} of "
            f"{mu.size} simulated means are infinite or NaN (largest finite |mean| {big}); the estimated "
            f"random-effect variances or fixed effects are extreme for these data (see the fit's warnings); "
            f"rescale the predictors or simplify the model"
        )
    return mu


def _poisson_draws(lam, rng) -> np.ndarray:
    """Poisson draws as floats for finite means lam >= 0: numpy's sampler up to POISSON_EXACT_MAX,
    and above it the normal approximation lam + sqrt(lam) Z, rounded (its error, of order
    lam^-1/2 < 1e-9 relative, is far below the spacing of floats there). The random stream is the
    same as ``rng.poisson(lam)`` when no mean is that large."""
    big = lam > POISSON_EXACT_MAX
    if not big.any():
        return np.asarray(rng.poisson(lam), float)  # (a 0-d mean gives a Python int)
    out = rng.poisson(np.where(big, 0.0, lam)).astype(float)
    lb = lam[big]
    out[big] = np.round(lb + np.sqrt(lb) * rng.standard_normal(lb.shape))
    return out


def _count_bad(mask) -> int:
    return int(np.count_nonzero(mask))


def _as_float(x):
    """0-d results become Python floats, arrays stay arrays."""
    x = np.asarray(x, float)
    return float(x) if x.ndim == 0 else x


class Family:
    name: str = ""
    default_link: str = ""
    allowed_links: tuple[str, ...] = ()
    discrete: bool = False
    has_dispersion: bool = False
    psi_names: tuple[str, ...] = ()
    weight_role: str = "likelihood"
    # True where the third eta-derivative (dW) costs much more than (l, s, W) (tetragamma in
    # beta and nbinom1): the engine then asks for it only at the conditional modes (order=3)
    dw_costly: bool = False

    def __init__(self, link: str | Link | None = None):
        link = get_link(link or self.default_link)
        if link.name not in self.allowed_links:
            raise GlmmdiagError(
                f"link {link.name!r} is not available for the {self.name} family (it cannot map onto the "
                f"family's mean space); use one of {list(self.allowed_links)}"
            )
        self.link = link

    def __repr__(self):
        return f"{self.name}({self.link.name})"

    @property
    def display_name(self) -> str:
        """The family's name as glmmTMB prints it in summaries."""
        return self.name

    @property
    def n_psi(self) -> int:
        return len(self.psi_names)

    def _init_kwargs(self) -> dict:
        """Constructor arguments other than the link (to rebuild the family with another link)."""
        return {}

    def _psi(self, psi) -> tuple:
        """The psi components as a tuple of arrays (0-d for the usual scalar parameters)."""
        if self.n_psi == 0:
            if psi is not None and np.size(psi) != 0:
                raise GlmmdiagError(f"the {self.name} family has no extra parameters; got psi={psi!r}")
            return ()
        if psi is None:
            raise GlmmdiagError(
                f"the {self.name} family needs its parameter(s) {list(self.psi_names)} as psi=[...]"
            )
        if type(psi) is np.ndarray and psi.ndim == 1 and psi.shape[0] == len(self.psi_names):
            return tuple(psi)  # the engine's case: a plain vector of scalars
        psi = np.asarray(psi, float)
        if psi.ndim == 0 or psi.shape[0] != self.n_psi:
            raise GlmmdiagError(
                f"psi for the {self.name} family must have {self.n_psi} component(s) "
                f"{list(self.psi_names)}; got shape {psi.shape}"
            )
        return tuple(psi[k] for k in range(self.n_psi))

    # -- the log density ---------------------------------------------------------------
    def loglik_const(self, y, w) -> np.ndarray:
        """Per-row part of the log density that depends on the data only."""
        return np.zeros(np.broadcast(y, w).shape)

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        """(l, l_mu, l_mumu, l_mumumu) of the log density without constants, per row."""
        raise NotImplementedError

    def eta_derivs(self, y, eta, w, psi=None, order=3):
        mu, d1, d2, d3 = self.link.inverse_derivs(eta)
        ll, l1, l2, l3 = self.mu_derivs(y, mu, w, psi, order)
        s = l1 * d1
        W = -(l2 * d1 * d1 + l1 * d2)
        if order < 3:
            return ll, s, W, None
        dW = -(l3 * d1**3 + 3.0 * l2 * d1 * d2 + l1 * d3)
        return ll, s, W, dW

    def loglik(self, y, mu, w, psi=None) -> np.ndarray:
        """Full log density per row, constants included."""
        return self.mu_derivs(y, mu, w, psi)[0] + self.loglik_const(y, w)

    # -- derivatives in psi ------------------------------------------------------------
    def _psi_mu_terms(self, y, mu, w, psi, second=True):
        """(g, g_mu, g_mumu, H): lists over k of dl/dpsi_k, d l_mu/dpsi_k, d l_mumu/dpsi_k, and the
        nested list H[j][k] = d2l/dpsi_j dpsi_k, per row."""
        return [], [], [], []

    def psi_derivs(self, y, eta, w, psi, second: bool = True):
        """List over psi components of (l_psi, s_psi, W_psi, l_psipsi) per row (see module doc);
        with ``second=False`` l_psipsi is None (not computed: the Laplace gradient needs the rest)."""
        if self.n_psi == 0:
            return []
        mu, d1, d2, _ = self.link.inverse_derivs(eta)
        g, g1, g2, H = self._psi_mu_terms(y, mu, w, psi, second)
        shape = np.broadcast(y, eta, w).shape
        out = []
        for k in range(self.n_psi):
            s_k = g1[k] * d1
            W_k = -(g2[k] * d1 * d1 + g1[k] * d2)
            hk = np.broadcast_to(H[k][k], shape) if second else None
            out.append(tuple(np.broadcast_to(a, shape) for a in (g[k], s_k, W_k)) + (hk,))
        return out

    def laplace_gradient_terms(self, y, eta, w, psi, dW=None):
        """(dW, [(l_psi, s_psi, W_psi) per psi component]) at one point: what the exact Laplace
        gradient needs besides (l, s, W) (dW is passed through when already known). Families
        whose derivatives share costly special functions (``_fused_mu_terms``: beta, nbinom1)
        compute them once."""
        fused = getattr(self, "_fused_mu_terms", None)
        if fused is None or dW is not None:
            if dW is None:
                dW = self.eta_derivs(y, eta, w, psi, 3)[3]
            return dW, [d[:3] for d in self.psi_derivs(y, eta, w, psi, second=False)]
        mu, d1, d2, d3 = self.link.inverse_derivs(eta)
        l1, l2, l3, g, g1, g2 = fused(y, mu, w, psi)
        dW = -(l3 * d1**3 + 3.0 * l2 * d1 * d2 + l1 * d3)
        return dW, [(g[k], g1[k] * d1, -(g2[k] * d1 * d1 + g1[k] * d2)) for k in range(len(g))]

    def __getstate__(self):
        """The family without its memos (instance attributes named ``*_memo`` or ``*cache*``):
        a family shipped to a worker or pickled with a fit carries its parameters, not the scratch
        values of the last computation (an ordbeta point holds the fitter's stacked linear
        predictors: ~1 KB per row). Every memo has a class-level empty default or is made lazily."""
        return {k: v for k, v in self.__dict__.items() if not (k.endswith("_memo") or "cache" in k)}

    _ycache: tuple = (None, None)

    def _y_terms(self, y, key, fn):
        """fn(y), cached per family object for the last read-only y (which cannot change in place)."""
        if not (isinstance(y, np.ndarray) and not y.flags.writeable and y.flags.owndata):
            return fn(y)  # (a read-only view may have a writable base that changes under it)
        cy, vals = self._ycache
        if cy is not y:
            vals = {}
            self._ycache = (y, vals)
        if key not in vals:
            vals[key] = fn(y)
        return vals[key]

    def psi_hessian(self, y, eta, w, psi, summed: bool = False):
        """d2l/dpsi dpsi per row, shape (..., n_psi, n_psi); summed over rows if ``summed``."""
        k = self.n_psi
        shape = np.broadcast(y, eta, w).shape
        if k == 0:
            return np.zeros((0, 0)) if summed else np.zeros(shape + (0, 0))
        mu = self.link.inverse(eta)
        H = self._psi_mu_terms(y, mu, w, psi)[3]
        out = np.empty(shape + (k, k))
        for i in range(k):
            for j in range(k):
                out[..., i, j] = H[i][j]
        if summed:
            return out.reshape(-1, k, k).sum(axis=0)
        return out

    # -- dispersion --------------------------------------------------------------------
    def psi_start(self, y, mu, w) -> np.ndarray:
        """Moment estimates of psi given fitted means (e.g. from a GLM)."""
        return np.zeros(self.n_psi)

    def dispersion(self, psi=None):
        """The number glmmTMB's ``sigma()`` reports (1 for families without dispersion)."""
        return 1.0

    def dispersion_extra(self, psi=None) -> dict:
        """Further reported parameters (t's df); empty for the other families."""
        return {}

    def glmmtmb_betad(self, psi=None):
        """glmmTMB's log-dispersion parameter ``betad`` for this psi (None without dispersion)."""
        return None

    # -- moments, draws, CDF -----------------------------------------------------------
    def variance(self, mu, psi=None):
        raise NotImplementedError

    def sample(self, mu, w, rng, psi=None):
        raise NotImplementedError

    def cdf(self, y, mu, w, psi=None):
        """P(Y <= y) per row."""
        raise NotImplementedError

    def cdf_lower(self, y, mu, w, psi=None):
        """P(Y < y) per row: the CDF at y - 1 for discrete families, the CDF at y otherwise."""
        if self.discrete:
            return self.cdf(np.asarray(y, float) - 1.0, mu, w, psi)
        return self.cdf(y, mu, w, psi)

    def start_mu(self, y, w):
        raise NotImplementedError

    def check_response(self, y, w, name: str) -> None:
        pass

    # -- shared helpers ----------------------------------------------------------------
    def _check_likelihood_weights(self, w, name):
        w = np.asarray(w, float)
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            raise GlmmdiagError(
                f"weights for response {name!r} must be finite and >= 0 (likelihood weights of the "
                f"{self.name} family): {_count_bad(bad)} of {w.size} rows are not; fix or drop those rows"
            )

    def _check_finite(self, y, name):
        bad = ~np.isfinite(y)
        if bad.any():
            raise GlmmdiagError(
                f"response {name!r} has {_count_bad(bad)} non-finite values (NaN/inf) of {np.size(y)} rows; "
                f"drop those rows"
            )

    def _check_counts(self, y, name):
        y = np.asarray(y, float)
        self._check_finite(y, name)
        neg = y < 0
        if neg.any():
            raise GlmmdiagError(
                f"response {name!r} has {_count_bad(neg)} negative values of {y.size} rows: a {self.name} "
                f"count must be >= 0 (outside the family's support)"
            )
        frac = np.abs(y - np.round(y)) > 1e-8
        if frac.any():
            raise GlmmdiagError(
                f"response {name!r} has {_count_bad(frac)} non-integer values of {y.size} rows: a "
                f"{self.name} count must be a whole number (outside the family's support); for continuous "
                f"positive data consider family='gamma'"
            )


# ======================================================================================
class Binomial(Family):
    """k successes out of w trials, P(success) = mu.  No extra parameters; sigma() = 1."""

    name = "binomial"
    default_link = "logit"
    allowed_links = ("logit", "probit", "cloglog", "log")
    discrete = True
    weight_role = "trials"

    def check_response(self, y, w, name):
        bad_w = ~np.isfinite(w) | (w < 0)
        if bad_w.any():
            raise GlmmdiagError(
                f"binomial trials/weights must be finite and >= 0: {int(bad_w.sum())} of {len(w)} rows "
                f"are not; fix or drop those rows"
            )
        if (y < 0).any():
            raise GlmmdiagError(
                f"response {name!r} is outside the binomial support: {int((y < 0).sum())} of {len(y)} rows "
                f"have negative successes"
            )
        over = y > w + 1e-8
        if over.any():
            raise GlmmdiagError(
                f"response {name!r}: successes > trials in {int(over.sum())} of {len(y)} rows "
                f"(outside the binomial support); check the cbind(successes, failures) columns or weights"
            )
        frac = np.abs(y - np.round(y)) > 1e-6
        if frac.any():
            raise GlmmdiagError(
                f"response {name!r}: {int(frac.sum())} of {len(y)} rows give a non-integer number of "
                f"successes (outside the binomial support); with proportions pass the trials as weights="
            )

    def loglik_const(self, y, w):
        return special.gammaln(w + 1) - special.gammaln(y + 1) - special.gammaln(w - y + 1)

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        mu = np.clip(mu, _TINY, 1 - _TINY)
        f = w - y
        ll = special.xlogy(y, mu) + special.xlog1py(f, -mu)
        a, b = y / mu, f / (1 - mu)
        return ll, a - b, -a / mu - b / (1 - mu), 2 * a / mu**2 - 2 * b / (1 - mu) ** 2

    def eta_derivs(self, y, eta, w, psi=None, order=3):
        if self.link.name != "logit":
            return super().eta_derivs(y, eta, w, psi, order)
        e = np.exp(-np.abs(eta))
        mu = np.where(eta >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        ll = y * eta - w * (np.maximum(eta, 0.0) + np.log1p(e))
        if order < 2:  # (AGQ's nodes need l and s only)
            return ll, y - w * mu, None, None
        v = mu * (1.0 - mu)
        W = w * v
        return ll, y - w * mu, W, (W * (1.0 - 2.0 * mu) if order >= 3 else None)

    def variance(self, mu, psi=None):
        return mu * (1 - mu)

    def sample(self, mu, w, rng, psi=None):
        return rng.binomial(np.asarray(w).astype(np.int64), np.clip(mu, 0.0, 1.0)).astype(float)

    def cdf(self, y, mu, w, psi=None):
        return stats.binom.cdf(y, np.round(w), np.clip(mu, 0.0, 1.0))

    def start_mu(self, y, w):
        return (y + 0.5) / (w + 1.0)


class Poisson(Family):
    """Counts with var = mu; weights multiply the log density.  No extra parameters; sigma() = 1."""

    name = "poisson"
    default_link = "log"
    allowed_links = ("log", "sqrt", "identity")
    discrete = True

    def check_response(self, y, w, name):
        self._check_counts(y, name)

    def loglik_const(self, y, w):
        return -w * special.gammaln(y + 1)

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        mu = np.maximum(mu, _TINY)
        ll = w * (special.xlogy(y, mu) - mu)
        a = w * y / mu
        return ll, a - w, -a / mu, 2 * a / mu**2

    def eta_derivs(self, y, eta, w, psi=None, order=3):
        if self.link.name != "log":
            return super().eta_derivs(y, eta, w, psi, order)
        mu = np.exp(eta)
        W = w * mu
        return w * y * eta - W, w * y - W, W, W

    def variance(self, mu, psi=None):
        return mu

    def sample(self, mu, w, rng, psi=None):
        return _poisson_draws(np.maximum(simulable_means(mu, self.name), 0.0), rng)

    def cdf(self, y, mu, w, psi=None):
        y = np.floor(np.asarray(y, float))
        mu = np.maximum(mu, 0.0)
        return np.where(y < 0, 0.0, special.pdtr(np.maximum(y, 0.0), mu))

    def start_mu(self, y, w):
        return y + 0.1


# ======================================================================================
class Gaussian(Family):
    """Normal response, y ~ N(mu, sigma^2 / w): prior weights are precision weights (as in lme4 and
    R's glm), so the identity-link LMM path and the general Laplace path agree.

    psi = (log sigma,).  ``dispersion(psi)`` = sigma, the residual SD (glmmTMB's ``sigma()``);
    glmmTMB 1.1.5's ``betad`` for gaussian is log(sigma^2) = 2 psi.  With the identity link the
    engine fits a linear mixed model and profiles sigma out; other links (log, inverse) go through
    the Laplace path with log sigma estimated jointly.
    """

    name = "gaussian"
    default_link = "identity"
    allowed_links = ("identity", "log", "inverse")
    has_dispersion = True
    psi_names = ("log_sigma",)
    weight_role = "precision"

    def loglik_const(self, y, w):
        return -0.5 * _LOG_2PI + 0.5 * np.log(w) + np.zeros_like(y)

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        (a,) = self._psi(psi)
        p = w * np.exp(-2.0 * a)  # precision w / sigma^2
        r = y - mu
        ll = -0.5 * p * r * r - a
        return ll, p * r, -p + 0.0 * r, np.zeros(np.broadcast(y, mu, w).shape)

    def eta_derivs(self, y, eta, w, psi=None, order=3):
        if self.link.name != "identity":
            return super().eta_derivs(y, eta, w, psi, order)
        (a,) = self._psi(psi)
        p = w * np.exp(-2.0 * a)
        r = y - eta
        shape = np.broadcast(y, eta, w).shape
        return -0.5 * p * r * r - a, p * r, np.broadcast_to(p, shape).astype(float), np.zeros(shape)

    def _psi_mu_terms(self, y, mu, w, psi, second=True):
        (a,) = self._psi(psi)
        p = w * np.exp(-2.0 * a)
        r = y - mu
        g = -1.0 + p * r * r
        return [g], [-2.0 * p * r], [2.0 * p + 0.0 * r], [[-2.0 * p * r * r]]

    def psi_start(self, y, mu, w):
        r2 = np.asarray(w, float) * (np.asarray(y, float) - mu) ** 2
        return np.array([0.5 * np.log(max(float(np.mean(r2)), 1e-12))])

    def dispersion(self, psi=None):
        (a,) = self._psi(psi)
        return _as_float(np.exp(a))

    def glmmtmb_betad(self, psi=None):
        (a,) = self._psi(psi)
        return _as_float(2.0 * a)

    def variance(self, mu, psi=None):
        if psi is None:  # the variance function
            return np.ones_like(mu)
        return np.exp(2.0 * self._psi(psi)[0]) * np.ones_like(mu)

    def sample(self, mu, w, rng, psi=None, sigma=None):
        if sigma is None:
            sigma = self.dispersion(psi) if psi is not None else 1.0
        mu = np.asarray(mu, float)
        return mu + rng.standard_normal(mu.shape) * sigma / np.sqrt(w)

    def cdf(self, y, mu, w, psi=None):
        (a,) = self._psi(psi)
        return special.ndtr((np.asarray(y, float) - mu) * np.sqrt(w) * np.exp(-a))

    def start_mu(self, y, w):
        return _start_for_link(self.link.name, y)

    def check_response(self, y, w, name):
        # precision weights: w = 0 would be an infinite variance (no density, no draws), so zero
        # weights are refused here, whereas the other families drop such rows from the likelihood
        w = np.asarray(w, float)
        bad = ~np.isfinite(w) | (w <= 0)
        if bad.any():
            at = np.flatnonzero(bad)
            raise GlmmdiagError(
                f"weights must be finite and > 0 for the gaussian family (precision weights, variance "
                f"sigma^2 / w): {int(bad.sum())} of {len(w)} rows are not (positions {at[:5].tolist()}"
                f"{'...' if at.size > 5 else ''} among the rows used); drop those rows"
            )


def _start_for_link(link_name, y):
    """Starting means y, made valid for links whose mean space is positive."""
    y = np.asarray(y, float)
    if link_name in ("log", "sqrt", "inverse"):
        pos = y[y > 0]
        fill = 0.1 * (float(np.mean(pos)) if pos.size else 1.0)
        return np.where(y > 0, y, fill)
    return y.copy()


# ======================================================================================
class GammaFamily(Family):
    """Gamma response with mean mu and var = phi mu^2: shape k = 1/phi, scale = mu phi.

    psi = (log phi,).  ``dispersion(psi)`` = sigma = sqrt(phi) = 1/sqrt(shape), the coefficient of
    variation, which is what glmmTMB's ``sigma()`` returns.  glmmTMB stores the shape on the log
    scale: its ``betad`` = log(shape) = -log(phi) = -psi, so sigma = exp(-betad/2).
    (rust_gamma reference, glmmTMB 1.1.5: betad = 2.20114, shape 9.0353, sigma = 0.332681.)

    Default link "inverse", as R's ``Gamma()`` and hence ``glmmTMB(family=Gamma)``; the references
    use ``Gamma(link="log")``, so pass link="log" to match them.  Weights multiply the log density.
    """

    name = "gamma"
    default_link = "inverse"
    allowed_links = ("inverse", "log", "identity")
    has_dispersion = True
    psi_names = ("log_phi",)

    @property
    def display_name(self):
        return "Gamma"

    def check_response(self, y, w, name):
        y = np.asarray(y, float)
        self._check_finite(y, name)
        bad = y <= 0
        if bad.any():
            raise GlmmdiagError(
                f"response {name!r} has {_count_bad(bad)} of {y.size} rows with y <= 0, outside the "
                f"support of the Gamma family (y > 0); drop them, model the zeros separately (hurdle "
                f"model), or use a family that allows zeros"
            )
        self._check_likelihood_weights(w, name)

    def loglik_const(self, y, w):
        return -w * np.log(y)

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        (a,) = self._psi(psi)
        k = np.exp(-a)
        ok = mu > 0
        m = np.where(ok, mu, 1.0)
        z = y / m
        wk = w * k
        ll = wk * (np.log(k * z) - z) - w * special.gammaln(k)
        ll = np.where(ok, ll, -np.inf)
        l1 = wk * (z - 1.0) / m
        l2 = wk * (1.0 - 2.0 * z) / (m * m)
        l3 = wk * (6.0 * z - 2.0) / (m * m * m)
        return ll, l1, l2, l3

    def eta_derivs(self, y, eta, w, psi=None, order=3):
        if self.link.name != "log":
            return super().eta_derivs(y, eta, w, psi, order)
        (a,) = self._psi(psi)
        k = np.exp(-a)
        z = y * np.exp(-eta)  # y / mu
        wk = w * k
        ll = wk * (np.log(k * y) - eta - z) - w * special.gammaln(k)
        W = wk * z
        return ll, wk * (z - 1.0), W, -W

    def laplace_gradient_terms(self, y, eta, w, psi, dW=None):
        if self.link.name != "log" or np.ndim(self._psi(psi)[0]) != 0:
            return super().laplace_gradient_terms(y, eta, w, psi, dW)
        # log link, psi = log phi, shape k = 1/phi, z = y/mu: s and W are proportional to k, so
        # s_psi = -s, W_psi = -W; l_psi = -k w (log(k z) + 1 - z - digamma(k)); dW = -W
        (a,) = self._psi(psi)
        k = float(np.exp(-a))
        ez = np.exp(-eta)
        z = y * ez
        wk = w * k
        logz = self._y_terms(y, "log", np.log) - eta
        l_psi = -wk * (np.log(k) + logz + 1.0 - z - special.digamma(k))
        W = wk * z
        return (-W if dW is None else dW), [(l_psi, -wk * (z - 1.0), -W)]

    def _psi_mu_terms(self, y, mu, w, psi, second=True):
        (a,) = self._psi(psi)
        k = np.exp(-a)
        m = np.where(mu > 0, mu, 1.0)
        z = y / m
        dl_dk = w * (np.log(k * z) + 1.0 - z - special.digamma(k))
        d2l_dk2 = w * (1.0 / k - _trigamma(k)) if second else 0.0
        g = -k * dl_dk
        h = k * k * d2l_dk2 + k * dl_dk
        # l_mu and l_mumu are proportional to k, hence d/dpsi = -(themselves)
        wk = w * k
        g1 = -wk * (z - 1.0) / m
        g2 = -wk * (1.0 - 2.0 * z) / (m * m)
        return [g], [g1], [g2], [[h]]

    def psi_start(self, y, mu, w):
        y, mu, w = (np.asarray(v, float) for v in (y, mu, w))
        ok = mu > 0
        cv2 = np.sum(w[ok] * ((y[ok] - mu[ok]) / mu[ok]) ** 2) / max(np.sum(w[ok]), 1e-300)
        return np.array([np.log(np.clip(cv2, 1e-6, 1e6))])

    def dispersion(self, psi=None):
        (a,) = self._psi(psi)
        return _as_float(np.exp(0.5 * a))

    def glmmtmb_betad(self, psi=None):
        (a,) = self._psi(psi)
        return _as_float(-a)

    def variance(self, mu, psi=None):
        if psi is None:  # the variance function V(mu)
            return mu * mu
        return np.exp(self._psi(psi)[0]) * mu * mu

    def sample(self, mu, w, rng, psi=None):
        (a,) = self._psi(psi)
        k = np.exp(-a)
        mu = simulable_means(mu, self.name)
        return rng.gamma(shape=k, scale=np.maximum(mu, 0.0) / k, size=mu.shape)

    def cdf(self, y, mu, w, psi=None):
        (a,) = self._psi(psi)
        k = np.exp(-a)
        y = np.asarray(y, float)
        return np.where(y <= 0, 0.0, special.gammainc(k, np.maximum(y, 0.0) * k / mu))

    def start_mu(self, y, w):
        return np.asarray(y, float).copy()


# ======================================================================================
class _FirstPsiIsLogDispersion:
    """Families whose first psi is log of glmmTMB's ``sigma()`` and its ``betad`` (beta's and
    betabinomial's precision, the negative binomials' theta / phi, t's scale, ordbeta's precision,
    tweedie's phi)."""

    def dispersion(self, psi=None):
        return _as_float(np.exp(self._psi(psi)[0]))

    def glmmtmb_betad(self, psi=None):
        return _as_float(self._psi(psi)[0])


class Beta(_FirstPsiIsLogDispersion, Family):
    """Beta response in mean-precision form (Ferrari & Cribari-Neto 2004): Beta(mu phi, (1-mu) phi),
    var = mu (1 - mu) / (1 + phi), 0 < y < 1.

    psi = (log phi,).  ``dispersion(psi)`` = phi, the precision, equal to glmmTMB's ``sigma()``;
    glmmTMB's ``betad`` = log(phi) = psi (rust_beta, glmmTMB 1.1.5: betad = 3.54447,
    sigma = exp(betad) = 34.6214).  Weights multiply the log density.  Draws that underflow to
    exactly 0 or 1 are moved to the nearest representable value inside (0, 1).
    """

    name = "beta"
    dw_costly = True
    default_link = "logit"
    allowed_links = ("logit", "probit", "cloglog")
    has_dispersion = True
    psi_names = ("log_phi",)

    def check_response(self, y, w, name):
        y = np.asarray(y, float)
        self._check_finite(y, name)
        lo, hi = y <= 0, y >= 1
        if lo.any() or hi.any():
            n = y.size
            raise GlmmdiagError(
                f"response {name!r} has {_count_bad(lo | hi)} of {n} rows outside the open interval (0, 1) "
                f"({_count_bad(lo)} with y <= 0, {_count_bad(hi)} with y >= 1), outside the support of the "
                f"beta family; squeeze the data with y' = (y*(n - 1) + 0.5)/n, n = {n} the number of "
                f"observations (Smithson & Verkuilen 2006), or use a zero/one-inflated or ordered beta model"
            )
        self._check_likelihood_weights(w, name)

    def loglik_const(self, y, w):
        return -w * (np.log(y) + np.log1p(-y))

    @staticmethod
    def _clip(mu):
        return np.clip(mu, _TINY, 1.0 - 1e-15)

    def _logs(self, y):
        return self._y_terms(y, "log", np.log), self._y_terms(y, "log1m", lambda v: np.log1p(-v))

    def _fused_mu_terms(self, y, mu, w, psi):
        """(l_mu, l_mumu, l_mumumu, [g], [g_mu], [g_mumu]) sharing the digamma/trigamma/tetragamma
        values of a = mu phi and b = (1 - mu) phi (see ``laplace_gradient_terms``)."""
        (c,) = self._psi(psi)
        phi = np.exp(c)
        mu = self._clip(mu)
        a, b = mu * phi, (1.0 - mu) * phi
        ly, l1y = self._logs(y)
        da, db = special.digamma(a), special.digamma(b)
        ta, qa = _tri_tetra(a)
        tb, qb = _tri_tetra(b)
        e = ly - l1y - da + db
        wp = w * phi
        l1 = wp * e
        l2 = -wp * phi * (ta + tb)
        l3 = -wp * phi * phi * (qa - qb)
        g = wp * (special.digamma(phi) - mu * da - (1.0 - mu) * db + mu * ly + (1.0 - mu) * l1y)
        g1 = wp * (e - phi * (mu * ta - (1.0 - mu) * tb))
        g2 = -wp * (2.0 * phi * (ta + tb) + phi * phi * (mu * qa + (1.0 - mu) * qb))
        return l1, l2, l3, [g], [g1], [g2]

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        (c,) = self._psi(psi)
        phi = np.exp(c)
        mu = self._clip(mu)
        a, b = mu * phi, (1.0 - mu) * phi
        ly, l1y = self._logs(y)
        ll = w * (special.gammaln(phi) - special.gammaln(a) - special.gammaln(b) + a * ly + b * l1y)
        l1 = w * phi * (ly - l1y - special.digamma(a) + special.digamma(b))
        if order < 3:
            return ll, l1, -w * phi * phi * (_tri_tetra(a, False) + _tri_tetra(b, False)), None
        ta, qa = _tri_tetra(a)
        tb, qb = _tri_tetra(b)
        l2 = -w * phi * phi * (ta + tb)
        l3 = -w * phi**3 * (qa - qb)
        return ll, l1, l2, l3

    def _psi_mu_terms(self, y, mu, w, psi, second=True):
        (c,) = self._psi(psi)
        phi = np.exp(c)
        mu = self._clip(mu)
        a, b = mu * phi, (1.0 - mu) * phi
        ly, l1y = np.log(y), np.log1p(-y)
        da, db = special.digamma(a), special.digamma(b)
        ta, qa = _tri_tetra(a)
        tb, qb = _tri_tetra(b)
        dl_dphi = w * (special.digamma(phi) - mu * da - (1.0 - mu) * db + mu * ly + (1.0 - mu) * l1y)
        d2l_dphi2 = w * (_trigamma(phi) - mu * mu * ta - (1.0 - mu) ** 2 * tb)
        dl1_dphi = w * ((ly - l1y - da + db) - phi * (mu * ta - (1.0 - mu) * tb))
        dl2_dphi = -w * (2.0 * phi * (ta + tb) + phi * phi * (mu * qa + (1.0 - mu) * qb))
        g = phi * dl_dphi
        h = phi * phi * d2l_dphi2 + g
        return [g], [phi * dl1_dphi], [phi * dl2_dphi], [[h]]

    def psi_start(self, y, mu, w):
        y, mu, w = (np.asarray(v, float) for v in (y, mu, w))
        mu = self._clip(mu)
        sw = max(np.sum(w), 1e-300)
        v = np.sum(w * (y - mu) ** 2) / sw
        m = np.sum(w * mu * (1.0 - mu)) / sw
        phi = m / max(v, 1e-300) - 1.0
        return np.array([np.log(np.clip(phi, 0.1, 1e6))])

    def variance(self, mu, psi=None):
        (c,) = self._psi(psi)
        return mu * (1.0 - mu) / (1.0 + np.exp(c))

    def sample(self, mu, w, rng, psi=None):
        (c,) = self._psi(psi)
        phi = np.exp(c)
        mu = self._clip(np.asarray(mu, float))
        y = rng.beta(mu * phi, (1.0 - mu) * phi, size=mu.shape)
        return np.clip(y, np.finfo(float).tiny, np.nextafter(1.0, 0.0))

    def cdf(self, y, mu, w, psi=None):
        (c,) = self._psi(psi)
        phi = np.exp(c)
        mu = self._clip(mu)
        y = np.clip(np.asarray(y, float), 0.0, 1.0)
        return special.betainc(mu * phi, (1.0 - mu) * phi, y)

    def start_mu(self, y, w):
        return np.asarray(y, float).copy()


# ======================================================================================
class _NegBin(_FirstPsiIsLogDispersion, Family):
    discrete = True
    has_dispersion = True
    default_link = "log"
    allowed_links = ("log", "sqrt", "identity")

    def check_response(self, y, w, name):
        self._check_counts(y, name)
        self._check_likelihood_weights(w, name)

    def loglik_const(self, y, w):
        return -w * special.gammaln(np.asarray(y, float) + 1.0)

    def start_mu(self, y, w):
        return np.asarray(y, float) + 0.1

    def _size_prob(self, mu, psi):
        """(size, p) of numpy's/scipy's negative binomial for these means."""
        raise NotImplementedError

    def sample(self, mu, w, rng, psi=None):
        # gamma-Poisson mixture: also valid for size -> 0 (mu = 0 for nbinom1)
        mu = np.maximum(simulable_means(mu, self.name), 0.0)
        size, p = self._size_prob(mu, psi)
        size = np.broadcast_to(size, mu.shape)
        with np.errstate(divide="ignore", over="ignore"):
            lam = rng.gamma(shape=size, scale=(1.0 - p) / p, size=mu.shape)
        return _poisson_draws(simulable_means(lam, self.name), rng)

    def cdf(self, y, mu, w, psi=None):
        mu = np.maximum(np.asarray(mu, float), 0.0)
        size, p = self._size_prob(mu, psi)
        y = np.floor(np.asarray(y, float))
        # P(Y <= y) = I_p(size, y + 1)
        return np.where(y < 0, 0.0, special.betainc(size, np.maximum(y, 0.0) + 1.0, p))


_NB2_TERMS = {
    "lgamma": lambda y, th: special.gammaln(y + th) - special.gammaln(th),
    "digamma": lambda y, th: special.digamma(y + th) - special.digamma(th),
    "trigamma": lambda y, th: _tri_tetra(y + th, False) - _trigamma(th),
}


class NBinom2(_NegBin):
    """Negative binomial with var = mu + mu^2 / theta (glmmTMB's nbinom2; NB2 / "quadratic").

    psi = (log theta,).  ``dispersion(psi)`` = theta, glmmTMB's ``sigma()``; its ``betad`` =
    log(theta) = psi (salamanders_nbinom2, glmmTMB 1.1.5: betad = -0.0593241, sigma = 0.942401).
    The Poisson limit is theta -> infinity.  Weights multiply the log density.
    """

    name = "nbinom2"
    psi_names = ("log_theta",)

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        (c,) = self._psi(psi)
        th = np.exp(c)
        neg = mu < 0
        m = np.maximum(mu, _TINY)
        mt = m + th
        ll = w * (special.gammaln(y + th) - special.gammaln(th) - th * np.log1p(m / th)
                  + special.xlogy(y, m) - y * np.log(mt))
        ll = np.where(neg, -np.inf, ll)
        a = y / m
        b = (y + th) / mt
        return ll, w * (a - b), w * (b / mt - a / m), w * 2.0 * (a / (m * m) - b / (mt * mt))

    _cache: tuple = (None, None, None)

    def _y_theta_terms(self, y, th, kind):
        """Terms that depend on y and theta only (not on mu): "lgamma" = lgamma(y + th) - lgamma(th),
        "digamma" = digamma(y + th) - digamma(th), "trigamma" = trigamma(y + th) - trigamma(th).
        Cached for the last (y, theta) when y is a read-only array (which cannot change in place;
        the engine passes its response so): within PIRLS and the gradient theta is fixed while mu
        changes, and these special functions are the costly part of the density."""
        if not (isinstance(y, np.ndarray) and not y.flags.writeable):
            return _NB2_TERMS[kind](y, th)
        cy, cth, vals = self._cache
        if cy is not y or cth != th:
            # a second entry: a zero-inflated or hurdle model alternates between y and its zeros
            py, pth, pvals = getattr(self, "_cache_prev", (None, None, None))
            self._cache_prev = self._cache
            if py is y and pth == th:
                vals = pvals
            else:
                vals = {}
            self._cache = (y, th, vals)
        if kind not in vals:
            vals[kind] = _NB2_TERMS[kind](y, th)
        return vals[kind]

    def eta_derivs(self, y, eta, w, psi=None, order=3):
        if self.link.name != "log":
            return super().eta_derivs(y, eta, w, psi, order)
        (c,) = self._psi(psi)
        th = float(np.exp(c)) if np.ndim(c) == 0 else np.exp(c)
        m = np.exp(eta)
        mt = m + th
        lg = self._y_theta_terms(y, th, "lgamma") if np.ndim(th) == 0 else (
            special.gammaln(y + th) - special.gammaln(th))
        ll = w * (lg - th * np.log1p(m / th) + y * eta - y * np.log(mt))
        wt = w * th
        s = wt * (y - m) / mt
        W = wt * m * (y + th) / (mt * mt)
        dW = W * (th - m) / mt if order >= 3 else None
        return ll, s, W, dW

    def laplace_gradient_terms(self, y, eta, w, psi, dW=None):
        if self.link.name != "log" or np.ndim(self._psi(psi)[0]) != 0:
            return super().laplace_gradient_terms(y, eta, w, psi, dW)
        # log link, mu = exp(eta), psi = log th: l_psi = th w [dg(y, th) - log1p(mu/th) - (y - mu)/(mu + th)],
        # s_psi = th w mu (y - mu)/(mu + th)^2 and, from W = th w mu (y + th)/(mu + th)^2,
        # W_psi = th dW/dth = th w mu/(mu + th)^2 [y + 2 th - 2 th (y + th)/(mu + th)]
        (c,) = self._psi(psi)
        th = float(np.exp(c))
        m = np.exp(eta)
        mt = m + th
        imt = 1.0 / mt
        dg = self._y_theta_terms(y, th, "digamma")
        wt = w * th
        ym = y - m
        l_psi = wt * (dg - np.log1p(m / th) - ym * imt)
        a = wt * m * imt * imt  # th w mu / (mu + th)^2
        s_psi = a * ym
        W_psi = a * (y + 2.0 * th - 2.0 * th * (y + th) * imt)
        if dW is None:
            W = wt * m * (y + th) * imt * imt
            dW = W * (th - m) * imt
        return dW, [(l_psi, s_psi, W_psi)]

    def _psi_mu_terms(self, y, mu, w, psi, second=True):
        (c,) = self._psi(psi)
        scalar = np.ndim(c) == 0
        th = float(np.exp(c)) if scalar else np.exp(c)
        m = np.maximum(mu, _TINY)
        mt = m + th
        dg = self._y_theta_terms(y, th, "digamma") if scalar else special.digamma(y + th) - special.digamma(th)
        dl = w * (dg - np.log1p(m / th) + (m - y) / mt)
        d1 = w * (y - m) / (mt * mt)
        d2 = w * (m - th - 2.0 * y) / mt**3
        g = th * dl
        if not second:
            return [g], [th * d1], [th * d2], None
        tg = self._y_theta_terms(y, th, "trigamma") if scalar else (
            _tri_tetra(y + th, False) - _trigamma(th))
        d2l = w * (tg + 1.0 / th - 1.0 / mt - (m - y) / (mt * mt))
        h = th * th * d2l + g
        return [g], [th * d1], [th * d2], [[h]]

    def psi_start(self, y, mu, w):
        y, mu, w = (np.asarray(v, float) for v in (y, mu, w))
        mu = np.maximum(mu, _TINY)
        inv_theta = np.sum(w * ((y - mu) ** 2 - mu)) / max(np.sum(w * mu * mu), 1e-300)
        return np.array([-np.log(np.clip(inv_theta, 1e-2, 1e4))])

    def _size_prob(self, mu, psi):
        (c,) = self._psi(psi)
        th = np.exp(c)
        return th, th / (th + mu)

    def variance(self, mu, psi=None):
        (c,) = self._psi(psi)
        return mu + mu * mu * np.exp(-c)


class NBinom1(_NegBin):
    """Negative binomial with var = mu (1 + phi) (glmmTMB's nbinom1; NB1 / "linear"): size = mu/phi,
    probability 1/(1 + phi).

    psi = (log phi,).  ``dispersion(psi)`` = phi, glmmTMB's ``sigma()``; its ``betad`` =
    log(phi) = psi (salamanders_nbinom1, glmmTMB 1.1.5: betad = 0.731871, sigma = 2.07897).
    The Poisson limit is phi -> 0.  Weights multiply the log density.
    """

    name = "nbinom1"
    psi_names = ("log_phi",)
    dw_costly = True

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        (c,) = self._psi(psi)
        phi = np.exp(c)
        neg = mu < 0
        m = np.maximum(mu, _TINY)
        r = m / phi
        L = np.log1p(phi)
        yr = y + r
        ll = w * (special.gammaln(yr) - special.gammaln(r) - r * L + y * (c - L))
        ll = np.where(neg, -np.inf, ll)
        l1 = w * (special.digamma(yr) - special.digamma(r) - L) / phi
        if order < 3:
            l2 = w * (_tri_tetra(yr, False) - _tri_tetra(r, False)) / phi**2
            return ll, l1, l2, None
        t_yr, q_yr = _tri_tetra(yr)
        t_r, q_r = _tri_tetra(r)
        l2 = w * (t_yr - t_r) / phi**2
        l3 = w * (q_yr - q_r) / phi**3
        return ll, l1, l2, l3

    def _fused_mu_terms(self, y, mu, w, psi):
        """(l_mu, l_mumu, l_mumumu, [g], [g_mu], [g_mumu]) from one set of digamma/trigamma/
        tetragamma values of y + r and r, r = mu / phi (see ``laplace_gradient_terms``)."""
        (c,) = self._psi(psi)
        phi = np.exp(c)
        m = np.maximum(mu, _TINY)
        r = m / phi
        L = np.log1p(phi)
        q = phi / (1.0 + phi)
        yr = y + r
        D0 = special.digamma(yr) - special.digamma(r)
        t_yr, q_yr = _tri_tetra(yr)
        t_r, q_r = _tri_tetra(r)
        D1, D2 = t_yr - t_r, q_yr - q_r
        wp = w / phi
        l1 = wp * (D0 - L)
        l2 = wp * D1 / phi
        l3 = wp * D2 / (phi * phi)
        g = w * (-r * D0 + r * L - r * q + y * (1.0 - q))
        g1 = -wp * (D0 - L + r * D1 + q)
        g2 = -wp / phi * (2.0 * D1 + r * D2)
        return l1, l2, l3, [g], [g1], [g2]

    def _psi_mu_terms(self, y, mu, w, psi, second=True):
        (c,) = self._psi(psi)
        phi = np.exp(c)
        m = np.maximum(mu, _TINY)
        r = m / phi
        L = np.log1p(phi)
        q = phi / (1.0 + phi)
        dq = q * (1.0 - q)
        yr = y + r
        D0 = special.digamma(yr) - special.digamma(r)
        t_yr, q_yr = _tri_tetra(yr)
        t_r, q_r = _tri_tetra(r)
        D1, D2 = t_yr - t_r, q_yr - q_r
        g = w * (-r * D0 + r * L - r * q + y * (1.0 - q))
        h = w * (r * D0 + r * r * D1 - r * L + 2.0 * r * q - (r + y) * dq)
        g1 = -w / phi * (D0 - L + r * D1 + q)
        g2 = -w / phi**2 * (2.0 * D1 + r * D2)
        return [g], [g1], [g2], [[h]]

    def psi_start(self, y, mu, w):
        y, mu, w = (np.asarray(v, float) for v in (y, mu, w))
        mu = np.maximum(mu, _TINY)
        phi = np.sum(w * (y - mu) ** 2 / mu) / max(np.sum(w), 1e-300) - 1.0
        return np.array([np.log(np.clip(phi, 1e-2, 1e4))])

    def _size_prob(self, mu, psi):
        (c,) = self._psi(psi)
        phi = np.exp(c)
        return mu / phi, 1.0 / (1.0 + phi) + 0.0 * mu

    def variance(self, mu, psi=None):
        (c,) = self._psi(psi)
        return mu * (1.0 + np.exp(c))


# ======================================================================================
class StudentT(_FirstPsiIsLogDispersion, Family):
    """Student t response: y = mu + sigma * T with T ~ t(df), as glmmTMB's ``t_family``.

    psi = (log sigma, log df), or (log sigma,) when the user fixes ``df``.  ``dispersion(psi)`` =
    sigma, the scale (glmmTMB's ``sigma()``; its ``betad`` = log sigma = psi[0]); the df is
    reported by ``dispersion_extra(psi)`` as {"df": df}.  var = sigma^2 df / (df - 2) for df > 2
    (infinite otherwise).  Weights multiply the log density.
    """

    name = "t"
    default_link = "identity"
    allowed_links = ("identity", "log", "inverse")
    has_dispersion = True

    def __init__(self, link: str | Link | None = None, df: float | None = None):
        super().__init__(link)
        if df is not None:
            df = float(df)
            if not np.isfinite(df) or df <= 0:
                raise GlmmdiagError(
                    f"the t family's degrees of freedom df must be a finite number > 0; got df={df!r} "
                    f"(leave it unset to estimate it)"
                )
        self.df = df

    @property
    def psi_names(self):
        return ("log_sigma",) if self.df is not None else ("log_sigma", "log_df")

    @property
    def t_df_index(self):
        """Position of log df in psi when df is estimated (None when fixed): the engine optimises
        that component as 1/df."""
        return None if self.df is not None else 1

    def _init_kwargs(self):
        return {"df": self.df}

    def __repr__(self):
        return f"t({self.link.name}{'' if self.df is None else f', df={self.df:g}'})"

    def _sd(self, psi):
        p = self._psi(psi)
        nu = np.exp(p[1]) if self.df is None else np.asarray(self.df)
        return p[0], nu

    def check_response(self, y, w, name):
        self._check_finite(np.asarray(y, float), name)
        self._check_likelihood_weights(w, name)

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        a, nu = self._sd(psi)
        A = nu * np.exp(2.0 * a)  # nu sigma^2
        r = y - mu
        r2 = r * r
        D = A + r2
        c = special.gammaln(0.5 * (nu + 1.0)) - special.gammaln(0.5 * nu) - 0.5 * np.log(nu * np.pi) - a
        ll = w * (c - 0.5 * (nu + 1.0) * np.log1p(r2 / A))
        l1 = w * (nu + 1.0) * r / D
        l2 = w * (nu + 1.0) * (r2 - A) / (D * D)
        l3 = w * 2.0 * (nu + 1.0) * r * (r2 - 3.0 * A) / D**3
        return ll, l1, l2, l3

    def _psi_mu_terms(self, y, mu, w, psi, second=True):
        a, nu = self._sd(psi)
        A = nu * np.exp(2.0 * a)
        r = y - mu
        r2 = r * r
        D = A + r2
        n1 = nu + 1.0
        u = r2 / D
        g_a = w * (-1.0 + n1 * u)
        h_aa = -w * 2.0 * n1 * A * r2 / (D * D)
        g1_a = -w * 2.0 * n1 * A * r / (D * D)
        g2_a = -w * 2.0 * n1 * A * (3.0 * r2 - A) / D**3
        if self.df is not None:
            return [g_a], [g1_a], [g2_a], [[h_aa]]
        h1, h0 = 0.5 * n1, 0.5 * nu
        dpsi = special.digamma(h1) - special.digamma(h0)
        tpsi = _trigamma(h1) - _trigamma(h0)
        logDA = np.log1p(r2 / A)
        g_b = w * (0.5 * nu * dpsi - 0.5 - 0.5 * nu * logDA + 0.5 * n1 * u)
        h_bb = w * (0.5 * nu * dpsi + 0.25 * nu * nu * tpsi - 0.5 * nu * logDA + nu * u
                    - 0.5 * n1 * A * r2 / (D * D))
        h_ab = w * (nu * u - n1 * A * r2 / (D * D))
        g1_b = w * (nu * r / D - n1 * r * A / (D * D))
        g2_b = w * (nu * (r2 - A) / (D * D) - n1 * A * (3.0 * r2 - A) / D**3)
        return [g_a, g_b], [g1_a, g1_b], [g2_a, g2_b], [[h_aa, h_ab], [h_ab, h_bb]]

    def psi_start(self, y, mu, w):
        r = np.asarray(y, float) - mu
        mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
        sd = float(np.std(r))
        sigma = mad if mad > 0 else (sd if sd > 0 else 1.0)
        if self.df is not None:
            return np.array([np.log(sigma)])
        z = r / sd if sd > 0 else r
        kurt = float(np.mean(z**4)) - 3.0 if sd > 0 else 0.0
        nu = 4.0 + 6.0 / kurt if kurt > 0 else 30.0
        return np.array([np.log(sigma), np.log(np.clip(nu, 2.5, 100.0))])

    def dispersion_extra(self, psi=None):
        return {"df": _as_float(self._sd(psi)[1])}

    def variance(self, mu, psi=None):
        a, nu = self._sd(psi)
        v = np.where(nu > 2, np.exp(2.0 * a) * nu / np.maximum(nu - 2.0, _TINY), np.inf)
        return v * np.ones_like(mu)

    def sample(self, mu, w, rng, psi=None):
        a, nu = self._sd(psi)
        mu = simulable_means(mu, self.name)
        return mu + np.exp(a) * rng.standard_t(np.broadcast_to(nu, mu.shape), size=mu.shape)

    def cdf(self, y, mu, w, psi=None):
        a, nu = self._sd(psi)
        return special.stdtr(nu, (np.asarray(y, float) - mu) * np.exp(-a))

    def start_mu(self, y, w):
        return _start_for_link(self.link.name, y)


# ======================================================================================
def _betabinom_logpmf(y, n, a, b):
    """log P(Y = y) of the beta-binomial with n trials and Beta(a, b) success probability."""
    return (special.gammaln(n + 1.0) - special.gammaln(y + 1.0) - special.gammaln(n - y + 1.0)
            + special.betaln(y + a, n - y + b) - special.betaln(a, b))


class BetaBinomial(_FirstPsiIsLogDispersion, Family):
    """Beta-binomial: y successes out of n = w trials, y | p ~ Binomial(n, p), p ~ Beta(mu phi,
    (1 - mu) phi), so E[y] = n mu and var(y) = n mu (1 - mu) (phi + n) / (phi + 1).

    The log density, with a = mu phi, b = (1 - mu) phi, is
    log C(n, y) + lgamma(y + a) + lgamma(n - y + b) - lgamma(n + phi) - lgamma(a) - lgamma(b)
    + lgamma(phi).

    psi = (log phi,).  ``dispersion(psi)`` = phi, glmmTMB's ``sigma()``; its ``betad`` = log(phi)
    = psi (cbpp_betabinomial, glmmTMB 1.1.5: betad = 2.38349, sigma = 10.8427).  The binomial
    limit is phi -> infinity.  Weights are the numbers of trials (as for binomial).
    """

    name = "betabinomial"
    default_link = "logit"
    allowed_links = ("logit", "probit", "cloglog")
    discrete = True
    has_dispersion = True
    psi_names = ("log_phi",)
    weight_role = "trials"
    dw_costly = True

    def check_response(self, y, w, name):
        Binomial.check_response(self, np.asarray(y, float), np.asarray(w, float), name)

    def loglik_const(self, y, w):
        return special.gammaln(w + 1) - special.gammaln(y + 1) - special.gammaln(w - y + 1)

    @staticmethod
    def _clip(mu):
        return np.clip(mu, _TINY, 1.0 - 1e-15)

    def _ab(self, mu, psi):
        (c,) = self._psi(psi)
        phi = np.exp(c)
        mu = self._clip(mu)
        return mu, phi, mu * phi, (1.0 - mu) * phi

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        mu, phi, a, b = self._ab(mu, psi)
        f = w - y
        ll = (special.gammaln(y + a) + special.gammaln(f + b) - special.gammaln(w + phi)
              - special.gammaln(a) - special.gammaln(b) + special.gammaln(phi))
        l1 = phi * (special.digamma(y + a) - special.digamma(a) - special.digamma(f + b) + special.digamma(b))
        if order < 3:
            t = (_tri_tetra(y + a, False) - _tri_tetra(a, False)
                 + _tri_tetra(f + b, False) - _tri_tetra(b, False))
            return ll, l1, phi * phi * t, None
        t_ya, q_ya = _tri_tetra(y + a)
        t_a, q_a = _tri_tetra(a)
        t_fb, q_fb = _tri_tetra(f + b)
        t_b, q_b = _tri_tetra(b)
        l2 = phi * phi * (t_ya - t_a + t_fb - t_b)
        l3 = phi**3 * (q_ya - q_a - q_fb + q_b)
        return ll, l1, l2, l3

    def _digamma_terms(self, y, mu, w, psi):
        """The shared special-function differences (phi, a, b, Dy, Df, Dn, Ty, Tf, Qy, Qf): digamma
        (D), trigamma (T) and tetragamma (Q) differences at (y + a, a), (w - y + b, b), (w + phi, phi)."""
        mu, phi, a, b = self._ab(mu, psi)
        f = w - y
        Dy = special.digamma(y + a) - special.digamma(a)
        Df = special.digamma(f + b) - special.digamma(b)
        Dn = special.digamma(w + phi) - special.digamma(phi)
        t_ya, q_ya = _tri_tetra(y + a)
        t_a, q_a = _tri_tetra(a)
        t_fb, q_fb = _tri_tetra(f + b)
        t_b, q_b = _tri_tetra(b)
        return phi, a, b, Dy, Df, Dn, t_ya - t_a, t_fb - t_b, q_ya - q_a, q_fb - q_b

    def _fused_mu_terms(self, y, mu, w, psi):
        """(l_mu, l_mumu, l_mumumu, [g], [g_mu], [g_mumu]) from one set of digamma/trigamma/
        tetragamma values (``mu_derivs`` at order 3 and ``_psi_mu_terms`` share them): what the
        Laplace gradient at the mode needs (``laplace_gradient_terms``)."""
        phi, a, b, Dy, Df, Dn, Ty, Tf, Qy, Qf = self._digamma_terms(y, mu, w, psi)
        l1 = phi * (Dy - Df)
        l2 = phi * phi * (Ty + Tf)
        l3 = phi**3 * (Qy - Qf)
        g = a * Dy + b * Df - phi * Dn
        g1 = l1 + phi * (a * Ty - b * Tf)
        g2 = 2.0 * l2 + phi * phi * (a * Qy + b * Qf)
        return l1, l2, l3, [g], [g1], [g2]

    def _psi_mu_terms(self, y, mu, w, psi, second=True):
        # d/dpsi = phi d/dphi, with da/dpsi = a and db/dpsi = b
        phi, a, b, Dy, Df, Dn, Ty, Tf, Qy, Qf = self._digamma_terms(y, mu, w, psi)
        g = a * Dy + b * Df - phi * Dn
        g1 = phi * (Dy - Df) + phi * (a * Ty - b * Tf)          # d l_mu / dpsi
        l2 = phi * phi * (Ty + Tf)
        g2 = 2.0 * l2 + phi * phi * (a * Qy + b * Qf)            # d l_mumu / dpsi
        if not second:
            return [g], [g1], [g2], None
        Tn = _tri_tetra(w + phi, False) - _trigamma(phi)
        h = a * Dy + a * a * Ty + b * Df + b * b * Tf - phi * Dn - phi * phi * Tn
        return [g], [g1], [g2], [[h]]

    def psi_start(self, y, mu, w):
        y, mu, w = (np.asarray(v, float) for v in (y, mu, w))
        mu = self._clip(mu)
        ok = w > 0
        v = w[ok] * mu[ok] * (1.0 - mu[ok])
        x2 = np.sum((y[ok] - w[ok] * mu[ok]) ** 2 / v - 1.0)
        den = np.sum(w[ok] - 1.0)
        rho = x2 / den if den > 0 else 0.1
        rho = float(np.clip(rho, 1e-3, 0.9))
        return np.array([np.log(1.0 / rho - 1.0)])

    def variance(self, mu, psi=None, trials=1.0):
        """Variance of the proportion y / n for ``trials`` n: mu (1 - mu) (phi + n) / ((phi + 1) n);
        the Bernoulli variance mu (1 - mu) for n = 1 (the default) or without psi."""
        if psi is None:
            return mu * (1.0 - mu)
        (c,) = self._psi(psi)
        phi = np.exp(c)
        return mu * (1.0 - mu) * (phi + trials) / ((phi + 1.0) * trials)

    def sample(self, mu, w, rng, psi=None):
        mu, phi, a, b = self._ab(np.asarray(mu, float), psi)
        shape = np.broadcast(mu, w).shape
        prob = rng.beta(np.broadcast_to(a, shape), np.broadcast_to(b, shape))
        return rng.binomial(np.broadcast_to(np.asarray(w), shape).astype(np.int64), prob).astype(float)

    def cdf(self, y, mu, w, psi=None):
        """P(Y <= y), summing the probabilities of 0..floor(y) (y >= n gives 1)."""
        mu, phi, a, b = self._ab(np.asarray(mu, float), psi)
        y, n, a, b = np.broadcast_arrays(np.floor(np.asarray(y, float)), np.round(np.asarray(w, float)), a, b)
        out = np.where(y >= n, 1.0, 0.0)
        todo = (y >= 0) & (y < n)
        if todo.any():
            yt, nt, at, bt = y[todo], n[todo], a[todo], b[todo]
            k = np.arange(int(yt.max()) + 1, dtype=float)
            lp = _betabinom_logpmf(k[None, :], nt[:, None], at[:, None], bt[:, None])
            lp = np.where(k[None, :] <= yt[:, None], lp, -np.inf)
            out[todo] = np.minimum(np.exp(special.logsumexp(lp, axis=1)), 1.0)
        return out

    def start_mu(self, y, w):
        return (np.asarray(y, float) + 0.5) / (np.asarray(w, float) + 1.0)


# ======================================================================================
def _log_sigmoid(x):
    """log(1 / (1 + exp(-x))), stable for all x."""
    return -np.logaddexp(0.0, -x)


def _sigmoid(x):
    return special.expit(x)


def _ordbeta_y_parts(y):
    """(y == 0, y == 1, log ym, log(1 - ym)) with ym = y whose 0s and 1s are moved to 0.5 (their
    beta terms are masked out)."""
    y = np.asarray(y, float)
    zero, one = y <= 0.0, y >= 1.0
    ym = np.where(zero | one, 0.5, y)
    return zero, one, np.log(ym), np.log1p(-ym)


def _log1m_exp(d):
    """log(1 - exp(d)) for d < 0 and -inf for d >= 0 (crossed cut points: no density), for a
    scalar (plain floats: the usual case, called once per point) or an array of per-row values."""
    if np.ndim(d) == 0:
        d = float(d)
        return math.log(-math.expm1(d)) if d < 0 else -math.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d < 0, np.log(-np.expm1(np.minimum(d, -1e-300))), -np.inf)


class _OrdBetaPoint:
    """What the ordered beta's derivatives need at one point (eta, psi), whatever the data: the
    cut-point terms and the special functions of the beta part, evaluated once (a and b stacked:
    one call each, since the ordered beta fits small data sets, where the number of numpy calls is
    the cost). The fitter asks for the eta derivatives, the psi derivatives and the psi Hessian at
    one point in turn, so ``OrdBeta`` keeps the last point (``OrdBeta._at``).

    Cut points: x_i = eta - k_i, s_i = logistic(x_i), v_i = s_i (1 - s_i), v_i' = v_i (1 - 2 s_i)
    (derivatives in eta). Beta part, at mu = logistic(eta) (clipped as ``Beta``), a = mu phi,
    b = (1 - mu) phi and ly, l1y = log y, log(1 - y) (as ``Beta.mu_derivs``):

        l = lgamma(phi) - lgamma(a) - lgamma(b) + a ly + b l1y
        l_mu = phi (ly - l1y - digamma(a) + digamma(b)),   l_mumu = -phi^2 (trigamma(a) + trigamma(b)),
        l_mumumu = -phi^3 (tetragamma(a) - tetragamma(b)),

    in eta by the chain rule with the logit link's d1, d2, d3 (``beta_eta``), in c = log phi as
    ``Beta._psi_mu_terms`` (``beta_log_phi``).
    """

    def __init__(self, link, eta, psi_key, c, k1, k2, tetra: bool):
        self.eta_key, self.psi_key, self.tetra = eta, psi_key, tetra
        self.k1, self.k2 = k1, k2
        s1, s2 = _sigmoid(eta - k1), _sigmoid(eta - k2)
        self.s1, self.s2 = s1, s2
        self.v1, self.v2 = s1 * (1.0 - s1), s2 * (1.0 - s2)
        self.dv1, self.dv2 = self.v1 * (1.0 - 2.0 * s1), self.v2 * (1.0 - 2.0 * s2)
        self.lgap = _log1m_exp(k1 - k2)
        mu, self.d1, self.d2, self.d3 = link.inverse_derivs(eta)
        self.phi = phi = np.exp(c)
        m = np.clip(mu, _TINY, 1.0 - 1e-15)
        self.m = m
        ab = np.stack(np.broadcast_arrays(m * phi, (1.0 - m) * phi))
        self.ab = ab
        dg = special.digamma(ab)
        self.da, self.db = dg[0], dg[1]
        tt = _tri_tetra(ab, tetra)
        if tetra:
            (self.ta, self.tb), (self.qa, self.qb) = tt
        else:
            self.ta, self.tb = tt

    def matches(self, eta, psi_key, tetra: bool) -> bool:
        return (tetra <= self.tetra and eta.shape == self.eta_key.shape and np.array_equal(psi_key, self.psi_key)
                and np.array_equal(eta, self.eta_key))

    def beta_eta(self, ly, l1y, order):
        """(l, s, W, dW) of the beta part in eta (W, dW None below orders 2, 3)."""
        phi, d1, d2 = self.phi, self.d1, self.d2
        a, b = self.ab
        lg = special.gammaln(self.ab)
        ll = special.gammaln(phi) - lg[0] - lg[1] + a * ly + b * l1y
        l1 = phi * (ly - l1y - self.da + self.db)
        s = l1 * d1
        if order < 2:
            return ll, s, None, None
        l2 = -phi * phi * (self.ta + self.tb)
        W = -(l2 * d1 * d1 + l1 * d2)
        if order < 3:
            return ll, s, W, None
        l3 = -phi * phi * phi * (self.qa - self.qb)
        return ll, s, W, -(l3 * d1**3 + 3.0 * l2 * d1 * d2 + l1 * self.d3)

    def beta_log_phi(self, ly, l1y, second: bool):
        """(l_c, s_c, W_c, l_cc) of the beta part for c = log phi (l_cc None unless ``second``)."""
        phi, m, d1, d2 = self.phi, self.m, self.d1, self.d2
        ta, tb = self.ta, self.tb
        e = ly - l1y - self.da + self.db
        g = phi * (special.digamma(phi) - m * self.da - (1.0 - m) * self.db + m * ly + (1.0 - m) * l1y)
        g1 = phi * (e - phi * (m * ta - (1.0 - m) * tb))
        g2 = -phi * (2.0 * phi * (ta + tb) + phi * phi * (m * self.qa + (1.0 - m) * self.qb))
        h = phi * phi * (_trigamma(phi) - m * m * ta - (1.0 - m) ** 2 * tb) + g if second else None
        return g, g1 * d1, -(g2 * d1 * d1 + g1 * d2), h


class OrdBeta(_FirstPsiIsLogDispersion, Family):
    """Ordered beta (Kubinec 2023) for proportions in [0, 1] with exact zeros and ones, as
    glmmTMB's ``ordbeta``: with mu = logistic(eta), cutpoints k1 < k2 and s_i = logistic(eta - k_i),

    P(y = 0) = 1 - s_1,   P(y = 1) = s_2,
    f(y) = (s_1 - s_2) Beta(y; mu phi, (1 - mu) phi) for 0 < y < 1.

    s_1 - s_2 = s_1 (1 - s_2) (1 - exp(k1 - k2)), so the log density of the middle part is
    log s_1 + log(1 - s_2) + log(-expm1(k1 - k2)) + the beta log density.

    psi = (log phi, k1, k2): glmmTMB's ``betad`` = log(phi) = psi[0], ``sigma()`` = phi (what
    ``dispersion(psi)`` returns), and its ``psi`` = (k1, k2) = psi[1:], the cutpoints on the logit
    scale (reported by glmmTMB as the "cutoffs" logistic(k1), logistic(k2); ``dispersion_extra``).
    Weights multiply the log density.  Only the logit link.  Note that mu (the fitted values) is
    the mean of the beta part, not E[y] = s_2 + (s_1 - s_2) mu.
    """

    name = "ordbeta"
    default_link = "logit"
    allowed_links = ("logit",)
    has_dispersion = True
    psi_names = ("log_phi", "cut1", "cut2")
    dw_costly = True

    _beta = None

    def _beta_family(self):
        if self._beta is None:
            self._beta = Beta("logit")
        return self._beta

    def check_response(self, y, w, name):
        y = np.asarray(y, float)
        self._check_finite(y, name)
        bad = (y < 0) | (y > 1)
        if bad.any():
            raise GlmmdiagError(
                f"response {name!r} has {_count_bad(bad)} of {y.size} rows outside [0, 1], the support of "
                f"the ordered beta family"
            )
        self._check_likelihood_weights(w, name)

    def loglik_const(self, y, w):
        z, o, ly, l1y = self._y_parts(y)
        return np.where(z | o, 0.0, -w * (ly + l1y))

    def _y_parts(self, y):
        """``_ordbeta_y_parts(y)``, cached for a read-only y (``Family._y_terms``)."""
        return self._y_terms(y, "ordbeta_parts", _ordbeta_y_parts)

    _point_memo = None

    def _at(self, eta, psi, tetra: bool) -> _OrdBetaPoint:
        """The ``_OrdBetaPoint`` at (eta, psi): the last one when eta and psi equal its own, value
        for value (and it has the tetragammas if ``tetra``), else a new one, kept as the last."""
        eta = np.asarray(eta, float)
        key = np.array(psi, float)  # a copy: the caller may change psi in place
        last = self._point_memo
        if last is not None and last.matches(eta, key, tetra):
            return last
        c, k1, k2 = self._psi(psi)
        point = _OrdBetaPoint(self.link, eta.copy(), key, c, k1, k2, tetra)
        self._point_memo = point
        return point

    def eta_derivs(self, y, eta, w, psi=None, order=3):
        pt = self._at(eta, psi, order >= 3)
        eta, k1, k2 = pt.eta_key, pt.k1, pt.k2
        zero, one, ly, l1y = self._y_parts(y)
        s1, v1, dv1, s2, v2, dv2 = pt.s1, pt.v1, pt.dv1, pt.s2, pt.v2, pt.dv2
        bl, bs, bW, bdW = pt.beta_eta(ly, l1y, order)
        l_mid = _log_sigmoid(eta - k1) + _log_sigmoid(k2 - eta) + pt.lgap + bl
        ll = np.where(zero, _log_sigmoid(k1 - eta), np.where(one, _log_sigmoid(eta - k2), l_mid))
        s = np.where(zero, -s1, np.where(one, 1.0 - s2, (1.0 - s1) - s2 + bs))
        ll, s = w * ll, w * s
        if order < 2:
            return ll, s, None, None
        W = w * np.where(zero, v1, np.where(one, v2, v1 + v2 + bW))
        if order < 3:
            return ll, s, W, None
        dW = w * np.where(zero, dv1, np.where(one, dv2, dv1 + dv2 + bdW))
        return ll, s, W, dW

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        """(l, l_mu, l_mumu, l_mumumu), from the eta derivatives by the logit link's chain rule."""
        eta = self.link.link(np.clip(np.asarray(mu, float), _TINY, 1.0 - 1e-15))
        _, d1, d2, d3 = self.link.inverse_derivs(eta)
        ll, s, W, dW = self.eta_derivs(y, eta, w, psi, max(order, 2))
        l1 = s / d1
        l2 = (-W - l1 * d2) / (d1 * d1)
        if order < 3:
            return ll, l1, l2, None
        return ll, l1, l2, (-dW - 3.0 * l2 * d1 * d2 - l1 * d3) / d1**3

    def _gap_derivs(self, psi):
        """(g', g'') of g(d) = log(1 - exp(d)) at d = k1 - k2 < 0."""
        _, k1, k2 = self._psi(psi)
        d = k1 - k2
        r = -np.exp(d) / -np.expm1(d)  # -e^d / (1 - e^d)
        return r, r * (1.0 + (-r))  # g'' = -e^d/(1-e^d)^2 = g' (1 - g')

    def psi_derivs(self, y, eta, w, psi, second: bool = True):
        pt = self._at(eta, psi, True)
        shape = np.broadcast(y, pt.eta_key, w).shape
        zero, one, ly, l1y = self._y_parts(y)
        mid = ~(zero | one)
        s1, v1, dv1, s2, v2, dv2 = pt.s1, pt.v1, pt.dv1, pt.s2, pt.v2, pt.dv2
        g1, g2 = self._gap_derivs(psi)
        bl_c, bs_c, bW_c, bh_c = pt.beta_log_phi(ly, l1y, second)
        fm = mid.astype(float)
        # log phi: the beta part of the middle rows only
        out = [(w * fm * bl_c, w * fm * bs_c, w * fm * bW_c, (w * fm * bh_c) if second else None)]
        # k1: rows y = 0 and the middle rows; k2: rows y = 1 and the middle rows
        l_k1 = np.where(zero, s1, np.where(one, 0.0, -(1.0 - s1) + g1))
        l_k2 = np.where(zero, 0.0, np.where(one, -(1.0 - s2), s2 - g1))
        s_k1 = np.where(one, 0.0, v1)
        s_k2 = np.where(zero, 0.0, v2)
        W_k1 = np.where(one, 0.0, -dv1)
        W_k2 = np.where(zero, 0.0, -dv2)
        h11 = np.where(zero, -v1, np.where(one, 0.0, -v1 + g2))
        h22 = np.where(zero, 0.0, np.where(one, -v2, -v2 + g2))
        for lk, sk, Wk, hk in ((l_k1, s_k1, W_k1, h11), (l_k2, s_k2, W_k2, h22)):
            out.append(tuple(np.broadcast_to(w * a, shape) for a in (lk, sk, Wk))
                       + ((np.broadcast_to(w * hk, shape)) if second else None,))
        out[0] = tuple(None if a is None else np.broadcast_to(a, shape) for a in out[0])
        return out

    def psi_hessian(self, y, eta, w, psi, summed: bool = False):
        y = np.asarray(y, float)
        eta = np.asarray(eta, float)
        shape = np.broadcast(y, eta, w).shape
        zero, one = self._y_parts(y)[:2]
        pd = self.psi_derivs(y, eta, w, psi, second=True)
        _, g2 = self._gap_derivs(psi)
        out = np.zeros(shape + (3, 3))
        for i in range(3):
            out[..., i, i] = pd[i][3]
        h12 = np.broadcast_to(w * np.where(zero | one, 0.0, -g2), shape)
        out[..., 1, 2] = out[..., 2, 1] = h12
        if summed:
            return out.reshape(-1, 3, 3).sum(axis=0)
        return out

    def _probs(self, mu, psi):
        """(P(0), P(1), P(middle), a, b) for means mu of the beta part."""
        c, k1, k2 = self._psi(psi)
        mu = np.clip(np.asarray(mu, float), _TINY, 1.0 - 1e-15)
        eta = special.logit(mu)
        s1, s2 = _sigmoid(eta - k1), _sigmoid(eta - k2)
        phi = np.exp(c)
        p_mid = s1 * (1.0 - s2) * -np.expm1(k1 - k2)
        return 1.0 - s1, s2, p_mid, mu * phi, (1.0 - mu) * phi

    def psi_start(self, y, mu, w):
        y, mu = np.asarray(y, float), np.asarray(mu, float)
        n = max(y.size, 1)
        p0 = np.clip(np.mean(y <= 0), 0.5 / n, 0.45)
        p1 = np.clip(np.mean(y >= 1), 0.5 / n, 0.45)
        eta = float(np.mean(special.logit(np.clip(mu, 1e-6, 1 - 1e-6))))
        k1 = eta - special.logit(1.0 - p0)
        k2 = eta - special.logit(p1)
        if k2 < k1 + 0.5:
            k1, k2 = 0.5 * (k1 + k2) - 0.25, 0.5 * (k1 + k2) + 0.25
        mid = (y > 0) & (y < 1)
        c = self._beta_family().psi_start(y[mid], mu[mid], np.ones(int(mid.sum())))[0] if mid.any() else 0.0
        return np.array([c, k1, k2])

    def dispersion_extra(self, psi=None):
        _, k1, k2 = self._psi(psi)
        return {"lower cutoff": _as_float(_sigmoid(k1)), "upper cutoff": _as_float(_sigmoid(k2))}

    def variance(self, mu, psi=None):
        """Variance of y (with its point masses) at beta-part mean mu."""
        if psi is None:
            return mu * (1.0 - mu)
        p0, p1, pm, a, b = self._probs(mu, psi)
        m = a / (a + b)
        ey = p1 + pm * m
        ey2 = p1 + pm * (m * m + m * (1.0 - m) / (a + b + 1.0))
        return ey2 - ey * ey

    def mean(self, mu, psi):
        """E[y] = P(1) + P(middle) mu."""
        p0, p1, pm, a, b = self._probs(mu, psi)
        return p1 + pm * a / (a + b)

    def sample(self, mu, w, rng, psi=None):
        mu = np.asarray(mu, float)
        p0, p1, pm, a, b = self._probs(mu, psi)
        u = rng.random(mu.shape)
        x = rng.beta(np.broadcast_to(a, mu.shape), np.broadcast_to(b, mu.shape))
        x = np.clip(x, np.finfo(float).tiny, np.nextafter(1.0, 0.0))
        return np.where(u < p0, 0.0, np.where(u < p0 + pm, x, 1.0))

    def cdf(self, y, mu, w, psi=None):
        p0, p1, pm, a, b = self._probs(mu, psi)
        y = np.asarray(y, float)
        inner = p0 + pm * special.betainc(a, b, np.clip(y, 0.0, 1.0))
        return np.where(y < 0, 0.0, np.where(y >= 1, 1.0, inner))

    def cdf_lower(self, y, mu, w, psi=None):
        """P(Y < y): 0 at y = 0, 1 - P(1) at y = 1, the CDF in between."""
        p0, p1, pm, a, b = self._probs(mu, psi)
        y = np.asarray(y, float)
        inner = p0 + pm * special.betainc(a, b, np.clip(y, 0.0, 1.0))
        return np.where(y <= 0, 0.0, np.where(y > 1, 1.0, np.where(y == 1, 1.0 - p1, inner)))

    def start_mu(self, y, w):
        y = np.asarray(y, float)
        n = max(y.size, 2)
        return (y * (n - 1) + 0.5) / n


# ======================================================================================
class Tweedie(_FirstPsiIsLogDispersion, Family):
    """Tweedie compound Poisson-gamma response with var = phi mu^p, 1 < p < 2: a point mass
    P(y = 0) = exp(-lam), lam = mu^(2-p) / (phi (2-p)), and a continuous density on y > 0,

    log f(y) = [y mu^(1-p)/(1-p) - mu^(2-p)/(2-p)] / phi - log y + log S(y, phi, p),

    where S is the series of ``glmmdiag.fit.tweedie`` (summed to convergence, no saddlepoint
    approximation), so the log-likelihood is exact.

    psi = (log phi, logit(p - 1)): p = 1 + logistic(psi[1]).  This is glmmTMB's parameterisation:
    its ``betad`` = log(phi) = psi[0], ``sigma()`` = phi (``dispersion(psi)``), and its ``psi`` =
    psi[1] (tweedie_sim, glmmTMB 1.1.5: betad = 0.0444793, psi = -0.0680317, power 1.482999).
    The power is reported by ``dispersion_extra(psi)`` as {"power": p}.  Weights multiply the log
    density.
    """

    name = "tweedie"
    default_link = "log"
    allowed_links = ("log", "identity", "sqrt")
    has_dispersion = True
    psi_names = ("log_phi", "logit_power")

    def check_response(self, y, w, name):
        y = np.asarray(y, float)
        self._check_finite(y, name)
        neg = y < 0
        if neg.any():
            raise GlmmdiagError(
                f"response {name!r} has {_count_bad(neg)} negative values of {y.size} rows, outside the "
                f"support of the tweedie family (y >= 0)"
            )
        self._check_likelihood_weights(w, name)

    def _cp(self, psi):
        c, t = self._psi(psi)
        return c, 1.0 + special.expit(t)

    def loglik_const(self, y, w):
        y = np.asarray(y, float)
        pos = y > 0
        return np.where(pos, -w * np.log(np.where(pos, y, 1.0)), 0.0)

    _dcache: tuple = (None, None, None)

    def _series(self, y, c, p, derivs):
        """log S and its (c, p) derivatives for the rows y > 0 (zeros elsewhere). With
        ``derivs``, cached for the last (y, phi, p) when y is read-only and phi, p scalars (the
        Laplace gradient and the psi Hessian ask for the same point)."""
        if derivs and isinstance(y, np.ndarray) and not y.flags.writeable and np.ndim(c) == 0 and np.ndim(p) == 0:
            key = (float(c), float(p))
            cy, ckey, val = self._dcache
            if cy is not y or ckey != key:
                val = self._series_raw(y, c, p, True)
                self._dcache = (y, key, val)
            return val
        return self._series_raw(y, c, p, derivs)

    def _series_raw(self, y, c, p, derivs):
        from glmmdiag.fit.tweedie import log_series

        y = np.asarray(y, float)
        pos = y > 0
        n_out = 6 if derivs else 1
        out = [np.zeros(y.shape) for _ in range(n_out)]
        if pos.any():
            cc = np.broadcast_to(c, y.shape)[pos]
            pp = np.broadcast_to(p, y.shape)[pos]
            vals = log_series(y[pos], cc, pp, derivs)
            vals = vals if derivs else (vals,)
            for o, v in zip(out, vals):
                o[pos] = v
        return out

    _scache: tuple = (None, None, None)

    def _log_s(self, y, c, p):
        """log S per row (0 where y = 0), cached for the last (y, phi, p) when y is read-only (the
        engine's response: PIRLS evaluates the density at fixed psi many times). There it comes
        with the series' (c, p) derivatives (the same log S; cached by ``_series``): the Laplace
        gradient at the mode asks for them at the same psi, and the window of terms is shared."""
        if not (isinstance(y, np.ndarray) and not y.flags.writeable and np.ndim(c) == 0):
            return self._series(y, c, p, False)[0]
        key = (float(c), float(p))
        cy, ckey, val = self._scache
        if cy is not y or ckey != key:
            val = self._series(y, c, p, np.ndim(p) == 0)[0]
            self._scache = (y, key, val)
        return val

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        c, p = self._cp(psi)
        y = np.asarray(y, float)
        ok = mu > 0
        m = np.where(ok, mu, 1.0)
        ip = np.exp(-c)
        mp = m ** (-p)  # mu^-p
        m1p = mp * m  # mu^(1-p)
        ll = w * (ip * (y * m1p / (1.0 - p) - m1p * m / (2.0 - p)) + self._log_s(y, c, p))
        ll = np.where(ok, ll, -np.inf)
        wi = w * ip
        l1 = wi * mp * (y - m)
        l2 = wi * mp * (-p * y / m - (1.0 - p))
        l3 = wi * mp * (p * (p + 1.0) * y / (m * m) + p * (1.0 - p) / m)
        return ll, l1, l2, l3

    def _psi_mu_terms(self, y, mu, w, psi, second=True):
        c, t = self._psi(psi)
        p = 1.0 + special.expit(t)
        q = p - 1.0
        r1 = q * (1.0 - q)  # dp/dt
        r2 = r1 * (1.0 - 2.0 * q)  # d2p/dt2
        y = np.asarray(y, float)
        m = np.where(mu > 0, mu, 1.0)
        lm = np.log(m)
        ip = np.exp(-c)
        wi = w * ip
        mp = m ** (-p)
        m1p = mp * m
        A = m1p / (1.0 - p)
        B = m1p * m / (2.0 - p)
        L = wi * (y * A - B)  # the mu part of l
        L1 = wi * mp * (y - m)
        L2 = wi * mp * (-p * y / m - (1.0 - p))
        # derivatives of the mu part in p
        Ap = A * (1.0 / (1.0 - p) - lm)
        Bp = B * (1.0 / (2.0 - p) - lm)
        L_p = wi * (y * Ap - Bp)
        L1_p = -lm * L1
        L2_p = wi * mp * (m - y) / m - lm * L2
        logS, Sc, Sp, Scc, Scp, Spp = self._series(y, c, p, True)
        g_c = -L + w * Sc
        g_p = L_p + w * Sp
        g = [g_c, r1 * g_p]
        g1 = [-L1, r1 * L1_p]
        g2 = [-L2, r1 * L2_p]
        if not second:
            return g, g1, g2, None
        App = A * (1.0 / (1.0 - p) - lm) ** 2 + A / (1.0 - p) ** 2
        Bpp = B * (1.0 / (2.0 - p) - lm) ** 2 + B / (2.0 - p) ** 2
        L_pp = wi * (y * App - Bpp)
        h_cc = L + w * Scc
        h_cp = -L_p + w * Scp
        h_pp = L_pp + w * Spp
        H = [[h_cc, r1 * h_cp], [r1 * h_cp, r1 * r1 * h_pp + r2 * g_p]]
        return g, g1, g2, H

    def psi_start(self, y, mu, w):
        y, mu, w = (np.asarray(v, float) for v in (y, mu, w))
        mu = np.maximum(mu, _TINY)
        p = 1.5
        phi = np.sum(w * (y - mu) ** 2 / mu**p) / max(np.sum(w), 1e-300)
        return np.array([np.log(np.clip(phi, 1e-3, 1e3)), 0.0])

    def dispersion_extra(self, psi=None):
        return {"power": _as_float(self._cp(psi)[1])}

    def variance(self, mu, psi=None):
        if psi is None:
            return mu**1.5
        c, p = self._cp(psi)
        return np.exp(c) * mu**p

    def _poisson_gamma(self, mu, psi):
        """(lam, alpha, gam): Poisson mean, gamma shape and scale of the compound representation."""
        c, p = self._cp(psi)
        phi = np.exp(c)
        mu = np.maximum(np.asarray(mu, float), 0.0)
        lam = mu ** (2.0 - p) / (phi * (2.0 - p))
        return lam, (2.0 - p) / (p - 1.0), phi * (p - 1.0) * mu ** (p - 1.0)

    def sample(self, mu, w, rng, psi=None):
        mu = simulable_means(mu, self.name)
        lam, alpha, gam = self._poisson_gamma(mu, psi)
        n = _poisson_draws(simulable_means(lam, self.name), rng)
        # the sum of n Gamma(alpha, gam) variables is Gamma(n alpha, gam); numpy's sampler returns
        # 0 for shape 0 (the point mass) without drawing
        return rng.gamma(n * alpha, np.broadcast_to(gam, mu.shape))

    def cdf(self, y, mu, w, psi=None):
        """P(Y <= y) = sum_j Poisson(j; lam) GammaCDF(y; j alpha, gam), j = 0, 1, ... (the j = 0
        term is the point mass at 0); the sum runs until the Poisson tail is below 1e-17."""
        lam, alpha, gam = self._poisson_gamma(mu, psi)
        y, lam, gam = np.broadcast_arrays(np.asarray(y, float), lam, gam)
        out = np.where(y < 0, 0.0, np.exp(-lam))
        pos = (y > 0) & (lam > 0)
        if pos.any():
            yl, ll, gl = y[pos], lam[pos], gam[pos]
            jmax = int(np.ceil(ll.max() + 12.0 * np.sqrt(ll.max()) + 40.0))
            j = np.arange(1, jmax + 1, dtype=float)
            lp = j[None, :] * np.log(ll[:, None]) - ll[:, None] - special.gammaln(j[None, :] + 1.0)
            gc = special.gammainc(j[None, :] * alpha, (yl / gl)[:, None])
            out[pos] = np.minimum(np.exp(-ll) + np.sum(np.exp(lp) * gc, axis=1), 1.0)
        return out

    def cdf_lower(self, y, mu, w, psi=None):
        """P(Y < y): 0 at y <= 0 (below the point mass), the CDF above."""
        y = np.asarray(y, float)
        return np.where(y <= 0, 0.0, self.cdf(y, mu, w, psi))

    def start_mu(self, y, w):
        return _start_for_link(self.link.name, y)


# ======================================================================================
FAMILIES: dict[str, type[Family]] = {
    "binomial": Binomial,
    "poisson": Poisson,
    "gaussian": Gaussian,
    "gamma": GammaFamily,
    "beta": Beta,
    "nbinom2": NBinom2,
    "nbinom1": NBinom1,
    "t": StudentT,
    "betabinomial": BetaBinomial,
    "tweedie": Tweedie,
    "ordbeta": OrdBeta,
}
# zero-truncated counts (glmmTMB's truncated_*): built by ``submodels.truncated_family`` over the base
TRUNCATED_FAMILIES: dict[str, str] = {
    "truncated_poisson": "poisson",
    "truncated_nbinom1": "nbinom1",
    "truncated_nbinom2": "nbinom2",
}
_ALIASES = {
    "bernoulli": "binomial",
    "normal": "gaussian",
    "beta_family": "beta",
    "negative_binomial": "nbinom2",
    "student_t": "t",
    "t_family": "t",
    "beta_binomial": "betabinomial",
}


def get_family(family: str | Family, link: str | None = None, **kwargs) -> Family:
    """A family object from its name (case-insensitive; aliases: "Gamma", "beta_family",
    "negative_binomial" -> nbinom2, "student_t"/"t_family" -> t) or an existing family, with an
    optional link and family arguments (e.g. ``df=`` for t). The zero-truncated families
    "truncated_poisson", "truncated_nbinom1", "truncated_nbinom2" are compositions over their
    base (``submodels.CompositeFamily``; with ``ziformula`` in ``glmm``, hurdle models)."""
    trunc = getattr(family, "truncated_name", None) if isinstance(family, Family) else str(family).lower()
    if trunc in TRUNCATED_FAMILIES:
        if kwargs:
            raise GlmmdiagError(f"the {trunc} family does not take the argument(s) {sorted(kwargs)}")
        if isinstance(family, Family) and (link is None or get_link(link).name == family.link.name):
            return family
        from glmmdiag.fit.submodels import truncated_family

        return truncated_family(trunc, link if link is not None or not isinstance(family, Family) else family.link)
    if isinstance(family, Family):
        if (link is None or get_link(link).name == family.link.name) and not kwargs:
            return family
        cls, args = type(family), {**family._init_kwargs(), **kwargs}
        link = link or family.link
    else:
        key = str(family).lower()
        key = _ALIASES.get(key, key)
        if key not in FAMILIES:
            raise GlmmdiagError(
                f"unknown family {family!r}; choose one of {sorted(FAMILIES) + sorted(TRUNCATED_FAMILIES)}")
        cls, args = FAMILIES[key], kwargs
    try:
        return cls(link, **args)
    except TypeError:
        raise GlmmdiagError(
            f"the {cls.name} family does not take the argument(s) {sorted(args)}"
        ) from None
