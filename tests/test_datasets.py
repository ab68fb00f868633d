"""Shipped data sets: every one loads, with R's level order, a citation and the documented size."""
import pandas as pd
import pytest

from glmmdiag import datasets

EXPECTED = {"Contraception", "cbpp", "sleepstudy", "grouseticks", "Salamanders", "orobanche", "rust", "VerbAgg"}


def test_list_names_the_issue_data_sets():
    names = datasets.list()
    assert names == datasets.list_datasets()
    assert EXPECTED <= set(names)


@pytest.mark.parametrize("name", sorted(EXPECTED) + ["Penicillin"])
def test_load_and_info(name):
    df = datasets.load(name)
    assert isinstance(df, pd.DataFrame) and len(df) > 0
    meta = datasets.info(name)
    assert meta["name"] == name
    assert meta["rows"] == len(df)
    assert set(meta["columns"]) == set(df.columns)
    assert meta["source"] and meta["citation"] and meta["description"]
    assert name in datasets.__doc__  # the module docstring gives every source and citation


def test_r_level_order():
    sal = datasets.load("Salamanders")
    assert list(sal["spp"].cat.categories)[0] == "GP"  # non-alphabetical, as in R
    assert list(sal["mined"].cat.categories) == ["yes", "no"]
    cbpp = datasets.load("cbpp")
    assert list(cbpp["herd"].cat.categories) == [str(i) for i in range(1, 16)]  # numeric order, not "1","10",...


def test_case_insensitive_and_unknown():
    assert datasets.load("RUST").shape == datasets.load("rust").shape
    with pytest.raises(KeyError, match="available"):
        datasets.load("nope")
    with pytest.raises(KeyError):
        datasets.info("nope")
