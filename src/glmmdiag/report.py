"""The diagnostic report of ``glmmdiag check``: fit, simulate, test, draw, and write

* ``results.json`` -- every number of the report, machine-readable (``results_dict``);
* ``figures/*.png`` and ``figures/*.svg``;
* ``report.html`` -- one self-contained file (figures embedded as base64 PNG, inline CSS, no
  script, no external resource), rendered from the results dictionary only, so every number the
  reader sees is in ``results.json`` (each is wrapped in ``<span data-path="...">`` naming its
  place in the JSON; tests/test_report.py checks that round trip).

Python use::

    from glmmdiag import datasets, report
    check = report.run_check(datasets.load("rust"), "severity ~ fungicide + (1 | block)", "beta",
                             compare=["gamma"], transforms={"gamma": 100}, links={"gamma": "log"})
    report.write_report(check, "out/")
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as _dt
import html
import io
import json
import math
import os
import platform
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from glmmdiag.compare import verdict_tests  # how every verdict reads the tests: Holm over them

time_mod = time  # run_check's ``time`` argument is a column name

__all__ = ["Check", "run_check", "results_dict", "render_html", "write_report", "check_out_dir", "fmt_value",
           "TEST_NAMES"]

TEST_NAMES = {
    "uniformity": "Uniformity (KS)",
    "dispersion": "Dispersion",
    "outliers": "Outliers",
    "zero_inflation": "Zero inflation",
    "quantiles": "Residual quantiles vs prediction",
}


@dataclasses.dataclass
class Check:
    """What ``run_check`` computed: the ``compare_models`` table (with ``.fits``, ``.residuals``,
    ``.tests``, ``.specs``), the settings, the data's name, the seconds each stage took and, with
    ``suggest=True``, the remedies fitted for the main model (``suggestions``: a ``compare_models``
    table or None, ``suggest_failed``: {spec: error message})."""

    table: Any
    settings: dict
    data_name: str
    timings: dict
    suggestions: Any = None
    suggest_failed: dict = dataclasses.field(default_factory=dict)
    autocorrelation: dict = dataclasses.field(default_factory=dict)  # label -> {"temporal"|"spatial": TestResult}
    structured: list = dataclasses.field(default_factory=list)  # fitted structured remedies (dicts)
    calibration: dict = dataclasses.field(default_factory=dict)  # label -> calibration decision (dict)


def _progress_none(msg: str) -> None:
    pass


def _model_specs(family, compare, links, ziformula, dispformula) -> list[dict]:
    """Specifications of the main model and the compared ones: a plain family name keeps its name
    as label (its link from ``links``); a spec string or dict is validated by ``normalize_spec``."""
    from glmmdiag.errors import GlmmdiagError
    from glmmdiag.remedies import normalize_spec

    links = dict(links or {})

    def plain(name):
        return isinstance(name, str) and ";" not in name and "=" not in name

    main = {"family": family, "link": links.get(family), "ziformula": ziformula, "dispformula": dispformula}
    main = normalize_spec({k: v for k, v in main.items() if v is not None})
    if ziformula is None and dispformula is None:
        main["label"] = family
    specs = [main]
    for c in compare:
        spec = normalize_spec({"family": c, "link": links.get(c)} if plain(c) else c)
        if plain(c):
            spec["label"] = c
        specs.append(spec)
    labels = [s["label"] for s in specs]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise GlmmdiagError(f"the model {twice[0]!r} is given twice (give --compare specs distinct labels)")
    return specs


def run_check(
    data: pd.DataFrame,
    formula: str,
    family: str,
    *,
    compare=(),
    links: dict | None = None,
    transforms: dict | None = None,
    ziformula: str | None = None,
    dispformula: str | None = None,
    suggest: bool = False,
    n_sim: int = 250,
    seed=1,
    n_jobs=1,
    simulate_re: str = "conditional",
    alpha: float = 0.05,
    data_name: str = "data",
    progress: Callable[[str], None] | None = None,
    time: str | None = None,
    series: str | None = None,
    coords: tuple[str, str] | None = None,
    autocorrelation_boot: int = 0,
    calibrate="auto",
    refit_budget: float | None = None,
    n_boot: int | None = None,
) -> Check:
    """Fit ``formula`` with ``family`` (and each model of ``compare``), simulate scaled residuals
    (``n_sim``, ``seed``, ``simulate_re``, ``n_jobs`` workers) and run the residual tests.

    ``calibrate`` ("auto", True, False), ``refit_budget`` (seconds per model, default
    ``checks.battery.DEFAULT_REFIT_BUDGET`` = 10) and ``n_boot`` (default 100): the five residual
    tests of each model (and of the remedies fitted by ``suggest``) use the parametric-bootstrap
    calibrated p-values of ``checks.calibrated_tests`` when ``residual_tests``' rule allows it (one
    timed refit: n_boot refits estimated within the budget), the raw ones otherwise; the verdicts,
    remedies and suggestions follow the p-values used, and ``Check.calibration`` (results.json
    ``models/<label>/p_values``) says which were used. The verdict (and the remedies and
    suggestions) read the p-values Holm-adjusted over the model's tests (``verdict_tests``): five
    tests each read at alpha would flag a correct model up to 1 - (1 - alpha)^5 of the time.

    ``compare``: family names or model specifications (``"nbinom2; ziformula=~1"``, see
    ``glmmdiag.remedies``). ``links`` / ``transforms``: per-family link and response transform of
    the plain family names, as ``compare_families``. ``ziformula`` / ``dispformula``: of the main
    model. ``suggest``: also fit the remedies the remedy table proposes for the main model's failed
    checks (those not already compared) and check them the same way.
    ``progress``: called with a short message at each stage (the CLI prints them on stderr).
    ``time`` (and ``series``) / ``coords``: columns for the temporal test (pooled within series)
    and the spatial test of every model (``Check.autocorrelation``); with ``suggest``, a failed one
    is remedied by adding ``ar1(time + 0 | series)`` (``ou(numFactor(time) + 0 | series)`` for
    unequally spaced times) or ``exp(numFactor(x, y) + 0 | one_level)`` (a one-level column added
    to a copy of the data) to the main model's formula, which is fitted, simulated (its default:
    unconditional + rotation) and tested again (``Check.structured``). ``autocorrelation_boot``:
    bootstrap refits that calibrate the autocorrelation tests of models with a structured term
    (0: the uncalibrated p-value, which is not exact for such models)."""
    from glmmdiag.compare import compare_models

    progress = progress or _progress_none
    specs = _model_specs(family, [c for c in compare if c != family], links, ziformula, dispformula)
    what = " and ".join(s["label"] for s in specs)
    progress(f"fitting {what} and simulating {n_sim} {simulate_re or 'auto-mode'} responses per model ...")
    t0 = time_mod.perf_counter()
    table = compare_models(formula, data, specs, n_sim=n_sim, seed=seed, transforms=transforms,
                           simulate_re=simulate_re, alpha=alpha, n_jobs=n_jobs)
    dt = time_mod.perf_counter() - t0
    progress(f"fitted and simulated in {dt:.1f} s")
    cal_opts = _calibration_options(calibrate, refit_budget, n_boot, seed, n_jobs)
    t0 = time_mod.perf_counter()
    calibration = calibrate_table(table, alpha=alpha, formula=formula, progress=progress, **cal_opts)
    dt_cal = time_mod.perf_counter() - t0
    settings = {"formula": formula, "family": family, "compare": [s["label"] for s in specs[1:]],
                "specs": {s["label"]: table.loc[s["label"], "spec"] for s in specs},
                "ziformula": ziformula, "dispformula": dispformula, "suggest": bool(suggest),
                "n_sim": int(n_sim), "seed": seed, "simulate_re": simulate_re or "auto", "alpha": alpha, "n_jobs": n_jobs,
                "links": dict(links or {}), "transforms": {k: v for k, v in (transforms or {}).items()},
                "quantiles": [0.25, 0.5, 0.75]}
    settings.update({"time": time, "series": series, "coords": list(coords) if coords else None,
                     "autocorrelation_boot": int(autocorrelation_boot),
                     "calibrate": cal_opts["calibrate"], "refit_budget": cal_opts["refit_budget"],
                     "n_boot": cal_opts["n_boot"]})
    if time or coords:
        from glmmdiag.remedies import SINGLE_LEVEL, equally_spaced

        settings["equal_steps"] = bool(equally_spaced(data[time])) if time else None
        settings["one_level_column"] = SINGLE_LEVEL  # "| 1": one series / one field over all rows
    check = Check(table=table, settings=settings, data_name=data_name,
                  timings={"fit_and_simulate_s": dt, "calibration_s": dt_cal}, calibration=calibration)
    if time or coords:
        t0 = time_mod.perf_counter()
        for label in table.index:
            check.autocorrelation[label] = autocorrelation_tests(
                table.residuals[label], data, time=time, series=series, coords=coords,
                n_boot=autocorrelation_boot, seed=seed, n_jobs=n_jobs)
        check.timings["autocorrelation_s"] = time_mod.perf_counter() - t0
        if suggest:
            t0 = time_mod.perf_counter()
            check.structured = _fit_structured(check, data, formula, specs[0], n_sim=n_sim, seed=seed,
                                               n_jobs=n_jobs, alpha=alpha, progress=progress)
            check.timings["suggest_structured_s"] = time_mod.perf_counter() - t0
    if suggest:
        t0 = time_mod.perf_counter()
        check.suggestions, check.suggest_failed = _fit_remedies(
            table, specs[0]["label"], formula, data, dict(n_sim=n_sim, seed=seed, simulate_re=simulate_re,
                                                          alpha=alpha, n_jobs=n_jobs), progress)
        if check.suggestions is not None:
            check.calibration.update(calibrate_table(check.suggestions, alpha=alpha, formula=formula,
                                                     progress=progress, **cal_opts))
        check.timings["suggest_s"] = time_mod.perf_counter() - t0
    return check


def _calibration_options(calibrate, refit_budget, n_boot, seed, n_jobs) -> dict:
    from glmmdiag.checks.battery import DEFAULT_N_BOOT, DEFAULT_REFIT_BUDGET

    return {"calibrate": calibrate, "refit_budget": DEFAULT_REFIT_BUDGET if refit_budget is None else float(refit_budget),
            "n_boot": DEFAULT_N_BOOT if n_boot is None else int(n_boot), "seed": seed, "n_jobs": n_jobs}


_P_COLUMNS = {"dispersion": "dispersion_p", "uniformity": "ks_p", "outliers": "outlier_p",
              "zero_inflation": "zero_inflation_p", "quantiles": "quantile_p"}


def calibrate_table(table, *, calibrate="auto", refit_budget: float = 10.0, n_boot: int = 100, seed=1, n_jobs=1,
                    alpha: float = 0.05, formula: str | None = None, progress=None) -> dict:
    """Finish the tests of every model of a ``compare_models`` table (in place): replace them by their
    calibrated versions where ``checks.battery.calibration_decision`` allows it (``table.tests`` and
    the p-value columns), and make the verdict and remedies columns read the Holm-adjusted p-values
    (``verdict_tests``). Returns {label: decision as a dict, with "p_values": the phrase}."""
    from glmmdiag.checks.battery import calibration_decision
    from glmmdiag.checks.calibration import calibrated_tests
    from glmmdiag.compare import verdict as _verdict
    from glmmdiag.remedies import SEP, model_remedies

    out = {}
    for label in table.index:
        res, tests = table.residuals[label], table.tests[label]
        names = [k for k in _P_COLUMNS if k in tests]
        if progress is not None and calibrate is not False:
            progress(f"{label}: timing one bootstrap refit for the calibrated p-values (budget {refit_budget:g} s) ...")
        d = calibration_decision(res, calibrate, refit_budget, n_boot, tests=names, seed=seed, n_jobs=n_jobs)
        out[label] = {**d.to_dict(), "p_values": d.p_values}
        if d.calibrated:
            if progress is not None:
                progress(f"{label}: {d.p_values}")
            cal = calibrated_tests(res, d.n_boot, names, seed=seed, n_jobs=n_jobs, _first=d.first, _raw=tests)
            tests = {**tests, **cal}
            table.tests[label] = tests
            for name, col in _P_COLUMNS.items():
                if name in cal and col in table.columns:
                    table.loc[label, col] = cal[name].p_value
        adjusted = verdict_tests(tests, res)
        table.loc[label, "verdict"] = _verdict(adjusted, alpha)
        if "remedies" in table.columns:
            spec = (getattr(table, "specs", None) or {}).get(label)
            if spec is not None:
                found = model_remedies(spec, table.fits[label].family.name, adjusted, alpha, formula)
                table.loc[label, "remedies"] = SEP.join(str(r) for r in found)
    return out


def _has_structured(res) -> bool:
    from glmmdiag.rotation import structured_terms

    return bool(structured_terms(res.model))


def autocorrelation_tests(res, data, *, time=None, series=None, coords=None, n_boot=0, seed=1, n_jobs=1) -> dict:
    """{"temporal": ..., "spatial": ...} test results of one model's residuals (the columns given).

    The temporal test is pooled within ``series`` when given; ``n_boot`` refits calibrate the
    tests of a model with a time or distance structured term (see ``temporal_autocorrelation_test``)."""
    from glmmdiag.checks import spatial_autocorrelation_test, temporal_autocorrelation_test

    boot = int(n_boot) if _has_structured(res) else 0
    out = {}
    if time:
        out["temporal"] = temporal_autocorrelation_test(res, time, group=series, data=data, n_boot=boot, seed=seed,
                                                        n_jobs=n_jobs)
    if coords:
        out["spatial"] = spatial_autocorrelation_test(res, coords[0], coords[1], data=data, n_boot=boot, seed=seed,
                                                      n_jobs=n_jobs)
    return out


def combined_verdict(check, label, verdict: str) -> str:
    """A model's verdict with its failed autocorrelation tests added (``check.autocorrelation``)."""
    alpha = float(check.settings["alpha"])
    failed = [autocorrelation_phrase(kind, t, alpha) for kind, t in check.autocorrelation.get(label, {}).items()
              if t.p_value is not None and t.p_value < alpha]
    if not failed:
        return verdict
    return "; ".join(failed) if verdict == "no problems detected" else verdict + "; " + "; ".join(failed)


