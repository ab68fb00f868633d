"""The adapter registry: a third-party model type plugged in by class, by qualified name or by
predicate; the import paths that existed before the adapters became a package."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import glmmdiag as gd
from glmmdiag import adapters
from glmmdiag.adapters import register_adapter, registered_adapters, unregister_adapter


class ThirdPartyPoissonFit:
    """A stand-in for another library's fitted Poisson model (it knows its data and means)."""

    def __init__(self, y, mu):
        self.y, self.mu = np.asarray(y, float), np.asarray(mu, float)


class ThirdPartyAdapter:
    """What the other library would write: the SimulableModel members (glmmdiag.protocol)."""

    family_name = "poisson"
    integer_response = True

    def __init__(self, fit):
        self.fit = fit
        self.nobs = fit.y.size

    def observed(self):
        return self.fit.y

    def trials(self):
        return np.ones(self.nobs)

    def fitted(self):
        return self.fit.mu

    def simulate(self, n, rng, conditional=True):
        return rng.poisson(np.broadcast_to(self.fit.mu, (n, self.nobs))).T


@pytest.fixture()
def fits():
    rng = np.random.default_rng(4)
    mu = np.exp(rng.normal(1.0, 0.5, size=300))
    good = ThirdPartyPoissonFit(rng.poisson(mu), mu)
    over = ThirdPartyPoissonFit(rng.negative_binomial(2.0, 2.0 / (2.0 + mu)), mu)  # variance mu + mu^2 / 2
    return good, over


@pytest.mark.parametrize("match", [
    ThirdPartyPoissonFit,
    f"{__name__}.ThirdPartyPoissonFit",
    lambda obj: hasattr(obj, "y") and hasattr(obj, "mu"),
])
def test_a_registered_type_is_diagnosed(fits, match):
    good, over = fits
    with pytest.raises(TypeError, match="register_adapter"):
        gd.simulate_residuals(good, 20, seed=1)
    register_adapter(match, ThirdPartyAdapter, name="third party")
    try:
        assert registered_adapters()[0] == ("third party", "user")
        g = gd.simulate_residuals(good, 250, seed=1)
        o = gd.simulate_residuals(over, 250, seed=1)
        assert gd.uniformity_test(g).p_value > 0.05 and gd.dispersion_test(g).p_value > 0.05
        assert gd.dispersion_test(o).p_value < 0.01
    finally:
        assert unregister_adapter(match, ThirdPartyAdapter)
    assert ("third party", "user") not in registered_adapters()


def test_registrations_come_first_and_can_replace_a_builtin():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(1)
    X = sm.add_constant(rng.normal(size=50))
    fit = sm.GLM(rng.poisson(2.0, size=50), X, family=sm.families.Poisson()).fit()
    assert isinstance(adapters.as_simulable(fit), adapters.StatsmodelsGLMAdapter)
    seen = []

    def mine(results):
        seen.append(results)
        return adapters.StatsmodelsGLMAdapter(results)

    def is_statsmodels(obj):
        return type(obj).__module__.startswith("statsmodels.")

    register_adapter(is_statsmodels, mine)
    register_adapter(is_statsmodels, mine)  # registering again does not add a duplicate
    try:
        adapters.as_simulable(fit)
        assert seen == [fit]
        assert sum(1 for _, who in registered_adapters() if who == "user") == 1
    finally:
        unregister_adapter(is_statsmodels)
    assert not any(who == "user" for _, who in registered_adapters())


def test_bad_registrations_are_refused():
    with pytest.raises(TypeError, match="factory must be callable"):
        register_adapter(ThirdPartyPoissonFit, "not callable")
    with pytest.raises(TypeError, match="match must be"):
        register_adapter(3, ThirdPartyAdapter)


def test_existing_import_paths_still_work():
    from glmmdiag.adapters import (GLMMAdapter, SimulationsAdapter, StatsmodelsGLMAdapter,  # noqa: F401
                                   as_simulable, from_simulations)
    from glmmdiag.residuals import simulate_residuals  # noqa: F401

    assert gd.as_simulable is as_simulable and gd.from_simulations is from_simulations
    assert gd.from_sklearn is adapters.from_sklearn and gd.from_inference_data is adapters.from_inference_data
    assert gd.register_adapter is register_adapter
    S = stats.poisson(2.0).rvs(size=(10, 5), random_state=1)
    a = from_simulations(S[:, 0], S, np.full(10, 2.0))
    assert isinstance(a, SimulationsAdapter) and as_simulable(a) is a
