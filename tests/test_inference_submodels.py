"""Inference on zero-inflated, hurdle and dispersion models (issue 13): Wald tests per component,
marginal means of the conditional model, the zero model and the response (delta method on the
joint covariance), confidence intervals of the zero / dispersion coefficients and
likelihood-ratio tests between models with and without those submodels.

All checks are closed forms computed here from the fit's estimates and ``fit.vcov_full``, hand
averages of ``predict`` over a constructed grid, and finite differences; the R numbers (car,
emmeans, glmmTMB's confint) are pinned in tests/test_inference_submodels_r.py.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import glmmdiag
from glmmdiag import anova, confint, marginal_means, pairwise, wald_anova
from glmmdiag.datasets import load
from glmmdiag.errors import GlmmdiagError

FORMULA = "count ~ spp + mined + (1 | site)"
RTOL = 1e-8
_FITS: dict = {}


def _fit(key):
    """Salamanders fits, cached per module run: key -> (family, ziformula, dispformula)."""
    spec = {
        "pois": ("poisson", None, None),
        "zip": ("poisson", "~ mined", None),
        "zip1": ("poisson", "~1", None),
        "nb2": ("nbinom2", None, None),
        "nb2_disp": ("nbinom2", None, "~ mined"),
        "zinb2": ("nbinom2", "~ mined", None),
        "hnb2": ("truncated_nbinom2", "~ spp + mined", None),
        "hnb2_disp": ("truncated_nbinom2", "~1", "~ mined"),
    }[key]
    if key not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _FITS[key] = glmmdiag.glmm(FORMULA, load("Salamanders"), family=spec[0], ziformula=spec[1],
                                       dispformula=spec[2])
    return _FITS[key]


def _block(fit, prefix, names):
    """Rows/columns of fit.vcov_full for coefficients ``prefix~name``."""
    keys = [f"{prefix}~{n}" for n in names]
    return fit.vcov_full.loc[keys, keys].to_numpy(float)


def _quad(b, V):
    return float(b @ np.linalg.solve(V, b))


def _grid():
    """The reference grid spp x mined (spp fastest), as Categoricals of the data's levels."""
    d = load("Salamanders")
    spp, mined = d["spp"].cat.categories, d["mined"].cat.categories
    g = pd.DataFrame([(s, m) for m in mined for s in spp], columns=["spp", "mined"])
    g["spp"] = pd.Categorical(g["spp"], categories=spp)
    g["mined"] = pd.Categorical(g["mined"], categories=mined)
    return g


# ---------------------------------------------------------------------------- Wald tests
@pytest.mark.parametrize("type_", [2, 3])
def test_wald_zi_term_is_the_quadratic_form(type_):
    fit = _fit("zip")
    tab = wald_anova(fit, type=type_, component="zi")
    b = fit.fixef_zi
    V = _block(fit, "zi", b.index)
    j = list(b.index).index("minedno")
    chisq = b.iloc[j] ** 2 / V[j, j]
    np.testing.assert_allclose(tab.loc["mined", "Chisq"], chisq, rtol=RTOL)
    assert tab.loc["mined", "Df"] == 1
    np.testing.assert_allclose(tab.loc["mined", "Pr(>Chisq)"], stats.chi2.sf(chisq, 1), rtol=1e-6)
    assert ("(Intercept)" in tab.index) == (type_ == 3)
    assert "zi" in tab.attrs["heading"]


def test_wald_zi_multi_column_term():
    fit = _fit("hnb2")
    b = fit.fixef_zi
    cols = [n for n in b.index if n.startswith("spp")]
    chisq = _quad(b[cols].to_numpy(), _block(fit, "zi", cols))
    for type_ in (2, 3):
        tab = wald_anova(fit, type=type_, component="zi")
        np.testing.assert_allclose(tab.loc["spp", "Chisq"], chisq, rtol=RTOL)
        assert tab.loc["spp", "Df"] == 6


