"""ArviZ InferenceData (PyMC, bambi, ...): posterior predictive draws as simulations.

The InferenceData are built here with ``arviz.from_dict`` from posterior predictive draws of two
models of the grouseticks counts: a negative binomial and a Poisson regression, each with its
parameters drawn from the large-sample posterior N(estimate, covariance) of its statsmodels fit
(no MCMC needed to check the adapter; PyMC would give the same kind of draws)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import glmmdiag as gd
from glmmdiag.adapters import from_inference_data

from adapter_verdicts import fails, passes, verdict

az = pytest.importorskip("arviz")
xr = pytest.importorskip("xarray")
smf = pytest.importorskip("statsmodels.formula.api")

N_CHAIN, N_DRAW = 4, 100


def _posterior_predictive(fit, X, rng, negbin: bool) -> np.ndarray:
    """(chain, draw, nobs) responses, each draw from its own parameter draw."""
    theta = rng.multivariate_normal(np.asarray(fit.params), np.asarray(fit.cov_params()), size=N_CHAIN * N_DRAW)
    out = np.empty((N_CHAIN * N_DRAW, X.shape[0]))
    for s, th in enumerate(theta):
        mu = np.exp(X @ th[: X.shape[1]])
        if negbin:
            size = 1.0 / max(th[-1], 1e-6)
            out[s] = rng.negative_binomial(size, size / (size + mu))
        else:
            out[s] = rng.poisson(mu)
    return out.reshape(N_CHAIN, N_DRAW, -1)


@pytest.fixture(scope="module")
def idatas(grouseticks):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nb = smf.negativebinomial("TICKS ~ YEAR + cHEIGHT", grouseticks).fit(disp=0)
        po = smf.poisson("TICKS ~ YEAR + cHEIGHT", grouseticks).fit(disp=0)
    X = np.asarray(nb.model.exog)
    y = grouseticks["TICKS"].to_numpy()
    rng = np.random.default_rng(2024)
    out = {}
    for name, fit, negbin in (("negbin", nb, True), ("poisson", po, False)):
        pp = _posterior_predictive(fit, X, rng, negbin)
        out[name] = az.from_dict(posterior_predictive={"TICKS": pp}, observed_data={"TICKS": y},
                                 dims={"TICKS": ["obs"]})
    return out


def test_verdicts_of_the_correct_and_the_misspecified_posterior(idatas):
    good = verdict(from_inference_data(idatas["negbin"], "TICKS"), n_sim=None)
    bad = verdict(from_inference_data(idatas["poisson"], "TICKS"), n_sim=None)
    assert good["res"].n_sim == N_CHAIN * N_DRAW and good["res"].simulate_re == "given"
    assert passes(good), good
    assert fails(bad) and bad["ratio"] > 5, bad


def test_chains_and_draws_are_stacked_chain_by_chain():
    pp = np.arange(2 * 3 * 5, dtype=float).reshape(2, 3, 5)  # value = (chain * 3 + draw) * 5 + obs
    idata = az.from_dict(posterior_predictive={"y": pp}, observed_data={"y": np.zeros(5)})
    a = from_inference_data(idata)  # the only variable
    S = a.simulations
    assert S.shape == (5, 6)
    for c in range(2):
        for d in range(3):
            assert np.array_equal(S[:, c * 3 + d], pp[c, d])
    assert np.allclose(a.fitted(), pp.reshape(6, 5).mean(axis=0))


def test_two_dimensional_observations_keep_their_order():
    rng = np.random.default_rng(1)
    pp = rng.poisson(3.0, size=(2, 50, 4, 3)).astype(float)
    y = rng.poisson(3.0, size=(4, 3)).astype(float)
    idata = az.from_dict(posterior_predictive={"y": pp}, observed_data={"y": y},
                         dims={"y": ["site", "year"]})
    a = from_inference_data(idata, "y")
    assert np.array_equal(a.observed(), y.reshape(-1))
    assert np.array_equal(a.simulations[:, 0], pp[0, 0].reshape(-1))
    assert a.integer_response


def test_a_datatree_like_object_works_too(idatas):
    """Groups found by item access (xarray DataTree, ArviZ >= 1.0) as well as by attribute."""
    idata = idatas["negbin"]

    class Tree:
        def __getitem__(self, key):
            return getattr(idata, key)

    a, b = from_inference_data(Tree(), "TICKS"), from_inference_data(idata, "TICKS")
    assert np.array_equal(a.simulations, b.simulations) and np.array_equal(a.observed(), b.observed())


def test_clear_errors(idatas):
    with pytest.raises(gd.GlmmdiagError, match="no variable 'y'"):
        from_inference_data(idatas["negbin"], "y")
    no_pp = az.from_dict(posterior={"b": np.zeros((2, 10))})
    with pytest.raises(gd.GlmmdiagError, match="posterior_predictive"):
        from_inference_data(no_pp, "y")
    two = az.from_dict(posterior_predictive={"a": np.zeros((1, 5, 3)), "b": np.zeros((1, 5, 3))},
                       observed_data={"a": np.zeros(3), "b": np.zeros(3)})
    with pytest.raises(gd.GlmmdiagError, match="give var_name"):
        from_inference_data(two)
