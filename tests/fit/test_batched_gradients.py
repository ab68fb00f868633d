"""The covariance matrix's batched gradients (``GLMMProblem.diag_gradients_near``) with a zero
model's coefficients varying per point, and with the variance on its boundary (theta = 0): each row
must equal ``deviance_and_gradient`` at that point, computed on its own."""
from __future__ import annotations

import numpy as np
import pytest

from glmmdiag import datasets
from glmmdiag.fit.design import build_design
from glmmdiag.fit.families import get_family
from glmmdiag.fit.laplace import GLMMProblem
from glmmdiag.fit.submodels import build_composite

FORMULA = "count ~ spp + mined + (1 | site)"


def _problem(base, ziformula, truncated=None, dispformula=None):
    data = datasets.load("Salamanders")
    fam = get_family(base)
    d = build_design(FORMULA, data, fam)
    comp = build_composite(fam, d, data, ziformula, dispformula, truncated)
    return d, comp


def _check_rows(d, fam, G, betas, thetas, psis):
    for k in range(len(betas)):
        ref = GLMMProblem(d, fam).deviance_and_gradient(betas[k], np.array([thetas[k]]), psi=psis[k])[1]
        np.testing.assert_allclose(G[k], ref, rtol=1e-7, atol=1e-7 * np.max(np.abs(ref)))


@pytest.mark.parametrize("base,zi,truncated,disp", [
    ("poisson", "~ spp + mined", None, None),
    ("nbinom2", "~ mined", None, "~ mined"),
    ("nbinom1", "~1", None, None),
    ("nbinom2", "~ spp + mined", "truncated_nbinom2", None),
])
def test_zero_model_coefficients_in_the_batch(base, zi, truncated, disp):
    d, fam = _problem(base, zi, truncated, disp)
    prob = GLMMProblem(d, fam)
    rng = np.random.default_rng(1)
    p, k = d.X.shape[1], fam.n_psi
    beta = np.r_[-0.5, 0.1 * rng.normal(size=p - 1)]
    theta = np.array([0.6])
    psi = 0.2 * rng.normal(size=k)
    prob.deviance_and_gradient(beta, theta, psi=psi)
    rows = list(fam.rowwise_psi)
    K = 2 + p + len(rows)
    steps = 1e-3
    thetas = np.full(K, theta[0])
    thetas[1] += steps
    betas = np.tile(beta, (K, 1))
    betas[2 : 2 + p] += steps * np.eye(p)
    psis = np.tile(psi, (K, 1))
    psis[2 + p :, rows] += steps * np.eye(len(rows))
    G = prob.diag_gradients_near(beta, theta, psi, betas, thetas, psis=psis)
    assert G is not None and G.shape == (K, 1 + p + k)
    _check_rows(d, fam, G, betas, thetas, psis)


def test_variance_on_its_boundary():
    """theta = 0 held fixed: u^ = 0 and the gradient is the GLM's (the theta entry is 0)."""
    d, fam = _problem("poisson", "~ mined")
    prob = GLMMProblem(d, fam)
    p, k = d.X.shape[1], fam.n_psi
    beta = np.r_[-0.3, np.zeros(p - 1)]
    theta = np.zeros(1)
    psi = np.array([-1.0, 0.3])
    prob.deviance_and_gradient(beta, theta, psi=psi)
    K = 1 + p + k
    betas = np.tile(beta, (K, 1))
    betas[1 : 1 + p] += 1e-3 * np.eye(p)
    psis = np.tile(psi, (K, 1))
    psis[1 + p :] += 1e-3 * np.eye(k)
    thetas = np.zeros(K)
    G = prob.diag_gradients_near(beta, theta, psi, betas, thetas, psis=psis)
    assert G is not None
    np.testing.assert_array_equal(G[:, 0], 0.0)
    _check_rows(d, fam, G, betas, thetas, psis)
    # a batch that moves theta off 0 is not this case: the caller loops
    assert prob.diag_gradients_near(beta, theta, psi, betas, thetas + 1e-3, psis=psis) is None


def _sim(name, factors):
    import pandas as pd
    from pathlib import Path

    df = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / f"{name}.csv")
    for f in factors:
        lab = df[f].astype(str)
        df[f] = pd.Categorical(lab, categories=sorted(lab.unique(), key=lambda v: (len(v), v)))
    return df


