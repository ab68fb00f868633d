"""The Laplace objective with a dispersion family (issue 3): its exact gradient in (theta, beta, psi)
against central finite differences, including Student t and non-canonical links where single rows
have a negative observed weight W, crossed terms and a random slope; and the deviance at glmmTMB's
estimates against glmmTMB's logLik."""
import numpy as np
import pandas as pd
import pytest

from glmmdiag.fit.design import build_design
from glmmdiag.fit.engine import glm_ml
from glmmdiag.fit.families import get_family
from glmmdiag.fit.laplace import GLMMProblem
from glmmdiag.fit.optimize import fd_gradient

SAL = "count ~ spp + mined + (1 | site)"


def _synthetic(seed=3, n_groups=12, per=15):
    """Positive, (0,1) and real responses with a random intercept and slope by g (and crossed h)."""
    rng = np.random.default_rng(seed)
    n = n_groups * per
    g = np.repeat(np.arange(n_groups), per)
    h = np.tile(np.arange(5), n // 5 + 1)[:n]
    x = rng.normal(size=n)
    b0 = rng.normal(scale=0.5, size=n_groups)
    b1 = rng.normal(scale=0.3, size=n_groups)
    c0 = rng.normal(scale=0.4, size=5)
    eta = 0.3 + 0.5 * x + b0[g] + b1[g] * x + c0[h]
    yt = 1.0 + eta + 0.6 * rng.standard_t(3, size=n)
    yt[:4] += np.array([8.0, -7.0, 6.0, -9.0])  # outliers: negative observed weights under t
    mu01 = 1.0 / (1.0 + np.exp(-eta))
    return pd.DataFrame({
        "yt": yt,
        "ypos": rng.gamma(4.0, np.exp(eta) / 4.0),
        "y01": rng.beta(mu01 * 20, (1 - mu01) * 20),
        "x": x,
        "g": pd.Categorical([f"g{i}" for i in g]),
        "h": pd.Categorical([f"h{i}" for i in h]),
    })


CASES = [
    # (data, formula, family, link, family kwargs)
    ("Salamanders", SAL, "nbinom2", None, {}),
    ("Salamanders", SAL, "nbinom1", None, {}),
    ("Salamanders", "count ~ mined + (1 | site) + (1 | spp)", "nbinom2", None, {}),
    ("Salamanders", "count ~ mined + cover + (1 + cover | site)", "nbinom1", None, {}),
    ("Salamanders", "count ~ mined + (1 | site)", "nbinom2", "sqrt", {}),
    ("rust", "severity ~ fungicide + (1 | block)", "beta", None, {}),
    ("rust", "severity_pct ~ fungicide + (1 | block)", "gamma", "log", {}),
    ("synthetic", "ypos ~ x + (1 | g)", "gamma", "inverse", {}),
    ("synthetic", "ypos ~ x + (1 + x | g) + (1 | h)", "gamma", "log", {}),
    ("synthetic", "y01 ~ x + (1 | g) + (1 | h)", "beta", "probit", {}),
    ("synthetic", "yt ~ x + (1 | g)", "t", None, {}),
    ("synthetic", "yt ~ x + (x | g)", "t", None, {}),
    ("synthetic", "yt ~ x + (1 | g) + (1 | h)", "t", None, {"df": 3.0}),
    ("synthetic", "ypos ~ x + (1 | g)", "gaussian", "log", {}),
]


def _problem(load_data, data, formula, family, link, kw):
    fam = get_family(family, link, **kw)
    df = _synthetic() if data == "synthetic" else load_data(data)
    d = build_design(formula, df, fam)
    return fam, d, GLMMProblem(d, fam)


def _params(fam, d, prob, seed=1):
    rng = np.random.default_rng(seed)
    beta, psi, _, _ = glm_ml(d.X, d.y, d.w, d.offset, fam)
    theta = prob.thetamap.initial() * 0.4 + rng.uniform(0.05, 0.2, prob.thetamap.n)
    beta = beta + rng.normal(0, 0.02, beta.size)
    psi = psi + rng.normal(0, 0.1, psi.size)
    return theta, beta, psi


@pytest.mark.parametrize("data, formula, family, link, kw", CASES,
                         ids=[f"{c[2]}-{c[3] or 'default'}-{c[1]}" for c in CASES])
def test_gradient_with_psi_matches_finite_differences(load_data, data, formula, family, link, kw):
    fam, d, prob = _problem(load_data, data, formula, family, link, kw)
    theta, beta, psi = _params(fam, d, prob)
    nt, p = len(theta), len(beta)
    dev, grad = prob.deviance_and_gradient(beta, theta, psi=psi)
    assert np.isfinite(dev) and grad is not None
    assert grad.shape == (nt + p + fam.n_psi,)
    x = np.concatenate([theta, beta, psi])

    def f(z):
        prob.u = np.zeros(prob.nq)  # every evaluation from the same PIRLS start
        return prob.laplace_deviance(z[nt : nt + p], z[:nt], psi=z[nt + p :])

    num = fd_gradient(f, x, step=1e-5, central=True)
    scale = 1.0 + np.abs(num).max()
    np.testing.assert_allclose(grad, num, rtol=2e-5, atol=2e-6 * scale)


def test_t_case_has_negative_observed_weights(load_data):
    """The t cases above do exercise W < 0 at the conditional modes (the outliers)."""
    fam, d, prob = _problem(load_data, "synthetic", "yt ~ x + (1 | g)", "t", None, {})
    theta, beta, psi = _params(fam, d, prob)
    W = prob.pirls(beta, theta, psi=psi)[6]
    assert (W < 0).sum() >= 2


@pytest.mark.parametrize("case, formula, family, link, to_psi", [
    ("salamanders_nbinom2", SAL, "nbinom2", None, lambda betad: betad),
    ("salamanders_nbinom1", SAL, "nbinom1", None, lambda betad: betad),
    ("rust_beta", "severity ~ fungicide + (1 | block)", "beta", None, lambda betad: betad),
    ("rust_gamma", "severity_pct ~ fungicide + (1 | block)", "gamma", "log", lambda betad: -betad),
])
def test_deviance_at_glmmtmb_estimates(load_data, load_reference, case, formula, family, link, to_psi):
    """At glmmTMB's (beta, theta, betad) our Laplace deviance is glmmTMB's -2 logLik."""
    ref = load_reference(case)
    fam = get_family(family, link)
    d = build_design(formula, load_data(ref["data"].split("/")[-1][:-4]), fam)
    prob = GLMMProblem(d, fam)
    fit = ref["fit"]
    theta = np.atleast_1d(fit["random"][0]["sd"])
    psi = np.atleast_1d(to_psi(fit["betad"]))
    dev = prob.laplace_deviance(np.asarray(fit["fixed"]["estimate"]), theta, psi=psi)
    assert dev == pytest.approx(-2 * fit["logLik"], abs=1e-6)


def _family_cases():
    from glmmdiag.fit.families import FAMILIES

    out = []
    for name, kw in [("gaussian", {}), ("gamma", {}), ("beta", {}), ("nbinom2", {}), ("nbinom1", {}),
                     ("t", {}), ("t", {"df": 4.0})]:
        for link in FAMILIES[name].allowed_links:
            out.append((name, kw, link))
    return out


@pytest.mark.parametrize("name, kw, link", _family_cases())
@pytest.mark.parametrize("read_only", [True, False])
def test_laplace_gradient_terms_match_separate_derivatives(name, kw, link, read_only):
    """The fused/cached per-row terms the Laplace gradient uses equal eta_derivs' dW and
    psi_derivs' (l_psi, s_psi, W_psi), with and without the read-only-y caches."""
    fam = get_family(name, link, **kw)
    rng = np.random.default_rng(4)
    n = 60
    mu = {"beta": rng.uniform(0.1, 0.9, n)}.get(name, rng.uniform(0.5, 4.0, n))
    eta = fam.link.link(mu)
    if name == "beta":
        y = rng.uniform(0.02, 0.98, n)
    elif name in ("nbinom1", "nbinom2"):
        y = rng.integers(0, 12, n).astype(float)
    elif name == "gamma":
        y = rng.uniform(0.05, 6.0, n)
    else:
        y = mu + rng.standard_normal(n)
    if read_only:
        y.flags.writeable = False
    w = rng.uniform(0.5, 2.0, n)
    psi = np.array([0.2, 1.3])[: fam.n_psi]
    for _ in range(2):  # the second call may come from a cache
        dW, terms = fam.laplace_gradient_terms(y, eta, w, psi)
        np.testing.assert_allclose(dW, fam.eta_derivs(y, eta, w, psi)[3], rtol=1e-12, atol=1e-12)
        for got, want in zip(terms, fam.psi_derivs(y, eta, w, psi)):
            for a, b in zip(got, want[:3]):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # order=2 gives the same (l, s, W)
    full, short = fam.eta_derivs(y, eta, w, psi), fam.eta_derivs(y, eta, w, psi, 2)
    for a, b in zip(full[:3], short[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
