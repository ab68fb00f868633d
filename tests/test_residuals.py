"""simulate_residuals / recalculate_residuals: the randomised PIT by hand, reproducibility across
n_jobs and chunkings of the same plan, streaming vs kept simulations, refit mode, bad input."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import glmmdiag as gd
from glmmdiag.adapters import GLMMAdapter, SimulationsAdapter
from glmmdiag.protocol import SimulableModel


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def cbpp_fit(load_data):
    return gd.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", load_data("cbpp"), family="binomial")


@pytest.fixture(scope="module")
def pois_fit():
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(20), 8)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.3 + 0.5 * x + rng.normal(0, 0.6, 20)[g]))
    import pandas as pd

    df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    return gd.glmm("y ~ x + (1 | g)", df, family="poisson")


def _known_case(n=40, nsim=25, integer=True, seed=3):
    rng = np.random.default_rng(seed)
    if integer:
        S = rng.poisson(3.0, size=(n, nsim)).astype(float)
        y = rng.poisson(3.0, size=n).astype(float)
    else:
        S = rng.normal(size=(n, nsim))
        y = rng.normal(size=n)
    return y, S, np.full(n, 3.0)


# ------------------------------------------------------------------ the PIT by hand
@pytest.mark.parametrize("integer", [True, False])
def test_first_20_residuals_match_hand_computation(integer):
    """DHARMa's definition (pit="dharma"): L + u (U - L) on the 1/n_sim grid."""
    y, S, f = _known_case(integer=integer)
    res = gd.simulate_residuals(gd.from_simulations(y, S, f), seed=2024, pit="dharma")
    nsim = S.shape[1]
    # the tie-breaking stream: spawn key (1, 0) of SeedSequence(2024), reached here through spawn()
    u = np.random.Generator(np.random.PCG64(np.random.SeedSequence(2024).spawn(2)[1].spawn(1)[0])).random(y.size)
    expected = []
    for i in range(20):
        less = sum(1 for j in range(nsim) if S[i, j] < y[i])
        leq = sum(1 for j in range(nsim) if S[i, j] <= y[i])
        lo, hi = less / nsim, leq / nsim
        expected.append(lo if lo == hi else lo + u[i] * (hi - lo))
    assert np.array_equal(res.residuals[:20], np.array(expected))
    assert res.n_sim == nsim and res.simulate_re == "given" and res.pit == "dharma"
    assert res.integer_response is integer
    if integer:
        assert np.any(res.counts_less != res.counts_leq)  # ties happened and were randomised
    else:
        assert np.allclose(res.residuals * nsim, np.round(res.residuals * nsim))  # on the grid {0, 1/n, ..., 1}


@pytest.mark.parametrize("integer", [True, False])
def test_first_20_rank_residuals_match_hand_computation(integer):
    """The default definition (pit="ranks"): (less + u (ties + 1)) / (n_sim + 1), the same u stream."""
    y, S, f = _known_case(integer=integer)
    res = gd.simulate_residuals(gd.from_simulations(y, S, f), seed=2024)
    nsim = S.shape[1]
    u = np.random.Generator(np.random.PCG64(np.random.SeedSequence(2024).spawn(2)[1].spawn(1)[0])).random(y.size)
    expected = []
    for i in range(20):
        less = sum(1 for j in range(nsim) if S[i, j] < y[i])
        ties = sum(1 for j in range(nsim) if S[i, j] == y[i])
        expected.append((less + u[i] * (ties + 1)) / (nsim + 1))
    assert res.pit == "ranks"
    np.testing.assert_allclose(res.residuals[:20], expected, rtol=0, atol=1e-15)
    # no grid: the residuals are not multiples of 1/n_sim nor of 1/(n_sim + 1)
    assert not np.allclose(res.residuals * (nsim + 1), np.round(res.residuals * (nsim + 1)))


def test_outliers_are_exact_zero_and_one():
    y = np.array([-10.0, 10.0, 0.0])
    S = np.tile(np.linspace(-1, 1, 9), (3, 1))
    res = gd.simulate_residuals(gd.from_simulations(y, S, np.zeros(3)), seed=1, pit="dharma")
    assert res.residuals[0] == 0.0 and res.residuals[1] == 1.0
    assert list(res.outliers()) == [0, 1]
    q = res.quantile_residuals()
    assert q[0] == -7 and q[1] == 7


