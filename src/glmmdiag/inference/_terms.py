"""The fixed-effect terms of a fit and the columns of ``fit.fixef`` each one owns.

The mapping comes from formulaic's model spec (``term_indices``: term -> columns of the full
model matrix), shifted through ``design.x_kept`` when rank-deficient columns were dropped; names
are never parsed. Term labels follow R (``I(age^2)``, ``urban:ch``, ``(Intercept)``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from glmmdiag.errors import ColumnError

__all__ = ["ModelTerm", "model_terms", "find_terms", "r_label"]


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


def model_terms(fit) -> list[ModelTerm]:
    """The terms of ``fit``'s fixed part in model order, with their ``fixef`` positions."""
    design = fit.design
    spec = design.x_spec
    ncol_full = len(spec.column_names)
    if design.x_kept is None:
        pos_of = np.arange(ncol_full)
    else:
        pos_of = np.full(ncol_full, -1)
        pos_of[np.asarray(design.x_kept, int)] = np.arange(len(design.x_kept))
    out = []
    for term, cols in spec.term_indices.items():
        factors = [f for f in term.factors if str(f.expr) != "1"]
        exprs = frozenset(str(f.expr) for f in factors)
        label = "(Intercept)" if not factors else ":".join(r_label(str(f.expr)) for f in factors)
        kept = tuple(int(pos_of[c]) for c in cols if pos_of[c] >= 0)
        out.append(ModelTerm(label, exprs, kept, len(cols) - len(kept), str(term)))
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
