"""Wald chi-square tests per fixed-effect term (type II / III), as ``car::Anova``.

Wald tests use only ``fit.fixef`` and ``fit.vcov`` (the inverse Hessian of the full
likelihood, as glmmTMB's and lme4's ``vcov``).

Type II (the default): a term is tested after all terms that do not contain it, but before its
higher-order relatives (the terms whose factors include all of its factors, ``a:b`` for ``a``).
On the quadratic approximation of the log-likelihood that ``vcov`` describes, dropping the
relatives' coefficients R changes the term's coefficients T to the conditional estimate

    b_T|R = b_T - V_TR V_RR^-1 b_R,   Var(b_T|R) = V_TT - V_TR V_RR^-1 V_RT,

so the statistic is b_T|R' Var(b_T|R)^-1 b_T|R with as many degrees of freedom as the rank of
Var(b_T|R). This is the Wald test of the hypothesis L b = 0 whose rows L = I_T - V_TR V_RR^-1 I_R
span the part of the (term + relatives) coefficient space orthogonal, in the metric V, to the
relatives -- the definition of a type II hypothesis. Terms without relatives are tested by their
own coefficients.

Zero-inflated, hurdle and dispersion models (``ziformula``, ``dispformula``): ``component="cond"``
(the default, as glmmTMB's ``Anova``) tests the conditional model's terms with ``fit.vcov``;
``component="zi"`` / ``"disp"`` tests the terms of the zero / dispersion model with the estimates
``fit.fixef_zi`` / ``fit.fixef_disp`` and their block of the joint covariance ``fit.vcov_full``.

Type III tests every term's own coefficients, b_T' V_TT^-1 b_T, the intercept included. What a
type III main-effect test means depends on the contrasts: with treatment contrasts (R's and
formulaic's default) the main effect of ``a`` in ``a*b`` is the effect of ``a`` at the reference
level of ``b``; use sum-to-zero contrasts (``C(a, contr.sum)``) for the classical meaning.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import linalg, stats

from glmmdiag.inference._terms import component_coefs, component_spec, find_terms, model_terms
from glmmdiag.errors import GlmmdiagError

__all__ = ["wald_anova"]

_COLUMNS = ["Chisq", "Df", "Pr(>Chisq)"]


_COMPONENT_TEXT = {"zi": "zero model, logit scale", "disp": "dispersion model, glmmTMB's betad scale"}

RANK_TOL = 1e-9  # eigenvalues of the block's correlation matrix below this (relative) span no test


def _wald(b: np.ndarray, V: np.ndarray) -> tuple[float, int]:
    """b' V^- b and the rank of V (a generalised inverse for a singular V, as a Wald test needs).

    The rank is taken on the correlation scale, D^-1/2 V D^-1/2 with D = diag(V), so it does not
    depend on the coefficients' units: a coefficient with a huge variance (a level whose
    responses are all 0, a separated predictor) still counts as one degree of freedom, and an
    exactly dependent combination of coefficients does not. The statistic is NaN (with the
    term's number of columns as Df) when V has a non-finite, negative or zero variance: a Wald
    test needs a positive variance for every coefficient.
    """
    if b.size == 0:
        return np.nan, 0
    d = np.diag(V)
    if not (np.all(np.isfinite(V)) and np.all(np.isfinite(b)) and np.all(d > 0)):
        return np.nan, int(b.size)
    s = np.sqrt(d)
    C = V / np.outer(s, s)
    w, U = linalg.eigh(0.5 * (C + C.T))
    keep = w > max(w.max(initial=0.0), 0.0) * RANK_TOL
    if not keep.any():
        return np.nan, 0
    z = U[:, keep].T @ (b / s)
    return float(np.sum(z * z / w[keep])), int(keep.sum())


def _check_fit(fit):
    if not hasattr(fit, "design") or not hasattr(fit, "vcov"):
        raise TypeError(f"expected a fitted model from glmmdiag.glmm(); got {type(fit).__name__}")
    return np.asarray(fit.fixef, float), np.asarray(fit.vcov, float)


def _contrast_note(spec, terms) -> str | None:
    """A note for type III when some term has higher-order relatives and a factor is not coded with
    sum-to-zero contrasts (its main-effect tests then depend on the reference levels)."""
    contained = [t for t in terms if any(o.contains(t) for o in terms)]
    if not contained:
        return None
    non_sum = []
    for var, state in (getattr(spec, "factor_contrasts", None) or {}).items():
        name = type(getattr(state, "contrasts", None)).__name__
        if "Sum" not in name and "Helmert" not in name and "Poly" not in name:
            non_sum.append(str(var))
    labels = ", ".join(t.label for t in contained)
    if non_sum:
        return (
            f"type III tests of {labels} depend on the contrasts: with treatment contrasts "
            f"({', '.join(non_sum)}) each is tested at the reference level of the factors it interacts "
            f"with (and at 0 of interacting covariates); refit with sum-to-zero contrasts, e.g. "
            f"C({non_sum[0]}, contr.sum), for the classical type III hypotheses, or use type II"
        )
    return (
        f"type III tests of {labels} are tested at 0 of any interacting covariate; centre covariates "
        f"for the classical type III hypotheses"
    )


def wald_anova(fit, type: int | str = 2, terms=None, component: str = "cond") -> pd.DataFrame:
    """Wald chi-square test per fixed-effect term, as ``car::Anova(m, type=...)``.

    Parameters
    ----------
    fit : GLMMResults
    type : 2 or 3 (also "II" / "III")
        2: each term after all terms that do not contain it (marginality respected, the intercept
        not tested); 3: each term's own coefficients, the intercept included (see the module doc
        for what that means under treatment contrasts).
    terms : str or list of str, optional
        Only these terms (R's spelling ``"a:b"`` or formulaic's); an unknown name is a KeyError.
    component : "cond", "zi" or "disp"
        Which linear predictor's terms to test (glmmTMB's ``Anova(m, component=...)``): the
        conditional model (default), the zero-inflation / hurdle model (``ziformula``) or the
        dispersion model (``dispformula``; a constant dispersion has only its intercept, tested by
        type III). A component the fit does not have raises GlmmdiagError.

    Returns
    -------
    DataFrame indexed by term with columns ``Chisq``, ``Df``, ``Pr(>Chisq)``; ``attrs["heading"]``
    and, for type III with interactions, ``attrs["note"]``. Columns dropped as rank deficient
    (aliased) do not count towards ``Df``; ``Df`` is the rank of the tested covariance block on
    the correlation scale. A term whose covariance has a NaN, zero or negative variance gets
    ``Chisq`` and ``Pr(>Chisq)`` NaN, with a warning.

    Examples
    --------
    ``car::Anova(m)`` (type II Wald chi-square tests):

    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> cbpp = datasets.load("cbpp")
    >>> fit = glmmdiag.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
    ...                     family="binomial")
    >>> print(glmmdiag.wald_anova(fit).round(3).to_string())
             Chisq  Df  Pr(>Chisq)
    period  24.949   3         0.0
    """
    kind = {2: 2, "2": 2, "II": 2, "ii": 2, 3: 3, "3": 3, "III": 3, "iii": 3}.get(type)
    if kind is None:
        raise GlmmdiagError(f"type must be 2 ('II') or 3 ('III'); got {type!r}")
    _check_fit(fit)
    b, V, _ = component_coefs(fit, component)
    all_terms = model_terms(fit, component)
    tested = [t for t in all_terms if kind == 3 or not t.is_intercept]
    if terms is not None:
        wanted = find_terms(all_terms, terms)
        if kind == 2 and any(t.is_intercept for t in wanted):
            raise GlmmdiagError("the intercept has no type II test (car::Anova omits it); use type=3")
        tested = [t for t in tested if t in wanted]
    rows = []
    for t in tested:
        cT = list(t.columns)
        if kind == 2:
            cR = sorted({c for o in all_terms if o.contains(t) for c in o.columns})
        else:
            cR = []
        bT, VTT = b[cT], V[np.ix_(cT, cT)]
        if cR and cT:
            VTR, VRR = V[np.ix_(cT, cR)], V[np.ix_(cR, cR)]
            K = VTR @ linalg.pinvh(VRR)
            bT = bT - K @ b[cR]
            VTT = VTT - K @ VTR.T
        chisq, df = _wald(bT, VTT)
        p = stats.chi2.sf(chisq, df) if df > 0 and np.isfinite(chisq) else np.nan
        rows.append((t.label, chisq, df, p))
    out = pd.DataFrame([r[1:] for r in rows], index=pd.Index([r[0] for r in rows]), columns=_COLUMNS)
    out["Df"] = out["Df"].astype(int)
    missing = [lab for lab, chisq, df, _ in rows if df > 0 and not np.isfinite(chisq)]
    if missing:
        warnings.warn(
            f"no Wald test for {', '.join(missing)}: the covariance of their estimates has a non-finite or "
            f"non-positive variance (see the fit's warnings); reported as NaN",
            UserWarning,
            stacklevel=2,
        )
    heading = (f"Analysis of Deviance Table (Type {'II' if kind == 2 else 'III'} Wald chisquare tests)\n\n"
               f"Response: {fit.design.response_name}")
    if component != "cond":
        heading += f"\nComponent: {component} ({_COMPONENT_TEXT[component]})"
    out.attrs["heading"] = heading
    out.attrs["component"] = component
    if kind == 3:
        note = _contrast_note(component_spec(fit, component)[0], all_terms)
        if note:
            out.attrs["note"] = note
            warnings.warn(note, UserWarning, stacklevel=2)
    return out
