"""One name per meaning across the public API (issue 16's consistency pass).

* ``seed=`` and ``rng=`` are the same argument wherever randomness is drawn (numpy SPEC 7's name is
  ``rng``; DHARMa's and most statistics libraries' is ``seed``);
* ``df=`` means one thing only: the inference degrees of freedom of ``marginal_means`` (emmeans'
  name). The t family's df is ``glmm(t_df=)``, the dispersion test's residual df rule is
  ``dispersion_test(residual_df=)``, the quantile test's spline df is ``quantile_test(spline_df=)``
  (renamed before the first release, so without deprecation shims: ``df=`` there is a TypeError);
* ``n_sim`` is the number of simulations everywhere (never ``nsim``).
"""
from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

import glmmdiag as gd
from glmmdiag.errors import GlmmdiagError
from glmmdiag.fit.model import GLMMResults


def _public_callables():
    out = {}
    for name in gd.__all__:
        obj = getattr(gd, name)
        if inspect.isfunction(obj):
            out[name] = obj
    for name in ("simulate", "refit", "predict"):
        out[f"GLMMResults.{name}"] = getattr(GLMMResults, name)
    return out


def _parameters(func) -> set[str]:
    return set(inspect.signature(func).parameters)


@pytest.fixture(scope="module")
def poisson_fit():
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(12), 15)
    x = rng.standard_normal(g.size)
    y = rng.poisson(np.exp(0.3 + 0.5 * x + rng.normal(0, 0.4, 12)[g]))
    return gd.glmm("y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), family="poisson")


def test_every_function_with_seed_also_takes_rng():
    with_seed = {n: f for n, f in _public_callables().items() if "seed" in _parameters(f)}
    assert {"simulate_residuals", "residual_tests", "simulate_lrt", "compare_families",
            "GLMMResults.simulate"} <= set(with_seed)
    missing = [n for n, f in with_seed.items() if "rng" not in _parameters(f)]
    assert missing == []


def test_rng_and_seed_give_identical_results(poisson_fit):
    a = gd.simulate_residuals(poisson_fit, 100, seed=5)
    b = gd.simulate_residuals(poisson_fit, 100, rng=5)
    np.testing.assert_array_equal(a.residuals, b.residuals)
    np.testing.assert_array_equal(poisson_fit.simulate(3, seed=2), poisson_fit.simulate(3, rng=2))
    # a Generator under either name: the same draws from generators in the same state
    np.testing.assert_array_equal(poisson_fit.simulate(2, seed=np.random.default_rng(9)),
                                  poisson_fit.simulate(2, rng=np.random.default_rng(9)))
    ta = gd.residual_tests(a, calibrate=True, n_boot=19, seed=3)
    tb = gd.residual_tests(a, calibrate=True, n_boot=19, rng=3)
    assert ta.to_frame()["p_value"].tolist() == tb.to_frame()["p_value"].tolist()


def test_seed_and_rng_together_is_an_error(poisson_fit):
    with pytest.raises(TypeError, match="seed= and rng="):
        gd.simulate_residuals(poisson_fit, 50, seed=1, rng=2)
    with pytest.raises(TypeError, match="seed= and rng="):
        poisson_fit.simulate(1, seed=1, rng=2)


def test_df_means_only_the_inference_df():
    uses = sorted(n for n, f in _public_callables().items() if "df" in _parameters(f))
    assert uses == ["marginal_means"]
    assert "t_df" in _parameters(gd.glmm)
    assert "residual_df" in _parameters(gd.dispersion_test)
    assert "spline_df" in _parameters(gd.quantile_test)


def test_n_sim_everywhere():
    offenders = sorted(n for n, f in _public_callables().items() if _parameters(f) & {"nsim", "n_sims", "nSim"})
    assert offenders == []


def test_the_renamed_df_arguments_are_the_only_spelling(poisson_fit):
    """No silent second meaning: df= on these functions is an error, not a different argument."""
    res = gd.simulate_residuals(poisson_fit, 200, seed=1)
    model = gd.dispersion_test(res, kind="pearson", residual_df="model")
    honest = gd.dispersion_test(res, kind="pearson", residual_df="honest")
    assert model.parameter["df"] == poisson_fit.nobs - 3  # R's df.residual: 180 rows - 2 fixed - 1 variance
    # the 12 group effects count by their shrinkage: between none (variance 0) and 12 free effects
    assert poisson_fit.nobs - 2 - 12 < honest.parameter["df"] < poisson_fit.nobs - 3
    with pytest.raises(TypeError, match="df"):
        gd.dispersion_test(res, kind="pearson", df="model")
    assert gd.quantile_test(res, spline_df=2).parameter["df"] == 2.0
    with pytest.raises(TypeError, match="df"):
        gd.quantile_test(res, df=2)
    with pytest.raises(GlmmdiagError, match="residual_df must be 'honest' or 'model'"):
        gd.dispersion_test(res, kind="pearson", residual_df="R")


def test_t_df_fixes_the_t_degrees_of_freedom():
    rng = np.random.default_rng(4)
    d = pd.DataFrame({"x": rng.standard_normal(80)})
    d["y"] = 1 + d["x"] + rng.standard_t(5, 80)
    fixed = gd.glmm("y ~ x", d, family="t", t_df=5.0)
    free = gd.glmm("y ~ x", d, family="t")
    assert fixed.family.df == 5.0
    assert free.loglik >= fixed.loglik - 1e-8  # the estimated df can only do better
    with pytest.raises(TypeError, match="df"):
        gd.glmm("y ~ x", d, family="t", df=5.0)


def test_warnings_point_at_the_callers_line():
    """The functions resolve seed/rng inline (no wrapper frame), so a warning names the user's line."""
    from glmmdiag.errors import SingularFitWarning

    rng = np.random.default_rng(3)
    d = pd.DataFrame({"y": rng.poisson(3.0, 120), "x": rng.standard_normal(120), "g": np.repeat(np.arange(12), 10)})
    with pytest.warns(SingularFitWarning) as caught:
        fit = gd.glmm("y ~ x + (1 | g)", d, family="poisson")
    assert fit.varcorr["sdcor"].iloc[0] < 1e-3
    assert {w.filename for w in caught if issubclass(w.category, SingularFitWarning)} == {__file__}
