"""Formulas are data, never code: the whitelist every formula expression passes, and the evaluator.

Every expression in a formula -- the response, the arguments of ``cbind()`` and ``offset()``,
each factor of the fixed part, the left-hand side of each bar -- is parsed with :mod:`ast` and
walked by :func:`check_expression` before anything is evaluated or handed to formulaic. An
expression may contain only

* column names: plain identifiers (``x``) or back-quoted names (```log.area```); names that
  start with ``__`` are refused;
* numbers (``2``, ``0.5``, ``1e-3``) and, as comparison operands and documented keyword
  values, strings (``f == "a"``, ``Treatment(reference="b")``);
* arithmetic ``+ - * / // % **`` (R's ``^`` inside calls is rewritten to ``**``), unary
  ``- + ~``, ``&`` and ``|``, comparisons ``== != < <= > >=``;
* calls of :data:`FUNCTIONS` (``log``, ``exp``, ``sqrt``, ``I``, ...), ``np.NAME`` /
  ``numpy.NAME`` for NAME in :data:`NUMPY_FUNCTIONS`, and in the fixed part and bar left-hand
  sides the formulaic transforms :data:`TRANSFORMS` (``C``, ``factor``, ``scale``, ``center``,
  ``poly``, ``bs``, ``ns``; bs and ns as R's ``splines``) with the keywords of :data:`KEYWORDS`; ``C()``'s contrasts are one of
  :data:`CONTRASTS` (``contr.sum``, ``Treatment(reference="b")``, ...).

Nothing else: no other attribute access, subscripts, lambdas, comprehensions, ``:=``,
f-strings, starred or ``**`` arguments, ``and``/``or``, conditional expressions, names that
are neither columns nor whitelisted functions. A refused expression raises
:class:`~glmmdiag.errors.FormulaError` naming the offending piece.

:func:`evaluate_expression` evaluates response, ``cbind()`` and ``offset()`` expressions by
walking the checked tree (no ``eval``), with every numeric column as float64, so that
``offset(log(a * b))`` on int32 columns or ``cbind(s, n - s)`` on uint8 columns cannot
overflow. :data:`FORMULAIC_CONTEXT` is the namespace formulaic evaluates the fixed part in:
the whitelisted functions, a numpy stand-in with only the whitelisted names, and every Python
builtin shadowed by a refusal.
"""
from __future__ import annotations

import ast
import builtins
import functools
import math
import operator
import re
import types
from dataclasses import dataclass

import numpy as np
import pandas as pd

from glmmdiag.errors import ColumnError, FormulaError, GlmmdiagError

__all__ = [
    "FUNCTIONS",
    "NUMPY_FUNCTIONS",
    "TRANSFORMS",
    "CONTRASTS",
    "KEYWORDS",
    "FORMULAIC_CONTEXT",
    "Checked",
    "check_expression",
    "check_column_name",
    "evaluate_expression",
    "column",
    "allowed_summary",
    "short",
]

# name -> (function, min positional args, max positional args)
FUNCTIONS: dict[str, tuple] = {
    "I": (lambda x: x, 1, 1),
    "log": (np.log, 1, 1),
    "log1p": (np.log1p, 1, 1),
    "log2": (np.log2, 1, 1),
    "log10": (np.log10, 1, 1),
    "exp": (np.exp, 1, 1),
    "expm1": (np.expm1, 1, 1),
    "exp2": (np.exp2, 1, 1),
    "sqrt": (np.sqrt, 1, 1),
    "abs": (np.abs, 1, 1),
    "sign": (np.sign, 1, 1),
    "floor": (np.floor, 1, 1),
    "ceiling": (np.ceil, 1, 1),
    "round": (np.round, 1, 2),
    "sin": (np.sin, 1, 1),
    "cos": (np.cos, 1, 1),
    "tan": (np.tan, 1, 1),
    "asin": (np.arcsin, 1, 1),
    "acos": (np.arccos, 1, 1),
    "atan": (np.arctan, 1, 1),
}

