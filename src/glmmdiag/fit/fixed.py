"""The fixed-effects model matrix X, built without formulaic for the formulas most models use.

formulaic materialises a model matrix in a few milliseconds, which is most of the fit time of a
small mixed model. The common right-hand sides -- an intercept plus main effects and
interactions (``a*b``, ``a:b``) of numeric columns, factor columns and simple transforms
(``I(x**2)``, ``log(x)``, ``scale(x)``) in which every lower-order part of an interaction is
present -- are encoded here directly, with formulaic's column order and names:

* terms are expanded (``a*b*c`` -> ``a + b + c + a:b + a:c + b:c + a:b:c``), deduplicated, and
  stably sorted by degree;
* a factor with levels l_0, ..., l_{m-1} gives treatment-contrast columns ``f[T.l_j]``, j >= 1
  (every factor is reduced-rank because every lower-order margin is in the model);
* an interaction is the row-wise product of its factors' columns, first factor varying fastest.

Nullable columns (``Int64``, ``Float64``, ``string``) are read in their classic dtypes. Anything
else (no intercept, term removal, ``C()``, boolean columns, powers of sums, ...) goes through
formulaic. The formulaic ModelSpec, which replays the encoding on new data (predict,
marginal means, term-wise tests), is built lazily on first use and checked against the columns
built here.
"""
from __future__ import annotations

import ast
import functools
import itertools

import formulaic
import numpy as np
import pandas as pd

from glmmdiag.fit.columns import as_frame, classic_column, float_values
from glmmdiag.errors import ColumnError, FormulaError, GlmmdiagError
from glmmdiag.fit.expressions import FORMULAIC_CONTEXT
from glmmdiag.fit.formula import formula_variables, signed_terms, split_top_level

__all__ = ["fixed_model_matrix", "formulaic_matrix", "LazyModelSpec", "SafeModelSpec", "integers_as_float"]

_FUNCS = {  # the functions formulaic's namespace knows by these names
    "I": lambda x: x,
    "log": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "exp": np.exp,
    "abs": np.abs,
}
_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


class _Fallback(Exception):
    """The right-hand side is outside the fast path: let formulaic build it."""


def fixed_model_matrix(rhs: str, data: pd.DataFrame):
    """``(X, formulaic-style column names, spec)`` for the fixed part ``rhs`` of a formula."""
    try:
        X, names = _fast_matrix(rhs, data)
    except _Fallback:
        return formulaic_matrix(rhs, data)
    return X, names, LazyModelSpec(rhs, as_frame(data), names)


def formulaic_matrix(rhs: str, data: pd.DataFrame):
    """``(X, formulaic column names, ModelSpec)`` from formulaic itself.

    ``rhs`` is checked against the formula whitelist first (:func:`formula_variables`, cached);
    formulaic evaluates it in :data:`~glmmdiag.fit.expressions.FORMULAIC_CONTEXT` (no Python
    builtins, a numpy with only the whitelisted functions), with integer columns as float64.
    The returned spec replays the same way on new data (:class:`SafeModelSpec`).
    """
    variables = formula_variables(rhs)
    frame = integers_as_float(as_frame(data), variables)
    try:
        mm = formulaic.model_matrix(rhs, frame, na_action="ignore", context=FORMULAIC_CONTEXT)
    except (FormulaError, ColumnError):
        raise
    except Exception as e:
        raise GlmmdiagError(f"cannot build the model matrix for {rhs!r}: {e}") from None
    spec = SafeModelSpec(mm.model_spec, variables)
    return np.asarray(mm, dtype=float), list(mm.model_spec.column_names), spec


def integers_as_float(frame: pd.DataFrame, names) -> pd.DataFrame:
    """``frame`` with its integer columns among ``names`` as float64 (a shallow copy if any),
    so that ``I(a * a)`` is computed in float64 by formulaic as by the fast path."""
    if not isinstance(frame, pd.DataFrame):
        return frame
    ints = [v for v in names if v in frame.columns and pd.api.types.is_integer_dtype(frame[v].dtype)]
    if not ints:
        return frame
    frame = frame.copy(deep=False)
    for v in ints:
        frame[v] = frame[v].astype("float64")
    return frame


