"""statsmodels discrete-choice and count models: ``Poisson``, ``NegativeBinomial`` (NB2, NB1,
geometric), ``NegativeBinomialP``, ``GeneralizedPoisson``, ``ZeroInflatedPoisson``,
``ZeroInflatedNegativeBinomialP``, ``ZeroInflatedGeneralizedPoisson``, ``Logit`` and ``Probit``."""
from __future__ import annotations

import warnings

import numpy as np

from glmmdiag.adapters._sampling import draw_frozen
from glmmdiag.adapters._common import convergence_warnings
from glmmdiag.errors import GlmmdiagError

__all__ = ["StatsmodelsDiscreteAdapter"]


def _family_name(model) -> str:
    """A short name of the fitted distribution ("poisson", "nbinom2", "zinbinom1", "binomial", ...)."""
    name = type(model).__name__
    if name in ("Logit", "Probit"):
        return "binomial"
    if name == "Poisson":
        return "poisson"
    if name == "NegativeBinomial":
        return {"nb2": "nbinom2", "nb1": "nbinom1", "geometric": "geometric"}[model.loglike_method]
    if name in ("NegativeBinomialP", "ZeroInflatedNegativeBinomialP"):
        main = model if name == "NegativeBinomialP" else model.model_main
        p = float(main.parameterization)
        base = {1.0: "nbinom1", 2.0: "nbinom2"}.get(p, f"nbinomP(p={p:g})")
        return ("zi" if name.startswith("ZeroInflated") else "") + base
    if name == "GeneralizedPoisson":
        return "genpois"
    if name == "ZeroInflatedPoisson":
        return "zipoisson"
    if name == "ZeroInflatedGeneralizedPoisson":
        return "zigenpois"
    return "unknown"


class StatsmodelsDiscreteAdapter:
    """Results of statsmodels' discrete models, simulated from their ``get_distribution()``.

    The fitted distribution of every row (with the model's ``offset`` and ``exposure``, and for
    the zero-inflated models the fitted zero probability of the inflation model) is the scipy
    frozen distribution ``results.get_distribution()``:

    * ``Poisson``: Poisson(mu_i); ``NegativeBinomial``: NB2 (variance mu + alpha mu^2), NB1
      (variance (1 + alpha) mu) or geometric, by the model's ``loglike_method``;
      ``NegativeBinomialP``: variance mu + alpha mu^p; ``GeneralizedPoisson``: Consul's
      generalized Poisson (variance mu (1 + alpha mu^(p-1))^2);
    * ``ZeroInflatedPoisson``, ``ZeroInflatedNegativeBinomialP``, ``ZeroInflatedGeneralizedPoisson``:
      a zero with the inflation model's probability pi_i, otherwise the count distribution;
    * ``Logit``, ``Probit``: Bernoulli(p_i) (the response must be 0/1).

    scipy's own distributions are drawn with their samplers; the generalized Poisson and
    zero-inflated distributions, which statsmodels gives as a pmf only, by inverting their cdf
    (``glmmdiag.adapters._sampling.discrete_inversion``). ``fitted()`` is the mean
    (``results.predict()``, including the zero inflation). ``simulate`` ignores ``conditional``.
    """

    SUPPORTED = frozenset({
        "Poisson", "NegativeBinomial", "NegativeBinomialP", "GeneralizedPoisson", "ZeroInflatedPoisson",
        "ZeroInflatedNegativeBinomialP", "ZeroInflatedGeneralizedPoisson", "Logit", "Probit",
    })

    def __init__(self, results):
        model = results.model
        name = type(model).__name__
        if name not in self.SUPPORTED:
            raise TypeError(f"statsmodels {name} results are not supported (supported: {', '.join(sorted(self.SUPPORTED))})")
        y = np.asarray(model.endog, float).reshape(-1)
        if not np.all(np.isfinite(y)):
            raise GlmmdiagError("the model's response has missing/non-finite values")
        if name in ("Logit", "Probit") and not np.all((y == 0) | (y == 1)):
            bad = np.flatnonzero((y != 0) & (y != 1))
            raise GlmmdiagError(
                f"a {name} model is simulated as Bernoulli(p), which needs a 0/1 response ({bad.size} rows are "
                f"not 0 or 1, first row {bad[0]}: {y[bad[0]]!r}); for proportions fit a Binomial GLM with "
                f"var_weights = trials"
            )
        if name not in ("Logit", "Probit") and not np.all((y >= 0) & (y == np.round(y))):
            raise GlmmdiagError(f"a {name} model is simulated as counts: the response must be whole numbers >= 0")
        self.results = results
        self._name = name
        self._y = y
        self.nobs = int(y.size)
        self.family_name = _family_name(model)
        self.integer_response = True
        self._mu = np.asarray(results.predict(), float).reshape(-1)

    def observed(self):
        return self._y

    def trials(self):
        return np.ones(self.nobs)

    def fitted(self):
        return self._mu

    conditional_fitted = fitted

    def _frozen(self):
        if "_dist" not in self.__dict__:
            self.__dict__["_dist"] = self.results.get_distribution()
        return self.__dict__["_dist"]

    def simulate(self, n, rng, conditional=True):
        """(nobs, n) draws from ``results.get_distribution()`` (see the class notes)."""
        return draw_frozen(self._frozen(), self.nobs, int(n), rng)

    def refit(self, y):
        """The same model (design, offset, exposure, inflation model, NB form) refitted to ``y``."""
        m = self.results.model
        new = type(m)(np.asarray(y, float), m.exog, **m._get_init_kwds())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels' convergence chatter; see .converged
            fit = new.fit(start_params=np.asarray(self.results.params), disp=0, maxiter=200)
        return StatsmodelsDiscreteAdapter(fit)

    def simulation_warnings(self) -> list[str]:
        return convergence_warnings(self.converged, "statsmodels")

    @property
    def converged(self) -> bool:
        return bool(self.results.mle_retvals.get("converged", True)) if hasattr(self.results, "mle_retvals") else True

    @property
    def fixef(self) -> np.ndarray:
        return np.asarray(self.results.params, float)

    @property
    def df_resid(self) -> float:
        return float(self.nobs - np.asarray(self.results.params).size)

    def pearson_residuals(self):
        """(y - mu) / sqrt(Var y) with the model's own variance (``results.predict(which="var")``)."""
        var = np.asarray(self.results.predict(which="var"), float).reshape(-1)
        return (self._y - self._mu) / np.sqrt(np.maximum(var, 1e-300))

    def edf(self):
        p = float(np.asarray(self.results.params).size)
        return p, p
