"""Small real data sets shipped with glmmdiag, with R's factor level order.

``load(name)`` returns a pandas DataFrame whose factor columns are Categorical with the level
order R uses (this decides treatment-contrast reference levels). ``list()`` (also
``list_datasets()``) names what is available and ``info(name)`` gives a data set's size, source
and citation. The files are package data, read with ``importlib.resources``. Sources (see each
package's help page; redistributed unchanged with attribution):

* ``Contraception`` -- R package mlmRev: 1988 Bangladesh Fertility Survey, 1934 women in 60
  districts. Huq, N. M. & Cleland, J. (1990), *Bangladesh Fertility Survey 1989 (Main Report)*,
  National Institute of Population Research and Training, Dhaka.
* ``cbpp`` -- R package lme4: contagious bovine pleuropneumonia in 15 Ethiopian zebu herds over four
  periods. Lesnoff, M. et al. (2004), Within-herd spread of contagious bovine pleuropneumonia in
  Ethiopian highlands, *Preventive Veterinary Medicine* 64:27-40.
* ``sleepstudy`` -- R package lme4: reaction times of 18 subjects under sleep deprivation.
  Belenky, G. et al. (2003), Patterns of performance degradation and restoration during sleep
  restriction and subsequent recovery, *Journal of Sleep Research* 12:1-12.
* ``grouseticks`` -- R package lme4: ticks on red grouse chicks by brood, location and year.
  Elston, D. A. et al. (2001), Analysis of aggregation, a worked example: numbers of ticks on red
  grouse chicks, *Parasitology* 122:563-569.
* ``Salamanders`` -- R package glmmTMB: salamander counts in Appalachian streams affected by
  mountaintop-removal coal mining. Price, S. J. et al. (2016), Effects of mountaintop removal
  mining and valley filling on the occupancy and abundance of stream salamanders, *Journal of
  Applied Ecology* 53:459-468.
* ``VerbAgg`` -- R package lme4: verbal aggression item responses, 316 people x 24 items.
  De Boeck, P. & Wilson, M. (eds.) (2004), *Explanatory Item Response Models*, Springer.
* ``Penicillin`` -- R package lme4: penicillin assay, 6 samples x 24 plates. Davies, O. L. &
  Goldsmith, P. L. (eds.) (1972), *Statistical Methods in Research and Production*, 4th ed.,
  Oliver and Boyd, Table 6.6.
* ``orobanche`` -- seed germination of *Orobanche aegyptiaca* on bean and cucumber extracts, 21
  plates (BUGS "Seeds"; agridat::crowder.seeds). Crowder, M. J. (1978), Beta-binomial anova for
  proportions, *Applied Statistics* 27:34-37.
* ``rust`` -- yellow-rust severity (proportion of leaf area) in a simulated randomised complete
  block trial: 12 fungicides x 4 blocks, Beta GLMM (logit) truth with phi = 25 and block SD 0.2;
  ``severity_pct`` = 100 x severity. Made for glmmdiag's Beta-vs-Gamma example (the reference fits
  and DHARMa results are in tests/reference); cite glmmdiag.
"""
from __future__ import annotations

import json
from importlib import resources

import pandas as pd

from glmmdiag.errors import ColumnError

__all__ = ["load", "list_datasets", "list", "info"]

_LIST = list  # the builtin, before ``list`` is rebound to list_datasets at the end of the module

# name -> (one-line description, citation); kept in step with the module docstring
_INFO = {
    "Contraception": ("1988 Bangladesh Fertility Survey: contraception use of 1934 women in 60 districts (mlmRev)",
                      "Huq & Cleland (1990), Bangladesh Fertility Survey 1989, NIPORT, Dhaka"),
    "cbpp": ("contagious bovine pleuropneumonia: new cases per herd and period (lme4)",
             "Lesnoff et al. (2004), Preventive Veterinary Medicine 64:27-40"),
    "sleepstudy": ("reaction times of 18 subjects under sleep deprivation (lme4)",
                   "Belenky et al. (2003), Journal of Sleep Research 12:1-12"),
    "grouseticks": ("ticks on red grouse chicks by brood, location and year (lme4)",
                    "Elston et al. (2001), Parasitology 122:563-569"),
    "Salamanders": ("salamander counts in streams affected by mountaintop-removal mining (glmmTMB)",
                    "Price et al. (2016), Journal of Applied Ecology 53:459-468"),
    "VerbAgg": ("verbal aggression item responses, 316 people x 24 items (lme4)",
                "De Boeck & Wilson (2004), Explanatory Item Response Models, Springer"),
    "Penicillin": ("penicillin assay: inhibition zone diameters, 6 samples x 24 plates (lme4)",
                   "Davies & Goldsmith (1972), Statistical Methods in Research and Production, Table 6.6"),
    "orobanche": ("Orobanche seed germination on bean/cucumber extracts, 21 plates (BUGS 'Seeds')",
                  "Crowder (1978), Applied Statistics 27:34-37"),
    "rust": ("yellow-rust severity, simulated RCBD trial: 12 fungicides x 4 blocks (Beta truth)",
             "simulated for glmmdiag (tests/reference); cite glmmdiag"),
}


def _schema() -> dict:
    return json.loads(resources.files("glmmdiag").joinpath("data/schema.json").read_text())


def list_datasets() -> _LIST[str]:
    """Names of the shipped data sets (also ``glmmdiag.datasets.list()``)."""
    files = resources.files("glmmdiag").joinpath("data")
    return sorted(p.name[:-4] for p in files.iterdir() if p.name.endswith(".csv"))


def _match(name: str) -> str:
    names = list_datasets()
    match = {n.lower(): n for n in names}.get(str(name).lower())
    if match is None:
        raise ColumnError(f"no data set {name!r}; available: {', '.join(names)}")
    return match


def info(name: str) -> dict:
    """Name, rows, columns, description, source and citation of a shipped data set."""
    match = _match(name)
    spec = _schema().get(match, {})
    desc, citation = _INFO.get(match, ("", ""))
    return {"name": match, "rows": spec.get("rows"), "columns": _LIST(spec.get("columns", {})),
            "description": desc, "source": spec.get("source", ""), "citation": citation,
            "note": spec.get("note", "")}


def load(name: str) -> pd.DataFrame:
    """Load a shipped data set (name case-insensitive) with R's factor level order.

    Factor columns are pandas Categoricals with R's levels (so the first level is R's reference
    level). Sources and citations: the module docstring, or ``info(name)``.

    Examples
    --------
    >>> from glmmdiag import datasets
    >>> sal = datasets.load("Salamanders")
    >>> sal.shape
    (644, 9)
    >>> sal["mined"].cat.categories.tolist()   # R's level order
    ['yes', 'no']
    """
    match = _match(name)
    with resources.files("glmmdiag").joinpath(f"data/{match}.csv").open() as fh:
        df = pd.read_csv(fh)
    spec = _schema().get(match, {}).get("columns", {})
    for col, s in spec.items():
        if isinstance(s, dict) and s.get("levels") and col in df:
            df[col] = pd.Categorical(df[col].astype(str), categories=[str(v) for v in s["levels"]])
    return df


list = list_datasets  # noqa: A001  ``datasets.list()`` as in the docs; the builtin stays ``_LIST`` here