# np.NAME / numpy.NAME -> (min, max positional args); never an ``out`` argument
NUMPY_FUNCTIONS: dict[str, tuple[int, int]] = {
    **{name: (1, 1) for name in (
        "log", "log1p", "log2", "log10", "exp", "expm1", "exp2", "sqrt", "square", "abs",
        "absolute", "sign", "floor", "ceil", "sin", "cos", "tan", "arcsin", "arccos", "arctan",
        "sinh", "cosh", "tanh")},
    "round": (1, 2),
    "power": (2, 2),
    "maximum": (2, 2),
    "minimum": (2, 2),
    "clip": (3, 3),
    "where": (3, 3),
}
NUMPY_CONSTANTS = {"pi": math.pi, "e": math.e}

# formulaic's transforms (fixed part and bar left-hand sides only) -> (min, max positional args)
TRANSFORMS: dict[str, tuple[int, int]] = {
    "C": (1, 2),
    "factor": (1, 2),
    "scale": (1, 1),
    "center": (1, 1),
    "poly": (1, 2),
    "bs": (1, 2),
    "ns": (1, 2),
}

# the contrasts C(x, ...) / factor(x, ...) accepts: bare, or called with these keywords
CONTRASTS: dict[str, frozenset] = {
    "Treatment": frozenset({"reference"}),
    "Sum": frozenset(),
    "Helmert": frozenset(),
    "Poly": frozenset(),
    "Diff": frozenset(),
    "contr.treatment": frozenset({"base"}),
    "contr.sum": frozenset(),
    "contr.helmert": frozenset(),
    "contr.poly": frozenset({"scores"}),
    "contr.diff": frozenset(),
    "contr.SAS": frozenset(),
}

# keyword arguments a call may use; their values are literals (numbers, strings, True/False/None
# or lists/tuples of numbers and strings), except C's ``contrasts`` (one of CONTRASTS)
KEYWORDS: dict[str, frozenset] = {
    "C": frozenset({"contrasts", "levels", "spans_intercept"}),
    "factor": frozenset({"contrasts", "levels"}),
    "scale": frozenset({"center", "scale", "ddof"}),
    "poly": frozenset({"degree", "raw"}),
    "bs": frozenset({"df", "knots", "degree", "intercept", "boundary_knots", "include_intercept", "lower_bound",
                     "upper_bound"}),
    "ns": frozenset({"df", "knots", "intercept", "boundary_knots"}),
}

_BINOPS = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide, ast.Mod: np.mod, ast.Pow: np.power,
    ast.BitAnd: np.bitwise_and, ast.BitOr: np.bitwise_or,
}
_UNARY = {ast.USub: np.negative, ast.UAdd: np.positive, ast.Invert: np.invert}
_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge,
}
_MAX_CHARS = 2000
_MAX_NODES = 400
_MAX_EXPONENT = 1024.0
_MAX_BASIS = 50  # largest poly() degree and bs() df/degree: a formula must not build a huge matrix
_BASIS_SIZES = {("poly", "degree"), ("bs", "df"), ("bs", "degree"), ("ns", "df")}
_PLACEHOLDER = "_bq{}_"
try:  # formulaic's own split into string literals and back-quotes (kept in step with it)
    from formulaic.utils.code import UNQUOTED_BACKTICK_MATCHER as _TOKENS
except ImportError:  # pragma: no cover
    _TOKENS = re.compile(r"(\\\"|\"(?:\\\"|[^\"])*\"|\\'|'(?:\\'|[^'])*'|`)")

_DESCRIBE = {
    ast.Attribute: "attribute access", ast.Subscript: "a subscript", ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension", ast.NamedExpr: "an assignment (:=)",
    ast.JoinedStr: "an f-string", ast.FormattedValue: "an f-string", ast.Starred: "a starred argument",
    ast.BoolOp: "and/or (use & and |)", ast.IfExp: "a conditional expression", ast.Dict: "a dict",
    ast.Set: "a set", ast.List: "a list", ast.Tuple: "a tuple", ast.Slice: "a slice",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
}


def allowed_summary(transforms: bool = True) -> str:
    """One sentence saying what a formula expression may contain (used in error messages)."""
    fns = list(FUNCTIONS) + (list(TRANSFORMS) if transforms else [])
    return (
        "a formula may contain column names (`odd name` in back-quotes), numbers, + - * / ** ^, "
        f"comparisons, and calls to {', '.join(fns)} and np.log-style numpy functions "
        "(see 'What a formula may contain' in the README)"
    )


@dataclass(frozen=True)
class Checked:
    """A checked expression: its syntax tree (back-quoted names replaced by placeholders), the
    column names it uses, and the placeholder -> column name map."""

    tree: ast.Expression
    names: frozenset
    aliases: tuple


