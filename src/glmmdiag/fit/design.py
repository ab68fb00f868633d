"""Turn a parsed formula and a DataFrame into numeric model pieces.

One missing-value mask covers the response, weights, offsets, fixed and random parts. X comes
from :mod:`glmmdiag.fit.fixed` (formulaic's encoding; its ModelSpec replays it on new data); each random-effects term keeps
the level index of every row and its n x q_k matrix, never a dense n x q Z.
"""
from __future__ import annotations

import dataclasses
import itertools
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg

from glmmdiag.errors import DroppedRowsWarning, GlmmdiagError, GlmmdiagWarning, RankDeficiencyWarning
from glmmdiag.fit.columns import Columns, classic_column, float_values, is_nullable, missing_values
from glmmdiag.fit.expressions import column, evaluate_expression
from glmmdiag.fit.covstruct import make_structure
from glmmdiag.fit.families import Family
from glmmdiag.fit.structured import index_columns
from glmmdiag.fit.fixed import fixed_model_matrix, formulaic_matrix
from glmmdiag.fit.formula import (
    ParsedFormula,
    ReTermSpec,
    expression_variables,
    formula_variables,
    parse_formula,
    quote_dotted_names,
    signed_terms,
    split_top_level,
)

__all__ = ["ReTerm", "Design", "build_design", "r_column_name", "evaluate_expression"]


@dataclass
class ReTerm:
    """A random-effects term: rows map to ``levels`` through ``refs``; ``z`` is n x q."""

    group: str
    group_vars: tuple[str, ...]
    lhs: str
    levels: list[str]
    refs: np.ndarray
    z: np.ndarray
    cnames: list[str]
    spec: object = field(repr=False, default=None)
    structure: str = "us"  # covariance structure (glmmTMB's name; see fit/covstruct.py)
    coords: np.ndarray | None = field(repr=False, default=None)  # q x d, distance structures
    index_vars: tuple[str, ...] = ()  # time column (ar1, toep) or coordinate columns (ou, exp, ...)

    @property
    def label(self) -> str:
        """The term as written: ``(lhs | g)``, or ``ar1(lhs | g)`` with a structure."""
        inner = f"{self.lhs} | {self.group}"
        return f"({inner})" if self.structure == "us" and not self.index_vars else f"{self.structure}({inner})"

    @property
    def nlev(self) -> int:
        return len(self.levels)

    @property
    def q(self) -> int:
        return self.z.shape[1]


@dataclass
class Design:
    formula: ParsedFormula
    y: np.ndarray
    w: np.ndarray  # trials for binomial, prior weights otherwise
    X: np.ndarray
    xnames: list[str]
    x_spec: object
    offset: np.ndarray
    terms: list[ReTerm]
    response_name: str
    rows: np.ndarray  # positions of the used rows in the input data
    n_dropped: int
    dropped_columns: list[str]
    x_kept: np.ndarray | None = None  # columns of the full formulaic X kept after rank check
    offset_column: str | None = None  # ``offset=`` given as a column name (replayed by predict)
    offset_array: bool = False  # ``offset=`` given as values (newdata cannot supply them)

    @property
    def n(self) -> int:
        return len(self.y)


def r_column_name(name: str) -> str:
    """formulaic column name -> the name R's model.matrix gives (``f[T.b]`` -> ``fb``)."""
    if name == "Intercept":
        return "(Intercept)"
    name = re.sub(r"\[(?:T\.)?(.*?)\]", r"\1", name)
    return name.replace(" ** ", "^").replace("**", "^")


def _column(data: pd.DataFrame, name: str):
    """``data[name]``; a :class:`~glmmdiag.errors.ColumnError` naming the column, the number of rows
    and the fix when the data has no such column."""
    return column(data, name)


