"""Model specifications for ``compare_models`` and the remedies a failed residual check suggests.

A *model specification* says how one candidate model differs from the others fitted to the same
formula and response: a dict with the keys

    family        a family name for ``glmm`` (required), e.g. "nbinom2", "truncated_nbinom2"
    link          a link name (default: the family's default link)
    ziformula     a one-sided zero model, e.g. "~1" (with a truncated family: a hurdle model)
    dispformula   a one-sided dispersion model, e.g. "~ x"
    olre          True: add an observation-level random effect ``(1 | obs)`` to the formula
    label         the row label in the comparison table (default: made from the rest)

or the same as a string, parts separated by ";": the family first (or ``family=...``), then
``key=value`` pairs::

    "nbinom2"                              negative binomial (quadratic variance)
    "nbinom2; ziformula=~1"                zero-inflated NB2
    "truncated_nbinom2; ziformula=~1"      hurdle NB2
    "gamma; link=log; dispformula=~ x"     a dispersion model on x
    "poisson; olre=yes; label=OLRE"        Poisson with (1 | obs)

The string is split, never evaluated; the formulas inside are checked against the package's
formula whitelist (``glmmdiag.fit.expressions``) and refused with a ``FormulaError``.

The *remedy table* ``REMEDIES`` maps (fitted family, failed check) to the specifications worth
fitting next; ``problems(tests)`` names the failed checks of a model and ``remedies(...)`` looks
them up. ``glmmdiag check --suggest`` fits them and checks them the same way.
"""
from __future__ import annotations

import dataclasses
import math

from glmmdiag.errors import FormulaError, GlmmdiagError

__all__ = ["parse_spec", "normalize_spec", "spec_label", "format_spec", "problems", "remedies", "Remedy",
           "remedy_specs", "remedy_text", "model_remedies", "REMEDIES", "NOTES", "PROBLEM_NAMES"]

SPEC_KEYS = ("family", "link", "ziformula", "dispformula", "olre", "label")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_MAX_SPEC = 500


# ------------------------------------------------------------------------------ specifications
def _check_submodel(value: str, key: str) -> str:
    """A one-sided fixed-effects formula ('~1', '~ x + f'), checked against the whitelist."""
    from glmmdiag.fit.formula import _r_powers, formula_variables

    text = " ".join(str(value).split())
    if not text.startswith("~"):
        raise FormulaError(f"{key} must be a one-sided formula such as '~1' or '~ x'; got {value!r}")
    rhs = text[1:].strip()
    if not rhs:
        raise FormulaError(f"{key} {value!r} has nothing after '~' (write '~1' for a constant)")
    if "|" in rhs:
        raise FormulaError(f"{key} {value!r}: random effects are not supported in {key}")
    formula_variables(_r_powers(rhs))
    return "~" + rhs if rhs in ("0", "1") else "~ " + rhs


def _check_family(name):
    """The canonical family name (truncated families kept as they are); a Family object as it is."""
    from glmmdiag.fit.families import Family, get_family
    from glmmdiag.fit.submodels import TRUNCATED

    if isinstance(name, Family):
        return name
    if not isinstance(name, str) or not name.strip():
        raise GlmmdiagError(f"a model specification needs a family name; got {name!r}")
    key = name.strip().lower()
    if key in TRUNCATED:
        return key
    return get_family(key).name  # GlmmdiagError for an unknown family


def _check_link(family: str, link: str) -> str:
    from glmmdiag.fit.families import get_family
    from glmmdiag.fit.submodels import TRUNCATED

    if not isinstance(link, str) or not link.strip():
        raise GlmmdiagError(f"link of {family}: a link name is required; got {link!r}")
    try:
        fam = family if not isinstance(family, str) else TRUNCATED.get(family, family)
        return get_family(fam, link.strip()).link.name
    except ValueError as e:
        raise GlmmdiagError(f"link {link!r} for {_name(family)}: {e}") from None


def _name(family) -> str:
    """A family's name (a Family object or a string)."""
    return family if isinstance(family, str) else getattr(family, "name", str(family))


