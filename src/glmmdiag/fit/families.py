"""Response distributions. Each family owns its support check, full log density (constants
included), derivatives in eta for the Laplace approximation, variance function and random draws.

Notation: y is the response (successes for binomial), ``w`` the per-row multiplier (number of
trials for binomial, prior weights otherwise), mu = g^{-1}(eta).

``eta_derivs(y, eta, w)`` returns the per-row log density without its data-only constant, the
score s = dl/deta, the weight W = -d2l/deta2 and its derivative dW/deta (the latter is what the
gradient of the Laplace log-determinant needs).
"""
from __future__ import annotations

import numpy as np
from scipy import special

from glmmdiag.fit.links import Link, get_link

__all__ = ["Family", "Binomial", "Poisson", "Gaussian", "get_family", "FAMILIES"]

_TINY = 1e-12


class Family:
    name: str = ""
    default_link: str = ""
    allowed_links: tuple[str, ...] = ()
    discrete: bool = False
    has_dispersion: bool = False

    def __init__(self, link: str | Link | None = None):
        link = get_link(link or self.default_link)
        if link.name not in self.allowed_links:
            raise ValueError(
                f"link {link.name!r} is not available for the {self.name} family; "
                f"use one of {list(self.allowed_links)}"
            )
        self.link = link

    def __repr__(self):
        return f"{self.name}({self.link.name})"

    # -- the log density ---------------------------------------------------------------
    def loglik_const(self, y, w) -> np.ndarray:
        """Per-row part of the log density that depends on the data only."""
        return np.zeros_like(y)

    def mu_derivs(self, y, mu, w):
        """(l, l_mu, l_mumu, l_mumumu) of the log density without constants, per row."""
        raise NotImplementedError

    def eta_derivs(self, y, eta, w):
        mu, d1, d2, d3 = self.link.inverse_derivs(eta)
        ll, l1, l2, l3 = self.mu_derivs(y, mu, w)
        s = l1 * d1
        W = -(l2 * d1 * d1 + l1 * d2)
        dW = -(l3 * d1**3 + 3.0 * l2 * d1 * d2 + l1 * d3)
        return ll, s, W, dW

    def loglik(self, y, mu, w) -> np.ndarray:
        """Full log density per row, constants included."""
        return self.mu_derivs(y, mu, w)[0] + self.loglik_const(y, w)

    # -- moments and draws ---------------------------------------------------------------
    def variance(self, mu):
        raise NotImplementedError

    def sample(self, mu, w, rng):
        raise NotImplementedError

    def start_mu(self, y, w):
        raise NotImplementedError

    def check_response(self, y, w, name: str) -> None:
        pass