def autocorrelation_phrase(kind: str, t, alpha: float) -> str:
    """'temporal autocorrelation (DW 1.25, p < 2.2e-16)' or 'no evidence of spatial autocorrelation (...)'."""
    from glmmdiag.results import format_pvalue

    p = t.p_value
    stat = f"DW {t.statistic:.3g}" if kind == "temporal" else f"Moran's I {t.statistic:.3g}"
    pv = format_pvalue(p).replace("p-value", "p")
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return f"{kind} autocorrelation test undefined for these data"
    if p < alpha:
        return f"{kind} autocorrelation ({stat}, {pv})"
    return f"no evidence of {kind} autocorrelation ({stat}, {pv})"


def _fit_structured(check, data, formula, main_spec, *, n_sim, seed, n_jobs, alpha, progress) -> list[dict]:
    """Fit the main model with the structured term that remedies each failed autocorrelation test;
    simulate (default mode: unconditional + rotation), test, and record whether it now passes."""
    import warnings

    import glmmdiag
    from glmmdiag.checks import dispersion_test, outlier_test, uniformity_test
    from glmmdiag.compare import verdict as _verdict
    from glmmdiag.errors import GlmmdiagError
    from glmmdiag.remedies import autocorrelation_remedy, structured_term, with_term

    settings = check.settings
    main = check.table.index[0]
    tests = check.autocorrelation.get(main, {})
    main_fit = check.table.fits[main]
    out = []
    for kind, t in tests.items():
        if not (t.p_value is not None and t.p_value < alpha):
            continue
        d = data
        if kind == "temporal":
            grp = settings.get("series")
            if not grp:
                grp = settings["one_level_column"]
            term = structured_term("temporal", time=settings["time"], series=grp,
                                   equal_steps=settings["equal_steps"])
        else:
            grp = settings["one_level_column"]
            term = structured_term("spatial", coords=settings["coords"], group=grp)
        new_formula = with_term(formula, term)
        remedy = autocorrelation_remedy(kind, term, formula)
        row = {"kind": kind, "term": term, "formula": new_formula, "remedy": str(remedy), "error": None}
        progress(f"fitting the remedy {term} ...")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = glmmdiag.glmm(new_formula, d, family=main_spec["family"], link=main_spec.get("link"),
                                    **{k: main_spec[k] for k in ("ziformula", "dispformula") if main_spec.get(k)})
                res = glmmdiag.simulate_residuals(fit, n_sim, seed=seed, n_jobs=n_jobs)
                std = {"uniformity": uniformity_test(res), "dispersion": dispersion_test(res),
                       "outliers": outlier_test(res)}
                ac = autocorrelation_tests(res, d, time=settings.get("time") if kind == "temporal" else None,
                                           series=grp if kind == "temporal" else None,
                                           coords=settings.get("coords") if kind == "spatial" else None,
                                           n_boot=settings.get("autocorrelation_boot", 0), seed=seed,
                                           n_jobs=n_jobs)[kind]
        except GlmmdiagError as e:
            row["error"] = " ".join(str(e.args[0] if e.args else e).split())
            out.append(row)
            continue
        v = _verdict(verdict_tests(std, res), alpha)
        ac_pass = not (ac.p_value is not None and ac.p_value < alpha)
        row.update({
            "fit": fit, "residuals": res, "tests": std, "test": ac,
            "AIC": float(fit.aic), "delta_AIC": float(fit.aic - main_fit.aic),
            "simulate_re": res.simulate_re, "rotation": res.rotation,
            "verdict": v, "autocorrelation": autocorrelation_phrase(kind, ac, alpha),
            "passes": bool(ac_pass and v == "no problems detected"), "autocorrelation_passes": bool(ac_pass),
        })
        out.append(row)
    return out


