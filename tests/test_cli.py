"""The glmmdiag command line end to end, through subprocess (and in-process through cli.main for the
cheap cases): good input writes the report; bad input exits 2 with exactly one line on stderr and no
traceback; an internal failure exits 1 with the traceback; files are never written through links."""
import json
import os
import re
import subprocess
import sys
import warnings

import pytest

from glmmdiag import datasets

ENV = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "glmmdiag", *args], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=300)


@pytest.fixture(scope="module")
def rust_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    path = d / "rust.csv"
    datasets.load("rust").to_csv(path, index=False)
    return path


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("glmmdiag ")
    r = run("--help")
    assert r.returncode == 0 and "examples:" in r.stdout and "glmmdiag demo" in r.stdout
    r = run("check", "--help")
    assert r.returncode == 0 and "--simulate-re" in r.stdout


def test_datasets_command():
    r = run("datasets")
    assert r.returncode == 0
    assert {"rust", "Contraception", "cbpp"} <= {ln.split()[0] for ln in r.stdout.splitlines()}


def test_check_writes_report(rust_csv, tmp_path):
    out = tmp_path / "out"
    r = run("check", str(rust_csv), "--formula", "severity ~ fungicide + (1 | block)", "--family", "beta",
            "--compare", "gamma", "--transform", "gamma=100", "--link", "gamma=log", "--n-sim", "50",
            "--seed", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # no progress when stderr is not a terminal
    assert (out / "report.html").exists() and (out / "figures" / "comparison.svg").exists()
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["n_sim"] == 50 and results["settings"]["seed"] == 2
    assert results["settings"]["links"] == {"gamma": "log"}
    assert set(results["models"]) == {"beta", "gamma"}
    assert "report:" in r.stdout and "beta:" in r.stdout


def test_demo_default_out_dir(tmp_path):
    r = run("demo", "--n-sim", "50", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = tmp_path / "glmmdiag-demo" / "report.html"
    assert report.exists() and str(report) in r.stdout
    results = json.loads((tmp_path / "glmmdiag-demo" / "results.json").read_text())
    assert results["settings"]["simulate_re"] == "unconditional"
    assert results["models"]["gamma"]["response"].startswith("severity_pct")


BAD = {
    "missing file": (["check", "nothere.csv", "--formula", "y ~ x", "--family", "beta"], "not found"),
    "bad formula": (["check", "{csv}", "--formula", "severity ~ fungicide + (1 | block", "--family", "beta"],
                    "parenthes"),
    "no tilde": (["check", "{csv}", "--formula", "severity", "--family", "beta"], "formula"),
    "unknown column": (["check", "{csv}", "--formula", "severity ~ nothere + (1 | block)", "--family", "beta"],
                       "nothere"),
    "out of support": (["check", "{csv}", "--formula", "severity_pct ~ fungicide + (1 | block)", "--family",
                        "beta"], "support"),
    "unknown family": (["check", "{csv}", "--formula", "severity ~ fungicide", "--family", "bogus"], "bogus"),
    "link of a family not fitted": (["check", "{csv}", "--formula", "severity ~ fungicide", "--family", "beta",
                                     "--link", "gamma=log"], "gamma"),
}
ERROR_LINE = re.compile(r"^glmmdiag( \w+)?: error: ")


def assert_one_line(err: str, needle: str = "") -> str:
    """stderr is exactly one 'glmmdiag[ cmd]: error: ...' line containing needle, and no traceback."""
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert ERROR_LINE.match(lines[0]) and needle in lines[0], lines[0]
    assert "Traceback" not in err
    return lines[0]


def with_defaults(args, out):
    """args plus --out and a small --n-sim unless the case sets them."""
    return (args + (["--out", str(out)] if "--out" not in args else [])
            + (["--n-sim", "20"] if "--n-sim" not in args else []))


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line(case, rust_csv, tmp_path):
    args, needle = BAD[case]
    args = with_defaults([a.replace("{csv}", str(rust_csv)) for a in args], tmp_path / "o")
    r = run(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert_one_line(r.stderr, needle)
    assert not (tmp_path / "o" / "report.html").exists()


def test_out_is_an_existing_file_exits_2(rust_csv, tmp_path):
    f = tmp_path / "taken"
    f.write_text("not a directory")
    r = run("check", str(rust_csv), "--formula", "severity ~ fungicide + (1 | block)", "--family", "beta",
            "--n-sim", "20", "--out", str(f))
    assert r.returncode == 2, r.stderr
    assert_one_line(r.stderr, "not a directory")
    assert f.read_text() == "not a directory"


F = ["--formula", "severity ~ fungicide + (1 | block)"]
OPTIONS = {  # in-process: each is refused before anything is fitted
    "alpha 7": (["--family", "beta", "--alpha", "7"], "--alpha"),
    "n-sim 0": (["--family", "beta", "--n-sim", "0"], "--n-sim"),
    "alpha 0": (["--family", "beta", "--alpha", "0"], "--alpha"),
    "alpha nan": (["--family", "beta", "--alpha", "nan"], "--alpha"),
    "alpha text": (["--family", "beta", "--alpha", "five"], "--alpha"),
    "empty out": (["--family", "beta", "--out", ""], "--out"),
    "n-sim negative": (["--family", "beta", "--n-sim", "-3"], "--n-sim"),
    "n-sim 1": (["--family", "beta", "--n-sim", "1"], "--n-sim"),
    "n-sim not an integer": (["--family", "beta", "--n-sim", "2.5"], "--n-sim"),
    "jobs 0": (["--family", "beta", "--jobs", "0"], "--jobs"),
    "seed negative": (["--family", "beta", "--seed", "-1"], "--seed"),
    "seed not an integer": (["--family", "beta", "--seed", "1.5"], "--seed"),
    "unknown family": (["--family", "lognormal"], "lognormal"),
    "unknown compared family": (["--family", "beta", "--compare", "weibull"], "weibull"),
    "family compared twice": (["--family", "beta", "--compare", "gamma", "--compare", "Gamma"], "twice"),
    "transform of a family not compared": (["--family", "beta", "--transform", "gamma=100"], "gamma"),
    "link of a family not compared": (["--family", "beta", "--link", "poisson=log"], "poisson"),
    "link the family lacks": (["--family", "beta", "--compare", "gamma", "--link", "gamma=logit"], "logit"),
    "unknown link": (["--family", "beta", "--link", "bogus"], "bogus"),
    "link given twice": (["--family", "beta", "--link", "logit", "--link", "beta=probit"], "twice"),
    "transform without FAMILY=": (["--family", "beta", "--compare", "gamma", "--transform", "100"], "FAMILY"),
    "transform scale 0": (["--family", "beta", "--compare", "gamma", "--transform", "gamma=0"], "non-zero"),
    "transform scale inf": (["--family", "beta", "--compare", "gamma", "--transform", "gamma=inf"], "finite"),
    "transform column missing": (["--family", "beta", "--compare", "gamma", "--transform", "gamma=nothere"],
                                 "nothere"),
    "bad format": (["--family", "beta", "--format", "gif"], "--format"),
    "time column missing": (["--family", "beta", "--time", "nothere"], "--time nothere"),
    "series without time": (["--family", "beta", "--series", "block"], "--series needs --time"),
    "coordinates not numeric": (["--family", "beta", "--coords", "fungicide", "severity"], "must be numeric"),
    "negative autocorrelation boot": (["--family", "beta", "--time", "block", "--autocorrelation-boot", "-1"],
                                      "autocorrelation-boot"),
}


@pytest.mark.parametrize("case", list(OPTIONS))
def test_bad_options_exit_2_with_one_line(case, rust_csv, tmp_path, capsys, monkeypatch):
    from glmmdiag import cli, report

    def not_reached(*a, **k):
        raise AssertionError("bad options must be refused before fitting")

    monkeypatch.setattr(report, "run_check", not_reached)
    args, needle = OPTIONS[case]
    rc = cli.main(with_defaults(["check", str(rust_csv), *F, *args], tmp_path / "o") + ["--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert_one_line(err, needle)
    assert not (tmp_path / "o").exists()


def test_no_command_exits_2_with_one_line(capsys):
    from glmmdiag import cli

    assert cli.main([]) == 2
    out = capsys.readouterr()
    assert "usage:" in out.out
    assert_one_line(out.err, "command")


def test_usage_errors_exit_2():
    r = run("check")  # argparse: missing arguments, one line that points to --help
    assert r.returncode == 2
    assert "glmmdiag check --help" in assert_one_line(r.stderr, "required")
    r = run()
    assert r.returncode == 2
    assert_one_line(r.stderr)


def test_unexpected_failure_exits_1(monkeypatch, capsys, rust_csv, tmp_path):
    from glmmdiag import cli, report

    def boom(*a, **k):
        raise RuntimeError("internal")

    monkeypatch.setattr(report, "write_report", boom)
    rc = cli.main(["check", str(rust_csv), "--formula", "severity ~ fungicide + (1 | block)", "--family", "beta",
                   "--n-sim", "20", "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "unexpected failure" in err


def _raise(exc):
    def fn(*a, **k):
        raise exc
    return fn


def _pandas_key_error(*a, **k):
    import pandas as pd

    return pd.DataFrame({"a": [1]})["not a column"]  # a KeyError raised inside pandas: a bug here


INTERNAL = {  # raised where the CLI calls the package: bugs, whatever their class
    "TypeError": _raise(TypeError("unsupported operand type(s)")),
    "AttributeError": _raise(AttributeError("'NoneType' object has no attribute 'fixef'")),
    "IndexError": _raise(IndexError("index 3 is out of bounds")),
    "RuntimeError": _raise(RuntimeError("internal")),
    "plain ValueError outside the validating modules": _raise(ValueError("operands could not be broadcast")),
    "KeyError from pandas": _pandas_key_error,
}


@pytest.mark.parametrize("case", list(INTERNAL))
def test_internal_failure_exits_1_with_traceback(case, monkeypatch, capsys, rust_csv, tmp_path):
    from glmmdiag import cli, report

    monkeypatch.setattr(report, "run_check", INTERNAL[case])
    rc = cli.main(["check", str(rust_csv), *F, "--family", "beta", "--n-sim", "20", "--out", str(tmp_path / "o"),
                   "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "Traceback" in err and "unexpected failure" in err


@pytest.mark.parametrize("exc", ["GlmmdiagError", "FormulaError", "ColumnError", "FitError"])
def test_package_errors_exit_2_and_drop_earlier_warnings(exc, monkeypatch, capsys, rust_csv, tmp_path):
    import glmmdiag.errors
    from glmmdiag import cli, report

    def fail(*a, **k):
        warnings.warn("a warning before the failure", glmmdiag.errors.GlmmdiagWarning)
        raise getattr(glmmdiag.errors, exc)(f"the {exc} message\nwith a second line")

    monkeypatch.setattr(report, "run_check", fail)
    rc = cli.main(["check", str(rust_csv), *F, "--family", "beta", "--n-sim", "20", "--out", str(tmp_path / "o"),
                   "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert assert_one_line(err) == f"glmmdiag: error: the {exc} message with a second line"


def test_warnings_printed_one_line_each_on_success(monkeypatch, capsys):
    from glmmdiag import cli

    def warn_twice(args):
        for _ in range(2):
            warnings.warn("constant\nresiduals", UserWarning)
        return 0

    monkeypatch.setattr(cli, "_datasets", warn_twice)
    assert cli.main(["datasets"]) == 0
    assert capsys.readouterr().err == "glmmdiag: warning: UserWarning: constant residuals\n"


def test_classification_is_by_class():
    """The package's own classes are bad input; the same builtin classes raised by numpy or by
    anything else are bugs (exit 1 with the traceback)."""
    import numpy as np

    from glmmdiag import cli
    from glmmdiag.fit.families import get_family

    with pytest.raises(ValueError) as e:
        get_family("no such family")
    assert cli.is_bad_input(e.value)
    with pytest.raises(ValueError) as e:
        np.ones(3) @ np.ones(4)
    assert not cli.is_bad_input(e.value)
    assert not cli.is_bad_input(ValueError("never raised"))


# ---------------------------------------------------------------- no writing through planted links
CHECK = ["--formula", "severity ~ fungicide + (1 | block)", "--family", "beta", "--n-sim", "20", "--seed", "3"]


def main_ok(*args) -> bool:
    """cli.main in this process (no interpreter start-up) succeeded."""
    from glmmdiag import cli

    return cli.main([*args, "--quiet"]) == 0


@pytest.fixture
def sentinel(tmp_path):
    """A file outside the output folder that planted links point to."""
    p = tmp_path / "elsewhere" / "sentinel.txt"
    p.parent.mkdir()
    p.write_text("KEEP")
    return p


def test_planted_file_links_are_replaced_not_followed(rust_csv, tmp_path, sentinel):
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    planted = [out / "report.html", out / "results.json", out / "figures" / "diagnostics_beta.png",
               out / "figures" / "diagnostics_beta.svg"]
    for p in planted:
        p.symlink_to(sentinel)
    assert main_ok("check", str(rust_csv), *CHECK, "--out", str(out))
    assert sentinel.read_text() == "KEEP"
    for p in planted:
        assert not p.is_symlink() and p.stat().st_size > 100, p
    assert json.loads((out / "results.json").read_text())["settings"]["seed"] == 3
    assert not [p.name for p in out.rglob(".*.tmp")]  # no temporary files left behind


def test_planted_figures_dir_link_is_refused(rust_csv, tmp_path, sentinel):
    out = tmp_path / "out"
    out.mkdir()
    (out / "figures").symlink_to(sentinel.parent, target_is_directory=True)
    r = run("check", str(rust_csv), *CHECK, "--out", str(out))
    assert r.returncode == 2, r.stderr
    assert_one_line(r.stderr, "symbolic link")
    assert sorted(p.name for p in sentinel.parent.iterdir()) == ["sentinel.txt"]
    assert sentinel.read_text() == "KEEP"


def test_write_report_refuses_a_figures_link_from_python(tmp_path, sentinel):
    from glmmdiag import report
    from glmmdiag.errors import GlmmdiagError

    out = tmp_path / "out"
    out.mkdir()
    (out / "figures").symlink_to(sentinel.parent, target_is_directory=True)
    with pytest.raises(GlmmdiagError, match="symbolic link"):
        report.write_report(None, out)  # refused before anything is drawn


def test_out_given_as_a_link_to_a_directory_is_followed(rust_csv, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    assert main_ok("check", str(rust_csv), *CHECK, "--out", str(link))
    assert (real / "report.html").is_file() and (real / "figures" / "diagnostics_beta.png").is_file()


@pytest.mark.parametrize("kind", ["dangling link", "file in the path"])
def test_unusable_out_exits_2(kind, rust_csv, tmp_path, capsys):
    from glmmdiag import cli

    if kind == "dangling link":
        out = tmp_path / "gone"
        out.symlink_to(tmp_path / "nowhere", target_is_directory=True)
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "sub"
    rc = cli.main(["check", str(rust_csv), *CHECK, "--out", str(out), "--quiet"])
    assert rc == 2
    assert_one_line(capsys.readouterr().err, "--out")


# ---------------------------------------------------------------- --compare specs and --suggest
@pytest.fixture(scope="module")
def sal_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("sal") / "sal.csv"
    datasets.load("Salamanders").to_csv(path, index=False)
    return path


SAL = ["--formula", "count ~ spp + mined + (1 | site)", "--n-sim", "60", "--seed", "1", "--quiet"]


def test_compare_specs_and_suggest(sal_csv, tmp_path, capsys):
    from glmmdiag import cli

    out = tmp_path / "o"
    rc = cli.main(["check", str(sal_csv), *SAL, "--family", "poisson", "--compare", "nbinom2",
                   "--compare", "nbinom2; ziformula=~1", "--compare", "truncated_nbinom2; ziformula=~1; label=hurdle",
                   "--suggest", "--out", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    lines = cap.out.splitlines()
    assert any(ln.startswith("poisson: ") and "overdispersion" in ln for ln in lines)
    assert any(ln.startswith("  remedy: overdispersion: try 'nbinom2'") for ln in lines)
    assert "ZI nbinom2 (zi ~1): " in cap.out and "hurdle: " in cap.out
    assert "suggest: remedies for poisson" in cap.out
    assert any("[nbinom1]: passes" in ln for ln in lines)  # nbinom2 is compared already, nbinom1 suggested
    results = json.loads((out / "results.json").read_text())
    assert [r["model"] for r in results["comparison"]] == ["poisson", "nbinom2", "ZI nbinom2 (zi ~1)", "hurdle"]
    assert results["settings"]["specs"]["hurdle"] == "truncated_nbinom2; ziformula=~1"
    sug = results["suggestions"]
    assert sug["model"] == "poisson" and "nbinom2" not in [m["spec"] for m in sug["models"]]
    assert all(m["delta_AIC"] < 0 for m in sug["models"] if m["spec"] in ("nbinom1", "poisson; olre=yes"))
    text = (out / "report.html").read_text()
    assert "Model comparison" in text and "Suggested remedies for" in text and "hurdle" in text
    assert (out / "figures" / "diagnostics_ZI_nbinom2_zi_1.png").exists()


def test_main_model_ziformula_option(sal_csv, tmp_path, capsys):
    from glmmdiag import cli

    rc = cli.main(["check", str(sal_csv), *SAL, "--family", "truncated_nbinom2", "--ziformula", "~ spp + mined",
                   "--out", str(tmp_path / "o")])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert cap.out.splitlines()[2].startswith("hurdle nbinom2 (zi ~ spp + mined): ")


SPEC_BAD = {
    "unknown key": (["--compare", "nbinom2; zi=~1"], "unknown key"),
    "unsafe formula": (["--compare", "nbinom2; ziformula=~ __import__('os')"], "--compare"),
    "not one-sided": (["--compare", "nbinom2; dispformula=x"], "one-sided"),
    "bad link in spec": (["--compare", "nbinom2; link=logit"], "logit"),
    "spec twice": (["--compare", "nbinom2; ziformula=~1", "--compare", "nbinom2;ziformula=~1"], "twice"),
    "bad ziformula": (["--ziformula", "1"], "--ziformula"),
    "unsafe dispformula": (["--dispformula", "~ np.save(x)"], "--dispformula"),
}


@pytest.mark.parametrize("case", list(SPEC_BAD))
def test_bad_compare_specs_exit_2(case, sal_csv, tmp_path, capsys, monkeypatch):
    from glmmdiag import cli, report

    monkeypatch.setattr(report, "run_check", lambda *a, **k: (_ for _ in ()).throw(AssertionError("fitted")))
    args, needle = SPEC_BAD[case]
    rc = cli.main(["check", str(sal_csv), *SAL, "--family", "poisson", *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert_one_line(err, needle)


# ------------------------------------------------------------------ the autocorrelation remedy loop
def test_check_time_series_suggest_fits_ar1_and_the_temporal_test_then_passes(tmp_path, capsys):
    """AR(1) series fitted with (1 | group): the verdict names the temporal autocorrelation and the
    ar1 remedy; --suggest fits it and the pooled Durbin-Watson test then passes."""
    from glmmdiag import cli

    path = tmp_path / "ar1.csv"
    datasets.load("ar1_sim").to_csv(path, index=False)
    rc = cli.main(["check", str(path), "--formula", "y ~ x + (1 | group)", "--family", "gaussian", "--time", "t",
                   "--series", "group", "--suggest", "--n-sim", "200", "--out", str(tmp_path / "o"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    verdict = next(line for line in out.splitlines() if line.startswith("gaussian: "))
    assert "temporal autocorrelation (DW" in verdict
    assert "remedy: temporal autocorrelation: try 'y ~ x + (1 | group) + ar1(t + 0 | group)'" in out
    line = next(line for line in out.splitlines() if line.strip().startswith("y ~ x + (1 | group) + ar1(t + 0 | group):"))
    assert ": passes: no evidence of temporal autocorrelation" in line and "unconditional simulation, rotated" in line
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["autocorrelation"]["gaussian"]["temporal"]["significant"] is True
    (row,) = res["structured_suggestions"]
    assert row["term"] == "ar1(t + 0 | group)" and row["passes"] is True and row["delta_AIC"] < 0
    html_text = (tmp_path / "o" / "report.html").read_text()
    assert "<h2>Autocorrelation</h2>" in html_text and "ar1(t + 0 | group)" in html_text


def test_check_coords_suggest_fits_exp_and_morans_test_then_passes(tmp_path, capsys):
    from glmmdiag import cli

    path = tmp_path / "sp.csv"
    datasets.load("spatial_sim").to_csv(path, index=False)
    rc = cli.main(["check", str(path), "--formula", "count ~ z", "--family", "poisson", "--coords", "xc", "yc",
                   "--suggest", "--n-sim", "250", "--out", str(tmp_path / "o"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "spatial autocorrelation (Moran's I" in next(l for l in out.splitlines() if l.startswith("poisson: "))
    line = next(l for l in out.splitlines() if l.strip().startswith("count ~ z + exp(numFactor(xc, yc) + 0 | 1):"))
    assert "no evidence of spatial autocorrelation" in line
