"""The fixed-effect terms of a fit and the columns of ``fit.fixef`` each one owns.

The mapping comes from formulaic's model spec (``term_indices``: term -> columns of the full
model matrix), shifted through ``design.x_kept`` when rank-deficient columns were dropped; names
are never parsed. Term labels follow R (``I(age^2)``, ``urban:ch``, ``(Intercept)``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glmmdiag.errors import ColumnError, GlmmdiagError

__all__ = ["ModelTerm", "model_terms", "find_terms", "r_label", "component_spec", "component_coefs",
           "COMPONENTS"]

COMPONENTS = ("cond", "zi", "disp")  # glmmTMB's names of the linear predictors of a fit


@dataclass(frozen=True)
class ModelTerm:
    label: str  # as R's term.labels ("extract:gen"); "(Intercept)" for the intercept
    factors: frozenset  # the factor expressions (formulaic) the term multiplies
    columns: tuple  # positions in fit.fixef / fit.vcov
    n_aliased: int  # columns of this term dropped as rank deficient
    formulaic: str  # formulaic's own spelling, accepted as an alias

    @property
    def is_intercept(self) -> bool:
        return not self.factors

    def contains(self, other: "ModelTerm") -> bool:
        """True if this term is a higher-order relative of ``other`` (its factors are a strict
        superset), as ``x:f`` contains ``x`` and ``f``; the intercept is contained in nothing."""
        return bool(other.factors) and other.factors < self.factors


def r_label(expr: str) -> str:
    """formulaic spelling of a factor expression -> R's (``I(age ** 2)`` -> ``I(age^2)``)."""
    return expr.replace(" ** ", "^").replace("**", "^")


def component_spec(fit, component: str = "cond"):
    """(model spec, kept columns or None) of a component's fixed part; spec None for a constant
    dispersion model, which has its intercept only.

    Raises
    ------
    GlmmdiagError
        For an unknown component, or one the fit does not have (no ``ziformula``; a family without
        a dispersion parameter).
    """
    if component not in COMPONENTS:
        raise GlmmdiagError(f"component must be one of {list(COMPONENTS)}; got {component!r}")
    if component == "cond":
        return fit.design.x_spec, fit.design.x_kept
    fam = fit.family
    k = getattr(fam, "kz" if component == "zi" else "kd", 0) if getattr(fam, "composite", False) else 0
    if not k:
        what = ("no zero model (fit it with ziformula=...)" if component == "zi" else
                "no dispersion model (fit it with dispformula=..., or ziformula=... for a family with a "
                "dispersion parameter)")
        raise GlmmdiagError(f"component {component!r}: the model has {what}")
    if component in fam.specs:
        return fam.specs[component]
    return None, None


def component_coefs(fit, component: str = "cond") -> tuple[np.ndarray, np.ndarray, list]:
    """(estimates, covariance block, positions in ``fit.vcov_full``) of a component's coefficients."""
    if component == "cond":
        b = np.asarray(fit.fixef, float)
        return b, np.asarray(fit.vcov, float), list(range(b.size))
    component_spec(fit, component)  # checks that the fit has it
    est = fit.fixef_zi if component == "zi" else fit.fixef_disp
    V = fit.vcov_full
    pos = [V.index.get_loc(f"{component}~{n}") for n in est.index]
    Vf = V.to_numpy(float)
    return est.to_numpy(float), Vf[np.ix_(pos, pos)], pos


def model_terms(fit, component: str = "cond") -> list[ModelTerm]:
    """The terms of ``fit``'s fixed part (or of its ``"zi"`` / ``"disp"`` model) in model order,
    with their coefficient positions (in ``fit.fixef``, ``fit.fixef_zi``, ``fit.fixef_disp``)."""
    spec, kept = component_spec(fit, component)
    if spec is None:  # a constant dispersion: the intercept only
        return [ModelTerm("(Intercept)", frozenset(), (0,), 0, "1")]
    return spec_terms(spec, kept)


def spec_terms(spec, kept) -> list[ModelTerm]:
    """The terms of a model spec, their columns shifted through ``kept`` (dropped aliased columns)."""
    ncol_full = len(spec.column_names)
    if kept is None:
        pos_of = np.arange(ncol_full)
    else:
        pos_of = np.full(ncol_full, -1)
        pos_of[np.asarray(kept, int)] = np.arange(len(kept))
    out = []
    for term, cols in spec.term_indices.items():
        factors = [f for f in term.factors if str(f.expr) != "1"]
        exprs = frozenset(str(f.expr) for f in factors)
        label = "(Intercept)" if not factors else ":".join(r_label(str(f.expr)) for f in factors)
        kept_cols = tuple(int(pos_of[c]) for c in cols if pos_of[c] >= 0)
        out.append(ModelTerm(label, exprs, kept_cols, len(cols) - len(kept_cols), str(term)))
    return out


def find_terms(terms: list[ModelTerm], names) -> list[ModelTerm]:
    """The terms called ``names`` (R or formulaic spelling; ``a:b`` in either factor order)."""
    if isinstance(names, str):
        names = [names]
    by_name = {}
    for t in terms:
        by_name[t.label] = t
        by_name[t.formulaic] = t
        by_name[frozenset(r_label(f) for f in t.factors)] = t
    out = []
    for nm in names:
        key = str(nm).strip()
        t = by_name.get(key)
        if t is None:
            t = by_name.get(frozenset(r_label(p.strip()) for p in key.split(":")))
        if t is None:
            avail = ", ".join(repr(t.label) for t in terms)
            raise ColumnError(f"term {key!r} is not in the model's fixed part; its terms are {avail}")
        out.append(t)
    return out
