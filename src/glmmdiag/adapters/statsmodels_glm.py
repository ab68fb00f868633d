"""statsmodels ``GLM`` results: every family, with var_weights, freq_weights, exposure and offset."""
from __future__ import annotations

import numpy as np


from glmmdiag.adapters._common import _first_bad, _whole, convergence_warnings
from glmmdiag.adapters._sampling import dispersion_family_draws, draw_frozen, take_rows
from glmmdiag.errors import GlmmdiagError

__all__ = ["StatsmodelsGLMAdapter"]


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


def _freq_weights_as_trials(model, endog, vw, family_name: str, two_column: bool) -> np.ndarray | None:
    """freq_weights read as binomial trials: for a proportion response (some y strictly between 0
    and 1) the weighted Bernoulli log-likelihood sum_i f_i [y_i log p_i + (1 - y_i) log(1 - p_i)] is
    the binomial one of y_i f_i successes out of f_i trials, so f_i are the trials. None otherwise."""
    if family_name != "binomial" or two_column or not getattr(model, "_has_freq_weights", False):
        return None
    fw = np.asarray(model.freq_weights, float) * np.ones(endog.shape[0])
    if np.all(fw == 1.0) or not np.any((endog > 0) & (endog < 1)):
        return None
    if np.any(vw != 1.0):
        raise GlmmdiagError(
            "a binomial GLM of proportions with both freq_weights and var_weights cannot be simulated: give "
            "the trials once, as var_weights (or freq_weights) = trials"
        )
    return fw


