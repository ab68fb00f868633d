"""glmmTMB's gaussian weights: each row's log density multiplied by its weight.

lme4 (and R's ``lm``/``glm``) read gaussian weights as precisions, y_i ~ N(mu_i, sigma^2 / w_i):

    l_i = -log(2 pi)/2 + log(w_i)/2 - log sigma - w_i (y_i - mu_i)^2 / (2 sigma^2).

glmmTMB multiplies the log density of N(mu_i, sigma^2) by w_i (a row of weight 2 counts as two
identical rows):

    l_i = w_i (-log(2 pi)/2 - log sigma - (y_i - mu_i)^2 / (2 sigma^2)).

The two agree in their mu-dependence (so beta^ given the variances is the same weighted least
squares) but not in sigma: here sum_i w_i rows inform sigma, there n. The fitted models differ
unless every w_i = 1. :class:`GaussianFrequencyWeights` is the second reading; it is fitted on
the general (Laplace; exact for gaussian) path with psi = (log sigma,) as the gaussian family.
"""
from __future__ import annotations

import numpy as np

from glmmdiag.errors import GlmmdiagError
from glmmdiag.fit.families import Gaussian

__all__ = ["GaussianFrequencyWeights", "WEIGHT_TYPES"]

WEIGHT_TYPES = ("precision", "frequency")
_LOG_2PI = float(np.log(2.0 * np.pi))


class GaussianFrequencyWeights(Gaussian):
    """Gaussian with glmmTMB's weights (see the module docstring); psi = (log sigma,).

    Derivatives, with a = log sigma, p_i = w_i exp(-2a), r_i = y_i - mu_i:
    l_i = -p_i r_i^2 / 2 - w_i a (+ the constant -w_i log(2 pi)/2), dl/dmu = p r,
    d2l/dmu2 = -p, dl/da = -w + p r^2, d2l/(da dmu) = -2 p r, d2l/da2 = -2 p r^2.
    Draws and the CDF are those of N(mu, sigma^2) (a likelihood weight has no generative meaning).
    """

    weight_role = "likelihood"
    profiled_lmm = False  # never the profiled LMM path, whose sigma^2 / w reading is lme4's

    def __repr__(self):
        return f"gaussian({self.link.name}, weights_type='frequency')"

    def loglik_const(self, y, w):
        return -0.5 * _LOG_2PI * np.asarray(w, float) + np.zeros_like(y)

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        (a,) = self._psi(psi)
        w = np.asarray(w, float)
        p = w * np.exp(-2.0 * a)
        r = y - mu
        return -0.5 * p * r * r - w * a, p * r, -p + 0.0 * r, np.zeros(np.broadcast(y, mu, w).shape)

    def eta_derivs(self, y, eta, w, psi=None, order=3):
        if self.link.name != "identity":
            return super(Gaussian, self).eta_derivs(y, eta, w, psi, order)
        (a,) = self._psi(psi)
        w = np.asarray(w, float)
        p = w * np.exp(-2.0 * a)
        r = y - eta
        shape = np.broadcast(y, eta, w).shape
        return -0.5 * p * r * r - w * a, p * r, np.broadcast_to(p, shape).astype(float), np.zeros(shape)

    def _psi_mu_terms(self, y, mu, w, psi, second=True):
        (a,) = self._psi(psi)
        w = np.asarray(w, float)
        p = w * np.exp(-2.0 * a)
        r = y - mu
        return [-w + p * r * r], [-2.0 * p * r], [2.0 * p + 0.0 * r], [[-2.0 * p * r * r]]

    def psi_start(self, y, mu, w):
        w = np.asarray(w, float)
        r2 = w * (np.asarray(y, float) - mu) ** 2
        return np.array([0.5 * np.log(max(float(np.sum(r2) / max(np.sum(w), 1e-300)), 1e-12))])

    def sample(self, mu, w, rng, psi=None, sigma=None):
        return super().sample(mu, np.ones_like(np.asarray(mu, float)), rng, psi, sigma)

    def cdf(self, y, mu, w, psi=None):
        return super().cdf(y, mu, np.ones_like(np.asarray(y, float)), psi)

    def check_response(self, y, w, name):
        w = np.asarray(w, float)
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            raise GlmmdiagError(
                f"weights must be finite and >= 0 (weights_type='frequency'): {int(bad.sum())} of {len(w)} rows "
                f"are not")
        self._check_finite(np.asarray(y, float), name)


def gaussian_with_weights(family, weights_type: str | None):
    """The family for ``weights_type``: None or "precision" keeps it (lme4's reading for gaussian,
    each family's own otherwise); "frequency" gives glmmTMB's gaussian weights."""
    if weights_type is None or weights_type == "precision":
        if weights_type == "precision" and family.name != "gaussian":
            raise GlmmdiagError(
                f"weights_type applies to the gaussian family; the {family.name} family's weights are "
                f"{family.weight_role} weights")
        return family
    if weights_type not in WEIGHT_TYPES:
        raise GlmmdiagError(f"weights_type must be one of {WEIGHT_TYPES} (or None), got {weights_type!r}")
    if family.name != "gaussian" or getattr(family, "composite", False):
        raise GlmmdiagError(
            f"weights_type='frequency' applies to the gaussian family (the {family.name} family's weights are "
            f"{family.weight_role} weights already)")
    return GaussianFrequencyWeights(family.link)