def _fit_remedies(table, main: str, formula: str, data, kw: dict, progress):
    """(compare_models table of the remedies for ``main``'s failed checks or None, {spec: error})."""
    import warnings

    from glmmdiag.compare import ModelComparison, compare_models
    from glmmdiag.errors import GlmmdiagError
    from glmmdiag.remedies import model_remedies, normalize_spec

    fit = table.fits[main]
    found = model_remedies(table.specs[main], fit.family.name, verdict_tests(table.tests[main], table.residuals[main]),
                           kw["alpha"], formula)
    compared = set(table["spec"])
    todo = list(dict.fromkeys(s for r in found for s in r.specs if s not in compared))
    parts, failed = [], {}
    for spec in todo:
        progress(f"fitting the remedy {spec} ...")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a remedy's fit warnings are in its row
                parts.append(compare_models(formula, data, [normalize_spec(spec)], **kw))
        except GlmmdiagError as e:
            failed[spec] = " ".join(str(e.args[0] if e.args else e).split())
    if not parts:
        return None, failed
    out = ModelComparison(pd.concat(parts))
    out["delta_AIC"] = out["AIC_common"] - table.loc[main, "AIC_common"]  # from the main model
    for attr in ("fits", "residuals", "tests", "specs"):
        setattr(out, attr, {k: v for p in parts for k, v in getattr(p, attr).items()})
    out.settings = dict(parts[0].settings, reference=main)
    return out, failed