def test_rank_outliers_are_the_extreme_cells():
    """pit="ranks": an observation below (above) all its simulations has r < 1/(n_sim + 1)
    (r >= n_sim/(n_sim + 1)); outliers() and the outlier test count exactly those rows."""
    y = np.array([-10.0, 10.0, 0.0])
    S = np.tile(np.linspace(-1, 1, 9), (3, 1))
    res = gd.simulate_residuals(gd.from_simulations(y, S, np.zeros(3)), seed=1)
    assert 0 < res.residuals[0] < 1 / 10 and 9 / 10 <= res.residuals[1] < 1
    assert 4 / 10 <= res.residuals[2] < 6 / 10  # 4 simulations below 0, one tie: r = (4 + 2u) / 10
    assert res.outlier_cells() == (1 / 10, 9 / 10)
    assert list(res.outliers()) == [0, 1]
    t = gd.outlier_test(res)
    assert t.statistic == 2 and list(t.plot_data["lower"]) == [0] and list(t.plot_data["upper"]) == [1]


def test_per_simulation_summaries_by_hand():
    y, S, f = _known_case()
    res = gd.simulate_residuals(gd.from_simulations(y, S, f), seed=1)
    assert np.allclose(res.sim_stats["spread"], np.var(S - f[:, None], axis=0, ddof=1))
    assert np.array_equal(res.sim_stats["zeros"], (S == 0).sum(axis=0))
    assert res.obs_stats["spread"] == pytest.approx(np.var(y - f, ddof=1))


# ------------------------------------------------------------------ reproducibility
def test_same_seed_same_residuals_for_any_n_jobs(pois_fit):
    kw = dict(seed=7, chunk_size=16)
    r1 = gd.simulate_residuals(pois_fit, 100, n_jobs=1, **kw)
    r2 = gd.simulate_residuals(pois_fit, 100, n_jobs=2, **kw)
    r3 = gd.simulate_residuals(pois_fit, 100, n_jobs=-1, **kw)
    for r in (r2, r3):
        assert np.array_equal(r1.residuals, r.residuals)
        assert np.array_equal(r1.counts_less, r.counts_less)
        for k in r1.sim_stats:
            assert np.array_equal(r1.sim_stats[k], r.sim_stats[k])
    r4 = gd.simulate_residuals(pois_fit, 100, seed=8, chunk_size=16)
    assert not np.array_equal(r1.residuals, r4.residuals)


def test_chunks_are_the_documented_streams(pois_fit):
    res = gd.simulate_residuals(pois_fit, 40, seed=5, chunk_size=16, keep_simulations=True)
    ss = np.random.SeedSequence(5).spawn(1)[0].spawn(3)  # spawn key (0, i)
    for i, (a, b) in enumerate([(0, 16), (16, 32), (32, 40)]):
        rng = np.random.Generator(np.random.PCG64(ss[i]))
        assert np.array_equal(res.simulations[:, a:b], gd.as_simulable(pois_fit).simulate(b - a, rng, True))
    # more simulations with the same seed and chunk size repeat the same full chunks
    longer = gd.simulate_residuals(pois_fit, 64, seed=5, chunk_size=16, keep_simulations=True)
    assert np.array_equal(longer.simulations[:, :32], res.simulations[:, :32])  # the full chunks


def test_streamed_equals_kept(pois_fit):
    a = gd.simulate_residuals(pois_fit, 90, seed=3, chunk_size=7)
    b = gd.simulate_residuals(pois_fit, 90, seed=3, chunk_size=7, keep_simulations=True)
    assert a.simulations is None and b.simulations.shape == (pois_fit.nobs, 90)
    assert np.array_equal(a.residuals, b.residuals)
    S, y = b.simulations, b.observed
    assert np.array_equal(a.counts_less, (S < y[:, None]).sum(1))
    # a user summary replayed from the seeds equals one computed on the kept matrix
    t1 = gd.generic_test(a, np.max)
    t2 = gd.generic_test(b, np.max)
    assert np.array_equal(t1.plot_data["simulated"], S.max(axis=0))
    assert t1.p_value == t2.p_value