@pytest.mark.parametrize("family", ["ordbeta", "betabinomial", "beta", "gamma"])
@pytest.mark.parametrize("theta0", [0.4, 0.0])
def test_family_psi_in_the_batch(family, theta0):
    """engine.BATCHED_PSI_FAMILIES: their psi components as (K, 1) columns, one per point."""
    from glmmdiag.fit.engine import BATCHED_PSI_FAMILIES

    assert family in BATCHED_PSI_FAMILIES
    formula, data = {
        "ordbeta": ("severity ~ trt + (1 | block)", lambda: _sim("ordbeta_sim", ["block", "trt"])),
        "betabinomial": ("cbind(incidence, size - incidence) ~ period + (1 | herd)", lambda: datasets.load("cbpp")),
        "beta": ("severity ~ fungicide + (1 | block)", lambda: datasets.load("rust")),
        "gamma": ("severity ~ fungicide + (1 | block)", lambda: datasets.load("rust")),
    }[family]
    fam = get_family(family, "log") if family == "gamma" else get_family(family)
    d = build_design(formula, data(), fam)
    prob = GLMMProblem(d, fam)
    p, k = d.X.shape[1], fam.n_psi
    beta = np.r_[{"ordbeta": 0.0, "betabinomial": -1.5, "beta": -1.0, "gamma": -1.0}[family], np.zeros(p - 1)]
    theta = np.array([theta0])
    psi = {"ordbeta": np.array([1.0, -2.0, 2.0]), "betabinomial": np.array([1.5]),
           "beta": np.array([1.0]), "gamma": np.array([0.5])}[family]
    prob.deviance_and_gradient(beta, theta, psi=psi)
    K = 1 + p + k
    betas = np.tile(beta, (K, 1))
    betas[1 : 1 + p] += 1e-3 * np.eye(p)
    psis = np.tile(psi, (K, 1))
    psis[1 + p :] += 1e-3 * np.eye(k)
    thetas = np.full(K, theta0)
    G = prob.diag_gradients_near(beta, theta, psi, betas, thetas, psis=psis)
    assert G is not None and G.shape == (K, 1 + p + k)
    _check_rows(d, fam, G, betas, thetas, psis)


@pytest.mark.parametrize("case,family,link,formula,disp", [
    ("zigamma_sim", "gamma", "log", "y ~ x + (1 | g)", None),
    ("zitweedie_sim", "tweedie", None, "y ~ x + (1 | g)", None),
    ("zitweedie_sim", "tweedie", None, "y ~ x + (1 | g)", "~ x"),
    ("zibetabin_sim", "betabinomial", None, "cbind(y, size - y) ~ x + (1 | g)", None),
])
@pytest.mark.parametrize("theta0", [0.5, 0.0])
def test_zero_model_coefficients_of_the_newer_zero_inflated_families(case, family, link, formula, disp, theta0):
    """Zero-inflated Gamma (a hurdle: no mass at 0), tweedie (an extra base parameter, its power,
    in psi after the zero model) and betabinomial (trials): the zero model's coefficients vary per
    point in the batch, the dispersion model and the extras do not; each row equals its point's
    own gradient."""
    import pandas as pd
    from pathlib import Path

    df = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / f"{case}.csv")
    df["g"] = pd.Categorical(df["g"].astype(str))
    from glmmdiag.fit.submodels import response_family

    fam0 = get_family(family, link)
    d = build_design(formula, df, response_family(fam0, "~ z"))
    fam = build_composite(fam0, d, df, "~ z", disp, None)
    assert fam.ke == (1 if family == "tweedie" else 0) and len(fam.rowwise_psi) == 2
    prob = GLMMProblem(d, fam)
    p, k = d.X.shape[1], fam.n_psi
    beta = np.r_[0.3, 0.1 * np.ones(p - 1)]
    theta = np.array([theta0])
    psi = fam.psi_start(d.y, fam.link.inverse(d.X @ beta), d.w)
    prob.deviance_and_gradient(beta, theta, psi=psi)
    rows = list(fam.rowwise_psi)
    K = 1 + p + len(rows)
    betas = np.tile(beta, (K, 1))
    betas[1 : 1 + p] += 1e-3 * np.eye(p)
    psis = np.tile(psi, (K, 1))
    psis[1 + p :, rows] += 1e-3 * np.eye(len(rows))
    thetas = np.full(K, theta0)
    G = prob.diag_gradients_near(beta, theta, psi, betas, thetas, psis=psis)
    assert G is not None and G.shape == (K, 1 + p + k)
    _check_rows(d, fam, G, betas, thetas, psis)
    # the extras (tweedie's power) and the dispersion model may not vary within a batch
    for j in [0] + ([k - 1] if fam.ke else []):
        Q = psis.copy()
        Q[1, j] += 1e-3
        with pytest.raises(ValueError):
            fam.eta_derivs(d.y, np.tile(d.X @ beta, (K, 1)), d.w, Q, 2)