def _check_bool(value, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise GlmmdiagError(f"{key} must be yes or no (true/false); got {value!r}")


def normalize_spec(spec) -> dict:
    """A validated specification dict from a dict, a family name or a spec string.

    Parameters
    ----------
    spec : dict or str
        See the module docstring.

    Returns
    -------
    dict
        With the keys "family", "link", "ziformula", "dispformula" (None when not given), "olre"
        (bool) and "label" (the given label, else one made by ``spec_label``).

    Raises
    ------
    GlmmdiagError
        An unknown key, family or link, or a value of the wrong kind; ``FormulaError`` for a
        formula that is not a one-sided whitelisted formula.
    """
    if isinstance(spec, str):
        spec = parse_spec(spec)
    if not isinstance(spec, dict):
        raise GlmmdiagError(f"a model specification is a dict or a string like 'nbinom2; ziformula=~1'; "
                            f"got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise GlmmdiagError(f"unknown key(s) {unknown} in a model specification; allowed: {', '.join(SPEC_KEYS)}")
    if "family" not in spec:
        raise GlmmdiagError(f"a model specification needs a family; got {spec!r}")
    out = {"family": _check_family(spec["family"]), "link": None, "ziformula": None, "dispformula": None,
           "olre": False, "label": None}
    if spec.get("link") is not None:
        out["link"] = _check_link(out["family"], spec["link"])
    for key in ("ziformula", "dispformula"):
        if spec.get(key) is not None:
            out[key] = _check_submodel(spec[key], key)
    if spec.get("olre") is not None:
        out["olre"] = _check_bool(spec["olre"], "olre")
    label = spec.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip() or "/" in label):
        raise GlmmdiagError(f"a model label must be a non-empty string without '/'; got {label!r}")
    out["label"] = label.strip() if label is not None else spec_label(out)
    return out


def parse_spec(text: str) -> dict:
    """Split a spec string ``"family; key=value; ..."`` into a dict (validated by ``normalize_spec``).

    Examples
    --------
    >>> parse_spec("truncated_nbinom2; ziformula=~1")["label"]
    'hurdle nbinom2 (zi ~1)'
    """
    if not isinstance(text, str):
        raise GlmmdiagError(f"a model specification string is required; got {type(text).__name__}")
    if len(text) > _MAX_SPEC:
        raise GlmmdiagError(f"a model specification is at most {_MAX_SPEC} characters long")
    parts = [p.strip() for p in text.split(";")]
    if not parts or not parts[0]:
        raise GlmmdiagError(f"a model specification starts with a family, e.g. 'nbinom2; ziformula=~1'; got {text!r}")
    spec: dict = {}
    for i, part in enumerate(parts):
        if not part:
            if i == len(parts) - 1:  # a trailing ';'
                continue
            raise GlmmdiagError(f"empty part in the model specification {text!r}")
        key, eq, value = part.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not eq:
            if i != 0:
                raise GlmmdiagError(f"{part!r} in {text!r} is not key=value (keys: {', '.join(SPEC_KEYS)})")
            key, value = "family", part
        if key not in SPEC_KEYS:
            raise GlmmdiagError(f"unknown key {key!r} in the model specification {text!r}; "
                                f"allowed: {', '.join(SPEC_KEYS)}")
        if not value:
            raise GlmmdiagError(f"{key} has no value in the model specification {text!r}")
        if key in spec:
            raise GlmmdiagError(f"{key} is given twice in the model specification {text!r}")
        spec[key] = value
    return normalize_spec(spec)


def spec_label(spec: dict) -> str:
    """A short readable label: 'nbinom2', 'ZI nbinom2 (zi ~1)', 'hurdle nbinom2 (zi ~1)', 'gamma (log)',
    'nbinom2 (disp ~ x)', 'poisson + (1 | obs)'."""
    fam = _name(spec["family"])
    extras = []
    if fam.startswith("truncated_"):
        base = fam[len("truncated_"):]
        name = f"hurdle {base}" if spec.get("ziformula") not in (None, "~0") else fam
    elif spec.get("ziformula") not in (None, "~0"):
        name = f"ZI {fam}"
    else:
        name = fam
    if spec.get("link"):
        extras.append(spec["link"])
    if spec.get("ziformula") not in (None, "~0"):
        extras.append("zi " + spec["ziformula"])
    if spec.get("dispformula") not in (None, "~1"):
        extras.append("disp " + spec["dispformula"])
    label = name + (f" ({', '.join(extras)})" if extras else "")
    label += " + (1 | obs)" if spec.get("olre") else ""
    return label.replace("/", "\u2215")  # a division slash: labels are paths in the report's JSON


def format_spec(spec: dict) -> str:
    """The string form of a specification (``parse_spec(format_spec(s))`` gives ``s`` back)."""
    s = normalize_spec(spec)
    parts = [_name(s["family"])]
    for key in ("link", "ziformula", "dispformula"):
        if s.get(key) is not None:
            parts.append(f"{key}={s[key]}")
    if s.get("olre"):
        parts.append("olre=yes")
    return "; ".join(parts)


# ------------------------------------------------------------------------------ remedies
PROBLEM_NAMES = {
    "overdispersion": "overdispersion",
    "underdispersion": "underdispersion",
    "zero_inflation": "zero-inflation",
    "too_few_zeros": "too few zeros",
    "heteroscedasticity": "residual spread changes with the prediction",
    "non_uniform": "non-uniform residuals",
    "outliers": "outliers",
}

# (families, failed check) -> (spec strings to try, why). "{fixed}" is replaced by the fixed part of
# the model's formula (a dispersion model on the predictors). Families are fitted-family names.
_DISP = ("gaussian", "gamma", "beta", "nbinom1", "nbinom2")
REMEDIES: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("poisson", "overdispersion"): (
        ("nbinom2", "nbinom1", "poisson; olre=yes"),
        "a negative binomial, or an observation-level random effect (1 | obs)"),
    ("truncated_poisson", "overdispersion"): (
        ("truncated_nbinom2; ziformula=~1", "truncated_nbinom1; ziformula=~1"),
        "a negative-binomial hurdle"),
    ("binomial", "overdispersion"): (
        ("betabinomial", "binomial; olre=yes"),
        "a beta-binomial, or an observation-level random effect (1 | obs) (trials > 1 only)"),
    ("nbinom2", "overdispersion"): (("nbinom1",), "the linear-variance negative binomial"),
    ("nbinom1", "overdispersion"): (("nbinom2",), "the quadratic-variance negative binomial"),
    ("poisson", "zero_inflation"): (
        ("poisson; ziformula=~1", "nbinom2; ziformula=~1", "truncated_poisson; ziformula=~1",
         "truncated_nbinom2; ziformula=~1"),
        "a zero-inflated or hurdle model (the negative binomial also allows more zeros)"),
    ("nbinom2", "zero_inflation"): (
        ("nbinom2; ziformula=~1", "truncated_nbinom2; ziformula=~1"), "a zero-inflated or hurdle model"),
    ("nbinom1", "zero_inflation"): (
        ("nbinom1; ziformula=~1", "truncated_nbinom1; ziformula=~1"), "a zero-inflated or hurdle model"),
    ("binomial", "zero_inflation"): (("binomial; ziformula=~1",), "a zero-inflated binomial"),
    ("poisson", "too_few_zeros"): (
        ("truncated_poisson; ziformula=~1",), "a hurdle model (zeros modelled separately)"),
    ("nbinom2", "too_few_zeros"): (
        ("truncated_nbinom2; ziformula=~1",), "a hurdle model (zeros modelled separately)"),
    ("nbinom1", "too_few_zeros"): (
        ("truncated_nbinom1; ziformula=~1",), "a hurdle model (zeros modelled separately)"),
    ("poisson", "heteroscedasticity"): (
        ("nbinom2; dispformula={fixed}",), "a negative binomial with a dispersion model on the predictors"),
    **{(f, "heteroscedasticity"): ((f + "; dispformula={fixed}",), "a dispersion model on the predictors")
       for f in _DISP},
    ("gaussian", "overdispersion"): (("t",), "heavier tails (Student t)"),
    **{(f"truncated_{b}", p): ((f"truncated_{b}; ziformula={{fixed}}",), "a hurdle whose zero model uses the predictors")
       for b in ("poisson", "nbinom1", "nbinom2") for p in ("zero_inflation", "too_few_zeros", "heteroscedasticity")},
}
REMEDIES[("truncated_nbinom2", "overdispersion")] = (
    ("truncated_nbinom2; ziformula={fixed}", "truncated_nbinom1; ziformula=~1"),
    "a hurdle whose zero model uses the predictors, or the other negative binomial")
