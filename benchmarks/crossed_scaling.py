#!/usr/bin/env python
"""Scaling of a crossed Poisson GLMM: glmmdiag (this tree, and optionally a baseline tree) and
the `glmm` package, side by side in one run.

Model: ``y ~ x + (1 | f1) + (1 | f2)``, Poisson, log link; f1 and f2 crossed with 5 000 and 500
levels (rows assigned uniformly at random), x ~ N(0, 1), eta = 0.5 + 0.3 x + u1 + u2 with
u1 ~ N(0, 0.5^2), u2 ~ N(0, 0.3^2). The data are simulated in each child process from the seed
(the same rows for every fitter).

Each fit runs in its own Python subprocess (so peak memory is that fit's alone) and reports wall
time, CPU time (``time.process_time``; the machine is shared, CPU time is the steadier number),
the resident-set peak (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and its value just before
the fit (the data), and the log-likelihood.

Usage::

    python benchmarks/crossed_scaling.py                         # 1e4, 1e5, 1e6 rows
    python benchmarks/crossed_scaling.py --rows 10000 100000
    python benchmarks/crossed_scaling.py --baseline-src ../main-checkout/src   # also the main branch
    python benchmarks/crossed_scaling.py --no-glmm --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np, pandas as pd
n, seed, which = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(seed)
L1, L2 = 5000, 500
f1 = rng.integers(0, L1, n)
f2 = rng.integers(0, L2, n)
x = rng.standard_normal(n)
u1, u2 = rng.normal(0, 0.5, L1), rng.normal(0, 0.3, L2)
y = rng.poisson(np.exp(0.5 + 0.3 * x + u1[f1] + u2[f2])).astype(float)
df = pd.DataFrame({"y": y, "x": x, "f1": pd.Categorical(f1), "f2": pd.Categorical(f2)})
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
warnings.simplefilter("ignore")
if which == "glmm":
    import glmm
    df["f1"], df["f2"] = df["f1"].astype(str), df["f2"].astype(str)
    w0, c0 = time.perf_counter(), time.process_time()
    fit = glmm.fit(df, "y ~ x + (1 | f1) + (1 | f2)", "poisson")
    ll = float(fit.loglik)
else:
    from glmmdiag.fit import glmm as fit_glmm
    w0, c0 = time.perf_counter(), time.process_time()
    fit = fit_glmm("y ~ x + (1 | f1) + (1 | f2)", df, family="poisson")
    ll = float(fit.loglik)
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps(dict(wall_s=wall, cpu_s=cpu, peak_rss_mb=rss, data_rss_mb=rss0, loglik=ll)))
"""


def run_child(n: int, seed: int, which: str, src: str | None, timeout: float) -> dict:
    """One fit in a fresh interpreter: glmmdiag from ``src`` (PYTHONPATH), or the glmm package."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if src is not None:
        env["PYTHONPATH"] = src
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(n), str(seed), which], env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(error=f"timeout after {timeout:.0f} s")
    if proc.returncode != 0:
        return dict(error=(proc.stderr.strip().splitlines() or ["failed"])[-1][:120])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(v, spec=".2f"):
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--baseline-src", default=None, help="also fit with glmmdiag from this src dir")
    ap.add_argument("--no-glmm", action="store_true", help="skip the glmm package")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--json", default=None)
    opts = ap.parse_args(argv)
    fitters = [("glmmdiag", "glmmdiag", str(ROOT / "src"))]
    if opts.baseline_src:
        fitters.append(("baseline", "glmmdiag", opts.baseline_src))
    if not opts.no_glmm:
        fitters.append(("glmm", "glmm", None))
    rows = []
    for n in opts.rows:
        for label, which, src in fitters:
            res = run_child(n, opts.seed, which, src, opts.timeout)
            res.update(rows=n, fitter=label)
            rows.append(res)
            print(f"{n:>9} {label:<9} " + (res["error"] if "error" in res else
                  f"wall {res['wall_s']:8.2f} s  cpu {res['cpu_s']:8.2f} s  peak RSS {res['peak_rss_mb']:7.0f} MB"
                  f" (data {res['data_rss_mb']:.0f} MB)  logLik {res['loglik']:.3f}"), flush=True)
    print()
    head = f"{'rows':>9} | {'fitter':<9} | {'wall s':>8} | {'cpu s':>8} | {'peak MB':>8} | {'logLik':>14} | cpu vs glmmdiag"
    print(head)
    print("-" * len(head))
    for r in rows:
        ref = next((x for x in rows if x["rows"] == r["rows"] and x["fitter"] == "glmmdiag"), None)
        ratio = (r["cpu_s"] / ref["cpu_s"]) if ("cpu_s" in r and ref and "cpu_s" in ref) else None
        print(f"{r['rows']:>9} | {r['fitter']:<9} | {fmt(r.get('wall_s')):>8} | {fmt(r.get('cpu_s')):>8} | "
              f"{fmt(r.get('peak_rss_mb'), '.0f'):>8} | {fmt(r.get('loglik'), '.3f'):>14} | "
              f"{fmt(ratio, '.2f') + 'x' if ratio else r.get('error', '-')}")
    if opts.json:
        Path(opts.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
