"""Seeded random "valid but odd" GLMM fitting problems, and a runner that classifies their outcome.

This module is shared by ``tests/test_fuzz.py`` (the bounded fuzz test of ``make test`` /
``make fuzz``) and ``tests/fuzz_report.py`` (the command-line runner that writes a report of every
non-clean outcome with a reproducer). It imports nothing from the test suite.

Case generation
---------------
``make_case(seed)`` draws one problem from ``numpy.random.default_rng(seed)`` only, in a fixed
order, so a seed always gives the same case (no dict/set iteration order matters, no global
random state is touched). A case is a data frame plus the arguments of ``glmmdiag.glmm``:

* data: 1 to ~400 rows; numeric predictors at scales 1e-8..1e8, shifted far from zero, constant,
  integer valued, duplicated or collinear; factors (pandas Categorical, plain strings or bools) with
  tiny or single-row levels, unused categories and empty interaction cells; groupings nested
  (``b`` reuses its labels inside each ``a``) and crossed, sometimes one group or one row per
  group; a positive exposure for offsets, prior weights (sometimes with zeros), a few missing values,
  and sometimes a non-default row index;
* the response is valid for the family -- counts, 0/1 / bool / two-level factor,
  ``cbind(successes, failures)``, proportions with ``weights=`` trials, positive continuous, (0, 1)
  for beta -- and sometimes degenerate: all zeros, all ones, constant, perfectly separated, huge or
  tiny in scale, piled up near the boundary;
* the formula combines a fixed part (``x``, ``x*f``, ``f*h``, ``0 + f``, ``I(x^2)``, ``log(z)``,
  ``scale(x)``, duplicated columns, ...) with 0-2 random-effects terms (``(1|g)``, ``(x|g)``,
  ``(x||g)``, ``(0 + x|g)``, ``(1|a/b)``, ``(1|a:b)``, crossed ``(1|a) + (1|c)``, ``(f|g)``) and
  ``offset(log(t))``; arguments: a valid link for the family, ``reml`` for the gaussian LMM,
  ``n_agq > 1`` when the model has exactly one scalar random-effects term, fixed ``df`` for t,
  ``weights=`` / ``offset=`` as column names or arrays;
* families beyond the first eight: betabinomial, tweedie, ordbeta and the zero-truncated counts
  (``truncated_*``: positive counts, sometimes with zeros, which need ``ziformula`` -- a hurdle);
* submodels: ``ziformula`` (``~1``, ``~ x``, ``~ f``, ... or ``~0``) with extra zeros in the
  response, for the families that allow zero-inflation and, now and then, for those that refuse it
  (beta, ordbeta, gaussian, t: a clear error is the expected outcome); ``dispformula`` for the
  families with a dispersion parameter (``~0`` sometimes: a clear error).

Outcome classification (``run_case``)
-------------------------------------
``ok``           the fit returned finite fixed effects, log-likelihood, dispersion and theta, and
                 finite standard errors (non-finite SEs only together with a warning), no warning;
``warned``       the same, with a warning from glmmdiag (a ``GlmmdiagWarning``, or for now a plain
                 ``UserWarning`` -- counted separately so that their conversion can be tracked);
``clear_error``  ``glmm`` raised a ``glmmdiag.errors.GlmmdiagError``;
``plain_error``  ``glmm`` raised a plain ``ValueError``/``KeyError`` from glmmdiag's own code with a
                 one-line message (would be "clear" under the lenient rule; the strict rule of the
                 test counts it as a failure);
``failure``      anything else: another exception type (including a ValueError raised inside
                 numpy/scipy/pandas/formulaic and passed through), a time-out, non-finite estimates,
                 or a raw exception from ``summary``/``predict``/``simulate``/``simulate_residuals``/
                 ``residual_tests`` on a successful fit.

Warnings that are not glmmdiag's (``RuntimeWarning`` from numpy, scipy's warnings, ...) are
recorded as "foreign" warnings: reported, not failures (``strict_warnings=True`` makes them so).
"""
from __future__ import annotations

import math
import re
import signal
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

import glmmdiag  # imported here so that the import is not charged to the first case's time limit
from glmmdiag.errors import DegenerateFitWarning, GlmmdiagError, GlmmdiagWarning

__all__ = [
    "FAMILIES",
    "LINKS",
    "FuzzCase",
    "Outcome",
    "FuzzTimeout",
    "make_case",
    "run_case",
    "time_limit",
    "ACCEPTED_STRICT",
    "ACCEPTED_LENIENT",
]

BASE_FAMILIES = ("gaussian", "binomial", "poisson", "gamma", "beta", "nbinom1", "nbinom2", "t")
NEW_FAMILIES = ("betabinomial", "tweedie", "ordbeta", "truncated_poisson", "truncated_nbinom1", "truncated_nbinom2")
FAMILIES = BASE_FAMILIES + NEW_FAMILIES
# The newer families and the submodels are drawn from a second stream of the seed ("ext"), so that a
# case without them is the same case as before they were added (and costs the same time): a case
# switches to a new family with probability P_NEW_FAMILY, gets a zero model with probability
# P_ZI (P_ZI_NEW for the new families and Gamma, P_ZI_REFUSED where zero-inflation is refused) and a
# dispersion model with P_DISP; cases with the extensions have at most EXT_MAX_ROWS rows.
P_NEW_FAMILY, P_ZI, P_ZI_NEW, P_ZI_REFUSED, P_DISP = 0.15, 0.08, 0.35, 0.04, 0.08
EXT_MAX_ROWS = 100
COUNTS = ("poisson", "nbinom1", "nbinom2", "truncated_poisson", "truncated_nbinom1", "truncated_nbinom2")
# ziformula: the families where it is zero-inflation (or a hurdle), and those that refuse it
ZI_FAMILIES = ("binomial", "poisson", "nbinom1", "nbinom2", "betabinomial", "tweedie", "gamma",
               "truncated_poisson", "truncated_nbinom1", "truncated_nbinom2")
