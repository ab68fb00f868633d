"""Inference on zero-inflated, hurdle and dispersion models against R: car 3.1-1's Anova(m,
component = ...), emmeans 1.8.4-1 (component = "cond" / "zi") and glmmTMB 1.1.5's Wald confint, on
four Salamanders fits (tests/reference/ext/inference_submodels.R and .json).

Tolerances: the fits agree with glmmTMB to ~1e-5 relative in the estimates and SEs, so Wald
chi-squares, marginal means and intervals agree to 1e-3 relative (a little looser than the
estimates: chi-squares are quadratic in them)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import glmmdiag
from glmmdiag.datasets import load

REF = json.loads((Path(__file__).resolve().parent / "reference" / "ext" / "inference_submodels.json").read_text())
SPEC = {
    "zip": ("poisson", "~ mined", None),
    "zinb2": ("nbinom2", "~ mined", None),
    "hnb2": ("truncated_nbinom2", "~ spp + mined", None),
    "nb2_disp": ("nbinom2", None, "~ mined"),
}
RTOL = 1e-3
_FITS: dict = {}


def _fit(key):
    if key not in _FITS:
        fam, zi, disp = SPEC[key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = glmmdiag.glmm("count ~ spp + mined + (1 | site)", load("Salamanders"), family=fam,
                                       ziformula=zi, dispformula=disp)
    return _FITS[key]


@pytest.mark.parametrize("key", list(SPEC))
def test_wald_anova_per_component_matches_car(key):
    fit, ref = _fit(key), REF[key]
    assert fit.loglik == pytest.approx(ref["logLik"], abs=1e-4)
    comp = "disp" if SPEC[key][2] else "zi"
    for component, table in (("cond", ref["anova_cond"]), (comp, ref[f"anova_{comp}"])):
        got = glmmdiag.wald_anova(fit, component=component)
        assert got.index.tolist() == list(np.atleast_1d(table["terms"]))
        np.testing.assert_allclose(got["Chisq"], np.atleast_1d(table["chisq"]), rtol=RTOL)
        np.testing.assert_array_equal(got["Df"], np.atleast_1d(table["df"]))


@pytest.mark.parametrize("key", list(SPEC))
def test_marginal_means_of_the_conditional_model_match_emmeans(key):
    fit, ref = _fit(key), REF[key]["emm_cond"]
    got = glmmdiag.marginal_means(fit, "spp")
    assert [str(v) for v in got["spp"]] == ref["spp"]
    np.testing.assert_allclose(got["emmean"], ref["emmean"], rtol=RTOL, atol=1e-4)
    np.testing.assert_allclose(got["SE"], ref["SE"], rtol=RTOL)


@pytest.mark.parametrize("key", ["zip", "zinb2", "hnb2"])
def test_zero_probabilities_match_emmeans_component_zi(key):
    """emmeans(m, ~ mined, component = "zi", type = "response"): t intervals on the residual df,
    as emmeans gives them for glmmTMB (df="residual" here)."""
    fit, ref = _fit(key), REF[key]["emm_zi"]
    got = glmmdiag.marginal_means(fit, "mined", component="zi", type="response", df="residual")
    assert [str(v) for v in got["mined"]] == ref["mined"]
    np.testing.assert_allclose(got["prob"], ref["response"], rtol=RTOL)
    np.testing.assert_allclose(got["SE"], ref["SE"], rtol=RTOL)
    np.testing.assert_array_equal(got["df"], ref["df"])
    np.testing.assert_allclose(got["lower.CL"], ref["lower.CL"], rtol=5 * RTOL)
    np.testing.assert_allclose(got["upper.CL"], ref["upper.CL"], rtol=5 * RTOL)


def _our_name(r_name: str) -> str | None:
    comp, _, coef = r_name.partition(".")
    if "Std.Dev." in coef:
        return None
    return coef if comp == "cond" else f"{comp}~{coef}"


@pytest.mark.parametrize("key", list(SPEC))
def test_wald_intervals_of_every_component_match_glmmtmb(key):
    fit, ref = _fit(key), REF[key]["confint"]
    got = glmmdiag.confint(fit)
    rows = [(i, _our_name(n)) for i, n in enumerate(ref["names"]) if _our_name(n) is not None]
    assert len(rows) >= len(fit.fixef) + 1
    for i, name in rows:
        assert name in got.index, name
        lo, hi = got.loc[name].iloc[0], got.loc[name].iloc[1]
        half = 0.5 * (ref["upper"][i] - ref["lower"][i])
        assert lo == pytest.approx(ref["lower"][i], abs=RTOL * half + 1e-6)
        assert hi == pytest.approx(ref["upper"][i], abs=RTOL * half + 1e-6)
