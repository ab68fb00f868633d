"""Penalised IRLS always terminates (regressions from the seeded fuzz test, tests/fuzz_cases.py).

Former time-outs: Poisson with the identity link, binomial with the log link (the mean leaves the
family's support, where the family clamps mu, so the objective has a kink: flat while the score is
not) and nbinom1 with two correlated random-effects terms (slow Lambda products). Each fit must end
quickly -- a fit with finite estimates (warnings allowed) or a GlmmdiagError/FitError -- and every
single PIRLS call must end after a bounded number of evaluations of the log density.
"""
from __future__ import annotations

import signal
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmdiag
from glmmdiag.errors import GlmmdiagError
from glmmdiag.fit.blocked import BlockedSystem
from glmmdiag.fit.design import build_design
from glmmdiag.fit.families import get_family
from glmmdiag.fit.laplace import GLMMProblem, PirlsError
from glmmdiag.fit.optimize import OptSummary, minimize

CPU_LIMIT = 20.0  # seconds of CPU per fit (the fixed fits take well under 1 s)


class _CpuTimeout(Exception):
    pass


def _raise_timeout(signum, frame):
    raise _CpuTimeout(f"more than {CPU_LIMIT:g} s of CPU")


def _fit_within_limit(formula, data, **kw):
    """``glmmdiag.glmm`` under a CPU-time limit; returns the fit or the GlmmdiagError raised."""
    old = signal.signal(signal.SIGPROF, _raise_timeout)
    signal.setitimer(signal.ITIMER_PROF, CPU_LIMIT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return glmmdiag.glmm(formula, data, **kw)
    except GlmmdiagError as e:
        return e
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


def _assert_honest(out):
    if isinstance(out, GlmmdiagError):
        return
    assert np.isfinite(out.loglik)
    assert np.all(np.isfinite(out.fixef.to_numpy()))
    assert np.all(np.isfinite(out.theta))


@pytest.fixture
def eval_counts(monkeypatch):
    """Evaluations of the family's log density made by each PIRLS call (a list, one per call)."""
    counts = []
    original = GLMMProblem.pirls

    def counting_pirls(self, *args, **kwargs):
        fam = self.family
        if "eta_derivs" not in vars(fam):
            base = fam.eta_derivs

            def eta_derivs(*a, **k):
                counts[-1] += 1
                return base(*a, **k)

            fam.eta_derivs = eta_derivs
        counts.append(0)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GLMMProblem, "pirls", counting_pirls)
    return counts


# one PIRLS call: a warm start and a cold retry, each within MAX_EVALS evaluations (+ starting points)
MAX_CALL_EVALS = 2 * (GLMMProblem.MAX_EVALS + GLMMProblem.MAX_HALVINGS + 3)


# ------------------------------------------------------------------------- the former time-outs
def _data_s111():
    return pd.DataFrame({
        'y': np.array([2, 0, 32, 10, 13, 26, 36, 5, 3, 7, 9, 37, 0, 6, 5, 23, 1, 0, 18, 2, 8, 15, 3, 2, 10, 15, 2, 4, 3], dtype=np.int64),
        'x': np.array([-0.5013886373233364, 0.015494537010618925, -0.5343065642550758, 0.8811214141292809, 1.0960025281410946, -1.7364757038153158, 2.0143757359742076, -0.9225976634522399, -0.5177122055707494, -0.9164400240744125, -0.29319185129194963, 0.23281648434334246, 0.6468864865100153, 0.6639283155924738, -2.163432490489978, -0.446976028158248, -0.14494318931322123, -0.6646959134805287, 0.06472493079220981, -0.20714461621829727, 0.7062897474945712, 0.5422616183087415, 0.615086730083886, -2.294638392536232, -0.8532531809747136, 0.32678587873536363, -0.9601385853799443, -0.05895063191728396, -0.7637948838535574], dtype=float),
        'x2': np.array([1000000.3026832438, 999999.2342382981, 999999.649812318, 999998.6859056767, 1000000.1268614519, 1000000.3298990766, 1000000.5418170068, 1000000.2740892669, 999999.5921121871, 1000000.3912317829, 999998.8103059657, 999999.721464736, 999999.5996812942, 999998.6981730135, 999998.5920579477, 1000000.3079825804, 1000002.2050674997, 999998.6641106133, 1000000.8707641315, 1000000.7363065012, 1000000.3712235333, 1000001.3178228252, 999999.17642154, 1000000.1105386099, 999999.4482612527, 1000002.2081120616, 1000000.0857255956, 1000000.2506289699, 999999.5030346564], dtype=float),
        't': np.array([3.688249933323872, 4.961982632865806, 1.112886277584652, 2.5342227265990838, 4.054480336328487, 2.416016896339583, 4.394235091194153, 1.947941012105854, 4.026695377796374, 2.6299358000747373, 2.455522984112974, 3.6763685354692583, 0.8412800286141456, 4.320163704729801, 3.3606699321724562, 4.440313287797767, 1.8108983850029228, 1.157426497291814, 4.2963949917332265, 1.733568637807081, 1.2825296129720025, 4.97537871398505, 2.442956240319793, 0.5219675374644721, 2.6844416936424427, 4.020695325857218, 2.325343403283682, 1.2441406321205428, 3.8383372563040155], dtype=float),
        'g': pd.Categorical(['g13', 'g8', 'g15', 'g11', 'g1', 'g3', 'g0', 'g6', 'g7', 'g4', 'g18', 'g19', 'g5', 'g9', 'g14', 'g17', 'g12', 'g2', 'g16', 'g10', 'g3', 'g2', 'g12', 'g2', 'g11', 'g12', 'g7', 'g4', 'g7'], categories=['g0', 'g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7', 'g8', 'g9', 'g10', 'g11', 'g12', 'g13', 'g14', 'g15', 'g16', 'g17', 'g18', 'g19']),
    })