def _codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes and labels of a grouping variable (R factor level order).

    Parameters
    ----------
    series : Series
        A column without missing values (the design's mask has removed them) in a classic dtype.

    Returns
    -------
    codes : ndarray of intp
        The level of each row, 0-based.
    labels : list of str
        The levels as R prints them: Categorical columns in their category order (unused categories
        dropped), anything else sorted by value (by label when the values do not sort, e.g. an
        object column mixing numbers and strings).
    """
    if isinstance(series.dtype, pd.CategoricalDtype):
        cat = series.array
        if not _all_levels_used(series):
            cat = cat.remove_unused_categories()
        return cat.codes.astype(np.intp), [str(c) for c in cat.categories.tolist()]
    series = classic_column(series)
    try:
        codes, uniq = pd.factorize(series, sort=True)
    except TypeError:  # values of several types that do not compare: sort by their labels
        codes, uniq = pd.factorize(series, sort=False)
        labels = [str(u) for u in uniq.tolist()]
        order = np.argsort(np.array(labels, dtype=object), kind="stable")
        rank = np.empty(len(order), np.intp)
        rank[order] = np.arange(len(order))
        return np.where(codes >= 0, rank[codes], -1).astype(np.intp), [labels[i] for i in order]
    return codes.astype(np.intp), [str(u) for u in uniq.tolist()]


def _group_index(data: pd.DataFrame, group_vars: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """Level index of every row and the level labels of the grouping factor ``a:b:...``.

    Parameters
    ----------
    data : DataFrame or Columns
        The design's rows (no missing values in ``group_vars``).
    group_vars : tuple of str
        The grouping columns; several make their interaction, labelled ``"a:b"``, with the levels
        that occur, in R's order (the first variable varying slowest); none (``| 1``): one level.

    Returns
    -------
    refs : ndarray of intp
    labels : list of str
    """
    if not group_vars:  # ``(... | 1)``: one level holding every row (a single spatial field)
        return np.zeros(len(data), np.intp), ["1"]
    code, labels = _codes(_column(data, group_vars[0]))
    for v in group_vars[1:]:
        c2, l2 = _codes(_column(data, v))
        code = code * len(l2) + c2
        labels = [f"{a}:{b}" for a in labels for b in l2]
    uniq, refs = np.unique(code, return_inverse=True)
    return refs.astype(np.intp), [labels[u] for u in uniq]


def _model_matrix(rhs: str, data: pd.DataFrame):
    X, names, spec = formulaic_matrix(rhs, data)
    return X, [r_column_name(c) for c in names], spec


def _clearly_full_rank(X: np.ndarray) -> bool:
    """True when X is so well conditioned that the pivoted QR below keeps every column.

    Every diagonal entry of a QR factor is the distance of a column from the span of others, so
    |R_ii| >= sigma_min(X), and |R_00| <= sigma_max(X): with sigma_min / sigma_max > 1e-5
    (eigenvalues of X'X, ratio > 1e-10, far above their rounding error of ~1e-16) no |R_ii| falls
    below the QR rank threshold |R_00| max(n, p) eps 10. Anything less clear goes to the QR."""
    G = X.T @ X
    if not np.all(np.isfinite(G)):
        return False
    ev = np.linalg.eigvalsh(G)
    return bool(ev[0] > 1e-10 * ev[-1])


RANK_TOL = 1e-7  # lme4's check.rankX and R's lm/glm QR: a column this close to the others' span is aliased


def _drop_rank_deficient(X: np.ndarray, names: list[str]) -> np.ndarray:
    """Indices of a full-rank subset of X's columns; the others are dropped with a
    RankDeficiencyWarning (lme4's "fixed-effect model matrix is rank deficient so dropping ...").

    As R's lm/glm QR and lme4's rank check (tolerance RANK_TOL, see ``_independent_columns``):
    exact duplicates and near-duplicates such as x + 1e-9 noise are dropped, the later column of
    a pair, whatever the columns' units.
    """
    if X.shape[1] == 0:
        return np.arange(0)
    if _clearly_full_rank(X):  # sigma_min / sigma_max > 1e-5: every scaled |R_ii| > 1e-5 > RANK_TOL
        return np.arange(X.shape[1])
    keep = _independent_columns(X)
    if len(keep) < X.shape[1]:
        dropped = [names[i] for i in sorted(set(range(X.shape[1])) - set(keep))]
        warnings.warn(
            f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} column(s): "
            f"{', '.join(dropped)} (exactly or nearly collinear with the others: relative tolerance "
            f"{RANK_TOL:g})",
            RankDeficiencyWarning,
            stacklevel=4,
        )
    return keep


def _independent_columns(X: np.ndarray) -> np.ndarray:
    """Columns kept in order, as R's LINPACK QR (dqrdc2) does: with every column scaled to unit
    length, a column is aliased when its distance from the span of the columns kept before it is
    at most RANK_TOL (zero columns are aliased). The distances come from a Cholesky factor of the
    scaled X'X grown one kept column at a time (squared distances of 1e-14 are far above the
    Gram matrix's rounding error of ~1e-16)."""
    norms = np.sqrt(np.einsum("ij,ij->j", X, X))
    Xs = X / np.where(norms > 0, norms, 1.0)
    G = Xs.T @ Xs
    keep: list[int] = []
    L = np.zeros((0, 0))
    for j in range(X.shape[1]):
        if norms[j] == 0:
            continue
        lj = linalg.solve_triangular(L, G[keep, j], lower=True) if keep else np.zeros(0)
        r2 = float(G[j, j] - lj @ lj)
        if r2 > RANK_TOL**2:
            k = len(keep)
            L2 = np.zeros((k + 1, k + 1))
            L2[:k, :k], L2[k, :k], L2[k, k] = L, lj, np.sqrt(r2)
            L = L2
            keep.append(j)
    return np.asarray(keep, dtype=int)


def check_rows_vs_parameters(design, family, reml: bool = False) -> None:
    """A clear error when the rows cannot support the parameters: REML needs more rows than
    fixed effects, and a model with an estimated residual scale or dispersion (a linear mixed
    model, or any family with a dispersion parameter) needs at least one row beyond the fixed
    effects. A plain linear model with as many parameters as rows is left to the fit (an exact
    fit, reported with a DegenerateFitWarning, as R's lm)."""
    n, p = design.X.shape
    lmm = family.name == "gaussian" and family.link.name == "identity"
    if reml and n <= p:
        raise GlmmdiagError(
            f"REML needs more rows than fixed-effect parameters: {n} rows, {p} parameters; fit by maximum "
            f"likelihood (reml=False) or use fewer fixed effects"
        )
    if n <= p and ((lmm and design.terms) or (family.n_psi and not lmm)):
        what = "residual variance" if lmm else f"{family.name} family's dispersion"
        raise GlmmdiagError(
            f"{n} rows and {p} fixed-effect parameters: no rows are left to estimate the {what}; use fewer "
            f"fixed effects or more data"
        )


def _all_levels_used(col: pd.Series) -> bool:
    """True when every category of the Categorical ``col`` occurs in it."""
    cat = col.array
    codes = cat.codes
    return bool(np.bincount(codes[codes >= 0], minlength=len(cat.categories)).all())


def _missing(col: pd.Series) -> np.ndarray:
    """Boolean mask of the missing values of a column: NaN, None, NaT and ``pd.NA`` of any dtype."""
    return missing_values(col)


def _classic_columns(frame: pd.DataFrame, series: dict) -> pd.DataFrame:
    """Replace the nullable-dtype columns among ``series`` by their classic dtypes, in place in
    ``series`` and in (a shallow copy of) ``frame``, which formulaic reads.

    The rows are complete by now, so ``Int64`` becomes int64 (a grouping level 3 keeps the label
    "3"), ``boolean`` bool, ``Float64`` float64 and nullable strings object: the design code and
    formulaic then see exactly what they see for the classic dtypes.
    """
    nullable = [v for v, col in series.items() if is_nullable(col.dtype)]
    if not nullable:
        return frame
    frame = frame.copy(deep=False)
    for v in nullable:
        frame[v] = classic_column(series[v]).to_numpy()  # positional: the index may repeat
        series[v] = frame[v]
    return frame


def _as_row_array(value, data: pd.DataFrame, what: str) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, str):
        return float_values(_column(data, value))
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape[0] != len(data):
        raise GlmmdiagError(f"{what} has {arr.shape[0]} values but the data has {len(data)} rows")
    return arr


def _binomial_response(raw, weights, name):
    """Successes and trials from a 0/1 vector, a two-level factor, a bool, or a proportion."""
    if isinstance(raw, pd.Series) and (
        isinstance(raw.dtype, pd.CategoricalDtype) or raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype)
    ):
        codes, labels = _codes(raw)
        if len(labels) < 2:
            raise GlmmdiagError(f"binomial response {name!r} has a single level ({labels}); it needs two")
        y = (codes > 0).astype(float)  # as R: first level = failure, any other = success
        return y, np.ones_like(y) if weights is None else None
    arr = np.asarray(raw)
    if arr.dtype == bool:
        arr = arr.astype(float)
    arr = arr.astype(float)
    if weights is None:
        bad = ~np.isin(arr, (0.0, 1.0))
        if bad.any():
            raise GlmmdiagError(
                f"binomial response {name!r}: {int(bad.sum())} of {len(arr)} rows are not 0/1 (outside the "
                f"support); for proportions pass the number of trials as weights=, for counts use "
                f"cbind(successes, failures)"
            )
        return arr, np.ones_like(arr)
    if ((arr < 0) | (arr > 1)).any():
        raise GlmmdiagError(
            f"binomial response {name!r} with weights= must be a proportion in [0, 1]: "
            f"{int(((arr < 0) | (arr > 1)).sum())} of {len(arr)} rows are outside (outside the support)"
        )
    return arr * weights, weights


def build_design(
    formula: str | ParsedFormula,
    data: pd.DataFrame,
    family: Family,
    weights=None,
    offset=None,
) -> Design:
    if not isinstance(data, pd.DataFrame):
        data = pd.DataFrame(data)
    pf = parse_formula(quote_dotted_names(formula, data.columns)) if isinstance(formula, str) else formula
    pf, poly_columns = _ordered_as_poly(pf, data)
    pf, dummy_columns = _r_dummy_coding(pf, data)
    # 1. which columns are used, and the shared missing-value mask
    used: list[str] = []
    resp_exprs = list(pf.response_cbind) if pf.response_cbind else [pf.response]
    for e in resp_exprs:
        used += sorted(expression_variables(e))
    used += sorted(formula_variables(pf.fixed))
    for t in pf.re_terms:
        used += sorted(t.variables) + list(t.group_vars)
    for e in pf.offsets:
        used += sorted(expression_variables(e))
    if isinstance(weights, str):
        used.append(weights)
    if isinstance(offset, str):
        used.append(offset)
    used = list(dict.fromkeys(used))
    series = {v: _column(data, v) for v in used}
    w_arr = _as_row_array(weights, data, "weights")
    off_arr = _as_row_array(offset, data, "offset")
    if w_arr is not None and not np.all(np.isfinite(w_arr)):
        bad = int((~np.isfinite(w_arr)).sum())
        raise GlmmdiagError(
            f"weights contain {bad} non-finite values (NaN or inf) in {len(w_arr)} rows; weights must be "
            f"finite: fix or drop those rows"
        )
    if w_arr is not None and (w_arr < 0).any():
        raise GlmmdiagError(f"weights must be >= 0: {int((w_arr < 0).sum())} of {len(w_arr)} rows are negative")
    na = np.zeros(len(data), bool)
    dropped_cols = []
    for v, col in series.items():  # one pass: the mask and the columns that have missing values
        miss = _missing(col)
        if miss.any():
            na |= miss
            dropped_cols.append(v)
    if off_arr is not None and np.isnan(off_arr).any():
        na = na | np.isnan(off_arr)
        if not isinstance(offset, str):
            dropped_cols.append("offset=")
    rows = np.flatnonzero(~na)
    n_dropped = int(na.sum())
    if n_dropped:
        if len(rows) == 0:
            raise GlmmdiagError(
                f"no complete rows: all {len(data)} rows have a missing value in {', '.join(dropped_cols)}"
            )
        warnings.warn(
            f"dropped {n_dropped} of {len(data)} rows with missing values (NaN, None, NaT or pd.NA) in "
            f"{', '.join(dropped_cols)}",
            DroppedRowsWarning,
            stacklevel=3,
        )
        frame = data.iloc[rows].reset_index(drop=True)
        series = {v: frame[v] for v in used}
    else:
        frame = data
    frame = _classic_columns(frame, series)
    unused = {  # categories absent from the used rows are dropped (R's droplevels)
        v for v, col in series.items()
        if isinstance(col.dtype, pd.CategoricalDtype)
        and (n_dropped or not _all_levels_used(col))
    }
    if unused:
        frame = frame.copy(deep=False)
        for v in unused:
            frame[v] = series[v] = series[v].cat.remove_unused_categories()
    df = Columns(frame, series)
    w_sub = None if w_arr is None else w_arr[rows]
    n = len(df)

    # 2. response
    if pf.response_cbind:
        s = np.asarray(evaluate_expression(pf.response_cbind[0], df, "cbind() argument"), dtype=float)
        f = np.asarray(evaluate_expression(pf.response_cbind[1], df, "cbind() argument"), dtype=float)
        if family.weight_role != "trials":
            raise GlmmdiagError("cbind(successes, failures) responses need a family of counts out of trials "
                                "(family='binomial' or 'betabinomial')")
        if (f < 0).any():
            raise GlmmdiagError(
                f"cbind({pf.response_cbind[0]}, {pf.response_cbind[1]}): {int((f < 0).sum())} of {n} rows "
                f"have negative failures, i.e. successes > trials (outside the binomial support)"
            )
        if w_sub is not None:
            raise GlmmdiagError("weights= together with a cbind() response is not supported; use one of them")
        y, w = s, s + f
        rname = f"cbind({pf.response_cbind[0]}, {pf.response_cbind[1]})"
    else:
        rname = pf.response
        raw = df[rname] if rname in df.columns else evaluate_expression(rname, df, "response")
        if family.weight_role == "trials":  # binomial, betabinomial
            y, w = _binomial_response(raw, w_sub, rname)
            if w is None:
                w = w_sub
        else:
            if isinstance(raw, pd.Series) and not pd.api.types.is_numeric_dtype(raw.dtype):
                raise GlmmdiagError(f"response {rname!r} must be numeric for the {family.name} family")
            y = float_values(raw)
            w = np.ones(n) if w_sub is None else w_sub
    if not np.all(np.isfinite(y)):
        raise GlmmdiagError(f"response {rname!r} has {int((~np.isfinite(y)).sum())} non-finite values of {n} rows")
    family.check_response(y, w, rname)

    # 3. offsets
    off = np.zeros(n) if off_arr is None else off_arr[rows].copy()
    for e in pf.offsets:
        off += np.asarray(evaluate_expression(e, df, "offset()"), dtype=float)
    if not np.all(np.isfinite(off)):
        raise GlmmdiagError(f"offset has {int((~np.isfinite(off)).sum())} non-finite values of {n} rows")

    # 4. fixed effects
    X, xnames, x_spec = fixed_model_matrix(pf.fixed, df)
    xnames = [_r_dummy_name(_r_poly_name(r_column_name(c), poly_columns), dummy_columns) for c in xnames]
    if X.shape[0] != n:
        raise RuntimeError(f"internal error: the fixed-effects model matrix has {X.shape[0]} rows, expected {n}")
    if not np.all(np.isfinite(X)):
        bad = sorted({xnames[j] for j in np.flatnonzero(~np.isfinite(X).all(axis=0))})
        raise GlmmdiagError(f"non-finite values in fixed-effect columns {bad} ({n} rows)")
    keep = _drop_rank_deficient(X, xnames)
    x_kept = None
    if len(keep) < X.shape[1]:
        x_kept = keep
        X = X[:, keep]
        xnames = [xnames[i] for i in keep]

    # 5. random-effects terms
    terms = [_build_term(t, df, family) for t in pf.re_terms]
    order = sorted(range(len(terms)), key=lambda k: -terms[k].nlev)
    terms = [terms[k] for k in order]
    return Design(pf, y, w, X, xnames, x_spec, off, terms, rname, rows, n_dropped, dropped_cols, x_kept,
                  offset_column=offset if isinstance(offset, str) else None,
                  offset_array=offset is not None and not isinstance(offset, str))


class SimpleTermSpec:
    """Model matrix of an intercept and/or plain numeric columns (``1``, ``x``, ``1 + x``, ``0 + x``),
    built without formulaic; replays on new data like formulaic's ModelSpec."""

    def __init__(self, intercept: bool, columns: list[str]):
        self.intercept, self.columns = intercept, columns

    @classmethod
    def parse(cls, lhs: str, df: pd.DataFrame):
        intercept, cols = True, []
        for part in [p.strip() for p in lhs.replace("-", "+-").split("+") if p.strip()]:
            if part in ("0", "-1"):
                intercept = False
            elif part == "1":
                intercept = True
            elif part.isidentifier() and part in df.columns and pd.api.types.is_numeric_dtype(df[part].dtype) \
                    and not pd.api.types.is_bool_dtype(df[part].dtype):
                cols.append(part)
            else:
                return None
        return cls(intercept, cols)

    @property
    def column_names(self):
        return (["(Intercept)"] if self.intercept else []) + list(self.columns)

    def get_model_matrix(self, data, na_action=None):
        parts = ([np.ones(len(data))] if self.intercept else []) + [float_values(data[c]) for c in self.columns]
        return np.column_stack(parts) if parts else np.zeros((len(data), 0))


def _poly_wrapped(text: str, columns: list[str]) -> str:
    """Each bare occurrence of the columns in ``text`` as ``C(col, contr.poly)``."""
    for col in columns:
        pat = re.compile(r"(?<![\w.`])" + re.escape(col) + r"(?![\w(`.])")
        out, last = [], 0
        for m in pat.finditer(text):
            before = text[: m.start()].rstrip()
            if before.endswith(("C(", "factor(")):
                continue
            out.append(text[last : m.start()] + f"C({col}, contr.poly)")
            last = m.end()
        text = "".join(out) + text[last:]
    return text


def _ordered_as_poly(pf: ParsedFormula, data: pd.DataFrame) -> tuple[ParsedFormula, list[str]]:
    """R's default contrasts for an ordered factor are polynomial (contr.poly: .L, .Q, .C, ^4, ...):
    ordered Categorical columns used bare in the fixed part or a bar's left-hand side are encoded
    as ``C(col, contr.poly)`` and their columns named as R names them (``dose.L``)."""
    ordered = [c for c in data.columns if isinstance(c, str) and c.isidentifier()
               and isinstance(data[c].dtype, pd.CategoricalDtype) and data[c].cat.ordered]
    if not ordered:
        return pf, []
    texts = [pf.fixed] + [t.lhs for t in pf.re_terms if not t.index_vars]
    used = [c for c in ordered if any(_poly_wrapped(text, [c]) != text for text in texts)]
    if not used:
        return pf, []
    terms = tuple(t if t.index_vars else dataclasses.replace(t, lhs=_poly_wrapped(t.lhs, used)) for t in pf.re_terms)
    return dataclasses.replace(pf, fixed=_poly_wrapped(pf.fixed, used), re_terms=terms), used


def ordered_poly_rhs(rhs: str, data: pd.DataFrame) -> tuple[str, list[str]]:
    """A right-hand side with its bare ordered-Categorical columns as ``C(col, contr.poly)`` (R's
    default contrasts for ordered factors), and those columns (for ``_r_poly_name``)."""
    ordered = [c for c in data.columns if isinstance(c, str) and c.isidentifier()
               and isinstance(data[c].dtype, pd.CategoricalDtype) and data[c].cat.ordered]
    used = [c for c in ordered if _poly_wrapped(rhs, [c]) != rhs]
    return (_poly_wrapped(rhs, used), used) if used else (rhs, [])


_FULL_DUMMY = "C({}, spans_intercept=False)"


def _is_categorical_column(data: pd.DataFrame, name: str) -> bool:
    """Categorical, object and string columns (bool columns keep their own encoding)."""
    if name not in data.columns:
        return False
    dt = data[name].dtype
    return isinstance(dt, pd.CategoricalDtype) or dt == object or pd.api.types.is_string_dtype(dt)


def _expanded_terms(rhs: str) -> tuple[bool, list[tuple[str, ...]]] | None:
    """(intercept, terms as tuples of factors in R's order: by degree, then as written) of a
    fixed part made of ``+``, ``*`` and ``:`` only; None for anything else."""
    intercept, seen, out = True, set(), []
    for sign, piece in signed_terms(rhs):
        if piece in ("0", "-1") or (sign == "-" and piece == "1"):
            intercept = False
            continue
        if sign == "-" or "/" in piece or "%in%" in piece or "**" in piece or piece.startswith("("):
            return None
        if piece == "1":
            continue
        stars, colons = split_top_level(piece, "*"), split_top_level(piece, ":")
        if len(stars) > 1 and len(colons) > 1:
            return None
        factors = [f.strip() for f in (stars if len(stars) > 1 else colons)]
        terms = ([c for k in range(1, len(factors) + 1) for c in itertools.combinations(factors, k)]
                 if len(stars) > 1 else [tuple(factors)])
        for t in terms:
            if frozenset(t) not in seen:
                seen.add(frozenset(t))
                out.append(t)
    return intercept, sorted(out, key=len)


def _r_dummy_coding(pf: ParsedFormula, data: pd.DataFrame) -> tuple[ParsedFormula, list[str]]:
    """R's coding of a factor F inside an interaction term T (``TermCode`` of R's model.c, after
    Chambers & Hastie, Statistical Models in S, p. 38): contrasts when T without F is contained
    in a preceding term (or is empty and the model has an intercept), indicator (dummy) columns
    for every level otherwise. formulaic agrees except when several factors of a term need
    indicators (``y ~ a:b``: R has the intercept and all a x b products, rank deficient, and drops
    the last aliased ones; formulaic re-parameterises to b + a:b, other coefficients). For such a
    term whose categorical factors all need indicators, and which is no margin of a later term,
    each factor is written ``C(f, spans_intercept=False)`` (formulaic's full indicator coding);
    the rank check then drops the columns R drops. Returns the formula and those columns."""
    parsed = _expanded_terms(pf.fixed)
    if parsed is None:
        return pf, []
    intercept, terms = parsed
    rewrite: dict[tuple, tuple] = {}
    for i, t in enumerate(terms):
        cats = [f for f in t if _is_categorical_column(data, f)]
        if len(cats) < 2 or any(set(t) < set(u) for u in terms[i + 1 :]):
            continue
        dummy = []
        for f in cats:
            rest = set(t) - {f}
            contrasts = (not rest and intercept) or any(rest <= set(u) for u in terms[:i])
            dummy.append(not contrasts)
        if all(dummy):
            rewrite[t] = tuple(_FULL_DUMMY.format(f) if f in cats else f for f in t)
    if not rewrite:
        return pf, []
    pieces = ([] if intercept else ["0"]) + [":".join(rewrite.get(t, t)) for t in terms]
    fixed = " + ".join(pieces) if pieces else "1"
    columns = sorted({f for t in rewrite for f in t if _is_categorical_column(data, f)})
    return dataclasses.replace(pf, fixed=fixed), columns


def _r_dummy_name(name: str, columns: list[str]) -> str:
    """``C(a, spans_intercept=False)p:C(b, spans_intercept=False)u`` -> ``ap:bu`` (R's names)."""
    for col in columns:
        name = name.replace(_FULL_DUMMY.format(col), col)
    return name


def _r_poly_name(name: str, columns: list[str]) -> str:
    """``C(dose, contr.poly).L:x`` -> ``dose.L:x`` for the columns made polynomial by default."""
    for col in columns:
        name = name.replace(f"C({col}, contr.poly)", col)
    return name


def _build_structured_term(spec: ReTermSpec, df: pd.DataFrame) -> ReTerm:
    """A term with a covariance structure (``ar1(times + 0 | g)``, ``exp(numFactor(x, y) + 0 | g)``,
    ``cs(f + 0 | g)``, ...): its columns, and the coordinates of a distance structure."""
    refs, levels = _group_index(df, spec.group_vars)
    coords = None
    if spec.index_vars:
        z, cnames, zspec, coords = index_columns(df, spec.structure, spec.index_vars)
    else:
        simple = SimpleTermSpec.parse(spec.lhs, df)
        z, cnames, zspec = ((simple.get_model_matrix(df), simple.column_names, simple) if simple is not None
                            else _model_matrix(spec.lhs, df))
    q = z.shape[1]
    if q < 2 and spec.structure not in ("us", "diag", "homdiag"):
        raise GlmmdiagError(
            f"{spec.label} has {q} coefficient per level: a {spec.structure}() structure correlates several "
            f"(times, locations or factor levels); check the left-hand side"
        )
    n_par = make_structure(spec.structure, q, coords).n_par
    if n_par >= len(df):
        raise GlmmdiagError(
            f"{spec.label} has {n_par} covariance parameters for {len(df)} rows: use a simpler structure"
        )
    return ReTerm(spec.group_name, spec.group_vars, spec.lhs, levels, refs, z, cnames, zspec,
                  structure=spec.structure, coords=coords, index_vars=spec.index_vars)


def _no_residual(family) -> bool:
    """A gaussian model without residual variance (dispformula "~0"): a random effect per row is
    then what carries the residual variance, and is identifiable."""
    return bool(getattr(family, "disp_fixed", False))


def _build_term(spec: ReTermSpec, df: pd.DataFrame, family: Family) -> ReTerm:
    if spec.structure != "us" or spec.index_vars:
        return _build_structured_term(spec, df)
    n = len(df)
    refs, levels = _group_index(df, spec.group_vars)
    simple = SimpleTermSpec.parse(spec.lhs, df)
    if simple is not None:
        z, cnames, zspec = simple.get_model_matrix(df), simple.column_names, simple
    else:
        z, cnames, zspec = _model_matrix(spec.lhs, df)
    name = spec.group_name
    if len(levels) < 2:
        raise GlmmdiagError(
            f"grouping factor {name!r} has only {len(levels)} level in {n} rows: a random effect needs at "
            f"least 2 levels; drop the term or model {name!r} as a fixed effect"
        )
    if z.shape[1] == 0:
        raise GlmmdiagError(f"random-effects term ({spec.lhs} | {name}) has no columns")
    if z.shape[1] > 1 and len(levels) * z.shape[1] >= n:
        message = (f"random-effects term ({spec.lhs} | {name}) has {len(levels)} levels x {z.shape[1]} "
                   f"coefficients >= {n} rows")
        if family.name == "gaussian" and not _no_residual(family):  # lmer's check.nobs.vs.nRE
            raise GlmmdiagError(
                f"{message}: the random slopes are not identifiable from the residual variance; use a "
                f"random intercept (1 | {name}) or a grouping factor with fewer levels"
            )
        # glmer ignores this count: rows with many trials (binomial) or large counts carry the
        # information; warn (lme4 would not) and fit
        warnings.warn(
            f"{message}: the random effects may be weakly identified (one row per coefficient); check "
            f"the variance components", GlmmdiagWarning, stacklevel=4)
    if family.name == "gaussian" and len(levels) >= n and not _no_residual(family):
        raise GlmmdiagError(
            f"grouping factor {name!r} has {len(levels)} levels for {n} rows: in a linear mixed model its "
            f"variance cannot be told apart from the residual variance; drop the term"
        )
    return ReTerm(name, spec.group_vars, spec.lhs, levels, refs, z, cnames, zspec)
