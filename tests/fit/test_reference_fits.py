"""End-to-end fits compared with the R reference fits in tests/reference/*.json (lme4 1.1-31, glmmTMB 1.1.5).

Each case is written out by hand below (the R formula translated to the Python formula syntax:
``I(age^2)`` -> ``I(age**2)``); nothing is parsed from the R call when fitting.  Every case is fitted
once per test process (module-level cache) and the comparisons below reuse that fit.

Tolerances: the named constants below (the issue's "Done means"; the few this file adds are marked
"added").  Fixed effects, SEs and conditional modes are compared by position, not by name.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

# --------------------------------------------------------------------------------------------------
# Tolerances
# --------------------------------------------------------------------------------------------------
# logLik: ours >= reference - LOGLIK_SLACK (a higher logLik is a better optimum and passes).
LOGLIK_SLACK = 0.01
# Fixed effects: |beta - ref| <= max(BETA_REL_TOL * |ref|, BETA_SE_FRAC * SE_ref).
BETA_REL_TOL = 1e-4
BETA_SE_FRAC = 1e-3
# Standard errors of the fixed effects: relative.
SE_REL_TOL = 1e-2
# Random-effect standard deviations: relative; looser where the R fit itself warns that it did not
# converge (then the logLik criterion is the main check).
RE_SD_REL_TOL = 1e-3
RE_SD_REL_TOL_NONCONVERGED = 5e-3
# (added) Random-effect correlations (sleepstudy's (Days | Subject)): absolute.
RE_CORR_ABS_TOL = 5e-3
# Residual SD (sigma, `dispersion`) of gaussian fits: relative.
SIGMA_REL_TOL = 1e-3
# Dispersion (glmmTMB's sigma(): Gamma CV, beta precision, nbinom2 theta, nbinom1 phi): relative.
DISPERSION_REL_TOL = 1e-3
# Conditional modes and conditional SDs of the first random-effect term (first 10 levels):
# |ours - ref| <= MODE_ABS_TOL + MODE_REL_TOL * |ref|.
MODE_ABS_TOL = 1e-3
MODE_REL_TOL = 1e-2
# glmmTMB's conditional SDs (from sdreport) also carry the uncertainty of the fixed effects, while
# ours follow lme4's condVar (conditional on beta and theta): against a glmmTMB reference they must be
# no larger (within MODE_ABS_TOL + MODE_REL_TOL) and at least GLMMTMB_CONDSD_MIN_RATIO of it
# (on these data sets lme4/glmmTMB ratios are 0.86-1.00).
GLMMTMB_CONDSD_MIN_RATIO = 0.75
# (added) On Salamanders (mined is constant within site) and rust (4 blocks) the fixed-effect and
# theta uncertainty is a large part of glmmTMB's conditional SD: ours are 0.49-0.8 of glmmTMB's
# there. test_glmmtmb_condsd_adds_fixed_effect_uncertainty checks that adding the beta part
# reproduces glmmTMB's SDs on Salamanders.
GLMMTMB_CONDSD_MIN_RATIO_CONFOUNDED = 0.45
# AIC/BIC: equal to -2 logLik + 2k (resp. log(n) k) with k = the reference's df of logLik, to
# IC_SELF_REL_TOL relative; and within IC_ABS_TOL + 2 |logLik - ref logLik| of the reference AIC/BIC.
IC_SELF_REL_TOL = 1e-8
IC_ABS_TOL = 0.02
# Where lme4 and glmmTMB fitted the same model (the case's `twin`), an estimate, SE, RE SD or mode
# passes when it is within tolerance of either R engine: on cbpp and VerbAgg the two R fits
# themselves differ by 1.3-1.4 times the fixed-effect tolerance (and 1.3 % in SEs on cbpp), so no
# single optimum can be within tolerance of both.

# --------------------------------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    data: str
    formula: str  # Python spelling of the R formula
    family: str = "gaussian"
    kwargs: dict = field(default_factory=dict)
    compare_loglik: bool = True  # False: R's logLik uses another constant (glmer nAGQ > 1 on cbind data)
    twin: str | None = None  # the other R engine's fit of the same model (see above)
    slow: bool = False
    condsd_min_ratio: float = 0.75  # GLMMTMB_CONDSD_MIN_RATIO unless the case says otherwise


SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
CONTRA = "use ~ age + I(age**2) + urban + livch + (1 | district)"
CONTRA_CH = "use ~ age * ch + I(age**2) + urban + (1 | district)"
CONTRA_CH_URBDIST = "use ~ age * ch + I(age**2) + urban + (1 | urban:district)"
GROUSE = "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)"
OROB_GLM = "cbind(germ, n - germ) ~ extract * gen"
OROB_PLATE = "cbind(germ, n - germ) ~ extract * gen + (1 | plate)"
VERBAGG = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"
INSTEVAL = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)"
SAL = "count ~ spp + mined + (1 | site)"

CASES: dict[str, Case] = {
    "sleepstudy_lmer_REML": Case("sleepstudy", SLEEP, "gaussian", {"reml": True}),
    "sleepstudy_lmer_ML": Case("sleepstudy", SLEEP, "gaussian", {"reml": False}, twin="sleepstudy_glmmTMB_ML"),
    "sleepstudy_glmmTMB_ML": Case("sleepstudy", SLEEP, "gaussian", {"reml": False}, twin="sleepstudy_lmer_ML"),
    "cbpp_glmer_nAGQ1": Case("cbpp", CBPP, "binomial", {"n_agq": 1}, twin="cbpp_glmmTMB"),
    "cbpp_glmer_nAGQ25": Case("cbpp", CBPP, "binomial", {"n_agq": 25}, compare_loglik=False),
    "cbpp_glmmTMB": Case("cbpp", CBPP, "binomial", {}, twin="cbpp_glmer_nAGQ1"),
    "contra_glmer_nAGQ1": Case("Contraception", CONTRA, "binomial", {"n_agq": 1}, twin="contra_glmmTMB"),
    "contra_glmer_nAGQ9": Case("Contraception", CONTRA, "binomial", {"n_agq": 9}),
    "contra_glmmTMB": Case("Contraception", CONTRA, "binomial", {}, twin="contra_glmer_nAGQ1"),
    "contra_ch_glmer": Case("Contraception", CONTRA_CH, "binomial", {}, twin="contra_ch_glmmTMB"),
    "contra_ch_glmmTMB": Case("Contraception", CONTRA_CH, "binomial", {}, twin="contra_ch_glmer"),
    "contra_ch_urbdist_glmer": Case(
        "Contraception", CONTRA_CH_URBDIST, "binomial", {}, twin="contra_ch_urbdist_glmmTMB"
    ),
    "contra_ch_urbdist_glmmTMB": Case(
        "Contraception", CONTRA_CH_URBDIST, "binomial", {}, twin="contra_ch_urbdist_glmer"
    ),
    "grouseticks_glmer": Case("grouseticks", GROUSE, "poisson", {}, twin="grouseticks_glmmTMB"),
    "grouseticks_glmmTMB": Case("grouseticks", GROUSE, "poisson", {}, twin="grouseticks_glmer"),
    "orobanche_glm_glmmTMB": Case("orobanche", OROB_GLM, "binomial", {}),
    "orobanche_glmer_plate": Case("orobanche", OROB_PLATE, "binomial", {}, twin="orobanche_glmmTMB_plate"),
    "orobanche_glmmTMB_plate": Case("orobanche", OROB_PLATE, "binomial", {}, twin="orobanche_glmer_plate"),
    "verbagg_glmer": Case("VerbAgg", VERBAGG, "binomial", {}, twin="verbagg_glmmTMB"),
    "verbagg_glmmTMB": Case("VerbAgg", VERBAGG, "binomial", {}, twin="verbagg_glmer"),
    # dispersion families (issue 3); the family is spelled as in the R call (glmmdiag's aliases)
    "rust_beta": Case("rust", "severity ~ fungicide + (1 | block)", "beta_family",
                      condsd_min_ratio=GLMMTMB_CONDSD_MIN_RATIO_CONFOUNDED),
    "rust_gamma": Case("rust", "severity_pct ~ fungicide + (1 | block)", "Gamma", {"link": "log"},
                       condsd_min_ratio=GLMMTMB_CONDSD_MIN_RATIO_CONFOUNDED),
    "salamanders_poisson": Case("Salamanders", SAL, "poisson", condsd_min_ratio=GLMMTMB_CONDSD_MIN_RATIO_CONFOUNDED),
    "salamanders_nbinom2": Case("Salamanders", SAL, "nbinom2", condsd_min_ratio=GLMMTMB_CONDSD_MIN_RATIO_CONFOUNDED),
    "salamanders_nbinom1": Case("Salamanders", SAL, "nbinom1", condsd_min_ratio=GLMMTMB_CONDSD_MIN_RATIO_CONFOUNDED),
    "insteval_lmer": Case("InstEval", INSTEVAL, "gaussian", {"reml": True}, slow=True),
    "insteval_glmmTMB": Case("InstEval", INSTEVAL, "gaussian", {"reml": False}, slow=True),
}

CASE_PARAMS = [pytest.param(name, marks=pytest.mark.slow) if c.slow else name for name, c in CASES.items()]
# cases with a random slope (correlated terms): a non-intercept left-hand side in a bar
CORR_CASE_PARAMS = [
    pytest.param(name, marks=pytest.mark.slow) if c.slow else name
    for name, c in CASES.items()
    if re.search(r"\(\s*(?!1\s*\|)[^()|]+\|", c.formula)
]
MIXED_CASE_PARAMS = [
    pytest.param(name, marks=pytest.mark.slow) if c.slow else name
    for name, c in CASES.items()
    if "|" in c.formula
]

# --------------------------------------------------------------------------------------------------
# Fitting once per process
# --------------------------------------------------------------------------------------------------
_FITS: dict[str, tuple] = {}


class Env:
    """Access to the fits (each fitted once per process) and the reference JSONs."""

    def __init__(self, load_data, load_reference):
        self.load_data = load_data
        self.load_reference = load_reference

    def fit_and_warnings(self, name: str):
        """(fit, recorded warnings) for case `name`; a fit that raised re-raises in every test using it."""
        if name not in _FITS:
            case = CASES[name]
            import glmmdiag

            data = self.load_data(case.data)
            try:
                with warnings.catch_warnings(record=True) as rec:
                    warnings.simplefilter("always")
                    fit = glmmdiag.glmm(case.formula, data, family=case.family, **case.kwargs)
                _FITS[name] = ("ok", fit, list(rec))
            except Exception as exc:  # noqa: BLE001 - cached and re-raised below
                _FITS[name] = ("error", exc, None)
        status, obj, rec = _FITS[name]
        if status == "error":
            raise obj
        return obj, rec

    def fit(self, name: str):
        return self.fit_and_warnings(name)[0]

    def ref(self, name: str) -> dict:
        return self.load_reference(name)["fit"]

    def nonconverged(self, name: str) -> bool:
        """True when R warned that this reference fit did not converge."""
        return any("converge" in w.lower() for w in self.load_reference(name).get("warnings") or [])

    def refs(self, name: str) -> list[tuple[str, dict]]:
        """The case's reference and, if any, its twin (same model, other R engine)."""
        out = [(name, self.ref(name))]
        if CASES[name].twin:
            out.append((CASES[name].twin, self.ref(CASES[name].twin)))
        return out