class Binomial(Family):
    """k successes out of w trials, P(success) = mu."""

    name = "binomial"
    default_link = "logit"
    allowed_links = ("logit", "probit", "cloglog", "log")
    discrete = True

    def check_response(self, y, w, name):
        bad_w = ~np.isfinite(w) | (w < 0)
        if bad_w.any():
            raise ValueError(
                f"binomial trials/weights must be finite and >= 0: {int(bad_w.sum())} of {len(w)} rows "
                f"are not; fix or drop those rows"
            )
        if (y < 0).any():
            raise ValueError(
                f"response {name!r} is outside the binomial support: {int((y < 0).sum())} of {len(y)} rows "
                f"have negative successes"
            )
        over = y > w + 1e-8
        if over.any():
            raise ValueError(
                f"response {name!r}: successes > trials in {int(over.sum())} of {len(y)} rows "
                f"(outside the binomial support); check the cbind(successes, failures) columns or weights"
            )
        frac = np.abs(y - np.round(y)) > 1e-6
        if frac.any():
            raise ValueError(
                f"response {name!r}: {int(frac.sum())} of {len(y)} rows give a non-integer number of "
                f"successes (outside the binomial support); with proportions pass the trials as weights="
            )

    def loglik_const(self, y, w):
        return special.gammaln(w + 1) - special.gammaln(y + 1) - special.gammaln(w - y + 1)

    def mu_derivs(self, y, mu, w):
        mu = np.clip(mu, _TINY, 1 - _TINY)
        f = w - y
        ll = special.xlogy(y, mu) + special.xlog1py(f, -mu)
        a, b = y / mu, f / (1 - mu)
        return ll, a - b, -a / mu - b / (1 - mu), 2 * a / mu**2 - 2 * b / (1 - mu) ** 2

    def eta_derivs(self, y, eta, w):
        if self.link.name != "logit":
            return super().eta_derivs(y, eta, w)
        e = np.exp(-np.abs(eta))
        mu = np.where(eta >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        ll = y * eta - w * (np.maximum(eta, 0.0) + np.log1p(e))
        v = mu * (1.0 - mu)
        W = w * v
        return ll, y - w * mu, W, W * (1.0 - 2.0 * mu)

    def variance(self, mu):
        return mu * (1 - mu)

    def sample(self, mu, w, rng):
        return rng.binomial(w.astype(np.int64), np.clip(mu, 0.0, 1.0)).astype(float)

    def start_mu(self, y, w):
        return (y + 0.5) / (w + 1.0)


class Poisson(Family):
    name = "poisson"
    default_link = "log"
    allowed_links = ("log", "sqrt", "identity")
    discrete = True

    def check_response(self, y, w, name):
        neg = y < 0
        if neg.any():
            raise ValueError(
                f"response {name!r} has {int(neg.sum())} negative values of {len(y)} rows: a Poisson count "
                f"must be >= 0 (outside the family's support)"
            )
        frac = np.abs(y - np.round(y)) > 1e-8
        if frac.any():
            raise ValueError(
                f"response {name!r} has {int(frac.sum())} non-integer values of {len(y)} rows: a Poisson "
                f"count must be a whole number (outside the family's support); for continuous "
                f"positive data consider family='gamma'"
            )

    def loglik_const(self, y, w):
        return -w * special.gammaln(y + 1)

    def mu_derivs(self, y, mu, w):
        mu = np.maximum(mu, _TINY)
        ll = w * (special.xlogy(y, mu) - mu)
        a = w * y / mu
        return ll, a - w, -a / mu, 2 * a / mu**2

    def eta_derivs(self, y, eta, w):
        if self.link.name != "log":
            return super().eta_derivs(y, eta, w)
        mu = np.exp(eta)
        W = w * mu
        return w * y * eta - W, w * y - W, W, W

    def variance(self, mu):
        return mu

    def sample(self, mu, w, rng):
        return rng.poisson(mu).astype(float)

    def start_mu(self, y, w):
        return y + 0.1


class Gaussian(Family):
    """Normal response; with the identity link the model is fitted as a linear mixed model."""

    name = "gaussian"
    default_link = "identity"
    allowed_links = ("identity",)
    has_dispersion = True

    def variance(self, mu):
        return np.ones_like(mu)

    def sample(self, mu, w, rng, sigma=1.0):
        return mu + rng.standard_normal(mu.shape) * sigma / np.sqrt(w)

    def start_mu(self, y, w):
        return y

    def check_response(self, y, w, name):
        bad = ~np.isfinite(w) | (w <= 0)
        if bad.any():
            raise ValueError(f"weights must be finite and > 0: {int(bad.sum())} of {len(w)} rows are not")


FAMILIES: dict[str, type[Family]] = {"binomial": Binomial, "poisson": Poisson, "gaussian": Gaussian}
_ALIASES = {"bernoulli": "binomial", "normal": "gaussian"}


def get_family(family: str | Family, link: str | None = None) -> Family:
    if isinstance(family, Family):
        if link is not None and link != family.link.name:
            return type(family)(link)
        return family
    key = str(family).lower()
    key = _ALIASES.get(key, key)
    if key not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {sorted(FAMILIES)}")
    return FAMILIES[key](link)
