"""The composed family's derivatives (zero-inflation, hurdles, dispersion models) against central
finite differences of its own log density: in eta (s, W, dW), in the submodel coefficients (l_psi,
s_psi, W_psi, l_psipsi and the summed Hessian with its cross terms), row by row."""
from __future__ import annotations

import numpy as np
import pytest

from glmmdiag.fit.families import get_family
from glmmdiag.fit.submodels import CompositeFamily

N = 40


def _family(base, zero, disp_cols):
    rng = np.random.default_rng(3)
    bf = get_family(base, "log" if base == "gamma" else None)
    Xz = np.column_stack([np.ones(N), rng.normal(size=N)]) if zero else None
    Xd = None
    if bf.n_psi:
        Xd = np.ones((N, 1)) if disp_cols == 1 else np.column_stack([np.ones(N), rng.normal(size=N)])
    dn = [f"d{j}" for j in range(0 if Xd is None else Xd.shape[1])]
    zn = ["z0", "z1"] if zero else []
    fam = CompositeFamily(bf, Xd, Xz, zero, dn, zn,
                          truncated_name=f"truncated_{base}" if zero == "hurdle" else None)
    # [beta_disp, beta_zi, extras] (the extras: t's log df, tweedie's logit power)
    psi = np.r_[[0.4, -0.3][: len(dn)], [-0.6, 0.5][: len(zn)], [0.3] * fam.ke]
    y = rng.poisson(2.0, size=N).astype(float)
    y[:12] = 0.0
    if base in ("tweedie", "gamma"):  # zeros and positive amounts
        y = np.where(y > 0, y * rng.uniform(0.5, 1.5, size=N), 0.0)
    elif base == "t":
        y = rng.normal(0.5, 1.0, size=N)
    eta = rng.normal(0.5, 0.8, size=N)
    w = rng.uniform(0.5, 2.0, size=N)
    if base == "betabinomial":  # trials
        w = y + rng.integers(1, 5, size=N)
        eta = rng.normal(-0.5, 0.5, size=N)
    y.flags.writeable = False
    return fam, y, eta, w, psi


CONFIGS = [(b, z, d) for b in ("poisson", "nbinom2", "nbinom1") for z in ("zi", "hurdle") for d in (1, 2)
           if not (b == "poisson" and d == 2)]
# the zero-inflated continuous and trial families (Gamma: a hurdle, no mass at 0; tweedie: an
# extra base parameter) and dispersion models with extras
CONFIGS += [(b, "zi", d) for b in ("tweedie", "betabinomial", "gamma") for d in (1, 2)]
CONFIGS += [("tweedie", None, 2), ("t", None, 2)]


def _d(f, x, h):
    return (f(x + h) - f(x - h)) / (2.0 * h)


