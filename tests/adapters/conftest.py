"""Fixtures of the adapter tests: the real data sets the correct and misspecified models are fitted to."""
from __future__ import annotations

import pandas as pd
import pytest

from glmmdiag import datasets

from adapter_verdicts import DATA


@pytest.fixture(scope="session")
def grouseticks() -> pd.DataFrame:
    return datasets.load("grouseticks")


@pytest.fixture(scope="session")
def salamanders() -> pd.DataFrame:
    return datasets.load("Salamanders")


@pytest.fixture(scope="session")
def contraception() -> pd.DataFrame:
    d = datasets.load("Contraception")
    return d.assign(y=(d["use"] == "Y").astype(int))


@pytest.fixture(scope="session")
def cbpp() -> pd.DataFrame:
    d = datasets.load("cbpp")
    return d.assign(prop=d["incidence"] / d["size"])


@pytest.fixture(scope="session")
def sleepstudy() -> pd.DataFrame:
    return datasets.load("sleepstudy")


@pytest.fixture(scope="session")
def tweedie_sim() -> pd.DataFrame:
    return pd.read_csv(DATA / "tweedie_sim.csv")


@pytest.fixture(scope="session")
def gamma_sim() -> pd.DataFrame:
    """The positive responses of zigamma_sim.csv: Gamma (shape 3), log mu = 1 + 0.5 x + u_g."""
    d = pd.read_csv(DATA / "zigamma_sim.csv")
    return d[d["y"] > 0].reset_index(drop=True)
