"""Adapters from concrete model objects to the ``SimulableModel`` protocol (``glmmdiag.protocol``).

The diagnostics only ever see the protocol; this package is the only place that names concrete
model classes, one module per library (each library is optional: nothing here imports it until a
model of it is adapted):

* ``native`` -- glmmdiag's own fits (``glmmdiag.glmm(...)``): ``GLMMAdapter``;
* ``matrix`` -- the user's own simulation matrix (DHARMa's ``createDHARMa``): ``from_simulations``;
* ``statsmodels_glm`` -- ``GLM`` results, every family, with var_weights, freq_weights, exposure
  and offset: ``StatsmodelsGLMAdapter``;
* ``statsmodels_discrete`` -- ``Poisson``, ``NegativeBinomial`` (NB2, NB1, geometric),
  ``NegativeBinomialP``, ``GeneralizedPoisson``, the zero-inflated count models, ``Logit`` and
  ``Probit``: ``StatsmodelsDiscreteAdapter``;
* ``statsmodels_mixed`` -- ``MixedLM``, conditional or marginal simulation: ``StatsmodelsMixedLMAdapter``;
* ``sklearn`` -- ``PoissonRegressor``, ``GammaRegressor``, ``TweedieRegressor``,
  ``LogisticRegression`` and a ``Pipeline`` ending in one, with the data they were fitted on:
  ``from_sklearn``;
* ``arviz`` -- posterior predictive draws of an ArviZ ``InferenceData`` (PyMC, bambi, ...):
  ``from_inference_data``;
* ``registry`` -- ``as_simulable`` and ``register_adapter``, for third-party model types.
"""
from __future__ import annotations

from glmmdiag.adapters.arviz import from_inference_data
from glmmdiag.adapters.matrix import SimulationsAdapter, from_simulations
from glmmdiag.adapters.native import GLMMAdapter
from glmmdiag.adapters.registry import (_register_builtin, as_simulable, register_adapter, registered_adapters,
                                        unregister_adapter)
from glmmdiag.adapters.sklearn import SklearnGLMAdapter, from_sklearn
from glmmdiag.adapters.statsmodels_discrete import StatsmodelsDiscreteAdapter
from glmmdiag.adapters.statsmodels_glm import StatsmodelsGLMAdapter
from glmmdiag.adapters.statsmodels_mixed import StatsmodelsMixedLMAdapter

__all__ = [
    "as_simulable",
    "from_simulations",
    "from_inference_data",
    "from_sklearn",
    "register_adapter",
    "unregister_adapter",
    "registered_adapters",
    "GLMMAdapter",
    "SimulationsAdapter",
    "SklearnGLMAdapter",
    "StatsmodelsGLMAdapter",
    "StatsmodelsDiscreteAdapter",
    "StatsmodelsMixedLMAdapter",
]


def _is_glmmdiag_fit(obj) -> bool:
    cls = type(obj)
    return cls.__name__ == "GLMMResults" and cls.__module__.startswith("glmmdiag.")


def _is_statsmodels_results(obj) -> bool:
    return type(obj).__module__.startswith("statsmodels.") and hasattr(obj, "model") and hasattr(obj, "params")


def _model_class_names(results) -> set[str]:
    return {c.__name__ for c in type(results.model).__mro__}


def _statsmodels_adapter(results):
    """The statsmodels adapter for ``results``, chosen by its model class."""
    names = _model_class_names(results)
    if "GLM" in names:
        return StatsmodelsGLMAdapter(results)
    if "MixedLM" in names:
        return StatsmodelsMixedLMAdapter(results)
    if names & StatsmodelsDiscreteAdapter.SUPPORTED:
        return StatsmodelsDiscreteAdapter(results)
    mname = type(results.model).__name__
    raise TypeError(
        f"statsmodels {mname} results cannot simulate new responses here (supported: GLM, MixedLM, "
        f"{', '.join(sorted(StatsmodelsDiscreteAdapter.SUPPORTED))}); simulate them yourself and use "
        f"glmmdiag.from_simulations(observed, simulated, fitted), or register an adapter with "
        f"glmmdiag.adapters.register_adapter"
    )


def _is_sklearn_estimator(obj) -> bool:
    return type(obj).__module__.startswith("sklearn.") and hasattr(obj, "get_params")


def _sklearn_needs_data(est):
    raise TypeError(
        f"a scikit-learn {type(est).__name__} does not keep the data it was fitted on: use "
        f"glmmdiag.from_sklearn(estimator, X, y, sample_weight=...) with the X and y it was fitted on"
    )


_register_builtin(_is_glmmdiag_fit, GLMMAdapter, "glmmdiag.fit.GLMMResults")
_register_builtin(_is_statsmodels_results, _statsmodels_adapter, "statsmodels results (GLM, discrete, MixedLM)")
_register_builtin(_is_sklearn_estimator, _sklearn_needs_data, "scikit-learn estimators (use from_sklearn)")