@pytest.mark.parametrize("unit_weights", [False, True])
@pytest.mark.parametrize("base,zero,disp_cols", CONFIGS)
def test_eta_derivatives_match_finite_differences(base, zero, disp_cols, unit_weights):
    fam, y, eta, w, psi = _family(base, zero, disp_cols)
    if unit_weights:
        if base == "betabinomial":  # its weights are trials
            pytest.skip("betabinomial's weights are its trials")
        w = np.ones(N)
        w.flags.writeable = False
    ll, s, W, dW = fam.eta_derivs(y, eta, w, psi, 3)
    assert np.all(np.isfinite(ll))
    h = 1e-5
    np.testing.assert_allclose(s, _d(lambda e: fam.eta_derivs(y, e, w, psi, 3)[0], eta, h), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(W, -_d(lambda e: fam.eta_derivs(y, e, w, psi, 3)[1], eta, h), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dW, _d(lambda e: fam.eta_derivs(y, e, w, psi, 3)[2], eta, h), rtol=1e-6, atol=1e-7)
    # order 2 gives the same first three
    for a, b in zip(fam.eta_derivs(y, eta, w, psi, 2)[:3], (ll, s, W)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("base,zero,disp_cols", CONFIGS)
def test_coefficient_derivatives_match_finite_differences(base, zero, disp_cols):
    fam, y, eta, w, psi = _family(base, zero, disp_cols)
    k = fam.n_psi
    assert k == len(psi)
    cols = fam.psi_derivs(y, eta, w, psi, second=True)
    assert len(cols) == k
    h = 1e-5
    for j in range(k):
        e = np.zeros(k)
        e[j] = 1.0

        def part(t, i):
            return fam.eta_derivs(y, eta, w, psi + t * e, 3)[i]

        l_p, s_p, W_p, l_pp = cols[j]
        np.testing.assert_allclose(l_p, _d(lambda t: part(t, 0), 0.0, h), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(s_p, _d(lambda t: part(t, 1), 0.0, h), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(W_p, _d(lambda t: part(t, 2), 0.0, h), rtol=1e-6, atol=1e-7)
        l_p_of = lambda t: fam.psi_derivs(y, eta, w, psi + t * e, second=False)[j][0]  # noqa: E731
        np.testing.assert_allclose(l_pp, _d(l_p_of, 0.0, h), rtol=1e-6, atol=1e-7)
    # the summed Hessian, cross terms included, is the Jacobian of the summed first derivatives
    H = fam.psi_hessian(y, eta, w, psi, summed=True)
    num = np.empty((k, k))
    for j in range(k):
        e = np.zeros(k)
        e[j] = h
        gp = [c[0].sum() for c in fam.psi_derivs(y, eta, w, psi + e, second=False)]
        gm = [c[0].sum() for c in fam.psi_derivs(y, eta, w, psi - e, second=False)]
        num[:, j] = (np.asarray(gp) - np.asarray(gm)) / (2.0 * h)
    np.testing.assert_allclose(H, num, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-12)
    # what the Laplace gradient takes: dW and the first three of each column
    dW, terms = fam.laplace_gradient_terms(y, eta, w, psi)
    np.testing.assert_allclose(dW, fam.eta_derivs(y, eta, w, psi, 3)[3], rtol=1e-12, atol=1e-12)
    for a, c in zip(terms, cols):
        for u, v in zip(a, c[:3]):
            np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("base,zero,disp_cols", CONFIGS)
def test_a_batch_of_points_equals_the_points_one_by_one(base, zero, disp_cols):
    """K points at once (eta (K, n), coefficient vectors (K, n_psi) differing in the zero model),
    as the covariance matrix's batched gradients evaluate them, give each point's own values."""
    fam, y, eta, w, psi = _family(base, zero, disp_cols)
    rng = np.random.default_rng(5)
    K = 3
    E = eta + 0.1 * rng.normal(size=(K, N))
    P = np.tile(psi, (K, 1))
    P[:, list(fam.rowwise_psi)] += 0.2 * rng.normal(size=(K, len(fam.rowwise_psi)))
    batch = fam.eta_derivs(y, E, w, P, 3)
    cols = fam.laplace_gradient_terms(y, E, w, P)
    for i in range(K):
        one = fam.eta_derivs(y, E[i], w, P[i], 3)
        for a, b in zip(batch, one):
            np.testing.assert_allclose(a[i], b, rtol=1e-12, atol=1e-12)
        dW, terms = fam.laplace_gradient_terms(y, E[i], w, P[i])
        np.testing.assert_allclose(cols[0][i], dW, rtol=1e-12, atol=1e-12)
        for tb, t1 in zip(cols[1], terms):
            for a, b in zip(tb, t1):
                np.testing.assert_allclose(np.broadcast_to(a, E.shape)[i], b, rtol=1e-12, atol=1e-12)
    if fam.kd:  # the dispersion coefficients may not differ within a batch
        Q = P.copy()
        Q[1, 0] += 0.1
        with pytest.raises(ValueError):
            fam.eta_derivs(y, E, w, Q, 3)
