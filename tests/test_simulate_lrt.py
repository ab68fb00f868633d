"""simulate_lrt: the parametric-bootstrap likelihood-ratio test (DHARMa's simulateLRT).

The calibration study (type I error at 60 and 300 rows, power) is benchmarks/lrt_calibration.py;
here: the p-value's definition checked against the bootstrap statistics it returns, independence
from n_jobs, the boundary case where the chi-square reference is conservative, and bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import glmmdiag
from glmmdiag.errors import GlmmdiagError


def _data(sd, seed=1, groups=15, per=8):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + sd * rng.normal(size=groups)[g] + rng.normal(size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})


def _pair(d):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmmdiag.glmm("y ~ x", d), glmmdiag.glmm("y ~ x + (1 | g)", d)


def test_p_value_is_the_bootstrap_rank_and_independent_of_jobs():
    m0, m1 = _pair(_data(0.2))
    r1 = glmmdiag.simulate_lrt(m0, m1, n_sim=40, seed=3)
    r2 = glmmdiag.simulate_lrt(m0, m1, n_sim=40, seed=3, n_jobs=2)
    sim = np.asarray(r1.plot_data["simulated"])
    assert r1.statistic == pytest.approx(2 * (m1.loglik - m0.loglik), rel=1e-10)
    assert r1.p_value == pytest.approx((1 + np.sum(sim >= r1.statistic - 1e-10)) / (1 + sim.size))
    np.testing.assert_array_equal(sim, r2.plot_data["simulated"])
    assert r1.p_value == r2.p_value and r1.n_sim == 40
    assert r1.estimate["p_chisq"] == pytest.approx(stats.chi2.sf(r1.statistic, 1), rel=1e-10)
    # the simulated statistics are those of refits to m0's draws: the first one by hand
    y = m0.simulate(40, seed=3, conditional=False)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_hand = 2 * (m1.refit(y).loglik - m0.refit(y).loglik)
    assert sim[0] == pytest.approx(by_hand, rel=1e-8, abs=1e-8)


def test_boundary_null_half_of_the_bootstrap_statistics_are_zero():
    """Under m0 (no group effect) the group variance is estimated as 0 in about half the draws:
    the bootstrap reproduces the 50:50 mixture that makes the chi-square(1) p-value conservative."""
    m0, m1 = _pair(_data(0.0, seed=4))
    r = glmmdiag.simulate_lrt(m0, m1, n_sim=120, seed=5)
    sim = np.asarray(r.plot_data["simulated"])
    share_zero = np.mean(sim < 1e-6)
    assert 0.3 < share_zero < 0.8
    assert r.p_value <= r.estimate["p_chisq"] + 1e-12 or r.statistic < 1e-8


def test_strong_effect_gives_the_smallest_p_value():
    m0, m1 = _pair(_data(1.5, seed=6))
    r = glmmdiag.simulate_lrt(m0, m1, n_sim=30, seed=1)
    assert r.p_value == pytest.approx(1 / 31)


def test_bad_input():
    m0, m1 = _pair(_data(0.2))
    with pytest.raises(GlmmdiagError, match="smaller model"):
        glmmdiag.simulate_lrt(m1, m0, n_sim=5, seed=1)
    with pytest.raises(GlmmdiagError, match="n_sim"):
        glmmdiag.simulate_lrt(m0, m1, n_sim=0)
    other = _data(0.2, seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m2 = glmmdiag.glmm("y ~ x + (1 | g)", other)
    with pytest.raises(GlmmdiagError, match="different responses"):
        glmmdiag.simulate_lrt(m0, m2, n_sim=5, seed=1)
