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


def _column_values(res, value, what: str, data=None) -> np.ndarray:
    """``value`` as one value per residual: an array, a pandas Series (values, not index), or a
    column name looked up in ``data`` (the fitting data: its fitted rows are taken) or, without
    ``data``, among the columns the fitted model knows (grouping factors, time and coordinate
    columns of structured terms)."""
    n = res.nobs
    if isinstance(value, str):
        if data is not None:
            if value not in data.columns:
                raise GlmmdiagError(f"{what} column {value!r} is not in data (columns: {', '.join(map(str, data.columns[:20]))})")
            col = _natural_order(data[value])
            if col.shape[0] != n:
                rows = getattr(getattr(getattr(res.model, "fit", None), "design", None), "rows", None)
                if rows is None or res.group is not None or np.max(rows) >= col.shape[0]:
                    raise GlmmdiagError(f"data has {col.shape[0]} rows but there are {n} residuals; pass the data "
                                        f"the model was fitted to, or an array with one value per residual")
                col = col[np.asarray(rows)]
            return col
        col = _model_column(res, value) if res.group is None else None
        if col is None:
            raise GlmmdiagError(
                f"{what} = {value!r}: the model does not know this column (only grouping factors and the time or "
                f"coordinate columns of structured terms are kept); pass data= (the data frame the model was "
                f"fitted to) or the values"
            )
        return col
    if isinstance(value, (pd.Series, pd.Index)):
        return _natural_order(pd.Series(value))
    return np.asarray(value)


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
