"""Per-row arguments given as column names, Series or arrays: one value per residual."""
from __future__ import annotations


import numpy as np
import pandas as pd

from glmmdiag.errors import GlmmdiagError


def _model_column(res, name: str):
    """Values per residual of a column the fitted model knows: a grouping factor of a
    random-effects term, or the time / coordinate of a time or distance structured term (as its
    position in time order, or its coordinate). None when the model does not know it."""
    fit = getattr(res.model, "fit", None)
    design = getattr(fit, "design", None)
    if design is None:
        return None
    for t in design.terms:
        if getattr(t, "index_vars", ()) and name in t.index_vars:
            pos = np.argmax(np.asarray(t.z), axis=1)
            if t.coords is not None:
                return np.asarray(t.coords, float)[pos, list(t.index_vars).index(name)]
            return pos.astype(float)  # ar1/toep: the time's position in time order
        if name == t.group or (len(t.group_vars) == 1 and name == t.group_vars[0]):
            return np.asarray(t.levels, dtype=object)[np.asarray(t.refs)]
    return None


def _fitted_rows(res):
    """(positions of the fitted rows in the data the model was fitted to, number of rows of that
    data), or (None, None) when the model does not say (grouped residuals: None)."""
    if res.group is not None:
        return None, None
    design = getattr(getattr(res.model, "fit", None), "design", None)
    rows = getattr(design, "rows", None)
    if rows is None:
        return None, None
    return np.asarray(rows), int(len(rows) + int(getattr(design, "n_dropped", 0) or 0))


def per_row(res, value, what: str, data=None) -> pd.Series:
    """``value`` as a pandas Series with one value per residual (its own dtype kept, a default index).

    ``value`` is one of

    * a column name: looked up in ``data`` (the data frame the model was fitted to; its fitted
      rows are taken, i.e. after the missing-value mask) or, without ``data``, among the columns
      the fitted model knows (grouping factors, time and coordinate columns of structured terms);
    * a vector with one value per residual (array, list, Series: taken in order);
    * a vector with one value per row of the data the model was fitted to (before its missing-value
      mask): the fitted rows are taken -- by index label when it is a Series and ``data`` is given
      (aligned on ``data.index``), by position otherwise.
    """
    n = res.nobs
    rows, n_data = _fitted_rows(res)
    if isinstance(value, str):
        if data is None:
            col = _model_column(res, value) if res.group is None else None
            if col is None:
                raise GlmmdiagError(
                    f"{what} = {value!r}: the model does not know this column (only grouping factors and the time "
                    f"or coordinate columns of structured terms are kept); pass data= (the data frame the model "
                    f"was fitted to) or the values"
                )
            return pd.Series(col)
        if value not in data.columns:
            raise GlmmdiagError(f"{what} column {value!r} is not in data (columns: "
                                f"{', '.join(map(str, data.columns[:20]))})")
        value = data[value]
    if isinstance(value, pd.Index):
        value = pd.Series(value)
    if not isinstance(value, pd.Series):
        arr = np.asarray(value)
        if arr.ndim != 1:
            raise GlmmdiagError(f"{what} must be one-dimensional (one value per residual, or a column name); "
                                f"got shape {arr.shape}")
        value = pd.Series(arr)
    m = value.shape[0]
    if m == n:
        return value.reset_index(drop=True)
    if rows is not None and m == n_data:
        labels = data.index[rows] if data is not None and len(data.index) == m else None
        if labels is not None and value.index.is_unique and labels.isin(value.index).all():
            picked = value.loc[labels]  # aligned on the data's index labels
        else:
            picked = value.iloc[rows]
        return picked.reset_index(drop=True)
    expect = f"{n} (one per residual)" + (f" or {n_data} (one per row of the data)" if rows is not None else "")
    raise GlmmdiagError(f"{what} has {m} values; expected {expect}")


def _column_values(res, value, what: str, data=None) -> np.ndarray:
    """``per_row(res, value, what, data)`` as an array that sorts in the column's natural order
    (``_natural_order``; values of a column the model knows as they are)."""
    s = per_row(res, value, what, data)
    if isinstance(value, str) and data is None:
        return s.to_numpy()
    return _natural_order(s)


def _natural_order(col: pd.Series) -> np.ndarray:
    """Values that sort in the column's natural order: a Categorical's codes (its category order),
    strings that all read as numbers ('1', '2', '10') as numbers, anything else as it is."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = col.cat.categories
        num = pd.to_numeric(pd.Series(cats.astype(str)), errors="coerce")
        if not col.cat.ordered and num.notna().all():
            return num.to_numpy()[col.cat.codes.to_numpy()].astype(float)
        codes = col.cat.codes.to_numpy().astype(float)
        codes[codes < 0] = np.nan
        return codes
    if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
        num = pd.to_numeric(col, errors="coerce")
        if num.notna().sum() == col.notna().sum():
            return num.to_numpy(float)
    return col.to_numpy()
