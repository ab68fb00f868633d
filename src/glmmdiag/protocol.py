"""The seam between fitted models and the diagnostics.

Anything that can say what it observed, what it expects and how to draw new responses can be
checked with simulated residuals. ``SimulableModel`` is that contract; ``adapters.as_simulable``
turns a glmmdiag fit, a statsmodels result (GLM, discrete, MixedLM) or a user's own simulations
into one, and ``adapters.register_adapter`` lets another library add its model types.

Contract (every array is 1-D of length ``nobs`` unless said otherwise)
---------------------------------------------------------------------
``family_name`` : str
    "poisson", "binomial", "gaussian", ...; "unknown" when the adapter cannot tell.
``nobs`` : int
    The rows the diagnostics see: usually the model's rows; an adapter may expand rows with
    frequency weights (the statsmodels GLM adapter repeats row i ``freq_weights[i]`` times).
``integer_response`` : bool
    True when responses are whole numbers (counts, successes): ties between observed and simulated
    values are then expected and broken at random.
``observed()``
    The observed response. Binomial: the number of successes.
``trials()``
    Binomial trials per row (ones for every other family).
``fitted()``
    The population-level mean on the response scale (random effects set to zero), as DHARMa's
    ``fittedPredictedResponse``. Binomial: the success probability, not the expected count.
``simulate(n, rng, conditional)``
    A float array of shape ``(nobs, n)``: n new responses drawn with the numpy Generator ``rng``,
    conditional on the fitted random effects (``conditional=True``) or with new random effects
    drawn from their estimated distribution. Same generator state, same draws.

Optional members (the diagnostics check with ``hasattr`` and say what is missing):

``refit(y)``
    A new adapter for the model refitted to response ``y`` (warm-started where possible).
``conditional_fitted()``
    The conditional mean on the response scale (random effects at their modes); binomial: the
    probability.
``pearson_residuals()``
    (y - E y) / sd(y) at the conditional fit.
``df_resid`` / ``edf``
    The residual degrees of freedom as R counts them (n minus the number of parameters) and the
    effective number of parameters (trace of the hat matrix of the penalised fit, random effects
    counted by how much they are shrunk).
``thread_safe``
    True when ``simulate`` may run on several threads at once (it changes no shared state and
    enters no ``warnings.catch_warnings``): mid-size simulation jobs with ``n_jobs`` other than 1
    are then drawn on threads (see ``simulate``). Absent or False: never on threads.
``simulations``
    A fixed ``(nobs, nsim)`` matrix (``from_simulations``): the simulations are these columns, in
    order; ``simulate`` is then never called with a generator.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["SimulableModel", "missing_members"]


@runtime_checkable
class SimulableModel(Protocol):
    family_name: str
    nobs: int
    integer_response: bool

    def observed(self) -> np.ndarray: ...

    def trials(self) -> np.ndarray: ...

    def fitted(self) -> np.ndarray: ...

    def simulate(self, n: int, rng: np.random.Generator, conditional: bool = True) -> np.ndarray: ...


_REQUIRED = ("family_name", "nobs", "integer_response", "observed", "trials", "fitted", "simulate")


def missing_members(obj) -> list[str]:
    """Names of the required protocol members that ``obj`` lacks (empty when it conforms)."""
    return [m for m in _REQUIRED if not hasattr(obj, m)]
