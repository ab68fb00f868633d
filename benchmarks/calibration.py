"""Calibration study of the residual tests (``make calibrate``).

Data sets are simulated from known GLMMs (30 groups x 10 observations, one covariate x ~ N(0, 1),
random intercept SD 0.5), the model is fitted with glmmdiag, residuals are simulated (n_sim = 250,
both simulation modes), and every test is run at alpha = 0.05. Printed: the rejection rate of each
test with its 95% binomial (Clopper-Pearson) interval.

Scenarios (``name: data-generating model -> fitted model``):

* ``poisson``: Poisson log-link GLMM -> the same (H0 true)
* ``poisson_olre``: + observation-level N(0, 0.5^2) on the linear predictor -> Poisson (overdispersed)
* ``poisson_zi``: + 30% structural zeros -> Poisson (zero-inflated)
* ``bernoulli``: logit GLMM with 0/1 response -> the same (H0 true)
* ``beta``: beta (phi = 10) logit GLMM -> the same (H0 true)
* ``gamma``: Gamma (shape 2) log GLMM -> the same (H0 true)
* ``gamma_as_beta``: Gamma data rescaled into (0, 1) by y / (max y + 1) -> beta (misspecified)
* ``beta_as_gamma``: beta data -> Gamma log link (misspecified)
* ``zip``: the ``poisson_zi`` data (30% structural zeros) -> zero-inflated Poisson, ``ziformula="~1"``
  (H0 true; ``poisson_zi`` is the same data fitted as Poisson: power of the zero-inflation test)
* ``gauss_het``: gaussian LMM with residual SD exp(-0.5 + 0.5 x) -> gaussian with constant SD
  (heteroscedastic: power of the quantile test)
* ``gauss_het_disp``: the same data -> gaussian with ``dispformula="~ x"`` (H0 true)

A scenario whose family the fitter rejects is skipped with a message. Columns ``cal_*`` are the
p-values of ``checks.calibrated_tests`` (parametric bootstrap with ``--calibrate`` B refits), rejections
when p <= alpha. Their ties with the bootstrap values are broken at random, so under H0 they are
Uniform(0, 1) for any B (``checks.randomised_rank_pvalue``). Columns ``calcons_*`` are the same
bootstrap's untie-broken p-values (1 + #{at least as extreme}) / (B + 1) (``plot_data
["p_value_conservative"]``), printed in a separate table for comparison: conservative for discrete
pivots such as the outlier test's p-value; on the grid {1/(B+1), ..., 1}, two-sided 2 min(rank) /
(B + 1), so they need B + 1 a multiple of 40 (39, 79) to have size 0.05. Targets (issue 4): type I
error within [0.03, 0.07] for every test under a correct model; power >= 0.9 of the dispersion test
against ``poisson_olre``; (issue 13) power >= 0.9 of the zero-inflation test against ``poisson_zi``,
type I error of every calibrated test in [0.03, 0.07] for ``zip`` and ``gauss_het_disp``, power of
the quantile test against ``gauss_het``. Columns ``auto_*`` (``--auto``; issue 15) are the p-values
``residual_tests`` and ``glmmdiag check`` report with their defaults: calibrated by 100 refits when
one timed refit says they fit in the refit budget (``checks.battery``), raw otherwise; printed with
the share of data sets calibrated and the seconds per data set. Target: type I error in [0.03, 0.07].

Usage::

    python benchmarks/calibration.py                   # full: 200 replicates, all scenarios, both modes
    python benchmarks/calibration.py --reps 50 --scenarios poisson bernoulli
    python benchmarks/calibration.py --refit 100       # add the refit-based dispersion test (slow)
    python benchmarks/calibration.py --calibrate 39    # add parametric-bootstrap calibrated p-values (cal_*)
    python benchmarks/calibration.py --reps 400 --calibrate 39 --n-jobs 2 \
        --scenarios zip gauss_het_disp poisson_zi gauss_het   # the submodel scenarios (issue 13)
    python benchmarks/calibration.py --reps 25 --first-rep 200 --calibrate 39 --scenarios zip --out a.csv
    python benchmarks/calibration.py --summarise a.csv b.csv   # pool runs in pieces (replicates by index)
    python benchmarks/calibration.py --reps 200 --scenarios poisson --modes conditional --auto   # issue 15
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
from scipy import stats

import glmmdiag as gd
import glmmdiag.checks

N_GROUPS, N_PER = 30, 10
SD_RE = 0.5
ALPHA = 0.05

SCENARIOS = {
    # name: (generator, fitted family, link, which hypothesis is true)
    "poisson": ("poisson", "poisson", None, "H0"),
    "poisson_olre": ("poisson_olre", "poisson", None, "overdispersion"),
    "poisson_zi": ("poisson_zi", "poisson", None, "zero-inflation"),
    "bernoulli": ("bernoulli", "binomial", None, "H0"),
    "beta": ("beta", "beta", None, "H0"),
    "gamma": ("gamma", "gamma", "log", "H0"),
    "gamma_as_beta": ("gamma_as_beta", "beta", None, "wrong family"),
    "beta_as_gamma": ("beta", "gamma", "log", "wrong family"),
    # submodels (issue 13); a fifth element: further keyword arguments of glmm()
    "zip": ("poisson_zi", "poisson", None, "H0", {"ziformula": "~1"}),
    "gauss_het": ("gauss_het", "gaussian", None, "heteroscedasticity"),
    "gauss_het_disp": ("gauss_het", "gaussian", None, "H0", {"dispformula": "~ x"}),
}


def fit_scenario(scenario: str, df: pd.DataFrame):
    """The scenario's model fitted to ``df`` (``y ~ x + (1 | g)``, its family, link and submodels)."""
    _, family, link, _, *extra = SCENARIOS[scenario]
    return gd.glmm("y ~ x + (1 | g)", df, family=family, link=link, **(extra[0] if extra else {}))