@pytest.fixture(scope="module")
def env(load_data, load_reference):
    return Env(load_data, load_reference)


def _as_list(v) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA or v == ""


def _re_sds(fit) -> dict[str, list[tuple[str, float]]]:
    """group -> [(var1, sd), ...] from the variance rows (var2 missing) of fit.varcorr."""
    out: dict[str, list[tuple[str, float]]] = {}
    for _, row in fit.varcorr.iterrows():
        if row["grp"] == "Residual" or not _is_missing(row["var2"]):
            continue
        out.setdefault(str(row["grp"]), []).append((str(row["var1"]), float(row["sdcor"])))
    return out


def _re_corrs(fit) -> dict[tuple[str, str, str], float]:
    out = {}
    for _, row in fit.varcorr.iterrows():
        if row["grp"] != "Residual" and not _is_missing(row["var2"]):
            out[(str(row["grp"]), str(row["var1"]), str(row["var2"]))] = float(row["sdcor"])
    return out


def _worst(values, targets, tol) -> float:
    """max |values - targets| / tol (<= 1 passes)."""
    values = np.asarray(values, float)
    targets = np.asarray(targets, float)
    return float(np.max(np.abs(values - targets) / tol)) if values.size else 0.0


# --------------------------------------------------------------------------------------------------
# The table itself (runs without the fitter)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_case_table_matches_reference_call(name, env):
    """Guards the hand translation: the Python formula is the R formula with ^ spelled **."""
    case = CASES[name]
    ref = env.load_reference(name)
    call = ref["call"]
    r_formula = re.split(r",\s*(?:family|data)\s*=", call.split("(", 1)[1])[0]
    squash = lambda s: re.sub(r"\s+", "", s)  # noqa: E731
    assert squash(case.formula) == squash(r_formula).replace("^", "**")
    fam = re.search(r"family\s*=\s*(\w+)", call)
    assert case.family == (fam.group(1) if fam else "gaussian")
    nagq = re.search(r"nAGQ\s*=\s*(\d+)", call)
    assert case.kwargs.get("n_agq", 1) == (int(nagq.group(1)) if nagq else 1)
    if call.startswith("lmer("):
        assert case.kwargs.get("reml") is ("REML = FALSE" not in call)
    elif call.startswith("glmmTMB(") and case.family == "gaussian":
        assert case.kwargs.get("reml", False) is False
    assert env.load_data(case.data).shape[0] >= ref["fit"]["nobs"]
    if case.twin:
        assert CASES[case.twin].formula == case.formula and CASES[case.twin].twin == name