# ------------------------------------------------------------------------------------ numbers
def _clean(x):
    """JSON-safe: numpy scalars to Python, NaN/inf to None, recursively."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_clean(v) for v in x.tolist()]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def fmt_value(v, kind: str = "g4") -> str:
    """How the report prints a value of results.json: kind "g<d>" (d significant digits),
    "int", "p" (p-value), "str"."""
    if v is None:
        return "NA"
    if kind == "str":
        return str(v)
    if kind == "int":
        return f"{int(v):,}"
    if kind == "p":
        v = float(v)
        if v < 1e-4:
            return f"{v:.1e}"
        if v >= 0.995:
            return "1"
        return np.format_float_positional(v, precision=2, fractional=False, trim="-")
    d = int(kind[1:]) if kind.startswith("g") else 4
    v = float(v)
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e6:
        if abs(v) >= 10 ** d:
            return f"{v:.0f}"
        return np.format_float_positional(v, precision=d, fractional=False, trim="-")
    return f"{v:.{d - 1}e}"


def _dispersion_phrase(t: dict, alpha: float) -> str:
    r, p = t["statistic"], t["p_value"]
    if p is None:
        return _undefined_phrase("dispersion", t)
    # a missing ratio with a p-value is an infinite one (observed data vary, no simulation does)
    kind = "underdispersion" if (r is not None and r < 1) else "overdispersion"
    return ("no evidence of " if p >= alpha else "evidence of ") + kind


def _undefined_phrase(what: str, t: dict) -> str:
    """The verdict of a test without a p-value (undefined for these data): never a claim either way."""
    why = str(t.get("note") or "").strip()
    why = why[len("undefined:"):].strip() if why.startswith("undefined:") else ""
    return f"{what} undefined for these data" + (f" ({why.split(':')[0]})" if why else "")


def _plain(name: str, t: dict, alpha: float) -> tuple[str, bool]:
    """(plain-language verdict without the numbers, significant?) of one test."""
    p = t["p_value"]
    if p is None:  # NaN p-value: the test is undefined for these data (e.g. constant responses)
        return _undefined_phrase(TEST_NAMES.get(name, name).split(" (")[0].lower(), t), False
    sig = p is not None and p < alpha
    if name == "uniformity":
        return ("residuals deviate from the uniform distribution" if sig
                else "residuals consistent with the uniform distribution"), sig
    if name == "dispersion":
        return _dispersion_phrase(t, alpha), sig
    if name == "outliers":
        return ("more outliers than expected" if sig else "no more outliers than expected"), sig
    if name == "zero_inflation":
        r = t["statistic"]
        kind = "too few zeros" if (r is not None and r < 1) else "zero-inflation"
        return (("evidence of " if sig else "no evidence of ") + kind), sig
    if name == "quantiles":
        return ("residual quantiles depend on the prediction" if sig
                else "no evidence that residual quantiles depend on the prediction"), sig
    return ("significant" if sig else "not significant"), sig


# statistic printed in the verdict: (label, format kind)
_STAT_LABEL = {"uniformity": ("D", "g3"), "dispersion": ("ratio", "g3"), "outliers": ("outliers", "int"),
               "zero_inflation": ("ratio", "g3"), "quantiles": ("χ²", "g3")}


def results_dict(check: Check) -> dict:
    """Everything the report shows, as a JSON-safe dictionary (NaN -> None)."""
    import glmmdiag
    from glmmdiag.compare import verdict as _verdict

    table = check.table
    alpha = float(check.settings["alpha"])
    models, tests_out, verdicts = {}, {}, {}
    for label in table.index:
        fit, res, tests = table.fits[label], table.residuals[label], table.tests[label]
        row = table.loc[label]
        ct = fit.coef_table()
        fixed = [{"term": str(term), "estimate": r.iloc[0], "se": r.iloc[1], "z": r.iloc[2], "p": r.iloc[3]}
                 for term, r in ct.iterrows()]
        vc = fit.varcorr
        random = [{"group": str(r["grp"]), "term": str(r["var1"]),
                   "term2": None if r["var2"] is None or (isinstance(r["var2"], float) and math.isnan(r["var2"]))
                   else str(r["var2"]),
                   "variance_or_cov": r["vcov"], "sd_or_cor": r["sdcor"]} for _, r in vc.iterrows()] if vc is not None else []
        disp = getattr(fit, "dispersion", None)
        models[label] = {
            "label": str(label), "family": str(row.get("family", label)), "spec": str(row.get("spec", label)),
            "link": str(row["link"]), "response": str(row["response"]),
            "nobs": int(row["nobs"]), "n_dropped": int(getattr(fit, "n_dropped", 0) or 0),
            "ngroups": {str(k): int(v) for k, v in (fit.ngroups or {}).items()},
            "n_params": int(row["n_params"]), "logLik": row["logLik"], "AIC": row["AIC"], "BIC": row["BIC"],
            "log_jacobian": row["log_jacobian"], "logLik_common": row["logLik_common"],
            "AIC_common": row["AIC_common"], "BIC_common": row["BIC_common"], "delta_AIC": row["delta_AIC"],
            "dispersion_parameter": disp if isinstance(disp, (int, float, np.floating)) else None,
            "converged": bool(row["converged"]), "warnings": [str(w) for w in (fit.warnings or [])],
            "fixed_effects": fixed, "random_effects": random, "summary_text": str(fit.summary()),
        }
        tout = {}
        for name in TEST_NAMES:
            t = tests.get(name)
            if t is None or (name == "zero_inflation" and not res.integer_response):
                continue
            d = {"method": t.method, "statistic_name": t.statistic_name, "statistic": t.statistic,
                 "p_value": t.p_value, "alternative": t.alternative, "mc_se": t.mc_se,
                 "n_sim": t.n_sim, "note": t.note}
            d = _clean(d)
            d["verdict"], d["significant"] = _plain(name, d, alpha)
            tout[name] = d
        tests_out[label] = tout
        verdicts[label] = combined_verdict(check, label, _verdict(verdict_tests(tests, res), alpha))
        models[label]["remedies"] = _remedies_of(table, label, check.settings.get("formula"), alpha)
        models[label]["residuals"] = {"nobs": int(res.nobs), "n_sim": int(res.n_sim), "simulate_re": res.simulate_re,
                                      "seed_entropy": str(res.seed), "chunk_size": int(res.chunk_size),
                                      "integer_response": bool(res.integer_response),
                                      "pit": str(getattr(res, "pit", "dharma"))}
        cal = check.calibration.get(label)
        models[label]["p_values"] = cal["p_values"] if cal else "uncalibrated"
        models[label]["calibration"] = {k: v for k, v in (cal or {}).items() if k != "p_values"} or None
    comparison = None
    if len(table.index) > 1:
        cols = ["link", "response", "logLik", "AIC_common", "delta_AIC", "dispersion", "dispersion_p",
                "ks_D", "ks_p", "outlier_p", "quantile_p", "verdict"]
        comparison = [{"model": str(lab), "family": str(table.loc[lab].get("family", lab)),
                       "spec": str(table.loc[lab].get("spec", lab)), **{c: table.loc[lab, c] for c in cols}}
                      for lab in table.index]
    s = dict(check.settings)
    s["seed"] = None if s["seed"] is None else (int(s["seed"]) if isinstance(s["seed"], (int, np.integer)) else str(s["seed"]))
    out = {
        "glmmdiag_version": glmmdiag.__version__,
        "python_version": platform.python_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "data": {"name": check.data_name, "nobs": int(table.iloc[0]["nobs"])},
        "settings": s,
        "timings": check.timings,
        "models": models,
        "tests": tests_out,
        "verdicts": verdicts,
        "comparison": comparison,
        "suggestions": _suggestions_dict(check, alpha),
        "figures": {},
    }
    if check.autocorrelation:
        out["autocorrelation"] = {str(lab): {kind: _autocorrelation_dict(kind, t, alpha) for kind, t in d.items()}
                                  for lab, d in check.autocorrelation.items()}
    if check.settings.get("suggest") and check.autocorrelation:
        out["structured_suggestions"] = [_structured_dict(row) for row in check.structured]
    return _clean(out)


def _autocorrelation_dict(kind: str, t, alpha: float) -> dict:
    d = _clean({"method": t.method, "statistic_name": t.statistic_name, "statistic": t.statistic,
                "p_value": t.p_value, "alternative": t.alternative, "mc_se": t.mc_se, "n_sim": t.n_sim,
                "note": t.note, "simulate_re": t.simulate_re})
    d["verdict"] = autocorrelation_phrase(kind, t, alpha)
    d["significant"] = bool(t.p_value is not None and t.p_value < alpha)
    return d


def _structured_dict(row: dict) -> dict:
    keys = ("kind", "term", "formula", "remedy", "error", "AIC", "delta_AIC", "simulate_re", "rotation", "verdict",
            "autocorrelation", "passes", "autocorrelation_passes")
    d = {k: row.get(k) for k in keys}
    if row.get("test") is not None:
        t = row["test"]
        d["test"] = {"method": t.method, "statistic": t.statistic, "p_value": t.p_value, "note": t.note}
        d["tests"] = {k: {"statistic": v.statistic, "p_value": v.p_value} for k, v in row["tests"].items()}
    return _clean(d)


def _autocorrelation_section(r: _R, results: dict) -> str:
    """The temporal / spatial tests of every model and, with --suggest, the structured remedies."""
    out = ["<h2>Autocorrelation</h2>", "<p>Durbin-Watson test of the residuals in time order (pooled within "
           "series) and Moran's I with inverse-distance weights. A model with an <code>ar1</code>/<code>ou</code>/"
           "<code>exp</code> term is simulated unconditionally and its residuals rotated (decorrelated by the "
           "estimated covariance) first.</p>", "<table><thead><tr><th>model</th><th>test</th><th>verdict</th>"
           "<th class=num>statistic</th><th class=num>p</th></tr></thead><tbody>"]
    for lab, d in results["autocorrelation"].items():
        for kind in d:
            b = f"autocorrelation/{lab}/{kind}"
            cls = "bad" if d[kind]["significant"] else "ok"
            out.append(f'<tr><td>{html.escape(lab)}</td><td>{kind}</td><td class="{cls}">{r(b + "/verdict", "str")}'
                       f'</td><td class="num">{r(b + "/statistic", "g4")}</td>'
                       f'<td class="num">{r(b + "/p_value", "p")}</td></tr>')
    out.append("</tbody></table>")
    sug = results.get("structured_suggestions")
    if sug is not None:
        if not sug:
            out.append("<p>No autocorrelation test failed: no structured model to fit.</p>")
        rows = []
        for i, row in enumerate(sug):
            b = f"structured_suggestions/{i}"
            if row.get("error"):
                rows.append(f'<tr><td><code>{r(b + "/term", "str")}</code></td><td class="bad" colspan=4>could not '
                            f'be fitted: {r(b + "/error", "str")}</td></tr>')
                continue
            cls = "ok" if row["passes"] else "bad"
            rows.append(f'<tr><td><code>{r(b + "/formula", "str")}</code></td>'
                        f'<td class="{"ok" if row["autocorrelation_passes"] else "bad"}">{r(b + "/autocorrelation", "str")}</td>'
                        f'<td class="{cls}">{r(b + "/verdict", "str")}</td>'
                        f'<td class="num">{r(b + "/AIC", "g5")}</td><td class="num">{r(b + "/delta_AIC", "g3")}</td></tr>')
        if rows:
            out.append("<h3>Structured remedies (--suggest)</h3><table><thead><tr><th>model</th><th>autocorrelation"
                       "</th><th>other checks</th><th class=num>AIC</th><th class=num>ΔAIC</th></tr></thead><tbody>"
                       + "".join(rows) + "</tbody></table>")
    return "\n".join(out)


def _remedies_of(table, label, formula, alpha) -> list[dict]:
    """[{problem, specs, why, text}] of one model's failed checks (the remedy table)."""
    from glmmdiag.remedies import PROBLEM_NAMES, model_remedies

    spec = getattr(table, "specs", None) or {}
    spec = spec.get(label) or {"family": str(label), "link": None, "ziformula": None, "dispformula": None,
                               "olre": False, "label": str(label)}
    found = model_remedies(spec, table.fits[label].family.name,
                           verdict_tests(table.tests[label], table.residuals[label]), alpha, formula)
    return [{"problem": PROBLEM_NAMES.get(r.problem, r.problem), "specs": list(r.specs), "why": r.why,
             "text": str(r)} for r in found]