REMEDIES[("truncated_nbinom1", "overdispersion")] = (
    ("truncated_nbinom1; ziformula={fixed}", "truncated_nbinom2; ziformula=~1"),
    "a hurdle whose zero model uses the predictors, or the other negative binomial")
NOTES = {
    "underdispersion": ("consider a family for underdispersed data (Conway-Maxwell-Poisson or generalized "
                        "Poisson; not available in glmmdiag yet), or check for an over-fitted "
                        "random-effects structure"),
    "non_uniform": "consider another family or link, or missing predictors",
    "outliers": "check the outlying observations (a heavier-tailed family may be needed)",
    "heteroscedasticity": "consider a dispersion model on the predictor (dispformula='~ x')",
}
# underdispersion of a continuous family: its variance function, not the count distribution, is wrong
NOTES.update({
    (f, "underdispersion"): (f"the {f} family's variance changes with the mean faster than the data's: "
                             f"consider a family with another variance function (for proportions in (0, 1): "
                             f"'beta'), or a dispersion model (dispformula)")
    for f in ("gamma", "gaussian", "t", "beta", "tweedie", "ordbeta")
})


@dataclasses.dataclass(frozen=True)
class Remedy:
    """One failed check and what may address it: ``specs`` (spec strings, possibly empty) and ``why``."""

    problem: str
    specs: tuple[str, ...]
    why: str

    def __str__(self) -> str:
        what = PROBLEM_NAMES.get(self.problem, self.problem)
        if self.specs:
            return f"{what}: try {', '.join(repr(s) for s in self.specs)} ({self.why})"
        return f"{what}: {self.why}"


