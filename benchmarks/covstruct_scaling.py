"""Scaling rows for the covariance structures (issue 14): time and peak memory of one fit.

* ``ar1``: gaussian, G series x T equally spaced times, ``y ~ x + ar1(t + 0 | g)``;
* ``spatial``: Poisson, N locations with an exponential Gaussian field,
  ``count ~ z + exp(numFactor(xc, yc) + 0 | grp)``.

Each glmmdiag fit runs in a fresh process (peak RSS is that process's, imports included;
``tracemalloc`` counts the Python allocations of the fit alone). With ``Rscript`` on PATH and
``--r``, glmmTMB fits the same data in the same run (``--r-timeout`` seconds at most; its
wall and CPU seconds, user + system, are printed).

    .venv/bin/python benchmarks/covstruct_scaling.py                     # default sizes
    .venv/bin/python benchmarks/covstruct_scaling.py --ar1 1000x50 --spatial 1000 --r
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def ar1_data(groups: int, times: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rho, sd = 0.7, 0.8
    e = np.empty((groups, times))
    e[:, 0] = rng.normal(0, sd, groups)
    for t in range(1, times):
        e[:, t] = rho * e[:, t - 1] + rng.normal(0, sd * np.sqrt(1 - rho**2), groups)
    x = rng.normal(size=(groups, times))
    y = 0.5 + 0.4 * x + e + rng.normal(0, 0.4, (groups, times))
    return pd.DataFrame({"g": np.repeat([f"g{i:05d}" for i in range(groups)], times),
                         "t": np.tile(np.arange(1, times + 1), groups), "x": x.ravel(), "y": y.ravel()})


def spatial_data(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    xy = np.round(rng.uniform(0, 10, (n, 2)), 4)
    d = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
    L = np.linalg.cholesky(0.49 * np.exp(-d / 2.5) + 1e-9 * np.eye(n))
    u = L @ rng.normal(size=n)
    z = rng.normal(size=n)
    return pd.DataFrame({"xc": xy[:, 0], "yc": xy[:, 1], "z": z,
                         "count": rng.poisson(np.exp(1 + 0.3 * z + u)), "grp": "all"})


CHILD = """
import json, resource, sys, time, tracemalloc
import pandas as pd
import glmmdiag
df = pd.read_csv(sys.argv[1])
tracemalloc.start()
t0, c0 = time.perf_counter(), time.process_time()
fit = glmmdiag.glmm(sys.argv[2], df, family=sys.argv[3])
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps(dict(wall=wall, cpu=cpu, traced_mb=tracemalloc.get_traced_memory()[1] / 1e6,
                      rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3,
                      loglik=fit.loglik, params=fit.covariance_parameters[0])))
"""

R_CHILD = """
suppressMessages(library(glmmTMB))
args <- commandArgs(TRUE)
dat <- read.csv(args[1])
if (args[4] == "ar1") { dat$t <- factor(dat$t, levels = sort(unique(dat$t))) } else { dat$pos <- numFactor(dat$xc, dat$yc); dat$grp <- factor(dat$grp) }
form <- as.formula(args[2])
st <- system.time(m <- glmmTMB(form, data = dat, family = args[3]))
cat(sprintf('{"wall": %.3f, "cpu": %.3f, "loglik": %.6f}\\n', st[["elapsed"]], st[["user.self"]] + st[["sys.self"]],
            as.numeric(logLik(m))))
"""


def run_glmmdiag(csv: str, formula: str, family: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, csv, formula, family], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_glmmtmb(csv: str, formula: str, family: str, kind: str, timeout: float) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as f:
        f.write(R_CHILD)
    try:
        out = subprocess.run(["Rscript", f.name, csv, formula, family, kind], capture_output=True, text=True,
                             timeout=timeout, env=dict(os.environ, OMP_NUM_THREADS="1"))
        return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"error": out.stderr[-300:]}
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    finally:
        os.unlink(f.name)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ar1", action="append", default=None, metavar="GxT", help="series x times (default 1000x50)")
    ap.add_argument("--spatial", action="append", type=int, default=None, metavar="N",
                    help="locations (default 1000)")
    ap.add_argument("--r", action="store_true", help="also time glmmTMB (Rscript) on the same data")
    ap.add_argument("--r-timeout", type=float, default=600.0)
    opts = ap.parse_args(argv)
    jobs = []
    for spec in opts.ar1 or ["1000x50"]:
        g, t = (int(v) for v in spec.lower().split("x"))
        jobs.append((f"ar1 {g} x {t}", ar1_data(g, t), "y ~ x + ar1(t + 0 | g)", "y ~ x + ar1(t + 0 | g)",
                     "gaussian", "ar1"))
    for n in opts.spatial or [1000]:
        jobs.append((f"spatial {n}", spatial_data(n), "count ~ z + exp(numFactor(xc, yc) + 0 | grp)",
                     "count ~ z + exp(pos + 0 | grp)", "poisson", "spatial"))
    print(f"{'case':<18} {'rows':>7} {'wall s':>8} {'cpu s':>8} {'traced MB':>10} {'peak RSS MB':>12} "
          f"{'glmmTMB wall/cpu s':>18}  logLik (glmmdiag / glmmTMB)")
    with tempfile.TemporaryDirectory() as tmp:
        for label, df, formula, r_formula, family, kind in jobs:
            csv = str(Path(tmp) / "data.csv")
            df.to_csv(csv, index=False)
            ours = run_glmmdiag(csv, formula, family)
            r = run_glmmtmb(csv, r_formula, family, kind, opts.r_timeout) if opts.r else None
            r_time = ("-" if r is None else f">{r['timeout']:.0f}" if "timeout" in r
                      else "error" if "error" in r else f"{r['wall']:.2f}/{r['cpu']:.2f}")
            r_ll = "" if not r or "loglik" not in r else f" / {r['loglik']:.3f}"
            print(f"{label:<18} {len(df):>7} {ours['wall']:>8.2f} {ours['cpu']:>8.2f} {ours['traced_mb']:>10.0f} "
                  f"{ours['rss_mb']:>12.0f} {r_time:>18}  {ours['loglik']:.3f}{r_ll}", flush=True)
    print(f"(machine load: {os.getloadavg()[0]:.1f}; wall clock is noisy on a shared machine, cpu is the "
          f"fit's own CPU time, single-threaded BLAS)")


if __name__ == "__main__":
    main()
