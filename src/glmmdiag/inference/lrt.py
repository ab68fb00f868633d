"""Likelihood-ratio tests between nested fits, as ``anova(m1, m2, ...)`` for lme4/glmmTMB fits.

The statistic is 2 (logLik_larger - logLik_smaller) on as many degrees of freedom as the
difference in the number of parameters. REML criteria of models with different fixed effects
are not comparable, so REML fits are refitted by maximum likelihood first (lme4's ``refit=TRUE``).

Zero-inflated, hurdle and dispersion models (glmmTMB's ``ziformula``, ``dispformula``): every
coefficient of the zero and dispersion models, and the family's dispersion parameter, is a
parameter (``fit.n_params``). A model without a zero model is nested in its zero-inflated version
(pi = 0, logit pi = -inf: on the boundary of the parameter space, so the chi-square p-value is
conservative, with a note); zero models are nested when the smaller's columns lie in the span of
the larger's, and so are dispersion models (a constant dispersion is the intercept). Hurdle
(truncated) and non-hurdle models are not nested in each other.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import linalg, stats
from glmmdiag.errors import GlmmdiagError

__all__ = ["anova"]


_NESTS = {  # (smaller family, larger family): the smaller is the larger at a boundary value
    ("poisson", "nbinom1"),
    ("poisson", "nbinom2"),
    ("gaussian", "t"),
}


def _refit_ml(fit):
    from glmmdiag.fit.engine import fit_or_raise
    from glmmdiag.fit.model import GLMMResults

    st = fit_or_raise(fit.design, fit.family, reml=False, n_agq=fit.n_agq)
    for w in st.warnings:
        warnings.warn(w, stacklevel=3)
    return GLMMResults(fit.design, fit.family, st, reml=False, n_agq=fit.n_agq, data_name=fit.data_name)


def _in_span(A: np.ndarray, B: np.ndarray, tol: float = 1e-7) -> bool:
    """Every column of A lies in the column space of B."""
    if A.shape[1] == 0:
        return True
    if B.shape[1] == 0:
        return False
    coef = linalg.lstsq(B, A)[0]
    resid = A - B @ coef
    return bool(np.all(np.linalg.norm(resid, axis=0) <= tol * np.maximum(np.linalg.norm(A, axis=0), 1.0)))


def _base_name(fam) -> str:
    """The family without its zero / dispersion models (``poisson`` for a zero-inflated Poisson)."""
    return fam.base.name if getattr(fam, "composite", False) else fam.name


def _zero_kind(fam):
    """None, "zi" (zero-inflation) or "hurdle" (a truncated family, with or without a zero model)."""
    return getattr(fam, "zero", None) if getattr(fam, "composite", False) else None


def _zero_matrix(fam):
    """The zero model's matrix, or None."""
    return getattr(fam, "Xz", None) if getattr(fam, "composite", False) else None


def _disp_matrix(fam, n):
    """The dispersion model's matrix (a column of ones for a constant dispersion), or None for a
    family without a dispersion parameter (or a non-composite family with several, as t's)."""
    if getattr(fam, "composite", False):
        return fam.Xd
    return np.ones((n, 1)) if fam.n_psi == 1 else None


def _submodel_reason(small, big, names) -> str | None:
    """None if the zero and dispersion models of ``small`` are nested in those of ``big``."""
    fs, fb = small.family, big.family
    ks, kb = _zero_kind(fs), _zero_kind(fb)
    if ks != kb and not (ks is None and kb == "zi"):
        what = {None: "no zero model", "zi": "a zero-inflation model", "hurdle": "a hurdle (truncated) model"}
        return f"{names[0]} has {what[ks]} and {names[1]} {what[kb]}"
    Zs, Zb = _zero_matrix(fs), _zero_matrix(fb)
    if Zs is not None and (Zb is None or not _in_span(np.asarray(Zs), np.asarray(Zb))):
        return (f"the zero model of {names[0]} ({_formula_of(fs, 'zi')}) is not contained in that of "
                f"{names[1]} ({_formula_of(fb, 'zi')})")
    n = small.design.n
    Ds, Db = _disp_matrix(fs, n), _disp_matrix(fb, n)
    if Ds is not None and Db is not None and not _in_span(np.asarray(Ds), np.asarray(Db)):
        return (f"the dispersion model of {names[0]} ({_formula_of(fs, 'disp')}) is not contained in that of "
                f"{names[1]} ({_formula_of(fb, 'disp')})")
    return None