def _suggestions_dict(check: Check, alpha: float):
    """The fitted remedies (``run_check(..., suggest=True)``), or None when not asked for."""
    if not check.settings.get("suggest"):
        return None
    main = check.table.index[0]
    sug = check.suggestions
    rows = []
    if sug is not None:
        for lab in sug.index:
            r = sug.loc[lab]
            rows.append({"model": str(lab), "spec": str(r["spec"]), "family": str(r["family"]),
                         "link": str(r["link"]), "nobs": int(r["nobs"]), "AIC_common": r["AIC_common"],
                         "delta_AIC": r["delta_AIC"], "dispersion": r["dispersion"],
                         "dispersion_p": r["dispersion_p"], "zero_inflation_p": r["zero_inflation_p"],
                         "ks_p": r["ks_p"], "quantile_p": r["quantile_p"], "verdict": str(r["verdict"]),
                         "passes": str(r["verdict"]) == "no problems detected"})
    return {"model": str(main), "verdict": str(check.table.loc[main, "verdict"]),
            "AIC_common": check.table.loc[main, "AIC_common"], "models": rows,
            "failed": [{"spec": k, "error": v} for k, v in check.suggest_failed.items()]}


# ------------------------------------------------------------------------------------ HTML
def _get(results: dict, path: str):
    cur = results
    for part in path.split("/"):
        cur = cur[int(part)] if isinstance(cur, list) else cur[part]
    return cur


