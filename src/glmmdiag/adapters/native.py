"""The glmmdiag fit (``GLMMResults``) seen through the ``SimulableModel`` protocol: ``GLMMAdapter``."""
from __future__ import annotations

import warnings

import numpy as np

from glmmdiag.errors import GlmmdiagError

__all__ = ["GLMMAdapter"]


class GLMMAdapter:
    """A glmmdiag ``GLMMResults`` seen through the protocol (binomial: successes and trials)."""

    def __init__(self, fit):
        self.fit = fit
        fam = fit.family
        self.family_name = fam.name
        self.nobs = int(fit.nobs)
        self.integer_response = bool(fam.discrete)
        self._binomial = fam.weight_role == "trials"  # binomial, betabinomial: successes out of trials

    def observed(self):
        return np.asarray(self.fit.design.y, float)

    def trials(self):
        if self._binomial:
            return np.asarray(self.fit.design.w, float)
        return np.ones(self.nobs)

    def fitted(self):
        return np.asarray(self.fit.predict(type="response", re_form="~0"), float)

    def conditional_fitted(self):
        return np.asarray(self.fit.predict(type="response"), float)

    def simulate(self, n, rng, conditional=True):
        """(nobs, n) responses (see ``_GLMMSampler``; gaussian models use ``fit.simulate``)."""
        sampler = self._sampler(bool(conditional))
        if sampler is None:
            with warnings.catch_warnings():
                # the fitter warns about likelihood weights on every call; simulate_residuals warns once
                warnings.filterwarnings("ignore", message="the model has prior weights")
                return np.asarray(self.fit.simulate(int(n), seed=rng, conditional=bool(conditional)), float)
        return sampler.simulate(n, rng, conditional)

    def worker_view(self, conditional: bool):
        """What a parallel worker needs to simulate: the light sampler (means or linear predictor
        and random-effect layout, a few arrays of length nobs) instead of the whole fit."""
        sampler = self._sampler(bool(conditional))
        return self if sampler is None else sampler

    def _sampler(self, conditional: bool):
        key = "_sampler_c" if conditional else "_sampler_u"
        if key not in self.__dict__:
            self.__dict__[key] = _GLMMSampler.from_fit(self.fit, conditional)
        return self.__dict__[key]

    def simulation_warnings(self) -> list[str]:
        fam, w = self.fit.family, np.asarray(self.fit.design.w, float)
        if getattr(fam, "weight_role", "") == "likelihood" and not np.all(w == 1.0):
            return [
                f"the model has prior weights, which the {fam.name} family uses as likelihood weights: "
                f"simulated responses ignore them, so the scaled residuals may be miscalibrated"
            ]
        return []

    def refit(self, y):
        return GLMMAdapter(self.fit.refit(y))

    @property
    def converged(self) -> bool:
        return bool(getattr(self.fit, "converged", True))

    @property
    def fixef(self) -> np.ndarray:
        return np.asarray(self.fit.fixef, float)

    @property
    def df_resid(self) -> float:
        return float(self.fit.df_resid)

    def pearson_residuals(self):
        fit, fam = self.fit, self.fit.family
        y = self.observed()
        mu = self.conditional_fitted()
        w = np.asarray(fit.design.w, float)
        if getattr(fam, "composite", False):
            if self._binomial and not np.all(w == 1.0):
                raise GlmmdiagError("Pearson residuals of a zero-inflated binomial with trials are not supported yet")
            v = np.asarray(fam.variance(fit.predict(type="conditional"), fit.psi), float)
            return (y - mu) * (np.sqrt(w) if fam.name == "gaussian" else 1.0) / np.sqrt(np.maximum(v, 1e-300))
        if self._binomial:
            return (y - w * mu) / np.sqrt(np.maximum(w * mu * (1 - mu), 1e-300))
        psi = fit.psi if fam.n_psi else None
        v = np.asarray(fam.variance(mu, psi), float)
        if fam.name == "gaussian":
            return (y - mu) * np.sqrt(w) / np.sqrt(v)
        return (y - mu) / np.sqrt(np.maximum(v, 1e-300))

    def edf(self):
        """(trace H, trace H^2) of the penalised weighted least-squares hat matrix at the optimum.

        H = C M^-1 C'W with C = [Z Lambda, X], M = C'WC + blockdiag(I_q, 0) and W the working
        weights (negative second derivative of the log density in eta) at the conditional modes.
        trace H = p + q - tr(M^-1)_uu and trace H^2 = p + q - 2 tr(M^-1)_uu + ||(M^-1)_uu||_F^2.
        None when the random-effects dimension is too large for a dense inverse (q > 4000).
        """
        return _glmm_edf(self.fit)


_POISSON_FAST_MAX = 1e18  # numpy's Poisson sampler refuses means above ~9.2e18 (and inf, NaN)