class SafeModelSpec:
    """formulaic's ModelSpec, replayed on new data (predict, marginal means) as it was built:
    in the whitelisted context, with integer columns as float64. Other attributes are the spec's."""

    def __init__(self, spec, variables):
        self._model_spec, self._variables = spec, frozenset(variables)

    def get_model_matrix(self, data, **kwargs):
        kwargs.setdefault("context", FORMULAIC_CONTEXT)
        return self._model_spec.get_model_matrix(integers_as_float(data, self._variables), **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("_model_spec", "_variables"):
            raise AttributeError(name)
        return getattr(self._model_spec, name)


class LazyModelSpec:
    """Stands in for formulaic's ModelSpec of a matrix built by the fast path.

    ``column_names`` is known at once; any other attribute (``get_model_matrix``,
    ``term_indices``, ``factor_contrasts``, ...) builds the real ModelSpec from the fitted data
    on first use and checks that it encodes the same columns.
    """

    def __init__(self, rhs: str, data: pd.DataFrame, names: list[str]):
        self._rhs, self._data, self._names, self._real = rhs, data, list(names), None

    @property
    def column_names(self) -> list[str]:
        return list(self._names)

    def _spec(self):
        if self._real is None:
            _, names, spec = formulaic_matrix(self._rhs, self._data)
            if names != self._names:
                raise RuntimeError(
                    f"internal error: the fixed-effects columns {self._names} differ from formulaic's {names} "
                    f"for {self._rhs!r}; please report this formula"
                )
            self._real, self._data = spec, None
        return self._real

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("_rhs", "_data", "_names", "_real"):
            raise AttributeError(name)
        return getattr(self._spec(), name)


def _terms(rhs: str) -> list[tuple[str, ...]]:
    """Expanded terms as tuples of factor expressions, sorted by degree; the intercept is required."""
    seen, out = set(), []
    for sign, piece in signed_terms(rhs):
        if sign == "-" or piece == "0":
            raise _Fallback  # term removal or no intercept
        if piece == "1":
            continue
        stars, colons = split_top_level(piece, "*"), split_top_level(piece, ":")
        if len(stars) > 1 and len(colons) > 1:
            raise _Fallback
        if len(stars) > 1:
            factors = [s.strip() for s in stars]
            expanded = [c for k in range(1, len(factors) + 1) for c in itertools.combinations(factors, k)]
        else:
            expanded = [tuple(c.strip() for c in colons)]
        for term in expanded:
            key = frozenset(term)
            if len(key) != len(term) or "" in key:
                raise _Fallback
            if key not in seen:
                seen.add(key)
                out.append(term)
    return sorted(out, key=len)


def _factor_columns(expr: str, data: pd.DataFrame, cache: dict):
    """``(matrix of columns, column labels, is categorical)`` of one factor expression.

    Parameters
    ----------
    expr : str
        A column name or a numeric transform such as ``I(x**2)``.
    data : DataFrame or Columns
    cache : dict
        Columns already built for this matrix, by expression.

    Returns
    -------
    tuple
        Categorical, object and string columns (``str``, ``string[python]``,
        ``string[pyarrow]``) give treatment-contrast indicators; numeric columns (nullable ones
        included) their values. Missing values give NaN rows, which the caller reports (never
        the reference level's zeros).

    Raises
    ------
    _Fallback
        For anything formulaic should build (unknown names, bool and ``boolean`` columns, which
        formulaic encodes as 0/1, other dtypes, one-level factors).
    """
    if expr in cache:
        return cache[expr]
    if expr.isidentifier():
        if expr not in data.columns:
            raise _Fallback
        s = classic_column(data[expr])  # nullable dtypes -> numpy / object
        if isinstance(s.dtype, pd.CategoricalDtype):
            levels = s.array.categories.tolist()
            codes = np.asarray(s.array.codes)
            out = _treatment(codes, levels, expr)
        elif s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
            try:
                codes, levels = pd.factorize(s, sort=True)
            except TypeError:
                raise _Fallback from None
            out = _treatment(codes, list(levels), expr)
        elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            out = (float_values(s)[:, None], [expr], False)
        else:
            raise _Fallback
    else:
        values = np.asarray(_evaluate(expr, data), dtype=float)
        if values.shape != (len(data),):
            raise _Fallback
        out = (values[:, None], [_format(expr)], False)
    cache[expr] = out
    return out


def _treatment(codes: np.ndarray, levels: list, name: str):
    """Treatment-contrast indicator columns for levels 1..m-1 (level 0 is the reference).

    Parameters
    ----------
    codes : ndarray of int
        Level of each row, -1 for a missing value.
    levels : list
        The levels in order; the first is the reference.
    name : str
        The factor's name, for the column labels ``name[T.level]``.

    Returns
    -------
    tuple
        ``(n x (m-1) indicator matrix, labels, True)``; a row with a missing value is all NaN
        (never the reference level's zeros).
    """
    if len(levels) < 2:
        raise _Fallback
    cols = (codes[:, None] == np.arange(1, len(levels))[None, :]).astype(float)
    missing = codes < 0
    if missing.any():
        cols[missing] = np.nan
    return cols, [f"{name}[T.{lev}]" for lev in levels[1:]], True


@functools.lru_cache(maxsize=256)
def _format(expr: str) -> str:
    return ast.unparse(ast.parse(expr, mode="eval")).replace("\n", " ")


@functools.lru_cache(maxsize=256)
def _parse(expr: str):
    """The expression's syntax tree (None if it does not parse); trees are only read."""
    try:
        return ast.parse(expr, mode="eval")
    except SyntaxError:
        return None


def _evaluate(expr: str, data: pd.DataFrame) -> np.ndarray:
    """Evaluate a numeric transform of numeric columns (calls from a small whitelist, arithmetic)."""
    tree = _parse(expr)
    if tree is None:
        raise _Fallback
    if isinstance(tree.body, ast.Call) and isinstance(tree.body.func, ast.Name) and tree.body.func.id == "scale":
        call = tree.body
        if len(call.args) != 1 or call.keywords:
            raise _Fallback
        x = _eval_node(call.args[0], data)
        centred = x - x.mean()
        sd = np.sqrt(np.sum(centred**2) / (len(x) - 1)) if len(x) > 1 else 0.0
        if not sd > 0:
            raise GlmmdiagError(
                f"{expr} is undefined: its argument is constant over the {len(x)} rows (standard deviation 0); "
                f"drop the term, or use center(...) to centre without scaling"
            )
        return centred / sd
    return _eval_node(tree.body, data)


def _eval_node(node, data: pd.DataFrame) -> np.ndarray:
    if isinstance(node, ast.Name):
        if node.id not in data.columns:
            raise _Fallback
        s = data[node.id]
        if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            raise _Fallback
        return float_values(s)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return np.float64(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, _OPS):
        a, b = _eval_node(node.left, data), _eval_node(node.right, data)
        return {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide,
                ast.Pow: np.power}[type(node.op)](a, b)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, _OPS):
        v = _eval_node(node.operand, data)
        return -v if isinstance(node.op, ast.USub) else v
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS
            and len(node.args) == 1 and not node.keywords):
        return _FUNCS[node.func.id](_eval_node(node.args[0], data))
    raise _Fallback


def _fast_matrix(rhs: str, data: pd.DataFrame):
    terms = _terms(rhs)
    n = len(data)
    cache: dict = {}
    blocks, names = [np.ones((n, 1))], ["Intercept"]
    present = {frozenset()}
    for term in terms:
        parts = [_factor_columns(f, data, cache) for f in term]
        categorical = [f for f, (_, _, is_cat) in zip(term, parts) if is_cat]
        numeric = frozenset(term) - set(categorical)
        for k in range(len(categorical)):  # every lower-order margin must already be in the model
            for sub in itertools.combinations(categorical, k):
                if numeric | frozenset(sub) not in present:
                    raise _Fallback
        present.add(frozenset(term))
        cols, labels, _ = parts[0]
        for m, lab, _ in parts[1:]:  # first factor varies fastest
            cols = (cols[:, :, None] * m[:, None, :]).reshape(n, -1, order="F")
            labels = [f"{a}:{b}" for b in lab for a in labels]
        blocks.append(cols)
        names.extend(labels)
    X = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    return X, names
