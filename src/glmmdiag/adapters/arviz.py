"""Bayesian models through ArviZ (PyMC, bambi, NumPyro, ...): posterior predictive draws as simulations.

``from_inference_data(idata, var_name)`` reads

* the posterior predictive draws ``idata.posterior_predictive[var_name]`` (dims ``chain``,
  ``draw`` and the observation dims), chains and draws stacked chain by chain into the columns
  of a (nobs, chain * draw) simulation matrix, observation dims flattened in C order;
* the observed response ``idata.observed_data[var_name]``, put in the same order of its dims.

and returns ``from_simulations(observed, simulated, fitted)`` with ``fitted`` the posterior
predictive mean of every observation (unless given). Each posterior predictive draw comes from a
different posterior draw of the parameters, so the residuals check the posterior predictive
distribution (DHARMa's recommendation for Bayesian models), not a plug-in fit. ArviZ is not
imported: any object with these groups works (``InferenceData`` or an xarray ``DataTree``).
"""
from __future__ import annotations

import numpy as np

from glmmdiag.adapters.matrix import SimulationsAdapter
from glmmdiag.errors import GlmmdiagError

__all__ = ["from_inference_data"]


def _group(idata, name: str):
    """A group of an InferenceData (attribute) or DataTree (item); GlmmdiagError when missing."""
    grp = getattr(idata, name, None)
    if grp is None:
        try:
            grp = idata[name]
        except (KeyError, TypeError, IndexError):
            grp = None
    if grp is None:
        raise GlmmdiagError(f"the inference data has no {name!r} group (sample the posterior predictive first)")
    return grp


def _variable_names(grp) -> list[str]:
    return [str(v) for v in getattr(grp, "data_vars", [])]


def from_inference_data(idata, var_name: str | None = None, *, fitted=None,
                        integer_response: bool | None = None) -> SimulationsAdapter:
    """Residual diagnostics of a Bayesian model from its posterior predictive draws.

    Parameters
    ----------
    idata : arviz.InferenceData (or xarray DataTree)
        With a ``posterior_predictive`` group (dims chain, draw, observations...) and an
        ``observed_data`` group holding the same variable.
    var_name : str, optional
        The response variable; may be omitted when the posterior predictive group has one.
    fitted : (nobs,) array, optional
        The fitted mean used by the dispersion statistic and plots; default: the posterior
        predictive mean of each observation.
    integer_response : bool, optional
        Whether responses are whole numbers; guessed from the data when omitted.

    Returns
    -------
    SimulationsAdapter
        For ``simulate_residuals``; its ``n_sim`` defaults to chain * draw simulations.
    """
    pp = _group(idata, "posterior_predictive")
    obs = _group(idata, "observed_data")
    names = _variable_names(pp)
    if var_name is None:
        if len(names) != 1:
            raise GlmmdiagError(f"the posterior predictive has variables {names}: give var_name")
        var_name = names[0]
    if var_name not in names:
        raise GlmmdiagError(f"the posterior predictive has no variable {var_name!r} (it has {names})")
    if var_name not in _variable_names(obs):
        raise GlmmdiagError(f"the observed data have no variable {var_name!r} (they have {_variable_names(obs)})")
    draws = pp[var_name]
    dims = tuple(draws.dims)
    if "chain" not in dims or "draw" not in dims:
        raise GlmmdiagError(f"posterior predictive {var_name!r} must have 'chain' and 'draw' dims; it has {dims}")
    obs_dims = [d for d in dims if d not in ("chain", "draw")]
    y_da = obs[var_name]
    if sorted(map(str, y_da.dims)) != sorted(map(str, obs_dims)):
        raise GlmmdiagError(
            f"observed {var_name!r} has dims {tuple(y_da.dims)} but its posterior predictive has {tuple(obs_dims)}"
        )
    values = np.asarray(draws.transpose("chain", "draw", *obs_dims).values, float)
    n_chain, n_draw = values.shape[:2]
    sims = values.reshape(n_chain * n_draw, -1).T  # column c * n_draw + d = chain c, draw d
    y = np.asarray(y_da.transpose(*obs_dims).values, float).reshape(-1) if obs_dims else np.asarray(y_da.values, float).reshape(-1)
    if fitted is None:
        fitted = sims.mean(axis=1)
    adapter = SimulationsAdapter(y, sims, fitted, integer_response=integer_response)
    adapter.var_name = var_name
    return adapter