ZI_REFUSED = ("beta", "ordbeta", "gaussian", "t")
DISP_FAMILIES = ("gaussian", "gamma", "beta", "nbinom1", "nbinom2", "t", "betabinomial", "tweedie",
                 "truncated_nbinom1", "truncated_nbinom2")
_ZI = (("~1", 4), ("~ x", 3), ("~ f", 2), ("~ h", 1), ("~ x + f", 1), ("~0", 1))
_DISP = (("~1", 2), ("~ x", 3), ("~ f", 2), ("~ h", 2), ("~ x + h", 1), ("~0", 1))
LINKS = {  # the links each family accepts (glmmdiag.fit.families)
    "gaussian": ("identity", "log", "inverse"),
    "binomial": ("logit", "probit", "cloglog", "log"),
    "poisson": ("log", "sqrt", "identity"),
    "gamma": ("inverse", "log", "identity"),
    "beta": ("logit", "probit", "cloglog"),
    "nbinom1": ("log", "sqrt", "identity"),
    "nbinom2": ("log", "sqrt", "identity"),
    "t": ("identity", "log", "inverse"),
    "betabinomial": ("logit", "probit", "cloglog"),
    "tweedie": ("log", "identity", "sqrt"),
    "ordbeta": ("logit",),
    "truncated_poisson": ("log", "sqrt", "identity"),
    "truncated_nbinom1": ("log", "sqrt", "identity"),
    "truncated_nbinom2": ("log", "sqrt", "identity"),
}
ACCEPTED_STRICT = ("ok", "warned", "clear_error")
ACCEPTED_LENIENT = ACCEPTED_STRICT + ("plain_error",)

# fixed parts: (right-hand side, weight). "x2" is sometimes a copy of x or collinear with it.
_FIXED = (
    ("1", 3),
    ("x", 6),
    ("x + f", 4),
    ("x * f", 4),
    ("f * h", 3),
    ("x + f + h", 2),
    ("x + x2", 3),
    ("x + I(x^2)", 2),
    ("x + I(x**2)", 1),
    ("log(z)", 2),
    ("scale(x)", 2),
    ("scale(x) * f", 1),
    ("0 + f", 2),
    ("0 + x", 1),
    ("x - 1", 1),
    ("f", 2),
    ("log(z) + x + h", 1),
)
# random-effects terms: (term, weight, scalar?) -- scalar terms allow n_agq > 1 when alone
_RANDOM = (
    ("(1|g)", 8, True),
    ("(x|g)", 4, False),
    ("(x||g)", 3, False),
    ("(0 + x|g)", 2, True),
    ("(1|a/b)", 3, False),
    ("(1|a:b)", 2, True),
    ("(1|a)", 3, True),
    ("(1|c)", 4, True),
    ("(1 + x|c)", 2, False),
    ("(f|g)", 1, False),
)
_AGQ = (2, 3, 5, 7, 9, 25)

# columns each name in a formula/argument refers to (used to prune reproducers)
DATA_COLUMNS = ("y", "succ", "fail", "m", "x", "x2", "z", "t", "lt", "w", "f", "h", "g", "a", "b", "c")


class FuzzTimeout(BaseException):
    """Raised by the SIGALRM handler when a case exceeds its time limit.

    A BaseException so that ``except Exception`` inside the package cannot swallow it.
    """


# ------------------------------------------------------------------------------------------- cases
@dataclass
class FuzzCase:
    """One fitting problem: ``glmmdiag.glmm(formula, data, family=..., **kwargs)``."""

    seed: int
    formula: str
    family: str
    data: pd.DataFrame
    link: str | None = None
    weights: object = None  # None, a column name, or a float array aligned with the rows
    offset: object = None  # None, a column name, or a float array aligned with the rows
    reml: bool = False
    n_agq: int = 1
    df: float | None = None
    tags: tuple[str, ...] = ()
    ziformula: str | None = None
    dispformula: str | None = None

    def kwargs(self) -> dict:
        """Keyword arguments of ``glmm`` other than the defaults (family included)."""
        kw: dict = {"family": self.family}
        if self.link is not None:
            kw["link"] = self.link
        if self.weights is not None:
            kw["weights"] = self.weights
        if self.offset is not None:
            kw["offset"] = self.offset
        if self.reml:
            kw["reml"] = True
        if self.n_agq != 1:
            kw["n_agq"] = self.n_agq
        if self.df is not None:
            kw["t_df"] = self.df
        if self.ziformula is not None:
            kw["ziformula"] = self.ziformula
        if self.dispformula is not None:
            kw["dispformula"] = self.dispformula
        return kw

    def fit(self):
        """Fit the case (exceptions and warnings propagate)."""
        return glmmdiag.glmm(self.formula, self.data, **self.kwargs())

    def describe(self) -> str:
        """One line: seed, n, family/link, formula and the non-default arguments."""
        extra = []
        if self.weights is not None:
            extra.append("weights=" + (repr(self.weights) if isinstance(self.weights, str) else "<array>"))
        if self.offset is not None:
            extra.append("offset=" + (repr(self.offset) if isinstance(self.offset, str) else "<array>"))
        if self.reml:
            extra.append("reml=True")
        if self.n_agq != 1:
            extra.append(f"n_agq={self.n_agq}")
        if self.df is not None:
            extra.append(f"df={self.df}")
        if self.ziformula is not None:
            extra.append(f"ziformula={self.ziformula!r}")
        if self.dispformula is not None:
            extra.append(f"dispformula={self.dispformula!r}")
        link = self.link or "default"
        return (
            f"seed={self.seed} n={len(self.data)} {self.family}({link}) {self.formula!r}"
            + (" " + " ".join(extra) if extra else "")
            + (f" [{', '.join(self.tags)}]" if self.tags else "")
        )

    def subset_rows(self, keep: np.ndarray) -> "FuzzCase":
        """The same case on the rows at positions ``keep`` (array weights/offsets follow)."""
        keep = np.asarray(keep, dtype=int)
        sub = lambda v: v if v is None or isinstance(v, str) else np.asarray(v)[keep]  # noqa: E731
        return FuzzCase(
            self.seed, self.formula, self.family, self.data.iloc[keep].copy(), self.link,
            sub(self.weights), sub(self.offset), self.reml, self.n_agq, self.df, self.tags,
            self.ziformula, self.dispformula,
        )

    def used_columns(self) -> list[str]:
        """Data columns the formula and the string arguments name (in the data's column order)."""
        text = self.formula + " " + " ".join(
            v for v in (self.weights, self.offset, self.ziformula, self.dispformula) if isinstance(v, str))
        words = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", text))
        return [c for c in self.data.columns if c in words]

    def pruned(self) -> "FuzzCase":
        """The same case with the unused data columns removed."""
        c = self.subset_rows(np.arange(len(self.data)))
        c.data = c.data[self.used_columns()]
        return c


