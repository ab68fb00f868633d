"""Helpers shared by the tests: the alternative, the Monte-Carlo p-value of DHARMa's generic test, ratios
observed / simulated and the result of a test that is undefined for the data."""
from __future__ import annotations

import math
import warnings

import numpy as np

from glmmdiag.errors import GlmmdiagError, UndefinedTestWarning
from glmmdiag.results import ScaledResiduals, TestResult


# ---------------------------------------------------------------------------------- helpers
def _alt(alternative: str) -> str:
    a = str(alternative).lower().replace(".", "-").replace("_", "-")
    if a in ("two-sided", "twosided", "both"):
        return "two-sided"
    if a in ("greater", "less"):
        return a
    raise GlmmdiagError(f"alternative must be 'two-sided', 'greater' or 'less'; got {alternative!r}")


def _check_res(res) -> ScaledResiduals:
    if not isinstance(res, ScaledResiduals):
        raise TypeError(
            f"expected the ScaledResiduals returned by simulate_residuals(...); got {type(res).__name__}"
        )
    return res


def _generic_p(obs: float, sims: np.ndarray, alternative: str) -> tuple[float, float]:
    """DHARMa's testGeneric p-value (no +1 correction) and its Monte-Carlo SE (NaN, NaN when the
    observed value or every simulated one is NaN)."""
    sims = np.asarray(sims, float)
    sims = sims[~np.isnan(sims)]
    n = sims.size
    if n == 0 or math.isnan(obs):
        return math.nan, math.nan
    p_gr = float(np.mean(sims >= obs))
    p_le = float(np.mean(sims <= obs))
    if alternative == "greater":
        p = p_gr
        se = math.sqrt(p * (1 - p) / n)
    elif alternative == "less":
        p = p_le
        se = math.sqrt(p * (1 - p) / n)
    else:
        m = min(p_gr, p_le)
        p = min(1.0, 2 * m)
        se = min(1.0, 2 * math.sqrt(m * (1 - m) / n))
    # a p-value of exactly 0 or 1 has binomial SE 0: report the resolution 1/n instead
    return p, max(se, 1.0 / n) if p in (0.0, 1.0) else se


def _ratio(obs, sims):
    m = float(np.nanmean(sims))
    if m == 0:
        return math.inf if obs > 0 else math.nan
    return float(obs / m)


def _ratio_note(obs, sims) -> str | None:
    """Why the ratio observed / mean simulated is not an ordinary number, or None."""
    finite = np.asarray(sims, float)
    finite = finite[~np.isnan(finite)]
    if finite.size == 0 or math.isnan(obs) or np.any(finite != 0):
        return None
    if obs == 0:
        return ("ratio undefined (0/0): the observed and every simulated value are 0; the p-value compares the "
                "values themselves (they agree)")
    return "ratio infinite: every simulated value is 0 and the observed one is not"


def _undefined(res, method: str, statistic_name: str, alt: str, why: str, **extra) -> "TestResult":
    """A test that cannot be computed on these data: NaN statistic and p-value, a note and a warning."""
    warnings.warn(f"{method}: undefined for these data: {why}", UndefinedTestWarning, stacklevel=3)
    return TestResult(
        method=method,
        statistic=math.nan,
        statistic_name=statistic_name,
        p_value=math.nan,
        alternative=alt,
        data_name=_data_name(res),
        simulate_re=res.simulate_re,
        note=f"undefined: {why}",
        **extra,
    )


def _observed_vs_simulated(res, obs, sims, alt, method, statistic_name, n_sim, note=None) -> "TestResult":
    """DHARMa's testGeneric result: ratio observed / mean simulated, empirical p-value and its MC SE."""
    p, se = _generic_p(obs, sims, alt)
    notes = [t for t in (_ratio_note(obs, sims), note) if t]
    return TestResult(
        method=method,
        statistic=_ratio(obs, sims),
        statistic_name=statistic_name,
        p_value=p,
        alternative=alt,
        data_name=_data_name(res),
        mc_se=se,
        n_sim=n_sim,
        simulate_re=res.simulate_re,
        note="\n".join(notes) if notes else None,
        plot_data={"observed": obs, "simulated": np.asarray(sims)},
    )


def _data_name(res, extra="") -> str:
    return "simulated scaled residuals" + extra


# ---------------------------------------------------------------------------------- uniformity
def _all_tied_note(res) -> str | None:
    """A note when every observation ties with all of its simulations (e.g. all zeros observed and
    simulated): each residual is then a pure tie-breaking draw, uniform by construction, so a
    residual test cannot detect anything."""
    less, leq = np.asarray(res.counts_less), np.asarray(res.counts_leq)
    if res.method == "PIT" and less.size and np.all(less == 0) and np.all(leq == res.n_sim):
        return ("Note: every observation equals all of its simulations (constant data): the residuals are pure "
                "tie-breaking noise and carry no information about the model")
    return None


def _signif_plain(v: float) -> str:
    return f"{float(v):.6g}"