class _Refusal(Exception):
    def __init__(self, node: ast.AST | None, what: str):
        super().__init__(what)
        self.node, self.what = node, what


def _unquote(expr: str) -> tuple[str, dict[str, str]]:
    """Replace each back-quoted name by an identifier; return the source and the identifier -> name map.

    Back-quotes are found exactly as formulaic finds them before it evaluates an expression
    (a back-quote inside a string literal is part of the string), so the source checked here is
    the source formulaic compiles, up to the spelling of the identifiers: a name that is already
    an identifier stays itself (and meets the same rules as a bare name), any other gets a
    placeholder."""
    aliases: dict[str, str] = {}
    parts = iter(_TOKENS.split(expr))
    out = []
    for part in parts:
        if part != "`":
            out.append(part)
            continue
        name_parts = []
        for nxt in parts:
            if nxt == "`":
                break
            name_parts.append(nxt)
        else:
            raise _Refusal(None, "an unmatched back-quote")
        name = "".join(name_parts)
        if not name.strip():
            raise _Refusal(None, "an empty back-quoted name")
        key = name if name.isidentifier() else _placeholder(expr, len(aliases))
        aliases[key] = name
        out.append(f" {key} ")
    return "".join(out).strip(), aliases


def _placeholder(expr: str, i: int) -> str:
    key = _PLACEHOLDER.format(i)
    while key in expr:
        key = "_" + key
    return key


def _parse(src: str) -> ast.Expression:
    if len(src) > _MAX_CHARS:
        raise _Refusal(None, f"an expression longer than {_MAX_CHARS} characters")
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as e:
        raise _Refusal(None, f"invalid syntax ({e.msg})") from None
    except (RecursionError, MemoryError, ValueError):
        raise _Refusal(None, "an expression too deeply nested to parse") from None
    if sum(1 for _ in ast.walk(tree)) > _MAX_NODES:
        raise _Refusal(None, f"an expression with more than {_MAX_NODES} parts")
    return tree