def _choice(rng: np.random.Generator, options, weights=None):
    """One element of a sequence (a plain Python object, not a numpy scalar)."""
    if weights is None:
        return options[int(rng.integers(len(options)))]
    p = np.asarray(weights, dtype=float)
    return options[int(rng.choice(len(options), p=p / p.sum()))]


def _sample_n(rng) -> int:
    u = rng.random()
    if u < 0.06:
        return int(rng.integers(1, 6))
    if u < 0.30:
        return int(rng.integers(6, 31))
    if u < 0.85:
        return int(rng.integers(31, 151))
    return int(rng.integers(151, 401))


def _group_codes(rng, n: int, k: int) -> np.ndarray:
    """Codes 0..k-1 for n rows with uneven group sizes (some tiny or single-row groups)."""
    k = max(1, min(k, n))
    if rng.random() < 0.5:
        p = rng.dirichlet(np.full(k, float(_choice(rng, (0.3, 1.0, 5.0)))))
        codes = rng.choice(k, size=n, p=p)
    else:
        codes = rng.integers(0, k, size=n)
    codes[:k] = rng.permutation(k)  # every code occurs (k <= n), some of them only once
    return codes


def _n_groups(rng, n: int, upper: int) -> int:
    u = rng.random()
    if u < 0.03:
        return 1
    if u < 0.09:
        return n  # one row per group
    if u < 0.30:
        return int(rng.integers(2, 4))
    return int(rng.integers(2, max(3, min(upper, n) + 1)))


def _labels(rng, prefix: str, k: int) -> list[str]:
    style = rng.random()
    if style < 0.15:
        return [str(i + 1) for i in range(k)]  # numeric-looking labels
    if style < 0.22:
        return [f"{prefix} {i}" for i in range(k)]  # labels with spaces
    return [f"{prefix}{i}" for i in range(k)]


def _as_factor(rng, codes: np.ndarray, labels: list[str], *, allow_bool: bool = False,
               allow_int: bool = False, unused: bool = True):
    """A factor column from integer codes: Categorical (maybe with unused levels), str, bool or int."""
    u = rng.random()
    if allow_bool and len(labels) == 2 and u < 0.12:
        return codes.astype(bool)
    if allow_int and u < 0.2:
        return codes.astype(np.int64) + 1
    values = np.asarray(labels, dtype=object)[codes]
    if u < 0.65:
        cats = list(labels)
        if unused and rng.random() < 0.25:
            cats = cats + [f"unused{i}" for i in range(int(rng.integers(1, 3)))]
        if rng.random() < 0.2:
            cats = [cats[i] for i in rng.permutation(len(cats))]  # reference level not the first label
        return pd.Categorical(values, categories=cats)
    return values


def _numeric(rng, n: int, tags: list[str], name: str) -> np.ndarray:
    """A numeric predictor, often at an extreme scale or location, sometimes constant/integer."""
    x = rng.normal(size=n)
    u = rng.random()
    if u < 0.3:
        s = 10.0 ** rng.uniform(-8, 8)
        x = x * s
        tags.append(f"{name}*{s:.0e}")
    elif u < 0.38:
        x = x + 1e6
        tags.append(f"{name}+1e6")
    elif u < 0.44:
        x = np.full(n, float(_choice(rng, (0.0, 1.0, 3.5))))
        tags.append(f"{name} constant")
    elif u < 0.52:
        x = np.round(x * 2)
    return x


def _standardize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    ok = np.isfinite(v)
    if ok.sum() < 2:
        return np.zeros_like(v)
    sd = v[ok].std()
    if not np.isfinite(sd) or sd == 0:
        return np.zeros_like(v)
    out = (v - v[ok].mean()) / sd
    return np.where(ok, out, 0.0)


