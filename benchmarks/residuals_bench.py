"""Timings of simulate_residuals and the whole residual step against DHARMa, and a 1e6 x 1000 memory/time run.

0. The whole step (default first section; ``--step-only`` runs just this): on every model of
   tests/reference/dharma and the extended models of tests/reference/ext, n_sim = 1000, the fit
   excluded, glmmdiag's simulate_residuals + residual_tests + zero_inflation_test + quantile_test
   with n_jobs = 1 and -1 (interleaved), and in the same run DHARMa's simulateResiduals +
   testUniformity + testDispersion + testZeroInflation + testOutliers (+ testQuantiles when the R
   package qgam is installed) through benchmarks/residuals_step.R on the lme4/glmmTMB fit of the
   reference's own R call. Wall and CPU time per side (CPU: user + system of the R process; of this
   process plus joblib's workers), their ratios, and the n_jobs=-1 / n_jobs=1 wall ratio. DHARMa
   is looked up in the library paths of the environment variable DHARMA_LIB, then R's default.
1. The reference models of tests/reference/dharma (fitted with glmmdiag): simulate_residuals with
   n_sim = 250 and 1000 in the reference's simulation mode, n_jobs = 1 and 2, median of 3 runs,
   against DHARMa's stored simulateResiduals timings (same machine type, DHARMa 0.5.0, median of
   3), marked "stored" (section 0 is the same-run comparison).
2. The refit-based dispersion test: 250 refits of the Salamanders Poisson GLMM against DHARMa's
   stored 52 s for 50 refits (refit = TRUE).
3. A Poisson GLMM with 1e6 observations (1000 groups), 1000 conditional simulations with n_jobs=2:
   wall time, peak resident memory of the whole process tree (sampled from /proc), and the time the
   random number generator alone needs for the same 1e9 Poisson draws (one core, then / 2).
4. The extended models of tests/reference/ext (zero-inflation, hurdles, dispersion models, beta-binomial):
   simulate_residuals(fit, 1000, seed=1) against a DHARMa proxy (see EXT_CASES); --ext-only runs just these.

Usage: python benchmarks/residuals_bench.py [--step-only | --no-step] [--cases C ...] [--detail]
                                            [--skip-big] [--big-only] [--ext-only] [--reps 3]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

import glmmdiag as gd
from glmmdiag import datasets

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference" / "dharma"

CASES = [  # reference json, data set, formula, family, link, DHARMa mode key
    ("cbpp_glmer_nAGQ1", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", None, "conditional"),
    ("contra_glmer_nAGQ1", "Contraception", "use ~ age + I(age**2) + urban + livch + (1 | district)", "binomial", None, "conditional"),
    ("contra_glmmTMB", "Contraception", "use ~ age + I(age**2) + urban + livch + (1 | district)", "binomial", None, "user-specified"),
    ("orobanche_glm_glmmTMB", "orobanche", "cbind(germ, n - germ) ~ extract * gen", "binomial", None, "user-specified"),
    ("salamanders_poisson", "Salamanders", "count ~ spp + mined + (1 | site)", "poisson", None, "user-specified"),
    ("salamanders_nbinom2", "Salamanders", "count ~ spp + mined + (1 | site)", "nbinom2", None, "user-specified"),
    ("rust_beta", "rust", "severity ~ fungicide + (1 | block)", "beta", None, "user-specified"),
    ("rust_gamma", "rust", "severity_pct ~ fungicide + (1 | block)", "gamma", "log", "user-specified"),
    ("verbagg_glmer", "VerbAgg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "binomial", None, "conditional"),
]


def _median_time(fn, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _stored_dharma(case, mode, n_sim):
    extra = json.loads((REF / "extra_timings.json").read_text())
    if n_sim == 1000:
        p = REF / f"{case}.json"
        if p.exists():
            res = json.loads(p.read_text())["results"].get(mode)
            if res:
                return float(res["timing_simulateResiduals"]["median_s"])
    key = {"salamanders_nbinom2": "salamanders_nbinom2_n250", "verbagg_glmer": "verbagg_glmer_n250"}.get(case)
    if n_sim == 250 and key in extra:
        return float(extra[key]["median_s"])
    return None


SIM_FACTORS = {"tweedie_sim": ["g"], "ordbeta_sim": ["block", "trt"]}  # simulated ext data (tests/data)


def _load(ds):
    if ds in SIM_FACTORS:  # not shipped data sets: the CSV, factors with R's level order (as fit_bench)
        df = pd.read_csv(ROOT / "tests" / "data" / f"{ds}.csv")
        for f in SIM_FACTORS[ds]:
            lab = df[f].astype(str)
            df[f] = pd.Categorical(lab, categories=sorted(lab.unique(), key=lambda v: (len(v), v)))
        return df
    df = datasets.load(ds)
    if ds == "rust" and "severity_pct" not in df:
        df["severity_pct"] = df["severity"] * 100
    return df


def bench_reference(reps: int):
    rows = []
    for case, ds, formula, family, link, mode in CASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit = gd.glmm(formula, _load(ds), family=family, link=link)
            except Exception as exc:
                print(f"  {case}: cannot fit ({type(exc).__name__}: {exc}); skipped", file=sys.stderr)
                continue
        sim_re = "conditional" if mode == "conditional" else "unconditional"
        gd.simulate_residuals(fit, 20, seed=1, simulate_re=sim_re, n_jobs=2)  # start the workers
        for n_sim in (250, 1000):
            t1 = _median_time(lambda: gd.simulate_residuals(fit, n_sim, seed=1, simulate_re=sim_re), reps)
            t2 = _median_time(lambda: gd.simulate_residuals(fit, n_sim, seed=1, simulate_re=sim_re, n_jobs=2), reps)
            d = _stored_dharma(case, mode, n_sim)
            rows.append({"case": case, "nobs": fit.nobs, "mode": sim_re, "n_sim": n_sim, "glmmdiag_1job_s": t1,
                         "glmmdiag_2jobs_s": t2, "dharma_s": d, "dharma_source": "stored" if d else "-",
                         "speedup": (d / min(t1, t2)) if d else None})
    return pd.DataFrame(rows)


SALAMANDERS = "count ~ spp + mined + (1 | site)"
# the extended models of tests/reference/ext (zero-inflation, hurdles, dispersion models, new families):
# case, data set, formula, glmm keywords, DHARMa proxy (a stored DHARMa 0.5.0 timing, n = 1000,
# of the plain glmmTMB model on the same data: the references record DHARMa's results on these
# models but not its time; glmmTMB's simulate() for a zero or dispersion model is no cheaper)
EXT_CASES = [
    ("salamanders_zip", "Salamanders", SALAMANDERS, {"family": "poisson", "ziformula": "~ spp + mined"}, "salamanders_poisson"),
    ("salamanders_zinb2", "Salamanders", SALAMANDERS, {"family": "nbinom2", "ziformula": "~ spp + mined"}, "salamanders_nbinom2"),
    ("salamanders_zinb1_zi1", "Salamanders", SALAMANDERS, {"family": "nbinom1", "ziformula": "~1"}, "salamanders_nbinom2"),
    ("salamanders_hurdle_pois", "Salamanders", SALAMANDERS, {"family": "truncated_poisson", "ziformula": "~ spp + mined"},
     "salamanders_poisson"),
    ("salamanders_hurdle_nb2", "Salamanders", SALAMANDERS, {"family": "truncated_nbinom2", "ziformula": "~ spp + mined"},
     "salamanders_nbinom2"),
    ("salamanders_nb2_disp", "Salamanders", SALAMANDERS, {"family": "nbinom2", "dispformula": "~ mined"}, "salamanders_nbinom2"),
    ("sleepstudy_disp", "sleepstudy", "Reaction ~ Days + (1 | Subject)", {"family": "gaussian", "dispformula": "~ Days"}, None),
    ("cbpp_betabinomial", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", {"family": "betabinomial"},
     "cbpp_glmmTMB"),
    ("tweedie_sim", "tweedie_sim", "y ~ x + (1 | g)", {"family": "tweedie"}, None),
    ("ordbeta_sim", "ordbeta_sim", "severity ~ trt + (1 | block)", {"family": "ordbeta"}, None),
]


def bench_ext(reps: int):
    """simulate_residuals(fit, 1000, seed=1) (unconditional, as DHARMa on glmmTMB) on the extended models."""
    rows = []
    for case, ds, formula, kw, proxy in EXT_CASES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = gd.glmm(formula, _load(ds), **kw)
            gd.simulate_residuals(fit, 20, seed=1, simulate_re="unconditional")
            t1 = _median_time(lambda: gd.simulate_residuals(fit, 1000, seed=1, simulate_re="unconditional"), reps)
        d = _stored_dharma(proxy, "user-specified", 1000) if proxy else None
        rows.append({"case": case, "nobs": fit.nobs, "n_sim": 1000, "glmmdiag_1job_s": t1, "dharma_proxy_s": d,
                     "dharma_proxy_model": proxy or "-", "speedup_vs_proxy": (d / t1) if d else None})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ the whole step, side by side with DHARMa
# case, data set (tests/data), glmmdiag formula, glmm keywords, simulation mode, R call, R data preparation.
# The R calls are the references' (tests/reference/dharma and tests/reference/ext); the glmer cases
# simulate conditionally (DHARMa 0.5's default for lme4, re.form = NULL), the glmmTMB ones
# unconditionally (glmmTMB 1.1.5's simulate(); DHARMa cannot condition on its random effects).
def _r_call(case: str):
    for sub in ("dharma", "ext"):
        p = ROOT / "tests" / "reference" / sub / f"{case}.json"
        if p.exists():
            d = json.loads(p.read_text())
            return d.get("model_call") or d["call"], d.get("data_prep") or ""
    raise KeyError(case)


STEP_CASES = [  # case, data set, formula, glmm keywords, mode
    ("cbpp_glmer_nAGQ1", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", {"family": "binomial"},
     "conditional"),
    ("cbpp_glmmTMB", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", {"family": "binomial"},
     "unconditional"),
    ("contra_glmer_nAGQ1", "Contraception", "use ~ age + I(age**2) + urban + livch + (1 | district)",
     {"family": "binomial"}, "conditional"),
    ("contra_glmmTMB", "Contraception", "use ~ age + I(age**2) + urban + livch + (1 | district)",
     {"family": "binomial"}, "unconditional"),
    ("orobanche_glm_glmmTMB", "orobanche", "cbind(germ, n - germ) ~ extract * gen", {"family": "binomial"},
     "unconditional"),
    ("rust_beta", "rust", "severity ~ fungicide + (1 | block)", {"family": "beta"}, "unconditional"),
    ("rust_gamma", "rust", "severity_pct ~ fungicide + (1 | block)", {"family": "gamma", "link": "log"},
     "unconditional"),
    ("salamanders_nbinom2", "Salamanders", SALAMANDERS, {"family": "nbinom2"}, "unconditional"),
    ("salamanders_poisson", "Salamanders", SALAMANDERS, {"family": "poisson"}, "unconditional"),
] + [(case, ds, formula, kw, "unconditional") for case, ds, formula, kw, _ in EXT_CASES]

#: the R data preparation rust_gamma needs (the references compute severity_pct in R)
_R_PREP = {"rust_gamma": "dat$severity_pct <- dat$severity * 100"}


def _tree_children_cpu() -> float:
    """CPU seconds (user + system) of the living descendants of this process (joblib's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    stack, seen = [os.getpid()], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            if p != os.getpid():
                with open(f"/proc/{p}/stat") as fh:
                    f = fh.read().rsplit(")", 1)[1].split()
                total += int(f[11]) + int(f[12])  # utime, stime (fields 14, 15)
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as fh:
                    stack += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError, IndexError):
            continue
    return total / tick


