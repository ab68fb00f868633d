"""Parse lme4-style model formulas without touching data.

A formula ``lhs ~ fixed + (expr | g) + (expr || g) + offset(expr)`` is split into

* the response expression (a column, an expression, or ``cbind(successes, failures)``),
* the fixed-effects right-hand side, handed to formulaic unchanged,
* a list of :class:`ReTermSpec` (one per random-effects term after expansion), and
* the offset expressions.

Expansion rules (as lme4):

* ``(1 | a/b)``  -> ``(1 | a) + (1 | a:b)``; ``a/b/c`` adds ``a:b:c``.
* ``(1 + x || g)`` -> ``(1 | g) + (0 + x | g)``: one term per component, no correlations.
* ``(x | g)`` contains an intercept unless ``0 +`` or ``- 1`` removes it.

Formulas are data, never code: :func:`parse_formula` checks every expression in the formula
(response, ``cbind()`` and ``offset()`` arguments, each factor of the fixed part and of each
bar's left-hand side, the grouping factors) against the whitelist of
:mod:`glmmdiag.fit.expressions` before anything is evaluated, and raises
:class:`~glmmdiag.errors.FormulaError` for anything else.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import formulaic

from glmmdiag.errors import FormulaError
from glmmdiag.fit.covstruct import DISTANCE_STRUCTURES, STRUCTURES, TIME_STRUCTURES
from glmmdiag.fit.expressions import allowed_summary, check_column_name, check_expression, short

__all__ = [
    "ParsedFormula",
    "ReTermSpec",
    "quote_dotted_names",
    "parse_formula",
    "expression_variables",
    "formula_variables",
    "split_top_level",
    "signed_terms",
]


@dataclass(frozen=True)
class ReTermSpec:
    """One random-effects term ``(lhs | g1:g2:...)`` after expansion.

    ``structure`` is the covariance structure (glmmTMB's name: ``us`` for lme4's bar, ``diag``,
    ``cs``, ``ar1``, ``ou``, ``exp``, ...); ``index_vars`` the time column of ``ar1``/``toep`` or the
    coordinate columns of ``numFactor(x, y)`` for the distance structures."""

    lhs: str
    group_vars: tuple[str, ...]
    structure: str = "us"
    index_vars: tuple[str, ...] = ()

    @property
    def variables(self) -> frozenset[str]:
        """The data columns of the term's left-hand side."""
        return frozenset(self.index_vars) if self.index_vars else formula_variables(self.lhs)

    @property
    def label(self) -> str:
        """The term as written: ``(lhs | g)`` or ``ar1(lhs | g)``."""
        inner = f"{self.lhs} | {self.group_name}"
        return f"({inner})" if self.structure == "us" and not self.index_vars else f"{self.structure}({inner})"

    @property
    def group_name(self) -> str:
        return ":".join(self.group_vars) or "1"


@dataclass(frozen=True)
class ParsedFormula:
    response: str | None
    response_cbind: tuple[str, str] | None
    fixed: str
    re_terms: tuple[ReTermSpec, ...]
    offsets: tuple[str, ...] = field(default_factory=tuple)
    text: str = ""


def split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` at parenthesis depth 0 (never inside a back-quoted name)."""
    parts, depth, start, i, quoted = [], 0, 0, 0, False
    while i < len(text):
        ch = text[i]
        if ch == "`":
            quoted = not quoted
        elif quoted:
            pass
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise FormulaError(f"unbalanced parentheses in formula {text!r}")
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    if depth != 0:
        raise FormulaError(f"unbalanced parentheses in formula {text!r}")
    parts.append(text[start:])
    return parts


def signed_terms(rhs: str) -> list[tuple[str, str]]:
    """Split a right-hand side into (sign, term) pairs at top-level binary + and -."""
    out, depth, sign, start, quoted = [], 0, "+", 0, False
    for i, ch in enumerate(rhs):
        if ch == "`":
            quoted = not quoted
        elif quoted:
            continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and ch in "+-":
            prev = rhs[start:i].strip()
            if prev and prev[-1] in "*/^:~(,=<>%":
                continue  # unary sign inside an expression such as x ** -1
            if prev:
                out.append((sign, prev))
            sign, start = ch, i + 1
    last = rhs[start:].strip()
    if last:
        out.append((sign, last))
    return out


