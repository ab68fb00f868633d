"""Issue 15: calibrated p-values by default where affordable (residual_tests, the report, the CLI).

At 300 rows the raw tests of a correct model are conservative (0-3% rejections at alpha = 0.05,
benchmarks/calibration.py); ``calibrated_tests`` fixes that with refits. ``residual_tests``,
``report.run_check`` and ``glmmdiag check`` now calibrate automatically when one timed refit says
``n_boot`` of them fit within ``refit_budget`` seconds, and say which p-values were used."""
import json
import math

import numpy as np
import pandas as pd
import pytest

import glmmdiag as gd
from glmmdiag.checks.battery import BATTERY, calibration_decision
from glmmdiag.errors import GlmmdiagError

B = 9  # small bootstraps keep the tests fast; the rule does not depend on B


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(15), 8)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.3 + 0.4 * x + rng.normal(0, 0.5, 15)[g]))
    d = pd.DataFrame({"y": y, "x": x, "g": pd.Categorical(g)})
    fit = gd.glmm("y ~ x + (1 | g)", d, family="poisson")
    return d, fit, gd.simulate_residuals(fit, 50, seed=3)


def test_within_the_budget_the_p_values_are_the_calibrated_ones(small):
    _, _, res = small
    t = gd.residual_tests(res, refit_budget=1e6, n_boot=B)
    assert t.p_values.startswith("calibrated (parametric bootstrap of 9 refits")
    assert t.calibration["calibrated"] and t.calibration["estimated_seconds"] > 0
    ref = gd.checks.calibrated_tests(res, B, BATTERY)  # the same seed: the same bootstrap
    for name, test in t.items():
        assert "[parametric-bootstrap calibrated]" in test.method
        assert test.p_value == ref[name].p_value
        assert test.estimate["uncalibrated p-value"] == gd.residual_tests(res, calibrate=False)[name].p_value
    assert "p-values: calibrated" in str(t) and t.to_dict()["p_values"] == t.p_values


def test_same_p_values_whatever_n_jobs(small):
    _, _, res = small
    a = gd.residual_tests(res, calibrate=True, n_boot=B, n_jobs=1)
    b = gd.residual_tests(res, calibrate=True, n_boot=B, n_jobs=2)
    c = gd.residual_tests(res, refit_budget=1e6, n_boot=B, n_jobs=1)  # timed first replicate reused
    for name in BATTERY:
        assert a[name].p_value == b[name].p_value == c[name].p_value


def test_over_the_budget_the_raw_p_values_and_why(small):
    _, _, res = small
    t = gd.residual_tests(res, refit_budget=1e-9, n_boot=B)
    raw = gd.residual_tests(res, calibrate=False)
    assert t.p_values.startswith("uncalibrated") and "more than the refit budget" in t.p_values
    assert raw.p_values == "uncalibrated (calibrate=False)"
    for name in BATTERY:
        assert t[name].p_value == raw[name].p_value
        assert "calibrated]" not in t[name].method


def test_residuals_that_cannot_be_calibrated():
    rng = np.random.default_rng(1)
    m = gd.from_simulations(rng.poisson(2, 40).astype(float), rng.poisson(2, (40, 30)).astype(float),
                            np.full(40, 2.0))
    res = gd.simulate_residuals(m, seed=1)
    assert "cannot be refitted" in gd.residual_tests(res).p_values
    with pytest.raises(GlmmdiagError, match="cannot be calibrated"):
        gd.residual_tests(res, calibrate=True)
    with pytest.raises(GlmmdiagError, match="calibrate must be"):
        calibration_decision(res, calibrate="sometimes")


def test_calibration_replays_the_residual_definition(small):
    """The bootstrap residuals are made as the observed ones (here DHARMa's definition)."""
    _, fit, _ = small
    res = gd.simulate_residuals(fit, 50, seed=3, pit="dharma")
    from glmmdiag.checks.calibration import _simulation_options

    assert _simulation_options(res)["pit"] == "dharma"
    t = gd.residual_tests(res, calibrate=True, n_boot=B)
    assert all(math.isfinite(x.p_value) for _, x in t.items())


def test_report_and_cli_say_which_p_values(small, tmp_path, capsys):
    from glmmdiag import cli, report

    d, _, _ = small
    check = report.run_check(d, "y ~ x + (1 | g)", "poisson", n_sim=50, seed=3, refit_budget=1e6, n_boot=B)
    label = check.table.index[0]
    assert check.calibration[label]["calibrated"]
    tests = check.table.tests[label]
    assert all("calibrated]" in tests[k].method for k in ("uniformity", "dispersion", "outliers", "quantiles"))
    assert check.table.loc[label, "ks_p"] == tests["uniformity"].p_value
    res = report.results_dict(check)
    assert res["models"][label]["p_values"].startswith("calibrated")
    assert res["settings"]["refit_budget"] == 1e6 and res["settings"]["n_boot"] == B
    assert "p-values:" in report.render_html(res)
    off = report.run_check(d, "y ~ x + (1 | g)", "poisson", n_sim=50, seed=3, calibrate=False)
    assert report.results_dict(off)["models"][label]["p_values"] == "uncalibrated (calibrate=False)"
    csv = tmp_path / "d.csv"
    d.to_csv(csv, index=False)
    rc = cli.main(["check", str(csv), "--formula", "y ~ x + (1 | g)", "--family", "poisson", "--n-sim", "50",
                   "--calibrate-boot", str(B), "--refit-budget", "1000000", "--out", str(tmp_path / "o"), "--quiet",
                   "--format", "png"])
    out = capsys.readouterr().out
    assert rc == 0 and "p-values: calibrated (parametric bootstrap of 9 refits" in out
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    assert results["models"]["poisson"]["p_values"].startswith("calibrated")
    rc = cli.main(["check", str(csv), "--formula", "y ~ x + (1 | g)", "--family", "poisson", "--n-sim", "50",
                   "--calibrate", "never", "--out", str(tmp_path / "o2"), "--quiet", "--format", "png"])
    assert rc == 0 and "p-values: uncalibrated (calibrate=False)" in capsys.readouterr().out


def _t(p, stat=1.0):
    from glmmdiag.results import TestResult

    return TestResult(method="m", statistic=stat, statistic_name="s", p_value=p, alternative="two-sided")


def test_the_verdict_reads_holm_adjusted_p_values():
    """Any of k tests at alpha flags a correct model up to 1 - (1 - alpha)^k of the time; Holm's
    adjustment over the verdict's tests keeps that at most alpha (by hand: p_(1) k < alpha)."""
    from glmmdiag.checks.pvalues import adjust_tests
    from glmmdiag.results import ResidualTests

    ok = ResidualTests(_t(0.03), _t(0.5, 1.1), _t(0.8))  # Holm: 0.09, 0.5 * 2 -> 1, 0.8 -> 1
    assert ok.verdict == "no problems detected"
    assert ok.adjusted()["uniformity"].p_value == pytest.approx(0.09)
    assert ok.adjusted()["uniformity"].estimate["unadjusted p-value"] == 0.03
    bad = ResidualTests(_t(0.01), _t(0.5, 1.1), _t(0.8))  # 0.03 < 0.05
    assert bad.verdict.startswith("non-uniform")
    # NaN p-values (undefined tests) are left out of the family; excluded names are kept as they are
    adj = adjust_tests({"a": _t(0.02), "b": _t(math.nan), "c": _t(0.04)}, "holm", exclude=("c",))
    assert adj["a"].p_value == 0.02 and math.isnan(adj["b"].p_value) and adj["c"].p_value == 0.04