def _formula_of(fam, key) -> str:
    f = (getattr(fam, "formulas", None) or {}).get(key)
    return f if f else ("~1" if key == "disp" else "none")


def _nested_reason(small, big, names) -> str | None:
    """None if ``small`` is nested in ``big``, else why not."""
    ds, db = small.design, big.design
    fs, fb = small.family, big.family
    if fs.link.name != fb.link.name:
        return f"{names[0]} uses the {fs.link.name} link and {names[1]} the {fb.link.name} link"
    bs, bb = _base_name(fs), _base_name(fb)
    if bs != bb and (bs, bb) not in _NESTS:
        return f"{names[0]} is a {fs.name} model and {names[1]} a {fb.name} model"
    why = _submodel_reason(small, big, names)
    if why is not None:
        return why
    if not _in_span(np.asarray(ds.X), np.asarray(db.X)):
        return (f"the fixed effects of {names[0]} ({ds.formula.fixed}) are not contained in those of "
                f"{names[1]} ({db.formula.fixed})")
    if not np.allclose(ds.offset, db.offset):
        return "the models have different offsets"
    for t in ds.terms:
        same = [u for u in db.terms if set(u.group_vars) == set(t.group_vars)]
        if not same:
            return f"{names[1]} has no random effects for the grouping {t.group!r} of {names[0]}"
        # same grouping, so the same level of each row: (z_s | g) lies in the span of the larger
        # model's terms for g when its columns z_s are combinations of theirs
        if not _in_span(np.asarray(t.z), np.hstack([np.asarray(u.z) for u in same])):
            return (f"the random effects ({' + '.join(t.cnames)} | {t.group}) of {names[0]} are not "
                    f"contained in those of {names[1]}")
    return None


def _boundary_notes(small, big, ns, nb) -> list[str]:
    """Caveats for a comparison whose null hypothesis sits on the boundary of the parameter space."""
    notes = []
    if len(small.design.terms) != len(big.design.terms) or small.theta.size != big.theta.size:
        notes.append(
            f"{nb} vs {ns} tests variance parameters on the boundary of their space (a variance = 0): "
            f"the chi-square p-value is conservative (for one variance, about twice the correct one)"
        )
    bs, bb = _base_name(small.family), _base_name(big.family)
    if bs != bb:
        notes.append(f"{nb} vs {ns}: {bs} is the boundary case of {bb}; the chi-square p-value is conservative")
    if _zero_kind(small.family) is None and _zero_kind(big.family) == "zi":
        notes.append(
            f"{nb} vs {ns} tests zero-inflation: the null (no zero-inflation, pi = 0) is on the boundary of "
            f"the parameter space, so the chi-square p-value is conservative"
        )
    return notes