def _is_wrapped(term: str, name: str = "") -> bool:
    """True if ``term`` is ``name(...)`` with the parentheses enclosing the rest."""
    if not (term.startswith(name + "(") and term.endswith(")")):
        return False
    depth = 0
    for i, ch in enumerate(term[len(name):]):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(term) - len(name) - 1:
            return False
    return True


def _group_name(token: str, quoted: dict[str, str], group: str) -> str:
    """One grouping factor: a column name, plain or back-quoted."""
    token = token.strip()
    if token in quoted:
        return quoted[token]
    if not token.isidentifier() or token.startswith("__"):
        raise FormulaError(
            f"grouping factor {token!r} in ({group}) must be a column name (`odd name` in back-quotes); "
            f"create the column in the data first"
        )
    return token


def _expand_groups(group: str) -> list[tuple[str, ...]]:
    """``a`` -> [(a,)]; ``a:b`` -> [(a, b)]; ``a/b`` -> [(a,), (a, b)]: column names only."""
    group = group.strip()
    if _is_wrapped(group):
        group = group[1:-1].strip()
    if group == "1":  # one level for all rows: a structured term's single field, exp(... | 1)
        return [()]
    quoted: dict[str, str] = {}

    def hide(m):  # back-quoted names may contain / : + *
        key = f"_bq{len(quoted)}_"
        quoted[key] = m.group(1)
        return key

    plain = re.sub(r"`([^`]+)`", hide, group)
    if "`" in plain:
        raise FormulaError(f"unmatched back-quote in the grouping expression {group!r}")
    if "+" in plain or "*" in plain:
        raise FormulaError(
            f"grouping expression {group!r} is not supported: use 'a', 'a:b' or 'a/b' after the bar"
        )
    parts = [p.split(":") for p in plain.split("/")]
    names = [[_group_name(v, quoted, group) for v in p] for p in parts]
    if len(parts) > 1:
        return [tuple(v for p in names[: k + 1] for v in p) for k in range(len(names))]
    return [tuple(names[0])]


def _has_intercept(lhs: str) -> bool:
    terms = signed_terms(lhs)
    has = True
    for sign, t in terms:
        if t in ("0",) and sign == "+":
            has = False
        if t == "1":
            has = sign == "+"
    return has


def _expand_bar(inner: str) -> list[ReTermSpec]:
    if "||" in inner:
        lhs, group = split_top_level(inner, "||")
        groups = _expand_groups(group)
        comps = []
        if _has_intercept(lhs):
            comps.append("1")
        for sign, t in signed_terms(lhs):
            if sign == "+" and t not in ("0", "1"):
                comps.append("0 + " + t)
        return [ReTermSpec(c, g) for g in groups for c in comps]
    parts = split_top_level(inner, "|")
    if len(parts) != 2:
        raise FormulaError(f"random-effects term ({inner}) must have exactly one '|' or '||'")
    lhs, group = parts
    lhs = lhs.strip() or "1"
    return [ReTermSpec(lhs, g) for g in _expand_groups(group)]


_DOTTED = re.compile(r"(?<![\w.`])[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)+(?![\w(`])")


