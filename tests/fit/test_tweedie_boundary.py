"""Tweedie with a response without zeros: the power goes to its upper limit 2 (the Gamma family's
limit), where the series for the density needs ~ 40 sqrt(j*) terms per row, j* ~ 1 / (2 - p).
The series is summed with a stride there (``glmmdiag.fit.tweedie``; exact to machine precision by
Poisson summation); the fit is compared with glmmTMB 1.1.5 on the same data
(tests/reference/ext/tweedie_nozero.json, script zi13_ext.R: glmmTMB also ends at p = 1.999995,
in 57 s)."""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmdiag
from glmmdiag.errors import DegenerateFitWarning
from glmmdiag.fit import tweedie

REF = Path(__file__).resolve().parents[1] / "reference" / "ext"
DATA = Path(__file__).resolve().parents[1] / "data"
LOGLIK_SLACK = 0.01
BETA_REL_TOL, BETA_SE_FRAC = 1e-4, 1e-3
SE_REL_TOL = 1e-2
SD_REL_TOL = 1e-3


def _brute_log_series(y, c, p):
    """log sum_{j >= 1} W_j over every integer j up to far beyond the bell (no window, no stride)."""
    jstar = y ** (2 - p) / (np.exp(c) * (2 - p))
    j = np.arange(1.0, jstar + 80.0 * np.sqrt(jstar) + 400.0)
    lw = tweedie._log_w(j, np.log(y), c, p)
    top = lw.max()
    return top + np.log(np.sum(np.exp(lw - top)))


@pytest.mark.parametrize("y,phi,p", [(3.0, 0.47, 2 - 5e-6), (0.2, 0.47, 2 - 5e-6), (50.0, 0.47, 1.9999),
                                     (500.0, 0.05, 1.3), (2.0, 0.01, 1.9), (1.0, 1.0, 1.5)])
def test_strided_series_is_the_series(y, phi, p):
    got = tweedie.log_series(np.array([y]), np.log(phi), p)[0]
    want = _brute_log_series(y, np.log(phi), p)
    assert got == pytest.approx(want, rel=2e-15, abs=1e-12)


def test_wide_windows_are_strided():
    """Near p = 2 a row's window has tens of terms, not the ~ 40 sqrt(j*) of every term."""
    y = np.array([0.5, 3.0, 40.0])
    groups = tweedie.series_terms(y, np.log(0.47), 2 - 5e-6)  # j* ~ 4e5: ~ 26000 terms unstrided
    assert sum(len(rows) for rows, _, _ in groups) == y.size
    assert max(j.shape[1] for _, j, _ in groups) <= 129
    assert tweedie._strides(np.array([4e5]), np.array([2 - 5e-6]))[0] > 100


def test_strided_derivatives_match_differences():
    """(c, p) derivatives from the strided window (the same weighted moments of log W_j)."""
    y, c, p = np.array([3.0]), np.log(0.47), 1.9999
    _, dc, dp, dcc, dcp, _ = tweedie.log_series(y, c, p, True)
    f = lambda c_, p_: tweedie.log_series(y, c_, p_, True)  # noqa: E731
    hc, hp = 1e-5, 1e-8
    assert dc[0] == pytest.approx((f(c + hc, p)[0] - f(c - hc, p)[0])[0] / (2 * hc), rel=1e-8)
    assert dp[0] == pytest.approx((f(c, p + hp)[0] - f(c, p - hp)[0])[0] / (2 * hp), rel=1e-6)
    assert dcc[0] == pytest.approx((f(c + hc, p)[1] - f(c - hc, p)[1])[0] / (2 * hc), rel=1e-7)
    assert dcp[0] == pytest.approx((f(c, p + hp)[1] - f(c, p - hp)[1])[0] / (2 * hp), rel=1e-6)


def _data():
    d = pd.read_csv(DATA / "tweedie_nozero_sim.csv")
    d["g"] = pd.Categorical(d["g"], categories=[f"g{i:02d}" for i in range(1, 31)])
    return d


def test_no_zeros_fit_matches_glmmtmb_and_warns_at_the_boundary():
    ref = json.loads((REF / "tweedie_nozero.json").read_text())["fit"]
    t0 = time.process_time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = glmmdiag.glmm("y ~ x + (1 | g)", _data(), family="tweedie")
    cpu = time.process_time() - t0
    assert cpu < 30.0  # was minutes (the unstrided series at p -> 2); about 1 s CPU now
    boundary = [w for w in caught if issubclass(w.category, DegenerateFitWarning) and "tweedie power" in str(w.message)]
    assert len(boundary) == 1
    power = fit.family.dispersion_extra(fit.psi)["power"]
    assert 2 - power < 1e-4 and ref["family_params"]["Tweedie power"] > 1.9999  # both at the boundary
    assert fit.loglik >= ref["logLik"] - LOGLIK_SLACK
    est, se = np.asarray(ref["fixed"]["estimate"]), np.asarray(ref["fixed"]["se"])
    tol = np.maximum(BETA_REL_TOL * np.abs(est), BETA_SE_FRAC * se)
    assert np.all(np.abs(fit.fixef.to_numpy() - est) <= tol)
    np.testing.assert_allclose(fit.se, se, rtol=SE_REL_TOL)
    assert fit.varcorr["sdcor"].iloc[0] == pytest.approx(ref["random"][0]["sd"], rel=SD_REL_TOL)
    assert fit.dispersion == pytest.approx(ref["sigma"], rel=SD_REL_TOL)
    # the limit p = 2 is the Gamma family (var = phi mu^2, glmmdiag's sigma = sqrt(phi)): its
    # log-likelihood bounds the tweedie fit's from above and is reached to the optimiser's tolerance
    gam = glmmdiag.glmm("y ~ x + (1 | g)", _data(), family="gamma", link="log")
    assert fit.loglik <= gam.loglik + 1e-6
    assert fit.loglik == pytest.approx(gam.loglik, abs=1e-3)
    assert fit.dispersion == pytest.approx(gam.dispersion**2, rel=1e-3)
