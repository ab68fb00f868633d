"""Column access and dtype normalisation for building designs.

Every column a model uses goes through two steps here, so that the design code downstream only
ever meets the classic dtypes (numpy int/uint/float/bool/datetime, object, pandas' ``str``,
Categorical):

1. :func:`missing_values` -- the rows where the column is missing: NaN, None, NaT and ``pd.NA``
   alike, for numpy, nullable (``Int64``, ``Float64``, ``boolean``, ``string``) and pyarrow-backed
   columns.
2. :func:`classic_column` -- the column in its classic dtype: a nullable integer, unsigned,
   float or boolean column becomes the numpy dtype it wraps (``Int64`` -> int64, so a grouping
   level 3 stays "3", not "3.0"), a nullable string column (``string[python]``,
   ``string[pyarrow]``) becomes python strings (object; pandas 3 infers its NaN-backed ``str``).
   Missing entries, if any are left, become NaN (numeric columns are then float64) or None/NaN
   (strings).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from glmmdiag.errors import GlmmdiagError

__all__ = ["Columns", "as_frame", "float_values", "missing_values", "is_nullable", "classic_column",
           "classic_frame", "match_levels"]


class Columns:
    """Read-only view of a DataFrame that fetches each column once (pandas indexing costs ~15 us).

    Supports what the design code needs: ``view[name]``, ``view.columns``, ``len(view)``;
    ``view.frame`` is the DataFrame itself (for formulaic).
    """

    def __init__(self, frame: pd.DataFrame, cache: dict | None = None):
        self.frame, self.columns, self._cache = frame, frame.columns, dict(cache or {})

    def __getitem__(self, name: str) -> pd.Series:
        col = self._cache.get(name)
        if col is None:
            col = self._cache[name] = self.frame[name]
        return col

    def __len__(self) -> int:
        return len(self.frame)


def as_frame(data) -> pd.DataFrame:
    """The DataFrame behind a :class:`Columns` view (or the frame itself)."""
    return data.frame if isinstance(data, Columns) else data


def float_values(x) -> np.ndarray:
    """x as a float array (a pandas Series through ``to_numpy``, which costs a tenth of np.asarray's
    trip through the Series protocol; missing values of nullable dtypes become NaN)."""
    if isinstance(x, pd.Series):
        if is_nullable(x.dtype):
            return x.to_numpy(dtype=float, na_value=np.nan)
        return x.to_numpy(dtype=float)
    return np.asarray(x, dtype=float)


def is_nullable(dtype) -> bool:
    """True for the dtypes whose missing value is ``pd.NA``.

    These are pandas' nullable extension dtypes (``Int64``, ``UInt8``, ``Float64``, ``boolean``,
    ``string[python]``, ``string[pyarrow]``) and pyarrow-backed ``ArrowDtype`` columns; numpy
    dtypes, Categorical, datetime-with-timezone and pandas 3's NaN-backed ``str`` are not.
    """
    return isinstance(dtype, pd.api.extensions.ExtensionDtype) and getattr(dtype, "na_value", None) is pd.NA


def missing_values(col: pd.Series) -> np.ndarray:
    """Boolean mask of the missing entries of a column.

    Parameters
    ----------
    col : Series
        Any dtype.

    Returns
    -------
    ndarray of bool
        True where the value is NaN, None, NaT or ``pd.NA`` (numpy integer and bool columns
        cannot hold a missing value: all False, without a scan).
    """
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return np.asarray(col.array.codes) < 0
    if isinstance(dtype, np.dtype):
        if dtype.kind == "f":
            return np.isnan(col.to_numpy())
        if dtype.kind in "iub":
            return np.zeros(len(col), bool)
    miss = np.asarray(col.isna(), dtype=bool)
    if is_nullable(dtype) and getattr(dtype, "kind", "") == "f":
        # a Float64 column can hold NaN next to NA (e.g. from 0/0): missing either way
        miss = miss | np.isnan(col.to_numpy(dtype=float, na_value=np.nan))
    return miss


def classic_column(col: pd.Series) -> pd.Series:
    """The column in a classic dtype (see the module docstring); other columns are returned as is.

    Parameters
    ----------
    col : Series
        Any dtype.

    Returns
    -------
    Series
        Same index and name. A nullable numeric or boolean column without missing values gets
        the numpy dtype it wraps; with missing values float64 holding NaN. A nullable string
        column becomes python strings (object, or pandas 3's NaN-backed ``str``).
    """
    dtype = col.dtype
    if not is_nullable(dtype):
        return col
    kind = getattr(dtype, "kind", "O")
    target = getattr(dtype, "numpy_dtype", None)
    if kind in "iufb" and target is not None:
        if kind != "f" and not col.hasnans:
            values = col.to_numpy(dtype=target)
        else:
            values = col.to_numpy(dtype=float, na_value=np.nan)
    elif kind in "mM" and target is not None:  # pyarrow timestamps and durations
        values = col.to_numpy(dtype=target, na_value=np.datetime64("NaT") if kind == "M" else np.timedelta64("NaT"))
    else:  # strings (and anything else pd.NA-based): python objects, None for missing
        values = col.to_numpy(dtype=object, na_value=None)
    return pd.Series(values, index=col.index, name=col.name)


def classic_frame(frame: pd.DataFrame, names) -> pd.DataFrame:
    """``frame`` with the columns ``names`` in classic dtypes (a shallow copy when any changes).

    Parameters
    ----------
    frame : DataFrame
    names : iterable of str
        Columns of ``frame`` to normalise; the others are left as they are.

    Returns
    -------
    DataFrame
        ``frame`` itself when no named column has a nullable dtype.
    """
    changed = {v: classic_column(frame[v]) for v in names if is_nullable(frame[v].dtype)}
    if not changed:
        return frame
    out = frame.copy(deep=False)
    for v, col in changed.items():
        out[v] = col.to_numpy()  # positional: no index alignment (the index may repeat)
    return out


def _number(value) -> float | None:
    """The value as a finite float if it is a number or a string that reads as one, else None
    (booleans are not numbers here)."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, str):
        try:
            x = float(value.strip())
        except ValueError:
            return None
    elif isinstance(value, (int, float, np.integer, np.floating)):
        x = float(value)
    else:
        return None
    return x if np.isfinite(x) else None


class _LevelIndex:
    """Lookup tables of a list of levels for :func:`match_levels`."""

    def __init__(self, levels):
        self.levels = list(levels)
        self.exact: dict = {}
        self.labels: dict[str, list[int]] = {}
        self.numbers: dict[float, list[int]] = {}
        for i, lev in enumerate(self.levels):
            try:
                self.exact.setdefault(lev, i)
            except TypeError:  # unhashable level: matched by label only
                pass
            self.labels.setdefault(str(lev), []).append(i)
            x = _number(lev)
            if x is not None:
                self.numbers.setdefault(x, []).append(i)

    def find(self, value) -> int:
        """Position of ``value`` among the levels, -1 if absent; GlmmdiagError if ambiguous."""
        try:
            i = self.exact.get(value, -1)
        except TypeError:
            i = -1
        if i >= 0 and isinstance(value, (bool, np.bool_)) == isinstance(self.levels[i], (bool, np.bool_)):
            return i
        for table, key in ((self.labels, str(value)), (self.numbers, _number(value))):
            hits = table.get(key, []) if key is not None else []
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                raise GlmmdiagError(
                    f"value {value!r} matches several levels ({[self.levels[h] for h in hits]}); give the "
                    f"column the dtype it had when the model was fitted"
                )
        return -1


def match_levels(values, levels) -> np.ndarray:
    """Positions of ``values`` among the factor levels ``levels``, across dtypes.

    A value matches a level when, in this order,

    1. they are equal values (``1 == 1.0``; same-dtype data always match here);
    2. their labels are equal, ``str(value) == str(level)``: R factors are labels, so the int 1
       matches the level ``"1"`` and the string ``"308"`` the int level 308;
    3. both are numbers, or strings that read as numbers, with the same value: the float 1.0 and
       the string ``"1.0"`` match the level ``"1"`` (or 1).

    Rule 2 or 3 matching several levels (levels ``"1"`` and ``"1.0"`` both present) raises
    :class:`~glmmdiag.errors.GlmmdiagError`.

    Parameters
    ----------
    values : array-like or Series
        Values to look up (any dtype, nullable included).
    levels : sequence
        The known levels, in order.

    Returns
    -------
    ndarray of intp
        Position of each value in ``levels``; -1 for values not found and for missing values.
    """
    codes, uniq = pd.factorize(pd.Series(values) if not isinstance(values, pd.Series) else values)
    index = _LevelIndex(levels)
    found = np.array([index.find(u) for u in np.asarray(uniq, dtype=object)], dtype=np.intp)
    out = np.full(len(codes), -1, dtype=np.intp)
    ok = codes >= 0
    out[ok] = found[codes[ok]]
    return out