# --------------------------------------------------------------------------------------------------
# Comparisons with the references
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_converged_without_deprecations(name, env):
    fit, rec = env.fit_and_warnings(name)
    assert bool(fit.converged), f"{name}: not converged; warnings: {fit.warnings}"
    assert isinstance(fit.warnings, list)
    bad = [
        str(w.message)
        for w in rec
        if issubclass(w.category, (FutureWarning, DeprecationWarning)) and "glmmdiag" in str(w.filename)
    ]
    assert not bad, f"FutureWarning/DeprecationWarning raised in glmmdiag: {bad[:3]}"


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_counts(name, env):
    fit, ref = env.fit(name), env.ref(name)
    assert fit.nobs == ref["nobs"]
    assert fit.df_resid == ref["df_resid"]
    want = ref["ngroups"] if isinstance(ref["ngroups"], dict) else {}
    assert {str(k): int(v) for k, v in fit.ngroups.items()} == want


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_loglik(name, env):
    if not CASES[name].compare_loglik:
        pytest.skip("lme4's nAGQ > 1 logLik on cbind data uses another constant; estimates compared instead")
    fit, ref = env.fit(name), env.ref(name)
    ll = float(fit.loglik)
    assert ll >= ref["logLik"] - LOGLIK_SLACK, f"logLik {ll:.5f} < reference {ref['logLik']:.5f} - {LOGLIK_SLACK}"


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_information_criteria(name, env):
    fit, ref = env.fit(name), env.ref(name)
    ll, k, n = float(fit.loglik), ref["df_logLik"], ref["nobs"]
    aic_self, bic_self = -2 * ll + 2 * k, -2 * ll + math.log(n) * k
    assert float(fit.aic) == pytest.approx(aic_self, rel=IC_SELF_REL_TOL, abs=1e-8)
    assert float(fit.bic) == pytest.approx(bic_self, rel=IC_SELF_REL_TOL, abs=1e-8)
    if CASES[name].compare_loglik:
        slack = IC_ABS_TOL + 2 * abs(ll - ref["logLik"])
        assert abs(float(fit.aic) - ref["AIC"]) <= slack
        assert abs(float(fit.bic) - ref["BIC"]) <= slack


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_fixed_effects(name, env):
    fit, ref = env.fit(name), env.ref(name)
    fixef = fit.fixef
    assert isinstance(fixef, pd.Series)
    assert len(fixef) == len(ref["fixed"]["estimate"]), f"{list(fixef.index)} vs R {ref['fixed']['names']}"
    assert fixef.index[0] == "(Intercept)"
    report = []
    for rname, r in env.refs(name):
        est, se = np.asarray(r["fixed"]["estimate"]), np.asarray(r["fixed"]["se"])
        worst = _worst(fixef.to_numpy(float), est, np.maximum(BETA_REL_TOL * np.abs(est), BETA_SE_FRAC * se))
        report.append(f"{rname}: {worst:.2f} x tolerance")
        if worst <= 1:
            return
    pytest.fail(f"fixed effects {fixef.to_numpy()} off: " + "; ".join(report))


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_standard_errors(name, env):
    fit = env.fit(name)
    se = fit.se
    assert isinstance(se, pd.Series)
    assert list(se.index) == list(fit.fixef.index)
    vcov = fit.vcov
    assert isinstance(vcov, pd.DataFrame)
    assert list(vcov.index) == list(fit.fixef.index) == list(vcov.columns)
    np.testing.assert_allclose(np.sqrt(np.diag(vcov.to_numpy(float))), se.to_numpy(float), rtol=1e-8)
    np.testing.assert_allclose(vcov.to_numpy(float), vcov.to_numpy(float).T, rtol=1e-8, atol=1e-14)
    report = []
    for rname, r in env.refs(name):
        want = np.asarray(r["fixed"]["se"])
        worst = _worst(se.to_numpy(float), want, SE_REL_TOL * want)
        report.append(f"{rname}: {worst:.2f} x tolerance")
        if worst <= 1:
            return
    pytest.fail(f"SEs {se.to_numpy()} off: " + "; ".join(report))


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_varcorr_layout(name, env):
    fit, ref = env.fit(name), env.ref(name)
    vc = fit.varcorr
    assert isinstance(vc, pd.DataFrame)
    assert list(vc.columns) == ["grp", "var1", "var2", "vcov", "sdcor"]
    variance_rows = vc[np.array([_is_missing(v) for v in vc["var2"]], dtype=bool)]
    np.testing.assert_allclose(
        variance_rows["sdcor"].to_numpy(float) ** 2, variance_rows["vcov"].to_numpy(float), rtol=1e-8
    )
    groups = [str(g) for g in vc["grp"] if g != "Residual"]
    assert set(groups) == {r["group"] for r in ref["random"]}
    has_residual = (vc["grp"] == "Residual").sum()
    assert has_residual == (1 if CASES[name].family == "gaussian" else 0)


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_random_effect_sds(name, env):
    fit = env.fit(name)
    ours = _re_sds(fit)
    tol = RE_SD_REL_TOL_NONCONVERGED if env.nonconverged(name) else RE_SD_REL_TOL
    report = []
    for rname, r in env.refs(name):
        worst = 0.0
        for term in r["random"]:
            want = np.asarray(_as_list(term["sd"]), float)
            got = ours.get(term["group"])
            assert got is not None, f"no variance rows for group {term['group']!r} in varcorr:\n{fit.varcorr}"
            assert [v for v, _ in got] == _as_list(term["terms"]), f"{term['group']}: {got}"
            worst = max(worst, _worst([s for _, s in got], want, tol * want))
        report.append(f"{rname}: {worst:.2f} x tolerance")
        if worst <= 1:
            return
    pytest.fail(f"RE SDs {ours} off: " + "; ".join(report))


