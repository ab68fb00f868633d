"""The sparse Schur complement after the first term (fit/sparse_schur.py) against the dense one,
and the STAR model (mlmRev's star: students, teachers, schools) against lme4.

* On multi-term crossed/nested models whose rest block is large and sparse, the sparse path and
  the dense path (``BlockedSystem.allow_sparse = False``) give the same LMM criterion (ML and
  REML), exact gradient, solution and conditional variances, and the same Laplace deviance and
  gradient for a Poisson GLMM, to 1e-9 relative -- also where a variance is exactly zero.
* The selected inverse equals the dense inverse on the factor's pattern.
* A STAR subset (20 schools, 5 760 rows; tests/reference/star/star_lmer.R) fitted by
  ``glmm`` reaches lme4's logLik (ML and REML), on the sparse path.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glmmdiag.fit import glmm, sparse_schur
from glmmdiag.fit.design import build_design
from glmmdiag.fit.families import get_family
from glmmdiag.fit.laplace import GLMMProblem
from glmmdiag.fit.lmm import LMMProblem

TESTS = Path(__file__).resolve().parents[1]
STAR_DIR = TESTS / "reference" / "star"
STAR = ("math ~ yrs + gr + sx + eth + cltype + schtype + hdeg + clad + exp + trace"
        " + (yrs | id) + (1 | tch) + (yrs | sch)")
RTOL = 1e-9


def _star(n_schools: int | None = None) -> pd.DataFrame:
    """tests/data/star.csv with the covariate factors' levels of star_levels.json; the first
    ``n_schools`` schools by label (R's sorted factor levels), as star_lmer.R selects them."""
    df = pd.read_csv(TESTS / "data" / "star.csv", dtype={"id": str, "tch": str, "sch": str, "clad": str})
    levels = json.loads((STAR_DIR / "star_levels.json").read_text())
    for col, lev in levels.items():
        df[col] = pd.Categorical(df[col].astype(str), categories=lev)
    if n_schools is not None:
        keep = sorted(df["sch"].unique())[:n_schools]
        df = df[df["sch"].isin(keep)].reset_index(drop=True)
    for col in ("id", "tch", "sch"):
        df[col] = pd.Categorical(df[col])
    return df


@pytest.fixture(scope="module")
def star_small() -> pd.DataFrame:
    return _star(20)


@pytest.fixture(autouse=True)
def small_sparse_threshold(monkeypatch):
    """The test models have 333-400 rest random effects: below the size where the sparse path
    pays (``MIN_QR``), so the threshold is lowered to exercise it."""
    monkeypatch.setattr(sparse_schur, "MIN_QR", 300)


def _design(formula, df, family="gaussian"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gr3 is aliased with yrs in the subset (R drops it too)
        return build_design(formula, df, get_family(family))


def _close(a, b, rtol=RTOL):
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = max(1.0, float(np.max(np.abs(b))))
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale)


def _thetas(prob, rng):
    """An interior point near the start, and one where the last term's factor has both diagonal
    entries at zero but not its off-diagonal one (exact zeros on S_rr's pattern; the criterion's
    slope in the first of them is not zero)."""
    th0 = np.asarray(prob.start_theta(), float)
    inner = th0 * (1.0 + 0.3 * rng.standard_normal(th0.size))
    inner[prob.thetamap.lower_bounds() == 0] = np.abs(inner[prob.thetamap.lower_bounds() == 0]) + 0.05
    edge = inner.copy()
    edge[np.flatnonzero(prob.thetamap.lower_bounds() == 0)[-2:]] = 0.0
    return [inner, edge]


@pytest.mark.parametrize("reml", [False, True])
def test_lmm_sparse_equals_dense(star_small, reml):
    d = _design(STAR, star_small)
    sparse_p, dense_p = LMMProblem(d, reml), LMMProblem(d, reml)
    dense_p.system.allow_sparse = False
    assert sparse_p.system.sparse_plan() is not None, "the STAR subset's rest block should go sparse"
    assert dense_p.system.sparse_plan() is None
    for th in _thetas(sparse_p, np.random.default_rng(3)):
        fs, gs = sparse_p.objective_and_gradient(th)
        fd, gd = dense_p.objective_and_gradient(th)
        assert dense_p._factor(th).sparse is None
        # at the interior point the sparse factor is used; at the edge (exact zeros on S_rr's
        # pattern) it may be refused for the dense one when SuperLU's pattern shrinks
        assert sparse_p._factor(th).sparse is not None or np.any(th == 0)
        _close(fs, fd)
        _close(gs, gd)
        ss, sd = sparse_p.solution(th), dense_p.solution(th)
        _close(ss.beta, sd.beta)
        _close(ss.u, sd.u)
        _close(ss.RX, sd.RX)
        cp = sparse_p.system.crossprods(d.w, None)
        cvs = sparse_p.system.cond_var(sparse_p.system.factor(cp, th, sparse_p.thetamap), cp, d.terms)
        cvd = dense_p.system.cond_var(dense_p.system.factor(cp, th, dense_p.thetamap), cp, d.terms)
        for a, b in zip(cvs, cvd):
            _close(a, b)


def test_lmm_gradient_matches_finite_differences_at_zero_variance(star_small):
    """Where a variance is exactly zero (S_rr has exact zeros on its pattern) the sparse path's
    gradient is the one-sided derivative (Richardson-extrapolated forward differences)."""
    d = _design(STAR, star_small)
    prob = LMMProblem(d, False)
    th = _thetas(prob, np.random.default_rng(3))[1]
    _, g = prob.objective_and_gradient(th)
    f0 = prob.objective(th)
    k = np.flatnonzero(th == 0.0)[0]
    e = np.zeros_like(th)
    e[k] = 1.0

    def fwd(h):
        return (prob.objective(th + h * e) - f0) / h

    h = 4e-5
    richardson = 2.0 * fwd(h / 2) - fwd(h)
    assert abs(g[k]) > 1.0
    assert abs(g[k] - richardson) < 1e-5 * abs(g[k])
    # slopes that vanish by symmetry (a zero diagonal entry whose column is all zero) are 0
    assert g[-1] == 0.0


def test_glmm_sparse_equals_dense(star_small):
    """Poisson counts on STAR's structure: Laplace deviance and gradient (PIRLS solves with the
    sparse factor, own-level inverse entries from the selected inverse)."""
    rng = np.random.default_rng(11)
    df = star_small.copy()
    ui = rng.normal(0, 0.3, df["id"].cat.categories.size)[df["id"].cat.codes]
    ut = rng.normal(0, 0.3, df["tch"].cat.categories.size)[df["tch"].cat.codes]
    us = rng.normal(0, 0.2, df["sch"].cat.categories.size)[df["sch"].cat.codes]
    df["count"] = rng.poisson(np.exp(0.5 + 0.1 * df["yrs"] + ui + ut + us))
    d = _design("count ~ yrs + sx + (1 | id) + (1 | tch) + (yrs | sch)", df, "poisson")
    fam = get_family("poisson")
    sparse_p, dense_p = GLMMProblem(d, fam), GLMMProblem(d, fam)
    dense_p.system.allow_sparse = False
    assert sparse_p.system.sparse_plan() is not None
    beta = np.r_[0.5, 0.1, 0.0]
    for theta in (np.array([0.3, 0.3, 0.2, 0.01, 0.05]), np.array([0.3, 0.3, 0.2, 0.0, 0.0])):
        fs, gs = sparse_p.deviance_and_gradient(beta, theta)
        fd, gd = dense_p.deviance_and_gradient(beta, theta)
        _close(fs, fd)
        _close(gs, gd)


def test_selected_inverse_on_the_pattern(star_small):
    d = _design(STAR, star_small)
    prob = LMMProblem(d, True)
    th = _thetas(prob, np.random.default_rng(5))[0]
    F = prob._factor(th)
    sch = F.sparse
    plan = prob.system.sparse_plan()
    Srr = plan.csc(_srr_values(prob, th)).toarray()
    inv = np.linalg.inv(Srr)
    ent = sch.inverse_entries(0)
    got = ent(plan.rows, plan.cols)
    np.testing.assert_allclose(got, inv[plan.rows, plan.cols], rtol=0, atol=1e-10 * np.abs(inv).max())
    # with the dense columns: S_m^{-1} = [Z 0; 0 0] + P H P' against the dense inverse of S_m
    p = d.X.shape[1]
    Sm = _dense_s(prob, th)[: plan.qr + p, : plan.qr + p]
    inv_m = np.linalg.inv(Sm)
    ent = sch.inverse_entries(p)
    xi = plan.qr + np.arange(p)
    np.testing.assert_allclose(ent(plan.rows, plan.cols), inv_m[plan.rows, plan.cols],
                               rtol=0, atol=1e-9 * np.abs(inv_m).max())
    np.testing.assert_allclose(ent(xi[:, None], xi[None, :]), inv_m[np.ix_(xi, xi)],
                               rtol=0, atol=1e-9 * np.abs(inv_m).max())


def _dense_s(prob, th):
    """S = L L' from the dense path's factor (the full Schur complement, [X, y] columns last)."""
    sysm = prob.system
    sysm.allow_sparse = False
    try:
        L = sysm.factor(prob.cp, th, prob.thetamap).L22
    finally:
        sysm.allow_sparse = True
    return L @ L.T


def _srr_values(prob, th):
    S = _dense_s(prob, th)
    plan = prob.system.sparse_plan()
    return S[plan.rows, plan.cols]


def test_dense_rest_block_stays_dense():
    """Crossed factors where each first-term level meets 10 random rest levels: S_rr's graph and
    its factor are nearly dense, the sparse plan is refused and the dense Schur complement is used
    (with the same criterion as before)."""
    rng = np.random.default_rng(2)
    a = np.repeat(np.arange(2000), 10)
    b = np.concatenate([rng.choice(400, 10, replace=False) for _ in range(2000)])
    df = pd.DataFrame({"a": pd.Categorical(a), "b": pd.Categorical(b)})
    df["y"] = rng.normal(size=len(df))
    d = _design("y ~ 1 + (1 | a) + (1 | b)", df)
    prob = LMMProblem(d, False)
    assert prob.system.qr == 400
    assert prob.system.sparse_plan() is None
    assert prob._factor(np.array([0.5, 0.5])).sparse is None


def _r_fit(case: str) -> dict:
    ref = json.loads((STAR_DIR / "star_lmer.json").read_text())
    return next(f for f in ref["fits"] if f["case"] == case)


@pytest.mark.parametrize("reml", [False, True])
def test_star_subset_matches_lmer(star_small, reml):
    r = _r_fit("star_small_REML" if reml else "star_small_ML")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmm(STAR, star_small, family="gaussian", reml=reml)
    assert fit.nobs == r["nobs"] == 5760
    ll = float(fit.loglik)
    # lme4 stops within its own tolerance: glmmdiag may be higher, never lower by more than 1e-6
    assert ll >= r["logLik"] - 1e-6 * abs(r["logLik"])
    assert ll - r["logLik"] < 1e-3
    assert abs(fit.sigma - r["sigma"]) < 1e-3 * r["sigma"]