# seed=111 n=29 poisson(identity) 'y ~ x + x2 + offset(log(t)) + (1|g)' n_agq=2 [x2+1e6, empty cells]
_KW_s111 = {'family': 'poisson', 'link': 'identity', 'n_agq': 2}
_FORMULA_s111 = 'y ~ x + x2 + offset(log(t)) + (1|g)'

def _data_s221():
    return pd.DataFrame({
        'y': np.array([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], dtype=np.int64),
        'x': np.array([3.6800719406437484e-05, -0.0002882908098830723, 0.0002719294825849883, -2.3014460438064063e-05, -0.0005804709424688034, -0.0002087638298753132, 0.0004399715631403994, -0.00019079904997613606, 0.00028103652752387416, 7.958611636272007e-05, 0.00014429819882332367], dtype=float),
        'z': np.array([0.43849219452571353, 0.5256466303174994, 0.6319374271110202, 1.6759959417933832, 1.2948234118044821, 0.20800180063791857, 1.3028176211893556, 1.9026024585048713, 0.5543909554073698, 0.6447811723479834, 1.0955786547448536], dtype=float),
        'g': pd.array(['g2', 'g0', 'g2', 'g1', 'g0', 'g0', 'g1', 'g2', 'g1', 'g1', 'g0'], dtype='str'),
    })

# seed=221 n=11 poisson(identity) 'y ~ log(z) + (x||g)' [x*3e-04, x2 constant, empty cells]
_KW_s221 = {'family': 'poisson', 'link': 'identity'}
_FORMULA_s221 = 'y ~ log(z) + (x||g)'

def _data_s650():
    return pd.DataFrame({
        'succ': np.array([0, 0, 1, 1, 1, 0, 0, 1, 0], dtype=np.int64),
        'fail': np.array([2, 1, 0, 0, 0, 2, 1, 0, 1], dtype=np.int64),
        'x': np.array([0.013232830412888507, 0.00384756305327106, 0.0072805317316257225, -0.001926193047391039, -0.005076534989059227, 0.007971046536417083, -0.004443763171073029, 0.00978216265162607, -0.00713620714937149], dtype=float),
        'c': np.array([2, 3, 8, 5, 2, 3, 5, 8, 2], dtype=np.int64),
    })

# seed=650 n=9 binomial(log) 'cbind(succ, fail) ~ x + (1 + x | c)' [x*8e-03, x2*2e+02, binomial:cbind]
_KW_s650 = {'family': 'binomial', 'link': 'log'}
_FORMULA_s650 = 'cbind(succ, fail) ~ x + (1 + x | c)'

def _data_s195():
    return pd.DataFrame({
        'y': np.array([0, 1], dtype=np.int64),
        't': np.array([259968991.7672818, 149721629.88204226], dtype=float),
        'f': pd.array(['f0', 'f0'], dtype='str'),
        'h': pd.array(['h0', 'h0'], dtype='str'),
        'a': pd.array(['a0', 'a4'], dtype='str'),
        'b': pd.Categorical(['b1', 'b3'], categories=['b0', 'b1', 'b2', 'b3']),
    })

# seed=195 n=2 binomial(log) 'y ~ f * h + offset(log(t)) + (1 | a/b)' [x2*2e-06, extreme exposure, empty cells, binomial:01]
_KW_s195 = {'family': 'binomial', 'link': 'log'}
_FORMULA_s195 = 'y ~ f * h + offset(log(t)) + (1 | a/b)'