def simulate_data(kind: str, rng: np.random.Generator) -> pd.DataFrame:
    g = np.repeat(np.arange(N_GROUPS), N_PER)
    n = g.size
    x = rng.standard_normal(n)
    u = rng.normal(0.0, SD_RE, N_GROUPS)[g]
    if kind.startswith("poisson"):
        eta = 0.5 + 0.4 * x + u
        if kind == "poisson_olre":
            eta = eta + rng.normal(0.0, 0.5, n)
        y = rng.poisson(np.exp(eta)).astype(float)
        if kind == "poisson_zi":
            y[rng.random(n) < 0.3] = 0.0
    elif kind == "bernoulli":
        p = 1.0 / (1.0 + np.exp(-(0.2 + 0.6 * x + u)))
        y = (rng.random(n) < p).astype(float)
    elif kind == "beta":
        p = 1.0 / (1.0 + np.exp(-(0.2 + 0.5 * x + u)))
        phi = 10.0
        y = np.clip(rng.beta(p * phi, (1 - p) * phi), 1e-6, 1 - 1e-6)
    elif kind == "gauss_het":
        y = 1.0 + 0.5 * x + u + rng.normal(0.0, 1.0, n) * np.exp(-0.5 + 0.5 * x)
    elif kind in ("gamma", "gamma_as_beta"):
        mu = np.exp(0.5 + 0.4 * x + u)
        y = rng.gamma(2.0, mu / 2.0)
        if kind == "gamma_as_beta":
            y = y / (y.max() + 1.0)
    else:
        raise ValueError(kind)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})


TESTS = ["uniformity", "dispersion", "dispersion_pearson", "outliers", "zero_inflation", "quantiles"]
CAL_TESTS = ["uniformity", "dispersion", "outliers", "zero_inflation", "quantiles"]
AUTO_TESTS = [f"auto_{t}" for t in CAL_TESTS]  # the defaults of residual_tests / glmmdiag check (issue 15)
ALL_TESTS = TESTS + [f"cal_{t}" for t in CAL_TESTS] + AUTO_TESTS
CONS_TESTS = [f"calcons_{t}" for t in CAL_TESTS]  # the untie-broken calibrated p-values, for comparison


