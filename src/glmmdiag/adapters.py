"""Adapters from concrete model objects to the ``SimulableModel`` protocol (protocol.py).

This is the only module of the diagnostics that names concrete model classes:

* ``GLMMAdapter`` wraps a glmmdiag fit (``glmmdiag.glmm(...)``, class ``GLMMResults``);
* ``SimulationsAdapter`` (made by ``from_simulations``) wraps a user's own observed response,
  simulation matrix and fitted values -- DHARMa's ``createDHARMa``: a PyMC posterior predictive, a
  scikit-learn model with a bootstrap, anything that can simulate;
* ``StatsmodelsGLMAdapter`` wraps ``statsmodels`` GLM results when statsmodels is installed (it is
  not a dependency: nothing here imports it).

``as_simulable(model)`` picks the right one.
"""
from __future__ import annotations

import warnings

import numpy as np

from glmmdiag.errors import GlmmdiagError
from glmmdiag.protocol import missing_members

__all__ = [
    "as_simulable",
    "from_simulations",
    "GLMMAdapter",
    "SimulationsAdapter",
    "StatsmodelsGLMAdapter",
]


def _vector(x, name: str, n: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise GlmmdiagError(f"{name} must be one-dimensional; got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise GlmmdiagError(f"{name} has {a.shape[0]} values, expected {n} (one per observation)")
    return a


def _is_integral(a: np.ndarray) -> bool:
    a = np.asarray(a)
    if a.dtype.kind in "iub":
        return True
    finite = a[np.isfinite(a)]
    return bool(np.all(finite == np.round(finite)))


# ====================================================================== user simulations
class SimulationsAdapter:
    """A model given by its simulations (DHARMa's ``createDHARMa``); made by ``from_simulations``."""

    def __init__(self, observed, simulated, fitted, integer_response=None, family_name="unknown"):
        y = _vector(observed, "observed")
        n = y.shape[0]
        S = np.asarray(simulated, dtype=float)
        if S.ndim == 1:
            raise GlmmdiagError(
                f"simulated must be a 2-D array of shape (nobs, nsim) = ({n}, nsim); got a 1-D array of "
                f"length {S.shape[0]}"
            )
        if S.ndim != 2:
            raise GlmmdiagError(f"simulated must be 2-D (nobs, nsim); got shape {S.shape}")
        if S.shape[0] != n:
            if S.shape[1] == n:
                raise GlmmdiagError(
                    f"simulated has shape {S.shape} but observed has {n} values: simulations must be "
                    f"(nobs, nsim) with one row per observation; pass simulated.T"
                )
            raise GlmmdiagError(f"simulated has {S.shape[0]} rows but observed has {n} values (one row per observation)")
        if S.shape[1] < 2:
            raise GlmmdiagError(f"at least 2 simulations are needed; simulated has {S.shape[1]} column(s)")
        if not np.all(np.isfinite(y)):
            bad = np.flatnonzero(~np.isfinite(y))
            raise GlmmdiagError(f"observed has {bad.size} missing/non-finite values (first at row {bad[0]})")
        finite = np.isfinite(S)
        if not finite.all():
            rows = np.flatnonzero(~finite.all(axis=1))
            raise GlmmdiagError(
                f"simulated has {int((~finite).sum())} NaN/infinite values in {rows.size} rows (first row "
                f"{rows[0]}): every simulation must be a finite number"
            )
        f = _vector(fitted, "fitted", n)
        if integer_response is None:
            integer_response = _is_integral(y) and _is_integral(S)
        # copies: the caller's arrays stay theirs (writable), and later replays of these
        # simulations cannot change under the residuals computed from them
        self._y = y.copy()
        self._S = S.copy() if np.may_share_memory(S, simulated) else S
        self._S.setflags(write=False)
        self._fitted = f.copy()
        self.nobs = n
        self.integer_response = bool(integer_response)
        self.family_name = family_name
        self.simulate_re = "given"

    @property
    def simulations(self) -> np.ndarray:
        return self._S

    def observed(self):
        return self._y

    def trials(self):
        return np.ones(self.nobs)

    def fitted(self):
        return self._fitted

    def simulate(self, n, rng=None, conditional=True):
        if n > self._S.shape[1]:
            raise GlmmdiagError(f"only {self._S.shape[1]} simulations were given; {n} requested")
        return self._S[:, :n]


def from_simulations(observed, simulated, fitted, integer_response=None) -> SimulationsAdapter:
    """Wrap a user's own simulations for ``simulate_residuals`` (DHARMa's ``createDHARMa``).

    Parameters
    ----------
    observed : (nobs,) array
        The observed response (binomial: successes).
    simulated : (nobs, nsim) array
        nsim >= 2 responses simulated from the fitted model, one row per observation.
    fitted : (nobs,) array
        The model's (population-level) predicted mean, used for the dispersion statistic and plots.
    integer_response : bool, optional
        Whether responses are whole numbers; guessed from the data when omitted.

    ``simulate_residuals(from_simulations(...))`` then uses exactly these columns (its ``n_sim``
    defaults to all of them and cannot exceed them); ``simulate_re`` is recorded as "given".
    """
    return SimulationsAdapter(observed, simulated, fitted, integer_response)


# ====================================================================== glmmdiag fits
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
    """

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


# ====================================================================== statsmodels GLM
def _whole(a: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """Elementwise: is ``a`` a whole number (up to ``tol`` relative to max(1, |a|))?"""
    return np.abs(a - np.round(a)) <= tol * np.maximum(1.0, np.abs(a))


def _first_bad(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    return f"{rows.size} rows, first row {rows[0]}"


def _freq_expansion(model) -> np.ndarray | None:
    """Row index that repeats row i freq_weights[i] times; None without frequency weights."""
    if not getattr(model, "_has_freq_weights", False):
        return None
    fw = np.asarray(model.freq_weights, float)
    if np.all(fw == 1.0):
        return None
    if np.any(fw < 0) or not np.all(_whole(fw, 1e-12)):
        raise GlmmdiagError(
            f"freq_weights must be whole numbers >= 0 (each row counts that many times) to simulate "
            f"residuals ({_first_bad((fw < 0) | ~_whole(fw, 1e-12))}: {fw[(fw < 0) | ~_whole(fw, 1e-12)][0]!r}); "
            f"for precision weights use var_weights, or simulate yourself and use from_simulations(...)"
        )
    return np.repeat(np.arange(fw.size), np.round(fw).astype(np.int64))


class StatsmodelsGLMAdapter:
    """statsmodels ``GLMResults`` (Poisson, Binomial, Gaussian, Gamma, NegativeBinomial families).

    What is honoured, and how (row i has prior weight ``w_i = var_weights[i]``, mean ``mu_i`` from
    ``results.fittedvalues``, which includes ``offset`` and ``exposure``):

    * Binomial: success counts ``k_i`` out of ``t_i`` trials are simulated as Binomial(t_i, mu_i),
      with ``t_i`` the two-column response's successes + failures, or ``var_weights`` for a
      proportion response (the R idiom ``weights = trials``). ``k_i = y_i t_i`` must be whole
      numbers, otherwise a ``GlmmdiagError`` (a proportion without trials cannot be simulated). A
      two-column response together with var_weights is refused.
    * Gaussian and Gamma: the exponential-dispersion model with variance ``scale V(mu_i) / w_i``:
      Normal(mu_i, scale / w_i); Gamma with shape ``w_i / scale`` and mean ``mu_i``.
    * Poisson: Poisson(w_i mu_i) / w_i (mean mu_i, variance mu_i / w_i: a count over w_i units);
      ``y_i w_i`` must be whole numbers.
    * NegativeBinomial: only without var_weights (no distribution has that weighted variance).
    * ``freq_weights`` (whole numbers): row i stands for ``freq_weights[i]`` identical
      observations, so the data are expanded: row i is repeated ``freq_weights[i]`` times, in
      order, and every copy gets its own simulations. The residuals then have
      ``sum(freq_weights)`` rows (``adapter.row_index`` maps them back to the model's rows).
      Non-integer frequency weights are refused.

    ``simulate`` ignores ``conditional`` (a GLM has no random effects).
    """

    _FAMILIES = {
        "Poisson": "poisson",
        "Binomial": "binomial",
        "Gaussian": "gaussian",
        "Gamma": "gamma",
        "NegativeBinomial": "nbinom2",
    }

    def __init__(self, results):
        model = results.model
        fname = type(model.family).__name__
        if fname not in self._FAMILIES:
            raise TypeError(
                f"statsmodels GLM family {fname} is not supported for simulation (supported: "
                f"{', '.join(self._FAMILIES)}); simulate yourself and use from_simulations(...)"
            )
        self.results = results
        self.family_name = self._FAMILIES[fname]
        self._fname = fname
        rows = _freq_expansion(model)
        n_model = np.asarray(model.endog).shape[0]
        self.row_index = np.arange(n_model) if rows is None else rows
        endog = np.asarray(model.endog, float)
        vw = np.asarray(getattr(model, "var_weights", np.ones(n_model)), float) * np.ones(n_model)
        mu = np.asarray(results.fittedvalues, float)
        nt = np.asarray(getattr(model, "n_trials", np.ones(n_model)), float) * np.ones(n_model)
        self._two_column = self.family_name == "binomial" and bool(np.any(nt != 1.0))
        y, trials, w = self._response(endog, vw, nt)
        idx = self.row_index
        self._y, self._trials, self._w, self._mu = y[idx], trials[idx], w[idx], mu[idx]
        self.nobs = int(idx.size)
        self.integer_response = self.family_name == "binomial" or (
            self.family_name in ("poisson", "nbinom2") and bool(np.all(self._w == 1.0))
        )

    def _response(self, endog, vw, nt):
        """(observed response, binomial trials, variance weights) per model row, validated."""
        name = self.family_name
        if np.any(~np.isfinite(vw)) or np.any(vw <= 0):
            bad = ~np.isfinite(vw) | (vw <= 0)
            raise GlmmdiagError(
                f"var_weights must be finite and > 0 to simulate ({_first_bad(bad)}: {vw[bad][0]!r}); "
                f"drop the rows with weight 0 before fitting"
            )
        ones = np.ones_like(endog)
        if name == "binomial":
            if self._two_column and np.any(vw != 1.0):
                raise GlmmdiagError(
                    "a binomial GLM with a (successes, failures) response and var_weights cannot be simulated: "
                    "give the trials either as the two-column response or as var_weights of a proportion"
                )
            trials = nt * vw
            if not np.all(_whole(trials)):
                raise GlmmdiagError(
                    f"binomial var_weights must be whole numbers of trials to simulate success counts "
                    f"({_first_bad(~_whole(trials))}: {trials[~_whole(trials)][0]!r})"
                )
            trials = np.round(trials)
            counts = endog * trials
            if not np.all(_whole(counts)):
                raise GlmmdiagError(
                    f"the binomial response times its trials is not a whole number of successes "
                    f"({_first_bad(~_whole(counts))}: y = {endog[~_whole(counts)][0]!r}, trials = "
                    f"{trials[~_whole(counts)][0]!r}); a proportion response needs var_weights = trials"
                )
            return np.round(counts), trials, ones
        if name == "poisson" and np.any(vw != 1.0):
            counts = endog * vw
            if not np.all(_whole(counts)):
                raise GlmmdiagError(
                    f"a Poisson GLM with var_weights is simulated as Poisson(w mu) / w, which needs y * w to "
                    f"be whole numbers ({_first_bad(~_whole(counts))}: y = {endog[~_whole(counts)][0]!r}, "
                    f"w = {vw[~_whole(counts)][0]!r}); simulate yourself and use from_simulations(...)"
                )
            return np.round(counts) / vw, ones, vw  # on the lattice of the simulations: ties are exact
        if name == "nbinom2" and np.any(vw != 1.0):
            raise GlmmdiagError(
                "a NegativeBinomial GLM with var_weights cannot be simulated (no distribution has variance "
                "(mu + alpha mu^2) / w); refit without var_weights or simulate yourself and use from_simulations(...)"
            )
        return endog, ones, vw

    def observed(self):
        return self._y

    def trials(self):
        return self._trials

    def fitted(self):
        return self._mu

    conditional_fitted = fitted

    def simulate(self, n, rng, conditional=True):
        """(nobs, n) responses from the fitted exponential-dispersion model (see the class notes)."""
        n = int(n)
        mu = np.repeat(self._mu[:, None], n, axis=1)
        w = self._w[:, None]
        name = self.family_name
        if name == "poisson":
            if np.all(self._w == 1.0):
                return rng.poisson(mu).astype(float)
            return rng.poisson(mu * w) / w
        if name == "binomial":
            return rng.binomial(self._trials.astype(np.int64)[:, None], np.clip(mu, 0, 1)).astype(float)
        scale = float(self.results.scale)
        if name == "gaussian":
            return mu + rng.standard_normal(mu.shape) * np.sqrt(scale / w)
        if name == "gamma":
            k = w / scale
            return rng.gamma(k, mu / k)
        alpha = float(self.results.model.family.alpha)  # NB2: var = mu + alpha mu^2
        lam = rng.gamma(1.0 / alpha, mu * alpha)
        return rng.poisson(lam).astype(float)

    def refit(self, y):
        """The same GLM (family, exposure, offset, weights) refitted to ``y`` (one value per expanded row)."""
        m = self.results.model
        y = np.asarray(y, float)
        idx = self.row_index
        kw = {}
        if getattr(m, "offset", None) is not None:
            kw["offset"] = np.asarray(m.offset)[idx]
        if getattr(m, "exposure", None) is not None:
            kw["exposure"] = np.exp(np.asarray(m.exposure))[idx]  # statsmodels stores log(exposure)
        if self.family_name == "binomial":
            if self._two_column:
                endog = np.column_stack([y, self._trials - y])
            else:
                endog = y / self._trials
                if np.any(self._trials != 1.0):
                    kw["var_weights"] = self._trials
        else:
            endog = y
            if np.any(self._w != 1.0):
                kw["var_weights"] = self._w
        new = type(m)(endog, np.asarray(m.exog)[idx], family=m.family, **kw)
        return StatsmodelsGLMAdapter(new.fit(start_params=self.results.params))

    @property
    def converged(self) -> bool:
        return bool(getattr(self.results, "converged", True))

    @property
    def fixef(self):
        return np.asarray(self.results.params, float)

    @property
    def df_resid(self) -> float:
        return float(self.results.df_resid)

    def pearson_residuals(self):
        return np.asarray(self.results.resid_pearson, float)[self.row_index]

    def edf(self):
        p = float(self.results.df_model + 1)
        return p, p


# ====================================================================== dispatch
def as_simulable(model):
    """The protocol view of ``model``; a clear TypeError for objects that cannot simulate."""
    if not missing_members(model):
        return model
    cls = type(model)
    if cls.__name__ == "GLMMResults" and cls.__module__.startswith("glmmdiag."):
        return GLMMAdapter(model)
    if cls.__module__.startswith("statsmodels.") and hasattr(model, "model") and hasattr(model, "fittedvalues"):
        mname = type(model.model).__name__
        if mname == "GLM":
            return StatsmodelsGLMAdapter(model)
        raise TypeError(
            f"statsmodels {mname} results cannot simulate new responses here (GLM results are supported); "
            f"simulate them yourself and use glmmdiag.from_simulations(observed, simulated, fitted)"
        )
    missing = missing_members(model)
    raise TypeError(
        f"cannot simulate from a {cls.__module__}.{cls.__name__}: it is not a glmmdiag fit, a statsmodels "
        f"GLM result, or an object with the SimulableModel members (missing: {', '.join(missing)}); "
        f"simulate responses yourself and wrap them with glmmdiag.from_simulations(observed, simulated, fitted)"
    )
