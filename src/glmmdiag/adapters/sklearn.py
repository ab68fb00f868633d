"""scikit-learn generalized linear models: ``PoissonRegressor``, ``GammaRegressor``,
``TweedieRegressor``, binary ``LogisticRegression``, and a ``Pipeline`` ending in one of them.

scikit-learn estimators do not keep the data they were fitted on, so they are adapted with
``from_sklearn(estimator, X, y, sample_weight=None)``; ``simulate_residuals(estimator)`` alone
raises a TypeError that says so.
"""
from __future__ import annotations

import numpy as np

from glmmdiag.adapters._common import _first_bad, _vector, _whole
from glmmdiag.adapters._sampling import dispersion_family_draws
from glmmdiag.errors import GlmmdiagError

__all__ = ["SklearnGLMAdapter", "from_sklearn"]

_REGRESSORS = ("PoissonRegressor", "GammaRegressor", "TweedieRegressor")


def _final_estimator(estimator):
    """(final estimator, name of its step or None): the last step of a Pipeline, or the estimator."""
    steps = getattr(estimator, "steps", None)
    if steps:
        name, final = steps[-1]
        return final, name
    return estimator, None


def _kind_of(final) -> tuple[str, float | None]:
    """("poisson" | "gamma" | "normal" | "tweedie" | "invgauss" | "bernoulli", variance power)."""
    names = {c.__name__ for c in type(final).__mro__}
    if "LogisticRegression" in names:
        return "bernoulli", None
    if "PoissonRegressor" in names:
        return "poisson", 1.0
    if "GammaRegressor" in names:
        return "gamma", 2.0
    if "TweedieRegressor" in names:
        p = float(final.power)
        kinds = {0.0: "normal", 1.0: "poisson", 2.0: "gamma", 3.0: "invgauss"}
        if p in kinds:
            return kinds[p], p
        if 1.0 < p < 2.0:
            return "tweedie", p
        raise GlmmdiagError(
            f"a TweedieRegressor with power {p} has no distribution to simulate from here (supported: power "
            f"0, 1, between 1 and 2, 2, 3)"
        )
    raise TypeError(
        f"from_sklearn supports PoissonRegressor, GammaRegressor, TweedieRegressor and binary "
        f"LogisticRegression (or a Pipeline ending in one); got a {type(final).__name__}"
    )


def pearson_dispersion(y, mu, w, power: float, n_params: int) -> float:
    """phi = sum_i w_i (y_i - mu_i)^2 / mu_i^power / (n - p), statsmodels' default (Pearson) scale.

    Parameters
    ----------
    y, mu, w : (n,) arrays
        Response, fitted mean and prior (sample) weights.
    power : float
        The variance power: V(mu) = mu^power (0: Gaussian, 2: Gamma, 3: inverse Gaussian).
    n_params : int
        Estimated mean parameters p (coefficients plus the intercept).
    """
    n = y.size
    if n <= n_params:
        raise GlmmdiagError(f"cannot estimate the dispersion: {n} observations for {n_params} parameters")
    v = np.ones_like(mu) if power == 0.0 else mu ** power
    return float(np.sum(w * (y - mu) ** 2 / v) / (n - n_params))