def _py_step(fit, mode: str, n_jobs, calibrate=False) -> dict:
    """One whole step; wall and CPU seconds per part (CPU: this process + joblib's workers).

    ``calibrate=False``: the work DHARMa does (the tests' raw p-values), for the side-by-side ratio;
    ``"auto"`` (glmmdiag's default) adds the refit-calibrated p-values where the refit budget allows,
    which DHARMa does not offer."""
    out = {}

    def part(name, fn):
        w, c, k = time.perf_counter(), time.process_time(), _tree_children_cpu()
        val = fn()
        out[name] = (time.perf_counter() - w, time.process_time() - c + _tree_children_cpu() - k)
        return val

    res = part("simulate_residuals", lambda: gd.simulate_residuals(fit, 1000, seed=1, simulate_re=mode, n_jobs=n_jobs))
    tests = part("residual_tests", lambda: gd.residual_tests(res, calibrate=calibrate))
    zi = part("zero_inflation_test", lambda: gd.zero_inflation_test(res))
    q = part("quantile_test", lambda: gd.quantile_test(res))
    out["calibrated"] = tests.p_values.startswith("calibrated")
    out["p"] = {"uniformity": tests.uniformity.p_value, "dispersion": tests.dispersion.p_value,
                "outliers": tests.outliers.p_value, "zero_inflation": zi.p_value, "quantiles": q.p_value}
    return out