CASES = {
    "s111": (_FORMULA_s111, _data_s111, _KW_s111),
    "s221": (_FORMULA_s221, _data_s221, _KW_s221),
    "s650": (_FORMULA_s650, _data_s650, _KW_s650),
    "s195": (_FORMULA_s195, _data_s195, _KW_s195),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_former_timeout_ends_quickly(name, eval_counts):
    # 111 in full (29 rows); 221, 650 and 195 shrunk to the rows on which the old PIRLS spent
    # thousands of evaluations per call (100 iterations of up to 30 halvings, then "converged")
    formula, data, kw = CASES[name]
    out = _fit_within_limit(formula, data(), **kw)
    _assert_honest(out)
    assert eval_counts and max(eval_counts) <= MAX_CALL_EVALS


def _fuzz_case(seed):
    tests_dir = str(Path(__file__).resolve().parents[1])
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    fuzz_cases = pytest.importorskip("fuzz_cases")
    return fuzz_cases.make_case(seed)


@pytest.mark.parametrize("seed", [111, 195, 221, 650, 837])
def test_former_fuzz_timeout_seed_ends_quickly(seed, eval_counts):
    case = _fuzz_case(seed)
    out = _fit_within_limit(case.formula, case.data, **case.kwargs())
    _assert_honest(out)
    assert max(eval_counts) <= MAX_CALL_EVALS


# ------------------------------------------------------------------------- single PIRLS calls
def _problem_s111(n_agq=1):
    fam = get_family("poisson", "identity")
    design = build_design(_FORMULA_s111, _data_s111(), fam)
    return GLMMProblem(design, fam, n_agq=n_agq)


def _with_eta_derivs(monkeypatch, prob, change):
    """Replace the family's (ll, s, W, dW) by ``change(eta, ll, s, W, dW)``; returns the call counter."""
    base = prob.family.eta_derivs
    calls = [0]

    def eta_derivs(y, eta, *a, **k):
        calls[0] += 1
        return change(eta, *base(y, eta, *a, **k))

    monkeypatch.setattr(prob.family, "eta_derivs", eta_derivs)
    return calls


@pytest.mark.parametrize("formula", [_FORMULA_s111, "y ~ x + (1|g) + (0 + x|g)"])
def test_pirls_without_a_descent_direction_raises(monkeypatch, formula):
    # every trial point is worse than the start (a kink right at the start, as where a family
    # clamps mu at the edge of its support): every halving fails; the old loop called that
    # "converged" and returned the start as the mode
    fam = get_family("poisson", "identity")
    prob = GLMMProblem(build_design(formula, _data_s111(), fam), fam)
    seen = []

    def kink(eta, ll, s, W, dW):
        seen.append(1)
        return (ll if len(seen) == 1 else ll - 1.0), s, W, dW

    calls = _with_eta_derivs(monkeypatch, prob, kink)
    with pytest.raises(PirlsError, match="no decrease"):
        prob.pirls(np.full(prob.p, 10.0) * (np.arange(prob.p) == 0), np.ones(prob.thetamap.n))
    assert calls[0] <= GLMMProblem.MAX_HALVINGS + 2


@pytest.mark.parametrize("formula", [_FORMULA_s111, "y ~ x + (1|g) + (0 + x|g)"])
def test_pirls_with_an_uphill_score_raises(monkeypatch, formula):
    # the score points uphill: only steps of rounding size are accepted, each a "success"
    fam = get_family("poisson", "identity")
    prob = GLMMProblem(build_design(formula, _data_s111(), fam), fam)
    calls = _with_eta_derivs(monkeypatch, prob, lambda eta, ll, s, W, dW: (ll, -s, W, dW))
    with pytest.raises(PirlsError, match="no (decrease|progress)"):
        prob.pirls(np.full(prob.p, 10.0) * (np.arange(prob.p) == 0), np.ones(prob.thetamap.n))
    assert calls[0] <= MAX_CALL_EVALS


@pytest.mark.parametrize("formula", [_FORMULA_s111, "y ~ x + (1|g) + (0 + x|g)"])
def test_pirls_that_stalls_on_a_flat_objective_raises(monkeypatch, formula):
    # a flat log-likelihood with a score that is not zero: only steps of rounding size are
    # accepted, each a "success"; the old loop did 100 iterations of ~30 halvings per call
    fam = get_family("poisson", "identity")
    prob = GLMMProblem(build_design(formula, _data_s111(), fam), fam)
    calls = _with_eta_derivs(monkeypatch, prob, lambda eta, ll, s, W, dW: (np.full_like(ll, -1.0), s, W, dW))
    with pytest.raises(PirlsError):
        prob.pirls(np.full(prob.p, 10.0) * (np.arange(prob.p) == 0), np.ones(prob.thetamap.n))
    assert calls[0] <= MAX_CALL_EVALS


def test_pirls_iteration_limit_raises_instead_of_returning():
    prob = _problem_s111()
    prob.max_iter = 1  # a cold start cannot converge in one Newton step
    with pytest.raises(PirlsError, match="did not converge"):
        prob.pirls(np.array([10.0, 0.0, 0.0]), np.array([1.0]))


def test_pirls_evaluation_budget_raises(monkeypatch):
    prob = _problem_s111()
    monkeypatch.setattr(prob, "MAX_EVALS", 1)
    with pytest.raises(PirlsError, match="evaluations"):
        prob.pirls(np.array([10.0, 0.0, 0.0]), np.array([1.0]))


def test_nan_scores_raise_instead_of_looping(monkeypatch):
    # nan < x is False: a NaN decrement never met a stopping rule and each call halved 30 times
    prob = _problem_s111()
    calls = _with_eta_derivs(monkeypatch, prob, lambda eta, ll, s, W, dW: (ll, np.full_like(s, np.nan), W, dW))
    with pytest.raises(PirlsError):
        prob.pirls(np.array([10.0, 0.0, 0.0]), np.array([1.0]))
    assert calls[0] <= 4


def test_pirls_normal_problem_still_converges_to_the_mode():
    prob = _problem_s111()
    beta, theta = np.array([10.0, 0.5, 0.0]), np.array([0.5])
    u = prob.pirls(beta, theta)[0]
    # the gradient of the penalised log-likelihood vanishes at the mode
    T = prob.thetamap.factors(theta)
    _, s, _, _ = prob.family.eta_derivs(prob.y, prob.offset + prob.X @ beta + prob.zlam(T, u), prob.w)
    g = prob.lamt_zt(T, s) - u
    assert np.max(np.abs(g)) < 1e-8


# ------------------------------------------------------------------------- the outer optimiser
def test_minimize_does_not_claim_convergence_at_a_failed_start():
    # a failed objective (1e300 with a zero gradient) used to pass the projected-gradient test
    opt = OptSummary()
    x, f = minimize(lambda x: np.inf, np.array([1.0, 2.0]), np.array([0.0, -np.inf]), opt, "test")
    assert f == np.inf and not opt.converged
    assert "starting point" in opt.message
    np.testing.assert_array_equal(x, [1.0, 2.0])


# ------------------------------------------------------------------------- Lambda_rest products
class _Term:
    def __init__(self, rng, q, nlev, n):
        self.q, self.nlev = q, nlev
        self.refs = rng.integers(0, nlev, n)
        self.z = rng.normal(size=(n, q))


@pytest.mark.parametrize("qs", [(2, 1, 3, 2), (1, 2), (3, 1, 1)])
def test_lam_rest_matches_the_sparse_block_diagonal(qs):
    # seed 837 ((x|g) + (1 + x|c)) spent 10 s building Lambda_rest with sparse.kron in every solve
    rng = np.random.default_rng(7)
    n = 40
    terms = [_Term(rng, q, nlev, n) for q, nlev in zip(qs, (6, 4, 5, 3))]
    sysm = BlockedSystem(terms, n)
    Ts = [np.tril(rng.normal(size=(t.q, t.q))) for t in terms[1:]]
    L = sysm.lam_rest_vec(Ts)
    L = np.diag(L) if sysm.rest_scalar else L.toarray()
    for A in (rng.normal(size=sysm.qr), rng.normal(size=(sysm.qr, 5))):
        np.testing.assert_allclose(sysm.lam_rest(Ts, A), L @ A, atol=1e-13)
        np.testing.assert_allclose(sysm.lam_rest(Ts, A, transpose=True), L.T @ A, atol=1e-13)
    M = rng.normal(size=(sysm.qr + 2, sysm.qr + 2))
    Lt = np.eye(sysm.qr + 2)
    Lt[: sysm.qr, : sysm.qr] = L
    np.testing.assert_allclose(sysm.scale_rest(M, [np.eye(qs[0])] + Ts), Lt.T @ M @ Lt, atol=1e-12)


@pytest.mark.parametrize("seed", [195, 221, 650])
def test_a_failing_second_start_keeps_the_first_fit(seed):
    """When the direct start ends with a warning, the fit retries from lme4's nAGQ = 0 stage; if
    that retry cannot find the modes (PirlsError), the first, finite fit is kept with its warning
    instead of turning the whole fit into a FitError."""
    case = _fuzz_case(seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = glmmdiag.glmm(case.formula, case.data, **case.kwargs())
    assert np.all(np.isfinite(fit.fixef)) and np.isfinite(fit.loglik)
    assert any(issubclass(w.category, glmmdiag.GlmmdiagWarning) for w in caught)