class _GLMMSampler:
    """Draws responses of a glmmdiag fit from a few arrays (picklable, light to ship to workers).

    Means are made here: conditional ones once (the fitter recomputes the linear predictor and
    repeats it on every call), unconditional ones with new random effects b = T u, u ~ N(0, I) per
    simulation, as the fitter's ``simulate``. Draws are generated as (n, nobs) and returned
    transposed (a Fortran-ordered (nobs, n) view, each simulation contiguous); Bernoulli rows by
    ``rng.random() < p`` (~10x faster than numpy's binomial), Poisson by ``rng.poisson``, other
    families by the family's own ``sample``. Integer families give integer arrays.
    Zero-inflated, hurdle and dispersion models (``CompositeFamily``) draw from the base family
    with per-row psi: first the zero process (a zero with probability pi), then base draws
    (hurdles: zero-truncated, ``submodels.truncated_draws``) only where it gave none.
    Non-composite gaussian models use the fit's own ``simulate``.

    ``thread_safe``: ``simulate`` reads these arrays and writes only its own (no shared state, no
    warning filters), so ``simulate.stream`` may draw chunks on several threads at once.
    """

    thread_safe = True

    def __init__(self, family, nobs, w, psi, mu=None, eta_pop=None, terms=None, zero=None, pi=None):
        self.family, self.nobs, self.w, self.psi = family, int(nobs), w, psi
        self.mu, self.eta_pop, self.terms = mu, eta_pop, terms
        # submodels (``CompositeFamily``): ``family`` is the base family, ``psi`` its parameters
        # (a scalar vector, or a (1, nobs) row of per-row values), ``zero`` the zero model
        # ("zi", "hurdle" or None) and ``pi`` (nobs,) its probabilities (None without ziformula)
        self.zero, self.pi = zero, pi
        self.bernoulli = family.name == "binomial" and bool(np.all(w == 1.0))

    @classmethod
    def from_fit(cls, fit, conditional: bool):
        fam = fit.family
        w = np.asarray(fit.design.w, float)
        extra = {}
        if getattr(fam, "composite", False):
            # zero-inflation, hurdles, dispersion models: the base family's draws with per-row psi,
            # then the zero process (as CompositeFamily.sample); weights are trials only for binomial
            bpsi, xi = fam.split(fit.psi)
            base = fam.base
            from glmmdiag.fit.submodels import _expit

            extra = {"zero": fam.zero, "pi": None if xi is None else np.asarray(_expit(xi), float)}
            psi = bpsi
            if base.weight_role != "trials":
                w = np.ones_like(w)
            fam = base
        elif fam.name == "gaussian":
            return None  # the fit's own simulate (its sigma, weights)
        else:
            psi = fit.psi if fam.n_psi else None
        if conditional or not fit.design.terms:
            if extra:  # the base family's conditional mean
                mu = np.asarray(fam.link.inverse(np.asarray(fit.predict(type="link"), float)), float)
            else:
                mu = np.asarray(fit.predict(type="response"), float)
            return cls(fam, fit.nobs, w, psi, mu=mu, **extra)
        try:
            T = fit._thetamap.factors(fit.theta)
            scale = fit.sigma if getattr(fit, "_relative", False) else 1.0
        except AttributeError:  # pragma: no cover - the fitter's private layout changed
            return None
        terms = [(np.asarray(t.refs, np.int64), np.asarray(t.z, float), np.asarray(Tk, float) * scale, t.nlev, t.q)
                 for t, Tk in zip(fit.design.terms, T)]
        eta = np.asarray(fit.predict(type="link", re_form="~0"), float)
        return cls(fam, fit.nobs, w, psi, eta_pop=eta, terms=terms, **extra)

    def _means(self, n, rng, conditional):
        if self.mu is not None:
            return self.mu[None, :]
        eta = np.repeat(self.eta_pop[None, :], n, axis=0)
        for refs, z, Tk, nlev, q in self.terms:
            u = rng.standard_normal((n, nlev, q))
            b = np.einsum("ab,slb->sla", Tk, u)  # (n, nlev, q)
            if q == 1:
                eta += z[None, :, 0] * b[:, refs, 0]
            else:
                eta += np.einsum("ia,sia->si", z, b[:, refs, :])
        return self.family.link.inverse(eta)

    def simulate(self, n, rng, conditional=True):
        n = int(n)
        mu = self._means(n, rng, conditional)
        if self.zero is None and self.pi is None:
            return self._base_draws(n, mu, rng)
        shape = (n, self.nobs)
        if self.pi is None:  # zero truncation only: every value is a truncated draw
            return self._draws_at(None, shape, mu, rng).reshape(shape).T
        # the zero process first (a zero with probability pi), then the base (zero-inflation) or
        # zero-truncated base (hurdle) draws only where it gave no zero: the same distribution
        # as drawing everywhere and replacing, with 1 - pi of the draws
        zero = rng.random(shape) < self.pi
        if self.zero is None and self.family.name == "poisson" and np.all(mu <= _POISSON_FAST_MAX):
            # numpy's Poisson sampler draws nothing for a zero mean: the same stream as drawing
            # only where the zero process gave no zero, without gathering and scattering positions
            return rng.poisson(np.where(zero, 0.0, np.maximum(mu, 0.0))).T
        idx = np.flatnonzero(~zero)
        d = self._draws_at(idx, shape, mu, rng)
        y = np.zeros(n * self.nobs, d.dtype)
        y[idx] = d
        return y.reshape(shape).T

    def _draws_at(self, idx, shape, mu, rng):
        """Base (zero-inflation) or zero-truncated base (hurdle) draws at the flat positions
        ``idx`` of the (n, nobs) layout (all positions when None), as a 1-D array."""
        nobs = self.nobs
        cols = np.tile(np.arange(nobs), shape[0]) if idx is None else idx % nobs
        if mu.shape[0] == 1:
            mu_k = mu[0][cols]
        else:
            mu_k = mu.reshape(-1) if idx is None else mu.reshape(-1)[idx]
        psi = self.psi
        if psi is not None and np.ndim(psi) == 2:  # per-row psi (a dispersion model)
            psi = psi[:, cols]
        fam = self.family
        if self.zero == "hurdle":
            from glmmdiag.fit.families import simulable_means
            from glmmdiag.fit.submodels import truncated_draws

            return truncated_draws(fam, simulable_means(mu_k, fam.name), psi, rng)
        if self.bernoulli:
            return (rng.random(mu_k.shape) < mu_k).astype(np.int8)
        if fam.name == "poisson" and np.all(mu_k <= _POISSON_FAST_MAX):
            return rng.poisson(np.maximum(mu_k, 0.0))
        return np.asarray(fam.sample(mu_k, self.w[cols], rng, psi), float).reshape(-1)

    def _base_draws(self, n, mu, rng):
        shape = (n, self.nobs)
        fam = self.family
        if self.bernoulli:
            return (rng.random(shape) < mu).astype(np.int8).T
        if fam.name == "poisson" and np.all(mu <= _POISSON_FAST_MAX):  # else the family's checked sampler
            mu = np.maximum(mu, 0.0)
            # one row of means: a zero-stride broadcast (no copy; the same stream as drawing the
            # simulations one by one, 3x faster)
            return rng.poisson(np.broadcast_to(mu, shape)).T
        w = np.broadcast_to(self.w[None, :], shape)
        return np.asarray(fam.sample(np.broadcast_to(mu, shape), w, rng, self.psi)).reshape(shape).T