def _significant(t, alpha: float) -> bool:
    p = getattr(t, "p_value", None)
    return p is not None and not math.isnan(float(p)) and float(p) < alpha


def problems(tests, alpha: float = 0.05) -> list[str]:
    """The failed checks of one model, as keys of ``PROBLEM_NAMES``.

    Parameters
    ----------
    tests : mapping
        Test results keyed "uniformity", "dispersion", "outliers", "zero_inflation", "quantiles"
        (any may be missing), e.g. a ``ResidualTests`` or a row of ``compare_models(...).tests``.
    alpha : float
        Significance level.
    """
    get = tests.get if hasattr(tests, "get") else (lambda k: getattr(tests, k, None))
    out = []
    d = get("dispersion")
    if _significant(d, alpha) and math.isfinite(float(d.statistic)):
        out.append("underdispersion" if d.statistic < 1 else "overdispersion")
    elif _significant(d, alpha):
        out.append("overdispersion")
    z = get("zero_inflation")
    if _significant(z, alpha) and math.isfinite(float(z.statistic)):
        out.append("zero_inflation" if z.statistic > 1 else "too_few_zeros")
    q = get("quantiles")
    if _significant(q, alpha) and "Categorical" not in getattr(q, "method", ""):
        out.append("heteroscedasticity")
    if _significant(get("uniformity"), alpha):
        out.append("non_uniform")
    if _significant(get("outliers"), alpha):
        out.append("outliers")
    return out


def _fixed_rhs(formula: str | None) -> str:
    """'~ x + f': the fixed part of a model formula (for a dispersion model); '~ x' without one."""
    if not formula:
        return "~ x"
    from glmmdiag.fit.formula import parse_formula

    fixed = parse_formula(formula).fixed
    return "~ x" if fixed.strip() in ("1", "0", "") else "~ " + fixed


def remedies(family: str, failed, formula: str | None = None) -> list[Remedy]:
    """What the remedy table proposes for a model of ``family`` that failed the checks ``failed``.

    Parameters
    ----------
    family : str
        The fitted family's name (``fit.family.name``: "poisson", "truncated_nbinom2", ...).
    failed : sequence of str
        Failed checks, as returned by ``problems``.
    formula : str, optional
        The model formula: its fixed part becomes the dispersion model of a heteroscedasticity
        remedy ("~ x" when not given).

    Returns
    -------
    list of Remedy
        One per failed check that the table or ``NOTES`` covers; spec strings are in the form
        ``compare_models`` and ``glmmdiag check --compare`` take.
    """
    fam = str(family).lower()
    out = []
    for prob in failed:
        entry = REMEDIES.get((fam, prob))
        if entry is not None:
            specs, why = entry
            if any("{fixed}" in s for s in specs):
                rhs = _fixed_rhs(formula)
                specs = tuple(s.replace("{fixed}", rhs) for s in specs)
            out.append(Remedy(prob, tuple(specs), why))
        elif (fam, prob) in NOTES or prob in NOTES:
            out.append(Remedy(prob, (), NOTES.get((fam, prob), NOTES.get(prob))))
    return out


def remedy_specs(family: str, failed, formula: str | None = None) -> list[str]:
    """The distinct spec strings of ``remedies(...)``, in table order."""
    seen: dict[str, None] = {}
    for r in remedies(family, failed, formula):
        for s in r.specs:
            seen.setdefault(s, None)
    return list(seen)


SEP = " · "  # between remedies in one line (spec strings contain ';')


def remedy_text(family: str, failed, formula: str | None = None) -> str:
    """One line naming the remedies (joined by ``SEP``), '' when nothing failed or nothing is known."""
    return SEP.join(str(r) for r in remedies(family, failed, formula))


