"""Large-n calibration of the residual tests and of the ``glmmdiag check`` verdict (``make calibrate``).

Data are simulated from known GLMMs, y ~ x + (1 | g) with 100 groups (random-intercept SD 0.5,
x ~ N(0, 1)), at n = 10^4, 10^5 and 10^6 rows:

* ``poisson``: log mu = 0.5 + 0.4 x + u -> Poisson GLMM (H0 true)
* ``bernoulli``: logit p = 0.2 + 0.6 x + u -> binomial GLMM (H0 true)
* ``poisson_olre``: the Poisson model plus observation-level N(0, 0.5^2) noise on log mu -> Poisson
  GLMM (overdispersed: power)

Each data set goes through exactly what ``glmmdiag check`` does (``report.run_check`` with its
defaults: n_sim = 250, conditional simulation, the default residuals ``pit="ranks"``, automatic
calibration within the refit budget), without writing the report. Recorded per data set: the
p-value of every test of ``residual_tests`` (uniformity, dispersion, outliers) and of the other
two tests of the verdict (zero inflation, quantiles), whether the p-values were calibrated, the
verdict and the wall and CPU seconds. The verdict's rejection rate is computed from the p-values
by the CLI's rule (Holm over the five tests: it flags iff min p < 0.05 / 5).

Printed: the rejection rate at alpha = 0.05 of each test and of the verdict with its 95%
Clopper-Pearson interval. Targets (issue 15): every rate <= 0.07 under H0 at every n; power of the
verdict / dispersion test against ``poisson_olre`` >= 0.9 at n = 10^4.

Rows are appended to ``--out`` (CSV) as data sets finish, so a long run can be stopped and
summarised (``--summarise``)::

    python benchmarks/calibration_large_n.py                               # 10^4 x 200, 10^5 x 50, 10^6 x 10
    python benchmarks/calibration_large_n.py --sizes 1e4 --reps 200 --out a.csv
    python benchmarks/calibration_large_n.py --sizes 1e6 --reps 10 --scenarios poisson --out b.csv
    python benchmarks/calibration_large_n.py --summarise a.csv b.csv
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from calibration import clopper_pearson  # benchmarks/calibration.py (this script's folder)

ALPHA = 0.05
N_GROUPS = 100
SD_RE = 0.5
SCENARIOS = {"poisson": ("poisson", "H0"), "bernoulli": ("binomial", "H0"),
             "poisson_olre": ("poisson", "overdispersion")}
TESTS = ["uniformity", "dispersion", "outliers", "zero_inflation", "quantiles"]
DEFAULT_REPS = {10_000: 200, 100_000: 50, 1_000_000: 10}


def simulate_data(scenario: str, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """One data set of ``scenario`` with ``n`` rows (module docstring)."""
    g = rng.integers(0, N_GROUPS, n)
    x = rng.standard_normal(n)
    u = rng.normal(0.0, SD_RE, N_GROUPS)[g]
    if scenario.startswith("poisson"):
        eta = 0.5 + 0.4 * x + u
        if scenario == "poisson_olre":
            eta = eta + rng.normal(0.0, 0.5, n)
        y = rng.poisson(np.exp(eta)).astype(float)
    elif scenario == "bernoulli":
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(0.2 + 0.6 * x + u)))).astype(float)
    else:
        raise ValueError(scenario)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


def one_replicate(scenario: str, n: int, rep: int, seed: int) -> dict:
    """Simulate, check as the CLI does, and record p-values, verdict and times."""
    from glmmdiag import report

    rng = np.random.default_rng(np.random.SeedSequence([seed, rep, n, sum(map(ord, scenario))]))
    df = simulate_data(scenario, n, rng)
    row = {"scenario": scenario, "n": n, "rep": rep, "error": None, **{t: np.nan for t in TESTS},
           "calibrated": False, "estimated_refit_s": np.nan, "verdict_rejects": False, "verdict": None,
           "wall_s": np.nan, "cpu_s": np.nan}
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            check = report.run_check(df, "y ~ x + (1 | g)", SCENARIOS[scenario][0], seed=int(rng.integers(2**31)))
    except Exception as exc:  # recorded, not fatal
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    label = check.table.index[0]
    tests = check.table.tests[label]
    for t in TESTS:
        row[t] = float(tests[t].p_value) if t in tests else np.nan
    cal = check.calibration.get(label, {})
    row["calibrated"] = bool(cal.get("calibrated", False))
    row["estimated_refit_s"] = cal.get("estimated_seconds")
    row["verdict_rejects"] = str(check.table.loc[label, "verdict"]) != "no problems detected"
    row["verdict"] = str(check.table.loc[label, "verdict"])
    row["wall_s"] = time.perf_counter() - t0
    row["cpu_s"] = time.process_time() - c0
    return row


def holm_verdict_rejects(d: pd.DataFrame, alpha: float = ALPHA) -> np.ndarray:
    """Whether the CLI verdict flags each data set: it reads the tests' p-values Holm-adjusted over
    the k tests with a p-value (``compare.verdict_tests``), so it flags a data set iff the smallest
    p-value is below alpha / k. Recomputed from the recorded p-values (the ``verdict`` column of
    runs made before the verdict was adjusted is the unadjusted union of the tests)."""
    P = d[TESTS].to_numpy(float)
    k = np.isfinite(P).sum(axis=1)
    return np.nanmin(P, axis=1) * np.maximum(k, 1) < alpha


def summarise(raw: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Rejection rate of each test and of the verdict per (scenario, n), with its 95% CI."""
    rows = []
    ok = raw[raw["error"].isna()]
    for (sc, n), d in ok.groupby(["scenario", "n"], sort=True):
        for t in TESTS + ["verdict"]:
            if t == "verdict":
                rej = holm_verdict_rejects(d, alpha)
            else:
                p = d[t].dropna().to_numpy()
                rej = p < alpha
            k, m = int(rej.sum()), int(rej.size)
            if m == 0:
                continue
            lo, hi = clopper_pearson(k, m)
            rows.append({"scenario": sc, "truth": SCENARIOS[sc][1], "n": int(n), "test": t, "reps": m,
                         "rejection_rate": k / m, "ci_low": lo, "ci_high": hi,
                         "calibrated_share": float(d["calibrated"].astype(bool).mean()),
                         "wall_s_per_set": float(d["wall_s"].mean()), "cpu_s_per_set": float(d["cpu_s"].mean())})
    return pd.DataFrame(rows)


