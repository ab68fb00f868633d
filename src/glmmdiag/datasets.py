"""Small real data sets shipped with glmmdiag, with R's factor level order.

``load(name)`` returns a pandas DataFrame whose factor columns are Categorical with the level
order R uses (this decides treatment-contrast reference levels). ``list()`` names what is
available. Sources (see each package's help page; redistributed unchanged with attribution):

* ``Contraception`` -- mlmRev: 1988 Bangladesh Fertility Survey (Huq & Cleland 1990).
* ``cbpp`` -- lme4: contagious bovine pleuropneumonia (Lesnoff et al. 2004).
* ``sleepstudy`` -- lme4: reaction times under sleep deprivation (Belenky et al. 2003).
* ``grouseticks`` -- lme4: ticks on red grouse chicks (Elston et al. 2001).
* ``Salamanders`` -- glmmTMB: salamander counts (Price et al. 2016).
* ``VerbAgg`` -- lme4: verbal aggression item responses (De Boeck & Wilson 2004).
* ``Penicillin`` -- lme4: penicillin assay (Davies & Goldsmith 1972).
* ``orobanche`` -- Crowder (1978), Appl. Statist. 27:34-37 (seed germination).
* ``rust`` -- simulated yellow-rust RCBD trial (12 fungicides x 4 blocks, Beta severity).
"""
from __future__ import annotations

import json
from importlib import resources

import pandas as pd

__all__ = ["load", "list_datasets"]


def _schema() -> dict:
    return json.loads(resources.files("glmmdiag").joinpath("data/schema.json").read_text())


def list_datasets() -> list[str]:
    """Names of the shipped data sets."""
    files = resources.files("glmmdiag").joinpath("data")
    return sorted(p.name[:-4] for p in files.iterdir() if p.name.endswith(".csv"))


def load(name: str) -> pd.DataFrame:
    """Load a shipped data set with R's factor level order."""
    names = list_datasets()
    match = {n.lower(): n for n in names}.get(name.lower())
    if match is None:
        raise KeyError(f"no data set {name!r}; available: {', '.join(names)}")
    with resources.files("glmmdiag").joinpath(f"data/{match}.csv").open() as fh:
        df = pd.read_csv(fh)
    spec = _schema().get(match, {}).get("columns", {})
    for col, s in spec.items():
        if isinstance(s, dict) and s.get("levels") and col in df:
            df[col] = pd.Categorical(df[col].astype(str), categories=[str(v) for v in s["levels"]])
    return df