def model_remedies(spec: dict, fitted_family: str, tests, alpha: float = 0.05,
                   formula: str | None = None) -> list[Remedy]:
    """``remedies`` for one fitted model, without the specification it already is.

    Parameters
    ----------
    spec : dict
        The model's specification (``normalize_spec`` form).
    fitted_family : str
        ``fit.family.name`` (for a hurdle model the truncated family's name).
    tests : mapping
        The model's test results (see ``problems``).
    alpha : float
        Significance level.
    formula : str, optional
        The model formula (the fixed part becomes a dispersion model).
    """
    try:
        own = format_spec(spec)
    except GlmmdiagError:
        own = None
    out = []
    for r in remedies(fitted_family, problems(tests, alpha), formula):
        specs = tuple(s for s in r.specs if s != own)
        if r.specs and not specs:
            continue  # the model is already the remedy
        out.append(Remedy(r.problem, specs, r.why))
    return out


# ------------------------------------------------------------------------------ autocorrelation
# A failed temporal or spatial test is not fixed by another family but by a random effect with a
# structured covariance, added to the model's formula (glmmTMB's syntax, fitted by glmmdiag):
#   temporal, equally spaced times   ar1(TIME + 0 | SERIES)
#   temporal, unequal spacing        ou(numFactor(TIME) + 0 | SERIES)
#   spatial                          exp(numFactor(X, Y) + 0 | GROUP)
# A single series / a single field is the one-level grouping ``| 1`` (``SINGLE_LEVEL``), which the
# fitter reads as one level holding every row: the suggested formula works on the user's data as is.
PROBLEM_NAMES.update({"temporal_autocorrelation": "temporal autocorrelation",
                      "spatial_autocorrelation": "spatial autocorrelation"})
SINGLE_LEVEL = "1"  # the grouping of a one-series / one-field term: ``exp(numFactor(x, y) + 0 | 1)``


def equally_spaced(times) -> bool:
    """Whether the distinct numeric values of ``times`` are equally spaced (ar1's assumption);
    non-numeric times (labels, a factor) count as equally spaced steps."""
    import numpy as np
    import pandas as pd

    t = pd.Series(times)
    if isinstance(t.dtype, pd.CategoricalDtype):
        num = pd.to_numeric(pd.Series(t.cat.categories.astype(str)), errors="coerce")
    else:
        num = pd.to_numeric(t, errors="coerce")
    if num.isna().any():
        return True
    u = np.unique(num.to_numpy(float))
    if u.size < 3:
        return True
    d = np.diff(u)
    return bool(np.allclose(d, d[0], rtol=1e-6, atol=0))


def structured_term(kind: str, *, time: str | None = None, series: str | None = None, coords=None,
                    group: str | None = None, equal_steps: bool = True) -> str:
    """The structured random-effects term that models the autocorrelation a test found.

    Parameters
    ----------
    kind : "temporal" or "spatial"
    time, series : str
        Temporal: the time column and the series column (``group``; a one-level column for a
        single series).
    coords : (str, str)
        Spatial: the coordinate columns; ``group`` the field's grouping column (one level for one
        field, or e.g. a year with one field per year).
    equal_steps : bool
        Temporal: whether the times are equally spaced (``ar1``) or not (``ou`` on the numeric
        times).

    Returns
    -------
    str
        e.g. ``"ar1(times + 0 | group)"``, ``"ou(numFactor(t) + 0 | group)"``,
        ``"exp(numFactor(x, y) + 0 | field)"``.
    """
    if kind == "temporal":
        if not time or not series:
            raise GlmmdiagError("a temporal remedy needs the time and series columns")
        return f"ar1({time} + 0 | {series})" if equal_steps else f"ou(numFactor({time}) + 0 | {series})"
    if kind == "spatial":
        if not coords or len(coords) != 2 or not group:
            raise GlmmdiagError("a spatial remedy needs two coordinate columns and a grouping column")
        return f"exp(numFactor({coords[0]}, {coords[1]}) + 0 | {group})"
    raise GlmmdiagError(f"kind must be 'temporal' or 'spatial'; got {kind!r}")


def with_term(formula: str, term: str) -> str:
    """``formula`` with ``term`` added to its right-hand side."""
    return f"{formula.rstrip()} + {term}"


def autocorrelation_remedy(kind: str, term: str, formula: str | None = None) -> Remedy:
    """The ``Remedy`` of a failed temporal/spatial test: the model formula with ``term`` added."""
    why = {"temporal": "an autocorrelated random effect within each series",
           "spatial": "a spatially correlated random effect (exponential covariance in distance)"}[kind]
    spec = with_term(formula, term) if formula else term
    return Remedy(f"{kind}_autocorrelation", (spec,), why)
