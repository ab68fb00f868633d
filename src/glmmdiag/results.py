"""Frozen result objects: ``ScaledResiduals`` and ``TestResult`` (printed like R's htest).

They hold numbers and the data a plot needs; they never compute tests or draw.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats


def _plain(v):
    """numpy scalars as Python numbers (JSON-friendly); anything else unchanged."""
    if isinstance(v, np.generic):
        return v.item()
    return v


class ReadOnlyDict(Mapping):
    """A read-only mapping that pickles, deep-copies and ``joblib.dump``s like a dict (a
    ``types.MappingProxyType`` cannot be pickled)."""

    __slots__ = ("_data",)

    def __init__(self, data=()):
        object.__setattr__(self, "_data", dict(data))

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setattr__(self, name, value):
        raise AttributeError("read-only mapping")

    def __reduce__(self):
        return (type(self), (self._data,))

    def __repr__(self) -> str:
        return f"ReadOnlyDict({self._data!r})"

    def to_dict(self) -> dict:
        return dict(self._data)


__all__ = ["ScaledResiduals", "TestResult", "ResidualTests", "format_pvalue"]


def _frozen_array(a) -> np.ndarray | None:
    if a is None:
        return None
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _signif(x: float, digits: int = 5) -> str:
    if x is None:
        return "NA"
    x = float(x)
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("Inf" if x > 0 else "-Inf")
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def format_pvalue(p: float | None, digits: int = 4) -> str:
    """As R's format.pval(p, digits = 4) inside print.htest: 'p-value = 0.203' or '< 2.2e-16'."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "p-value = NA"
    if p < 2.220446e-16:
        return "p-value < 2.2e-16"
    return f"p-value = {_signif(p, digits)}"


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class TestResult:
    """One test: statistic, p-value, alternative, method, Monte-Carlo SE and what its plot needs.

    ``mc_se`` is the Monte-Carlo standard error of a simulation-based p-value (binomial SE of an
    empirical proportion over the simulations; doubled for two-sided p-values), None for tests
    whose p-value is analytic. ``plot_data`` maps names to arrays/values (e.g. the simulated
    statistics for a histogram). ``parameter`` and ``estimate`` print as in R.
    """

    __test__ = False  # not a pytest test class

    method: str
    statistic: float
    statistic_name: str
    p_value: float
    alternative: str
    data_name: str = "res"
    parameter: Mapping[str, float] | None = None
    estimate: Mapping[str, float] | None = None
    mc_se: float | None = None
    n_sim: int | None = None
    simulate_re: str | None = None
    note: str | None = None
    plot_data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    table: Any = None  # a pandas DataFrame for tests made of several parts (quantile, categorical)

    def __post_init__(self):
        object.__setattr__(self, "plot_data", ReadOnlyDict(dict(self.plot_data)))
        if self.parameter is not None:
            object.__setattr__(self, "parameter", ReadOnlyDict(dict(self.parameter)))
        if self.estimate is not None:
            object.__setattr__(self, "estimate", ReadOnlyDict(dict(self.estimate)))

    # tuple-like access as in R: res$statistic, res$p.value
    @property
    def pvalue(self) -> float:
        return self.p_value

    def significant(self, alpha: float = 0.05) -> bool:
        return bool(self.p_value is not None and self.p_value < alpha)

    def __str__(self) -> str:
        out = ["", f"\t{self.method}", "", f"data:  {self.data_name}"]
        parts = [f"{self.statistic_name} = {_signif(self.statistic)}"]
        if self.parameter:
            parts += [f"{k} = {_signif(v)}" for k, v in self.parameter.items()]
        parts.append(format_pvalue(self.p_value))
        out.append(", ".join(parts))
        out.append(f"alternative hypothesis: {self.alternative}")
        if self.estimate:
            out.append("sample estimates:")
            for k, v in self.estimate.items():
                out.append(f"{k}: {_signif(v, 7)}")
        if self.mc_se is not None:
            extra = f" ({self.n_sim} simulations" + (f", {self.simulate_re}" if self.simulate_re else "") + ")"
            out.append(f"Monte-Carlo standard error of the p-value: {_signif(self.mc_se, 2)}{extra}")
        if self.table is not None:
            out.append("")
            out.append(self.table.to_string())
        if self.note:
            out.append(self.note)
        out.append("")
        return "\n".join(out)

    def __repr__(self) -> str:
        return (f"TestResult({self.method!r}, {self.statistic_name}={_signif(self.statistic)}, "
                f"p_value={_signif(self.p_value)})")

    def to_dict(self) -> dict:
        """The numbers as plain Python values: method, statistic (and its name), p-value,
        alternative, Monte-Carlo SE, simulations, parameter and estimate (dicts), note."""
        return {
            "method": self.method, "statistic_name": self.statistic_name, "statistic": _plain(self.statistic),
            "p_value": _plain(self.p_value), "alternative": self.alternative, "mc_se": _plain(self.mc_se),
            "n_sim": self.n_sim, "simulate_re": self.simulate_re,
            "parameter": {k: _plain(v) for k, v in (self.parameter or {}).items()},
            "estimate": {k: _plain(v) for k, v in (self.estimate or {}).items()},
            "note": self.note,
        }

    def to_frame(self) -> pd.DataFrame:
        """One row: the scalars of :meth:`to_dict`, parameter and estimate entries as columns."""
        d = self.to_dict()
        row = {k: v for k, v in d.items() if k not in ("parameter", "estimate")}
        row.update(d["parameter"])
        row.update({f"estimate: {k}": v for k, v in d["estimate"].items()})
        return pd.DataFrame([row])


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ResidualTests:
    """``residual_tests(res)``: uniformity, dispersion and outliers together (mapping-like).

    ``verdict`` names the tests that reject at 0.05 after Holm's adjustment over the three tests
    (``verdict_at(alpha)`` at another level; ``adjusted()`` the adjusted tests).
    With ``family`` (the fitted family's name, e.g. "poisson"; ``with_family`` sets it) the text
    and ``remedies()`` also name the models that address a failed check, in the specification
    form of ``compare_models`` / ``glmmdiag check --compare`` (see ``glmmdiag.remedies``).
    """

    uniformity: TestResult
    dispersion: TestResult
    outliers: TestResult
    family: str | None = None
    formula: str | None = None
    p_values: str = "uncalibrated"  # which p-values: "calibrated (...)" or "uncalibrated (...)", and why
    calibration: Mapping[str, Any] | None = None  # the calibration decision (checks.battery)

    _TESTS = ("uniformity", "dispersion", "outliers")

    def __getitem__(self, k):
        if k not in self._TESTS:
            raise KeyError(k)
        return getattr(self, k)

    def get(self, k, default=None):
        return getattr(self, k) if k in self._TESTS else default

    def items(self):
        return [(name, getattr(self, name)) for name in self._TESTS]

    def with_family(self, family: str, formula: str | None = None) -> "ResidualTests":
        """The same tests, knowing the fitted family (and formula) so that remedies are named."""
        return dataclasses.replace(self, family=family, formula=formula)

    def adjusted(self) -> dict:
        """{name: test} with the p-values Holm-adjusted over the tests (``checks.pvalues.adjust_tests``):
        what the verdict reads, so that it flags a correct model with probability at most alpha."""
        from glmmdiag.checks.pvalues import adjust_tests

        return adjust_tests(dict(self.items()), "holm")

    def verdict_at(self, alpha: float = 0.05) -> str:
        """'overdispersion 3.0 (p < 0.004); ...' or 'no problems detected', from the Holm-adjusted
        p-values of the tests (``adjusted``): a verdict over three tests each read at alpha would
        flag a correct model up to 1 - (1 - alpha)^3 of the time."""
        from glmmdiag.plots._style import problem_phrases

        out = problem_phrases(self.adjusted(), alpha)
        return "; ".join(out) if out else "no problems detected"

    @property
    def verdict(self) -> str:
        """The verdict at alpha = 0.05."""
        return self.verdict_at(0.05)

    def remedies(self, alpha: float = 0.05, family: str | None = None, formula: str | None = None) -> list:
        """``glmmdiag.remedies.Remedy`` entries for the failed checks (empty without a family)."""
        from glmmdiag.remedies import problems, remedies

        family = family or self.family
        if not family:
            return []
        return remedies(family, problems(self.adjusted(), alpha), formula or self.formula)

    def __str__(self):
        out = [str(t) for _, t in self.items()]
        out.append(f"p-values: {self.p_values}")
        out.append(f"Verdict (alpha = 0.05): {self.verdict}")
        for r in self.remedies():
            out.append(f"  remedy for {r}")
        return "\n".join(out)

    def __repr__(self) -> str:
        ps = ", ".join(f"{name}={_signif(t.p_value)}" for name, t in self.items())
        return f"ResidualTests({ps}; verdict: {self.verdict})"

    def to_dict(self) -> dict:
        """``{test name: TestResult.to_dict()}`` plus the verdict at 0.05."""
        out = {name: t.to_dict() for name, t in self.items()}
        out["p_values"] = self.p_values
        if self.calibration is not None:
            out["calibration"] = dict(self.calibration)
        out["verdict"] = self.verdict
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per test (index: uniformity, dispersion, outliers)."""
        frame = pd.concat([t.to_frame() for _, t in self.items()], ignore_index=True)
        frame.index = pd.Index(self._TESTS, name="test")
        return frame


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ScaledResiduals:
    """Simulated scaled (randomised-PIT) residuals of a model: DHARMa's ``simulateResiduals`` object.

    Attributes
    ----------
    residuals : (n,) array in [0, 1]
        The randomised PIT of each observation within its simulations, by the definition ``pit``:
        "ranks" r_i = (#{sims < y_i} + u_i (#{sims = y_i} + 1)) / (n_sim + 1), exactly uniform
        under a correct model; "dharma" r_i = L_i if L_i == U_i else a uniform draw in [L_i, U_i],
        with L_i = #{sims < y_i} / n_sim and U_i = #{sims <= y_i} / n_sim (on a 1/n_sim grid).
    pit : str
        "ranks" or "dharma" (residuals.py).
    observed, fitted, trials : (n,) arrays
        Observed response (binomial: successes), population-level fitted mean (binomial: the
        probability) and binomial trials (ones otherwise).
    integer_response : bool
    n_sim : int
        Number of simulations (refit mode: of successful refits).
    simulate_re : str
        "conditional", "unconditional" (random effects redrawn) or "given" (from_simulations).
    method : str
        "PIT" (simulated responses) or "refit" (ranks of the observed model's residuals among the
        residuals of models refitted to simulated responses).
    seed : int-like entropy
        The root SeedSequence entropy: with the same model, n_sim, chunk_size and seed the
        simulations and residuals are reproduced bit for bit (whatever ``n_jobs``).
    chunk_size : int
        Simulations per random stream.
    counts_less, counts_leq : (n,) int arrays
        #{sims < y_i} and #{sims <= y_i}.
    sim_stats : mapping name -> (n_sim,) array
        Per-simulation summaries accumulated while streaming ("spread": var(y* - fitted),
        "spread_expected": var(y* - trials * fitted), "zeros": number of zeros, user summaries).
    obs_stats : mapping name -> float
        The same summaries of the observed response.
    simulations : (n, n_sim) array or None
        Only with ``keep_simulations=True`` (or given to ``from_simulations``).
    group : optional labels (n,) after ``recalculate_residuals``; ``aggregate`` the aggregator.
    rotation : str or None
        "estimated" or "given" when observed and simulated responses were rotated (decorrelated)
        before the PIT (``simulate_residuals(..., rotation=...)``), else None.
    refit : mapping or None
        Refit mode: observed and simulated Pearson chi-square sums, fixed effects per refit,
        number of failed refits.
    """

    residuals: np.ndarray
    observed: np.ndarray
    fitted: np.ndarray
    trials: np.ndarray
    integer_response: bool
    n_sim: int
    simulate_re: str
    method: str
    seed: Any
    chunk_size: int
    counts_less: np.ndarray
    counts_leq: np.ndarray
    sim_stats: Mapping[str, np.ndarray]
    obs_stats: Mapping[str, float]
    family_name: str = "unknown"
    simulations: np.ndarray | None = None
    group: np.ndarray | None = None
    aggregate: str | None = None
    refit: Mapping[str, Any] | None = None
    model: Any = None  # the SimulableModel (adapter); lets tests regenerate simulations
    rotation: str | None = None  # "estimated" / "given": residuals of rotated responses (residuals.py)
    pit: str = "dharma"  # the residual definition: "ranks" or "dharma" (simulate_residuals sets it)
    _source: Any = None  # the engine's plan to regenerate simulations (simulate.py)

    def __post_init__(self):
        for name in ("residuals", "observed", "fitted", "trials", "counts_less", "counts_leq", "simulations", "group"):
            object.__setattr__(self, name, _frozen_array(getattr(self, name)))
        object.__setattr__(self, "sim_stats", ReadOnlyDict({k: _frozen_array(v) for k, v in self.sim_stats.items()}))
        object.__setattr__(self, "obs_stats", ReadOnlyDict(dict(self.obs_stats)))
        if self.refit is not None:
            object.__setattr__(self, "refit", ReadOnlyDict(dict(self.refit)))

    @property
    def nobs(self) -> int:
        return int(self.residuals.shape[0])

    def __len__(self) -> int:
        return self.nobs

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.residuals, dtype=dtype)

    def outlier_cells(self) -> tuple[float, float]:
        """(lower, upper): a residual r < lower or r >= upper is an outlier (the observation lies below or
        above all of its simulations). "ranks": (1, n_sim) / (n_sim + 1), the extreme cells, each of
        probability exactly 1/(n_sim + 1) under the model; "dharma": r <= 0 or r >= 1 (as (tiny, 1))."""
        if self.pit == "ranks":
            return 1.0 / (self.n_sim + 1), self.n_sim / (self.n_sim + 1)
        return float(np.nextafter(0.0, 1.0)), 1.0

    def outliers(self, lower: float | None = None, upper: float | None = None) -> np.ndarray:
        """Indices of rows with residual <= lower or >= upper; by default the rows outside the
        simulation envelope (``outlier_cells``)."""
        r = self.residuals
        if lower is None and upper is None:
            lo, hi = self.outlier_cells()
            return np.flatnonzero((r < lo) | (r >= hi))
        lower = 0.0 if lower is None else lower
        upper = 1.0 if upper is None else upper
        return np.flatnonzero((r <= lower) | (r >= upper))

    def quantile_residuals(self, dist=stats.norm, outlier_values=(-7.0, 7.0)) -> np.ndarray:
        """Residuals transformed by ``dist.ppf`` (normal by default); 0 and 1 map to ``outlier_values``."""
        r = self.residuals
        out = np.asarray(dist.ppf(r), float)
        if outlier_values is not None:
            out = np.where(r <= 0, outlier_values[0], out)
            out = np.where(r >= 1, outlier_values[1], out)
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per observation (or group): residual, observed, fitted, trials (and group)."""
        cols = {"residual": self.residuals, "observed": self.observed, "fitted": self.fitted,
                "trials": self.trials}
        if self.group is not None:
            cols = {"group": self.group, **cols}
        return pd.DataFrame({k: np.asarray(v) for k, v in cols.items()})

    def to_dict(self) -> dict:
        """How the residuals were made (method, simulation mode, n_sim, seed, family) and the
        residuals as a list."""
        return {"method": self.method, "pit": self.pit, "simulate_re": self.simulate_re, "n_sim": self.n_sim,
                "nobs": self.nobs, "family": self.family_name, "seed": _plain(self.seed),
                "integer_response": self.integer_response, "residuals": np.asarray(self.residuals).tolist()}

    def __str__(self) -> str:
        r = self.residuals
        head = ", ".join(f"{v:.4g}" for v in r[:10])
        grp = f", grouped by {len(r)} groups ({self.aggregate})" if self.group is not None else ""
        if self.rotation:
            grp += f", rotated ({self.rotation} covariance)"
        return (
            f"Scaled residuals ({self.method}, {self.pit} definition, {self.simulate_re} simulation, n_sim = {self.n_sim}, "
            f"{self.nobs} observations{grp}, {'integer' if self.integer_response else 'continuous'} response, "
            f"family {self.family_name})\n"
            f"  {head}{', ...' if len(r) > 10 else ''}\n"
            f"  outliers (outside the simulation envelope): {self.outliers().size}"
        )

    def __repr__(self) -> str:
        return (f"ScaledResiduals({self.method}, {self.simulate_re}, n_sim={self.n_sim}, nobs={self.nobs}, "
                f"family={self.family_name!r})")
