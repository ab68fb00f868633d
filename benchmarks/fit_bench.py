#!/usr/bin/env python
"""Fit-time benchmark: glmmdiag against the `glmm` package, lme4 and glmmTMB.

For every reference case (tests/reference/<case>.json) this times

* the glmmdiag fit (median of several runs in this process, after an untimed warm-up),
* the equivalent fit with the `glmm` package when it is importable (benchmark-only; never a
  runtime dependency of glmmdiag),
* the lme4 and glmmTMB fits in R, when `Rscript` is on PATH (benchmarks/fit_bench.R: one R
  process per case, started right after that case's Python fits, so that both sides of a ratio
  are timed in the same stretch of time on a machine whose speed drifts -- on the 2-core
  development machine a fixed numpy workload takes 62-119 ms from one second to the next;
  ``--r-once`` runs all R fits in one process after the Python ones),

and prints a table of median milliseconds, the speed ratios against the targets (at or ahead of
`glmm`; at least 3x faster than the faster of lme4/glmmTMB) and the log-likelihoods next to the
reference values.

Where R is not run (``--no-r``, no Rscript, or a fit too slow for ``--r-max-fit``), the R columns
show the timings recorded in the reference JSONs (same kind of 2-core machine), marked ``*``.

The case table ``CASES`` is plain data: add a row to add a case.

Usage::

    python benchmarks/fit_bench.py                       # everything
    python benchmarks/fit_bench.py --quick               # fewer runs, no slow R fits
    python benchmarks/fit_bench.py --cases contra cbpp   # cases whose name contains a word
    python benchmarks/fit_bench.py --no-r --json out.json
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


DATA_DIR = Path(os.environ.get("GLMMDIAG_BENCH_DATA", ROOT / "tests" / "data"))
# the repository's own copies of the R reference fits (GLMMDIAG_BENCH_REF points elsewhere)
REF_DIR = Path(os.environ.get("GLMMDIAG_BENCH_REF", ROOT / "tests" / "reference"))
EXT_REF_DIR = ROOT / "tests" / "reference" / "ext"
R_SCRIPT = HERE / "fit_bench.R"


# --------------------------------------------------------------------------------------------
# Data preparation (applied after loading the CSV with R's factor levels from schema.json)
# --------------------------------------------------------------------------------------------

def prep_contra_ch(df: pd.DataFrame) -> pd.DataFrame:
    """ch = factor(livch != "0", levels N/Y) -- as in the reference JSONs' data_prep."""
    df = df.copy()
    ch = np.where(df["livch"].astype(str) != "0", "Y", "N")
    df["ch"] = pd.Categorical(ch, categories=["N", "Y"])
    return df


# The `glmm` package's formula language is narrower than lme4's: cbind() takes two column
# names, I() only a power of one column (I(x^2)), no scale(), and the response must be numeric.
# These preps add the columns its formulas below use; they run outside the timed region.

