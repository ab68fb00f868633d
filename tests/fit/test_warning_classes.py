"""Fit warnings carry their glmmdiag.errors class, and numerical failures inside the fitter
reach the user as a FitError (issue "hardening", items 1 and 5)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmdiag
from glmmdiag.errors import (
    ConvergenceWarning,
    DegenerateFitWarning,
    FitError,
    GlmmdiagError,
    RankDeficiencyWarning,
    SingularFitWarning,
)


def _grouped(seed=1, n_groups=10, per=8, sd_b=0.0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    x = rng.normal(size=g.size)
    b = sd_b * rng.normal(size=n_groups)
    return pd.DataFrame({"g": [f"g{k}" for k in g], "x": x, "y": 1.0 + 0.5 * x + b[g] + rng.normal(size=g.size)})


def _boundary_data():
    """A random intercept with no between-group variance at all: group means are equal."""
    d = _grouped(seed=4)
    d["y"] = d["y"] - d.groupby("g")["y"].transform("mean") + d["y"].mean()
    return d


def test_singular_fit_is_a_singular_fit_warning():
    with pytest.warns(SingularFitWarning, match="boundary \\(singular\\) fit"):
        fit = glmmdiag.glmm("y ~ x + (1 | g)", _boundary_data())
    assert fit.warnings and all(isinstance(w, str) for w in fit.warnings)
    assert any(isinstance(w, SingularFitWarning) for w in fit.warning_objects)
    assert fit.converged  # a boundary fit is not a convergence failure


def test_singular_fit_warning_can_be_silenced_by_class():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # anything else would raise
        warnings.simplefilter("ignore", SingularFitWarning)
        fit = glmmdiag.glmm("y ~ x + (1 | g)", _boundary_data())
    assert "boundary (singular) fit" in fit.summary()


def test_convergence_problem_is_a_convergence_warning_and_can_be_made_an_error():
    d = _grouped(seed=2)
    d["y"] = np.repeat(np.random.default_rng(0).normal(size=10), 8)  # constant within each group
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.raises(ConvergenceWarning, match="converge"):
            glmmdiag.glmm("y ~ 1 + (1 | g)", d)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = glmmdiag.glmm("y ~ 1 + (1 | g)", d)
    cats = {w.category for w in rec}
    assert ConvergenceWarning in cats and DegenerateFitWarning in cats
    assert not fit.converged


def test_rank_deficiency_is_a_rank_deficiency_warning():
    d = _grouped(sd_b=1.0)
    d["x_copy"] = 2.0 * d["x"]
    with pytest.warns(RankDeficiencyWarning, match="rank deficient so dropping 1 column.*x_copy"):
        fit = glmmdiag.glmm("y ~ x + x_copy + (1 | g)", d)
    assert list(fit.fixef.index) == ["(Intercept)", "x"]


def test_refit_reissues_classed_warnings():
    fit = glmmdiag.glmm("y ~ x + (1 | g)", _grouped(sd_b=1.0))
    y = _boundary_data()["y"].to_numpy()
    with pytest.warns(SingularFitWarning):
        fit.refit(y)


def _broken_pirls(*args, **kwargs):
    from glmmdiag.fit.laplace import PirlsError

    raise PirlsError("penalised Hessian not positive definite")


def test_pirls_failure_becomes_fit_error(monkeypatch):
    from glmmdiag.fit import laplace
    from glmmdiag.fit.laplace import PirlsError

    d = _grouped(sd_b=1.0)
    d["c"] = np.random.default_rng(3).poisson(2.0, len(d))
    monkeypatch.setattr(laplace.GLMMProblem, "pirls", _broken_pirls)
    monkeypatch.setattr(laplace.GLMMProblem, "beta_hat_stage0", _broken_pirls)
    with pytest.raises(FitError, match=r"could not be fitted.*80 rows.*Try") as info:
        glmmdiag.glmm("c ~ x + (1 | g)", d, family="poisson")
    assert isinstance(info.value, GlmmdiagError) and isinstance(info.value, ValueError)
    assert isinstance(info.value.__cause__, PirlsError)  # the traceback keeps the original


def test_linalg_failure_in_refit_becomes_fit_error(monkeypatch):
    from glmmdiag.fit import lmm

    fit = glmmdiag.glmm("y ~ x + (1 | g)", _grouped(sd_b=1.0))

    def singular(self, theta):
        raise np.linalg.LinAlgError("singular matrix")

    monkeypatch.setattr(lmm.LMMProblem, "solution", singular)
    with pytest.raises(FitError, match="LinAlgError: singular matrix") as info:
        fit.refit(fit.simulate(1, seed=3)[:, 0])
    assert isinstance(info.value.__cause__, np.linalg.LinAlgError)


    def bug(self, theta):  # a programming error is not turned into "bad data"
        raise TypeError("'NoneType' object is not subscriptable")

    monkeypatch.setattr(lmm.LMMProblem, "solution", bug)
    with pytest.raises(TypeError):
        glmmdiag.glmm("y ~ x + (1 | g)", _grouped(sd_b=1.0))
