"""Rank-deficient fixed parts resolved as lme4 resolves them (issue 17, item 4).

Reference: tests/reference/rstyle/rank_deficiency.R (lme4 1.1.31): for each formula the names and
values of lme4's fixed effects after its rank check (R's pivoting QR with tolerance 1e-7, which
keeps earlier columns) and logLik. The cases: an empty cell in a factor interaction, a factor with
unused levels and a numeric column constant within one of its levels (``count ~ time * lake``),
a column aliased with the intercept and another column (both orders), interactions without their
margins (``a:b``: R codes every level of both factors and drops the aliased columns last to first),
and R's order of the variables inside interactions (``x + a:x`` gives ``x:aq``). Before this
change ``y ~ a:b`` reported other coefficients (formulaic's b + a:b parameterisation) and the
interaction names and column order differed. Tolerances: names exact, fixef 1e-4 absolute,
logLik 1e-5 absolute.
"""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

from glmmdiag.errors import RankDeficiencyWarning
from glmmdiag.fit import glmm

HERE = pathlib.Path(__file__).parent.parent / "reference" / "rstyle"
REF = json.loads((HERE / "rank_deficiency.json").read_text())


def _data():
    d = pd.read_csv(HERE / "rank_deficiency.csv")
    d["lake"] = pd.Categorical(d["lake"], categories=["L1", "L2", "L3", "L4"])  # L3, L4 unused, as in R
    for c in ("a", "b", "tf"):
        d[c] = pd.Categorical(d[c])
    return d


@pytest.mark.parametrize("case", REF, ids=[c["formula"] for c in REF])
def test_same_columns_and_coefficients_as_lme4(case):
    family = "poisson" if case["formula"].startswith("count") else "gaussian"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmm(case["formula"], _data(), family=family)
    assert list(fit.fixef.index) == case["names"]
    np.testing.assert_allclose(fit.fixef.to_numpy(), case["fixef"], rtol=0, atol=1e-4)
    assert fit.loglik == pytest.approx(case["logLik"], abs=1e-5)


def test_interaction_without_margins_warns_and_predicts():
    d = _data()
    with pytest.warns(RankDeficiencyWarning, match="dropping 2 column"):
        fit = glmm("y ~ a:b + (1 | g)", d)
    new = d.iloc[:5]
    np.testing.assert_allclose(fit.predict(new, re_form="~0"), fit.predict(re_form="~0")[:5], atol=1e-12)
