"""``make wheel-check``: what a user gets from the built distributions, checked outside the repo.

1. ``python -m build`` makes the wheel and the sdist (in an isolated build environment, from
   pyproject.toml alone) into a fresh temporary directory; their version is ``glmmdiag.__version__``.
2. The sdist holds the tests (with their data and R references), CHANGELOG.md, CITATION.cff, the
   licence files and every file the README links to or shows (the gallery figures); the wheel
   holds the package data and ``py.typed`` and no tests.
3. A fresh virtual environment outside the repository gets the wheel (and nothing from the repo);
   there the README's quick start runs as a script and ``glmmdiag demo`` writes its report.
4. The unpacked sdist runs a quick subset of its own tests against the installed wheel.

Every step prints its wall time; exit status 1 on the first failure. The temporary directory is
removed at the end unless ``--keep`` is given.
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# a quick subset of the suite for the sdist: data sets, a pinned R reference fit, residuals, tests
SDIST_TESTS = ["tests/test_packaging.py", "tests/test_datasets.py", "tests/test_results_python.py",
               "tests/fit/test_reference_fits.py",
               "-k", "not test_reference_fits or sleepstudy"]
SDIST_MUST_HAVE = ["tests/conftest.py", "tests/reference", "tests/data", "CHANGELOG.md", "CITATION.cff",
                   "LICENSE", "DATA_NOTICE.md", "README.md", "pyproject.toml", "conftest.py"]


def step(title: str):
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def done(t0: float) -> None:
    print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)


def run(cmd, **kw) -> subprocess.CompletedProcess:
    print("   $", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def fail(msg: str) -> None:
    print(f"wheel-check: FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def source_version() -> str:
    """``__version__`` of src/glmmdiag/__init__.py, read without importing the package."""
    tree = ast.parse((ROOT / "src" / "glmmdiag" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    fail("src/glmmdiag/__init__.py has no __version__")


def readme_links(text: str) -> list[str]:
    """Relative targets of Markdown links and images in the README (no URLs, no #anchors)."""
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return sorted({t.split("#")[0] for t in targets if not re.match(r"^[a-z]+:|^#", t)} - {""})


def quick_start(text: str) -> str:
    """The first ```python block after the '## Quick start' heading of the README."""
    part = text.split("## Quick start", 1)
    if len(part) != 2:
        fail("README.md has no '## Quick start' section")
    m = re.search(r"```python\n(.*?)```", part[1], re.S)
    if not m:
        fail("README.md's quick start has no python block")
    return m.group(1)


def check_sdist(sdist: Path, version: str, readme: str) -> None:
    with tarfile.open(sdist) as tf:
        names = tf.getnames()
    prefix = f"glmmdiag-{version}/"
    rel = {n[len(prefix):] for n in names if n.startswith(prefix)}
    missing = [p for p in SDIST_MUST_HAVE if not any(r == p or r.startswith(p + "/") for r in rel)]
    missing += [f"{p} (linked from README.md)" for p in readme_links(readme) if p.rstrip("/") not in rel
                and not any(r.startswith(p.rstrip("/") + "/") for r in rel)]
    if missing:
        fail(f"the sdist lacks {missing}")
    stray = [r for r in rel if r.startswith((".venv", "docs/_build", "docs/auto_examples")) or "__pycache__" in r]
    if stray:
        fail(f"the sdist contains build output or environments: {stray[:5]}")
    print(f"   sdist: {len(rel)} files; tests, references and the README's {len(readme_links(readme))} linked files present")


def check_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    need = ["glmmdiag/__init__.py", "glmmdiag/py.typed", "glmmdiag/data/schema.json", "glmmdiag/data/rust.csv"]
    missing = [n for n in need if n not in names]
    if missing:
        fail(f"the wheel lacks {missing}")
    if any(n.startswith("tests/") for n in names):
        fail("the wheel contains the tests")
    print(f"   wheel: {len(names)} files, package data and py.typed present")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="interpreter with 'build' installed")
    ap.add_argument("--venv-python", default=os.environ.get("PYTHON", "python3"),
                    help="interpreter that creates the fresh virtual environment")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    t_all = time.perf_counter()
    version = source_version()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    tmp = Path(tempfile.mkdtemp(prefix="glmmdiag-wheel-check-"))
    if ROOT in tmp.parents:
        fail(f"the temporary directory {tmp} is inside the repository")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(MPLBACKEND="Agg", PIP_DISABLE_PIP_VERSION_CHECK="1")
    try:
        t0 = step(f"build the wheel and the sdist (version {version}) into {tmp / 'dist'}")
        run([args.python, "-m", "build", "--outdir", tmp / "dist", ROOT], env=env, stdout=subprocess.DEVNULL)
        wheels = list((tmp / "dist").glob(f"glmmdiag-{version}-*.whl"))
        sdists = list((tmp / "dist").glob(f"glmmdiag-{version}.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            fail(f"expected one wheel and one sdist of version {version}; got {sorted(os.listdir(tmp / 'dist'))}")
        check_wheel(wheels[0])
        check_sdist(sdists[0], version, readme)
        done(t0)

        t0 = step("install the wheel in a fresh virtual environment outside the repository")
        venv = tmp / "venv"
        run([args.venv_python, "-m", "venv", venv], env=env)
        py = venv / "bin" / "python"
        # --no-compile: byte-compiling every module of numpy, scipy, pandas and matplotlib at install
        # time costs minutes on a busy machine; Python compiles what is imported when it is imported
        run([py, "-m", "pip", "install", "--quiet", "--no-compile", wheels[0]], env=env)
        work = tmp / "run"
        work.mkdir()
        where = subprocess.run([py, "-c", "import glmmdiag; print(glmmdiag.__file__, glmmdiag.__version__)"],
                               cwd=work, env=env, check=True, capture_output=True, text=True).stdout.split()
        if not Path(where[0]).resolve().is_relative_to(venv.resolve()) or where[1] != version:
            fail(f"glmmdiag imported from {where[0]} (version {where[1]}), not from the fresh environment")
        print(f"   glmmdiag {where[1]} from {where[0]}")
        done(t0)

        t0 = step("the README's quick start, run as a script in the fresh environment")
        (work / "quickstart.py").write_text(quick_start(readme), encoding="utf-8")
        run([py, "quickstart.py"], cwd=work, env=env, stdout=subprocess.DEVNULL)
        done(t0)

        t0 = step("glmmdiag demo in the fresh environment")
        run([venv / "bin" / "glmmdiag", "demo", "--quiet", "--out", work / "demo"], cwd=work, env=env,
            stdout=subprocess.DEVNULL)
        for f in ("report.html", "results.json"):
            if not (work / "demo" / f).is_file():
                fail(f"glmmdiag demo wrote no {f}")
        done(t0)

        t0 = step("the sdist's own tests (a quick subset) against the installed wheel")
        with tarfile.open(sdists[0]) as tf:
            tf.extractall(tmp / "sdist", filter="data")
        src = tmp / "sdist" / f"glmmdiag-{version}"
        # pytest only: the quick start and the demo above ran with nothing but the runtime
        # dependencies, and the subset needs no other test dependency
        run([py, "-m", "pip", "install", "--quiet", "--no-compile", "pytest>=7.4"], env=env)
        run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *SDIST_TESTS], cwd=src,
            env={**env, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
        done(t0)
    except subprocess.CalledProcessError as e:
        fail(f"{' '.join(map(str, e.cmd))} exited with {e.returncode}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nwheel-check passed ({time.perf_counter() - t_all:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