def quote_dotted_names(text: str, columns) -> str:
    """R-style dotted column names (``final.snail.density``) back-quoted where the data has such a
    column, so that the whitelist reads them as one name rather than attribute access; quoted
    strings, back-quoted names and anything that is not a column (``np.log``) are left alone."""
    if "." not in text:
        return text
    names = {c for c in columns if isinstance(c, str) and "." in c}
    if not names:
        return text
    out, i, n = [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"`":
            j = text.find(ch, i + 1)
            j = n - 1 if j < 0 else j
            out.append(text[i : j + 1])
            i = j + 1
            continue
        j = i
        while j < n and text[j] not in "'\"`":
            j += 1
        out.append(_DOTTED.sub(lambda m: f"`{m.group(0)}`" if m.group(0) in names else m.group(0), text[i:j]))
        i = j
    return "".join(out)


def _structure_of(term: str) -> str | None:
    """glmmTMB's covariance-structure name if ``term`` is ``name(lhs | group)``."""
    head = term.split("(", 1)[0].strip()
    if head in STRUCTURES and _is_wrapped(term, head):
        if len(split_top_level(term[len(head) + 1 : -1], "|")) > 1:
            return head
    return None


def _index_variables(structure: str, lhs: str) -> tuple[str, ...]:
    """The time column of ``ar1``/``toep`` or the coordinate columns of a distance structure.

    ``ar1(times + 0 | g)``: one column (a factor of equally spaced times, or numbers);
    ``exp(numFactor(x, y) + 0 | g)`` (R's spelling; ``coords(x, y)`` too): the coordinate columns.
    The left-hand side must have no intercept: one coefficient per time or location."""
    parts = [(sign, t) for sign, t in signed_terms(lhs)]
    pieces = [t for sign, t in parts if t not in ("0", "1")]
    no_intercept = any(t == "0" and sign == "+" for sign, t in parts) or any(
        t == "1" and sign == "-" for sign, t in parts)
    distance = structure in DISTANCE_STRUCTURES
    example = f"{structure}(numFactor(x, y) + 0 | group)" if distance else f"{structure}(times + 0 | group)"
    if len(pieces) != 1 or not no_intercept:
        raise FormulaError(
            f"{structure}({lhs} | ...) needs one {'coordinate set' if distance else 'time variable'} and no "
            f"intercept, e.g. {example}"
        )
    piece = pieces[0]
    for wrapper in ("numFactor", "coords"):
        if _is_wrapped(piece, wrapper):
            names = [a.strip() for a in split_top_level(piece[len(wrapper) + 1 : -1], ",")]
            if not names or not all(names):
                raise FormulaError(f"{piece!r} needs column names, e.g. numFactor(x, y)")
            if not distance and len(names) != 1:
                raise FormulaError(f"{structure}() takes one time column; got {piece!r}")
            return tuple(check_column_name(nm.strip("`"), f"{structure}() coordinate") for nm in names)
    if _is_wrapped(piece, "factor"):
        piece = piece[len("factor(") : -1].strip()
    return (check_column_name(piece.strip("`"), f"{structure}() {'coordinate' if distance else 'time'}"),)


def _expand_structured(structure: str, inner: str) -> list[ReTermSpec]:
    """``name(lhs | group)``: one term with glmmTMB's covariance structure ``name``."""
    if "||" in inner:
        raise FormulaError(f"{structure}(... || ...) is not defined: write {structure}(lhs | group)")
    lhs, group = split_top_level(inner, "|")
    lhs = lhs.strip() or "1"
    index = _index_variables(structure, lhs) if structure in TIME_STRUCTURES + DISTANCE_STRUCTURES else ()
    return [ReTermSpec(lhs, g, structure, index) for g in _expand_groups(group)]


def _r_powers(text: str) -> str:
    """R's ``^`` inside ``I(...)`` (and other calls) means power: rewrite it as ``**``."""
    out, depth, i, quoted = [], 0, 0, False
    while i < len(text):
        ch = text[i]
        if ch == "`":
            quoted = not quoted
        elif quoted:
            pass
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "^" and depth > 0 and not quoted:
            out.append("**")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


_R_SPLINE_VECTOR = re.compile(r"\b(Boundary\.knots|boundary_knots|knots)(\s*=\s*)c\(([^()`]*)\)")
_R_SPLINE_LOGICAL = re.compile(r"\b(intercept\s*=\s*)(TRUE|FALSE)\b")


def _r_spline_arguments(text: str) -> str:
    """R's spelling of ``ns()``/``bs()`` arguments in Python's: ``knots = c(2, 6)`` ->
    ``knots = [2, 6]``, ``Boundary.knots = c(1, 9)`` -> ``boundary_knots = [1, 9]``,
    ``intercept = TRUE`` -> ``intercept = True`` (only inside an ns( or bs( call)."""
    if "ns(" not in text and "bs(" not in text:
        return text
    out, pos = [], 0
    for m in re.finditer(r"\b(ns|bs)\(", text):
        if m.start() < pos:
            continue
        depth, j = 0, m.end() - 1
        while j < len(text):
            depth += {"(": 1, ")": -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        call = text[m.start() : j + 1]
        call = _R_SPLINE_VECTOR.sub(
            lambda v: ("boundary_knots" if v.group(1) == "Boundary.knots" else v.group(1)) + v.group(2)
            + "[" + v.group(3) + "]", call)
        call = _R_SPLINE_LOGICAL.sub(lambda v: v.group(1) + ("True" if v.group(2) == "TRUE" else "False"), call)
        out.append(text[pos : m.start()] + call)
        pos = j + 1
    return "".join(out) + text[pos:]


def _top_level_bar(rhs: str) -> str:
    """lme4 reads ``y ~ x | g`` (a bar outside parentheses) as ``y ~ 1 + (x | g)`` (its ``nobars``
    leaves an intercept, ``findbars`` the bar term): the same here. ``y ~ x + (x | g)`` keeps the
    fixed effect."""
    parts = split_top_level(rhs, "|")
    if len(parts) == 1:
        return rhs
    bar = "||" if "||" in rhs else "|"
    lhs, group = parts[0].strip() or "1", parts[-1].strip()
    if not group:
        raise FormulaError(f"the random-effects term '{rhs.strip()}' has no grouping factor after '{bar}'")
    return f"1 + ({lhs} {bar} {group})"


def _split_rhs(rhs: str):
    """(fixed (sign, term) pairs, random-effects terms, offset expressions) of a right-hand side."""
    fixed, re_terms, offsets = [], [], []
    for sign, term in signed_terms(rhs):
        structure = _structure_of(term)
        if structure is not None:
            if sign == "-":
                raise FormulaError(f"cannot subtract a random-effects term: {term}")
            re_terms.extend(_expand_structured(structure, term[len(structure) + 1 : -1]))
        elif _is_wrapped(term) and "|" in term:
            if sign == "-":
                raise FormulaError(f"cannot subtract a random-effects term: {term}")
            re_terms.extend(_expand_bar(term[1:-1]))
        elif _is_wrapped(term, "offset"):
            offsets.append(term[len("offset(") : -1].strip())
        else:
            fixed.append((sign, term))
    return fixed, re_terms, offsets


def _join_fixed(fixed) -> str:
    fixed_txt = ""
    for sign, term in fixed:
        fixed_txt += (" - " if sign == "-" else (" + " if fixed_txt else "")) + term
    fixed_txt = fixed_txt.strip()
    if fixed_txt.startswith("- "):
        fixed_txt = "1 " + fixed_txt
    return fixed_txt or "1"


_FACTOR_SEPARATORS = ("*", ":", "/", "%in%")


def _factors_in_order(term: str) -> list[str]:
    """The factor expressions of a fixed term in the order written (split at top-level ``*``,
    ``:``, ``/`` and ``%in%``)."""
    parts = [term]
    for sep in _FACTOR_SEPARATORS:
        parts = [q for p in parts for q in split_top_level(p, sep)]
    return [p.strip() for p in parts if p.strip()]


def _r_interaction_order(fixed: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """R's order of the variables inside each interaction: by their first appearance in the
    fixed part (R's ``terms``), so ``x + a:x`` has the term ``x:a`` (columns ``x:aq``, ...)
    and ``b + a:b`` the term ``b:a`` (b varying fastest), as in lme4's and glmmTMB's fixef.
    Only terms made of ``:`` alone are reordered (``a*b`` expands in written order already);
    a term with a parenthesised factor is left as written."""
    first: dict[str, int] = {}
    for _, term in fixed:
        for f in _factors_in_order(term):
            first.setdefault(f, len(first))
    out = []
    for sign, term in fixed:
        colons = [c.strip() for c in split_top_level(term, ":")]
        if (len(colons) > 1 and len(split_top_level(term, "*")) == 1 and "/" not in term and "%in%" not in term
                and not any(c.startswith("(") or not c for c in colons)):
            term = ":".join(sorted(colons, key=lambda f: first[f]))
        out.append((sign, term))
    return out


def _check_response(lhs: str):
    """(response, cbind pair): each expression checked against the whitelist."""
    if _is_wrapped(lhs, "cbind"):
        args = split_top_level(lhs[len("cbind(") : -1], ",")
        if len(args) != 2:
            raise FormulaError(f"cbind() in {lhs!r} needs two arguments: cbind(successes, failures)")
        cbind = (args[0].strip(), args[1].strip())
        for a in cbind:
            check_expression(a, "cbind() argument")
        return None, cbind
    check_expression(lhs, "response")
    return lhs, None


@functools.lru_cache(maxsize=256)
def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part, random-effects terms and offsets.

    Every expression is checked before anything is evaluated: the response, ``cbind()`` and
    ``offset()`` arguments may contain column names, numbers, arithmetic, comparisons and calls
    of the whitelisted functions (``log``, ``exp``, ``sqrt``, ``I``, ``np.log``, ...); fixed
    terms and bar left-hand sides also formulaic's operators (``+ - : * / ^ %in%``) and
    transforms (``C``, ``factor``, ``scale``, ``center``, ``poly``, ``bs``); grouping factors
    are column names joined by ``:`` or ``/``. See :mod:`glmmdiag.fit.expressions`.

    Raises
    ------
    FormulaError
        A malformed formula, or one containing anything else (naming the offending piece).
    """
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string like 'y ~ x + (1 | g)', got {type(formula).__name__}")
    text = formula
    formula = _r_spline_arguments(_r_powers(formula))
    sides = split_top_level(formula, "~")
    if len(sides) != 2 or not sides[0].strip():
        raise FormulaError(f"formula {formula!r} needs a response: 'y ~ x + (1 | g)'")
    lhs, rhs = sides[0].strip(), sides[1].strip()
    response, cbind = _check_response(lhs)
    rhs = _top_level_bar(rhs)
    fixed, re_terms, offsets = _split_rhs(rhs)
    fixed = _r_interaction_order(fixed)
    for e in offsets:
        check_expression(e, "offset()")
    fixed_txt = _join_fixed(fixed)
    formula_variables(fixed_txt)
    for t in re_terms:
        if not t.index_vars:
            _part_variables(t.lhs, "random-effects term")
    return ParsedFormula(response, cbind, fixed_txt, tuple(re_terms), tuple(offsets), text)


@functools.lru_cache(maxsize=512)
def expression_variables(expr: str) -> frozenset[str]:
    """Column names used in an expression (not the functions it calls), after checking it."""
    return check_expression(expr.strip(), "expression", transforms=True).names


_MAX_TERM_POWER = 10  # (a + b + ...)^k expands to all interactions up to order k: keep k small
_TERM_POWER = re.compile(r"\s*\(*\s*(\d+)\s*\)*")


def _check_term_powers(rhs: str, where: str) -> None:
    """Formula-level powers ``(a + b)^k`` / ``(a + b)**k`` (outside any call) need a whole number
    k from 1 to _MAX_TERM_POWER: formulaic expands them by a product over k copies, so a large
    k would hang the parser before anything is checked."""
    depth, i, n = 0, 0, len(rhs)
    while i < n:
        ch = rhs[i]
        if ch in "`'\"":  # back-quoted names and strings: skip to the closing quote
            end = rhs.find(ch, i + 1)
            i = n if end < 0 else end + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and (ch == "^" or rhs.startswith("**", i)):
            i += 1 if ch == "^" else 2
            m = _TERM_POWER.match(rhs, i)
            if m is None or not 1 <= int(m.group(1)) <= _MAX_TERM_POWER:
                raise FormulaError(
                    f"the {where} {short(rhs)!r} raises terms to a power other than a whole number from 1 to "
                    f"{_MAX_TERM_POWER} (formula operator ^ / **: (a + b)^2 is a + b + a:b)"
                )
            i = m.end()
            continue
        i += 1


@functools.lru_cache(maxsize=256)
def _part_variables(rhs: str, where: str) -> frozenset[str]:
    """Column names of a formulaic right-hand side, each factor checked against the whitelist."""
    _check_term_powers(rhs, where)
    try:
        f = formulaic.Formula(rhs)
    except Exception as e:  # formulaic raises several error types for syntax problems
        msg = " ".join(str(e).split("\n")[0].split()) or type(e).__name__  # not the highlighted copy
        raise FormulaError(f"cannot parse the {where} {short(rhs)!r}: {msg}") from None
    if not isinstance(f, formulaic.formula.SimpleFormula):
        raise FormulaError(f"the {where} {short(rhs)!r} must be a single right-hand side; {allowed_summary()}")
    out: set[str] = set()
    for term in f:
        for factor in term.factors:
            method = getattr(factor.eval_method, "value", str(factor.eval_method))
            if method == "lookup":
                out.add(check_column_name(factor.expr, where))
            elif method == "python":
                out |= check_expression(factor.expr, where, transforms=True).names
            elif method != "literal":
                raise FormulaError(f"the {where} {short(rhs)!r} contains {short(factor.expr)!r}; {allowed_summary()}")
    return frozenset(out)


def formula_variables(rhs: str) -> frozenset[str]:
    """Data columns a formulaic right-hand side refers to (every factor checked first)."""
    return _part_variables(rhs, "fixed term")
