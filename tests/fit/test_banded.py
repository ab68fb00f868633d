"""Markov terms (ar1, ou over sorted 1-D times) in precision form (fit/banded.py) against the dense
blocked path: the same criterion, gradient, solves and conditional covariances to 1e-8, for the
profiled LMM (ML and REML) and the Laplace GLMM (Poisson); the banded gradient also against
central differences of the criterion."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from glmmdiag.fit.blocked import BlockedSystem
from glmmdiag.fit.design import build_design
from glmmdiag.fit.families import get_family
from glmmdiag.fit.laplace import GLMMProblem
from glmmdiag.fit.lmm import LMMProblem

TOL = 1e-8
TIMES_OU = np.array([0.0, 0.4, 1.0, 1.3, 2.5, 2.6, 4.0, 5.5])


def _data(seed: int, family: str, groups: int = 14, times: int = 8) -> pd.DataFrame:
    """AR(1)-correlated series, unbalanced (about a fifth of the rows dropped), prior weights."""
    rng = np.random.default_rng(seed)
    e = np.empty((groups, times))
    e[:, 0] = rng.normal(0, 0.8, groups)
    for t in range(1, times):
        e[:, t] = 0.6 * e[:, t - 1] + rng.normal(0, 0.8 * np.sqrt(1 - 0.36), groups)
    x = rng.normal(size=(groups, times))
    eta = 0.3 + 0.5 * x + e
    y = eta + rng.normal(0, 0.5, eta.shape) if family == "gaussian" else rng.poisson(np.exp(eta))
    df = pd.DataFrame({"g": np.repeat([f"g{i:02d}" for i in range(groups)], times),
                       "t": np.tile(np.arange(1, times + 1), groups),
                       "tc": np.tile(TIMES_OU[:times], groups),
                       "x": x.ravel(), "y": y.ravel().astype(float)})
    df = df[rng.uniform(size=len(df)) > 0.2].reset_index(drop=True)
    df["t"] = pd.Categorical(df["t"], categories=list(range(1, times + 1)))
    if family == "gaussian":
        df["w"] = rng.uniform(0.5, 2.0, len(df))
    return df


FORMULAS = {"ar1": "y ~ x + ar1(t + 0 | g)", "ou": "y ~ x + ou(numFactor(tc) + 0 | g)"}
# structure parameters (SD, correlation parameter) where the two paths are compared
POINTS = {"ar1": [(0.7, 0.4), (1.3, -0.8), (0.05, 2.0)], "ou": [(0.7, -0.5), (1.2, 0.6), (0.05, -2.0)]}


def _dense(prob):
    """The same problem with the Markov path switched off (dense q x q blocks)."""
    prob.system = BlockedSystem(prob.design.terms if hasattr(prob, "design") else prob.d.terms,
                                prob.n)
    prob.system.markov = None
    if hasattr(prob, "_memo"):  # the LMM's cross-products: the dense system's own (full D1 blocks)
        d = prob.design
        prob.cp = prob.system.crossprods(d.w, np.column_stack([d.X, d.y - d.offset]))
        prob._memo = {}
    return prob


def _lmm(structure, reml):
    df = _data(1, "gaussian")
    design = build_design(FORMULAS[structure], df, get_family("gaussian"), weights=df["w"].to_numpy())
    banded, dense = LMMProblem(design, reml), _dense(LMMProblem(design, reml))
    assert banded.system.markov is not None and dense.system.markov is None
    return banded, dense


@pytest.mark.parametrize("structure", ["ar1", "ou"])
@pytest.mark.parametrize("reml", [False, True])
def test_lmm_criterion_and_gradient_match_dense(structure, reml):
    banded, dense = _lmm(structure, reml)
    for par in POINTS[structure]:
        th = np.array(par, float)
        fb, gb = banded.objective_and_gradient(th)
        fd, gd = dense.objective_and_gradient(th)
        assert abs(fb - fd) <= TOL * max(1.0, abs(fd))
        np.testing.assert_allclose(gb, gd, rtol=TOL, atol=TOL * max(1.0, abs(fd)))
        # and the solution (beta, u, sigma) at that point
        sb, sd = banded.solution(th), dense.solution(th)
        np.testing.assert_allclose(sb.beta, sd.beta, rtol=TOL, atol=TOL)
        np.testing.assert_allclose(sb.u, sd.u, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("structure", ["ar1", "ou"])
def test_lmm_gradient_matches_central_differences(structure):
    banded, _ = _lmm(structure, True)
    th = np.array(POINTS[structure][0], float)
    g = banded.objective_and_gradient(th)[1]
    h = 1e-6
    fd = [(banded.objective(th + h * e) - banded.objective(th - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


def _glmm(structure):
    df = _data(2, "poisson")
    fam = get_family("poisson")
    design = build_design(FORMULAS[structure], df, fam)
    banded, dense = GLMMProblem(design, fam), _dense(GLMMProblem(design, fam))
    assert banded.system.markov is not None and dense.system.markov is None
    return banded, dense


@pytest.mark.parametrize("structure", ["ar1", "ou"])
def test_laplace_deviance_and_gradient_match_dense(structure):
    banded, dense = _glmm(structure)
    beta = np.array([0.25, 0.45])
    for par in POINTS[structure]:
        th = np.array(par, float)
        fb, gb = banded.deviance_and_gradient(beta, th)
        fd, gd = dense.deviance_and_gradient(beta, th)
        assert abs(fb - fd) <= TOL * max(1.0, abs(fd))
        np.testing.assert_allclose(gb, gd, rtol=TOL, atol=TOL * max(1.0, abs(fd)))


def test_laplace_gradient_matches_central_differences():
    banded, _ = _glmm("ar1")
    beta, th = np.array([0.25, 0.45]), np.array([0.7, 0.4])
    g = banded.deviance_and_gradient(beta, th)[1]
    h = 1e-6
    x0 = np.concatenate([th, beta])

    def f(x):
        banded.reset_modes()
        return banded.laplace_deviance(x[2:], x[:2])

    fd = [(f(x0 + h * e) - f(x0 - h * e)) / (2 * h) for e in np.eye(4)]
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("structure", ["ar1", "ou"])
def test_solves_inverses_and_conditional_covariances_match_dense(structure):
    banded, dense = _lmm(structure, False)
    th = np.array(POINTS[structure][0], float)
    Fb, Fd = banded._factor(th), dense._factor(th)
    assert Fb.band is not None and Fd.band is None
    assert abs(Fb.logdet11 - Fd.logdet11) <= TOL * abs(Fd.logdet11)
    v = np.random.default_rng(3).normal(size=Fd.a11.shape[0] * Fd.a11.shape[1])
    np.testing.assert_allclose(banded.system.a11_solve(Fb, v), dense.system.a11_solve(Fd, v), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(Fb.a11_inverse(), Fd.a11_inverse(), rtol=TOL, atol=TOL)
    cb = banded.system.cond_var(Fb, banded.cp, banded.design.terms)[0]
    cd = dense.system.cond_var(Fd, dense.cp, dense.design.terms)[0]
    np.testing.assert_allclose(cb, cd, rtol=TOL, atol=TOL)
