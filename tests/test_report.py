"""report.html and results.json: self-contained HTML whose every number is in results.json."""
import html
import json
import re
import shutil
import subprocess

import pytest

from glmmdiag import datasets, report

SPAN = re.compile(r'<(span|pre|code|strong) data-path="([^"]*)" data-fmt="([^"]*)">(.*?)</\1>', re.S)
# digits the report may show outside results.json: method citations and the interval (0, 1)
ALLOWED_DIGITS = ["(0, 1)", "lme4", "1996", "2015", "2017"]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    check = report.run_check(datasets.load("rust"), "severity ~ fungicide + (1 | block)", "beta",
                             compare=["gamma"], transforms={"gamma": 100}, links={"gamma": "log"},
                             n_sim=50, seed=3, simulate_re="unconditional", data_name="rust")
    paths = report.write_report(check, out)
    return out, paths, check


def _resolve(results, path):
    cur = results
    for part in path.split("/"):
        cur = cur[int(part)] if isinstance(cur, list) else cur[part]
    return cur


def test_files_written(written):
    out, paths, _ = written
    assert paths["html"].exists() and paths["json"].exists()
    for name in ("beta", "gamma", "comparison"):
        for fmt in ("png", "svg"):
            assert (out / "figures" / f"{name if name == 'comparison' else 'diagnostics_' + name}.{fmt}").exists()
    results = json.loads(paths["json"].read_text())
    assert set(results["figures"]) == {"beta", "gamma", "comparison"}


def test_every_number_in_the_report_is_in_results_json(written):
    _, paths, _ = written
    text = paths["html"].read_text()
    results = json.loads(paths["json"].read_text())
    spans = SPAN.findall(text)
    assert len(spans) > 100
    paths_seen = set()
    for _tag, path, kind, shown in spans:
        value = _resolve(results, html.unescape(path))
        assert html.unescape(shown) == report.fmt_value(value, kind), path
        paths_seen.add(path)
    # the headline numbers are among them
    for p in ("tests/beta/dispersion/statistic", "tests/gamma/dispersion/p_value", "settings/seed",
              "settings/n_sim", "glmmdiag_version", "comparison/1/delta_AIC", "models/beta/AIC"):
        assert p in paths_seen
    # nothing else shows a digit: remove the spans, the embedded images, style and tags
    rest = SPAN.sub(" ", text)
    rest = re.sub(r"<head>.*?</head>", " ", rest, flags=re.S)  # title (the formula) and style
    rest = re.sub(r'src="data:image/png;base64,[^"]*"', " ", rest)
    rest = re.sub(r"<[^>]+>", " ", rest)
    rest = html.unescape(rest)
    for ok in ALLOWED_DIGITS:
        rest = rest.replace(ok, " ")
    assert not re.search(r"\d", rest), re.findall(r".{30}\d.{30}", rest)[:5]


def test_plain_language_verdicts(written):
    _, paths, check = written
    results = json.loads(paths["json"].read_text())
    d = results["tests"]["beta"]["dispersion"]
    assert d["verdict"].startswith("no evidence of") == (d["p_value"] >= 0.05)
    text = paths["html"].read_text()
    shown = re.sub(r"<[^>]+>", "", text)
    ratio = report.fmt_value(d["statistic"], "g3")
    assert f"{d['verdict']} (ratio {ratio}, p = {report.fmt_value(d['p_value'], 'p')})" in html.unescape(shown)
    assert results["verdicts"]["gamma"] == check.table.loc["gamma", "verdict"]
    # continuous responses: no zero-inflation row
    assert "zero_inflation" not in results["tests"]["beta"]


def test_self_contained(written):
    _, paths, _ = written
    text = paths["html"].read_text()
    assert "<script" not in text and "<link" not in text
    assert not re.search(r"(src|href)=\"(?!data:)", text)
    assert "http://" not in text and "https://" not in text
    assert text.count('src="data:image/png;base64,') == 3


def test_results_json_is_strict_json(written):
    _, paths, _ = written
    raw = paths["json"].read_text()
    assert "NaN" not in raw and "Infinity" not in raw
    results = json.loads(raw)
    assert results["settings"]["seed"] == 3 and results["settings"]["n_sim"] == 50
    assert results["models"]["gamma"]["response"] == "100*severity"
    assert results["models"]["beta"]["fixed_effects"][0]["term"] == "(Intercept)"


def test_fmt_value():
    f = report.fmt_value
    assert f(None) == "NA"
    assert f(1.0814, "g3") == "1.08"
    assert f(0.6881, "p") == "0.69" and f(0.999, "p") == "1" and f(2e-7, "p") == "2.0e-07"
    assert f(48, "int") == "48" and f(-90.34361, "g6") == "-90.3436"
    assert f("beta", "str") == "beta"


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs the chromium browser (Debian package `chromium`)")
def test_report_opens_in_headless_chromium(written, tmp_path):
    """Load report.html in headless Chromium: the DOM renders and the console shows no error."""
    _, paths, _ = written
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--dump-dom", paths["html"].resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Residual diagnostics" in proc.stdout and "Family comparison" in proc.stdout
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not console, console


def test_model_specs_and_suggestions_keep_every_number_in_results_json(tmp_path):
    """Spec labels and remedies contain digits ('zi ~1', 'nbinom2'): they are spans too."""
    data = datasets.load("Salamanders")
    check = report.run_check(data, "count ~ mined + (1 | site)", "poisson", compare=["nbinom2; ziformula=~1"],
                             suggest=True, n_sim=30, seed=2, data_name="sal")
    paths = report.write_report(check, tmp_path / "o")
    text, results = paths["html"].read_text(), json.loads(paths["json"].read_text())
    assert results["models"]["ZI nbinom2 (zi ~1)"]["spec"] == "nbinom2; ziformula=~1"
    assert results["models"]["poisson"]["remedies"] and results["suggestions"]["models"]
    for _tag, path, kind, shown in SPAN.findall(text):
        assert html.unescape(shown) == report.fmt_value(_resolve(results, html.unescape(path)), kind), path
    rest = SPAN.sub(" ", text)
    rest = re.sub(r"<head>.*?</head>", " ", rest, flags=re.S)
    rest = re.sub(r'src="data:image/png;base64,[^"]*"', " ", rest)
    rest = html.unescape(re.sub(r"<[^>]+>", " ", rest))
    for ok in ALLOWED_DIGITS:
        rest = rest.replace(ok, " ")
    assert not re.search(r"\d", rest), re.findall(r".{30}\d.{30}", rest)[:5]
