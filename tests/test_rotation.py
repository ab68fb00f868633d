"""Rotated residuals (``simulate_residuals(..., rotation=...)``, glmmdiag.rotation).

Calibration evidence: responses and simulations drawn from the same AR(1) block model
(exchangeable by construction), residuals rotated with the *estimated* covariance: the pooled
Durbin-Watson test and KS reject at about 5 %; unrotated they reject almost always (the problem
rotation solves). Power: series that are AR(1) while the simulations are independent are still
detected after rotation.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

import glmmdiag as gd
from glmmdiag import datasets
from glmmdiag.rotation import MAX_BLOCK, correlation_blocks, shrunk_covariance


def ar1_cov(k, rho, sd=1.0):
    i = np.arange(k)
    return sd**2 * rho ** np.abs(i[:, None] - i[None, :])


def ar1_draw(rng, n_series, k, rho, size):
    """(n_series * k, size) AR(1) series (stationary, unit variance), series after series."""
    L = np.linalg.cholesky(ar1_cov(k, rho))
    z = rng.standard_normal((n_series, k, size))
    return np.einsum("ij,sjc->sic", L, z).reshape(n_series * k, size)


@pytest.fixture(scope="module")
def ar1_fits():
    df = datasets.load("ar1_sim")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return df, gd.glmm("y ~ x + ar1(times + 0 | group)", df), gd.glmm("y ~ x + (1 | group)", df)


def test_given_covariance_rotates_to_the_exact_normal_pit():
    """With the true covariance, the rotated observed component z = L^-1 y is N(0, 1): its PIT among
    rotated simulations estimates Phi(z) (binomial error sqrt(p (1 - p) / n_sim))."""
    rng = np.random.default_rng(1)
    k, n_sim = 15, 4000
    S = ar1_cov(k, 0.8, 2.0)
    y = ar1_draw(rng, 1, k, 0.8, 1)[:, 0] * 2.0
    sims = ar1_draw(rng, 1, k, 0.8, n_sim) * 2.0
    res = gd.simulate_residuals(gd.from_simulations(y, sims, np.zeros(k)), seed=1, rotation=S)
    z = np.linalg.solve(np.linalg.cholesky(S), y)
    assert res.rotation == "given"
    assert np.max(np.abs(res.residuals - stats.norm.cdf(z))) < 4 * 0.5 / np.sqrt(n_sim)


def _exchangeable_case(rng, rho_data, rho_sims, n_series=20, k=10, n_sim=200):
    y = ar1_draw(rng, n_series, k, rho_data, 1)[:, 0]
    sims = ar1_draw(rng, n_series, k, rho_sims, n_sim)
    g = np.repeat(np.arange(n_series), k)
    t = np.tile(np.arange(k), n_series)
    return y, sims, g, t


def test_estimated_rotation_is_calibrated_and_unrotated_residuals_are_not():
    rng = np.random.default_rng(7)
    rej = {"rot_dw": 0, "rot_ks": 0, "raw_dw": 0}
    n_rep = 300
    for rep in range(n_rep):
        y, sims, g, t = _exchangeable_case(rng, 0.7, 0.7)
        m = gd.from_simulations(y, sims, np.zeros(y.size))
        rot = gd.simulate_residuals(m, seed=rep, rotation="estimated", rotation_blocks=g)
        raw = gd.simulate_residuals(m, seed=rep, rotation=None)
        rej["rot_dw"] += gd.temporal_autocorrelation_test(rot, t, group=g).p_value < 0.05
        rej["rot_ks"] += gd.uniformity_test(rot).p_value < 0.05
        rej["raw_dw"] += gd.temporal_autocorrelation_test(raw, t, group=g).p_value < 0.05
    # 300 replicates: a 95% binomial interval around 0.05 is about [0.027, 0.08]
    assert 0.02 <= rej["rot_dw"] / n_rep <= 0.085, rej
    assert 0.02 <= rej["rot_ks"] / n_rep <= 0.085, rej
    assert rej["raw_dw"] / n_rep > 0.95, rej


def test_rotation_keeps_power_against_autocorrelation_the_simulations_lack():
    rng = np.random.default_rng(11)
    hits = 0
    for rep in range(40):
        y, sims, g, t = _exchangeable_case(rng, 0.5, 0.0)
        rot = gd.simulate_residuals(gd.from_simulations(y, sims, np.zeros(y.size)), seed=rep, rotation="estimated",
                                    rotation_blocks=g)
        hits += gd.temporal_autocorrelation_test(rot, t, group=g).p_value < 0.05
    assert hits / 40 >= 0.9


def test_structured_model_defaults_to_unconditional_rotated_and_passes(ar1_fits):
    df, fit, _ = ar1_fits
    res = gd.simulate_residuals(fit, 250, seed=1)
    assert res.simulate_re == "unconditional" and res.rotation == "estimated"
    assert gd.uniformity_test(res).p_value > 0.05 and gd.dispersion_test(res).p_value > 0.05
    assert gd.temporal_autocorrelation_test(res, "times", group="group").p_value > 0.05
    # the two problems rotation answers, on the same model
    cond = gd.simulate_residuals(fit, 250, seed=1, simulate_re="conditional")
    assert cond.rotation is None and gd.uniformity_test(cond).p_value < 1e-4
    unrot = gd.simulate_residuals(fit, 250, seed=1, rotation=None)
    assert unrot.simulate_re == "unconditional"
    assert gd.temporal_autocorrelation_test(unrot, "times", group="group").p_value < 1e-6


def test_models_without_structured_terms_keep_the_conditional_default(ar1_fits):
    _, _, fit0 = ar1_fits
    res = gd.simulate_residuals(fit0, 50, seed=1)
    assert res.simulate_re == "conditional" and res.rotation is None
    assert gd.simulate_residuals(fit0, 50, seed=1, simulate_re="unconditional").rotation is None


def test_rotated_residuals_are_reproducible_and_independent_of_n_jobs(ar1_fits):
    _, fit, _ = ar1_fits
    a = gd.simulate_residuals(fit, 100, seed=5)
    b = gd.simulate_residuals(fit, 100, seed=5, n_jobs=2)
    c = gd.simulate_residuals(fit, 100, seed=5, keep_simulations=True)
    assert np.array_equal(a.residuals, b.residuals)
    assert np.array_equal(a.counts_less, c.counts_less)  # the kept matrix, rotated in memory
    assert not np.array_equal(a.residuals, gd.simulate_residuals(fit, 100, seed=6).residuals)


def test_blocks_follow_the_grouping_and_time_order(ar1_fits):
    df, fit, _ = ar1_fits
    from glmmdiag.adapters import as_simulable

    blocks = correlation_blocks(as_simulable(fit))
    assert len(blocks) == 40 and all(b.size == 12 for b in blocks)
    for b in blocks:
        assert df["group"].iloc[b].nunique() == 1
        assert np.all(np.diff(df["t"].to_numpy()[b]) > 0)  # rows in time order within the block
    sp = datasets.load("spatial_sim")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spfit = gd.glmm("count ~ z + exp(numFactor(xc, yc) + 0 | group)", sp, family="poisson")
    (one,) = correlation_blocks(as_simulable(spfit))
    assert one.size == len(sp)


def test_shrinkage_is_large_for_noise_and_small_for_a_strong_correlation():
    rng = np.random.default_rng(3)

    def sums(X):
        X2 = X * X
        return X.sum(0), X.T @ X, X2.T @ X2

    X = rng.standard_normal((30, 20))  # N = 30 vectors of 20 independent components
    _, lam_noise = shrunk_covariance(*sums(X), 30)
    Y = ar1_draw(rng, 1, 20, 0.9, 2000).T
    S, lam_ar = shrunk_covariance(*sums(Y), 2000)
    assert lam_noise > 0.5 and lam_ar < 0.05
    assert np.allclose(S, ar1_cov(20, 0.9), atol=0.1)


def test_rotation_errors_are_clear(ar1_fits, monkeypatch):
    _, fit, _ = ar1_fits
    with pytest.raises(gd.GlmmdiagError, match="rotation must be"):
        gd.simulate_residuals(fit, 10, seed=1, rotation="model")
    with pytest.raises(gd.GlmmdiagError, match="refit"):
        gd.simulate_residuals(fit, 10, seed=1, rotation="estimated", refit=True)
    m = gd.from_simulations(np.zeros(4), np.random.default_rng(0).random((4, 20)), np.zeros(4))
    with pytest.raises(gd.GlmmdiagError, match="not positive definite"):
        gd.simulate_residuals(m, seed=1, rotation=-np.eye(4))
    with pytest.raises(gd.GlmmdiagError, match=r"\(4, 4\)"):
        gd.simulate_residuals(m, seed=1, rotation=np.eye(3))
    import glmmdiag.residuals as R

    monkeypatch.setattr(R, "MAX_BLOCK", 3)
    with pytest.raises(gd.GlmmdiagError, match="at most 3"):
        gd.simulate_residuals(m, seed=1, rotation="estimated")
    assert MAX_BLOCK >= 1000
