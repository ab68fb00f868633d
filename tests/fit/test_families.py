"""Response families (issue 3): log densities against scipy.stats, derivatives in
eta and in the extra parameters psi against finite differences, draws against the distributions'
moments, CDFs against scipy.stats, the dispersion mapping against glmmTMB's reference fits, and the
bad-input messages."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from scipy import stats

from glmmdiag.fit.families import FAMILIES, get_family

N = 40  # rows per derivative / density check


# ------------------------------------------------------------------------------- the cases
def _mu_range(fam, link):
    if fam in ("binomial", "beta"):
        return 0.05, 0.95
    if link == "identity" and fam in ("gaussian", "t"):
        return -3.0, 3.0
    return 0.4, 6.0


def _draw_y(fam, mu, w, rng):
    """Valid responses drawn from scipy/numpy directly (not from the family under test)."""
    n = mu.shape[0]
    if fam == "binomial":
        return rng.binomial(w.astype(int), mu).astype(float)
    if fam in ("poisson", "nbinom1", "nbinom2"):
        return rng.integers(0, 15, n).astype(float)
    if fam == "gamma":
        return rng.uniform(0.05, 9.0, n)
    if fam == "beta":
        return rng.uniform(0.01, 0.99, n)
    return mu + rng.standard_normal(n) * 2.0


def _draw_psi(fam, kwargs, rng):
    if fam in ("binomial", "poisson"):
        return None
    if fam == "t" and kwargs.get("df") is None:
        return np.array([rng.uniform(-0.5, 0.7), np.log(rng.uniform(1.5, 20.0))])
    return np.array([rng.uniform(-1.2, 1.5)])


def _weights(fam, n, rng):
    if fam == "binomial":
        return rng.integers(1, 12, n).astype(float)
    return rng.uniform(0.5, 2.0, n)


CASES = [
    (name, kwargs, link)
    for name, kwargs in [("binomial", {}), ("poisson", {}), ("gaussian", {}), ("gamma", {}), ("beta", {}),
                         ("nbinom2", {}), ("nbinom1", {}), ("t", {}), ("t", {"df": 4.5})]
    for link in FAMILIES[name].allowed_links
]
IDS = [f"{n}{'-df' if k else ''}-{l}" for n, k, l in CASES]


def _setup(name, kwargs, link, seed=0):
    rng = np.random.default_rng([zlib.crc32(f"{name}-{link}-{kwargs}".encode()), seed])
    fam = get_family(name, link, **kwargs)
    lo, hi = _mu_range(name, link)
    mu = rng.uniform(lo, hi, N)
    w = _weights(name, N, rng)
    y = _draw_y(name, mu, w, rng)
    psi = _draw_psi(name, kwargs, rng)
    return fam, y, mu, w, psi


def scipy_logdens(fam, y, mu, w, psi):
    """Log density per row from scipy.stats with glmmTMB's parameterisation (weights as documented)."""
    name = fam.name
    if name == "binomial":
        return stats.binom.logpmf(y, w, mu)
    if name == "poisson":
        return w * stats.poisson.logpmf(y, mu)
    if name == "gaussian":
        return stats.norm.logpdf(y, mu, np.exp(psi[0]) / np.sqrt(w))  # precision weights
    if name == "gamma":
        shape = np.exp(-psi[0])
        return w * stats.gamma(a=shape, scale=mu / shape).logpdf(y)
    if name == "beta":
        phi = np.exp(psi[0])
        return w * stats.beta(mu * phi, (1 - mu) * phi).logpdf(y)
    if name == "nbinom2":
        th = np.exp(psi[0])
        return w * stats.nbinom(n=th, p=th / (th + mu)).logpmf(y)
    if name == "nbinom1":
        phi = np.exp(psi[0])
        return w * stats.nbinom(n=mu / phi, p=1 / (1 + phi)).logpmf(y)
    if name == "t":
        nu = np.exp(psi[1]) if fam.df is None else fam.df
        return w * stats.t(nu, loc=mu, scale=np.exp(psi[0])).logpdf(y)
    raise AssertionError(name)


