"""Calibration of ``simulate_lrt`` (parametric-bootstrap LRT): "is the random intercept needed?"

Null: y = 1 + 0.5 x + e (no group effect), fitted as y ~ x (m0) and y ~ x + (1 | g) (m1); the
chi-square reference of anova() is conservative there (the variance sits on its boundary), the
bootstrap should reject at the nominal rate. Power: a group SD of ``--sd`` under the alternative.
With B bootstrap draws the test's exact level is floor(alpha (B + 1)) / (B + 1): the default
B = 39 makes it exactly 0.05.

    .venv/bin/python benchmarks/lrt_calibration.py --reps 200 --groups 10 50 --per-group 6
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats

import glmmdiag


def one(rep: int, groups: int, per_group: int, sd: float, n_sim: int) -> tuple[float, float]:
    rng = np.random.default_rng([2026, groups, per_group, int(sd * 1000), rep])
    g = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + sd * rng.normal(size=groups)[g] + rng.normal(size=g.size)
    d = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m0 = glmmdiag.glmm("y ~ x", d)
        m1 = glmmdiag.glmm("y ~ x + (1 | g)", d)
        r = glmmdiag.simulate_lrt(m0, m1, n_sim=n_sim, seed=rep)
    return r.p_value, r.estimate["p_chisq"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--groups", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--per-group", type=int, default=6)
    ap.add_argument("--sd", type=float, default=0.5, help="group SD under the alternative")
    ap.add_argument("--n-sim", type=int, default=39)
    ap.add_argument("--jobs", type=int, default=-1)
    ap.add_argument("--alpha", type=float, default=0.05)
    o = ap.parse_args(argv)
    print(f"{'groups':>6} {'rows':>5} {'truth':>9} {'reps':>5} {'bootstrap':>10} {'95% CI':>15} {'chi-square':>11}")
    for groups in o.groups:
        for sd, label in ((0.0, "null"), (o.sd, f"sd {o.sd:g}")):
            res = Parallel(n_jobs=o.jobs)(delayed(one)(r, groups, o.per_group, sd, o.n_sim) for r in range(o.reps))
            pb, pc = np.array(res).T
            k = int(np.sum(pb <= o.alpha))
            lo, hi = stats.beta.ppf(0.025, k, o.reps - k + 1) if k else 0.0, stats.beta.ppf(0.975, k + 1, o.reps - k)
            print(f"{groups:>6} {groups * o.per_group:>5} {label:>9} {o.reps:>5} {k / o.reps:>10.3f} "
                  f"[{lo:.3f}, {hi:.3f}] {np.mean(pc <= o.alpha):>11.3f}", flush=True)


if __name__ == "__main__":
    main()
