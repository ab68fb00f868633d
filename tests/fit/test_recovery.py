"""Parameter recovery for the dispersion families (issue 3, "Done means").

Design: 30 groups x 10 observations, one covariate x ~ N(0, 1), a random intercept b_g ~ N(0, sd^2),
eta = beta0 + beta1 x + b_g; responses drawn with numpy directly from the true parameters (not with
the family objects under test).  Each data set is fitted with ``glmm(y ~ x + (1 | g), family=...)``.

* The slow study (``@pytest.mark.slow``, ``make calibrate``) fits N_SLOW = 1000 data sets per family
  and checks, per family:
    - beta0, beta1: |mean estimate - true| <= 3 Monte-Carlo SEs (MC SE = SD of the estimates /
      sqrt(N)): unbiased within Monte-Carlo error;
    - RE SD and dispersion (glmmTMB's sigma()): |mean - true| <= 3 MC SEs + ML_BIAS_ALLOWANCE x true.
      Maximum-likelihood (Laplace) estimates of scale parameters with 30 groups are biased by a few
      per cent (the RE SD downwards: ML ignores the fixed effects' degrees of freedom, and the
      Laplace approximation shrinks variance components of count and proportion models). The
      allowance (6 %) states that known bias instead of hiding it in a wider band. On 100 data sets
      per family from the same design glmmTMB 1.1.5 gives the same estimates as glmmdiag (largest
      difference 3e-5), hence the same bias: it belongs to the estimator, not to this code;
    - t's df (estimated): the median estimate within [0.6, 1.6] x true (the df estimate is skewed
      and some data sets put df at the upper end; its mean is not a useful summary);
    - 95 % Wald intervals (estimate +- 1.96 SE): the slope's coverage within [0.93, 0.97]; the
      intercept's within that band widened by 2 binomial SEs (0.0069 at N = 1000). The intercept
      is a between-group contrast estimated from 30 groups: its Wald interval (normal quantile,
      ML variance components) undercovers slightly when the between-group variance dominates,
      as for the Gamma design (mean SE / SD of the estimates 0.96); the numbers are printed;
    - every fit converged.
  The measured numbers are printed (run with ``-s`` to see them).
* The reduced version (in ``make test``) fits N_FAST = 6 data sets per family and checks the same
  quantities with wide bands: mean estimates within 4 empirical SEs of the mean (plus 10 % for the
  scale parameters), at least 4 of the 6 intervals covering each beta, every fit converged.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

N_GROUPS, PER_GROUP = 30, 10
N_SLOW, N_FAST = 1000, 6
ML_BIAS_ALLOWANCE = 0.06  # relative, for the RE SD and the dispersion (see the module docstring)
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Truth:
    family: str
    link: str
    beta: tuple
    sd: float
    dispersion: float  # glmmTMB's sigma() for the family (what fit.dispersion holds)
    df: float | None = None  # t only


TRUTHS = {
    "gamma": Truth("gamma", "log", (1.0, 0.5), 0.5, 0.5),  # CV 0.5: shape 4
    "beta": Truth("beta", "logit", (0.0, 0.5), 0.5, 10.0),  # precision 10
    "nbinom2": Truth("nbinom2", "log", (1.0, 0.5), 0.5, 2.0),  # theta 2
    "nbinom1": Truth("nbinom1", "log", (1.0, 0.5), 0.5, 1.5),  # phi 1.5
    "t": Truth("t", "identity", (1.0, 0.5), 0.5, 0.5, df=5.0),  # scale 0.5, df 5
}


def simulate_data(truth: Truth, rng: np.random.Generator) -> pd.DataFrame:
    n = N_GROUPS * PER_GROUP
    g = np.repeat(np.arange(N_GROUPS), PER_GROUP)
    x = rng.standard_normal(n)
    b = rng.normal(0.0, truth.sd, N_GROUPS)
    eta = truth.beta[0] + truth.beta[1] * x + b[g]
    phi = truth.dispersion
    if truth.family == "gamma":
        mu = np.exp(eta)
        shape = 1.0 / phi**2
        y = rng.gamma(shape, mu / shape)
    elif truth.family == "beta":
        mu = 1.0 / (1.0 + np.exp(-eta))
        y = rng.beta(mu * phi, (1.0 - mu) * phi)
        y = np.clip(y, 1e-12, 1 - 1e-12)
    elif truth.family == "nbinom2":
        mu = np.exp(eta)
        y = rng.poisson(rng.gamma(phi, mu / phi))  # var = mu + mu^2 / theta
    elif truth.family == "nbinom1":
        mu = np.exp(eta)
        y = rng.poisson(rng.gamma(mu / phi, phi))  # size mu/phi, var = mu (1 + phi)
    elif truth.family == "t":
        y = eta + phi * rng.standard_t(truth.df, n)
    else:  # pragma: no cover
        raise ValueError(truth.family)
    return pd.DataFrame({"y": y.astype(float), "x": x, "g": pd.Categorical([f"g{i:02d}" for i in g])})


def fit_one(truth: Truth, data: pd.DataFrame) -> dict:
    import glmmdiag

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fit = glmmdiag.glmm("y ~ x + (1 | g)", data, family=truth.family, link=truth.link)
    beta = fit.fixef.to_numpy(float)
    se = fit.se.to_numpy(float)
    vc = fit.varcorr
    sd = float(vc[(vc["grp"] == "g") & vc["var2"].isna()]["sdcor"].iloc[0])
    lo, hi = beta - Z95 * se, beta + Z95 * se
    return dict(
        beta0=beta[0], beta1=beta[1], se0=se[0], se1=se[1], sd=sd, dispersion=float(fit.dispersion),
        df=fit.df if truth.family == "t" else np.nan,
        cover0=bool(lo[0] <= truth.beta[0] <= hi[0]), cover1=bool(lo[1] <= truth.beta[1] <= hi[1]),
        converged=bool(fit.converged) and not any("converge" in str(w.message) for w in rec),
        singular=any("singular" in str(w.message) for w in rec),
    )


def run_study(family: str, n_sets: int, seed: int) -> pd.DataFrame:
    truth = TRUTHS[family]
    rng = np.random.default_rng(seed)
    rows = [fit_one(truth, simulate_data(truth, rng)) for _ in range(n_sets)]
    return pd.DataFrame(rows)


def summarise(family: str, res: pd.DataFrame) -> dict:
    truth = TRUTHS[family]
    n = len(res)
    out = {"family": family, "n": n, "converged": float(res["converged"].mean()),
           "singular": float(res["singular"].mean())}
    for key, true in (("beta0", truth.beta[0]), ("beta1", truth.beta[1]), ("sd", truth.sd),
                      ("dispersion", truth.dispersion)):
        v = res[key].to_numpy(float)
        out[key] = dict(true=true, mean=float(v.mean()), bias=float(v.mean() - true),
                        mc_se=float(v.std(ddof=1) / np.sqrt(n)))
    out["cover0"] = float(res["cover0"].mean())
    out["cover1"] = float(res["cover1"].mean())
    # calibration of the SEs: mean SE / SD of the estimates
    out["se_ratio0"] = float(res["se0"].mean() / res["beta0"].std(ddof=1))
    out["se_ratio1"] = float(res["se1"].mean() / res["beta1"].std(ddof=1))
    if family == "t":
        out["df_median"] = float(np.median(res["df"]))
    return out


def format_summary(s: dict) -> str:
    parts = [f"{s['family']:8s} n={s['n']} converged={s['converged']:.3f} singular={s['singular']:.3f}"]
    for key in ("beta0", "beta1", "sd", "dispersion"):
        d = s[key]
        parts.append(f"{key}: true {d['true']:g} mean {d['mean']:.4f} bias {d['bias']:+.4f} "
                     f"(MC SE {d['mc_se']:.4f}, {d['bias'] / d['mc_se']:+.1f} SE)")
    parts.append(f"Wald 95% coverage beta0 {s['cover0']:.3f} beta1 {s['cover1']:.3f}; "
                 f"mean SE / SD of estimates beta0 {s['se_ratio0']:.3f} beta1 {s['se_ratio1']:.3f}")
    if "df_median" in s:
        parts.append(f"df median {s['df_median']:.2f} (true {TRUTHS['t'].df:g})")
    return "\n    ".join(parts)


# ---------------------------------------------------------------------------------------------- the tests
@pytest.mark.parametrize("family", list(TRUTHS))
def test_recovery_reduced(family):
    """A handful of data sets, wide bands (runs in `make test`)."""
    truth = TRUTHS[family]
    res = run_study(family, N_FAST, seed=1000 + list(TRUTHS).index(family))
    assert res["converged"].all(), res
    for key, true, extra in (("beta0", truth.beta[0], 0.0), ("beta1", truth.beta[1], 0.0),
                             ("sd", truth.sd, 0.1), ("dispersion", truth.dispersion, 0.1)):
        v = res[key].to_numpy(float)
        band = 4 * v.std(ddof=1) / np.sqrt(len(v)) + extra * true + 1e-8
        assert abs(v.mean() - true) <= band, f"{key}: mean {v.mean():.4f} vs true {true} (band {band:.4f})"
    assert res["cover0"].sum() >= N_FAST - 2 and res["cover1"].sum() >= N_FAST - 2
    if family == "t":
        median_df = np.median(res["df"])
        assert median_df > 1.5 and median_df < 50


@pytest.mark.slow
@pytest.mark.parametrize("family", list(TRUTHS))
def test_recovery_study(family):
    """N_SLOW data sets per family: unbiasedness within Monte-Carlo error and Wald coverage."""
    res = run_study(family, N_SLOW, seed=2000 + list(TRUTHS).index(family))
    s = summarise(family, res)
    print("\n" + format_summary(s))
    assert s["converged"] == 1.0, f"{(1 - s['converged']) * N_SLOW:.0f} fits did not converge"
    for key in ("beta0", "beta1"):
        d = s[key]
        assert abs(d["bias"]) <= 3 * d["mc_se"], f"{key}: {d}"
    for key in ("sd", "dispersion"):
        d = s[key]
        assert abs(d["bias"]) <= 3 * d["mc_se"] + ML_BIAS_ALLOWANCE * d["true"], f"{key}: {d}"
    assert 0.93 <= s["cover1"] <= 0.97, s["cover1"]
    se_cov = np.sqrt(0.95 * 0.05 / N_SLOW)
    assert 0.93 - 2 * se_cov <= s["cover0"] <= 0.97 + 2 * se_cov, s["cover0"]
    if family == "t":
        assert 0.6 * TRUTHS["t"].df <= s["df_median"] <= 1.6 * TRUTHS["t"].df


if __name__ == "__main__":  # python tests/fit/test_recovery.py [family ...] [--n N]
    import sys

    args = sys.argv[1:]
    n = N_SLOW
    if "--n" in args:
        i = args.index("--n")
        n = int(args[i + 1])
        del args[i : i + 2]
    save = None
    if "--save" in args:  # write the per-data-set estimates as CSV files with this prefix
        i = args.index("--save")
        save = args[i + 1]
        del args[i : i + 2]
    for fam in args or list(TRUTHS):
        res = run_study(fam, n, seed=2000 + list(TRUTHS).index(fam))
        if save:
            res.to_csv(f"{save}_{fam}.csv", index=False)
        print(format_summary(summarise(fam, res)), flush=True)