def scipy_dist(fam, mu, w, psi):
    """Frozen scipy distribution of one row's response (w = trials for binomial, 1 otherwise)."""
    name = fam.name
    if name == "binomial":
        return stats.binom(w, mu)
    if name == "poisson":
        return stats.poisson(mu)
    if name == "gaussian":
        return stats.norm(mu, np.exp(psi[0]) / np.sqrt(w))
    if name == "gamma":
        shape = np.exp(-psi[0])
        return stats.gamma(a=shape, scale=mu / shape)
    if name == "beta":
        phi = np.exp(psi[0])
        return stats.beta(mu * phi, (1 - mu) * phi)
    if name == "nbinom2":
        th = np.exp(psi[0])
        return stats.nbinom(n=th, p=th / (th + mu))
    if name == "nbinom1":
        phi = np.exp(psi[0])
        return stats.nbinom(n=mu / phi, p=1 / (1 + phi))
    if name == "t":
        nu = np.exp(psi[1]) if fam.df is None else fam.df
        return stats.t(nu, loc=mu, scale=np.exp(psi[0]))
    raise AssertionError(name)


def fd(f, x, h):
    """Five-point central difference of f at x (elementwise)."""
    return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h)


def assert_close(a, b, rtol=1e-6, what=""):
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = 1.0 + np.max(np.abs(b))
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=what)