def report_table(raw: pd.DataFrame) -> pd.DataFrame:
    summ = summarise(raw)
    pd.set_option("display.width", 220)
    nerr = int(raw["error"].notna().sum())
    print(f"large-n calibration: alpha = {ALPHA}, {N_GROUPS} groups, glmmdiag check defaults; failed: {nerr}")
    cell = summ.assign(rate=lambda d: d.apply(
        lambda r: f"{r.rejection_rate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]", axis=1))
    wide = cell.pivot_table(index=["scenario", "truth", "n"], columns="test", values="rate", aggfunc="first")
    wide = wide[[c for c in TESTS + ["verdict"] if c in wide.columns]]
    meta = summ.groupby(["scenario", "truth", "n"])[["reps", "calibrated_share", "wall_s_per_set",
                                                      "cpu_s_per_set"]].first()
    print("rejection rate at alpha = 0.05 [95% Clopper-Pearson interval]")
    print(wide.join(meta).to_string(float_format=lambda v: f"{v:.3g}"))
    h0 = summ[summ["truth"] == "H0"]
    bad = h0[h0["rejection_rate"] > 0.07]
    print("\nH0 rejection rates above 0.07:" if len(bad) else "\nall H0 rejection rates <= 0.07")
    if len(bad):
        print(bad[["scenario", "n", "test", "rejection_rate", "ci_low", "ci_high"]].to_string(index=False))
    pw = summ[(summ["truth"] != "H0") & summ["test"].isin(["dispersion", "verdict"])]
    if len(pw):
        print("\npower against observation-level overdispersion (sigma = 0.5), target >= 0.9 at n = 1e4:")
        print(pw[["scenario", "n", "test", "reps", "rejection_rate", "ci_low", "ci_high"]].to_string(index=False))
    return summ


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="*", default=["1e4", "1e5", "1e6"])
    ap.add_argument("--reps", type=int, default=None, help="replicates per size (default 200 / 50 / 10)")
    ap.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    ap.add_argument("--power-sizes", nargs="*", default=["1e4"], help="sizes at which poisson_olre is run")
    ap.add_argument("--first-rep", type=int, default=0)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--out", default=None, help="append the per-data-set rows to this CSV as they finish")
    ap.add_argument("--summarise", nargs="+", default=None, metavar="CSV")
    a = ap.parse_args(argv)
    if a.summarise:
        raw = pd.concat([pd.read_csv(f) for f in a.summarise], ignore_index=True)
        raw = raw.drop_duplicates(["scenario", "n", "rep"])
        raw["error"] = raw["error"].where(raw["error"].notna(), None)
        return report_table(raw)
    jobs = []
    power_sizes = {int(float(s)) for s in a.power_sizes}
    for s in a.sizes:
        n = int(float(s))
        reps = a.reps or DEFAULT_REPS.get(n, 10)
        scen = [sc for sc in a.scenarios if SCENARIOS[sc][1] == "H0" or n in power_sizes]
        # replicate-major order: a run stopped early has about as many replicates of each scenario
        jobs += [delayed(one_replicate)(sc, n, r, a.seed) for r in range(a.first_rep, a.first_rep + reps)
                 for sc in scen]
    t0 = time.perf_counter()
    rows = []
    for row in Parallel(n_jobs=a.n_jobs, batch_size=1, return_as="generator_unordered")(jobs):
        rows.append(row)
        if a.out:
            pd.DataFrame([row]).to_csv(a.out, mode="a", index=False,
                                       header=not os.path.exists(a.out) or os.path.getsize(a.out) == 0)
    print(f"{len(rows)} data sets in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return report_table(pd.DataFrame(rows))


if __name__ == "__main__":
    main()
