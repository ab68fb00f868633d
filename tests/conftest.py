"""Shared test helpers: the reference data sets (with R's factor levels) and the R reference fits.

* ``read_dataset(name)`` reads ``tests/data/<name>.csv`` and turns every column that ``schema.json``
  declares as ``factor``/``ordered`` into a pandas ``Categorical`` whose categories are R's levels,
  in R's order (so treatment contrasts pick R's reference level).  Ordered factors are made plain
  (unordered) categoricals: the reference fits use them only as grouping variables or plain factors.
  For ``Contraception`` the ``ch`` column of the references' ``data_prep`` is added:
  ``ch = factor(livch != "0", labels = c("N", "Y"))``.
* ``read_reference(case)`` returns the parsed ``tests/reference/<case>.json``.

Tests use them through the fixtures ``load_data`` and ``load_reference`` (each returns the function);
test modules do not import conftest (a second conftest.py would make that import ambiguous).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

TESTS_DIR = Path(__file__).resolve().parent
DATA_DIR = TESTS_DIR / "data"
REFERENCE_DIR = TESTS_DIR / "reference"

FACTOR_TYPES = ("factor", "ordered")


@functools.lru_cache(maxsize=None)
def _schema() -> dict:
    with open(DATA_DIR / "schema.json", encoding="utf-8") as fh:
        return json.load(fh)


def _as_level_strings(col: pd.Series) -> pd.Series:
    """Labels as R wrote them: numbers read back by pandas become their text again (1 -> "1")."""
    if pd.api.types.is_float_dtype(col):
        # a factor whose labels all look numeric; R writes integers without ".0"
        as_int = col.dropna()
        if (as_int == np.round(as_int)).all():
            return col.map(lambda v: v if pd.isna(v) else str(int(v)))
    return col.map(lambda v: v if pd.isna(v) else str(v))


@functools.lru_cache(maxsize=None)
def _read_dataset_cached(name: str) -> pd.DataFrame:
    path = DATA_DIR / f"{name}.csv"
    if not path.exists():
        raise FileNotFoundError(f"no data set {name!r} in {DATA_DIR}")
    df = pd.read_csv(path)
    spec = _schema().get(name)
    if spec is None:
        raise KeyError(f"schema.json has no entry for data set {name!r}")
    for col, cspec in spec["columns"].items():
        if col not in df.columns:
            raise KeyError(f"schema.json names column {col!r}, missing from {name}.csv")
        if cspec.get("type") in FACTOR_TYPES:
            levels = [str(v) for v in cspec["levels"]]
            labels = _as_level_strings(df[col])
            unknown = set(labels.dropna().unique()) - set(levels)
            if unknown:
                raise ValueError(f"{name}.{col}: labels {sorted(unknown)[:5]} not among the schema levels")
            df[col] = pd.Categorical(labels, categories=levels, ordered=False)
    if name == "Contraception":
        # data_prep of the contra_ch* references:
        # dat$ch <- factor(dat$livch != '0', levels = c(FALSE, TRUE), labels = c('N','Y'))
        has_children = np.asarray(df["livch"].astype(str) != "0")
        df["ch"] = pd.Categorical(np.where(has_children, "Y", "N"), categories=["N", "Y"])
    return df


def read_dataset(name: str) -> pd.DataFrame:
    """A fresh copy of data set ``name`` (file stem, e.g. "sleepstudy", "Contraception")."""
    return _read_dataset_cached(name).copy()


@functools.lru_cache(maxsize=None)
def _read_reference_cached(case: str) -> str:
    path = REFERENCE_DIR / f"{case}.json"
    if not path.exists():
        raise FileNotFoundError(f"no reference fit {case!r} in {REFERENCE_DIR}")
    return path.read_text(encoding="utf-8")


def read_reference(case: str) -> dict:
    """The R reference fit ``case`` (JSON stem, e.g. "cbpp_glmer_nAGQ1") as a fresh dict."""
    return json.loads(_read_reference_cached(case))


def reference_dataset_name(ref: dict) -> str:
    """The data set stem a reference was fitted to ("shared/data/cbpp.csv" -> "cbpp")."""
    return Path(ref["data"]).stem


@pytest.fixture(scope="session")
def load_data():
    """``load_data(name)`` -> DataFrame with R's factor levels (see module docstring)."""
    return read_dataset


@pytest.fixture(scope="session")
def load_reference():
    """``load_reference(case)`` -> dict parsed from tests/reference/<case>.json."""
    return read_reference


def _check_laplace_gradient(fit, theta_scale=1.05, seed=1, rel_step=1e-5):
    """The exact Laplace gradient in (theta, beta, psi) at a point near ``fit``'s optimum equals
    central finite differences of the Laplace deviance (modes re-found at each point)."""
    from glmmdiag.fit.laplace import GLMMProblem

    prob = GLMMProblem(fit.design, fit.family)
    rng = np.random.default_rng(seed)
    theta = fit.theta * theta_scale
    beta = fit.fixef.to_numpy() + 0.02 * rng.normal(size=len(fit.fixef))
    psi = fit.psi + 0.05 * rng.normal(size=len(fit.psi))
    _, g = prob.deviance_and_gradient(beta, theta, psi=psi)
    x0 = np.r_[theta, beta, psi]
    nt, p = len(theta), len(beta)

    def f(x):
        prob.reset_modes()
        return prob.laplace_deviance(x[nt : nt + p], x[:nt], psi=x[nt + p :])

    steps = rel_step * np.maximum(1.0, np.abs(x0))
    fd = np.array([(f(x0 + s * e) - f(x0 - s * e)) / (2 * s) for s, e in zip(steps, np.eye(len(x0)))])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))


@pytest.fixture(scope="session")
def check_laplace_gradient():
    """``check_laplace_gradient(fit, theta_scale=1.05, seed=1)``: exact gradient vs finite differences."""
    return _check_laplace_gradient


def pytest_configure(config):
    # also declared in pyproject.toml; repeated so that the marker exists whatever the ini file
    config.addinivalue_line("markers", "slow: long-running fits (skipped by `make test`)")
