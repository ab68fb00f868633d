"""Regressions from the seeded fuzz test (tests/fuzz_cases.py) outside penalised IRLS.

Each case ends in an honest outcome: a fit with finite estimates, or a GlmmdiagError/FitError whose
message names the problem -- never a raw numpy/scipy exception, a fit with a non-finite
log-likelihood, or numpy/scipy warnings sprayed at the user.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.linalg import LinAlgWarning

import glmmdiag
from glmmdiag.errors import FitError, GlmmdiagError, GlmmdiagWarning
from glmmdiag.fit.engine import _PsiCoords, _psi_whitening
from glmmdiag.fit.families import NBinom1, NBinom2, Poisson


def _finite_fit(fit):
    assert np.isfinite(fit.loglik)
    assert np.all(np.isfinite(fit.fixef.to_numpy()))
    assert np.all(np.isfinite(fit.theta))


def _no_foreign_warnings():
    """Turn numpy/scipy warnings into errors (glmmdiag's own warnings stay warnings)."""
    warnings.simplefilter("ignore", GlmmdiagWarning)
    warnings.simplefilter("error", RuntimeWarning)
    warnings.simplefilter("error", LinAlgWarning)


# ------------------------------------------------------------------ 1. non-finite start scaling
def test_psi_whitening_is_finite_without_a_usable_curvature():
    # scipy's cholesky(None) returns [[nan]]: PIRLS failing at the start gave Hp = None
    for H in (None, np.array([[np.nan]]), np.array([[np.inf]]), np.array([[-1.0]]), np.array([[0.0]])):
        R = _psi_whitening(H, 1)
        assert R.shape == (1, 1) and np.all(np.isfinite(R)) and R[0, 0] > 0
    assert np.allclose(_psi_whitening(np.array([[4.0]]), 1), [[2.0]])


def test_nbinom2_identity_start_outside_support_no_raw_valueerror():
    # seed 992, shrunk: the identity-link start gave a negative mean (raw scipy ValueError
    # "array must not contain infs or NaNs" from the psi whitening)
    data = pd.DataFrame({"y": np.array([0, 2, 0]), "g": pd.Categorical(["g10", "g9", "g10"])})
    offset = np.array([-0.5159309314186785, 1.5755559950506544, 1.1720641584172409])
    with warnings.catch_warnings():
        _no_foreign_warnings()
        try:
            fit = glmmdiag.glmm("y ~ 1 + (1|g)", data, family="nbinom2", link="identity", offset=offset)
        except FitError as e:
            assert "log link" in str(e)
        else:
            _finite_fit(fit)
            # the mean stays inside the support (>= 0) on every row
            assert np.all(fit.fitted() >= -1e-8)


def test_psi_coords_with_failed_start_curvature():
    class _Prob:  # the attributes _PsiCoords reads
        family = NBinom2("identity")
        w = np.ones(3)

    pc = _PsiCoords(_Prob(), np.array([1.0]), None)
    assert np.allclose(pc.to_psi(np.array([0.5])), [1.5])


# ------------------------------------------------------------------ 2. non-finite log-likelihood
def test_gamma_identity_fit_is_finite_or_fails_clearly():
    # seed 905, shrunk: the least-squares start left mu > 0; the fit came back with logLik = -inf
    data = pd.DataFrame({
        "y": [0.15767762460570733, 0.010710758596876566, 0.4498751405015188],
        "x": [2.7801560489066164e-07, 1.249418914188492e-08, -6.646301326320359e-08],
        "t": [2.1401960639983737, 0.9880238582617953, 2.1117133813944404]})
    with warnings.catch_warnings():
        _no_foreign_warnings()
        try:
            fit = glmmdiag.glmm("y ~ x + offset(log(t))", data, family="gamma", link="identity")
        except FitError as e:
            assert "support" in str(e) and "log link" in str(e)
        else:
            _finite_fit(fit)
            assert np.all(fit.fitted() > 0)


def test_non_finite_fit_is_a_fit_error_naming_the_link():
    # no start inside the support exists: a Gamma mean x * b must be > 0 at x = 1 and x = -1
    data = pd.DataFrame({"y": [1.0, 2.0, 1.5, 0.7], "x": [1.0, -1.0, 1.0, -1.0]})
    with warnings.catch_warnings():
        _no_foreign_warnings()
        with pytest.raises(FitError, match="(?s)gamma.*identity link.*log link"):
            glmmdiag.glmm("y ~ 0 + x", data, family="gamma", link="identity")


# ------------------------------------------------------------------ zero prior weights
def test_nbinom1_identity_zero_weight_is_clear_error():
    # seed 548, shrunk: the zero-weight row's negative mean made logLik NaN; without it one row is
    # left for a slope and the dispersion
    data = pd.DataFrame({"y": np.array([1, 0]), "x": [191.95800813045184, -618.3099309809593],
                         "w": [1.0, 0.0]})
    with warnings.catch_warnings():
        _no_foreign_warnings()
        with pytest.raises(GlmmdiagError, match="zero weight"):
            glmmdiag.glmm("y ~ x - 1", data, family="nbinom1", link="identity", weights="w")


@pytest.mark.parametrize("family", ["gamma", "nbinom2", "nbinom1", "poisson"])
def test_zero_weight_row_contributes_nothing(family):
    # the zero-weight row at x = -100 has a negative mean under the identity link
    rng = np.random.default_rng(1)
    x = np.r_[np.linspace(1, 10, 12), -100.0]
    y = np.r_[rng.gamma(5, (1 + x[:12]) / 5), 2.0]
    if family != "gamma":
        y = np.round(y)
    d = pd.DataFrame({"y": y, "x": x, "w": np.r_[np.ones(12), 0.0]})
    with warnings.catch_warnings():
        _no_foreign_warnings()
        full = glmmdiag.glmm("y ~ x", d, family=family, link="identity", weights="w")
        kept = glmmdiag.glmm("y ~ x", d.iloc[:12], family=family, link="identity")
    assert full.loglik == pytest.approx(kept.loglik, rel=1e-9)
    assert np.allclose(full.fixef, kept.fixef, rtol=1e-7)
    assert full.nobs == 13 and len(full.fitted()) == 13


def test_all_zero_weights_is_clear_error():
    d = pd.DataFrame({"y": [1, 2, 0], "x": [1.0, 2.0, 3.0], "w": [0.0, 0.0, 0.0]})
    with pytest.raises(GlmmdiagError, match="zero weight"):
        glmmdiag.glmm("y ~ x", d, family="poisson", weights="w")


def test_gaussian_zero_weight_refused_with_positions():
    d = pd.DataFrame({"y": [1.0, 2.0, 0.5, 3.0], "x": [1.0, 2.0, 3.0, 4.0], "w": [1.0, 0.0, 1.0, 1.0]})
    with pytest.raises(GlmmdiagError, match=r"precision weights.*positions \[1\]"):
        glmmdiag.glmm("y ~ x", d, family="gaussian", weights="w")


# ------------------------------------------------------------------ 3. simulating huge means
def test_poisson_unconditional_simulate_huge_means():
    # seed 512, shrunk: unconditional random effects push mu above 1e19 (numpy: "lam value too large")
    data = pd.DataFrame({"y": [0, 0], "x": [33089.52454305427, -11325.363910314745],
                         "z": [0.3891345916728517, 0.3822216196392128],
                         "t": [4.880702008552461, 4.113066869746966],
                         "g": pd.array(["g0", "g2"], dtype="str")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmmdiag.glmm("y ~ log(z) + offset(log(t)) + (x||g)", data, family="poisson",
                            offset=np.array([1.5852890637306007, 1.4141689472602936]))
    with warnings.catch_warnings():
        _no_foreign_warnings()
        try:
            sims = fit.simulate(5, seed=1)
        except FitError as e:
            assert "too large to simulate" in str(e)
        else:
            assert sims.shape == (2, 5) and np.all(np.isfinite(sims)) and np.all(sims >= 0)


@pytest.mark.parametrize("family", [Poisson(), NBinom2(), NBinom1()])
def test_count_samplers_draw_huge_finite_means(family):
    rng = np.random.default_rng(0)
    mu = np.array([3.0, 1e20, 1e30])
    psi = None if family.n_psi == 0 else np.array([0.0])
    with warnings.catch_warnings():
        _no_foreign_warnings()
        y = family.sample(mu, np.ones(3), rng, psi)
    assert np.all(np.isfinite(y)) and np.all(y >= 0) and np.all(y == np.round(y))
    if family.name == "poisson":
        assert abs(y[1] / 1e20 - 1) < 1e-6


def test_count_sampler_stream_unchanged_for_ordinary_means():
    mu = np.array([0.5, 3.0, 40.0])
    a = Poisson().sample(mu, np.ones(3), np.random.default_rng(5))
    b = np.random.default_rng(5).poisson(mu).astype(float)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("family", [Poisson(), NBinom2()])
def test_count_sampler_infinite_mean_is_fit_error(family):
    psi = None if family.n_psi == 0 else np.array([0.0])
    with pytest.raises(FitError, match="too large to simulate"):
        family.sample(np.array([1.0, np.inf]), np.ones(2), np.random.default_rng(0), psi)


# ------------------------------------------------------------------ 4. foreign warnings
def test_nbinom2_glm_tiny_predictor_no_linalg_warning():
    # seed 29: scipy LinAlgWarning (ill-conditioned matrix) from the vcov solve
    data = pd.DataFrame({
        "y": [0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 4, 0, 26, 0, 0, 0, 0, 0, 0, 1],
        "x": [-7.45938972699577e-08, 2.8278557368053733e-07, 1.423999131138781e-07, 4.329327821743834e-08,
              4.1012352304705834e-07, -6.463273460264911e-07, -4.456965502772472e-07, -1.8867221789981875e-07,
              3.7460947541207914e-07, -1.187959192325008e-07, -3.10271130487045e-07, -4.1907376626043426e-07,
              -4.775144799972619e-07, 3.5964267958385857e-08, -3.0372885901520436e-08, -1.198027955138984e-07,
              1.8596540246663396e-07, -1.775034052906633e-07, -1.3849016864440109e-07, -3.3624066587421765e-07],
        "f": list("12222222222221222221")})
    with warnings.catch_warnings():
        _no_foreign_warnings()
        fit = glmmdiag.glmm("y ~ x * f", data, family="nbinom2")
    assert np.isfinite(fit.loglik)


def test_t_family_factor_model_no_overflow_warning():
    # seed 344: numpy overflow/invalid RuntimeWarnings from the t family's derivatives
    data = pd.DataFrame({
        "y": [-3.3594055076247358, 0.08334659071411298, -4.607467140681248, 1.1296709641227551,
              -2.9715007588203712, -1.850056705414814, -0.05692983928941628, -3.7529321298150133,
              -3.3280435741269567, -1.3150010743163882, -2.1856014488007527, -1.0629847418223672,
              -0.9755239419736773, -0.1261901777335439, -1.6393681594191176, -2.2793179752225012,
              -1.161842023142643, -4.665494561003556, -0.14372666922878974, -2.6019332939238753,
              -0.7252887638620904, -2.248269619065404],
        "f": ["f4", "f3", "f0", "f2", "f1", "f0", "f2", "f2", "f2", "f0", "f0", "f1", "f3", "f2", "f1", "f1",
              "f4", "f4", "f0", "f2", "f2", "f4"],
        "h": list("3212312232313111131211")})
    with warnings.catch_warnings():
        _no_foreign_warnings()
        try:
            fit = glmmdiag.glmm("y ~ f * h", data, family="t")
        except FitError:
            return
    assert np.isfinite(fit.loglik)


def test_links_inverse_extreme_eta_no_warning():
    eta = np.array([-1000.0, 0.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mu = glmmdiag.glmm.__globals__["get_family"]("binomial").link.inverse(eta)
        assert np.array_equal(mu, [0.0, 0.5, 1.0])
        from glmmdiag.fit.links import get_link

        assert get_link("log").inverse(eta)[2] == np.inf
        assert get_link("cloglog").inverse(eta)[2] == 1.0
        assert get_link("inverse").inverse(eta)[1] == np.inf


# ------------------------------------------------------------------ 5. the simulate weights warning
def test_simulate_weights_warning_is_a_glmmdiag_warning():
    d = pd.DataFrame({"y": [1, 0, 3, 2, 5, 1], "x": [0.1, 0.5, 0.9, 0.3, 1.2, 0.2],
                      "w": [1.0, 2.0, 1.0, 2.0, 1.0, 1.0]})
    fit = glmmdiag.glmm("y ~ x", d, family="poisson", weights="w")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("always", GlmmdiagWarning)
        with pytest.warns(GlmmdiagWarning, match="likelihood weights"):
            fit.simulate(2, seed=1)


def test_unconditional_residual_simulation_with_huge_means_is_a_fit_error_not_numpy():
    """simulate_residuals draws through the light sampler, whose Poisson fast path must hand means
    numpy cannot draw to the family's checked sampler (FitError), not to rng.poisson."""
    import glmmdiag
    from glmmdiag.errors import FitError

    data = pd.DataFrame({"y": [0, 0], "x": [33089.52454305427, -11325.363910314745],
                         "z": [0.3891345916728517, 0.3822216196392128],
                         "t": [4.880702008552461, 4.113066869746966], "g": ["g0", "g2"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmmdiag.glmm("y ~ log(z) + offset(log(t)) + (x||g)", data, family="poisson",
                            offset=np.array([1.5852890637306007, 1.4141689472602936]))
        try:
            res = glmmdiag.simulate_residuals(fit, n_sim=50, seed=1, simulate_re="unconditional")
        except FitError as e:
            assert "too large to simulate" in str(e)
        else:
            assert np.all(np.isfinite(res.scaled_residuals))
