"""Objectives pinned at fixed parameters to lme4's values, and the exact
Laplace gradient checked against central finite differences."""
import numpy as np
import pytest

from glmmdiag.fit.design import build_design
from glmmdiag.fit.engine import glm_irls
from glmmdiag.fit.families import get_family
from glmmdiag.fit.laplace import GLMMProblem
from glmmdiag.fit.lmm import LMMProblem
from glmmdiag.fit.optimize import fd_gradient

SLEEP = "Reaction ~ Days + (Days | Subject)"
CONTRA = "use ~ age + I(age^2) + urban + livch + (1 | district)"


@pytest.mark.parametrize("case, reml, key", [("sleepstudy_lmer_ML", False, "deviance_fn"),
                                             ("sleepstudy_lmer_REML", True, "REMLcrit")])
def test_lmm_criterion_at_lme4_theta(load_data, load_reference, case, reml, key):
    ref = load_reference(case)["fit"]
    prob = LMMProblem(build_design(SLEEP, load_data("sleepstudy"), get_family("gaussian")), reml)
    theta = np.asarray(ref["theta"])
    assert prob.objective(theta) == pytest.approx(ref[key], abs=1e-7)
    sol = prob.solution(theta)
    np.testing.assert_allclose(sol.beta, ref["fixed"]["estimate"], rtol=1e-8)
    assert sol.sigma == pytest.approx(ref["sigma"], rel=1e-7)


def test_laplace_and_agq_deviance_at_glmer_estimates(load_data, load_reference):
    fam = get_family("binomial")
    d = build_design(CONTRA, load_data("Contraception"), fam)
    r1 = load_reference("contra_glmer_nAGQ1")["fit"]
    dev1 = GLMMProblem(d, fam).laplace_deviance(np.asarray(r1["fixed"]["estimate"]), np.atleast_1d(r1["theta"]))
    # glmer's PIRLS stops at a looser tolerance: our mode gives a deviance no higher, within 1e-3
    assert -2 * r1["logLik"] - 1e-3 <= dev1 <= -2 * r1["logLik"] + 1e-9
    r9 = load_reference("contra_glmer_nAGQ9")["fit"]
    dev9 = GLMMProblem(d, fam, n_agq=9).laplace_deviance(np.asarray(r9["fixed"]["estimate"]),
                                                         np.atleast_1d(r9["theta"]))
    assert dev9 == pytest.approx(-2 * r9["logLik"], abs=1e-6)


@pytest.mark.parametrize(
    "data, formula, family, link",
    [
        ("Contraception", CONTRA, "binomial", None),
        ("Contraception", "use ~ age + urban + (1 + urban | district)", "binomial", None),
        ("Contraception", "use ~ age + (1 | livch) + (1 + urban | district)", "binomial", "cloglog"),
        ("Contraception", "use ~ age + urban + (1 | district) + (0 + age | district)", "binomial", "probit"),
        ("grouseticks", "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "poisson", None),
        ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", None),
    ],
)
def test_exact_gradient_matches_finite_differences(load_data, data, formula, family, link):
    fam = get_family(family, link)
    d = build_design(formula, load_data(data), fam)
    prob = GLMMProblem(d, fam)
    rng = np.random.default_rng(1)
    theta = prob.thetamap.initial() * 0.6 + rng.uniform(0, 0.2, prob.thetamap.n)
    beta = glm_irls(d.X, d.y, d.w, d.offset, fam)[0] + rng.normal(0, 0.05, d.X.shape[1])
    _, grad = prob.deviance_and_gradient(beta, theta)
    nt = len(theta)
    x = np.concatenate([theta, beta])
    num = fd_gradient(lambda z: prob.laplace_deviance(z[nt:], z[:nt]), x, step=1e-6, central=True)
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-4 * (1 + np.abs(num).max()) * 1e-2)


@pytest.mark.parametrize(
    "data, formula, family, link, k",
    [
        ("Contraception", CONTRA, "binomial", None, 9),
        ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", None, 25),
        ("Contraception", "use ~ age + urban + (0 + age | district)", "binomial", "probit", 7),
        ("grouseticks", "TICKS ~ YEAR + scale(HEIGHT) + (1 | LOCATION)", "poisson", None, 5),
    ],
)
def test_exact_agq_gradient_matches_finite_differences(load_data, data, formula, family, link, k):
    """The AGQ gradient follows the adaptive nodes (modes and scales) as the parameters move."""
    fam = get_family(family, link)
    d = build_design(formula, load_data(data), fam)
    prob = GLMMProblem(d, fam, n_agq=k)
    rng = np.random.default_rng(2)
    beta = np.zeros(d.X.shape[1])
    beta[0] = -0.5 if family == "binomial" else 0.3
    beta += rng.normal(0, 0.05, len(beta))
    theta = np.array([0.5])
    dev, grad = prob.agq_deviance_and_gradient(beta, theta)
    assert dev == pytest.approx(prob.laplace_deviance(beta, theta), abs=1e-9)
    x = np.concatenate([theta, beta])
    num = fd_gradient(lambda z: prob.laplace_deviance(z[1:], z[:1]), x, step=1e-6, central=True)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("formula, data, family", [
    ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "cbpp", "binomial"),
    ("count ~ spp + mined + (0 + cover | site)", "Salamanders", "poisson"),
    ("count ~ spp + mined + (1 | site)", "Salamanders", "nbinom2"),
    ("count ~ spp + mined + (1 | site)", "Salamanders", "nbinom1"),
    ("severity ~ fungicide + (1 | block)", "rust", "beta"),
    ("severity_pct ~ fungicide + (1 | block)", "rust", "gamma"),
    ("count ~ mined + (1 | site)", "Salamanders", "t"),
])
def test_batched_gradients_equal_one_at_a_time(load_data, formula, data, family):
    """The covariance matrix's finite differences evaluate the gradient at K nearby points in one
    batch (single scalar term): each row must equal deviance_and_gradient at that point."""
    fam = get_family(family)
    d = build_design(formula, load_data(data), fam)
    prob = GLMMProblem(d, fam)
    beta = glm_irls(d.X, d.y, d.w, d.offset, fam, psi=None if not fam.n_psi else np.zeros(fam.n_psi))[0]
    theta = np.array([0.7])
    psi = None if not fam.n_psi else np.full(fam.n_psi, 0.3)
    prob.deviance_and_gradient(beta, theta, psi=psi)
    p = len(beta)
    steps = 1e-3 * np.maximum(1.0, np.abs(np.concatenate([theta, beta])))
    thetas = theta[0] + np.concatenate([[steps[0]], np.zeros(p)])
    betas = beta + np.vstack([np.zeros(p), np.diag(steps[1:])])
    G = prob.diag_gradients_near(beta, theta, psi, betas, thetas)
    assert G is not None and G.shape == (p + 1, 1 + p + fam.n_psi)
    for k in range(p + 1):
        ref = GLMMProblem(d, fam).deviance_and_gradient(betas[k], np.array([thetas[k]]), psi=psi)[1]
        np.testing.assert_allclose(G[k], ref, rtol=1e-7, atol=1e-7 * np.max(np.abs(ref)))