def test_conditional_and_unconditional_modes_recorded(pois_fit):
    c = gd.simulate_residuals(pois_fit, 20, seed=1)
    u = gd.simulate_residuals(pois_fit, 20, seed=1, simulate_re="unconditional")
    assert c.simulate_re == "conditional" and u.simulate_re == "unconditional"
    assert not np.array_equal(c.residuals, u.residuals)
    assert np.allclose(c.fitted, pois_fit.predict(type="response", re_form="~0"))


def test_seed_none_is_recorded_and_reproducible(pois_fit):
    a = gd.simulate_residuals(pois_fit, 30)
    b = gd.simulate_residuals(pois_fit, 30, seed=np.random.SeedSequence(a.seed))
    assert np.array_equal(a.residuals, b.residuals)


def test_binomial_successes_and_trials(cbpp_fit):
    res = gd.simulate_residuals(cbpp_fit, 50, seed=1, keep_simulations=True)
    assert np.array_equal(res.observed, cbpp_fit.design.y)
    assert np.array_equal(res.trials, cbpp_fit.design.w)
    assert np.all(res.simulations <= res.trials[:, None])
    assert "spread_expected" in res.sim_stats


# ------------------------------------------------------------------ grouped residuals
def test_recalculate_residuals_sums_by_group():
    y, S, f = _known_case(n=30, nsim=40)
    g = np.repeat(["c", "a", "b"], 10)
    res = gd.simulate_residuals(gd.from_simulations(y, S, f), seed=4)
    grp = gd.recalculate_residuals(res, g)
    assert list(grp.group) == ["a", "b", "c"]
    for k, lab in enumerate(["a", "b", "c"]):
        m = g == lab
        ys, Ss = y[m].sum(), S[m].sum(axis=0)
        assert grp.observed[k] == ys and grp.fitted[k] == pytest.approx(f[m].sum())
        assert grp.counts_less[k] == np.sum(Ss < ys) and grp.counts_leq[k] == np.sum(Ss <= ys)
        # the default (rank) definition: the group's randomised rank among 41 values
        lo, hi = np.sum(Ss < ys) / 41, (np.sum(Ss <= ys) + 1) / 41
        assert lo <= grp.residuals[k] <= hi
    again = gd.recalculate_residuals(res, g)
    assert np.array_equal(again.residuals, grp.residuals)
    mean = gd.recalculate_residuals(res, g, aggregate="mean")
    assert mean.observed[0] == pytest.approx(y[g == "a"].mean())