@pytest.mark.parametrize("name", CORR_CASE_PARAMS)
def test_random_effect_correlations(name, env):
    ref = env.ref(name)
    with_corr = [t for t in ref["random"] if t.get("correlation")]
    assert with_corr, "the reference has no correlations for this case"
    ours = _re_corrs(env.fit(name))
    for t in with_corr:
        names = t["correlation"]["rownames"]
        values = t["correlation"]["values"]
        for i in range(len(names)):
            for j in range(i):
                key = (t["group"], names[j], names[i])
                assert key in ours, f"no correlation row {key} in {sorted(ours)}"
                assert abs(ours[key] - values[i][j]) <= RE_CORR_ABS_TOL, f"{key}: {ours[key]} vs {values[i][j]}"


@pytest.mark.parametrize("name", CASE_PARAMS)
def test_dispersion(name, env):
    from glmmdiag.fit.families import get_family

    fit, ref = env.fit(name), env.ref(name)
    fam = get_family(CASES[name].family, CASES[name].kwargs.get("link"))
    if fam.name == "gaussian":
        assert fit.dispersion is not None
        assert float(fit.dispersion) == pytest.approx(ref["sigma"], rel=SIGMA_REL_TOL)
        resid = fit.varcorr[fit.varcorr["grp"] == "Residual"]
        assert float(resid["sdcor"].iloc[0]) == pytest.approx(float(fit.dispersion), rel=1e-10)
    elif fam.n_psi == 0:
        assert fit.dispersion is None
    else:
        # glmmTMB's sigma(), and its log-scale parameter betad from our psi
        assert float(fit.dispersion) == pytest.approx(ref["sigma"], rel=DISPERSION_REL_TOL)
        assert float(fam.glmmtmb_betad(fit.psi)) == pytest.approx(ref["betad"], abs=2 * DISPERSION_REL_TOL)
        assert fit.n_params == ref["df_logLik"]


