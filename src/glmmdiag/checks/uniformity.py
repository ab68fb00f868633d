"""The Kolmogorov-Smirnov test of the scaled residuals against Uniform(0, 1)."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from glmmdiag.results import ScaledResiduals, TestResult
from glmmdiag.checks._common import _all_tied_note, _alt, _check_res, _data_name


def uniformity_test(res: ScaledResiduals, alternative: str = "two-sided") -> TestResult:
    """One-sample Kolmogorov-Smirnov test of the scaled residuals against Uniform(0, 1).

    "greater": the residuals' ECDF lies above the uniform CDF somewhere (R's and scipy's
    convention; statistic D+), "less": below (D-).

    The default residuals (``pit="ranks"``) are exactly Uniform(0, 1) under the model (no grid),
    so the test keeps its size at any n. DHARMa's residuals (``pit="dharma"``) of a continuous
    response lie on the grid {0, 1/n_sim, ..., 1}: their KS distance to the uniform is at least
    about 1/(2 (n_sim + 1)), which the test detects once n is large (a correct Poisson GLMM with
    10^6 rows and n_sim = 250: p = 4e-4; tests/test_large_n.py).

    Examples
    --------
    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> rust = datasets.load("rust")
    >>> fit = glmmdiag.glmm("severity ~ fungicide + (1 | block)", rust, family="beta")
    >>> res = glmmdiag.simulate_residuals(fit, n_sim=250, seed=1)
    >>> t = glmmdiag.uniformity_test(res)
    >>> print(f"D = {t.statistic:.3f}, p = {t.p_value:.2f}")
    D = 0.075, p = 0.93
    """
    res = _check_res(res)
    alt = _alt(alternative)
    r = np.asarray(res.residuals, float)
    kt = stats.kstest(r, "uniform", alternative=alt if alt != "two-sided" else "two-sided")
    exact = r.size < 100
    method = ("Exact" if exact else "Asymptotic") + " one-sample Kolmogorov-Smirnov test"
    if not exact:
        # R's asymptotic p-value (Kolmogorov distribution / Smirnov's limit) for n >= 100
        n = r.size
        if alt == "two-sided":
            p = float(stats.kstwobign.sf(kt.statistic * math.sqrt(n)))
        else:
            p = float(math.exp(-2.0 * n * kt.statistic**2))
    else:
        p = float(kt.pvalue)
    rs = np.sort(r)
    return TestResult(
        method=method,
        note=_all_tied_note(res),
        statistic=float(kt.statistic),
        statistic_name="D" if alt == "two-sided" else ("D^+" if alt == "greater" else "D^-"),
        p_value=min(1.0, p),
        alternative=alt,
        data_name=_data_name(res),
        simulate_re=res.simulate_re,
        plot_data={"sorted_residuals": rs, "expected": (np.arange(1, rs.size + 1) - 0.5) / rs.size},
    )