class _Checker:
    """Walks a parsed expression and refuses anything outside the whitelist."""

    def __init__(self, aliases: dict[str, str], transforms: bool):
        self.aliases, self.transforms, self.names = aliases, transforms, set()

    def visit(self, node: ast.AST) -> None:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise _Refusal(node, _DESCRIBE.get(type(node), type(node).__name__))
        method(node)

    def visit_Expression(self, node: ast.Expression) -> None:
        self.visit(node.body)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id.startswith("__"):
            raise _Refusal(node, f"the name {node.id!r} (names starting with __)")
        self.names.add(self.aliases.get(node.id, node.id))

    def visit_Constant(self, node: ast.Constant) -> None:
        if not _is_number(node.value):
            raise _Refusal(node, f"the constant {node.value!r} here (numbers only; strings in comparisons)")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if not (_is_numpy(node.value) and node.attr in NUMPY_CONSTANTS):
            raise _Refusal(node, "attribute access")

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if type(node.op) not in _UNARY:
            raise _Refusal(node, "the operator 'not' (use ~)")
        self.visit(node.operand)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if type(node.op) not in _BINOPS:
            raise _Refusal(node, f"the operator {type(node.op).__name__}")
        self.visit(node.left)
        self.visit(node.right)
        if isinstance(node.op, ast.Pow):
            _check_constant_power(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise _Refusal(node, f"the comparison {type(op).__name__} (use == != < <= > >=)")
        for operand in [node.left, *node.comparators]:
            if isinstance(operand, ast.Constant) and isinstance(operand.value, str):
                _check_string(operand)
            else:
                self.visit(operand)

    def visit_Call(self, node: ast.Call) -> None:
        name = _call_name(node.func)
        if name is None:
            raise _Refusal(node, "a call of something other than a whitelisted function")
        arity = _arity(name, self.transforms)
        if arity is None:
            raise _Refusal(node, f"a call to {name}()")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise _Refusal(node, "a starred argument")
        if not arity[0] <= len(node.args) <= arity[1]:
            raise _Refusal(node, f"{name}() with {len(node.args)} positional arguments")
        self.visit(node.args[0])
        for extra in node.args[1:]:
            self._extra_argument(name, extra)
        for kw in node.keywords:
            self._keyword(name, kw)

    def _extra_argument(self, name: str, arg: ast.AST) -> None:
        if name in ("C", "factor"):
            _check_contrast(arg)
        elif name in ("poly", "bs", "ns", "round", "np.round"):
            _check_literal(arg)
            if name in ("poly", "bs", "ns"):  # poly(x, degree), bs(x, df), ns(x, df) as in R
                _check_basis_size(name, "degree" if name == "poly" else "df", arg)
        else:
            self.visit(arg)

    def _keyword(self, name: str, kw: ast.keyword) -> None:
        if kw.arg is None:
            raise _Refusal(kw.value, f"** arguments to {name}()")
        if kw.arg not in KEYWORDS.get(name, ()):
            allowed = ", ".join(sorted(KEYWORDS.get(name, ()))) or "none"
            raise _Refusal(kw.value, f"the keyword {kw.arg}= of {name}() (allowed: {allowed})")
        if kw.arg == "contrasts":
            _check_contrast(kw.value)
        else:
            _check_literal(kw.value)
            if (name, kw.arg) in _BASIS_SIZES:
                _check_basis_size(name, kw.arg, kw.value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_numpy(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id in ("np", "numpy")


def _call_name(func: ast.AST) -> str | None:
    """``log`` -> "log"; ``np.log`` / ``numpy.log`` -> "np.log"; ``contr.sum`` -> "contr.sum"."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        base = "np" if func.value.id == "numpy" else func.value.id
        if base in ("np", "contr"):
            return f"{base}.{func.attr}"
    return None


def _arity(name: str, transforms: bool) -> tuple[int, int] | None:
    if name in FUNCTIONS:
        return FUNCTIONS[name][1:]
    if name.startswith("np."):
        return NUMPY_FUNCTIONS.get(name[3:])
    if transforms and name in TRANSFORMS:
        return TRANSFORMS[name]
    return None


_STRING_FORBIDDEN = frozenset("\"'`\\#\n\r[]{}")


def _check_string(node: ast.Constant) -> None:
    """A string literal (a level name, a keyword value) may not contain quotes, back-quotes,
    backslashes, ``#``, brackets or line breaks: formulaic splices the source text of some calls
    into code of its own, so text that could end its string must never reach it."""
    bad = sorted(set(node.value) & _STRING_FORBIDDEN)
    if bad:
        raise _Refusal(node, f"a string containing {' '.join(repr(c) for c in bad)}")


def _check_literal(node: ast.AST, depth: int = 0) -> None:
    """Keyword values: numbers, strings, True/False/None, -number, lists/tuples of those."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        _check_string(node)
        return
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (int, float))):
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and _is_number(node.operand.value):
        return
    if depth == 0 and isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) <= 100:
        for elt in node.elts:
            _check_literal(elt, 1)
        return
    raise _Refusal(node, "an argument that is not a literal (number, string, True/False, list of these)")


def _check_basis_size(name: str, what: str, node: ast.AST) -> None:
    """``poly(x, degree)`` and ``bs(x, df=, degree=)``: a whole number from 0 to ``_MAX_BASIS``."""
    if name in ("bs", "ns") and isinstance(node, ast.Constant) and node.value is None:
        return  # bs's default: the basis size follows from knots=
    value = _constant_value(node)
    if value is None or not (0 <= value <= _MAX_BASIS) or value != int(value):
        raise _Refusal(node, f"{name}() with {what} = {short(ast.unparse(node), 20)} "
                             f"(a whole number from 0 to {_MAX_BASIS})")


def _check_contrast(node: ast.AST) -> None:
    """C(x, contrasts): ``Sum``, ``contr.sum``, ``Treatment(reference="b")``, ``contr.treatment(base=2)``."""
    call = node if isinstance(node, ast.Call) else None
    name = _call_name(call.func if call else node)
    if name not in CONTRASTS:
        raise _Refusal(node, f"a contrast other than {', '.join(CONTRASTS)}")
    if call is None:
        return
    if len(call.args) > 1 or any(isinstance(a, ast.Starred) for a in call.args):
        raise _Refusal(node, f"{name}() with more than one positional argument")
    for arg in call.args:
        _check_literal(arg)
    for kw in call.keywords:
        if kw.arg not in CONTRASTS[name]:
            raise _Refusal(node, f"the keyword {kw.arg}= of {name}()")
        _check_literal(kw.value)