def _summarise_runs(runs):
    names = [k for k in runs[0] if k not in ("p", "calibrated")]
    wall = statistics.median(sum(r[k][0] for k in names) for r in runs)
    cpu = statistics.median(sum(r[k][1] for k in names) for r in runs)
    parts = {k: (statistics.median(r[k][0] for r in runs), statistics.median(r[k][1] for r in runs)) for k in names}
    return wall, cpu, parts, runs[0]["p"]


def _draws_alone_cpu(fit, reps: int, n_sim: int = 1000) -> float:
    """Median CPU seconds of the n_sim x nobs draws alone (the fitted model's sampler with its
    conditional means: no random effects drawn, no residuals, no statistics): a floor under
    simulate_residuals, so DHARMa's step time over it bounds the ratio any simulator on numpy's
    generators can reach."""
    from glmmdiag.adapters import as_simulable

    model = as_simulable(fit)
    rng = np.random.default_rng(1)
    model.simulate(n_sim, rng, conditional=True)
    ts = []
    for _ in range(reps):
        c = time.process_time()
        model.simulate(n_sim, rng, conditional=True)
        ts.append(time.process_time() - c)
    return statistics.median(ts)


def _py_step_times(fit, mode, reps, jobs=(1, -1)):
    """Median times of the step for each n_jobs in ``jobs``, the runs interleaved (1, -1, 1, -1, ...)
    after one warm-up each, so that a change of the machine's load hits both alike."""
    for nj in jobs:
        _py_step(fit, mode, nj)  # warm-up (imports; joblib's workers if they are started)
    runs = {nj: [] for nj in jobs}
    for _ in range(reps):
        for nj in jobs:
            runs[nj].append(_py_step(fit, mode, nj))
    return {nj: _summarise_runs(r) for nj, r in runs.items()}


