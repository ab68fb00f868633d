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
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field

import formulaic

__all__ = [
    "ParsedFormula",
    "ReTermSpec",
    "parse_formula",
    "expression_variables",
    "formula_variables",
    "split_top_level",
    "signed_terms",
]


@dataclass(frozen=True)
class ReTermSpec:
    """One random-effects term ``(lhs | g1:g2:...)`` after expansion."""

    lhs: str
    group_vars: tuple[str, ...]

    @property
    def group_name(self) -> str:
        return ":".join(self.group_vars)


@dataclass(frozen=True)
class ParsedFormula:
    response: str | None
    response_cbind: tuple[str, str] | None
    fixed: str
    re_terms: tuple[ReTermSpec, ...]
    offsets: tuple[str, ...] = field(default_factory=tuple)
    text: str = ""


def split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` at parenthesis depth 0."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in formula {text!r}")
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            i += len(sep)
            start = i
            continue
        i += 1
    if depth != 0:
        raise ValueError(f"unbalanced parentheses in formula {text!r}")
    parts.append(text[start:])
    return parts


def signed_terms(rhs: str) -> list[tuple[str, str]]:
    """Split a right-hand side into (sign, term) pairs at top-level binary + and -."""
    out, depth, sign, start = [], 0, "+", 0
    for i, ch in enumerate(rhs):
        if ch in "([{":
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


def _expand_groups(group: str) -> list[tuple[str, ...]]:
    group = group.strip()
    if _is_wrapped(group):
        group = group[1:-1].strip()
    if "/" in group:
        parts = [p.strip() for p in group.split("/")]
        return [tuple(v.strip() for p in parts[: k + 1] for v in p.split(":")) for k in range(len(parts))]
    if "+" in group or "*" in group:
        raise ValueError(
            f"grouping expression {group!r} is not supported: use 'a', 'a:b' or 'a/b' after the bar"
        )
    names = tuple(v.strip() for v in group.split(":"))
    for v in names:
        if not v.isidentifier():
            raise ValueError(
                f"grouping factor {v!r} must be a column name; create the column in the data first"
            )
    return [names]


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
        raise ValueError(f"random-effects term ({inner}) must have exactly one '|' or '||'")
    lhs, group = parts
    lhs = lhs.strip() or "1"
    return [ReTermSpec(lhs, g) for g in _expand_groups(group)]


def _r_powers(text: str) -> str:
    """R's ``^`` inside ``I(...)`` (and other calls) means power: rewrite it as ``**``."""
    out, depth, i = [], 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "^" and depth > 0:
            out.append("**")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=256)
def parse_formula(formula: str) -> ParsedFormula:
    """Split an lme4 formula into response, fixed part, random-effects terms and offsets."""
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string like 'y ~ x + (1 | g)', got {type(formula).__name__}")
    text = formula
    formula = _r_powers(formula)
    sides = split_top_level(formula, "~")
    if len(sides) != 2 or not sides[0].strip():
        raise ValueError(f"formula {formula!r} needs a response: 'y ~ x + (1 | g)'")
    lhs, rhs = sides[0].strip(), sides[1].strip()
    cbind = None
    if _is_wrapped(lhs, "cbind"):
        args = split_top_level(lhs[len("cbind(") : -1], ",")
        if len(args) != 2:
            raise ValueError(f"cbind() in {formula!r} needs two arguments: cbind(successes, failures)")
        cbind = (args[0].strip(), args[1].strip())
        lhs_out = None
    else:
        lhs_out = lhs
    fixed, re_terms, offsets = [], [], []
    for sign, term in signed_terms(rhs):
        if _is_wrapped(term) and "|" in term:
            if sign == "-":
                raise ValueError(f"cannot subtract a random-effects term: {term}")
            re_terms.extend(_expand_bar(term[1:-1]))
        elif _is_wrapped(term, "offset"):
            offsets.append(term[len("offset(") : -1].strip())
        else:
            fixed.append((sign, term))
    fixed_txt = ""
    for sign, term in fixed:
        fixed_txt += (" - " if sign == "-" else (" + " if fixed_txt else "")) + term
    fixed_txt = fixed_txt.strip()
    if fixed_txt.startswith("- "):
        fixed_txt = "1 " + fixed_txt
    if not fixed_txt:
        fixed_txt = "1"
    return ParsedFormula(lhs_out, cbind, fixed_txt, tuple(re_terms), tuple(offsets), text)


_KNOWN_CALLABLES = {"np", "numpy"}


@functools.lru_cache(maxsize=512)
def expression_variables(expr: str) -> frozenset[str]:
    """Names used as variables (not called as functions) in a Python expression."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"cannot parse expression {expr!r}: {e.msg}") from None
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    attr_bases = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return frozenset(
        n.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Name) and id(n) not in called and id(n) not in attr_bases
        and n.id not in _KNOWN_CALLABLES
    )


@functools.lru_cache(maxsize=256)
def formula_variables(rhs: str) -> frozenset[str]:
    """Data columns a formulaic right-hand side refers to."""
    out: set[str] = set()
    try:
        f = formulaic.Formula(rhs)
    except Exception as e:  # formulaic raises several error types for syntax problems
        raise ValueError(f"cannot parse formula part {rhs!r}: {e}") from None
    for term in f:
        for factor in term.factors:
            method = getattr(factor.eval_method, "value", str(factor.eval_method))
            if method == "lookup":
                out.add(factor.expr)
            elif method == "python":
                out |= expression_variables(factor.expr)
    return frozenset(out)