class SklearnGLMAdapter:
    """A fitted scikit-learn GLM with the data it was fitted on; made by ``from_sklearn``.

    Row i has the estimator's prediction ``mu_i`` (``predict(X)``; ``predict_proba(X)[:, 1]`` for
    ``LogisticRegression``) and sample weight ``w_i``, used as a prior (precision) weight exactly as
    scikit-learn's GLM objective uses it (``sum_i w_i deviance_i``), i.e. as statsmodels'
    ``var_weights``. Responses are drawn from:

    * ``PoissonRegressor`` and ``TweedieRegressor(power=1)``: Poisson(mu_i); with weights
      Poisson(w_i mu_i) / w_i (variance mu_i / w_i), which needs ``y_i w_i`` to be whole numbers;
    * ``GammaRegressor``, ``TweedieRegressor(power=2)``: Gamma with mean mu_i, variance
      phi mu_i^2 / w_i;
    * ``TweedieRegressor(power=0)``: Normal(mu_i, phi / w_i); ``power`` in (1, 2): the compound
      Poisson-gamma with variance phi mu_i^p / w_i; ``power=3``: inverse Gaussian with variance
      phi mu_i^3 / w_i; other powers are refused;
    * binary ``LogisticRegression``: Bernoulli(p_i) of the second class (``classes_[1]``);
      sample weights are refused (they could be trials or frequencies).

    scikit-learn does not estimate the dispersion phi. It is estimated here as statsmodels does by
    default, by the Pearson statistic
    ``phi = sum_i w_i (y_i - mu_i)^2 / V(mu_i) / (n - p)``, V(mu) = mu^power, with p the number of
    coefficients plus the intercept. The estimates are the penalised ones scikit-learn returns
    (``alpha`` > 0 shrinks them; the default ``alpha=1`` of the GLM regressors shrinks a lot, and
    the diagnostics will show it): fit with ``alpha=0`` for the maximum-likelihood model.
    """

    def __init__(self, estimator, X, y, sample_weight=None):
        final, step = _final_estimator(estimator)
        kind, power = _kind_of(final)
        if not hasattr(final, "coef_"):
            raise GlmmdiagError(f"the {type(final).__name__} is not fitted: call fit(X, y) first")
        self.estimator, self._final, self._step, self._X = estimator, final, step, X
        self._kind, self._power = kind, power
        if kind == "bernoulli":
            y_obs, mu = self._binary(final, X, y)
        else:
            y_obs = _vector(y, "y")
            mu = _vector(estimator.predict(X), "predict(X)", y_obs.size)
        n = y_obs.size
        w = np.ones(n) if sample_weight is None else _vector(sample_weight, "sample_weight", n)
        if np.any(~np.isfinite(w)) or np.any(w <= 0):
            bad = ~np.isfinite(w) | (w <= 0)
            raise GlmmdiagError(f"sample_weight must be finite and > 0 to simulate ({_first_bad(bad)})")
        if kind == "bernoulli" and np.any(w != 1.0):
            raise GlmmdiagError(
                "a LogisticRegression with sample_weight cannot be simulated: the weights could be trials or "
                "frequencies; expand frequency weights into rows, or fit a binomial GLM with trials"
            )
        if kind == "poisson" and np.any(w != 1.0) and not np.all(_whole(y_obs * w)):
            bad = ~_whole(y_obs * w)
            raise GlmmdiagError(
                f"a Poisson model with sample_weight is simulated as Poisson(w mu) / w, which needs y * w to be "
                f"whole numbers ({_first_bad(bad)})"
            )
        self._sample_weight = sample_weight
        self._y, self._mu, self._w = y_obs, mu, w
        self.nobs = int(n)
        self.n_params = int(np.asarray(final.coef_).size + (1 if getattr(final, "fit_intercept", False) else 0))
        needs_phi = kind in ("gamma", "normal", "tweedie", "invgauss")
        self.dispersion = pearson_dispersion(y_obs, mu, w, power, self.n_params) if needs_phi else 1.0
        self.family_name = {"bernoulli": "binomial", "normal": "gaussian", "invgauss": "inverse.gaussian"}.get(kind, kind)
        self.integer_response = kind == "bernoulli" or (kind == "poisson" and bool(np.all(w == 1.0)))

    @staticmethod
    def _binary(final, X, y):
        classes = np.asarray(final.classes_)
        if classes.size != 2:
            raise GlmmdiagError(f"only binary LogisticRegression can be simulated; this one has {classes.size} classes")
        y_raw = np.asarray(y).reshape(-1)
        known = np.isin(y_raw, classes)
        if not known.all():
            raise GlmmdiagError(f"y has values that are not the estimator's classes {list(classes)} ({_first_bad(~known)})")
        return (y_raw == classes[1]).astype(float), None

    def observed(self):
        return self._y

    def trials(self):
        return np.ones(self.nobs)

    def fitted(self):
        if self._mu is None:  # LogisticRegression: P(classes_[1]) (computed once)
            proba = np.asarray(self.estimator.predict_proba(self._X), float)
            self._mu = _vector(proba[:, 1], "predict_proba(X)[:, 1]", self.nobs)
        return self._mu

    conditional_fitted = fitted

    def simulate(self, n, rng, conditional=True):
        """(nobs, n) responses from the fitted distribution (see the class notes)."""
        n, mu, w, kind = int(n), self.fitted(), self._w, self._kind
        if kind == "bernoulli":
            return (rng.random((n, self.nobs)) < mu).astype(np.int8).T
        if kind == "poisson":
            if np.all(w == 1.0):
                return rng.poisson(np.broadcast_to(mu, (n, self.nobs))).T
            return rng.poisson(np.broadcast_to(mu * w, (n, self.nobs))).T / w[:, None]
        return dispersion_family_draws(kind, mu, self.dispersion / w, n, rng, self._power)

    def refit(self, y):
        """A clone of the estimator (or pipeline) fitted to ``y`` with the same X and sample weights."""
        from sklearn.base import clone

        y = np.asarray(y, float)
        if self._kind == "bernoulli":
            y = np.asarray(self._final.classes_)[np.round(y).astype(np.int64)]
        est = clone(self.estimator)
        kw = {}
        if self._sample_weight is not None:
            kw[f"{self._step}__sample_weight" if self._step else "sample_weight"] = self._sample_weight
        est.fit(self._X, y, **kw)
        return SklearnGLMAdapter(est, self._X, y, self._sample_weight)

    @property
    def fixef(self) -> np.ndarray:
        f = self._final
        coef = np.asarray(f.coef_, float).reshape(-1)
        return np.r_[np.asarray(f.intercept_, float).reshape(-1), coef] if getattr(f, "fit_intercept", False) else coef

    @property
    def df_resid(self) -> float:
        return float(self.nobs - self.n_params)

    def pearson_residuals(self):
        """(y - mu) / sqrt(phi V(mu) / w), phi = 1 for Poisson and Bernoulli."""
        mu, w = self.fitted(), self._w
        if self._kind == "bernoulli":
            v = mu * (1 - mu)
        else:
            v = self.dispersion * (np.ones_like(mu) if self._power == 0.0 else mu ** self._power) / w
        return (self._y - mu) / np.sqrt(np.maximum(v, 1e-300))

    def edf(self):
        return float(self.n_params), float(self.n_params)


def from_sklearn(estimator, X, y, sample_weight=None) -> SklearnGLMAdapter:
    """Diagnose a fitted scikit-learn GLM: ``simulate_residuals(from_sklearn(est, X, y))``.

    Parameters
    ----------
    estimator
        A fitted ``PoissonRegressor``, ``GammaRegressor``, ``TweedieRegressor`` (power 0, 1,
        between 1 and 2, 2 or 3), binary ``LogisticRegression``, or a ``Pipeline`` ending in one.
    X, y
        The data it was fitted on (X as the pipeline takes it).
    sample_weight : (n,) array, optional
        The sample weights it was fitted with (precision weights; see ``SklearnGLMAdapter``).

    Returns
    -------
    SklearnGLMAdapter
        The dispersion scikit-learn does not estimate (Gamma, Tweedie, Gaussian, inverse
        Gaussian) is the Pearson estimate sum w (y - mu)^2 / V(mu) / (n - p), as statsmodels
        computes it by default.
    """
    return SklearnGLMAdapter(estimator, X, y, sample_weight)