def test_wald_disp_and_cond_components():
    fit = _fit("nb2_disp")
    b = fit.fixef_disp
    chisq = b["minedno"] ** 2 / _block(fit, "disp", ["minedno"])[0, 0]
    np.testing.assert_allclose(wald_anova(fit, component="disp").loc["mined", "Chisq"], chisq, rtol=RTOL)
    # the default is the conditional model, with its own covariance
    bc, Vc = fit.fixef, fit.vcov
    np.testing.assert_allclose(wald_anova(fit).loc["mined", "Chisq"],
                               bc["minedno"] ** 2 / Vc.loc["minedno", "minedno"], rtol=RTOL)
    # a constant dispersion of a zero-inflated NB2: its intercept (log theta) only, by type III
    z = _fit("zinb2")
    t3 = wald_anova(z, type=3, component="disp")
    assert list(t3.index) == ["(Intercept)"]
    np.testing.assert_allclose(t3.iloc[0]["Chisq"], (z.fixef_disp.iloc[0] / z.se_disp.iloc[0]) ** 2, rtol=RTOL)


def test_wald_missing_component_raises():
    with pytest.raises(GlmmdiagError, match="no zero model"):
        wald_anova(_fit("nb2_disp"), component="zi")
    with pytest.raises(GlmmdiagError, match="no dispersion model"):
        wald_anova(_fit("zip"), component="disp")
    with pytest.raises(GlmmdiagError, match="component must be"):
        wald_anova(_fit("zip"), component="cmean")
    with pytest.raises(GlmmdiagError, match="no zero model"):
        wald_anova(_fit("pois"), component="zi")


# ---------------------------------------------------------------------------- marginal means
def _hand_response_mean(kind, beta, bd, bz, Xg, Dg, Zg):
    """Response-scale mean per grid row, written out here (log link)."""
    mu = np.exp(Xg @ beta)
    pi = special.expit(Zg @ bz) if Zg is not None else np.zeros(len(mu))
    if kind == "zi":
        return (1 - pi) * mu
    theta = np.exp(Dg @ bd)
    f0 = (theta / (theta + mu)) ** theta
    return (1 - pi) * mu / (1 - f0)


def _grid_matrices(fit):
    g = _grid()
    Xg = np.column_stack([np.ones(len(g))] + [(g["spp"] == lv).to_numpy(float) for lv in
                                              g["spp"].cat.categories[1:]] + [(g["mined"] == "no").to_numpy(float)])
    assert Xg.shape[1] == len(fit.fixef)
    def sub(names):
        cols = []
        for n in names:
            if n == "(Intercept)":
                cols.append(np.ones(len(g)))
            elif n.startswith("spp"):
                cols.append((g["spp"] == n[3:]).to_numpy(float))
            else:
                assert n == "minedno"
                cols.append((g["mined"] == "no").to_numpy(float))
        return np.column_stack(cols) if cols else None
    return g, Xg, sub(fit.fixef_disp.index), sub(fit.fixef_zi.index)


@pytest.mark.parametrize("key,kind", [("zip", "zi"), ("zinb2", "zi"), ("hnb2", "hurdle"), ("hnb2_disp", "hurdle")])
def test_response_means_are_grid_averages_with_delta_method_se(key, kind):
    fit = _fit(key)
    mm = marginal_means(fit, "mined", component="response")
    g, Xg, Dg, Zg = _grid_matrices(fit)
    # the estimate: the average of predict(type="response") over the grid rows of each level
    pred = fit.predict(g, type="response", re_form="~0")
    by_hand = pd.Series(pred).groupby(g["mined"].to_numpy()).mean()
    np.testing.assert_allclose(mm.table["emmean"], by_hand.loc[list(mm.table["mined"])].to_numpy(), rtol=1e-10)
    # the SE: delta method with a finite-difference gradient of the mean function, joint vcov
    V = fit.vcov_full
    theta0 = np.concatenate([fit.fixef, fit.fixef_disp, fit.fixef_zi])
    p, kd = len(fit.fixef), len(fit.fixef_disp)

    def means(th):
        m = _hand_response_mean(kind, th[:p], th[p:p + kd], th[p + kd:], Xg, Dg, Zg)
        return np.array([m[(g["mined"] == lv).to_numpy()].mean() for lv in mm.table["mined"]])

    np.testing.assert_allclose(means(theta0), mm.table["emmean"], rtol=1e-10)
    G = np.empty((len(mm), theta0.size))
    for j in range(theta0.size):
        h = 1e-6 * max(1.0, abs(theta0[j]))
        e = np.zeros(theta0.size)
        e[j] = h
        G[:, j] = (means(theta0 + e) - means(theta0 - e)) / (2 * h)
    se_fd = np.sqrt(np.diag(G @ V.to_numpy(float) @ G.T))
    np.testing.assert_allclose(mm.table["SE"], se_fd, rtol=1e-5)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(mm.table["asymp.LCL"], mm.table["emmean"] - z * mm.table["SE"], rtol=1e-10)
    assert mm.component == "response"