def _first_term(env, name):
    fit, ref = env.fit(name), env.ref(name)
    rf = ref["ranef_first_term"]
    group = rf["term"]
    assert group in fit.ranef, f"ranef has {list(fit.ranef)}; reference's first term is {group!r}"
    return fit, rf, group


@pytest.mark.parametrize("name", MIXED_CASE_PARAMS)
def test_ranef_layout(name, env):
    fit, ref = env.fit(name), env.ref(name)
    assert set(fit.ranef) == set(ref["ngroups"])
    assert set(fit.ranef_condvar) == set(ref["ngroups"])
    for term in ref["random"]:
        g = term["group"]
        modes, condvar = fit.ranef[g], fit.ranef_condvar[g]
        assert isinstance(modes, pd.DataFrame) and isinstance(condvar, pd.DataFrame)
        assert modes.shape == (ref["ngroups"][g], len(_as_list(term["terms"])))
        assert list(modes.columns) == _as_list(term["terms"])
        assert condvar.shape == modes.shape
        assert list(condvar.columns) == list(modes.columns)
        assert [str(i) for i in condvar.index] == [str(i) for i in modes.index]
        assert np.all(np.isfinite(modes.to_numpy(float)))
        assert np.all(condvar.to_numpy(float) >= 0)


@pytest.mark.parametrize("name", MIXED_CASE_PARAMS)
def test_ranef_modes_first_term(name, env):
    fit, rf, group = _first_term(env, name)
    modes = fit.ranef[group]
    k = len(rf["levels"])
    assert modes.shape[0] == rf["n_levels"]
    assert [str(i) for i in modes.index[:k]] == [str(v) for v in rf["levels"]]
    report = []
    for rname, r in env.refs(name):
        rr = r.get("ranef_first_term")
        if rr is None or rr["term"] != group:
            continue
        worst = 0.0
        for col in _as_list(rr["columns"]):
            want = np.asarray(rr["modes"][col], float)
            worst = max(worst, _worst(modes[col].to_numpy(float)[:k], want, MODE_ABS_TOL + MODE_REL_TOL * np.abs(want)))
        report.append(f"{rname}: {worst:.2f} x tolerance")
        if worst <= 1:
            return
    pytest.fail(f"conditional modes of {group} off: " + "; ".join(report))


