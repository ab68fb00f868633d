"""Issue 15: diagnostics exact under the null at every n.

The finding: data simulated from the model itself were flagged at large n with DHARMa's residual
definition (a correct Poisson GLMM at n = 2e5: outlier test p = 4e-16; at n = 1e6 also KS p = 4e-4;
reproduced in this session with benchmarks/calibration_large_n.py's data and the DHARMa residuals).
Two causes: DHARMa's residuals of a continuous response lie on the grid {0, 1/n_sim, ..., 1}
(each value with probability 1/(n_sim + 1)), which the KS test detects once n is large; and for an
integer response the outlier rate of DHARMa's residuals is not the binomial test's 2/(n_sim + 1).

Here the observations are exchangeable with their simulations by construction (``from_simulations``
with observed and simulated columns drawn from the same distribution): the null holds exactly. A
small n_sim makes the grid coarse, so the DHARMa failures show at n = 2e4 already; the default rank
residuals must pass at the same n (seeded: the assertions are deterministic). The rank residuals'
uniformity is also checked directly against its exact law."""
import numpy as np
import pytest
from scipy import stats

import glmmdiag as gd

N, NSIM = 20_000, 19


def _exchangeable(kind: str, seed: int):
    rng = np.random.default_rng(seed)
    if kind == "poisson":
        mu = np.exp(rng.normal(0.5, 0.5, N))
        Y = rng.poisson(mu[:, None], size=(N, NSIM + 1)).astype(float)
    else:
        mu = rng.normal(0.0, 1.0, N)
        Y = mu[:, None] + rng.standard_normal((N, NSIM + 1))
    return gd.from_simulations(Y[:, 0], Y[:, 1:], mu), Y


@pytest.mark.parametrize("seed", [1, 2])
def test_dharma_residuals_of_a_continuous_response_fail_the_ks_test_at_large_n(seed):
    m, _ = _exchangeable("normal", seed)
    res = gd.simulate_residuals(m, seed=seed, pit="dharma")
    assert np.allclose(res.residuals * NSIM, np.round(res.residuals * NSIM))  # the grid
    assert gd.uniformity_test(res).p_value < 1e-6  # the null is true: a false alarm
    # the quantile test sees the grid's offset when q (n_sim + 1) is not an integer: with 9
    # simulations P(r < 0.25) = P(k <= 2) = 3/10, not 0.25 (with 19 there is no offset)
    res9 = gd.simulate_residuals(m, 9, seed=seed, pit="dharma")
    assert gd.quantile_test(res9, curves=False).p_value < 1e-6
    assert gd.quantile_test(gd.simulate_residuals(m, 9, seed=seed), curves=False).p_value > 1e-3


@pytest.mark.parametrize("seed", [1, 2])
def test_dharma_residuals_of_counts_fail_the_outlier_test_at_large_n(seed):
    m, _ = _exchangeable("poisson", seed)
    res = gd.simulate_residuals(m, seed=seed, pit="dharma")
    t = gd.outlier_test(res)
    assert "approximate" in t.method and t.p_value < 1e-6


@pytest.mark.parametrize("kind", ["normal", "poisson"])
@pytest.mark.parametrize("seed", [1, 2])
def test_rank_residuals_pass_every_test_at_large_n(kind, seed):
    m, _ = _exchangeable(kind, seed)
    res = gd.simulate_residuals(m, seed=seed)
    assert res.pit == "ranks"
    tests = gd.residual_tests(res)  # from_simulations cannot be refitted: the raw p-values
    assert tests.p_values.startswith("uncalibrated") and "cannot be refitted" in tests.p_values
    for name, t in tests.items():
        assert t.p_value > 1e-3, (name, t.p_value)
    assert gd.quantile_test(res, curves=False).p_value > 1e-3
    assert gd.zero_inflation_test(res).p_value > 1e-3
    assert tests.verdict == "no problems detected"
    out = gd.outlier_test(res)
    assert "exact expectation" in out.method and out.note is None


def test_rank_residuals_have_the_exact_uniform_law():
    """r = (less + u (ties + 1)) / (n_sim + 1): its cell index floor(r (n_sim + 1)) is the randomised
    rank, uniform on {0, ..., n_sim}, and the position within the cell is Uniform(0, 1), independent
    of it -- so r ~ Uniform(0, 1) exactly, with heavy ties (Poisson counts, mean ~1.8)."""
    m, _ = _exchangeable("poisson", 3)
    r = gd.simulate_residuals(m, seed=3).residuals
    cell = np.floor(r * (NSIM + 1)).astype(int)
    frac = r * (NSIM + 1) - cell
    counts = np.bincount(cell, minlength=NSIM + 1)
    assert counts.size == NSIM + 1
    assert stats.chisquare(counts).pvalue > 1e-3  # every rank equally likely
    assert stats.kstest(frac, "uniform").pvalue > 1e-3
    # outliers: the two extreme cells, each of probability exactly 1/(n_sim + 1)
    k = counts[0] + counts[-1]
    assert stats.binomtest(int(k), N, 2 / (NSIM + 1)).pvalue > 1e-3
    assert gd.outlier_test(gd.simulate_residuals(m, seed=3)).statistic == k


def test_outlier_rate_of_rank_residuals_is_exact_by_hand():
    """Two observations, one below all simulations (ties with none), one tied with every simulation:
    the first is always a lower outlier; the second is an outlier with probability 2/(n_sim + 1)
    (its rank among n_sim + 1 equal values is uniform)."""
    S = np.zeros((2, 9))
    S[0] = np.arange(1, 10)
    y = np.array([0.0, 0.0])
    hits = np.zeros(2)
    reps = 4000
    for s in range(reps):
        res = gd.simulate_residuals(gd.from_simulations(y, S, np.zeros(2)), seed=s)
        hits[res.outliers()] += 1
    assert hits[0] == reps
    assert stats.binomtest(int(hits[1]), reps, 2 / 10).pvalue > 1e-3


@pytest.mark.slow
def test_correct_poisson_glmm_with_200k_rows_is_not_flagged():
    """The finding as reported: Poisson GLMM simulated from known parameters, 2e5 rows, defaults."""
    import pandas as pd

    rng = np.random.default_rng(1)
    n, G = 200_000, 100
    g = rng.integers(0, G, n)
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + rng.normal(0, 0.5, G)[g]))
    d = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    fit = gd.glmm("y ~ x + (1 | g)", d, family="poisson")
    dh = gd.residual_tests(gd.simulate_residuals(fit, seed=2, pit="dharma"), calibrate=False)
    assert dh.outliers.p_value < 1e-6  # DHARMa's definition: the false alarm of the issue
    tests = gd.residual_tests(gd.simulate_residuals(fit, seed=2))
    assert tests.p_values.startswith("uncalibrated")  # 2e5 rows: far beyond the refit budget
    assert tests.verdict == "no problems detected"