def _glmm_binary(col: str, out: str):
    def prep(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df[out] = (df[col].astype(str) == df[col].cat.categories[1]).astype(float)
        return df
    return prep


def _glmm_failures(success: str, total: str, out: str):
    def prep(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df[out] = df[total] - df[success]
        return df
    return prep


def _glmm_scaled(col: str, out: str):
    def prep(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        x = df[col].astype(float)
        df[out] = (x - x.mean()) / x.std(ddof=1)  # R's scale(): sd with n - 1
        return df
    return prep


def _chain(*fns):
    def prep(df):
        for fn in fns:
            if fn is not None:
                df = fn(df)
        return df
    return prep


# --------------------------------------------------------------------------------------------
# The case table.
#
#   name       case name (= tests/reference/<ref>.json unless `ref` says otherwise)
#   csv        data set: tests/data/<csv>.csv, levels from schema.json[<csv>]
#   formula    glmmdiag formula (Python operators inside I(): I(age**2))
#   family     glmmdiag family;  kwargs: other glmmdiag.glmm keywords (reml, n_agq, link, ...)
#   data_prep  function(DataFrame) -> DataFrame applied before fitting (untimed), or None
#   ref        reference JSON holding the expected logLik (default: name)
#   r          {"lme4": ..., "glmmTMB": ...}: a reference-case name (its JSON's exact call and
#              data_prep are used) or a literal R call on `dat`; None = no such fit
#   r_prep     R code run on `dat` for literal calls (default: the ref JSON's data_prep)
#   glmm       equivalent fit with the `glmm` package: {"formula", "family", "kwargs", "prep"},
#              or None when it has no such model
#   new_family True for families glmmdiag may not support yet: an exception is a skip, not an
#              error
#   note       printed under the table
# --------------------------------------------------------------------------------------------

CONTRA_BASE = "age + I(age**2) + urban + livch + (1 | district)"
CONTRA_CH = "age * ch + I(age**2) + urban"

CASES: list[dict] = [
    dict(name="sleepstudy_lmer_REML", csv="sleepstudy",
         formula="Reaction ~ Days + (Days | Subject)", family="gaussian",
         kwargs={"reml": True}, data_prep=None,
         r={"lme4": "sleepstudy_lmer_REML",
            "glmmTMB": "glmmTMB(Reaction ~ Days + (Days | Subject), data = dat, REML = TRUE)"},
         glmm=dict(formula="Reaction ~ Days + (Days | Subject)", family="gaussian",
                   kwargs={"reml": True})),
    dict(name="sleepstudy_lmer_ML", csv="sleepstudy",
         formula="Reaction ~ Days + (Days | Subject)", family="gaussian",
         kwargs={"reml": False}, data_prep=None,
         r={"lme4": "sleepstudy_lmer_ML", "glmmTMB": "sleepstudy_glmmTMB_ML"},
         glmm=dict(formula="Reaction ~ Days + (Days | Subject)", family="gaussian",
                   kwargs={"reml": False})),
    dict(name="cbpp_glmer_nAGQ1", csv="cbpp",
         formula="cbind(incidence, size - incidence) ~ period + (1 | herd)", family="binomial",
         kwargs={"n_agq": 1}, data_prep=None,
         r={"lme4": "cbpp_glmer_nAGQ1", "glmmTMB": "cbpp_glmmTMB"},
         glmm=dict(formula="cbind(incidence, failures) ~ period + (1 | herd)",
                   family="binomial", kwargs={"nagq": 1},
                   prep=_glmm_failures("incidence", "size", "failures"))),
    dict(name="cbpp_glmer_nAGQ25", csv="cbpp",
         formula="cbind(incidence, size - incidence) ~ period + (1 | herd)", family="binomial",
         kwargs={"n_agq": 25}, data_prep=None,
         r={"lme4": "cbpp_glmer_nAGQ25", "glmmTMB": None},
         glmm=dict(formula="cbind(incidence, failures) ~ period + (1 | herd)",
                   family="binomial", kwargs={"nagq": 25},
                   prep=_glmm_failures("incidence", "size", "failures")),
         note="lme4's nAGQ > 1 logLik for a cbind() response leaves out the binomial "
              "coefficients (reference -50.005); the full logLik is about -91.98."),
    dict(name="contra_glmer_nAGQ1", csv="Contraception",
         formula="use ~ " + CONTRA_BASE, family="binomial",
         kwargs={"n_agq": 1}, data_prep=None,
         r={"lme4": "contra_glmer_nAGQ1", "glmmTMB": "contra_glmmTMB"},
         glmm=dict(formula="use01 ~ age + I(age^2) + urban + livch + (1 | district)",
                   family="binomial", kwargs={"nagq": 1}, prep=_glmm_binary("use", "use01"))),
    dict(name="contra_glmer_nAGQ9", csv="Contraception",
         formula="use ~ " + CONTRA_BASE, family="binomial",
         kwargs={"n_agq": 9}, data_prep=None,
         r={"lme4": "contra_glmer_nAGQ9", "glmmTMB": None},
         glmm=dict(formula="use01 ~ age + I(age^2) + urban + livch + (1 | district)",
                   family="binomial", kwargs={"nagq": 9}, prep=_glmm_binary("use", "use01"))),
    dict(name="contra_ch_glmer", csv="Contraception",
         formula=f"use ~ {CONTRA_CH} + (1 | district)", family="binomial",
         kwargs={}, data_prep=prep_contra_ch,
         r={"lme4": "contra_ch_glmer", "glmmTMB": "contra_ch_glmmTMB"},
         glmm=dict(formula="use01 ~ age * ch + I(age^2) + urban + (1 | district)",
                   family="binomial", kwargs={}, prep=_glmm_binary("use", "use01"))),
    dict(name="contra_ch_urbdist_glmer", csv="Contraception",
         formula=f"use ~ {CONTRA_CH} + (1 | urban:district)", family="binomial",
         kwargs={}, data_prep=prep_contra_ch,
         r={"lme4": "contra_ch_urbdist_glmer", "glmmTMB": "contra_ch_urbdist_glmmTMB"},
         glmm=dict(formula="use01 ~ age * ch + I(age^2) + urban + (1 | urban:district)",
                   family="binomial", kwargs={}, prep=_glmm_binary("use", "use01"))),
    dict(name="grouseticks_glmer", csv="grouseticks",
         formula="TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
         family="poisson", kwargs={}, data_prep=None,
         r={"lme4": "grouseticks_glmer", "glmmTMB": "grouseticks_glmmTMB"},
         glmm=dict(formula="TICKS ~ YEAR + sHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
                   family="poisson", kwargs={}, prep=_glmm_scaled("HEIGHT", "sHEIGHT"))),
    dict(name="orobanche_glm_glmmTMB", csv="orobanche",
         formula="cbind(germ, n - germ) ~ extract * gen", family="binomial",
         kwargs={}, data_prep=None,
         r={"lme4": None, "glmmTMB": "orobanche_glm_glmmTMB"},
         glmm=dict(formula="cbind(germ, failures) ~ extract * gen", family="binomial",
                   kwargs={}, prep=_glmm_failures("germ", "n", "failures")),
         note="orobanche_glm_glmmTMB has no random effect: no lme4 fit (R's glm() would be it)."),
    dict(name="orobanche_glmer_plate", csv="orobanche",
         formula="cbind(germ, n - germ) ~ extract * gen + (1 | plate)", family="binomial",
         kwargs={}, data_prep=None,
         r={"lme4": "orobanche_glmer_plate", "glmmTMB": "orobanche_glmmTMB_plate"},
         glmm=dict(formula="cbind(germ, failures) ~ extract * gen + (1 | plate)",
                   family="binomial", kwargs={}, prep=_glmm_failures("germ", "n", "failures"))),
    dict(name="verbagg_glmer", csv="VerbAgg",
         formula="r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", family="binomial",
         kwargs={}, data_prep=None,
         r={"lme4": "verbagg_glmer", "glmmTMB": "verbagg_glmmTMB"},
         glmm=dict(formula="r2_01 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
                   family="binomial", kwargs={}, prep=_glmm_binary("r2", "r2_01"))),
    dict(name="insteval_lmer", csv="InstEval",
         formula="y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", family="gaussian",
         kwargs={"reml": True}, data_prep=None,
         r={"lme4": "insteval_lmer", "glmmTMB": "insteval_glmmTMB"},
         glmm=dict(formula="y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)",
                   family="gaussian", kwargs={"reml": True}),
         note="insteval glmmTMB is the reference's ML fit (about 140 s a fit: only run with "
              "--r-max-fit >= 150)."),
    # ---- dispersion families (issue 3) ----
    dict(name="rust_beta", csv="rust",
         formula="severity ~ fungicide + (1 | block)", family="beta",
         kwargs={}, data_prep=None,
         r={"lme4": None, "glmmTMB": "rust_beta"},
         glmm=None),
    dict(name="rust_gamma", csv="rust",
         formula="severity_pct ~ fungicide + (1 | block)", family="gamma",
         kwargs={"link": "log"}, data_prep=None,
         r={"lme4": None, "glmmTMB": "rust_gamma"},
         glmm=dict(formula="severity_pct ~ fungicide + (1 | block)", family="gamma",
                   kwargs={"link": "log"})),
    dict(name="salamanders_poisson", csv="Salamanders",
         formula="count ~ spp + mined + (1 | site)", family="poisson",
         kwargs={}, data_prep=None,
         r={"lme4": "glmer(count ~ spp + mined + (1 | site), family = poisson, data = dat)",
            "glmmTMB": "salamanders_poisson"},
         glmm=dict(formula="count ~ spp + mined + (1 | site)", family="poisson", kwargs={})),
    dict(name="salamanders_nbinom2", csv="Salamanders",
         formula="count ~ spp + mined + (1 | site)", family="nbinom2",
         kwargs={}, data_prep=None,
         r={"lme4": None, "glmmTMB": "salamanders_nbinom2"},
         glmm=dict(formula="count ~ spp + mined + (1 | site)", family="negativebinomial",
                   kwargs={})),
    dict(name="salamanders_nbinom1", csv="Salamanders",
         formula="count ~ spp + mined + (1 | site)", family="nbinom1",
         kwargs={}, data_prep=None,
         r={"lme4": None, "glmmTMB": "salamanders_nbinom1"},
         glmm=None),
]

# ---- zero-inflation, hurdles, dispersion models, new families (issue 13: >= 10x glmmTMB) ----
# references in tests/reference/ext (glmmTMB 1.1.5); the simulated data sets are not in
# schema.json: `factors` lists their factor columns
SALAMANDERS = "count ~ spp + mined + (1 | site)"
for _name, _fam, _kw in [
    ("salamanders_zip", "poisson", {"ziformula": "~ spp + mined"}),
    ("salamanders_zinb2", "nbinom2", {"ziformula": "~ spp + mined"}),
    ("salamanders_zinb1_zi1", "nbinom1", {"ziformula": "~1"}),
    ("salamanders_hurdle_pois", "truncated_poisson", {"ziformula": "~ spp + mined"}),
    ("salamanders_hurdle_nb2", "truncated_nbinom2", {"ziformula": "~ spp + mined"}),
    ("salamanders_nb2_disp", "nbinom2", {"dispformula": "~ mined"}),
]:
    CASES.append(dict(name=_name, csv="Salamanders", formula=SALAMANDERS, family=_fam, kwargs=_kw,
                      data_prep=None, r={"lme4": None, "glmmTMB": _name}, glmm=None, r_target=10.0))
CASES += [
    dict(name="sleepstudy_disp", csv="sleepstudy", formula="Reaction ~ Days + (1 | Subject)",
         family="gaussian", kwargs={"dispformula": "~ Days"}, data_prep=None,
         r={"lme4": None, "glmmTMB": "sleepstudy_disp"}, glmm=None, r_target=10.0),
    dict(name="cbpp_betabinomial", csv="cbpp",
         formula="cbind(incidence, size - incidence) ~ period + (1 | herd)", family="betabinomial",
         kwargs={}, data_prep=None, r={"lme4": None, "glmmTMB": "cbpp_betabinomial"}, glmm=None,
         r_target=10.0),
    dict(name="tweedie_sim", csv="tweedie_sim", factors=["g"], formula="y ~ x + (1 | g)",
         family="tweedie", kwargs={}, data_prep=None, r={"lme4": None, "glmmTMB": "tweedie_sim"},
         glmm=None, r_target=10.0),
    dict(name="ordbeta_sim", csv="ordbeta_sim", factors=["block", "trt"],
         formula="severity ~ trt + (1 | block)", family="ordbeta", kwargs={}, data_prep=None,
         r={"lme4": None, "glmmTMB": "ordbeta_sim"}, glmm=None, r_target=10.0),
]

# ---- covariance structures (issue 14: >= 10x glmmTMB) ----
for _name, _csv, _factors, _formula, _fam in [
    ("ar1_sim_ar1", "ar1_sim", ["group", "times"], "y ~ x + ar1(times + 0 | group)", "gaussian"),
    ("ar1_sim_cs", "ar1_sim", ["group", "times"], "y ~ x + cs(times + 0 | group)", "gaussian"),
    ("ar1_sim_ou", "ar1_sim", ["group", "times"], "y ~ x + ou(numFactor(t) + 0 | group)", "gaussian"),
    ("spatial_exp", "spatial_sim", ["group"], "count ~ z + exp(numFactor(xc, yc) + 0 | group)", "poisson"),
    ("spatial_mat", "spatial_sim", ["group"], "count ~ z + mat(numFactor(xc, yc) + 0 | group)", "poisson"),
]:
    CASES.append(dict(name=_name, csv=_csv, factors=_factors, formula=_formula, family=_fam, kwargs={},
                      data_prep=None, r_prep="", r={"lme4": None, "glmmTMB": _name}, glmm=None, r_target=10.0))

# ---- big multi-term model (issue 17 item 6: >= 3x lme4) ----
# mlmRev's STAR data (tests/data/star.csv: the 23 758 complete rows of the model's columns):
# students (yrs | id), 1 288 teachers (1 | tch), 80 schools (yrs | sch). References:
# tests/reference/ext/star_lmer_*.json, written by tests/reference/star/star_lmer.R.
STAR = ("math ~ yrs + gr + sx + eth + cltype + schtype + hdeg + clad + exp + trace"
        " + (yrs | id) + (1 | tch) + (yrs | sch)")
STAR_FACTORS = ["gr", "sx", "eth", "cltype", "schtype", "hdeg", "clad", "trace", "id", "tch", "sch"]
STAR_LEVELS = ROOT / "tests" / "reference" / "star" / "star_levels.json"


def prep_star(df: pd.DataFrame) -> pd.DataFrame:
    """The covariate factors' levels of star_levels.json (as star_lmer.R): the REML criterion
    depends on the contrasts, hence on the reference levels."""
    df = df.copy()
    for col, lev in json.loads(STAR_LEVELS.read_text()).items():
        df[col] = pd.Categorical(df[col].astype(str), categories=lev)
    return df


STAR_R_PREP = (f"lev <- jsonlite::fromJSON('{STAR_LEVELS}'); "
               "for (v in names(lev)) dat[[v]] <- factor(as.character(dat[[v]]), levels = lev[[v]])")
for _name, _reml in [("star_lmer_ML", False), ("star_lmer_REML", True)]:
    CASES.append(dict(name=_name, csv="star", factors=STAR_FACTORS, formula=STAR, family="gaussian",
                      kwargs={"reml": _reml}, data_prep=prep_star, r_prep=STAR_R_PREP,
                      r={"lme4": _name, "glmmTMB": None}, glmm=None,
                      note="STAR: the sparse Schur complement after the first term (fit/sparse_schur.py)."))

R_ENGINES = ("lme4", "glmmTMB")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

_SCHEMA: dict | None = None
_REFS: dict[str, dict | None] = {}
_DATA: dict[str, pd.DataFrame] = {}


def schema() -> dict:
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = json.loads((DATA_DIR / "schema.json").read_text())
    return _SCHEMA


def reference(name: str | None) -> dict | None:
    if not name:
        return None
    if name not in _REFS:
        # the extended models' references (zero-inflation, hurdles, dispersion models, new
        # families: glmmTMB 1.1.5) live in an ext/ folder
        cands = [REF_DIR / f"{name}.json", REF_DIR / "ext" / f"{name}.json", EXT_REF_DIR / f"{name}.json"]
        p = next((c for c in cands if c.exists()), None)
        _REFS[name] = json.loads(p.read_text()) if p is not None else None
    return _REFS[name]


def load_dataset(key: str, factors=()) -> pd.DataFrame:
    """tests/data/<key>.csv with R's types and factor level order from schema.json; a data set
    that schema.json does not describe (the simulated ext data) is read as it is, with the
    columns ``factors`` made factors with R's level order (numbers by value, then as strings)."""
    if key not in _DATA and key not in schema():
        df = pd.read_csv(DATA_DIR / f"{key}.csv")
        for f in factors:
            lab = df[f].astype(str)
            df[f] = pd.Categorical(lab, categories=sorted(lab.unique(), key=lambda v: (len(v), v)))
        _DATA[key] = df
    if key not in _DATA:
        cols = schema()[key]["columns"]
        df = pd.read_csv(DATA_DIR / f"{key}.csv", dtype=str, keep_default_na=False)
        for c, d in cols.items():
            if d["type"] in ("factor", "ordered"):
                # Ordered factors are only grouping factors in these cases: plain Categorical.
                df[c] = pd.Categorical(df[c], categories=d["levels"])
            elif d["type"] == "integer":
                df[c] = pd.to_numeric(df[c]).astype("int64")
            else:
                df[c] = pd.to_numeric(df[c]).astype(float)
        _DATA[key] = df
    return _DATA[key]


def is_literal_call(spec: str) -> bool:
    return "(" in spec


def r_job(case: dict, engine: str) -> dict | None:
    spec = (case.get("r") or {}).get(engine)
    if not spec:
        return None
    if is_literal_call(spec):
        main = reference(case.get("ref", case["name"])) or {}
        prep = case.get("r_prep", main.get("data_prep") or "")
        return dict(call=spec, prep=prep, ref=None, ref_time=None)
    ref = reference(spec)
    if ref is None:
        return None
    return dict(call=ref["call"], prep=case.get("r_prep", ref.get("data_prep") or ""),
                ref=spec, ref_time=ref.get("timing", {}).get("median_s"))


def py_max_fit(opts) -> float:
    return opts.max_fit if opts.max_fit is not None else (10.0 if opts.quick else 60.0)


def n_reps(first_s: float, opts) -> int:
    if first_s > py_max_fit(opts):
        return 0  # too slow to repeat: the warm-up run is the measurement
    if opts.reps:
        return opts.reps
    budget = 0.5 if opts.quick else 3.0
    lo, hi = (1, 10) if opts.quick else ((5, 30) if first_s < 1.0 else (3, 30))
    if first_s > 10.0:
        lo = 1 if opts.quick else 2
    return max(lo, min(hi, int(budget / max(first_s, 1e-6))))


def time_fit(fn, opts) -> dict:
    """Warm-up (untimed, gives the fit), then median of n_reps(...) timed runs (wall time, and the
    CPU time of this process: less sensitive to other processes on a shared machine)."""
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    fit = fn()
    first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
    times, cpu = [], []
    for _ in range(n_reps(first, opts)):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if not times:  # slower than --max-fit: report the single (cold) run
        return dict(fit=fit, warmup_s=first, times_s=[first], median_s=first, median_cpu_s=first_cpu,
                    warmup_only=True)
    return dict(fit=fit, warmup_s=first, times_s=times, median_s=statistics.median(times),
                median_cpu_s=statistics.median(cpu))


def short_error(exc: BaseException, width: int = 90) -> str:
    text = str(exc).replace("\n", " ").strip()
    msg = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return msg if len(msg) <= width else msg[: width - 3] + "..."


# --------------------------------------------------------------------------------------------
# glmmdiag and glmm runners
# --------------------------------------------------------------------------------------------

def run_glmmdiag(case: dict, opts) -> dict:
    out: dict = dict(status="error")
    try:
        import glmmdiag  # noqa: F401  (imported per case so one failure does not stop the run)
        fit_fn = glmmdiag.glmm
    except Exception as exc:  # ImportError while the fitter is being written
        out["error"] = short_error(exc)
        return out
    try:
        df = load_dataset(case["csv"], case.get("factors", ()))
        if case.get("data_prep"):
            df = case["data_prep"](df)
        kwargs = dict(case.get("kwargs") or {})

        def fn():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return fit_fn(case["formula"], df, family=case["family"], **kwargs)

        t = time_fit(fn, opts)
        fit = t.pop("fit")
        out.update(t, status="ok", loglik=_float_attr(fit, "loglik"),
                   converged=_attr(fit, "converged"))
    except Exception as exc:
        out["error"] = short_error(exc)
        out["status"] = "skipped" if case.get("new_family") else "error"
        if opts.verbose:
            traceback.print_exc()
    return out


def run_glmm(case: dict, opts) -> dict:
    spec = case.get("glmm")
    if spec is None:
        return dict(status="n/a")
    try:
        import glmm
    except Exception:
        return dict(status="n/a", error="glmm not importable")
    out: dict = dict(status="error")
    try:
        df = load_dataset(case["csv"], case.get("factors", ()))
        if case.get("data_prep"):
            df = case["data_prep"](df)
        if spec.get("prep"):
            df = spec["prep"](df)
        kwargs = dict(spec.get("kwargs") or {})
        caught: list[str] = []

        def fn():
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                fit = glmm.fit(df, spec["formula"], spec["family"], **kwargs)
            caught[:] = sorted({type(x.message).__name__ for x in w})
            return fit

        t = time_fit(fn, opts)
        fit = t.pop("fit")
        out.update(t, status="ok", loglik=float(fit.loglik), converged=bool(fit.converged),
                   warnings=list(caught), version=getattr(glmm, "__version__", None))
    except Exception as exc:
        out["error"] = short_error(exc)
        if opts.verbose:
            traceback.print_exc()
    return out


def _attr(obj, name):
    try:
        v = getattr(obj, name)
        return v() if callable(v) else v
    except Exception:
        return None


def _float_attr(obj, name):
    v = _attr(obj, name)
    try:
        return float(v)
    except Exception:
        return None


# --------------------------------------------------------------------------------------------
# R runner
# --------------------------------------------------------------------------------------------

def r_available() -> str | None:
    return shutil.which("Rscript")


def run_r(cases: list[dict], opts) -> tuple[dict, dict]:
    """Runs fit_bench.R once for ``cases`` (all selected cases with --r-once, else one case).

    Returns ({(case, engine): result}, info) where info has versions or an error."""
    rscript = r_available()
    if rscript is None:
        return {}, dict(error="Rscript not found")
    max_fit = opts.r_max_fit if opts.r_max_fit is not None else (5.0 if opts.quick else 60.0)
    jobs, skipped = [], {}
    for case in cases:
        for engine in R_ENGINES:
            job = r_job(case, engine)
            if job is None:
                continue
            est = job["ref_time"]
            if est is None:  # literal call: assume the other engine's reference time
                other = [r_job(case, e) for e in R_ENGINES if e != engine]
                est = next((o["ref_time"] for o in other if o and o["ref_time"]), None)
            if est is not None and est > max_fit:
                skipped[(case["name"], engine)] = dict(
                    status="skipped", error=f"reference fit takes {est:.0f} s > --r-max-fit")
                continue
            if opts.reps:
                reps = opts.reps
            elif est is None:
                reps = 3 if opts.quick else 5
            else:
                budget = 1.0 if opts.quick else 4.0
                lo = 1 if (opts.quick or est > 10) else 3
                reps = max(lo, min(10, int(budget / max(est, 1e-3))))
            jobs.append(dict(id=f"{case['name']}|{engine}", case=case["name"], engine=engine,
                             dataset=case["csv"], factors=list(case.get("factors", ())),
                             prep=job["prep"], call=job["call"],
                             reps=reps, warmup=bool(est is None or est < 10.0)))
    results: dict = dict(skipped)
    if not jobs:
        return results, dict(note="no R jobs")
    with tempfile.TemporaryDirectory() as tmp:
        spec_path = Path(tmp) / "spec.json"
        out_path = Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(dict(data_dir=str(DATA_DIR),
                                             schema=str(DATA_DIR / "schema.json"),
                                             jobs=jobs)))
        print(f"R: running {len(jobs)} fits in {rscript} ...", file=sys.stderr, flush=True)
        try:
            proc = subprocess.run([rscript, "--vanilla", str(R_SCRIPT), str(spec_path),
                                   str(out_path)], stdout=subprocess.PIPE, stderr=None,
                                  text=True, timeout=opts.r_timeout)
        except subprocess.TimeoutExpired:
            return results, dict(error=f"Rscript timed out after {opts.r_timeout} s")
        if proc.returncode != 0 or not out_path.exists():
            return results, dict(error=f"Rscript exited with {proc.returncode}"
                                       + (" (jsonlite missing?)" if proc.returncode == 3 else ""))
        doc = json.loads(out_path.read_text())
    for r in doc.get("results", []):
        key = (r["case"], r["engine"])
        if r.get("error"):
            results[key] = dict(status="error", error=r["error"])
        else:
            results[key] = dict(status="ok", median_s=r["median_s"], times_s=r["times_s"],
                                median_cpu_s=r.get("median_cpu_s"),
                                loglik=r["logLik"], warnings=r.get("warnings") or [])
    return results, dict(versions=doc.get("versions"), method=doc.get("method"))


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def fmt_ms(s: float | None, mark: str = "") -> str:
    if s is None:
        return "-"
    ms = 1000.0 * s
    txt = f"{ms:.0f}" if ms >= 100 else (f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}")
    return txt + mark


def fmt_ratio(num: float | None, den: float | None, target: float) -> str:
    if not num or not den:
        return "-"
    r = num / den
    return f"{r:.2f}x {'ok' if r >= target else 'MISS'}"


def fmt_ll(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def r_time(case: dict, engine: str, r_res: dict) -> tuple[float | None, str]:
    """Measured R time, else the reference JSON's (marked '*')."""
    res = r_res.get((case["name"], engine))
    if res and res.get("status") == "ok":
        return res["median_s"], ""
    job = r_job(case, engine)
    if job and job["ref_time"] is not None:
        return job["ref_time"], "*"
    return None, ""


def print_report(rows: list[dict], r_res: dict, r_info: dict, opts) -> None:
    head = ["case", "glmmdiag ms", "glmm ms", "lme4 ms", "glmmTMB ms", "vs glmm (>=1)",
            "vs R (>=3)", "glmmdiag status"]
    table = []
    slow_marks = False
    for row in rows:
        case, d, g = row["case"], row["glmmdiag"], row["glmm"]
        d_s = d.get("median_s") if d.get("status") == "ok" else None
        g_s = g.get("median_s") if g.get("status") == "ok" else None
        (l_s, l_m), (t_s, t_m) = r_time(case, "lme4", r_res), r_time(case, "glmmTMB", r_res)
        r_min = min([x for x in (l_s, t_s) if x is not None], default=None)
        if d.get("status") == "ok":
            status = "ok" + ("" if d.get("converged") in (None, True) else " (not converged)")
        else:
            status = f"{d.get('status')}: {d.get('error', '')}"
        g_txt = fmt_ms(g_s) if g.get("status") == "ok" else (
            "n/a" if g.get("status") == "n/a" else "error")
        if d.get("warmup_only"):
            slow_marks = True
        if g.get("warmup_only") and g_s is not None:
            g_txt += "~"
            slow_marks = True
        table.append([case["name"], fmt_ms(d_s, "~" if d.get("warmup_only") else ""), g_txt, fmt_ms(l_s, l_m), fmt_ms(t_s, t_m),
                      fmt_ratio(g_s, d_s, 1.0), fmt_ratio(r_min, d_s, case.get("r_target", 3.0)), status])
    _print_table(head, table)
    print()
    if any(m for row in rows for m in (r_time(row["case"], e, r_res)[1] for e in R_ENGINES)):
        print("* R time not measured in this run: the reference JSON's median "
              "(tests/reference and tests/reference/ext, R 4.2.2, same kind of 2-core machine).")
    if slow_marks:
        print(f"~ slower than --max-fit ({py_max_fit(opts):g} s): one cold run, not a median.")
    if r_info.get("error"):
        print(f"R: {r_info['error']}")
    if r_info.get("versions"):
        v = r_info["versions"]
        print(f"R: {v.get('R')}; lme4 {v.get('lme4')}; glmmTMB {v.get('glmmTMB')}; "
              f"Matrix {v.get('Matrix')}; BLAS {v.get('BLAS')}")
    print("Speed ratios are (other's time) / (glmmdiag's time): above 1 means glmmdiag is faster."
          " Targets: vs glmm >= 1, vs min(lme4, glmmTMB) >= 3 (>= 10 for the zero-inflation, hurdle,"
          " dispersion-model and new-family cases of tests/reference/ext).")
    print()
    print_cpu_table(rows, r_res)

    head = ["case", "reference logLik", "glmmdiag", "d(glmmdiag)", "glmm", "d(glmm)",
            "lme4 here", "glmmTMB here"]
    table = []
    for row in rows:
        case = row["case"]
        ref = reference(case.get("ref", case["name"]))
        ref_ll = ref["fit"]["logLik"] if ref else None
        d_ll = row["glmmdiag"].get("loglik")
        g_ll = row["glmm"].get("loglik")

        def delta(v):
            return "-" if v is None or ref_ll is None else f"{v - ref_ll:+.2e}"

        rl = [r_res.get((case["name"], e), {}).get("loglik") for e in R_ENGINES]
        table.append([case["name"], fmt_ll(ref_ll), fmt_ll(d_ll), delta(d_ll), fmt_ll(g_ll),
                      delta(g_ll), fmt_ll(rl[0]), fmt_ll(rl[1])])
    _print_table(head, table)
    notes = [f"{row['case']['name']}: {row['case']['note']}" for row in rows
             if row["case"].get("note")]
    for row in rows:
        g = row["glmm"]
        if g.get("status") == "ok" and (g.get("warnings") or not g.get("converged", True)):
            notes.append(f"{row['case']['name']}: glmm converged={g.get('converged')}, "
                         f"warnings {', '.join(g.get('warnings') or []) or 'none'}")
        elif g.get("status") == "error":
            notes.append(f"{row['case']['name']}: glmm error: {g.get('error')}")
    for (name, engine), res in sorted(r_res.items()):
        if res.get("status") != "ok" and res.get("error"):
            notes.append(f"{name}: {engine} {res['status']}: {res['error']}")
    if notes:
        print()
        print("Notes:")
        for n in notes:
            print(f"  - {n}")


def print_cpu_table(rows: list[dict], r_res: dict) -> None:
    """The same medians in CPU time (glmmdiag: this process; R: the R process, user + system),
    for the fits R ran in this run: on a machine shared with other jobs the wall times of the two
    sides, measured minutes apart, see different loads; CPU time is much less affected."""
    table = []
    for row in rows:
        case, d = row["case"], row["glmmdiag"]
        d_c = d.get("median_cpu_s") if d.get("status") == "ok" else None
        r_c = {e: (r_res.get((case["name"], e)) or {}).get("median_cpu_s") for e in R_ENGINES}
        if d_c is None or not any(r_c.values()):
            continue
        r_min = min([x for x in r_c.values() if x], default=None)
        table.append([case["name"], fmt_ms(d_c), fmt_ms(r_c["lme4"]), fmt_ms(r_c["glmmTMB"]),
                      fmt_ratio(r_min, d_c, case.get("r_target", 3.0))])
    if not table:
        return
    print("CPU time (median; glmmdiag: this Python process, R: the R process's user + system time):")
    _print_table(["case", "glmmdiag cpu ms", "lme4 cpu ms", "glmmTMB cpu ms", "vs R cpu"], table)
    print()


def _print_table(head: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    widths[-1] = min(widths[-1], 100)
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(x).ljust(w) if i == 0 or i == len(r) - 1 else str(x).rjust(w)
                        for i, (x, w) in enumerate(zip(r, widths))))


# --------------------------------------------------------------------------------------------

def select_cases(words: list[str] | None) -> list[dict]:
    if not words:
        return list(CASES)
    exact = [c for c in CASES if c["name"] in words]
    if len(exact) == len(words):
        return exact
    return [c for c in CASES if any(w in c["name"] for w in words)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", metavar="NAME",
                    help="case names, or words a case name contains (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer runs; R fits slower than 5 s are not run")
    ap.add_argument("--no-r", action="store_true", help="do not run R (reference times shown)")
    ap.add_argument("--no-glmm", action="store_true", help="do not time the glmm package")
    ap.add_argument("--reps", type=int, default=None,
                    help="timed runs per fit (default: adaptive)")
    ap.add_argument("--max-fit", type=float, default=None,
                    help="Python fits whose warm-up run takes longer than this many seconds are "
                         "not repeated: the warm-up time is reported (default 60, --quick 10)")
    ap.add_argument("--r-max-fit", type=float, default=None,
                    help="skip R fits whose reference time exceeds this many seconds "
                         "(default 60, --quick 5)")
    ap.add_argument("--r-timeout", type=float, default=3600.0,
                    help="timeout for one Rscript run (one case, or all cases with --r-once), seconds")
    ap.add_argument("--r-once", action="store_true",
                    help="run every R fit in one Rscript after all Python fits (default: one Rscript "
                         "per case, right after that case's Python fits, so that both sides of a ratio "
                         "are timed in the same minute of a machine whose speed drifts)")
    ap.add_argument("--json", metavar="PATH", help="also write all results as JSON")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print tracebacks")
    opts = ap.parse_args(argv)

    cases = select_cases(opts.cases)
    if opts.list or not cases:
        for c in CASES:
            print(f"{c['name']:26s} {c['family']:9s} {c['formula']}")
        return 0 if opts.list else 2

    rows = []
    per_case_r = not (opts.no_r or opts.r_once)
    r_res, r_info = {}, {}
    for case in cases:
        print(f"{case['name']}: glmmdiag ...", file=sys.stderr, flush=True)
        d = run_glmmdiag(case, opts)
        g = dict(status="n/a") if opts.no_glmm else run_glmm(case, opts)
        rows.append(dict(case=case, glmmdiag=d, glmm=g))
        if per_case_r:  # R right after: both sides in the same stretch of machine speed
            res, info = run_r([case], opts)
            r_res.update(res)
            if "error" in info:  # shown in the report (with the case) even after a successful case
                r_info = dict(r_info, error=f"{case['name']}: {info['error']}")
            elif "versions" in info and "versions" not in r_info:
                r_info = dict(info, **{k: v for k, v in r_info.items() if k == "error"})

    if not per_case_r:
        r_res, r_info = ({}, dict(note="--no-r")) if opts.no_r else run_r(cases, opts)
    print()
    print_report(rows, r_res, r_info, opts)

    if opts.json:
        doc = dict(
            python=sys.version.split()[0],
            r=r_info,
            cases=[dict(name=row["case"]["name"], formula=row["case"]["formula"],
                        family=row["case"]["family"], kwargs=row["case"].get("kwargs"),
                        glmmdiag=row["glmmdiag"], glmm=row["glmm"],
                        r={e: r_res.get((row["case"]["name"], e)) for e in R_ENGINES},
                        reference_logLik=(reference(row["case"].get("ref", row["case"]["name"]))
                                          or {}).get("fit", {}).get("logLik"))
                   for row in rows])
        Path(opts.json).write_text(json.dumps(doc, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
