"""Families with a fused ``_fused_mu_terms`` (one set of polygamma values for the Laplace gradient
at the mode) give what the separate ``eta_derivs`` (order 3) and ``psi_derivs`` give."""
from __future__ import annotations

import numpy as np
import pytest

from glmmdiag.fit.families import get_family


@pytest.mark.parametrize("family", ["betabinomial", "nbinom1", "beta"])
def test_fused_gradient_terms_equal_the_separate_ones(family):
    fam = get_family(family)
    assert getattr(fam, "_fused_mu_terms", None) is not None
    rng = np.random.default_rng(0)
    n = 50
    if family == "betabinomial":
        w = rng.integers(1, 30, n).astype(float)
        y = np.floor(w * rng.random(n))
        eta = rng.normal(-1.0, 1.0, n)
    elif family == "nbinom1":
        w = np.ones(n)
        y = rng.poisson(3.0, n).astype(float)
        eta = rng.normal(1.0, 0.5, n)
    else:
        w = np.ones(n)
        y = rng.uniform(0.05, 0.95, n)
        eta = rng.normal(0.0, 1.0, n)
    psi = np.array([1.3])
    dW, terms = fam.laplace_gradient_terms(y, eta, w, psi)
    np.testing.assert_allclose(dW, fam.eta_derivs(y, eta, w, psi, 3)[3], rtol=1e-12, atol=1e-300)
    sep = fam.psi_derivs(y, eta, w, psi, second=False)
    assert len(terms) == len(sep) == fam.n_psi
    for t, s in zip(terms, sep):
        for a, b in zip(t, s[:3]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-300)