@pytest.mark.parametrize("name", MIXED_CASE_PARAMS)
def test_ranef_cond_sd_first_term(name, env):
    fit, rf, group = _first_term(env, name)
    condvar = fit.ranef_condvar[group]
    k = len(rf["levels"])
    glmmtmb = env.load_reference(name)["engine"] == "glmmTMB"
    for col in _as_list(rf["columns"]):
        want = np.asarray(rf["cond_sd"][col], float)
        got = np.sqrt(condvar[col].to_numpy(float)[:k])
        tol = MODE_ABS_TOL + MODE_REL_TOL * np.abs(want)
        if glmmtmb:
            assert np.all(got <= want + tol), f"{col}: cond SD {got} above glmmTMB's {want}"
            ratio = CASES[name].condsd_min_ratio
            assert np.all(got >= ratio * want), f"{col}: cond SD {got} far below {want}"
        else:
            assert _worst(got, want, tol) <= 1, f"{col}: cond SD {got} vs lme4 {want}"


@pytest.mark.parametrize("name", ["salamanders_poisson", "salamanders_nbinom2", "salamanders_nbinom1"])
def test_glmmtmb_condsd_adds_fixed_effect_uncertainty(name, env):
    """(added) glmmTMB's conditional SDs = ours (beta, theta, psi fixed) plus the propagated
    uncertainty of beta, g_j' vcov g_j with g_j = d b^_j / d beta (theta's part is negligible on
    Salamanders' 23 sites, psi's small): within 4 %."""
    from glmmdiag.fit.laplace import GLMMProblem

    fit, rf, group = _first_term(env, name)
    st = fit._st
    prob = GLMMProblem(fit.design, fit.family)

    def modes(beta):
        return st.theta[0] * prob.pirls(beta, st.theta, u0=st.u, psi=st.psi)[0]

    h = 1e-6
    b0 = modes(st.beta)
    G = np.column_stack([(modes(st.beta + h * e) - b0) / h for e in np.eye(len(st.beta))])
    k = len(rf["levels"])
    total = fit.ranef_condvar[group].to_numpy(float)[:k, 0] + np.einsum("ja,ab,jb->j", G, st.vcov, G)[:k]
    want = np.asarray(rf["cond_sd"]["(Intercept)"], float)
    np.testing.assert_allclose(np.sqrt(total), want, rtol=0.04)