def test_recalculate_replays_the_same_simulations(pois_fit):
    g = np.asarray(pois_fit.design.y * 0 + np.arange(pois_fit.nobs) // 8)
    streamed = gd.simulate_residuals(pois_fit, 60, seed=9, chunk_size=8)
    kept = gd.simulate_residuals(pois_fit, 60, seed=9, chunk_size=8, keep_simulations=True)
    a = gd.recalculate_residuals(streamed, g, n_jobs=2)
    b = gd.recalculate_residuals(kept, g)
    assert np.array_equal(a.residuals, b.residuals)
    assert np.array_equal(a.sim_stats["spread"], b.sim_stats["spread"])
    assert a.nobs == 20


# ------------------------------------------------------------------ refit
def test_refit_mode(cbpp_fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r1 = gd.simulate_residuals(cbpp_fit, 12, seed=2, refit=True)
        r2 = gd.simulate_residuals(cbpp_fit, 12, seed=2, refit=True, n_jobs=2)
    assert r1.method == "refit" and r1.n_sim + r1.refit["n_failed"] == 12
    assert np.array_equal(r1.residuals, r2.residuals)
    assert r1.refit["pearson_sims"].shape == (r1.n_sim,)
    t = gd.dispersion_test(r1)
    assert t.method.startswith("Refit-based") and 0 <= t.p_value <= 1
    assert t.statistic == pytest.approx(r1.refit["pearson_obs"] / np.mean(r1.refit["pearson_sims"]))
    grp = gd.recalculate_residuals(r1, np.asarray(cbpp_fit.design.y * 0 + np.arange(56) // 4))
    assert grp.nobs == 14


def test_refit_needs_a_refittable_model():
    y, S, f = _known_case()
    with pytest.raises(TypeError, match="refit"):
        gd.simulate_residuals(gd.from_simulations(y, S, f), refit=True)


# ------------------------------------------------------------------ protocol conformance
def test_adapters_conform(cbpp_fit, pois_fit, load_data):
    lmm = gd.glmm("Reaction ~ Days + (Days | Subject)", load_data("sleepstudy"))
    y, S, f = _known_case()
    adapters = [GLMMAdapter(cbpp_fit), GLMMAdapter(pois_fit), GLMMAdapter(lmm), SimulationsAdapter(y, S, f)]
    for a in adapters:
        assert isinstance(a, SimulableModel)
        assert gd.as_simulable(a) is a
        n = a.nobs
        for arr in (a.observed(), a.fitted(), a.trials()):
            assert arr.shape == (n,)
        s1 = a.simulate(3, np.random.default_rng(1), True)
        s2 = a.simulate(3, np.random.default_rng(1), True)
        assert s1.shape == (n, 3) and np.array_equal(s1, s2)
        res = gd.simulate_residuals(a, 20, seed=1)
        assert res.residuals.shape == (n,) and np.all((res.residuals >= 0) & (res.residuals <= 1))
    assert isinstance(gd.as_simulable(cbpp_fit), GLMMAdapter)
    assert GLMMAdapter(lmm).integer_response is False and GLMMAdapter(pois_fit).integer_response is True


def test_results_are_frozen(pois_fit):
    res = gd.simulate_residuals(pois_fit, 20, seed=1)
    with pytest.raises(Exception):
        res.n_sim = 3
    with pytest.raises(ValueError):
        res.residuals[0] = 0.5
    assert "Scaled residuals" in str(res)


def test_statsmodels_glm_adapter():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    y = rng.poisson(np.exp(0.5 + 0.3 * x))
    fit = sm.GLM(y, sm.add_constant(x), family=sm.families.Poisson()).fit()
    res = gd.simulate_residuals(fit, 100, seed=1)
    assert res.family_name == "poisson" and res.integer_response
    assert gd.uniformity_test(res).p_value > 1e-4
    rb = gd.simulate_residuals(fit, 10, seed=1, refit=True)
    assert rb.method == "refit"
    t = gd.dispersion_test(res, kind="pearson", residual_df="model")
    assert t.parameter["df"] == pytest.approx(198)


# ------------------------------------------------------------------ bad input
def test_bad_input_messages(pois_fit):
    y, S, f = _known_case()
    with pytest.raises(ValueError, match="n_sim must be >= 2"):
        gd.simulate_residuals(pois_fit, 1)
    with pytest.raises(TypeError, match="n_sim must be an integer"):
        gd.simulate_residuals(pois_fit, 2.5)
    with pytest.raises(TypeError, match="cannot simulate from a"):
        gd.simulate_residuals(object(), 10)
    with pytest.raises(ValueError, match="pass simulated.T"):
        gd.from_simulations(y, S.T, f)
    with pytest.raises(ValueError, match="rows but observed has"):
        gd.from_simulations(y, S[:-1], f)
    with pytest.raises(ValueError, match="fitted has 39 values"):
        gd.from_simulations(y, S, f[:-1])
    with pytest.raises(ValueError, match="at least 2 simulations"):
        gd.from_simulations(y, S[:, :1], f)
    bad = S.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN/infinite"):
        gd.from_simulations(y, bad, f)
    with pytest.raises(ValueError, match="only 25 simulations"):
        gd.simulate_residuals(gd.from_simulations(y, S, f), 30)
    with pytest.raises(ValueError, match="simulate_re"):
        gd.simulate_residuals(pois_fit, 10, simulate_re="marginal")
    res = gd.simulate_residuals(gd.from_simulations(y, S, f), seed=1)
    with pytest.raises(ValueError, match=r"group has 39 values; expected 40 \(one per residual\)"):
        gd.recalculate_residuals(res, np.arange(39))
    with pytest.raises(ValueError, match="aggregate"):
        gd.recalculate_residuals(res, np.arange(40), aggregate="median")


class _NaNModel:
    """A protocol model whose simulations go wrong."""

    family_name = "poisson"
    nobs = 5
    integer_response = True

    def observed(self):
        return np.arange(5.0)

    def trials(self):
        return np.ones(5)

    def fitted(self):
        return np.ones(5)

    def simulate(self, n, rng, conditional=True):
        out = rng.poisson(1.0, size=(5, n)).astype(float)
        out[2, 0] = np.nan
        return out


class _WrongShape(_NaNModel):
    def simulate(self, n, rng, conditional=True):
        return np.zeros((n, 5))


def test_model_simulating_nan_or_wrong_shape():
    with pytest.raises(ValueError, match=r"NaN/infinite values \(rows \[2\]"):
        gd.simulate_residuals(_NaNModel(), 10, seed=1)
    with pytest.raises(ValueError, match=r"expected \(5, 10\)"):
        gd.simulate_residuals(_WrongShape(), 10, seed=1)


def test_dask_backend_gives_the_same_residuals(pois_fit):
    """joblib.parallel_config(backend="dask") moves chunks and refits to a dask cluster unchanged."""
    distributed = pytest.importorskip("dask.distributed")
    import joblib

    ref = gd.simulate_residuals(pois_fit, 60, seed=3, chunk_size=8)
    ref_refit = gd.simulate_residuals(pois_fit, 6, seed=3, refit=True)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None):
        with joblib.parallel_config(backend="dask"):
            a = gd.simulate_residuals(pois_fit, 60, seed=3, chunk_size=8, n_jobs=None)
            r = gd.simulate_residuals(pois_fit, 6, seed=3, refit=True, n_jobs=None)
    assert np.array_equal(a.residuals, ref.residuals)
    assert np.array_equal(r.residuals, ref_refit.residuals)


# ------------------------------------------------------------------ hardening: caller's arrays, warning classes
def test_from_simulations_leaves_the_callers_array_writable():
    y, S, f = _known_case(integer=False)
    assert S.dtype == float and S.flags.writeable
    res = gd.simulate_residuals(gd.from_simulations(y, S, f), seed=1)
    assert S.flags.writeable and y.flags.writeable
    before = gd.generic_test(res, np.max).p_value
    S[:] = 1e6  # the caller's later edits do not reach the simulations the residuals were made from
    assert gd.generic_test(res, np.max).p_value == before


class _FlakyRefitModel:
    """A Poisson-like model whose refit fails for every response with an odd total, and reports
    non-convergence for the others."""

    family_name = "poisson"
    integer_response = True

    def __init__(self, y, mu):
        self._y, self._mu = np.asarray(y, float), np.asarray(mu, float)
        self.nobs = self._y.size
        self.converged = False

    def observed(self):
        return self._y

    def trials(self):
        return np.ones(self.nobs)

    def fitted(self):
        return self._mu

    conditional_fitted = fitted

    def simulate(self, n, rng, conditional=True):
        return rng.poisson(self._mu[:, None], size=(self.nobs, n)).astype(float)

    def pearson_residuals(self):
        return (self._y - self._mu) / np.sqrt(self._mu)

    def refit(self, y):
        if int(np.sum(y)) % 2:
            raise RuntimeError("no convergence")
        return _FlakyRefitModel(y, np.full(self.nobs, np.mean(y) + 0.5))


def test_refit_problems_are_refit_warnings():
    m = _FlakyRefitModel(np.random.default_rng(1).poisson(3.0, 30), np.full(30, 3.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = gd.simulate_residuals(m, 20, seed=2, refit=True)
    msgs = {str(w.message): w.category for w in caught}
    failed = [k for k in msgs if "refits failed and were dropped" in k]
    conv = [k for k in msgs if "reported convergence problems" in k]
    assert failed and conv
    assert msgs[failed[0]] is gd.RefitWarning and msgs[conv[0]] is gd.RefitWarning
    assert res.refit["n_failed"] > 0


# ------------------------------------------------------------------ submodels: the light sampler
@pytest.fixture(scope="module")
def zero_model_fits():
    from glmmdiag import datasets

    d = datasets.load("Salamanders")
    f = "count ~ spp + mined + (1 | site)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "zip": gd.glmm(f, d, family="poisson", ziformula="~ mined"),
            "hurdle_nb2": gd.glmm(f, d, family="truncated_nbinom2", ziformula="~ mined"),
            "nb2_disp": gd.glmm(f, d, family="nbinom2", dispformula="~ mined"),
            "truncated": gd.glmm("y ~ x + (1 | g)", _positive_counts(), family="truncated_poisson"),
        }


def _positive_counts():
    """Poisson counts conditioned on being positive (a zero-truncated model without ziformula)."""
    import pandas as pd

    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(15), 20)
    x = rng.normal(size=g.size)
    lam = np.exp(0.8 + 0.4 * x + rng.normal(0, 0.5, 15)[g])
    y = rng.poisson(lam)
    while (y == 0).any():
        z = y == 0
        y[z] = rng.poisson(lam[z])
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


@pytest.mark.parametrize("name", ["zip", "hurdle_nb2", "nb2_disp", "truncated"])
@pytest.mark.parametrize("mode", ["conditional", "unconditional"])
def test_zero_and_dispersion_models_same_seed_same_residuals_for_any_n_jobs(zero_model_fits, name, mode):
    fit = zero_model_fits[name]
    # zero-inflated / hurdle / dispersion models stream through the light sampler (not fit.simulate)
    assert GLMMAdapter(fit)._sampler(mode == "conditional") is not None
    kw = dict(seed=7, chunk_size=16, simulate_re=mode)
    r1 = gd.simulate_residuals(fit, 100, n_jobs=1, **kw)
    r2 = gd.simulate_residuals(fit, 100, n_jobs=2, **kw)
    assert np.array_equal(r1.residuals, r2.residuals)
    assert np.array_equal(r1.counts_less, r2.counts_less)
    for k in r1.sim_stats:
        assert np.array_equal(r1.sim_stats[k], r2.sim_stats[k])
    # the chunks are the documented streams (a kept run replays them)
    kept = gd.simulate_residuals(fit, 40, seed=5, chunk_size=16, keep_simulations=True, simulate_re=mode)
    ss = np.random.SeedSequence(5).spawn(1)[0].spawn(3)
    S = GLMMAdapter(fit).simulate(16, np.random.Generator(np.random.PCG64(ss[1])), mode == "conditional")
    assert np.array_equal(kept.simulations[:, 16:32], S)
    assert not np.array_equal(r1.residuals, gd.simulate_residuals(fit, 100, seed=8, chunk_size=16,
                                                                  simulate_re=mode).residuals)


def test_zero_model_sampler_matches_the_model(zero_model_fits):
    """The light sampler's zero share and mean per row agree with the fitted model's (conditional)."""
    for name in ("zip", "hurdle_nb2", "truncated"):
        fit = zero_model_fits[name]
        S = np.asarray(GLMMAdapter(fit).simulate(3000, np.random.default_rng(1), True), float)
        assert S.shape == (fit.nobs, 3000) and np.all(S >= 0) and np.all(S == np.round(S))
        fam, mu, pi = fit.family, fit.predict(type="conditional"), fit.predict(type="zprob")
        bpsi = fam.split(fit.psi)[0]
        f0 = fam._f0(mu, bpsi)
        p0 = pi + (1 - pi) * f0 if fam.zero == "zi" else pi  # (pi = 0: zero truncation)
        se = np.sqrt(p0 * (1 - p0) / 3000)
        assert np.max(np.abs((S == 0).mean(axis=1) - p0) / np.maximum(se, 1e-3)) < 5
        np.testing.assert_allclose(S.mean(), fit.predict(type="response").mean(), rtol=0.02)