def _constant_value(node: ast.AST) -> float | None:
    """The float value of a numbers-only subexpression (None if it uses a column)."""
    if isinstance(node, ast.Constant) and _is_number(node.value):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in (ast.USub, ast.UAdd):
        v = _constant_value(node.operand)
        return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS and not isinstance(node.op, (ast.BitAnd, ast.BitOr)):
        a, b = _constant_value(node.left), _constant_value(node.right)
        if a is None or b is None:
            return None
        with np.errstate(all="ignore"):
            return float(_BINOPS[type(node.op)](np.float64(a), np.float64(b)))
    return None


def _check_constant_power(node: ast.BinOp) -> None:
    """``a ** b`` of numbers is computed by Python (exact integers) in formulaic: keep it small."""
    a, b = _constant_value(node.left), _constant_value(node.right)
    if a is None or b is None:
        return
    with np.errstate(all="ignore"):
        value = np.power(np.float64(a), np.float64(b))
    if not (math.isfinite(a) and math.isfinite(b)) or abs(b) > _MAX_EXPONENT or not np.isfinite(value):
        raise _Refusal(node, "a power of numbers too large to compute")


def short(text: str, limit: int = 80) -> str:
    """``text`` on one line, cut to ``limit`` characters (for error messages)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _segment(src: str, node: ast.AST | None, aliases: dict[str, str]) -> str:
    seg = ast.get_source_segment(src, node) if node is not None and hasattr(node, "lineno") else None
    if not seg:
        return ""
    for key, name in aliases.items():
        seg = seg.replace(key, f"`{name}`")
    return short(seg)


@functools.lru_cache(maxsize=1024)
def check_expression(expr: str, where: str = "expression", transforms: bool = False) -> Checked:
    """Check one formula expression against the whitelist (see the module docstring).

    Parameters
    ----------
    expr : str
        A response, ``cbind()``/``offset()`` argument, fixed-part factor or bar left-hand side
        factor, with R's ``^`` already rewritten to ``**``.
    where : str
        What the expression is ("response", "offset()", "fixed term", ...), for the message.
    transforms : bool
        Allow formulaic's transforms (``C``, ``factor``, ``scale``, ``center``, ``poly``, ``bs``).

    Returns
    -------
    Checked
        The syntax tree and the column names the expression uses.

    Raises
    ------
    FormulaError
        Naming the offending piece and what a formula may contain.
    """
    if not isinstance(expr, str):
        raise FormulaError(f"{where} must be a string, got {type(expr).__name__}")
    aliases: dict[str, str] = {}
    src = expr
    try:
        src, aliases = _unquote(expr)
        tree = _parse(src)
        checker = _Checker(aliases, transforms)
        try:
            checker.visit(tree)
        except RecursionError:
            raise _Refusal(None, "an expression too deeply nested") from None
    except _Refusal as r:
        piece = _segment(src, r.node, aliases)
        at = f" at {piece!r}" if piece else ""
        raise FormulaError(
            f"{where} {short(expr)!r} contains {r.what}{at}, which a formula may not contain; "
            f"{allowed_summary(transforms)}"
        ) from None
    return Checked(tree, frozenset(checker.names), tuple(aliases.items()))


def check_column_name(name: str, where: str = "formula") -> str:
    """A name formulaic looks up in the data (a plain or back-quoted column name)."""
    if name.isidentifier() and name.startswith("__"):
        raise FormulaError(
            f"{where} uses the name {name!r}: names starting with __ are not allowed; {allowed_summary()}"
        )
    return name


# ------------------------------------------------------------------------------- evaluation
def _missing_column(data, name: str) -> ColumnError:
    cols = ", ".join(map(str, list(data.columns)[:20]))
    return ColumnError(
        f"column {name!r} used in the formula is not in the data ({len(data)} rows; columns: {cols}); "
        f"check the spelling or add the column"
    )


def column(data, name: str):
    """``data[name]``, or a :class:`ColumnError` naming the column, the row count and the fix."""
    if name not in data.columns:
        raise _missing_column(data, name)
    return data[name]


def _column_values(col):
    """A column for evaluation: numbers and booleans as float64 (nullable ones with NaN for
    missing values), categoricals as the Series, anything else as a NumPy array."""
    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iufb":
        return col.to_numpy(dtype=np.float64)
    if isinstance(dtype, pd.CategoricalDtype):
        return col
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    return col.to_numpy()


class _Evaluator:
    """Evaluates a checked tree over data columns; numbers are float64 throughout."""

    def __init__(self, data, aliases: dict[str, str]):
        self.data, self.aliases, self.cache = data, aliases, {}

    def value(self, node: ast.AST):
        if isinstance(node, ast.Expression):
            return self.value(node.body)
        if isinstance(node, ast.Name):
            name = self.aliases.get(node.id, node.id)
            if name not in self.cache:
                self.cache[name] = _column_values(column(self.data, name))
            return self.cache[name]
        if isinstance(node, ast.Constant):
            return np.float64(node.value) if _is_number(node.value) else node.value
        if isinstance(node, ast.Attribute):
            return np.float64(NUMPY_CONSTANTS[node.attr])
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise FormulaError(f"cannot evaluate {type(node).__name__}")  # unreachable after checking

    def _unary(self, node: ast.UnaryOp):
        v = self.value(node.operand)
        if isinstance(node.op, ast.Invert):
            return np.logical_not(np.asarray(v, dtype=bool))
        return _UNARY[type(node.op)](v)

    def _binop(self, node: ast.BinOp):
        a, b = self.value(node.left), self.value(node.right)
        if isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            f = np.logical_and if isinstance(node.op, ast.BitAnd) else np.logical_or
            return f(np.asarray(a, dtype=bool), np.asarray(b, dtype=bool))
        return _BINOPS[type(node.op)](a, b)

    def _compare(self, node: ast.Compare):
        left, out = self.value(node.left), None
        for op, comp in zip(node.ops, node.comparators):
            right = self.value(comp)
            res = np.asarray(_COMPARE[type(op)](left, right))
            out = res if out is None else out & res
            left = right
        return out

    def _call(self, node: ast.Call):
        name = _call_name(node.func)
        args = [self.value(a) for a in node.args]
        if name.startswith("np."):
            return getattr(np, name[3:])(*args)
        return FUNCTIONS[name][0](*args)


def evaluate_expression(expr: str, data, where: str = "expression") -> np.ndarray:
    """Evaluate a response, ``cbind()`` or ``offset()`` expression such as ``n - s`` or ``log(t)``.

    The expression is first checked against the whitelist (:func:`check_expression`: column
    names, numbers, arithmetic, comparisons and calls of :data:`FUNCTIONS` and ``np.NAME``),
    then evaluated without ``eval``: numeric and boolean columns as float64 (no integer
    overflow), categorical columns as pandas Series, other columns as NumPy arrays.

    Raises
    ------
    FormulaError
        The expression contains something a formula may not contain.
    ColumnError
        A column it names is not in the data.
    GlmmdiagError
        The evaluation fails (e.g. arithmetic on a text column).
    """
    checked = check_expression(expr.strip() if isinstance(expr, str) else expr, where)
    for name in checked.names:
        if name not in data.columns:
            raise _missing_column(data, name)
    try:
        with np.errstate(all="ignore"):
            return _Evaluator(data, dict(checked.aliases)).value(checked.tree)
    except (FormulaError, ColumnError):
        raise
    except Exception as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        raise GlmmdiagError(f"cannot evaluate the {where} {expr!r} on {len(data)} rows: {msg}") from None


# ------------------------------------------------------------------------ formulaic's namespace
class _Refused:
    """Stands in for a Python builtin in formulaic's namespace: calling it is refused."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise FormulaError(f"{self.name}() is not allowed in a formula; {allowed_summary()}")

    def __reduce__(self):
        return (_Refused, (self.name,))


def _numpy_namespace() -> types.SimpleNamespace:
    names = {n: getattr(np, n) for n in NUMPY_FUNCTIONS}
    return types.SimpleNamespace(**names, **NUMPY_CONSTANTS)


def _formulaic_context() -> dict:
    from formulaic.transforms import C

    from glmmdiag.fit.splines import r_bs, r_ns

    ctx = {name: _Refused(name) for name in dir(builtins)}
    ctx.update({name: f for name, (f, _, _) in FUNCTIONS.items() if name != "I"})
    ctx["factor"] = C
    ctx["bs"], ctx["ns"] = r_bs, r_ns  # R's knots and boundary rules (fit/splines.py), not formulaic's bs
    ctx["np"] = ctx["numpy"] = _numpy_namespace()
    return ctx


FORMULAIC_CONTEXT = _formulaic_context()
