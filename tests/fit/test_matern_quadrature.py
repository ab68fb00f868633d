"""Matern's Bessel functions by quadrature (covstruct.bessel_k_quadrature) against scipy's kv, and the
exact correlation derivatives against central differences of the correlation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from glmmdiag.fit.covstruct import bessel_k_quadrature, make_structure


@pytest.mark.parametrize("nu", [0.05, 0.27, 0.5, 1.0, 1.3, 2.7, 6.0])
def test_quadrature_matches_kv(nu):
    x = np.geomspace(1e-5, 60.0, 800)
    k, k_lower, dk = bessel_k_quadrature(x, nu)
    scale = np.exp((1.0 - nu) * np.log(2.0) - special.gammaln(nu) + nu * np.log(x))  # Matern's prefactor
    # on the correlation scale (|f| <= 1) the quadrature is at rounding level
    assert np.max(np.abs(scale * (k - special.kv(nu, x)))) < 1e-13
    assert np.max(np.abs(scale * x * (k_lower - special.kv(nu - 1.0, x)))) < 1e-13
    # dK/dnu against a central difference of kv in the order (step 1e-5: its own error reaches
    # ~1e-8 on this scale near x = 0 for small nu, h^2 times the third derivative)
    h = 1e-5
    fd = (special.kv(nu + h, x) - special.kv(nu - h, x)) / (2.0 * h)
    assert np.max(np.abs(scale * (dk - fd))) < 1e-7


@pytest.mark.parametrize("c", [(0.5, -1.3), (2.0, 0.7), (-0.5, 1.5)])
def test_matern_correlation_derivatives_match_central_differences(c):
    coords = np.random.default_rng(1).uniform(0, 10, (60, 2))
    m = make_structure("mat", 60, coords)
    c = np.asarray(c, float)
    d = m.corr_derivatives(c)
    h = 1e-6
    for j in range(2):
        e = np.zeros(2)
        e[j] = h
        fd = (m.corr(c + e) - m.corr(c - e)) / (2.0 * h)
        np.testing.assert_allclose(d[j], fd, atol=1e-8)
