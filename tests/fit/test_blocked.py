"""The blocked system's shortcuts give what the plain dense formulas give."""
import numpy as np

from glmmdiag.fit.blocked import CrossProducts, SparseRest, spd_inverse
from glmmdiag.fit.dense import cholesky_lower
from glmmdiag.fit.design import build_design
from glmmdiag.fit.families import get_family
from glmmdiag.fit.laplace import GLMMProblem


def test_spd_inverse_is_the_inverse():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(60, 25))
    S = A.T @ A + np.eye(25)
    np.testing.assert_allclose(spd_inverse(cholesky_lower(S)), np.linalg.inv(S), rtol=1e-10, atol=1e-12)


def test_sparse_conditional_variances_equal_the_dense_formula(load_data):
    # grouseticks: an observation-level first term, sparse C_r (three scalar terms)
    d = load_data("grouseticks")
    design = build_design("TICKS ~ YEAR + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", d, get_family("poisson"))
    prob = GLMMProblem(design, get_family("poisson"))
    sysm = prob.system
    w = np.random.default_rng(1).uniform(0.5, 3.0, design.n)  # PIRLS-like weights
    cp = sysm.crossprods(w, None)
    assert isinstance(cp.Cr, SparseRest)
    F = sysm.factor(cp, np.array([0.7, 0.4, 0.9]), prob.thetamap)
    sparse_cv = sysm.cond_var(F, cp, design.terms)
    dense_cp = CrossProducts(cp.D1, sysm.cr_dense(cp), cp.Cx, cp.G)
    dense_cv = sysm.cond_var(F, dense_cp, design.terms)
    for a, b in zip(sparse_cv, dense_cv):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)



def test_sparse_schur_update_without_pairs_equals_the_dense_product(load_data):
    d = load_data("grouseticks")
    design = build_design("TICKS ~ YEAR + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", d, get_family("poisson"))
    sysm = GLMMProblem(design, get_family("poisson")).system
    pat = sysm.pattern
    rng = np.random.default_rng(2)
    vals = pat.c_values(rng.uniform(0.5, 3.0, design.n))
    W1 = rng.uniform(0.1, 1.0, sysm.l1)
    C = pat.c_dense(vals)
    expected = (C * W1) @ C.T
    np.testing.assert_allclose(pat.schur_update(vals, W1), expected, rtol=1e-12, atol=1e-12)  # pairs
    pat._pairs = False  # the scipy.sparse path used above PAIR_LIMIT pairs (InstEval)
    np.testing.assert_allclose(pat.schur_update(vals, W1), expected, rtol=1e-12, atol=1e-12)