def _run_r_step(cases, reps: int, n_sim: int = 1000):
    """DHARMa's step in one Rscript run (residuals_step.R); None when R or DHARMa is missing."""
    if not shutil.which("Rscript"):
        return None, "Rscript not found"
    jobs = []
    for case, ds, _, _, mode in cases:
        call, prep = _r_call(case)
        prep = "\n".join(x for x in (prep, _R_PREP.get(case, "")) if x)
        jobs.append({"case": case, "dataset": ds, "factors": SIM_FACTORS.get(ds, []), "prep": prep, "call": call,
                     "conditional": mode == "conditional"})
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.json"
        out = Path(tmp) / "out.json"
        spec.write_text(json.dumps({"data_dir": str(ROOT / "tests" / "data"),
                                    "schema": str(ROOT / "tests" / "data" / "schema.json"),
                                    "n_sim": n_sim, "reps": reps, "jobs": jobs}))
        r = subprocess.run(["Rscript", str(ROOT / "benchmarks" / "residuals_step.R"), str(spec), str(out)],
                           capture_output=True, text=True)
        if r.returncode != 0 or not out.exists():
            return None, f"residuals_step.R failed ({r.returncode}): {r.stderr.strip()[-500:]}"
        return json.loads(out.read_text()), None


def bench_step(reps: int, cases=None, detail: bool = False):
    """The whole residual step (n_sim = 1000), glmmdiag with n_jobs 1 and -1, DHARMa in the same run."""
    cases = [c for c in STEP_CASES if cases is None or c[0] in cases]
    rows, details = [], []
    for case, ds, formula, kw, mode in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = gd.glmm(formula, _load(ds), **kw)
            t = _py_step_times(fit, mode, reps)
            (w1, c1, p1, pv), (wj, cj, pj, _) = t[1], t[-1]
            default = _py_step(fit, mode, 1, calibrate="auto")  # once: glmmdiag's default settings
        rows.append({"case": case, "nobs": fit.nobs, "mode": mode[:4] + ".", "gd_1_wall_ms": 1e3 * w1,
                     "gd_1_cpu_ms": 1e3 * c1, "gd_all_wall_ms": 1e3 * wj, "gd_all_cpu_ms": 1e3 * cj,
                     "gd_default_cpu_ms": 1e3 * sum(v[1] for k, v in default.items() if k not in ("p", "calibrated")),
                     "calibrated": default["calibrated"], "draws_cpu_ms": 1e3 * _draws_alone_cpu(fit, reps),
                     "_sim": p1["simulate_residuals"]})
        details.append({"case": case, "side": "glmmdiag n_jobs=1", **{k: f"{1e3 * v[0]:.1f} ({1e3 * v[1]:.1f})"
                                                                     for k, v in p1.items()}})
        details.append({"case": case, "side": "glmmdiag n_jobs=-1", **{k: f"{1e3 * v[0]:.1f} ({1e3 * v[1]:.1f})"
                                                                      for k, v in pj.items()}})
        details.append({"case": case, "side": "glmmdiag p", **{k: f"{v:.3g}" for k, v in pv.items()}})
    r_out, why = _run_r_step(cases, reps)
    info = r_out["info"] if r_out else {"error": why}
    by_case = {r["case"]: r for r in (r_out["results"] if r_out else [])}
    for row in rows:
        r = by_case.get(row["case"])
        if r is None or r.get("error"):
            row.update({"R_wall_ms": None, "R_cpu_ms": None})
            if r is not None:
                print(f"  {row['case']}: DHARMa failed: {r['error']}", file=sys.stderr)
            continue
        row["R_wall_ms"] = 1e3 * r["median_wall_s"]
        row["R_cpu_ms"] = 1e3 * r["median_cpu_s"]
        # simulate_residuals alone (n_jobs=1) against simulateResiduals alone (issue 13's measure)
        sw, sc = row["_sim"]
        row["xsim_wall"] = r["parts_median_wall_s"]["simulateResiduals"] / sw
        row["xsim_cpu"] = r["parts_median_cpu_s"]["simulateResiduals"] / sc
        details.append({"case": row["case"], "side": "DHARMa",
                        **{k: f"{1e3 * v:.1f} ({1e3 * r['parts_median_cpu_s'][k]:.1f})"
                           for k, v in r["parts_median_wall_s"].items()}})
        details.append({"case": row["case"], "side": "DHARMa p", **{k: f"{v:.3g}" if v is not None else "NA"
                                                                   for k, v in r["p_values"].items()}})
    df = pd.DataFrame(rows).drop(columns="_sim")
    if "R_wall_ms" in df:
        df["x_wall_1"] = df["R_wall_ms"] / df["gd_1_wall_ms"]
        df["x_cpu_1"] = df["R_cpu_ms"] / df["gd_1_cpu_ms"]
        df["x_wall_all"] = df["R_wall_ms"] / df["gd_all_wall_ms"]
        df["x_cpu_all"] = df["R_cpu_ms"] / df["gd_all_cpu_ms"]
        df["all/1"] = df["gd_all_wall_ms"] / df["gd_1_wall_ms"]
        df["x_draws_floor"] = df["R_cpu_ms"] / df["draws_cpu_ms"]
    return df, pd.DataFrame(details), info