def _glmm_edf(fit):
    import scipy.sparse as sp

    d, fam = fit.design, fit.family
    X = np.asarray(d.X, float)
    n, p = X.shape
    y, w = np.asarray(d.y, float), np.asarray(d.w, float)
    eta = np.asarray(fit.predict(type="link"), float)
    psi = fit.psi if fam.n_psi else None
    Wd = np.asarray(fam.eta_derivs(y, eta, w, psi)[2], float)
    Wd = np.maximum(Wd, 0.0)
    if not d.terms:
        return float(p), float(p)
    try:
        factors = fit._thetamap.factors(fit.theta)
    except AttributeError:  # pragma: no cover - the fitter's private layout changed
        return None
    scale = fit.sigma if getattr(fit, "_relative", False) else 1.0
    q = sum(t.nlev * t.q for t in d.terms)
    if q > 4000:
        return None
    blocks, off = [], 0
    for t, T in zip(d.terms, factors):
        zl = np.asarray(t.z, float) @ (np.asarray(T) * scale)  # row i: z_i T_k
        cols = off + np.asarray(t.refs)[:, None] * t.q + np.arange(t.q)[None, :]
        rows = np.repeat(np.arange(n), t.q)
        blocks.append(sp.csr_matrix((zl.reshape(-1), (rows, cols.reshape(-1))), shape=(n, q)))
        off += t.nlev * t.q
    ZL = blocks[0]
    for b in blocks[1:]:
        ZL = ZL + b
    C = sp.hstack([ZL, sp.csr_matrix(X)]).tocsr()
    CW = C.multiply(Wd[:, None]).tocsr()
    M = np.asarray((C.T @ CW).todense())
    M[np.arange(q), np.arange(q)] += 1.0
    try:
        Minv = np.linalg.inv(M)
    except np.linalg.LinAlgError:
        return None
    Muu = Minv[:q, :q]
    t1 = float(np.trace(Muu))
    t2 = float(np.sum(Muu * Muu))
    return float(p + q - t1), float(p + q - 2 * t1 + t2)
