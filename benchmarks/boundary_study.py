"""Boundary study (issue 17): is glmmdiag's optimum the best one when the random-effect SDs are
near zero? (``make calibrate``; not part of ``make test``.)

200 random-slope models ``y ~ x + (x | g)`` are simulated, cycling through Poisson (log link),
binomial (logit, 5 trials per row, ``cbind(s, 5 - s)``) and gaussian (fitted by ML): 20 to 40
groups of 4 to 10 rows, x ~ N(0, 1), true intercept and slope SDs drawn from
{0, 0.01, 0.03, 0.1, 0.3} (gaussian: relative to a residual SD of 1) and a correlation from
U(-0.9, 0.9). Each is fitted by ``glmm`` (the default fit, with its boundary restarts), then
the package's own objective is optimised again from ``--restarts`` (>= 5) random interior
starting points:

* GLMMs: the Laplace deviance -2 l(beta, theta) over (theta, beta) (``GLMMProblem``, exact
  gradient), from theta with diagonal entries exp(U(log 0.05, log 1.5)) and off-diagonal entry
  N(0, 0.3^2) (the lower Cholesky factor of the random-effect covariance), beta from the fit's
  beta plus N(0, (2 SE)^2) noise;
* gaussian: the profiled ML criterion over theta (``LMMProblem``, exact gradient), from theta
  relative to sigma drawn in the same way;

each with scipy's L-BFGS-B (bounds: diagonal entries >= 0). A model passes when
logLik(glmm) >= max over restarts of logLik - 1e-4. Printed: the number that pass, and for each
failure its family, seed, true SDs, glmmdiag's logLik and the best restart's.

Usage::

    python benchmarks/boundary_study.py                  # 200 models, 5 restarts each
    python benchmarks/boundary_study.py --models 30 --restarts 8 --seed 2
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from scipy import optimize

from glmmdiag.fit import glmm
from glmmdiag.fit.laplace import GLMMProblem
from glmmdiag.fit.lmm import LMMProblem

FAMILIES = ("poisson", "binomial", "gaussian")
SDS = (0.0, 0.01, 0.03, 0.1, 0.3)
TRIALS = 5
TOL = 1e-4


def simulate(family: str, rng: np.random.Generator) -> tuple[pd.DataFrame, dict]:
    """One data set: groups, x, and a response from the random-slope model (see the docstring)."""
    n_groups, per = int(rng.integers(20, 41)), int(rng.integers(4, 11))
    sd = rng.choice(SDS, size=2)
    rho = rng.uniform(-0.9, 0.9)
    cov = np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])
    b = rng.multivariate_normal(np.zeros(2), cov, size=n_groups, method="svd")
    g = np.repeat(np.arange(n_groups), per)
    x = rng.standard_normal(len(g))
    beta = {"poisson": (0.5, 0.3), "binomial": (-0.3, 0.5), "gaussian": (1.0, 0.5)}[family]
    eta = beta[0] + b[g, 0] + (beta[1] + b[g, 1]) * x
    d = pd.DataFrame({"g": g.astype(str), "x": x})
    if family == "poisson":
        d["y"] = rng.poisson(np.exp(eta))
    elif family == "binomial":
        d["s"] = rng.binomial(TRIALS, 1.0 / (1.0 + np.exp(-eta)))
        d["f"] = TRIALS - d["s"]
    else:
        d["y"] = eta + rng.standard_normal(len(g))
    return d, {"sd_int": float(sd[0]), "sd_slope": float(sd[1]), "rho": float(rho), "groups": n_groups, "per": per}


def _random_theta(rng: np.random.Generator) -> np.ndarray:
    """A random interior lower Cholesky factor (lme4's theta order: T11, T21, T22)."""
    return np.array([np.exp(rng.uniform(np.log(0.05), np.log(1.5))), rng.normal(0.0, 0.3),
                     np.exp(rng.uniform(np.log(0.05), np.log(1.5)))])


def restart_glmm(fit, rng: np.random.Generator) -> float:
    """logLik after L-BFGS-B on the Laplace deviance over (theta, beta) from a random start."""
    prob = GLMMProblem(fit.design, fit.family)
    nt, p = 3, len(fit.fixef)
    se = np.nan_to_num(fit.se.to_numpy(), nan=0.1)
    x0 = np.concatenate([_random_theta(rng), fit.fixef.to_numpy() + rng.normal(0.0, 2.0 * se)])
    lb = [(0.0, None), (None, None), (0.0, None)] + [(None, None)] * p

    def fg(x):
        try:
            f, g = prob.deviance_and_gradient(x[nt:], x[:nt])
        except Exception:
            return 1e300, np.zeros_like(x)
        if not np.isfinite(f) or g is None or not np.all(np.isfinite(g)):
            return 1e300, np.zeros_like(x)
        return f, np.asarray(g, float)

    res = optimize.minimize(fg, x0, jac=True, method="L-BFGS-B", bounds=lb,
                            options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9})
    return -0.5 * float(prob.laplace_deviance(res.x[nt:], res.x[:nt])) if res.fun < 1e299 else -np.inf