def bench_refit(reps: int = 1):
    fit = gd.glmm("count ~ spp + mined + (1 | site)", _load("Salamanders"), family="poisson")
    out = {}
    for n_jobs in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = _median_time(lambda: gd.simulate_residuals(fit, 250, seed=1, simulate_re="unconditional", refit=True,
                                                           n_jobs=n_jobs), reps)
        out[n_jobs] = t
    res = gd.simulate_residuals(fit, 250, seed=1, simulate_re="unconditional", refit=True, n_jobs=2)
    disp = gd.dispersion_test(res)
    extra = json.loads((REF / "extra_timings.json").read_text())["salamanders_poisson_refit_n50"]
    d50 = float(extra["median_s"])
    return {"refits": 250, "glmmdiag_1job_s": out[1], "glmmdiag_2jobs_s": out[2],
            "dharma_50_refits_s (stored)": d50, "dharma_250_refits_s (x5, extrapolated)": 5 * d50,
            "speedup_vs_extrapolated": 5 * d50 / min(out.values()),
            "dispersion": disp.statistic, "p_value": disp.p_value,
            "dharma_dispersion_50_refits": extra["testDispersion_refit"]["statistic"]}


# ------------------------------------------------------------------ the big run
def _tree_rss_kb(pid: int) -> int:
    total = 0
    stack = [pid]
    seen = set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as fh:
                    stack += [int(c) for c in fh.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


class PeakRSS:
    def __init__(self, interval=0.1):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def __enter__(self):
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss_kb(os.getpid()))
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def bench_big(n=1_000_000, n_sim=1000, n_groups=1000):
    rng = np.random.default_rng(1)
    g = rng.integers(0, n_groups, n)
    x = rng.standard_normal(n)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + rng.normal(0, 0.5, n_groups)[g]))
    df = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    t = time.perf_counter()
    fit = gd.glmm("y ~ x + (1 | g)", df, family="poisson")
    t_fit = time.perf_counter() - t
    del df
    base = _tree_rss_kb(os.getpid())
    mu = fit.predict(type="response")
    # the random number generator alone: the same 1e9 Poisson draws with per-row means, one core
    r = np.random.default_rng(2)
    k = 100
    t = time.perf_counter()
    for _ in range(k):
        r.poisson(mu)
    t_rng_1core = (time.perf_counter() - t) * n_sim / k
    with PeakRSS() as peak:
        t = time.perf_counter()
        res = gd.simulate_residuals(fit, n_sim, seed=1, n_jobs=2)
        t_sim = time.perf_counter() - t
    return {"nobs": n, "n_sim": n_sim, "fit_s": t_fit, "simulate_residuals_2jobs_s": t_sim,
            "rng_only_1core_s": t_rng_1core, "rng_only_2cores_s": t_rng_1core / 2,
            "ratio_to_rng_2cores": t_sim / (t_rng_1core / 2), "chunk_size": res.chunk_size,
            "rss_before_MB": base / 1024, "peak_rss_process_tree_MB": peak.peak / 1024,
            "ks_D": gd.uniformity_test(res).statistic}