# ------------------------------------------------------------------------------- densities
@pytest.mark.parametrize("name, kwargs, link", CASES, ids=IDS)
def test_loglik_matches_scipy(name, kwargs, link):
    fam, y, mu, w, psi = _setup(name, kwargs, link)
    expected = scipy_logdens(fam, y, mu, w, psi)
    assert np.all(np.isfinite(expected))
    np.testing.assert_allclose(fam.loglik(y, mu, w, psi), expected, rtol=1e-10, atol=1e-10)
    # eta_derivs' l plus the data-only constant is the same full log density
    l_eta = fam.eta_derivs(y, fam.link.link(mu), w, psi)[0] + fam.loglik_const(y, w)
    np.testing.assert_allclose(l_eta, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name, kwargs, link", CASES, ids=IDS)
def test_eta_derivatives_match_finite_differences(name, kwargs, link):
    fam, y, mu, w, psi = _setup(name, kwargs, link)
    eta = fam.link.link(mu)
    h = 1e-3 * np.maximum(1.0, np.abs(eta))
    if link == "inverse":
        h = 1e-3 * np.abs(eta)
    l, s, W, dW = fam.eta_derivs(y, eta, w, psi)
    comp = lambda i: (lambda e: fam.eta_derivs(y, e, w, psi)[i])  # noqa: E731
    assert_close(s, fd(comp(0), eta, h), what="s")
    assert_close(W, -fd(comp(1), eta, h), what="W")
    assert_close(dW, fd(comp(2), eta, h), what="dW")
    # mu derivatives too
    _, l1, l2, l3 = fam.mu_derivs(y, mu, w, psi)
    if name in ("binomial", "beta"):
        hm = 1e-3 * np.minimum(mu, 1 - mu)
    else:
        hm = 1e-3 * np.maximum(1.0, np.abs(mu))
    mcomp = lambda i: (lambda m: fam.mu_derivs(y, m, w, psi)[i])  # noqa: E731
    assert_close(l1, fd(mcomp(0), mu, hm), rtol=1e-5, what="l_mu")
    assert_close(l2, fd(mcomp(1), mu, hm), rtol=1e-5, what="l_mumu")
    assert_close(l3, fd(mcomp(2), mu, hm), rtol=1e-5, what="l_mumumu")


@pytest.mark.parametrize("name, kwargs, link", [c for c in CASES if c[0] not in ("binomial", "poisson")],
                         ids=[i for c, i in zip(CASES, IDS) if c[0] not in ("binomial", "poisson")])
def test_psi_derivatives_match_finite_differences(name, kwargs, link):
    fam, y, mu, w, psi = _setup(name, kwargs, link)
    eta = fam.link.link(mu)
    derivs = fam.psi_derivs(y, eta, w, psi)
    assert len(derivs) == fam.n_psi == len(psi)
    H = fam.psi_hessian(y, eta, w, psi)
    assert H.shape == (N, fam.n_psi, fam.n_psi)
    h = 1e-3
    for k in range(fam.n_psi):
        def shifted(t, i, k=k):
            p = psi.copy()
            p[k] += t
            return fam.eta_derivs(y, eta, w, p)[i]

        l_psi, s_psi, W_psi, l_pp = derivs[k]
        zero = 0.0
        assert_close(l_psi, fd(lambda t: shifted(t, 0), zero, h), what=f"l_psi[{k}]")
        assert_close(s_psi, fd(lambda t: shifted(t, 1), zero, h), what=f"s_psi[{k}]")
        assert_close(W_psi, fd(lambda t: shifted(t, 2), zero, h), what=f"W_psi[{k}]")
        assert_close(l_pp, H[:, k, k], rtol=1e-12, what="diag of psi_hessian")
        for j in range(fam.n_psi):
            def grad_j(t, j=j, k=k):
                p = psi.copy()
                p[k] += t
                return fam.psi_derivs(y, eta, w, p)[j][0]
            assert_close(H[:, j, k], fd(grad_j, zero, h), what=f"H[{j},{k}]")
    np.testing.assert_allclose(fam.psi_hessian(y, eta, w, psi, summed=True), H.sum(axis=0), rtol=1e-12)


def test_no_psi_families_and_two_dimensional_calls():
    rng = np.random.default_rng(5)
    for name in ("binomial", "poisson"):
        fam = get_family(name)
        assert fam.psi_names == () and fam.n_psi == 0
        assert fam.psi_derivs(np.ones(3), np.zeros(3), np.ones(3), None) == []
        assert fam.psi_hessian(np.ones(3), np.zeros(3), np.ones(3), None).shape == (3, 0, 0)
        assert fam.psi_start(np.ones(3), np.ones(3), np.ones(3)).shape == (0,)
        assert fam.dispersion(None) == 1.0
    # the Laplace code evaluates (n, k) grids with y and w as (n, 1) columns
    for name, psi in [("gamma", [0.1]), ("nbinom2", [0.3]), ("t", [0.0, 1.5]), ("beta", [2.0])]:
        fam = get_family(name, "log" if name != "beta" else None)
        n = 6
        mu = rng.uniform(0.2, 0.8, n)
        y = mu * 1.1 if name != "nbinom2" else np.arange(n, dtype=float)
        eta = fam.link.link(mu)[:, None] + np.linspace(-0.1, 0.1, 3)
        out = fam.eta_derivs(y[:, None], eta, np.ones((n, 1)), np.array(psi))
        col = fam.eta_derivs(y, eta[:, 2], np.ones(n), np.array(psi))
        for a, b in zip(out, col):
            assert a.shape == (n, 3)
            np.testing.assert_allclose(a[:, 2], b, rtol=1e-13)


# ------------------------------------------------------------------------------- draws and CDF
MOMENT_CASES = [
    ("binomial", {}, None, 7.0),
    ("poisson", {}, None, 1.0),
    ("gaussian", {}, [np.log(1.7)], 2.0),
    ("gamma", {}, [np.log(0.3)], 1.0),
    ("beta", {}, [np.log(12.0)], 1.0),
    ("nbinom2", {}, [np.log(1.4)], 1.0),
    ("nbinom1", {}, [np.log(2.1)], 1.0),
    ("t", {}, [np.log(0.8), np.log(15.0)], 1.0),
    ("t", {"df": 12.0}, [np.log(1.3)], 1.0),
]


@pytest.mark.parametrize("name, kwargs, psi, w", MOMENT_CASES,
                         ids=[f"{c[0]}{'-df' if c[1] else ''}" for c in MOMENT_CASES])
def test_sample_moments(name, kwargs, psi, w):
    fam = get_family(name, **kwargs)
    psi = None if psi is None else np.array(psi)
    rng = np.random.default_rng(11)
    ndraw = 100_000
    for m in ([0.2, 0.7] if name in ("binomial", "beta") else [0.6, 4.0]):
        mu = np.full(ndraw, m)
        x = fam.sample(mu, np.full(ndraw, w), rng, psi)
        assert x.shape == mu.shape
        dist = scipy_dist(fam, m, w, psi)
        mean, var = dist.mean(), dist.var()
        if name == "binomial":
            assert mean == pytest.approx(w * m) and var == pytest.approx(w * fam.variance(m))
        else:
            assert mean == pytest.approx(m)
            assert var == pytest.approx(fam.variance(np.array(m), psi) / (w if name == "gaussian" else 1.0))
        xbar, s2 = x.mean(), x.var(ddof=1)
        m4 = np.mean((x - xbar) ** 4)
        assert abs(xbar - mean) < 5 * np.sqrt(var / ndraw), (xbar, mean)
        assert abs(s2 - var) < 5 * np.sqrt(max(m4 - s2**2, 0.0) / ndraw), (s2, var)
        if name in ("poisson", "binomial", "nbinom1", "nbinom2"):
            assert np.all(x == np.round(x)) and np.all(x >= 0)
        if name == "beta":
            assert np.all((x > 0) & (x < 1))


@pytest.mark.parametrize("name, kwargs, link", [c for c in CASES if c[2] == FAMILIES[c[0]].default_link],
                         ids=[i for c, i in zip(CASES, IDS) if c[2] == FAMILIES[c[0]].default_link])
def test_cdf_matches_scipy(name, kwargs, link):
    fam, y, mu, w, psi = _setup(name, kwargs, link, seed=3)
    if name != "binomial":
        w_dist = np.ones_like(w) if name != "gaussian" else w
    else:
        w_dist = w
    dist = scipy_dist(fam, mu, w_dist, psi)
    np.testing.assert_allclose(fam.cdf(y, mu, w_dist, psi), dist.cdf(y), rtol=1e-9, atol=1e-12)
    lower = fam.cdf_lower(y, mu, w_dist, psi)
    if fam.discrete:
        np.testing.assert_allclose(lower, dist.cdf(y - 1), rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(lower, fam.cdf(y - 1, mu, w_dist, psi))
        assert np.all(lower[y == 0] == 0.0)
        # the jump at y is the probability mass
        np.testing.assert_allclose(fam.cdf(y, mu, w_dist, psi) - lower, dist.pmf(y), rtol=1e-8, atol=1e-12)
    else:
        np.testing.assert_array_equal(lower, fam.cdf(y, mu, w_dist, psi))


# ------------------------------------------------------------------------------- starting values
@pytest.mark.parametrize("name, psi_true", [
    ("gaussian", [0.4]), ("gamma", [np.log(0.25)]), ("beta", [np.log(20.0)]), ("nbinom2", [np.log(2.0)]),
    ("nbinom1", [np.log(1.5)]), ("t", [np.log(0.7), np.log(6.0)]),
])
def test_psi_start_near_truth(name, psi_true):
    fam = get_family(name)
    rng = np.random.default_rng(2)
    n = 20_000
    mu = rng.uniform(0.2, 0.8, n) if name == "beta" else rng.uniform(1.0, 5.0, n)
    psi_true = np.array(psi_true)
    y = fam.sample(mu, np.ones(n), rng, psi_true)
    start = fam.psi_start(y, mu, np.ones(n))
    assert start.shape == (fam.n_psi,)
    assert abs(start[0] - psi_true[0]) < 0.1
    if name == "t":
        assert 2.5 <= np.exp(start[1]) <= 100


# ------------------------------------------------------------------------------- glmmTMB mapping
@pytest.mark.parametrize("case, fam_name, sign", [
    ("rust_gamma", "gamma", -1.0),        # betad = log(shape) = -log(phi)
    ("rust_beta", "beta", 1.0),           # betad = log(phi), the precision
    ("salamanders_nbinom2", "nbinom2", 1.0),  # betad = log(theta)
    ("salamanders_nbinom1", "nbinom1", 1.0),  # betad = log(phi)
    ("sleepstudy_glmmTMB_ML", "gaussian", 0.5),  # betad = log(sigma^2)
])
def test_dispersion_matches_glmmtmb_sigma(load_reference, case, fam_name, sign):
    ref = load_reference(case)["fit"]
    fam = get_family(fam_name, ref["link"])
    psi = np.array([sign * ref["betad"]])
    assert fam.dispersion(psi) == pytest.approx(ref["sigma"], rel=1e-10)
    assert fam.glmmtmb_betad(psi) == pytest.approx(ref["betad"], rel=1e-12)
    assert ref["family"] == fam.display_name


def test_gamma_dispersion_is_cv():
    fam = get_family("gamma", "log")
    psi = np.array([np.log(0.09)])  # phi = 0.09, shape 11.1
    assert fam.dispersion(psi) == pytest.approx(0.3)
    mu = np.array([2.0, 10.0])
    np.testing.assert_allclose(np.sqrt(fam.variance(mu, psi)) / mu, 0.3)


def test_t_dispersion_and_df():
    fam = get_family("t")
    psi = np.array([np.log(2.0), np.log(7.0)])
    assert fam.psi_names == ("log_sigma", "log_df")
    assert fam.dispersion(psi) == pytest.approx(2.0)
    assert fam.dispersion_extra(psi) == {"df": pytest.approx(7.0)}
    fixed = get_family("student_t", df=3)
    assert fixed.psi_names == ("log_sigma",) and fixed.n_psi == 1
    assert fixed.dispersion_extra(np.array([0.0])) == {"df": 3.0}
    relinked = get_family(fixed, "log")
    assert relinked.link.name == "log" and relinked.df == 3.0


# ------------------------------------------------------------------------------- registry
def test_registry_names_aliases_and_links():
    assert get_family("Gamma").name == "gamma" and get_family("Gamma").display_name == "Gamma"
    assert get_family("gamma").link.name == "inverse"  # R's Gamma() default
    assert get_family("beta_family").name == "beta" and get_family("beta").link.name == "logit"
    assert get_family("negative_binomial").name == "nbinom2"
    assert get_family("nbinom1").link.name == "log"
    for alias in ("t", "student_t", "t_family"):
        assert get_family(alias).name == "t" and get_family(alias).link.name == "identity"
    for name in ("binomial", "poisson"):
        assert get_family(name).display_name == name
    assert get_family("gaussian", "log").psi_names == ("log_sigma",)
    for name, link in [("beta", "log"), ("gamma", "logit"), ("nbinom2", "inverse"), ("t", "cloglog"),
                       ("gaussian", "sqrt"), ("nbinom1", "probit")]:
        with pytest.raises(ValueError, match=rf"link '{link}' is not available for the {name} family"):
            get_family(name, link)
    with pytest.raises(ValueError, match="family"):
        get_family("poisson", df=3)


def test_missing_psi_is_an_error():
    fam = get_family("nbinom2")
    with pytest.raises(ValueError, match="log_theta"):
        fam.loglik(np.array([1.0]), np.array([1.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="component"):
        get_family("t").loglik(np.array([1.0]), np.array([1.0]), np.array([1.0]), np.array([0.0]))


# ------------------------------------------------------------------------------- bad input
def test_beta_outside_unit_interval():
    fam = get_family("beta")
    y = np.array([0.2, 0.0, 0.5, 1.0, 1.0, 0.7])
    with pytest.raises(ValueError) as exc:
        fam.check_response(y, np.ones(6), "severity")
    msg = str(exc.value)
    assert "'severity'" in msg and "3 of 6 rows" in msg
    assert "1 with y <= 0" in msg and "2 with y >= 1" in msg
    assert "(y*(n - 1) + 0.5)/n" in msg and "n = 6" in msg and "Smithson" in msg
    fam.check_response(np.array([0.01, 0.5, 0.99]), np.ones(3), "severity")


def test_gamma_nonpositive():
    fam = get_family("gamma", "log")
    with pytest.raises(ValueError, match=r"'sev' has 2 of 4 rows with y <= 0.*Gamma"):
        fam.check_response(np.array([1.0, 0.0, -2.0, 3.0]), np.ones(4), "sev")
    fam.check_response(np.array([1.0, 0.5]), np.ones(2), "sev")


@pytest.mark.parametrize("name", ["nbinom1", "nbinom2"])
def test_counts_negative_or_fractional(name):
    fam = get_family(name)
    with pytest.raises(ValueError, match=r"'count' has 1 negative values of 3 rows"):
        fam.check_response(np.array([1.0, -1.0, 2.0]), np.ones(3), "count")
    with pytest.raises(ValueError, match=r"'count' has 2 non-integer values of 3 rows"):
        fam.check_response(np.array([1.5, 1.0, 2.2]), np.ones(3), "count")
    with pytest.raises(ValueError, match=r"weights.*1 of 3 rows"):
        fam.check_response(np.array([1.0, 1.0, 2.0]), np.array([1.0, -1.0, 1.0]), "count")


@pytest.mark.parametrize("df", [0, -2.0, np.nan])
def test_t_bad_df(df):
    with pytest.raises(ValueError, match=r"degrees of freedom df must be a finite number > 0"):
        get_family("t", df=df)


def test_t_nonfinite_response():
    with pytest.raises(ValueError, match=r"'y' has 1 non-finite"):
        get_family("t").check_response(np.array([1.0, np.inf]), np.ones(2), "y")