def restart_lmm(fit, rng: np.random.Generator) -> float:
    """logLik after L-BFGS-B on the profiled ML criterion over theta from a random start."""
    prob = LMMProblem(fit.design, False)
    res = optimize.minimize(prob.objective_and_gradient, _random_theta(rng), jac=True, method="L-BFGS-B",
                            bounds=[(0.0, None), (None, None), (0.0, None)],
                            options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9})
    return float(prob.solution(res.x).loglik)


def one_model(i: int, seed: int, restarts: int) -> dict:
    family = FAMILIES[i % len(FAMILIES)]
    rng = np.random.default_rng([seed, i])
    d, truth = simulate(family, rng)
    formula = "cbind(s, f) ~ x + (x | g)" if family == "binomial" else "y ~ x + (x | g)"
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmm(formula, d, family=family)
        t_fit, c_fit = time.perf_counter() - t0, time.process_time() - c0
        lls = []
        for _ in range(restarts):
            try:
                lls.append(restart_lmm(fit, rng) if family == "gaussian" else restart_glmm(fit, rng))
            except Exception:  # a restart that fails is not a better optimum
                lls.append(-np.inf)
    best = max(lls)
    sds = fit.varcorr.query("grp == 'g' and var2.isnull()", engine="python")["sdcor"].to_numpy()
    return {"model": i, "family": family, **truth, "loglik": fit.loglik, "best_restart": best,
            "gap": best - fit.loglik, "pass": fit.loglik >= best - TOL, "fit_sd_int": sds[0],
            "fit_sd_slope": sds[1], "singular": any("singular" in str(w).lower() for w in fit.warnings),
            "fit_s": t_fit, "fit_cpu_s": c_fit, "n_restarts_ok": int(np.sum(np.isfinite(lls)))}


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="write the per-model table as CSV")
    a = ap.parse_args(argv)
    if a.restarts < 5:
        ap.error("--restarts must be >= 5")
    t0, c0 = time.perf_counter(), time.process_time()
    rows = [one_model(i, a.seed, a.restarts) for i in range(a.models)]
    res = pd.DataFrame(rows)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if a.out:
        res.to_csv(a.out, index=False)
    print(f"boundary study: {a.models} models, {a.restarts} random interior restarts each, seed {a.seed}")
    print(f"time: {wall:.1f} s wall, {cpu:.1f} s CPU")
    by = res.groupby("family").agg(models=("pass", "size"), passed=("pass", "sum"), singular=("singular", "sum"),
                                   max_gap=("gap", "max"), median_fit_s=("fit_s", "median"))
    print(by.to_string())
    print(f"passed: {int(res['pass'].sum())} of {len(res)} (logLik >= best restart - {TOL:g})")
    fails = res[~res["pass"]]
    if len(fails):
        print("failures:")
        cols = ["model", "family", "sd_int", "sd_slope", "rho", "groups", "per", "loglik", "best_restart", "gap",
                "fit_sd_int", "fit_sd_slope"]
        print(fails[cols].to_string(index=False))
    return res


if __name__ == "__main__":
    main()
