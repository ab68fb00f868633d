"""Gaussian weights in lmer's sense (precision, the default) and in glmmTMB's (frequency: each
row's log density times w) on the same data (issue 17, item 5).

Reference: tests/reference/weights/gaussian_weights.R (lme4 1.1.31, glmmTMB 1.1.5). Tolerances:
logLik 1e-5 absolute (ours >= R's - 1e-6), fixef 1e-4 relative, SEs 1e-3 relative, SDs and
sigma 1e-3 relative.
"""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

from glmmdiag.errors import GlmmdiagError
from glmmdiag.fit import glmm

ROOT = pathlib.Path(__file__).parent.parent
REF = json.loads((ROOT / "reference" / "weights" / "gaussian_weights.json").read_text())
DATA = pd.concat([pd.read_csv(ROOT / "data" / "sleepstudy.csv"),
                  pd.read_csv(ROOT / "reference" / "weights" / "sleepstudy_weights.csv")], axis=1)
FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.mark.parametrize("key,kw", [
    ("lmer_ML", {}),
    ("lmer_ML", {"weights_type": "precision"}),
    ("lmer_REML", {"reml": True}),
    ("glmmTMB", {"weights_type": "frequency"}),
])
def test_weights_match_r(key, kw):
    ref = REF[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmm(FORMULA, DATA, weights="w", **kw)
    assert ref["logLik"] - 1e-6 <= fit.loglik <= ref["logLik"] + 1e-5
    assert fit.n_params == ref["df"]
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref["fixef"], rtol=1e-4)
    np.testing.assert_allclose(fit.se.to_numpy(), ref["se"], rtol=1e-3)
    assert fit.sigma == pytest.approx(ref["sigma"], rel=1e-3)
    sd = fit.varcorr.query("var2.isnull() and grp == 'Subject'", engine="python")["sdcor"].to_numpy()
    np.testing.assert_allclose(sd, ref["sd"], rtol=1e-3)


def test_frequency_weight_two_is_a_duplicated_row():
    """Closed form of glmmTMB's reading: a row of weight 2 is the same row twice."""
    d = DATA.iloc[:60].copy()
    w = np.where(np.arange(60) % 3 == 0, 2.0, 1.0)
    dup = pd.concat([d, d[w == 2]], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = glmm(FORMULA, d, weights=w, weights_type="frequency")
        b = glmm(FORMULA, dup)
    assert a.loglik == pytest.approx(b.loglik, abs=1e-6)
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-6)


def test_weights_type_is_checked():
    with pytest.raises(GlmmdiagError, match="must be one of"):
        glmm(FORMULA, DATA, weights="w", weights_type="analytic")
    with pytest.raises(GlmmdiagError, match="applies to the gaussian family"):
        glmm("Reaction ~ Days + (1 | Subject)", DATA, family="poisson", weights_type="frequency")
    with pytest.raises(GlmmdiagError, match="REML"):
        glmm(FORMULA, DATA, weights="w", weights_type="frequency", reml=True)