def anova(*fits, names=None) -> pd.DataFrame:
    """Likelihood-ratio tests between nested fits, as ``anova(m1, m2, ...)`` in lme4/glmmTMB.

    The fits must share the response, the prior weights and the rows used (after missing values
    are dropped), and each must be nested in the next larger one (fixed-effect columns in the
    span of the larger model's, random-effect terms contained in the larger model's, the same
    link; Poisson in a negative binomial and gaussian in t count as nested, at a boundary; zero and
    dispersion models nested as described in the module doc, a model without zero-inflation in
    its zero-inflated version, at a boundary).
    Otherwise a ValueError says what differs. REML fits are refitted by maximum likelihood first,
    as lme4 does, with a warning saying so.

    Returns a DataFrame ordered by the number of parameters with lme4's columns ``npar``,
    ``AIC``, ``BIC``, ``logLik``, ``deviance``, ``Chisq``, ``Df``, ``Pr(>Chisq)`` (each row tested
    against the row above); ``attrs["notes"]`` lists caveats (variances tested on the boundary).

    Examples
    --------
    Does ``period`` matter? A likelihood-ratio test of nested GLMMs (R's ``anova(m0, m1)``):

    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> cbpp = datasets.load("cbpp")
    >>> y = "cbind(incidence, size - incidence)"
    >>> fit0 = glmmdiag.glmm(f"{y} ~ 1 + (1 | herd)", cbpp, family="binomial")
    >>> fit1 = glmmdiag.glmm(f"{y} ~ period + (1 | herd)", cbpp, family="binomial")
    >>> table = glmmdiag.anova(fit0, fit1)
    >>> print(f"chi-square {table['Chisq'].iloc[1]:.2f} on {table['Df'].iloc[1]} df")
    chi-square 25.61 on 3 df
    >>> print(f"AIC {table['AIC'].iloc[0]:.1f} -> {table['AIC'].iloc[1]:.1f}")
    AIC 213.7 -> 194.1
    """
    if len(fits) == 1 and isinstance(fits[0], (list, tuple)):
        fits = tuple(fits[0])
    if len(fits) < 2:
        raise GlmmdiagError("anova() compares two or more nested fits; for tests within one fit use wald_anova(fit)")
    for f in fits:
        if not hasattr(f, "design") or not hasattr(f, "loglik"):
            raise TypeError(f"expected fitted models from glmmdiag.glmm(); got {type(f).__name__}")
    if names is None:
        names = [f"model{i + 1}" for i in range(len(fits))]
    names = [str(n) for n in names]
    if len(names) != len(fits) or len(set(names)) != len(names):
        raise GlmmdiagError(f"names must be {len(fits)} distinct labels; got {names}")

    ref, ref_name = fits[0], names[0]
    for f, nm in zip(fits[1:], names[1:]):
        d0, d1 = ref.design, f.design
        if d0.n != d1.n or not np.array_equal(np.asarray(d0.rows), np.asarray(d1.rows)):
            raise GlmmdiagError(
                f"{ref_name} and {nm} were fitted to different rows ({d0.n} and {d1.n} rows used): a "
                f"likelihood-ratio test needs the same observations; missing values in a variable only one "
                f"model uses drop different rows -- fit both models to the same complete-case data"
            )
        if not (np.allclose(d0.y, d1.y, rtol=1e-12, atol=0) and np.allclose(d0.w, d1.w, rtol=1e-12, atol=0)):
            raise GlmmdiagError(
                f"{ref_name} and {nm} are fitted to different responses ({d0.response_name!r} and "
                f"{d1.response_name!r}, or different weights/trials); their likelihoods are not comparable"
            )

    if any(f.reml for f in fits):
        warnings.warn("refitting model(s) with ML (instead of REML)", UserWarning, stacklevel=2)
        fits = tuple(_refit_ml(f) if f.reml else f for f in fits)

    order = sorted(range(len(fits)), key=lambda i: fits[i].n_params)
    fits = [fits[i] for i in order]
    names = [names[i] for i in order]
    notes = []
    for (s, ns), (b, nb) in zip(zip(fits[:-1], names[:-1]), zip(fits[1:], names[1:])):
        if s.n_params == b.n_params:
            raise GlmmdiagError(
                f"{ns} and {nb} have the same number of parameters ({s.n_params}): they are not nested "
                f"(or are the same model), so a likelihood-ratio test does not apply; compare them by AIC"
            )
        why = _nested_reason(s, b, (ns, nb))
        if why is not None:
            raise GlmmdiagError(f"{ns} is not nested in {nb}: {why}; a likelihood-ratio test needs nested models")
        notes.extend(_boundary_notes(s, b, ns, nb))
    ll = np.array([f.loglik for f in fits])
    npar = np.array([f.n_params for f in fits])
    chisq = np.r_[np.nan, 2 * np.diff(ll)]
    df = np.r_[np.nan, np.diff(npar)]
    p = np.r_[np.nan, stats.chi2.sf(np.maximum(chisq[1:], 0.0), df[1:])]
    out = pd.DataFrame(
        {
            "npar": npar,
            "AIC": [f.aic for f in fits],
            "BIC": [f.bic for f in fits],
            "logLik": ll,
            "deviance": -2 * ll,
            "Chisq": chisq,
            "Df": df,
            "Pr(>Chisq)": p,
        },
        index=pd.Index(names),
    )
    out["Df"] = out["Df"].astype("Int64")
    out.attrs["heading"] = "\n".join(f"{nm}: {f.formula}" for nm, f in zip(names, fits))
    out.attrs["notes"] = notes
    return out