def make_case(seed: int) -> FuzzCase:
    """The random fitting problem number ``seed`` (deterministic; a few milliseconds)."""
    rng = np.random.default_rng([int(seed), 20240611])
    ext = np.random.default_rng([int(seed), 20261130])  # the newer families and the submodels
    tags: list[str] = []
    family = _choice(rng, BASE_FAMILIES)
    if ext.random() < P_NEW_FAMILY:
        family = _choice(ext, NEW_FAMILIES)
    link = None if rng.random() < 0.5 else _choice(rng, LINKS[family])
    n = _sample_n(rng)
    # ---- submodels (decided before the response, which gets extra zeros with a zero model)
    new = family in NEW_FAMILIES
    ziformula = dispformula = None
    if ((family in ZI_FAMILIES and ext.random() < (P_ZI_NEW if new or family == "gamma" else P_ZI))
            or (family in ZI_REFUSED and ext.random() < P_ZI_REFUSED)):
        ziformula = _choice(ext, [r for r, _ in _ZI], [w for _, w in _ZI])
    if family.startswith("truncated_") and ziformula is None and ext.random() < 0.5:
        ziformula = "~1"  # a hurdle more often than plain zero truncation
    if family in DISP_FAMILIES and ext.random() < P_DISP:
        dispformula = _choice(ext, [r for r, _ in _DISP], [w for _, w in _DISP])
    zi_share = float(_choice(ext, (0.1, 0.3, 0.6))) if ziformula not in (None, "~0") else 0.0
    if new or ziformula is not None or dispformula is not None:
        n = min(n, EXT_MAX_ROWS)

    # ---- predictors
    x = _numeric(rng, n, tags, "x")
    u = rng.random()
    if u < 0.15:
        x2 = x.copy()
        tags.append("x2 == x")
    elif u < 0.25:
        x2 = 2.0 * x + 1.0
        tags.append("x2 collinear")
    elif u < 0.32:
        x2 = np.full(n, 2.0)
        tags.append("x2 constant")
    else:
        x2 = _numeric(rng, n, tags, "x2")
    z = np.exp(rng.normal(size=n)) * (10.0 ** rng.uniform(-8, 8) if rng.random() < 0.3 else 1.0)
    t = rng.uniform(0.5, 5.0, size=n)
    u = rng.random()
    if u < 0.15:
        t = t * float(_choice(rng, (1e-8, 1e8)))
        tags.append("extreme exposure")
    elif u < 0.25:
        t = np.ones(n)

    kf = int(rng.integers(1, 7))
    f_codes = _group_codes(rng, n, kf)
    kh = int(rng.integers(1, 5))
    h_codes = _group_codes(rng, n, kh)
    if kh > 1 and rng.random() < 0.35:
        # h partly determined by f: some f x h cells are empty
        det = rng.random(n) < 0.8
        h_codes = np.where(det, f_codes % kh, h_codes)
        tags.append("empty cells")
    kf, kh = int(f_codes.max()) + 1, int(h_codes.max()) + 1

    ng = _n_groups(rng, n, 40)
    g_codes = _group_codes(rng, n, ng)
    na = _n_groups(rng, n, 8)
    a_codes = _group_codes(rng, n, na)
    nb = int(rng.integers(1, 5))
    b_codes = _group_codes(rng, n, nb)  # labels reused inside each a: nested only through a/b
    nc = _n_groups(rng, n, 15)
    c_codes = _group_codes(rng, n, nc)
    ng, na, nb, nc = (int(v.max()) + 1 for v in (g_codes, a_codes, b_codes, c_codes))

    # ---- linear predictor on the family's natural scale (log / logit / identity)
    xs = _standardize(x)
    sd_re = lambda: float(_choice(rng, (0.0, 0.3, 1.0, 2.0)))  # noqa: E731
    eta = (
        rng.normal(0.0, 1.0)
        + rng.normal(0.0, 0.7) * xs
        + rng.normal(0.0, 0.5, size=kf)[f_codes]
        + rng.normal(0.0, sd_re(), size=ng)[g_codes]
        + rng.normal(0.0, 0.5, size=ng)[g_codes] * xs * (rng.random() < 0.5)
        + rng.normal(0.0, sd_re(), size=nc)[c_codes]
        + rng.normal(0.0, sd_re(), size=na)[a_codes]
        + rng.normal(0.0, sd_re(), size=(na, nb))[a_codes, b_codes]
    )
    degenerate = None
    if rng.random() < 0.15:
        degenerate = _choice(rng, ("zeros", "ones", "constant", "separated", "huge", "tiny", "boundary"))
        tags.append(f"degenerate:{degenerate}")

    # ---- formula pieces (decided before the response so that offsets enter the data)
    fixed = _choice(rng, [r for r, _ in _FIXED], [w for _, w in _FIXED])
    n_re = _choice(rng, (0, 1, 2), (0.12, 0.6, 0.28))
    idx = rng.choice(len(_RANDOM), size=n_re, replace=False,
                     p=np.array([w for _, w, _ in _RANDOM], float) / sum(w for _, w, _ in _RANDOM))
    idx = sorted(int(i) for i in idx)
    bars = [_RANDOM[i][0] for i in idx]
    if rng.random() < 0.3:
        bars = [re.sub(r"\|\|?", lambda m: f" {m.group(0)} ", b) for b in bars]
    offset_in_formula = rng.random() < 0.2
    offset_kw = None
    u = rng.random()
    if u < 0.06:
        offset_kw = "lt"
    elif u < 0.10:
        offset_kw = np.log(t)
    if offset_in_formula or offset_kw is not None:
        eta = eta + np.log(t) * (family in COUNTS)

    # ---- response
    data: dict[str, object] = {}
    weights = None
    response = "y"
    if family == "binomial":
        form = _choice(rng, ("01", "01", "bool", "factor2", "cbind", "cbind", "prop"))
        tags.append(f"binomial:{form}")
        p = 1.0 / (1.0 + np.exp(-np.clip(eta, -30, 30)))
        if degenerate == "separated":
            p = (xs > 0).astype(float) if np.ptp(xs) > 0 else (np.arange(n) % 2).astype(float)
        elif degenerate in ("zeros", "tiny"):
            p = np.zeros(n)
        elif degenerate in ("ones", "huge"):
            p = np.ones(n)
        elif degenerate in ("constant", "boundary"):
            p = np.where(rng.random(n) < 0.97, 0.0, 1.0)
        if form in ("cbind", "prop"):
            m = rng.integers(1, int(_choice(rng, (2, 5, 20, 1000))), size=n, endpoint=True)
            s = rng.binomial(m, p)
            if form == "cbind":
                data["succ"], data["fail"] = s, m - s
                response = "cbind(succ, fail)"
            else:
                data["y"], data["m"] = s / m, m.astype(float)
                weights = "m" if rng.random() < 0.6 else m.astype(float)
        else:
            y01 = rng.binomial(1, p)
            if form == "bool":
                data["y"] = y01.astype(bool)
            elif form == "factor2":
                data["y"] = pd.Categorical(np.where(y01 == 1, "yes", "no"), categories=["no", "yes"])
            else:
                data["y"] = y01
    elif family == "betabinomial":
        form = _choice(rng, ("cbind", "cbind", "prop"))
        tags.append(f"betabinomial:{form}")
        mu = 1.0 / (1.0 + np.exp(-np.clip(eta, -30, 30)))
        phi = float(_choice(rng, (0.5, 3.0, 30.0, 1e4)))
        p = rng.beta(np.maximum(mu * phi, 1e-3), np.maximum((1 - mu) * phi, 1e-3))
        if degenerate in ("zeros", "tiny"):
            p = np.zeros(n)
        elif degenerate in ("ones", "huge"):
            p = np.ones(n)
        elif degenerate == "separated":
            p = (xs > 0).astype(float)
        m = rng.integers(1, int(_choice(rng, (2, 5, 20, 300))), size=n, endpoint=True)
        s = rng.binomial(m, p)
        s = np.where(ext.random(n) < zi_share, 0, s)
        if form == "cbind":
            data["succ"], data["fail"] = s, m - s
            response = "cbind(succ, fail)"
        else:
            data["y"], data["m"] = s / m, m.astype(float)
            weights = "m" if rng.random() < 0.6 else m.astype(float)
    elif family == "tweedie":
        mu = np.exp(np.clip(eta, -30, 20))
        # (data with zeros, as tweedie data are: without any the power runs to 2, where the
        # series needs windows of 1e5 terms per row -- a known slow corner, left to its own test)
        power = float(_choice(rng, (1.1, 1.4, 1.7)))
        phi = float(_choice(rng, (0.5, 1.0, 5.0)))
        lam = mu ** (2 - power) / (phi * (2 - power))
        k = rng.poisson(np.minimum(lam, 1e7))
        y = np.where(k > 0, rng.gamma(np.maximum(k, 1) * (2 - power) / (power - 1),
                                      phi * (power - 1) * mu ** (power - 1)), 0.0)
        if degenerate in ("zeros", "tiny"):
            y = np.zeros(n) if degenerate == "zeros" else y * 1e-8
        elif degenerate == "constant":
            y = np.where(np.arange(n) % 3 == 0, 0.0, 2.0)
        elif degenerate == "huge":
            y = y * 1e8
        elif degenerate == "separated":
            y = np.where(xs > 0, y, 0.0)
        y[: max(1, n // 10)] = 0.0
        data["y"] = np.where(ext.random(n) < zi_share, 0.0, y)
    elif family == "ordbeta":
        mu = 1.0 / (1.0 + np.exp(-np.clip(eta, -30, 30)))
        phi = float(_choice(rng, (2.0, 10.0, 100.0)))
        y = rng.beta(np.maximum(mu * phi, 1e-3), np.maximum((1 - mu) * phi, 1e-3))
        cut = float(_choice(rng, (0.02, 0.1, 0.3)))
        y = np.where(rng.random(n) < cut * (1 - mu), 0.0, np.where(rng.random(n) < cut * mu, 1.0, y))
        if degenerate == "constant":
            y = np.full(n, 0.5)
        elif degenerate in ("zeros", "tiny"):
            y = np.zeros(n)
        elif degenerate in ("ones", "huge"):
            y = np.ones(n)
        elif degenerate == "separated":
            y = np.where(xs > 0, 1.0, 0.0)
        data["y"] = y
    elif family in COUNTS:
        if degenerate == "huge":
            eta = eta + np.log(float(_choice(rng, (1e6, 1e9))))
        mu = np.exp(np.clip(eta, -30, 25))
        if family.endswith("poisson"):
            y = rng.poisson(mu)
        else:
            k = float(_choice(rng, (0.3, 1.0, 5.0, 100.0)))
            y = rng.negative_binomial(k, k / (k + mu))
        if degenerate in ("zeros", "tiny"):
            y = np.zeros(n, dtype=np.int64)
        elif degenerate == "constant":
            y = np.full(n, 3, dtype=np.int64)
        elif degenerate == "separated":
            y = np.where(xs > 0, y + 5, 0)
        elif degenerate in ("ones", "boundary"):
            y = (rng.random(n) < 0.05).astype(np.int64)
        if family.startswith("truncated_"):
            if ziformula in (None, "~0") and rng.random() < 0.85:
                y = np.maximum(y, 1)  # zero-truncated counts (otherwise: zeros, a clear error)
            elif rng.random() < 0.5:
                y = np.where(y == 0, 1, y)  # a hurdle whose zeros come from the zero model only
        y = np.where(ext.random(n) < zi_share, 0, y)
        data["y"] = y.astype(float) if rng.random() < 0.3 else y
    elif family == "beta":
        mu = 1.0 / (1.0 + np.exp(-np.clip(eta, -30, 30)))
        phi = float(_choice(rng, (1.0, 5.0, 30.0, 300.0)))
        y = rng.beta(np.maximum(mu * phi, 1e-3), np.maximum((1 - mu) * phi, 1e-3))
        if degenerate == "constant":
            y = np.full(n, 0.5)
        elif degenerate in ("boundary", "zeros", "ones", "tiny", "huge"):
            edge = float(_choice(rng, (1e-10, 1e-6, 1e-3)))
            y = np.where(rng.random(n) < 0.5, edge, 1.0 - edge) if degenerate != "zeros" else np.full(n, edge)
        elif degenerate == "separated":
            y = np.where(xs > 0, 0.999, 0.001)
        data["y"] = np.clip(y, 1e-10, 1 - 1e-10)
    elif family == "gamma":
        mu = np.exp(np.clip(eta, -30, 30))
        shape = float(_choice(rng, (0.5, 2.0, 10.0, 100.0)))
        y = rng.gamma(shape, mu / shape)
        if degenerate == "constant":
            y = np.full(n, 2.0)
        elif degenerate == "huge":
            y = y * 1e8
        elif degenerate in ("tiny", "zeros"):
            y = y * 1e-8
        elif degenerate == "separated":
            y = np.where(xs > 0, y * 1e4, y)
        elif degenerate in ("ones", "boundary"):
            y = np.ones(n) + (rng.random(n) < 0.05)
        scale = 10.0 ** rng.uniform(-6, 6) if rng.random() < 0.2 else 1.0
        y = y * scale
        y = np.where(y > 0, y, scale * 1e-3)
        data["y"] = np.where(ext.random(n) < zi_share, 0.0, y)  # ziGamma: zeros are the zero model's
    else:  # gaussian, t
        positive = (link or "identity") != "identity"
        if positive:
            y = np.exp(0.3 * np.clip(eta, -30, 30) + 0.1 * rng.normal(size=n))
        elif family == "t":
            dft = float(_choice(rng, (1.0, 3.0, 10.0)))
            y = eta + rng.standard_t(dft, size=n)
        else:
            y = eta + rng.normal(0.0, float(_choice(rng, (0.05, 0.5, 1.0, 3.0))), size=n)
        if degenerate == "constant":
            y = np.full(n, 1.5)
        elif degenerate == "zeros":
            y = np.zeros(n) if not positive else np.full(n, 1.0)
        elif degenerate == "huge":
            y = y * 1e8
        elif degenerate == "tiny":
            y = y * 1e-8
        elif degenerate == "separated":
            y = np.where(xs > 0, 1.0, 2.0)
        elif degenerate in ("ones", "boundary"):
            y = y + 1e6
        data["y"] = y

    # ---- assemble the data frame (fixed column order)
    data["x"] = x
    data["x2"] = x2
    data["z"] = z
    data["t"] = t
    data["lt"] = np.log(t)
    f = _as_factor(rng, f_codes, _labels(rng, "f", kf), allow_bool=True)
    h = _as_factor(rng, h_codes, _labels(rng, "h", kh), allow_bool=True)
    data["f"], data["h"] = f, h
    data["g"] = _as_factor(rng, g_codes, _labels(rng, "g", ng), allow_int=True)
    data["a"] = _as_factor(rng, a_codes, _labels(rng, "a", na), allow_int=True)
    data["b"] = _as_factor(rng, b_codes, _labels(rng, "b", nb), allow_int=True)
    data["c"] = _as_factor(rng, c_codes, _labels(rng, "c", nc), allow_int=True)
    if family not in ("binomial", "betabinomial") and rng.random() < 0.15:
        u = rng.random()
        if u < 0.3:
            w = rng.integers(1, 5, size=n).astype(float)
        elif u < 0.5:
            w = np.where(rng.random(n) < 0.2, 0.0, 1.0)
            tags.append("zero weights")
        elif u < 0.65:
            w = rng.uniform(0.5, 2.0, size=n) * float(_choice(rng, (1e-6, 1e6)))
            tags.append("extreme weights")
        else:
            w = rng.uniform(0.5, 2.0, size=n)
        data["w"] = w
        weights = "w" if rng.random() < 0.6 else w.copy()
    df = pd.DataFrame(data)

    # a few missing values
    if n > 3 and rng.random() < 0.08:
        col = _choice(rng, ("x", "y", "g", "f"))
        if col in df.columns:
            rows = rng.choice(n, size=max(1, n // 20), replace=False)
            if df[col].dtype == bool or pd.api.types.is_integer_dtype(df[col]):
                df[col] = df[col].astype(object if df[col].dtype == bool else float)
            df.loc[df.index[rows], col] = np.nan if df[col].dtype != object else None
            tags.append(f"NaN in {col}")
    if rng.random() < 0.1:
        df.index = pd.Index(rng.permutation(n) * 3 + 100)
        tags.append("odd index")

    # ---- formula and arguments
    rhs = fixed
    if offset_in_formula:
        rhs = f"{rhs} + offset(log(t))"
    if bars:
        rhs = " + ".join([rhs] + bars)
    formula = f"{response} ~ {rhs}"
    is_lmm = family == "gaussian" and (link or "identity") == "identity"
    reml = bool(is_lmm and rng.random() < 0.4)
    n_agq = 1
    if not is_lmm and len(idx) == 1 and _RANDOM[idx[0]][2] and rng.random() < 0.35:
        n_agq = int(_choice(rng, _AGQ))
    dft = None
    if family == "t" and rng.random() < 0.3:
        dft = float(_choice(rng, (1.0, 2.5, 5.0, 30.0)))
    if ziformula is not None:
        tags.append("ziformula")
    if dispformula is not None:
        tags.append("dispformula")
    return FuzzCase(seed=int(seed), formula=formula, family=family, data=df, link=link, weights=weights,
                    offset=offset_kw, reml=reml, n_agq=n_agq, df=dft, tags=tuple(tags), ziformula=ziformula,
                    dispformula=dispformula)


# -------------------------------------------------------------------------------------- running
class time_limit:
    """Context manager: raise ``FuzzTimeout`` after ``seconds`` of CPU time, or 3x that of wall time.

    The CPU-time limit (``ITIMER_PROF``/SIGPROF: user + system time of the process) makes the limit
    independent of other load on a shared machine; the wall-clock backstop (``ITIMER_REAL``/SIGALRM)
    catches a process that waits instead of computing. Works in the main thread of a process
    (pytest-xdist workers and multiprocessing workers run their tasks there); elsewhere, or with
    ``seconds`` <= 0, it does nothing. A long C/LAPACK call is interrupted when it returns to Python.
    """

    WALL_FACTOR = 3.0

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.active = False

    def _cpu(self, signum, frame):
        raise FuzzTimeout(f"CPU time limit of {self.seconds:g} s exceeded")

    def _wall(self, signum, frame):
        raise FuzzTimeout(f"wall-clock limit of {self.seconds * self.WALL_FACTOR:g} s exceeded")

    def __enter__(self):
        if (self.seconds > 0 and hasattr(signal, "setitimer")
                and threading.current_thread() is threading.main_thread()):
            self._old = (signal.signal(signal.SIGPROF, self._cpu), signal.signal(signal.SIGALRM, self._wall))
            signal.setitimer(signal.ITIMER_PROF, self.seconds)
            signal.setitimer(signal.ITIMER_REAL, self.seconds * self.WALL_FACTOR)
            self.active = True
        return self

    def __exit__(self, *exc):
        if self.active:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGPROF, self._old[0])
            signal.signal(signal.SIGALRM, self._old[1])
        return False


@dataclass
class Outcome:
    """What happened to one case. ``kind`` is ok / warned / clear_error / plain_error / failure."""

    seed: int
    kind: str
    stage: str = "fit"  # fit, check, summary, predict, simulate, simulate_residuals, residual_tests
    exc_type: str | None = None
    message: str | None = None
    frames: list[str] = field(default_factory=list)  # glmmdiag frames, innermost last: "path:line func"
    last_frame: str | None = None  # the innermost frame of all (may be numpy/scipy/...)
    traceback: str | None = None
    warnings: list[tuple[str, str, str]] = field(default_factory=list)  # (class, message head, origin)
    seconds: float = 0.0  # fit + checks + post checks
    fit_seconds: float = 0.0  # glmm() and the finiteness checks, wall clock
    fit_cpu: float = 0.0  # the same in CPU time of the process
    post_checked: bool = False
    description: str = ""

    @property
    def signature(self) -> str:
        """Groups outcomes with the same cause: stage, exception type, innermost glmmdiag function.

        File and function, not line, so that it survives edits of the source during a run;
        time-outs form one group whatever they interrupted.
        """
        if self.exc_type == "Timeout":
            return f"{self.stage}|Timeout|"
        where = self.frames[-1] if self.frames else (self.last_frame or "?")
        path, _, func = where.partition(" ")
        return f"{self.stage}|{self.exc_type}|{path.rsplit(':', 1)[0]} {func}"

    @property
    def category(self) -> str:
        """A finer grouping: signature plus the normalised head of the message."""
        if self.exc_type == "Timeout":
            return self.signature
        return f"{self.signature}|{message_head(self.message)}"

    def glmmdiag_warning_classes(self) -> list[str]:
        return [c for c, _, origin in self.warnings if origin == "glmmdiag"]


def message_head(msg: str | None, width: int = 70) -> str:
    """First line of a message with numbers and quoted names replaced, for grouping."""
    if not msg:
        return ""
    head = msg.strip().splitlines()[0] if msg.strip() else ""
    head = re.sub(r"'[^']*'", "'…'", head)
    head = re.sub(r"[-+]?\d[\d.,eE+-]*", "N", head)
    return head[:width]


_SRC_MARK = "/glmmdiag/"


def _in_package(filename: str) -> bool:
    return _SRC_MARK in filename.replace("\\", "/") and "/tests/" not in filename.replace("\\", "/")


def _short(filename: str) -> str:
    f = filename.replace("\\", "/")
    i = f.rfind("/src/glmmdiag/")
    if i >= 0:
        return f[i + 1:]
    i = f.rfind("/site-packages/")
    return f[i + len("/site-packages/"):] if i >= 0 else f


def _frames(exc: BaseException) -> tuple[list[str], str | None, str]:
    tb = traceback.extract_tb(exc.__traceback__)
    pkg = [f"{_short(fr.filename)}:{fr.lineno} {fr.name}" for fr in tb if _in_package(fr.filename)]
    last = f"{_short(tb[-1].filename)}:{tb[-1].lineno} {tb[-1].name}" if tb else None
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return pkg, last, text


def _warning_origin(w: warnings.WarningMessage) -> str:
    if issubclass(w.category, GlmmdiagWarning):
        return "glmmdiag"
    if w.category is UserWarning:
        return "plain_user"  # glmmdiag's not-yet-converted warnings (they carry stacklevel=2)
    return "foreign"


def _record_warnings(ws) -> list[tuple[str, str, str]]:
    out = []
    for w in ws:
        origin = _warning_origin(w)
        head = str(w.message).strip().splitlines()[0][:160] if str(w.message).strip() else ""
        if origin == "foreign":
            head = f"{head} [{_short(w.filename)}:{w.lineno}]"
        out.append((w.category.__name__, head, origin))
    return out


def _nonfinite_problem(fit, warned: bool) -> str | None:
    """Why a returned fit is not an honest success, or None. logLik = +inf is honest only for an
    exact linear fit reported with a DegenerateFitWarning (as R's lm: zero residual variance)."""
    fe = np.asarray(fit.fixef, dtype=float)
    if not np.all(np.isfinite(fe)):
        return f"non-finite fixed effects {fe.tolist()}"
    ll = float(fit.loglik)
    exact = ll == math.inf and any(isinstance(w, DegenerateFitWarning) for w in fit.warning_objects)
    if not math.isfinite(ll) and not exact:
        return f"non-finite log-likelihood {ll}"
    th = np.asarray(fit.theta, dtype=float)
    if not np.all(np.isfinite(th)):
        return f"non-finite theta {th.tolist()}"
    disp = fit.dispersion
    if disp is not None and not (math.isfinite(float(disp)) and float(disp) >= 0):
        return f"non-finite or negative dispersion {disp}"
    se = np.asarray(fit.se, dtype=float)
    if not np.all(np.isfinite(se)) and not warned:
        return f"non-finite standard errors {se.tolist()} without a warning"
    return None


def _classify_exception(exc: BaseException) -> str:
    if isinstance(exc, GlmmdiagError):
        return "clear_error"
    if isinstance(exc, (ValueError, KeyError)) and not isinstance(exc, FuzzTimeout):
        tb = traceback.extract_tb(exc.__traceback__)
        raised_here = bool(tb) and _in_package(tb[-1].filename)
        msg = str(exc.args[0]) if exc.args else ""
        if raised_here and msg.strip() and "\n" not in msg.strip():
            return "plain_error"
    return "failure"


POST_STAGES = ("summary", "predict", "simulate", "simulate_residuals", "residual_tests")


def _post_checks(fit) -> None:
    """Exercise the results object; raises whatever the package raises."""
    _stage[0] = "summary"
    s = fit.summary()
    if not isinstance(s, str):
        raise TypeError(f"summary() returned {type(s).__name__}, not str")
    _stage[0] = "predict"
    fit.predict()
    fit.predict(type="response")
    _stage[0] = "simulate"
    sims = fit.simulate(5, seed=1)
    if np.shape(sims)[1:] != (5,):
        raise AssertionError(f"simulate(5) returned shape {np.shape(sims)}")
    _stage[0] = "simulate_residuals"
    res = glmmdiag.simulate_residuals(fit, n_sim=20, seed=1)
    _stage[0] = "residual_tests"
    glmmdiag.residual_tests(res, calibrate="never")  # robustness, not the refit budget (its own tests)


_stage = ["fit"]


def run_case(case: FuzzCase | int, *, timeout: float = 10.0, post: bool = True,
             strict_warnings: bool = False) -> Outcome:
    """Fit one case under a time limit and classify the outcome (never raises, except Ctrl-C).

    ``post=True`` also runs summary/predict/simulate/simulate_residuals/residual_tests on a
    successful fit, under a second time limit of the same length.
    """
    if not isinstance(case, FuzzCase):
        case = make_case(int(case))
    out = Outcome(seed=case.seed, kind="failure", description=case.describe())
    t0, c0 = time.perf_counter(), time.process_time()
    fit = None
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter("always")
        try:
            with time_limit(timeout):
                fit = case.fit()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 -- classifying every exception is the point
            out.stage = "fit"
            out.exc_type = "Timeout" if isinstance(exc, FuzzTimeout) else type(exc).__name__
            out.message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            out.frames, out.last_frame, out.traceback = _frames(exc)
            out.kind = "failure" if isinstance(exc, FuzzTimeout) else _classify_exception(exc)
        problem = None
        if fit is not None:
            warned = any(_warning_origin(w) != "foreign" for w in ws) or bool(fit.warnings)
            try:
                with time_limit(timeout):
                    problem = _nonfinite_problem(fit, warned)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001
                out.stage, out.exc_type = "check", type(exc).__name__
                out.message = str(exc)
                out.frames, out.last_frame, out.traceback = _frames(exc)
                out.kind = "failure"
    out.warnings = _record_warnings(ws)
    t_fit, c_fit = time.perf_counter() - t0, time.process_time() - c0
    if fit is not None:
        if problem is not None:
            out.stage, out.exc_type, out.message, out.kind = "check", "NonFinite", problem, "failure"
        elif out.stage != "check":
            out.kind = "warned" if warned else "ok"
            if strict_warnings and any(o == "foreign" for _, _, o in out.warnings):
                out.kind, out.stage, out.exc_type = "failure", "check", "ForeignWarning"
                out.message = next(h for _, h, o in out.warnings if o == "foreign")
    if fit is not None and post and out.kind in ("ok", "warned"):
        out.post_checked = True
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter("always")
            _stage[0] = "summary"
            try:
                with time_limit(timeout):
                    _post_checks(fit)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001
                if not isinstance(exc, GlmmdiagError):
                    out.kind, out.stage = "failure", _stage[0]
                    out.exc_type = "Timeout" if isinstance(exc, FuzzTimeout) else type(exc).__name__
                    out.message = str(exc)
                    out.frames, out.last_frame, out.traceback = _frames(exc)
        out.warnings += [(c, h, o) for c, h, o in _record_warnings(ws)]
        if strict_warnings and out.kind != "failure" and any(o == "foreign" for _, _, o in out.warnings):
            out.kind, out.stage, out.exc_type = "failure", "post", "ForeignWarning"
            out.message = next(h for _, h, o in out.warnings if o == "foreign")
    out.seconds = time.perf_counter() - t0
    out.fit_seconds, out.fit_cpu = t_fit, c_fit
    return out


def summarize(outcomes: list[Outcome]) -> dict:
    """Counts: fits, ok, warned, clear/plain errors, failures, and the warnings by origin."""
    kinds = [o.kind for o in outcomes]
    warn_cases = {
        origin: sum(any(w[2] == origin for w in o.warnings) for o in outcomes)
        for origin in ("glmmdiag", "plain_user", "foreign")
    }
    return {
        "fits": len(outcomes),
        "ok": kinds.count("ok"),
        "warned": kinds.count("warned"),
        "clear_error": kinds.count("clear_error"),
        "plain_error": kinds.count("plain_error"),
        "failure": kinds.count("failure"),
        "timeouts": sum(o.exc_type == "Timeout" for o in outcomes),
        "post_checked": sum(o.post_checked for o in outcomes),
        "cases_with_GlmmdiagWarning": warn_cases["glmmdiag"],
        "cases_with_plain_UserWarning": warn_cases["plain_user"],
        "cases_with_foreign_warning": warn_cases["foreign"],
        "seconds": round(sum(o.seconds for o in outcomes), 2),
        "cpu_seconds_fits": round(sum(o.fit_cpu for o in outcomes), 2),
        "slowest": max(((round(o.seconds, 2), o.seed) for o in outcomes), default=None),
    }


if __name__ == "__main__":  # python tests/fuzz_cases.py SEED...: describe and run cases
    import sys

    for s in sys.argv[1:] or ["0"]:
        c = make_case(int(s))
        print(c.describe())
        o = run_case(c)
        print(f"  -> {o.kind} {o.stage} {o.exc_type or ''} {(o.message or '')[:200]} ({o.seconds:.2f}s)")
        for fr in o.frames[-3:]:
            print("     ", fr)
