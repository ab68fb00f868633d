"""Design columns of the time and distance structures (``ar1``, ``toep``, ``ou``, ``exp``, ``gau``, ``mat``).

Such a term has one coefficient per time (or location): z is the n x q indicator of each row's
time point (or coordinate set), and the structure's correlation is a function of the time order
(``ar1``, ``toep``: consecutive levels are one step apart) or of the coordinates (the distance
structures: Euclidean distance between the coordinate sets). :class:`IndexSpec` replays the
columns on new data, matching values to the fitted times and locations.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from glmmdiag.errors import ColumnError, GlmmdiagError, GlmmdiagWarning
from glmmdiag.fit.columns import classic_column, float_values
from glmmdiag.fit.covstruct import DISTANCE_STRUCTURES

__all__ = ["IndexSpec", "index_columns"]


def _numeric_labels(values: np.ndarray) -> np.ndarray | None:
    """The strings' numbers when every one parses as a number ('1', '2', '10'), else None."""
    try:
        return np.array([float(v) for v in values])
    except (TypeError, ValueError):
        return None


def _format_number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def time_levels(col: pd.Series) -> tuple[list, np.ndarray | None]:
    """The time points of an ``ar1``/``toep`` term in time order, and their numeric values if any.

    A Categorical keeps its category order (R's factor levels, unused ones included: a missing
    time point still counts as a step); numbers are sorted by value; strings that all read as
    numbers ('1', ..., '12') by their numbers, other strings alphabetically.
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = list(col.cat.categories)
        num = _numeric_labels(np.asarray([str(c) for c in cats], dtype=object))
        return cats, num
    col = classic_column(col)
    uniq = pd.unique(col.dropna())
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        vals = np.sort(np.asarray(uniq, float))
        return list(vals), vals
    labels = np.asarray([str(u) for u in uniq], dtype=object)
    num = _numeric_labels(labels)
    order = np.argsort(num, kind="stable") if num is not None else np.argsort(labels, kind="stable")
    return [uniq[i] for i in order], (num[order] if num is not None else None)


class IndexSpec:
    """Replays a time/location indicator matrix on new data (the fitted levels only).

    Parameters
    ----------
    variables : tuple of str
        The time column, or the coordinate columns.
    keys : list of tuple
        The fitted levels as tuples of values (times) or of floats (coordinates), in column order.
    distance : bool
        Coordinates (matched as numbers) rather than time labels.
    """

    def __init__(self, variables: tuple[str, ...], keys: list[tuple], distance: bool, structure: str):
        self.variables, self.keys, self.distance, self.structure = variables, keys, distance, structure
        self._index = {k: i for i, k in enumerate(keys)}

    def row_keys(self, data: pd.DataFrame) -> list[tuple]:
        if self.distance:
            cols = [float_values(data[v]) for v in self.variables]
            return list(zip(*cols))
        col = data[self.variables[0]]
        if isinstance(col.dtype, pd.CategoricalDtype):
            col = col.astype(object)
        vals = classic_column(col).to_numpy()
        fitted_numeric = all(isinstance(k[0], (int, float, np.integer, np.floating)) for k in self.keys)
        if fitted_numeric:
            out = []
            for v in vals:
                try:
                    out.append((float(v),))
                except (TypeError, ValueError):
                    out.append((v,))
            return out
        return [(str(v),) for v in vals]

    def positions(self, data: pd.DataFrame) -> np.ndarray:
        """Column of each row among the fitted levels (-1: not fitted). Times: the keys of the
        distinct values only (``pd.factorize``), mapped back to the rows (a long series repeats
        a few dozen times thousands of times)."""
        if self.distance:
            return np.array([self._index.get(k, -1) for k in self.row_keys(data)], np.intp)
        name = self.variables[0]
        col = data[name]
        col = col if isinstance(col, pd.Series) else pd.Series(col)
        codes, _ = pd.factorize(col, use_na_sentinel=True)
        uniq, first = np.unique(codes, return_index=True)
        keys = self.row_keys(pd.DataFrame({name: col.iloc[first].reset_index(drop=True)}))
        lut = np.array([self._index.get(k, -1) for k in keys], np.intp)
        pos = lut[np.searchsorted(uniq, codes)]
        pos[codes < 0] = -1  # a missing time
        return pos

    def get_model_matrix(self, data: pd.DataFrame, na_action=None) -> np.ndarray:
        pos = self.positions(data)
        if (pos < 0).any():
            bad = [keys for keys, p in zip(self.row_keys(data), pos) if p < 0][:5]
            what = "locations" if self.distance else "times"
            raise GlmmdiagError(
                f"newdata has {int((pos < 0).sum())} of {len(data)} rows at {what} not in the fitted "
                f"{self.structure}() term (columns {', '.join(self.variables)}; e.g. {bad}): the random effect "
                f"is only defined at fitted {what}; predict there, or without it (re_form=NA)"
            )
        z = np.zeros((len(data), len(self.keys)))
        z[np.arange(len(data)), pos] = 1.0
        return z


def _coordinate_keys(df: pd.DataFrame, variables: tuple[str, ...], structure: str) -> list[tuple]:
    cols = []
    for v in variables:
        col = df[v]
        if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
            raise ColumnError(
                f"{structure}() coordinate column {v!r} must be numeric ({len(df)} rows, dtype {col.dtype}); "
                f"convert it, e.g. data[{v!r}] = pd.to_numeric(data[{v!r}])"
            )
        cols.append(float_values(col))
    uniq = sorted(set(zip(*cols)), key=lambda k: tuple(reversed(k)))  # numFactor's order: last coordinate first
    return uniq


def index_columns(df: pd.DataFrame, structure: str, variables: tuple[str, ...]):
    """(z, cnames, spec, coords) of a time or distance structure on the design's rows ``df``."""
    distance = structure in DISTANCE_STRUCTURES
    if distance:
        keys = _coordinate_keys(df, variables, structure)
        coords = np.array(keys, float)
        label = f"numFactor({', '.join(variables)})"
        cnames = [f"{label}({','.join(_format_number(v) for v in k)})" for k in keys]
    else:
        levels, numeric = time_levels(df[variables[0]])
        keys = [(float(v),) if isinstance(v, (int, float, np.integer, np.floating)) else (str(v),) for v in levels]
        coords = None
        cnames = [f"{variables[0]}{_format_number(k[0]) if isinstance(k[0], float) else k[0]}" for k in keys]
        if numeric is not None and len(numeric) > 2:
            steps = np.diff(numeric)
            if not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
                warnings.warn(
                    f"{structure}({variables[0]} ...): the times are unequally spaced ({_format_number(numeric[0])}, "
                    f"{_format_number(numeric[1])}, {_format_number(numeric[2])}, ...) but {structure}() treats "
                    f"consecutive times as one step apart; for irregular times use "
                    f"ou(numFactor({variables[0]}) + 0 | group)",
                    GlmmdiagWarning,
                    stacklevel=4,
                )
    spec = IndexSpec(tuple(variables), keys, distance, structure)
    z = spec.get_model_matrix(df)
    return z, cnames, spec, coords