def test_response_means_by_species_and_pairwise():
    fit = _fit("zip")
    mm = marginal_means(fit, "spp", component="response")
    g = _grid()
    pred = fit.predict(g, type="response", re_form="~0")
    by_hand = pd.Series(pred).groupby(g["spp"].astype(str).to_numpy()).mean()
    np.testing.assert_allclose(mm.table["emmean"], by_hand.loc[[str(s) for s in mm.table["spp"]]], rtol=1e-10)
    pw = pairwise(mm, adjust="none")
    first = pw.contrasts.iloc[0]
    assert first["contrast"] == "GP - PR"
    np.testing.assert_allclose(first["estimate"], mm.eta[0] - mm.eta[1], rtol=1e-10)
    c = np.zeros(len(mm))
    c[0], c[1] = 1, -1
    np.testing.assert_allclose(first["SE"], np.sqrt(c @ mm.vcov_eta @ c), rtol=1e-10)
    assert "emmean" in pw.letters.columns and ".group" in pw.letters.columns


def test_conditional_means_default_and_cmean():
    fit = _fit("zip")
    mm = marginal_means(fit, "mined")
    b, V = fit.fixef.to_numpy(), fit.vcov.to_numpy()
    l_no = np.r_[1.0, np.full(6, 1 / 7), 1.0]
    np.testing.assert_allclose(mm.table["emmean"].iloc[1], l_no @ b, rtol=1e-10)
    np.testing.assert_allclose(mm.table["SE"].iloc[1], np.sqrt(l_no @ V @ l_no), rtol=1e-10)
    resp = marginal_means(fit, "mined", type="response")
    cmean = marginal_means(fit, "mined", component="cmean")
    np.testing.assert_allclose(resp.table["rate"], np.exp(mm.table["emmean"]), rtol=1e-10)
    pd.testing.assert_frame_equal(resp.table, cmean.table)


def test_zero_probability_means():
    fit = _fit("zip")
    bz = fit.fixef_zi.to_numpy()
    Vz = _block(fit, "zi", fit.fixef_zi.index)
    link = marginal_means(fit, "mined", component="zi")
    resp = marginal_means(fit, "mined", component="zi", type="response")
    for i, lv in enumerate(link.table["mined"]):
        l = np.r_[1.0, float(lv == "no")]
        np.testing.assert_allclose(link.table["emmean"].iloc[i], l @ bz, rtol=1e-10)
        np.testing.assert_allclose(link.table["SE"].iloc[i], np.sqrt(l @ Vz @ l), rtol=1e-10)
        pi = special.expit(l @ bz)
        np.testing.assert_allclose(resp.table["prob"].iloc[i], pi, rtol=1e-10)
        np.testing.assert_allclose(resp.table["SE"].iloc[i], pi * (1 - pi) * np.sqrt(l @ Vz @ l), rtol=1e-10)
    # the same probability whatever the species (the zero model has mined only)
    by_spp = marginal_means(fit, "spp", component="zi", type="response").table["prob"]
    np.testing.assert_allclose(by_spp, by_spp.iloc[0], rtol=1e-12)
    pw = pairwise(resp)  # odds ratio of the zero probabilities
    np.testing.assert_allclose(pw.contrasts["odds.ratio"].iloc[0], np.exp(-bz[1]), rtol=1e-10)