def print_step(reps: int, cases=None, detail: bool = False) -> None:
    df, det, info = bench_step(reps, cases, detail)
    print(f"The whole residual step, n_sim = 1000 (median of {reps} runs after a warm-up; ms, wall and CPU):")
    print("  glmmdiag: simulate_residuals + residual_tests(calibrate=False) + zero_inflation_test + quantile_test, "
          "n_jobs = 1 and -1 (gd_1, gd_all); CPU = this process + joblib's workers. The same work as DHARMa's step "
          "(raw p-values). gd_default_cpu_ms: one run with glmmdiag's default residual_tests(calibrate='auto'), "
          "which adds refit-calibrated p-values when the refit budget (10 s CPU) allows ('calibrated')")
    print("  DHARMa:   simulateResiduals + testUniformity + testDispersion + testZeroInflation + testOutliers"
          + (" + testQuantiles" if info.get("testQuantiles_run") else
             " (testQuantiles NOT run: the R package qgam is not installed, so DHARMa's times are lower bounds)"))
    print(f"  R side: {json.dumps(info)}")
    print("  x_*: DHARMa / glmmdiag (whole step); xsim_*: simulateResiduals / simulate_residuals alone (n_jobs=1); "
          "all/1: glmmdiag wall, n_jobs=-1 over n_jobs=1; draws_cpu_ms: the 1000 x nobs draws alone (numpy's "
          "generators, fitted means, nothing else); x_draws_floor: DHARMa's step CPU over it, the largest ratio a "
          "one-core simulator could reach")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if "x_wall_1" in df:
        df = df[[c for c in df.columns if c not in ("xsim_wall", "xsim_cpu")] + ["xsim_wall", "xsim_cpu"]]
        ok = df[["x_wall_1", "x_cpu_1", "x_wall_all", "x_cpu_all"]].min(axis=1)
        print(f"  smallest ratio over all columns: {ok.min():.1f}x ({df['case'][ok.idxmin()]}); target >= 20x; "
              f"largest wall ratio n_jobs=-1 / n_jobs=1: {df['all/1'].max():.2f} ({df['case'][df['all/1'].idxmax()]})")
    if detail:
        print("\nper part, median ms wall (CPU), and the p-values of the first run:")
        print(det.fillna("").to_string(index=False))
    print()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--big-only", action="store_true")
    ap.add_argument("--big-n", type=int, default=1_000_000)
    ap.add_argument("--ext-only", action="store_true", help="only the zero-inflation/hurdle/dispersion/new-family models")
    ap.add_argument("--step-only", action="store_true",
                    help="only the whole step (simulate + tests + quantile test) side by side with DHARMa")
    ap.add_argument("--no-step", action="store_true", help="leave out the whole-step comparison")
    ap.add_argument("--cases", nargs="*", help="whole step: only these cases")
    ap.add_argument("--detail", action="store_true", help="whole step: per-part times and p-values")
    a = ap.parse_args(argv)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    if a.step_only or not (a.no_step or a.big_only or a.ext_only):
        print_step(a.reps, a.cases, a.detail)
        if a.step_only:
            return
    if a.ext_only or not a.big_only:
        print("simulate_residuals(fit, 1000, seed=1, unconditional) on the extended models (seconds, median of %d);"
              % a.reps)
        print("  DHARMa proxy: DHARMa 0.5.0's stored time (n = 1000) for the plain glmmTMB model on the same data "
              "(tests/reference/dharma); target: >= 20x")
        print(bench_ext(a.reps).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print()
        if a.ext_only:
            return
    if not a.big_only:
        print("simulate_residuals on the DHARMa reference models (seconds, median of %d)" % a.reps)
        print("  DHARMa columns: its stored timings from tests/reference/dharma (DHARMa 0.5.0, R 4.2.2, same machine "
              "type); the whole-step section above runs DHARMa in the same run when it is installed")
        print(bench_reference(a.reps).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print("\nrefit-based dispersion test, Salamanders Poisson GLMM (644 rows):")
        for k, v in bench_refit().items():
            print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")
    if not a.skip_big:
        # in a fresh process so that the memory of the runs above does not count
        if a.big_only:
            out = bench_big(a.big_n)
            print(json.dumps(out))
        else:
            r = subprocess.run([sys.executable, __file__, "--big-only", "--big-n", str(a.big_n)], capture_output=True,
                               text=True)
            print(f"\nPoisson GLMM, {a.big_n} observations x 1000 simulations (n_jobs=2):")
            try:
                out = json.loads(r.stdout.strip().splitlines()[-1])
                for k, v in out.items():
                    print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")
            except Exception:
                print(r.stdout, r.stderr)


if __name__ == "__main__":
    main()
