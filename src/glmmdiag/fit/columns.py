"""A read-only column view of a DataFrame for building designs."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["Columns", "as_frame"]


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
    trip through the Series protocol; missing values of nullable dtypes become NaN either way)."""
    if isinstance(x, pd.Series):
        return x.to_numpy(dtype=float)
    return np.asarray(x, dtype=float)
