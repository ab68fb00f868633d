"""Link functions g(mu) = eta with the inverse and its first three derivatives in eta.

The Laplace objective and its gradient need mu(eta), mu'(eta), mu''(eta) and mu'''(eta);
each link supplies them in closed form, vectorised.

``inverse`` returns the limiting mean (inf, 0 or 1) without a numpy warning where the linear
predictor is extreme; callers check finiteness. ``inverse_derivs`` is the optimiser's hot path
and sets no error state: the fitter runs under ``np.errstate(all="ignore")``
(``glmmdiag.fit.engine.fit_design``).
"""
from __future__ import annotations

import numpy as np
from scipy import special
from glmmdiag.errors import GlmmdiagError

__all__ = ["Link", "get_link", "LINKS"]

_EPS = np.finfo(float).eps


class Link:
    """A link function. ``inverse_derivs(eta)`` returns (mu, mu', mu'', mu''')."""

    name: str = ""

    def link(self, mu):
        raise NotImplementedError

    def inverse(self, eta):
        raise NotImplementedError

    def inverse_derivs(self, eta):
        raise NotImplementedError

    def mu_eta(self, eta):
        return self.inverse_derivs(eta)[1]

    def __eq__(self, other):
        return isinstance(other, Link) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return f"{self.name}"


class Identity(Link):
    name = "identity"

    def link(self, mu):
        return np.asarray(mu, float)

    def inverse(self, eta):
        return np.asarray(eta, float)

    def inverse_derivs(self, eta):
        one = np.ones_like(eta)
        zero = np.zeros_like(eta)
        return eta, one, zero, zero


class Log(Link):
    name = "log"

    def link(self, mu):
        return np.log(mu)

    def inverse(self, eta):
        with np.errstate(over="ignore"):  # exp(eta > 709) = inf: the mean's true limit; callers check
            return np.exp(eta)

    def inverse_derivs(self, eta):
        mu = np.exp(eta)
        return mu, mu, mu, mu


class Logit(Link):
    name = "logit"

    def link(self, mu):
        mu = np.asarray(mu, float)
        return np.log(mu) - np.log1p(-mu)

    def inverse(self, eta):
        return special.expit(eta)  # 1 / (1 + exp(-eta)) without overflow for eta < -709

    def inverse_derivs(self, eta):
        mu = 1.0 / (1.0 + np.exp(-eta))
        d1 = mu * (1.0 - mu)
        d2 = d1 * (1.0 - 2.0 * mu)
        d3 = d1 * (1.0 - 6.0 * mu * (1.0 - mu))
        return mu, d1, d2, d3


class Probit(Link):
    name = "probit"

    def link(self, mu):
        return special.ndtri(mu)

    def inverse(self, eta):
        return special.ndtr(eta)

    def inverse_derivs(self, eta):
        mu = special.ndtr(eta)
        phi = np.exp(-0.5 * eta * eta) / np.sqrt(2 * np.pi)
        return mu, phi, -eta * phi, (eta * eta - 1.0) * phi


class Cloglog(Link):
    name = "cloglog"

    def link(self, mu):
        return np.log(-np.log1p(-np.asarray(mu, float)))

    def inverse(self, eta):
        with np.errstate(over="ignore"):  # exp(eta) = inf gives mu = 1, the true limit
            return -np.expm1(-np.exp(eta))

    def inverse_derivs(self, eta):
        e = np.exp(eta)
        mu = -np.expm1(-e)
        d1 = np.exp(eta - e)
        d2 = d1 * (1.0 - e)
        d3 = d1 * ((1.0 - e) ** 2 - e)
        return mu, d1, d2, d3


class Inverse(Link):
    name = "inverse"

    def link(self, mu):
        return 1.0 / np.asarray(mu, float)

    def inverse(self, eta):
        with np.errstate(divide="ignore"):  # eta = 0: an infinite mean, which callers check
            return 1.0 / eta

    def inverse_derivs(self, eta):
        r = 1.0 / eta
        r2 = r * r
        return r, -r2, 2.0 * r2 * r, -6.0 * r2 * r2


class Sqrt(Link):
    name = "sqrt"

    def link(self, mu):
        return np.sqrt(mu)

    def inverse(self, eta):
        return eta * eta

    def inverse_derivs(self, eta):
        return eta * eta, 2.0 * eta, np.full_like(eta, 2.0), np.zeros_like(eta)


LINKS: dict[str, type[Link]] = {
    cls.name: cls for cls in (Identity, Log, Logit, Probit, Cloglog, Inverse, Sqrt)
}


def get_link(name: str | Link) -> Link:
    if isinstance(name, Link):
        return name
    try:
        return LINKS[str(name).lower()]()
    except KeyError:
        raise GlmmdiagError(f"unknown link {name!r}; choose one of {sorted(LINKS)}") from None