def test_marginal_means_component_errors():
    with pytest.raises(GlmmdiagError, match="no zero model"):
        marginal_means(_fit("nb2"), "mined", component="zi")
    with pytest.raises(GlmmdiagError, match="component must be"):
        marginal_means(_fit("zip"), "mined", component="disp")
    # a model without a zero model: the response mean is the conditional mean mu, averaged over
    # the grid on the response scale (not exp of the link-scale average, as type="response")
    nb = _fit("nb2_disp")
    g = _grid()
    mu = pd.Series(nb.predict(g, type="conditional", re_form="~0")).groupby(g["mined"].to_numpy()).mean()
    mm = marginal_means(nb, "mined", component="response")
    np.testing.assert_allclose(mm.table["emmean"], mu.loc[list(mm.table["mined"])].to_numpy(), rtol=1e-10)
    assert mm.table["emmean"].iloc[0] > marginal_means(nb, "mined", type="response").table["rate"].iloc[0]


# ---------------------------------------------------------------------------- confint
@pytest.mark.parametrize("key", ["zip", "nb2_disp", "hnb2"])
def test_confint_has_submodel_coefficients(key):
    fit = _fit(key)
    ci = confint(fit)
    z = stats.norm.ppf(0.975)
    V = fit.vcov_full
    sub = [n for n in V.index if not n.startswith("cond~")]
    assert sub and all(n in ci.index for n in sub)
    for n in sub:
        est = (fit.fixef_zi if n.startswith("zi~") else fit.fixef_disp)[n.split("~", 1)[1]]
        se = np.sqrt(V.loc[n, n])
        np.testing.assert_allclose(ci.loc[n, ["2.5 %", "97.5 %", "Estimate"]].to_numpy(float),
                                   [est - z * se, est + z * se, est], rtol=1e-10)
    assert "sd_(Intercept)|site" in ci.index
    np.testing.assert_allclose(ci.loc["minedno", "Estimate"], fit.fixef["minedno"])
    comp = "zi" if fit.fixef_zi.size else "disp"
    only = confint(fit, parm=comp)
    assert list(only.index) == [n for n in sub if n.startswith(comp + "~")]


def test_confint_constant_dispersion_of_a_zero_model():
    fit = _fit("zinb2")  # betad = log theta
    ci = confint(fit)
    lo, hi, est = ci.loc["disp~(Intercept)", ["2.5 %", "97.5 %", "Estimate"]]
    np.testing.assert_allclose(ci.loc["dispersion", ["2.5 %", "97.5 %", "Estimate"]].to_numpy(float),
                               np.exp([lo, hi, est]), rtol=1e-10)
    with pytest.raises(GlmmdiagError, match="no zero model"):
        confint(_fit("nb2_disp"), parm="zi")


# ---------------------------------------------------------------------------- likelihood-ratio tests
@pytest.mark.parametrize("small,big,df", [("pois", "zip", 2), ("zip1", "zip", 1), ("nb2", "nb2_disp", 1),
                                          ("nb2", "zinb2", 2), ("pois", "nb2_disp", 2)])
def test_lrt_counts_submodel_parameters(small, big, df):
    f0, f1 = _fit(small), _fit(big)
    tab = anova(f0, f1)
    np.testing.assert_allclose(tab["Chisq"].iloc[1], 2 * (f1.loglik - f0.loglik), rtol=1e-12)
    assert tab["Df"].iloc[1] == df == f1.n_params - f0.n_params
    np.testing.assert_allclose(tab["Pr(>Chisq)"].iloc[1], stats.chi2.sf(2 * (f1.loglik - f0.loglik), df))
    notes = " ".join(tab.attrs["notes"])
    assert ("zero-inflation" in notes) == (small in ("pois", "nb2") and big in ("zip", "zinb2"))


def test_lrt_counts_the_parameters():
    assert _fit("pois").n_params == 9  # 8 fixed effects + 1 SD
    assert _fit("zip").n_params == 11  # + 2 zero-model coefficients
    assert _fit("nb2").n_params == 10  # + theta
    assert _fit("nb2_disp").n_params == 11  # theta -> 2 dispersion-model coefficients


def test_lrt_refuses_non_nested_submodels():
    with pytest.raises(GlmmdiagError, match="hurdle"):
        anova(_fit("pois"), _fit("hnb2"))
    with pytest.raises(GlmmdiagError, match="not nested"):
        anova(_fit("zip"), _fit("hnb2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zi_spp = glmmdiag.glmm(FORMULA, load("Salamanders"), family="poisson", ziformula="~ spp")
    with pytest.raises(GlmmdiagError, match="zero model"):
        anova(_fit("zip"), zi_spp)  # ~ mined is not in the span of ~ spp