class _R:
    """Renders values of the results dict as spans that name their JSON path."""

    def __init__(self, results):
        self.results = results

    def __call__(self, path: str, kind: str = "g4", tag: str = "span") -> str:
        v = _get(self.results, path)
        text = html.escape(fmt_value(v, kind))
        return f'<{tag} data-path="{html.escape(path)}" data-fmt="{kind}">{text}</{tag}>'


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1a1a1a;
background:#fff;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1.5rem 1.5rem 3rem}
h1{font-size:1.6rem;margin:.2rem 0 .4rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd;
padding-bottom:.2rem}h3{font-size:1.05rem;margin-top:1.4rem}
.sub{color:#555;margin:0 0 1rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.92rem}
th,td{padding:.25rem .6rem;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f5f5f5}
.bad{color:#B34700;font-weight:bold}.ok{color:#1a1a1a}
.verdict{padding:.5rem .8rem;border-left:4px solid #0072B2;background:#f4f8fb;margin:.6rem 0}
.verdict.bad{border-left-color:#D55E00;background:#fdf3ec}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9rem}
pre{background:#f7f7f7;padding:.8rem;overflow-x:auto;font-size:.82rem}
code{font-size:.92em}
footer{margin-top:2.5rem;color:#666;font-size:.85rem}
"""


def _test_rows(r: _R, results: dict, label: str) -> str:
    rows = []
    for name, t in results["tests"][label].items():
        base = f"tests/{label}/{name}"
        stat_label, kind = _STAT_LABEL.get(name, ("statistic", "g3"))
        cls = "bad" if t["significant"] else "ok"
        phrase = (f'{r(base + "/verdict", "str")} ({stat_label} {r(base + "/statistic", kind)}, '
                  f'p = {r(base + "/p_value", "p")})')
        mc = f' ± {r(base + "/mc_se", "g2")}' if t.get("mc_se") is not None else ""
        rows.append(
            f'<tr><td>{TEST_NAMES[name]}</td><td class="{cls}">{phrase}</td>'
            f'<td class="num">{r(base + "/statistic", "g4")}</td>'
            f'<td class="num">{r(base + "/p_value", "p")}{mc}</td>'
            f'<td>{r(base + "/method", "str")}</td></tr>')
    return ("<table><thead><tr><th>test</th><th>verdict</th><th class=num>statistic</th>"
            "<th class=num>p-value (± Monte-Carlo SE)</th><th>method</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _model_section(r: _R, results: dict, label: str, images: dict) -> str:
    m = results["models"][label]
    b = f"models/{label}"
    bad = results["verdicts"][label] != "no problems detected"
    groups = ", ".join(f"{html.escape(g)}: {r(f'{b}/ngroups/{g}', 'int')}" for g in m["ngroups"]) or "none"
    head = (f'{r(b + "/label", "str")}: {r(b + "/family", "str")}' if m.get("label") != m["family"]
            else r(b + "/family", "str"))
    out = [f'<h2>Model: {head} ({r(b + "/link", "str")} link) on '
           f'{r(b + "/response", "str")}</h2>',
           f'<div class="verdict{" bad" if bad else ""}">Verdict at α = {r("settings/alpha", "g3")}: '
           f'<strong>{r("verdicts/" + label, "str")}</strong>{_remedy_list(r, b, m)}'
           f'<br><small>p-values: {r(b + "/p_values", "str")}; the verdict reads them Holm-adjusted over '
           f'the tests shown</small></div>',
           '<table><tbody>',
           f'<tr><th>observations</th><td class="num">{r(b + "/nobs", "int")}</td>'
           f'<th>dropped (missing values)</th><td class="num">{r(b + "/n_dropped", "int")}</td></tr>',
           f'<tr><th>groups</th><td colspan=3>{groups}</td></tr>',
           f'<tr><th>logLik</th><td class="num">{r(b + "/logLik", "g6")}</td>'
           f'<th>parameters</th><td class="num">{r(b + "/n_params", "int")}</td></tr>',
           f'<tr><th>AIC</th><td class="num">{r(b + "/AIC", "g6")}</td>'
           f'<th>BIC</th><td class="num">{r(b + "/BIC", "g6")}</td></tr>']
    if m["dispersion_parameter"] is not None:
        out.append(f'<tr><th>dispersion parameter</th><td class="num">{r(b + "/dispersion_parameter", "g4")}</td>'
                   f'<th>converged</th><td>{r(b + "/converged", "str")}</td></tr>')
    else:
        out.append(f'<tr><th>converged</th><td colspan=3>{r(b + "/converged", "str")}</td></tr>')
    out.append("</tbody></table>")
    for i, _ in enumerate(m["warnings"]):
        out.append(f'<p class="bad">Warning: {r(f"{b}/warnings/{i}", "str")}</p>')
    out.append("<h3>Residual tests</h3>" + _test_rows(r, results, label))
    if label in images:
        out.append(f'<figure><img alt="Residual diagnostics of the {html.escape(label)} model: uniform QQ plot and '
                   f'residuals against the predictions" src="data:image/png;base64,{images[label]}">'
                   f'<figcaption>Left: QQ plot of the scaled residuals against the uniform distribution. Right: '
                   f'residuals against the rank of the predictions with fitted quantile curves '
                   f'(dashed: the quantiles expected under the model).</figcaption></figure>')
    fe = "".join(
        f'<tr><td>{r(f"{b}/fixed_effects/{i}/term", "str")}</td>'
        f'<td class="num">{r(f"{b}/fixed_effects/{i}/estimate", "g4")}</td>'
        f'<td class="num">{r(f"{b}/fixed_effects/{i}/se", "g4")}</td>'
        f'<td class="num">{r(f"{b}/fixed_effects/{i}/z", "g4")}</td>'
        f'<td class="num">{r(f"{b}/fixed_effects/{i}/p", "p")}</td></tr>' for i in range(len(m["fixed_effects"])))
    out.append('<h3>Fixed effects</h3><table><thead><tr><th>term</th><th class=num>estimate</th>'
               '<th class=num>std. error</th><th class=num>z</th><th class=num>p</th></tr></thead><tbody>'
               + fe + "</tbody></table>")
    if m["random_effects"]:
        re_rows = "".join(
            f'<tr><td>{r(f"{b}/random_effects/{i}/group", "str")}</td>'
            f'<td>{r(f"{b}/random_effects/{i}/term", "str")}</td>'
            f'<td>{r(f"{b}/random_effects/{i}/term2", "str") if row["term2"] is not None else ""}</td>'
            f'<td class="num">{r(f"{b}/random_effects/{i}/variance_or_cov", "g4")}</td>'
            f'<td class="num">{r(f"{b}/random_effects/{i}/sd_or_cor", "g4")}</td></tr>'
            for i, row in enumerate(m["random_effects"]))
        out.append('<h3>Random effects</h3><table><thead><tr><th>group</th><th>term</th><th>with</th>'
                   '<th class=num>variance (covariance)</th><th class=num>SD (correlation)</th></tr></thead>'
                   '<tbody>' + re_rows + "</tbody></table>")
    out.append(f'<details><summary>Full model summary (as glmmTMB\'s summary())</summary>'
               f'{r(b + "/summary_text", "str", tag="pre")}</details>')
    return "\n".join(out)


def _remedy_list(r: _R, b: str, m: dict) -> str:
    """The remedies of a model's failed checks as a list (empty when none)."""
    items = []
    for i, rem in enumerate(m.get("remedies") or []):
        base = f"{b}/remedies/{i}"
        specs = ", ".join(f'<code>{r(f"{base}/specs/{j}", "str")}</code>' for j in range(len(rem["specs"])))
        what = f"try {specs} ({r(base + '/why', 'str')})" if specs else r(base + "/why", "str")
        items.append(f"<li>{r(base + '/problem', 'str')}: {what}</li>")
    if not items:
        return ""
    return ('<br>What may address it (<code>--compare SPEC</code>, or <code>--suggest</code> to fit them):'
            '<ul>' + "".join(items) + "</ul>")


def _suggestions_section(r: _R, results: dict) -> str:
    """The remedies fitted by --suggest: verdict and AIC of each against the main model."""
    sug = results["suggestions"]
    out = [f'<h2>Suggested remedies for {r("suggestions/model", "str")}</h2>',
           f'<p>The main model\'s verdict: <strong>{r("suggestions/verdict", "str")}</strong> (AIC '
           f'{r("suggestions/AIC_common", "g5")}). Each remedy the remedy table proposes for its failed '
           'checks, fitted and checked the same way; ΔAIC is against the main model (negative: better).</p>']
    if sug["models"]:
        rows = []
        for i, row in enumerate(sug["models"]):
            b = f"suggestions/models/{i}"
            cls = "ok" if row["passes"] else "bad"
            rows.append(f'<tr><td>{r(b + "/model", "str")}</td><td><code>{r(b + "/spec", "str")}</code></td>'
                        f'<td class="num">{r(b + "/AIC_common", "g5")}</td>'
                        f'<td class="num">{r(b + "/delta_AIC", "g3")}</td>'
                        f'<td class="num">{r(b + "/dispersion", "g3")}</td>'
                        f'<td class="num">{r(b + "/dispersion_p", "p")}</td>'
                        f'<td class="num">{r(b + "/zero_inflation_p", "p")}</td>'
                        f'<td class="{cls}">{r(b + "/verdict", "str")}</td></tr>')
        out.append('<table><thead><tr><th>model</th><th>spec</th><th class=num>AIC</th><th class=num>ΔAIC</th>'
                   '<th class=num>dispersion ratio</th><th class=num>p</th><th class=num>zero-inflation p</th>'
                   '<th>verdict</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>")
    else:
        out.append("<p>No remedy to fit: the main model passes, or its failed checks have no remedy in the "
                   "table, or every remedy is already compared above.</p>")
    for i, _ in enumerate(sug["failed"]):
        b = f"suggestions/failed/{i}"
        out.append(f'<p class="bad">Could not fit <code>{r(b + "/spec", "str")}</code>: {r(b + "/error", "str")}</p>')
    return "\n".join(out)


def _comparison_section(r: _R, results: dict, images: dict) -> str:
    rows = []
    for i, row in enumerate(results["comparison"]):
        b = f"comparison/{i}"
        bad = row["verdict"] != "no problems detected"
        rows.append(
            f'<tr><td>{r(b + "/model", "str")}</td><td>{r(b + "/family", "str")}</td><td>{r(b + "/link", "str")}</td>'
            f'<td>{r(b + "/response", "str")}</td>'
            f'<td class="num">{r(b + "/AIC_common", "g5")}</td><td class="num">{r(b + "/delta_AIC", "g3")}</td>'
            f'<td class="num">{r(b + "/dispersion", "g3")}</td><td class="num">{r(b + "/dispersion_p", "p")}</td>'
            f'<td class="num">{r(b + "/ks_D", "g3")}</td><td class="num">{r(b + "/ks_p", "p")}</td>'
            f'<td class="num">{r(b + "/outlier_p", "p")}</td><td class="num">{r(b + "/quantile_p", "p")}</td>'
            f'<td class="{"bad" if bad else "ok"}">{r(b + "/verdict", "str")}</td></tr>')
    plain = all(row["model"] == row["family"] for row in results["comparison"])
    out = [f'<h2>{"Family" if plain else "Model"} comparison</h2>',
           '<p>AIC on the common scale of the response (a model fitted to a rescaled response is '
           'corrected by the log-Jacobian of the rescaling, so the AICs are comparable); ΔAIC from the '
           'best model. p-values are not effect sizes: read the dispersion ratio and KS distance too.</p>',
           '<table><thead><tr><th>model</th><th>family</th><th>link</th><th>response</th><th class=num>AIC</th>'
           '<th class=num>ΔAIC</th><th class=num>dispersion ratio</th><th class=num>p</th>'
           '<th class=num>KS D</th><th class=num>p</th><th class=num>outliers p</th>'
           '<th class=num>quantiles p</th><th>verdict</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"]
    if "comparison" in images:
        out.append('<figure><img alt="Diagnostics of the compared models side by side" '
                   f'src="data:image/png;base64,{images["comparison"]}"><figcaption>One row per model: QQ plot, '
                   'residuals against predictions, and the observed dispersion against its simulated '
                   'distribution (shared axes).</figcaption></figure>')
    return "\n".join(out)


def render_html(results: dict, images: dict | None = None) -> str:
    """The self-contained report from ``results_dict`` output and base64 PNGs keyed by model label
    (and "comparison")."""
    images = images or {}
    r = _R(results)
    s = results["settings"]
    labels = list(results["models"])
    title = f"glmmdiag check: {html.escape(s['formula'])}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{_CSS}</style></head><body><main>",
        f'<h1>Residual diagnostics: {r("settings/formula", "str", tag="code")}</h1>',
        f'<p class="sub">Data {r("data/name", "str", tag="code")} · {r("data/nobs", "int")} observations · '
        f'{r("settings/n_sim", "int")} {r("settings/simulate_re", "str")} simulations per model · '
        f'seed {r("settings/seed", "str")}</p>',
        "<h2>Summary</h2><table><thead><tr><th>model</th><th>verdict</th></tr></thead><tbody>",
    ]
    for lab in labels:
        bad = results["verdicts"][lab] != "no problems detected"
        parts.append(f'<tr><td>{r(f"models/{lab}/label", "str")} ({r(f"models/{lab}/link", "str")})</td>'
                     f'<td class="{"bad" if bad else "ok"}">{r("verdicts/" + lab, "str")}</td></tr>')
    parts.append("</tbody></table>")
    parts.append("<p>The scaled residuals are simulation-based quantile residuals (as R's DHARMa): "
                 "uniform on (0, 1) when the model is right. Each test's verdict is read at the "
                 f"significance level α = {r('settings/alpha', 'g3')}; a Monte-Carlo p-value carries "
                 "its simulation standard error.</p>")
    if results.get("comparison"):
        parts.append(_comparison_section(r, results, images))
    if results.get("suggestions"):
        parts.append(_suggestions_section(r, results))
    if results.get("autocorrelation"):
        parts.append(_autocorrelation_section(r, results))
    for lab in labels:
        parts.append(_model_section(r, results, lab, images))
    links = ", ".join(f"{html.escape(k)}: {r('settings/links/' + k, 'str')}" for k in s["links"]) or "defaults"
    trans = ", ".join(f"{html.escape(k)}: {r('settings/transforms/' + k, 'str')}" for k in s["transforms"]) or "none"
    parts.append(
        "<h2>Settings (to reproduce)</h2><table><tbody>"
        f'<tr><th>formula</th><td>{r("settings/formula", "str", tag="code")}</td></tr>'
        f'<tr><th>family / compared</th><td>{r("settings/family", "str")}'
        + "".join(f", {r(f'settings/compare/{i}', 'str')}" for i in range(len(s["compare"])))
        + "</td></tr>"
        f"<tr><th>links</th><td>{links}</td></tr><tr><th>response transforms</th><td>{trans}</td></tr>"
        f'<tr><th>simulations</th><td>{r("settings/n_sim", "int")} ({r("settings/simulate_re", "str")})</td></tr>'
        f'<tr><th>seed</th><td>{r("settings/seed", "str")}</td></tr>'
        f'<tr><th>workers</th><td>{r("settings/n_jobs", "str")} (the residuals do not depend on it)</td></tr>'
        f'<tr><th>glmmdiag</th><td>{r("glmmdiag_version", "str")} (Python {r("python_version", "str")})</td></tr>'
        f'<tr><th>created</th><td>{r("created", "str")}</td></tr>'
        f'<tr><th>fit + simulation time</th><td>{r("timings/fit_and_simulate_s", "g2")} s</td></tr>'
        "</tbody></table>")
    parts.append("<footer>Made by glmmdiag. Methods: Dunn &amp; Smyth (1996), randomized quantile residuals; "
                 "Hartig, DHARMa (R package); Brooks et al. (2017), glmmTMB; Bates et al. (2015), lme4. "
                 "Every number above is in results.json next to this file.</footer>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------ writing
# Every file is written under a temporary name in its directory and then renamed over the target
# (os.replace): a reader never sees half a report, and a symbolic link planted where a file goes
# is replaced by the file, never followed. figures/ itself must be a real directory.
def check_out_dir(out_dir) -> None:
    """Raise GlmmdiagError unless ``out_dir`` is a directory, or can be created as one, and its
    ``figures`` entry (if any) is a real directory rather than a symbolic link. An ``out_dir``
    that is itself a link to a directory is the caller's choice and is followed."""
    from glmmdiag.errors import GlmmdiagError

    out = Path(out_dir)
    if out.is_symlink() and not out.exists():
        raise GlmmdiagError(f"{out} is a broken symbolic link")
    if out.exists() and not out.is_dir():
        raise GlmmdiagError(f"{out} exists and is not a directory")
    existing = next((d for d in (out, *out.parents) if d.exists() or d.is_symlink()), Path("."))
    if not existing.is_dir():
        raise GlmmdiagError(f"cannot create {out}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise GlmmdiagError(f"cannot write to {existing}: permission denied")
    figdir = out / "figures"
    if figdir.is_symlink():
        raise GlmmdiagError(f"{figdir} is a symbolic link; glmmdiag does not write through links: "
                            f"remove it or choose another output directory")
    if figdir.exists() and not figdir.is_dir():
        raise GlmmdiagError(f"{figdir} exists and is not a directory")


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a new temporary file in the same directory (never an
    existing file or link), renamed over ``path``, which replaces a link there instead of following it."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _save(fig, base: Path, formats) -> tuple[dict, bytes]:
    """Render ``fig`` in each format to ``base.<format>``; returns ({format: path}, the PNG bytes)."""
    paths, png = {}, b""
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=110 if fmt == "png" else None)
        p = base.with_suffix("." + fmt)
        _write_file(p, buf.getvalue())
        paths[fmt] = p
        if fmt == "png":
            png = buf.getvalue()
    return paths, png


def _slugs(labels) -> dict:
    """A distinct file-name-safe stem per model label ("ZI nbinom2 (zi ~1)" -> "ZI_nbinom2_zi_1")."""
    import re

    out, used = {}, {"comparison"}
    for lab in labels:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(lab)).strip("_.") or "model"
        cand, i = stem, 2
        while cand in used:
            cand, i = f"{stem}_{i}", i + 1
        used.add(cand)
        out[lab] = cand
    return out


def write_report(check: Check, out_dir, *, formats=("png", "svg"), progress=None) -> dict:
    """Draw the figures and write results.json, report.html and figures/ into ``out_dir``.
    Returns {"html": path, "json": path, "figures": {name: {fmt: path}}}. Raises GlmmdiagError
    when ``out_dir`` cannot be used (see ``check_out_dir``); existing files are replaced, and
    symbolic links where the files go are replaced rather than written through."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from glmmdiag.plots import plot_comparison, plot_diagnostics

    progress = progress or _progress_none
    out = Path(out_dir)
    check_out_dir(out)
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    formats = tuple(dict.fromkeys(("png",) + tuple(formats)))  # PNG always (embedded in the HTML)
    table = check.table
    alpha = float(check.settings["alpha"])
    results = results_dict(check)
    figures, images = {}, {}
    slugs = _slugs(table.index)
    for label in table.index:
        progress(f"drawing the {label} diagnostics ...")
        t = table.tests[label]
        fig = plot_diagnostics(table.residuals[label], tests={k: t[k] for k in ("uniformity", "dispersion", "outliers")},
                               alpha=alpha)
        fig.suptitle(f"{label} ({table.loc[label, 'link']}): " + fig.get_suptitle(), fontsize="large",
                     color=fig._suptitle.get_color(), fontweight=fig._suptitle.get_fontweight())
        figures[label], png = _save(fig, figdir / f"diagnostics_{slugs[label]}", formats)
        images[label] = base64.b64encode(png).decode("ascii")
        plt.close(fig)
    if len(table.index) > 1:
        progress("drawing the family comparison ...")
        fig = plot_comparison(table, alpha=alpha)
        figures["comparison"], png = _save(fig, figdir / "comparison", formats)
        images["comparison"] = base64.b64encode(png).decode("ascii")
        plt.close(fig)
    results["figures"] = {name: {fmt: str(p.relative_to(out)) for fmt, p in paths.items()}
                          for name, paths in figures.items()}
    json_path = out / "results.json"
    _write_file(json_path, json.dumps(results, indent=1, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    html_path = out / "report.html"
    _write_file(html_path, render_html(results, images).encode("utf-8"))
    return {"html": html_path, "json": json_path, "figures": figures}
