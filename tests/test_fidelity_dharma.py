"""Fidelity to DHARMa 0.5.0 (tests/reference/dharma/*.json: simulateResiduals(fit, n = 1000, seed = 1))
on the models glmmdiag fits today (binomial, Poisson), in the matching simulation mode.

DHARMa's numbers are one Monte-Carlo draw each, so they cannot be matched digit for digit: R's
random numbers differ from numpy's. What must agree is the *distribution* of each statistic. For
every statistic we run our method with k = 6 seeds, estimate the Monte-Carlo SD of a single run
(s, across seeds) and require

    |mean of ours - DHARMa| <= 4 * s * sqrt(1 + 1/k)   (+ a small floor for fit differences)

i.e. the DHARMa value lies within 4 standard errors of the difference of two independent runs of
the same method (a false alarm rate of ~1e-4 per comparison if both implement the same
statistic). The dispersion ratio's floor is 0.5% (our fits match lme4/glmmTMB to ~1e-4 relative,
which moves mu_pop a little). The p-values must agree in verdict at alpha = 0.05 (all reference
p-values here are far from 0.05, so the verdict is not a coin flip).

glmer results come in both modes ("conditional", "unconditional"); glmmTMB 1.1.5's
"user-specified" is unconditional.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import glmmdiag as gd

CASES = {
    "cbpp_glmer_nAGQ1": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    "cbpp_glmmTMB": ("cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial"),
    "contra_glmer_nAGQ1": ("Contraception", "use ~ age + I(age**2) + urban + livch + (1 | district)", "binomial"),
    "contra_glmmTMB": ("Contraception", "use ~ age + I(age**2) + urban + livch + (1 | district)", "binomial"),
    "orobanche_glm_glmmTMB": ("orobanche", "cbind(germ, n - germ) ~ extract * gen", "binomial"),
    "salamanders_poisson": ("Salamanders", "count ~ spp + mined + (1 | site)", "poisson"),
}
K_SEEDS = 6
N_SIM = 1000


@functools.lru_cache(maxsize=None)
def _fit(data_name, formula, family):
    from glmmdiag import datasets

    return gd.glmm(formula, datasets.load(data_name), family=family)


@functools.lru_cache(maxsize=None)
def _runs(data_name, formula, family, mode):
    fit = _fit(data_name, formula, family)
    out = []
    for seed in range(1, K_SEEDS + 1):
        res = gd.simulate_residuals(fit, N_SIM, seed=seed, simulate_re=mode, pit="dharma")
        u, d, z = gd.uniformity_test(res), gd.dispersion_test(res), gd.zero_inflation_test(res)
        out.append((u.statistic, d.statistic, z.statistic, u.p_value, d.p_value, z.p_value))
    return np.array(out)


def _params():
    import json
    from pathlib import Path

    root = Path(__file__).parent / "reference" / "dharma"
    for case in CASES:
        ref = json.loads((root / f"{case}.json").read_text())
        for mode in ref["results"]:
            yield pytest.param(case, mode, id=f"{case}-{mode}")


STATS = [  # name, column, key in the reference, relative floor of the tolerance
    ("KS D", 0, "testUniformity", 0.0),
    ("dispersion", 1, "testDispersion_default", 0.005),
    ("zero-inflation ratio", 2, "testZeroInflation", 0.005),
]


@pytest.mark.parametrize("case,mode", list(_params()))
def test_statistics_within_monte_carlo_error_of_dharma(case, mode, load_reference):
    ref = load_reference(f"dharma/{case}")["results"][mode]
    assert ref["nSim"] == N_SIM
    sim_mode = "conditional" if mode == "conditional" else "unconditional"
    runs = _runs(*CASES[case], sim_mode)
    tests = ref["tests"]
    for name, col, key, floor in STATS:
        theirs = tests[key]["statistic"]
        ours = runs[:, col]
        s = ours.std(ddof=1)
        tol = 4 * s * np.sqrt(1 + 1 / K_SEEDS) + floor * abs(theirs)
        assert abs(ours.mean() - theirs) <= tol, (
            f"{case}/{mode} {name}: ours {ours.mean():.5g} (MC sd {s:.3g}) vs DHARMa {theirs:.5g}, tolerance {tol:.3g}"
        )
        # verdicts at alpha = 0.05, run with seed 1
        p_ours, p_theirs = runs[0, col + 3], tests[key]["p_value"]
        assert (p_ours < 0.05) == (p_theirs < 0.05), f"{case}/{mode} {name}: p {p_ours:.4g} vs DHARMa {p_theirs:.4g}"


def test_outlier_and_pearson_verdicts_on_salamanders(load_reference):
    """Salamanders Poisson: DHARMa flags outliers (binomial p = 0.010, bootstrap p = 0.04) and the
    Pearson test flags overdispersion (p ~ 1e-68); the simulation dispersion test does not (p = 0.16)."""
    ref = load_reference("dharma/salamanders_poisson")["results"]["user-specified"]["tests"]
    fit = _fit(*CASES["salamanders_poisson"])
    res = gd.simulate_residuals(fit, N_SIM, seed=1, simulate_re="unconditional", pit="dharma")
    ob = gd.outlier_test(res, type="binomial")
    assert abs(ob.statistic - ref["testOutliers_binomial"]["statistic"]) <= 4  # a count of rare events
    pe = gd.dispersion_test(res, kind="pearson", residual_df="model")
    assert pe.parameter["df"] == ref["testDispersion_PearsonChisq"]["parameter"] == 635
    assert pe.statistic == pytest.approx(ref["testDispersion_PearsonChisq"]["statistic"], rel=5e-3)
    assert pe.p_value < 1e-50
    assert gd.outlier_test(res).method.startswith("Outlier test: exact binomial")  # n > 500: DHARMa's default rule