class StatsmodelsGLMAdapter:
    """statsmodels ``GLMResults`` of every family, with prior weights, exposure and offsets.

    Row i has prior weight ``w_i = var_weights[i]``, mean ``mu_i`` (``results.fittedvalues``,
    which include ``offset`` and ``exposure``) and the estimated dispersion ``phi =
    results.scale``. Responses are drawn from the results' ``get_distribution()`` (a scipy
    frozen distribution) where statsmodels has one and it honours the weights:

    * Binomial: success counts ``k_i`` out of ``t_i`` trials, Binomial(t_i, mu_i)
      (``get_distribution(n_trials=t)``), with ``t_i`` the two-column response's successes +
      failures, or ``var_weights`` for a proportion response (the R idiom ``weights = trials``).
      ``k_i = y_i t_i`` must be whole numbers, otherwise a ``GlmmdiagError`` (a proportion without
      trials cannot be simulated). A two-column response together with var_weights is refused.
    * Gaussian, Gamma, InverseGaussian: the exponential-dispersion model with variance
      ``phi V(mu_i) / w_i`` (``get_distribution(var_weights=w)``): Normal(mu_i, phi / w_i);
      Gamma with shape ``w_i / phi`` and mean ``mu_i``; inverse Gaussian with mean mu_i and
      shape ``w_i / phi``.
    * Poisson: Poisson(mu_i) without weights; with var_weights Poisson(w_i mu_i) / w_i (mean
      mu_i, variance mu_i / w_i: a count over w_i units), which needs ``y_i w_i`` to be whole
      numbers (statsmodels' distribution ignores var_weights).
    * NegativeBinomial (NB2, variance mu + alpha mu^2 with the family's fixed alpha): only
      without var_weights (no distribution has the variance (mu + alpha mu^2) / w).
    * Tweedie (statsmodels has no distribution for it): variance power p = 0 is the Gaussian,
      p = 2 the Gamma and p = 3 the inverse Gaussian above; 1 < p < 2 the compound Poisson-gamma
      with variance ``phi mu^p / w_i``; p = 1 is Poisson(mu_i) and only when phi = 1 (fit with
      ``scale=1``; an overdispersed p = 1 Tweedie lives on the lattice phi k and is refused).
      Other powers have no distribution and are refused.
    * The Binomial, Poisson and NegativeBinomial families are simulated with phi = 1 whatever
      scale they were fitted with (a quasi-likelihood scale is not a distribution): the
      diagnostics then show the overdispersion the scale was absorbing.
    * Binomial proportions with ``freq_weights``: the frequency weights are the trials (the
      weighted Bernoulli likelihood of a proportion y_i with weight f_i is the binomial likelihood
      of y_i f_i successes out of f_i), exactly as ``var_weights`` = trials;
      ``adapter.freq_weights_are_trials`` says so.
    * ``freq_weights`` otherwise (whole numbers): row i stands for ``freq_weights[i]`` identical
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
        "InverseGaussian": "inverse.gaussian",
        "NegativeBinomial": "nbinom2",
        "Tweedie": "tweedie",
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
        self._power = float(model.family.var_power) if fname == "Tweedie" else None
        n_model = np.asarray(model.endog).shape[0]
        self._n_model = n_model
        endog = np.asarray(model.endog, float)
        vw = np.asarray(getattr(model, "var_weights", np.ones(n_model)), float) * np.ones(n_model)
        mu = np.asarray(results.fittedvalues, float)
        nt = np.asarray(getattr(model, "n_trials", np.ones(n_model)), float) * np.ones(n_model)
        self._two_column = self.family_name == "binomial" and bool(np.any(nt != 1.0))
        fw_trials = _freq_weights_as_trials(model, endog, vw, self.family_name, self._two_column)
        self.freq_weights_are_trials = fw_trials is not None
        if fw_trials is not None:
            vw, rows = fw_trials, None  # the trials of a proportion response, as var_weights would be
        else:
            rows = _freq_expansion(model)
        self.row_index = np.arange(n_model) if rows is None else rows
        self._kind = self._sampler_kind()
        y, trials, w = self._response(endog, vw, nt)
        idx = self.row_index
        self._y, self._trials, self._w, self._mu = y[idx], trials[idx], w[idx], mu[idx]
        self.nobs = int(idx.size)
        self.integer_response = self.family_name == "binomial" or (
            self.family_name in ("poisson", "nbinom2") and bool(np.all(self._w == 1.0))
        ) or (self._kind == "poisson" and bool(np.all(self._w == 1.0)))

    def _sampler_kind(self) -> str:
        """How responses are drawn: "frozen" (get_distribution), "poisson", "weighted_poisson",
        "tweedie" or the distribution a Tweedie power reduces to."""
        if self._fname != "Tweedie":
            return "frozen"
        p, phi = self._power, float(self.results.scale)
        if p == 0.0:
            return "normal"
        if p == 1.0:
            if not np.isclose(phi, 1.0):
                raise GlmmdiagError(
                    f"a Tweedie GLM with variance power 1 and scale {phi:.4g} cannot be simulated honestly (its "
                    f"responses would be {phi:.4g} times Poisson counts); fit the Poisson family, or the Tweedie "
                    f"with scale=1, or a power between 1 and 2"
                )
            return "poisson"
        if 1.0 < p < 2.0:
            return "tweedie"
        if p == 2.0:
            return "gamma"
        if p == 3.0:
            return "invgauss"
        raise GlmmdiagError(
            f"a Tweedie GLM with variance power {p} has no distribution to simulate from here (supported: "
            f"p = 0, 1, 1 < p < 2, 2, 3); simulate yourself and use from_simulations(...)"
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
        if self._kind == "poisson" and np.any(vw != 1.0):
            raise GlmmdiagError(
                "a Tweedie GLM with variance power 1 and var_weights cannot be simulated here; fit the Poisson "
                "family with the same var_weights (simulated as Poisson(w mu) / w)"
            )
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

    def _frozen(self):
        """The results' ``get_distribution()`` at the model's rows (trials and weights passed on)."""
        import warnings

        model = self.results.model
        n = self._n_model
        kw = {}
        if self.family_name == "binomial":
            trials = np.ones(n, np.int64)  # numpy's binomial sampler needs integer trials
            trials[self.row_index] = np.round(self._trials).astype(np.int64)
            kw["n_trials"] = trials
        elif self.family_name in ("gaussian", "gamma", "inverse.gaussian"):
            kw["var_weights"] = np.asarray(getattr(model, "var_weights", np.ones(n)), float) * np.ones(n)
        with warnings.catch_warnings():
            # "using scale=1, no excess dispersion": intended (see the class notes)
            warnings.filterwarnings("ignore", message="using scale=1")
            return self.results.get_distribution(**kw)

    def simulate(self, n, rng, conditional=True):
        """(nobs, n) responses from the fitted exponential-dispersion model (see the class notes)."""
        n = int(n)
        w = self._w
        kind = self._kind
        if self.family_name == "poisson" and not np.all(w == 1.0):
            return rng.poisson(np.broadcast_to(self._mu * w, (n, self.nobs))).T / w[:, None]
        if kind == "frozen":
            if "_frozen_rows" not in self.__dict__:
                self.__dict__["_frozen_rows"] = take_rows(self._frozen(), self.row_index, self._n_model)
            return draw_frozen(self.__dict__["_frozen_rows"], self.nobs, n, rng)
        if kind == "poisson":
            return rng.poisson(np.broadcast_to(self._mu, (n, self.nobs))).T
        return dispersion_family_draws(kind, self._mu, float(self.results.scale) / w, n, rng, self._power)

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

    def simulation_warnings(self) -> list[str]:
        return convergence_warnings(self.converged, "statsmodels GLM")

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


