"""The glmmdiag command line end to end, through subprocess: good input writes the report, bad input
exits 2 with one line on stderr and no traceback."""
import json
import os
import subprocess
import sys

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


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line(case, rust_csv, tmp_path):
    args, needle = BAD[case]
    args = [a.replace("{csv}", str(rust_csv)) for a in args] + ["--out", str(tmp_path / "o"), "--n-sim", "20"]
    r = run(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("glmmdiag: error: ") and needle in lines[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "report.html").exists()


def test_usage_errors_exit_2():
    r = run("check")  # argparse: missing arguments
    assert r.returncode == 2 and "usage:" in r.stderr
    r = run()
    assert r.returncode == 2


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