def auto_pvalues(res, seed) -> dict:
    """The p-values ``residual_tests`` and ``glmmdiag check`` report with their defaults (issue 15):
    calibrated by 100 refits when one timed refit says they fit in the refit budget, raw otherwise;
    with the decision and the wall / CPU seconds the tests took (decision and calibration)."""
    from glmmdiag.checks.battery import calibration_decision

    t0, c0 = time.perf_counter(), time.process_time()
    d = calibration_decision(res, "auto", tests=CAL_TESTS, seed=seed)
    if d.calibrated:
        tests = gd.checks.calibrated_tests(res, d.n_boot, CAL_TESTS, seed=seed, _first=d.first)
    else:
        tests = {"uniformity": gd.uniformity_test(res), "dispersion": gd.dispersion_test(res),
                 "outliers": gd.outlier_test(res), "zero_inflation": gd.zero_inflation_test(res),
                 "quantiles": gd.quantile_test(res, curves=False)}
    out = {f"auto_{k}": tests[k].p_value for k in CAL_TESTS}
    out.update({"auto_calibrated": d.calibrated, "auto_estimated_s": d.estimated_seconds,
                "auto_wall_s": time.perf_counter() - t0, "auto_cpu_s": time.process_time() - c0})
    return out


def one_replicate(scenario: str, rep: int, seed: int, modes, n_sim: int, n_refit: int, n_cal: int = 0,
                  cal_modes=("conditional",), auto: bool = False) -> list[dict]:
    kind = SCENARIOS[scenario][0]
    ss = np.random.SeedSequence([seed, rep, sum(map(ord, scenario))])
    rng = np.random.default_rng(ss)
    df = simulate_data(kind, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = fit_scenario(scenario, df)
        except Exception as exc:  # a failed fit is recorded, not fatal
            return [{"scenario": scenario, "rep": rep, "mode": m, "error": f"{type(exc).__name__}: {exc}"} for m in modes]
        rows = []
        for mode in modes:
            res = gd.simulate_residuals(fit, n_sim, seed=rng.integers(2**63), simulate_re=mode)
            row = {"scenario": scenario, "rep": rep, "mode": mode, "error": None}
            row["uniformity"] = gd.uniformity_test(res).p_value
            row["dispersion"] = gd.dispersion_test(res).p_value
            row["dispersion_pearson"] = gd.dispersion_test(res, kind="pearson", alternative="greater").p_value
            row["outliers"] = gd.outlier_test(res).p_value
            row["zero_inflation"] = gd.zero_inflation_test(res).p_value
            row["quantiles"] = gd.quantile_test(res, curves=False).p_value
            if n_cal and mode in cal_modes:
                cal = gd.checks.calibrated_tests(res, n_cal, CAL_TESTS, seed=rng.integers(2**63))
                for t in CAL_TESTS:
                    row[f"cal_{t}"] = cal[t].p_value
                    row[f"calcons_{t}"] = cal[t].plot_data.get("p_value_conservative", np.nan)
            if auto and mode in cal_modes:
                row.update(auto_pvalues(res, int(rng.integers(2**63))))
            if not res.integer_response:  # no zeros to count in continuous data: not a test (raw p = 1 always,
                # calibrated p a pure tie-breaking draw)
                for t in ("zero_inflation", "cal_zero_inflation", "calcons_zero_inflation", "auto_zero_inflation"):
                    if t in row:
                        row[t] = np.nan
            rows.append(row)
        if n_refit:
            res = gd.simulate_residuals(fit, n_refit, seed=rng.integers(2**63), simulate_re="unconditional", refit=True)
            rows.append({"scenario": scenario, "rep": rep, "mode": "refit", "error": None,
                         "dispersion": gd.dispersion_test(res).p_value})
    return rows


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else stats.beta.ppf(a, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(1 - a, k + 1, n - k)
    return float(lo), float(hi)


def run_study(scenarios, n_rep=200, modes=("conditional", "unconditional"), n_sim=250, seed=2024, n_jobs=-1,
              n_refit=0, refit_scenarios=("poisson", "poisson_olre"), n_cal=0, cal_modes=("conditional",),
              first_rep=0, auto=False, out_csv=None) -> pd.DataFrame:
    """All replicates of all scenarios: one row per (scenario, replicate, mode) with each test's p-value.

    Replicate r's data and seeds depend only on (seed, r, scenario), so replicates first_rep ..
    first_rep + n_rep - 1 of several runs can be pooled (``--first-rep``, ``--summarise``)."""
    jobs = []
    for sc in scenarios:
        nr = n_refit if sc in refit_scenarios else 0
        jobs += [delayed(one_replicate)(sc, r, seed, tuple(modes), n_sim, nr, n_cal, tuple(cal_modes), auto)
                 for r in range(first_rep, first_rep + n_rep)]
    if out_csv is None:
        out = Parallel(n_jobs=n_jobs, batch_size=4)(jobs)
        return pd.DataFrame([row for rows in out for row in rows])
    rows = []  # appended to out_csv as replicates finish: a study stopped early can be summarised
    for part in Parallel(n_jobs=n_jobs, batch_size=1, return_as="generator_unordered")(jobs):
        rows.extend(part)
        pd.DataFrame(part).to_csv(out_csv, mode="a", index=False,
                                  header=not os.path.exists(out_csv) or os.path.getsize(out_csv) == 0)
    return pd.DataFrame(rows)


def summarise(raw: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    rows = []
    ok = raw[raw["error"].isna()]
    for (sc, mode), d in ok.groupby(["scenario", "mode"], sort=False):
        for t in ALL_TESTS + CONS_TESTS:
            if t not in d or d[t].isna().all():
                continue
            p = d[t].dropna().to_numpy()
            # bootstrap-calibrated p-values: "reject when p <= alpha" (the untie-broken ones live on the grid
            # {1/(B+1), ..., 1}, where this is the exact-size Monte-Carlo rule; the randomised ones are
            # continuous, where <= and < agree); raw p-values: p < alpha
            k = int(np.sum(p <= alpha + 1e-12)) if t.startswith("cal") else int(np.sum(p < alpha))
            n = p.size
            lo, hi = clopper_pearson(k, n)
            rows.append({"scenario": sc, "truth": SCENARIOS[sc][3], "mode": mode, "test": t, "n": n,
                         "rejection_rate": k / n, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def available_scenarios(names) -> list[str]:
    """Scenarios whose family the fitter accepts (a probe fit on one simulated data set)."""
    ok = []
    for sc in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit_scenario(sc, simulate_data(SCENARIOS[sc][0], np.random.default_rng(0)))
            ok.append(sc)
        except Exception as exc:
            print(f"skipping {sc}: the fitter rejects its model ({type(exc).__name__}: {exc})", file=sys.stderr)
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--n-sim", type=int, default=250)
    ap.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    ap.add_argument("--modes", nargs="*", default=["conditional", "unconditional"])
    ap.add_argument("--refit", type=int, default=0, help="refits per replicate for the refit dispersion test (0: off)")
    ap.add_argument("--calibrate", type=int, default=0,
                    help="bootstrap refits per replicate for calibrated_tests (cal_* columns; 0: off)")
    ap.add_argument("--cal-modes", nargs="*", default=["conditional"])
    ap.add_argument("--auto", action="store_true",
                    help="add the default p-values of residual_tests / glmmdiag check (auto_* columns: calibrated "
                         "when the refit budget allows it) and their run time per data set (in --cal-modes)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--n-jobs", type=int, default=-1)
    ap.add_argument("--out", default=None, help="append the per-replicate p-values to this CSV as replicates finish")
    ap.add_argument("--first-rep", type=int, default=0,
                    help="index of the first replicate (run a long study in pieces, each with --out)")
    ap.add_argument("--summarise", nargs="+", default=None, metavar="CSV",
                    help="run nothing: pool the per-replicate CSVs of earlier runs (--out) and print their tables")
    a = ap.parse_args(argv)
    if a.summarise:
        raw = pd.concat([pd.read_csv(f) for f in a.summarise], ignore_index=True)
        dup = raw.duplicated(["scenario", "rep", "mode"])
        if dup.any():
            print(f"dropping {int(dup.sum())} duplicated (scenario, replicate, mode) rows", file=sys.stderr)
            raw = raw[~dup]
        raw["error"] = raw["error"].where(raw["error"].notna(), None)
        return report(raw, None, a.n_sim)
    if a.calibrate and (a.calibrate + 1) % 40:
        print(f"note: --calibrate {a.calibrate}: B + 1 is not a multiple of 40; the calibrated p-values (cal_*, "
              f"ties broken at random) still have size {ALPHA}, the untie-broken ones (calcons_*) cannot",
              file=sys.stderr)
    scen = available_scenarios(a.scenarios)
    t0 = time.perf_counter()
    raw = run_study(scen, a.reps, a.modes, a.n_sim, a.seed, a.n_jobs, a.refit, n_cal=a.calibrate,
                    cal_modes=a.cal_modes, first_rep=a.first_rep, auto=a.auto, out_csv=a.out)
    el = time.perf_counter() - t0
    return report(raw, el, a.n_sim)


def report(raw: pd.DataFrame, elapsed, n_sim: int) -> pd.DataFrame:
    """Print the rejection-rate tables of a study's per-replicate p-values; returns the summary."""
    nerr = int(raw["error"].notna().sum())
    summ = summarise(raw)
    pd.set_option("display.width", 200)
    reps = raw.groupby("scenario")["rep"].nunique()
    reps_txt = f"{reps.iloc[0]}" if reps.nunique() == 1 else ", ".join(f"{k}: {v}" for k, v in reps.items())
    el_txt = f"{elapsed:.0f} s" if elapsed is not None else "pooled from CSV"
    print(f"calibration: {reps_txt} replicates x {reps.size} scenarios, n_sim = {n_sim}, alpha = {ALPHA}, "
          f"{N_GROUPS} groups x {N_PER} obs; {el_txt}; failed fits: {nerr}")
    wide = summ.assign(cell=lambda d: d.apply(lambda r: f"{r.rejection_rate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]", axis=1))
    main_tab = wide[~wide["test"].isin(CONS_TESTS)]
    print("rejection rate at alpha = 0.05 [95% Clopper-Pearson interval]; cal_*: parametric-bootstrap calibrated")
    print(main_tab.pivot_table(index=["scenario", "truth", "test"], columns="mode", values="cell", aggfunc="first",
                               sort=False).to_string())
    cons = wide[wide["test"].isin(CONS_TESTS)]
    if len(cons):
        print("\ncalibrated p-values without random tie-breaking, (1 + #{at least as extreme}) / (B + 1), same bootstrap:")
        print(cons.pivot_table(index=["scenario", "truth", "test"], columns="mode", values="cell", aggfunc="first",
                               sort=False).to_string())
    # the whole distribution: under H0 the calibrated p-values (ties broken at random) are Uniform(0, 1)
    ks_rows = []
    for (sc, mode), d in raw[raw["error"].isna()].groupby(["scenario", "mode"], sort=False):
        if SCENARIOS[sc][3] != "H0":
            continue
        for t in CAL_TESTS:
            p = d[f"cal_{t}"].dropna().to_numpy() if f"cal_{t}" in d else np.array([])
            if p.size:
                ks_rows.append({"scenario": sc, "mode": mode, "test": f"cal_{t}", "n": p.size,
                                "mean_p": p.mean(), "P(p<=0.1)": np.mean(p <= 0.1),
                                "KS_p_uniform": stats.kstest(p, "uniform").pvalue})
    if ks_rows:
        print("\ncalibrated p-values under H0 against Uniform(0, 1) (mean 0.5, P(p <= 0.1) = 0.1):")
        print(pd.DataFrame(ks_rows).round(3).to_string(index=False))
    if "auto_calibrated" in raw:
        au = raw[raw["error"].isna() & raw["auto_calibrated"].notna()]
        print("\ndefault p-values (auto_*): share calibrated within the refit budget and seconds per data set "
              "(timing + calibration):")
        print(au.groupby(["scenario", "mode"]).agg(
            calibrated=("auto_calibrated", "mean"), estimated_s=("auto_estimated_s", "mean"),
            wall_s=("auto_wall_s", "mean"), cpu_s=("auto_cpu_s", "mean")).round(3).to_string())
    h0 = summ[(summ["truth"] == "H0") & ~summ["test"].isin(CONS_TESTS)]
    bad = h0[(h0["rejection_rate"] < 0.03) | (h0["rejection_rate"] > 0.07)]
    print("\ntype I error outside [0.03, 0.07]:" if len(bad) else "\nall type I error rates within [0.03, 0.07]")
    if len(bad):
        print(bad[["scenario", "mode", "test", "rejection_rate", "ci_low", "ci_high"]].to_string(index=False))
    pw = summ[(summ["scenario"] == "poisson_olre") & summ["test"].isin(["dispersion", "cal_dispersion"])]
    if len(pw):
        print("\npower of the dispersion test vs observation-level overdispersion (sigma = 0.5), target >= 0.9:")
        print(pw[["mode", "test", "rejection_rate", "ci_low", "ci_high"]].to_string(index=False))
    for sc, tests, what in (("poisson_zi", ("zero_inflation", "cal_zero_inflation"),
                             "the zero-inflation test vs 30% structural zeros fitted as Poisson"),
                            ("gauss_het", ("quantiles", "cal_quantiles"),
                             "the quantile test vs residual SD exp(-0.5 + 0.5 x) fitted with constant SD")):
        pw = summ[(summ["scenario"] == sc) & summ["test"].isin(tests)]
        if len(pw):
            print(f"\npower of {what}, target >= 0.9:")
            print(pw[["mode", "test", "rejection_rate", "ci_low", "ci_high"]].to_string(index=False))
    return summ


# ====================================================================== temporal scenario (issue 14)
# AR(1) series: 30 series x 10 times (n = 300) and 60 x 20 (n = 1200); y = 1 + 0.5 x + a_st + e,
# a_st a stationary AR(1) within series (rho = 0.7, SD 0.8), e ~ N(0, 0.5^2). Fitted two ways:
#   temporal_ri:  y ~ x + (1 | g)                 (autocorrelation not modelled: power)
#   temporal_ar1: y ~ x + ar1(times + 0 | g)      (the remedy; H0 true)
# with simulate_residuals' defaults (ar1: unconditional + estimated rotation; (1 | g): conditional),
# and the pooled within-series Durbin-Watson test, raw (Imhof) and calibrated (n_boot refits).
# Targets (issue 14): power of the temporal test without ar1 >= 0.9; type I error with ar1 in
# [0.03, 0.07] for the calibrated test.
#
#     python benchmarks/calibration.py temporal --reps 200 --calibrate 39 --sizes 30x10
#     python benchmarks/calibration.py temporal --reps 200 --calibrate 0 --sizes 60x20

TEMPORAL_FORMULAS = {"temporal_ri": "y ~ x + (1 | g)", "temporal_ar1": "y ~ x + ar1(times + 0 | g)"}
TEMPORAL_TRUTH = {"temporal_ri": "autocorrelation", "temporal_ar1": "H0"}


def simulate_temporal_data(rng: np.random.Generator, n_series: int, n_times: int, rho: float = 0.7,
                           sd: float = 0.8, sd_e: float = 0.5) -> pd.DataFrame:
    """AR(1) series (stationary start) plus a covariate and independent noise (see above)."""
    g = np.repeat(np.arange(n_series), n_times)
    t = np.tile(np.arange(1, n_times + 1), n_series)
    x = rng.standard_normal(g.size)
    a = np.empty((n_series, n_times))
    a[:, 0] = rng.normal(0.0, sd, n_series)
    for k in range(1, n_times):
        a[:, k] = rho * a[:, k - 1] + rng.normal(0.0, sd * np.sqrt(1 - rho**2), n_series)
    y = 1.0 + 0.5 * x + a.ravel() + rng.normal(0.0, sd_e, g.size)
    return pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g), "times": pd.Categorical(t), "t": t})


def one_temporal_replicate(rep: int, seed: int, size: tuple[int, int], n_sim: int, n_cal: int) -> list[dict]:
    ss = np.random.SeedSequence([seed, rep, size[0], size[1], 14])
    rng = np.random.default_rng(ss)
    df = simulate_temporal_data(rng, *size)
    rows = []
    for sc, formula in TEMPORAL_FORMULAS.items():
        row = {"scenario": sc, "size": f"{size[0]}x{size[1]}", "rep": rep, "error": None}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fit = gd.glmm(formula, df)
                res = gd.simulate_residuals(fit, n_sim, seed=rng.integers(2**63))
                row["mode"] = res.simulate_re + (f"+rotation" if res.rotation else "")
                row["temporal"] = gd.temporal_autocorrelation_test(res, "t", group="g", data=df).p_value
                row["uniformity"] = gd.uniformity_test(res).p_value
                row["dispersion"] = gd.dispersion_test(res).p_value
                row["outliers"] = gd.outlier_test(res).p_value
                if n_cal and sc == "temporal_ar1":  # as glmmdiag check: calibrate models with a structured term
                    row["cal_temporal"] = gd.temporal_autocorrelation_test(
                        res, "t", group="g", data=df, n_boot=n_cal, seed=rng.integers(2**63)).p_value
            except Exception as exc:  # a failed fit is recorded, not fatal
                row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


def run_temporal_study(n_rep: int, sizes, n_sim: int = 250, seed: int = 2024, n_jobs: int = -1,
                       n_cal: int = 0, out: str | None = None) -> pd.DataFrame:
    """Every replicate; with ``out`` the rows are appended to that CSV as replicates finish (a study
    stopped early can be summarised with ``--summarise out``)."""
    jobs = [delayed(one_temporal_replicate)(r, seed, size, n_sim, n_cal) for size in sizes for r in range(n_rep)]
    rows = []
    for part in Parallel(n_jobs=n_jobs, batch_size=1, return_as="generator_unordered")(jobs):
        rows.extend(part)
        if out:
            pd.DataFrame(part).to_csv(out, mode="a", header=not os.path.exists(out) or os.path.getsize(out) == 0,
                                      index=False)
    return pd.DataFrame(rows)


def summarise_temporal(raw: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    rows = []
    ok = raw[raw["error"].isna()]
    for (sc, size), d in ok.groupby(["scenario", "size"], sort=False):
        for t in ("temporal", "cal_temporal", "uniformity", "dispersion", "outliers"):
            if t not in d or d[t].isna().all():
                continue
            p = d[t].dropna().to_numpy()
            k = int(np.sum(p <= alpha + 1e-12)) if t.startswith("cal_") else int(np.sum(p < alpha))
            lo, hi = clopper_pearson(k, p.size)
            rows.append({"scenario": sc, "size": size, "truth": TEMPORAL_TRUTH[sc], "mode": d["mode"].iloc[0],
                         "test": t, "n": p.size, "rejection_rate": k / p.size, "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows)


def main_temporal(argv=None):
    ap = argparse.ArgumentParser(description="temporal scenario: AR(1) data fitted without and with ar1()")
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--n-sim", type=int, default=250)
    ap.add_argument("--sizes", nargs="*", default=["30x10", "60x20"], help="series x times")
    ap.add_argument("--calibrate", type=int, default=39, help="bootstrap refits for cal_temporal (0: off)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--n-jobs", type=int, default=-1)
    ap.add_argument("--out", default=None, help="append the per-replicate p-values to this CSV as they come")
    ap.add_argument("--summarise", default=None, metavar="CSV", help="only summarise a (partial) CSV of a run")
    a = ap.parse_args(argv)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in a.sizes]
    t0 = time.perf_counter()
    if a.summarise:
        raw = pd.read_csv(a.summarise)
        raw["error"] = raw["error"].where(raw["error"].notna(), None)
    else:
        raw = run_temporal_study(a.reps, sizes, a.n_sim, a.seed, a.n_jobs, a.calibrate, a.out)
    el = time.perf_counter() - t0
    summ = summarise_temporal(raw)
    pd.set_option("display.width", 200)
    print(f"temporal calibration: {a.reps} replicates per size, sizes {a.sizes}, n_sim = {a.n_sim}, "
          f"n_boot = {a.calibrate}, alpha = {ALPHA}; {el:.0f} s; failed fits: {int(raw['error'].notna().sum())}")
    print(summ.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return summ


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "temporal":
        main_temporal(sys.argv[2:])
    else:
        main()
