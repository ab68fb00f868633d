"""The package's own exception and warning classes, so that users can catch and filter them.

Exceptions
----------
GlmmdiagError (a ``ValueError``)
    Bad input: a formula, column, option or data set that cannot be used as given. The message
    names the offending piece, the number of rows where that matters, and the fix.
FormulaError (a ``GlmmdiagError``)
    A formula that is malformed or contains something a formula may not contain (formulas are
    data, never code: see :mod:`glmmdiag.fit.expressions`).
ColumnError (a ``GlmmdiagError`` and a ``KeyError``)
    A name that is not there: a column named in a formula or an argument that is not in the data
    (and, likewise, a model term, parameter, covariate or data set that does not exist).
FitError (a ``GlmmdiagError``)
    The model cannot be fitted to these data (for example penalised IRLS cannot find the
    random-effect modes anywhere in the family's support): a property of the data and model, not a
    bug in the package.

Warnings (all ``GlmmdiagWarning``, a ``UserWarning``)
-----------------------------------------------------
ConvergenceWarning, SingularFitWarning, DroppedRowsWarning, RankDeficiencyWarning,
SeparationWarning, DegenerateFitWarning, RefitWarning, UndefinedTestWarning.

Filter them as usual, e.g. ``warnings.simplefilter("ignore", glmmdiag.DroppedRowsWarning)`` or
``warnings.simplefilter("error", glmmdiag.ConvergenceWarning)``.
"""
from __future__ import annotations

__all__ = [
    "GlmmdiagError",
    "FormulaError",
    "ColumnError",
    "FitError",
    "GlmmdiagWarning",
    "ConvergenceWarning",
    "SingularFitWarning",
    "DroppedRowsWarning",
    "RankDeficiencyWarning",
    "SeparationWarning",
    "DegenerateFitWarning",
    "RefitWarning",
    "UndefinedTestWarning",
]


class GlmmdiagError(ValueError):
    """Bad input to glmmdiag: the message says what is wrong and how to fix it."""


class FormulaError(GlmmdiagError):
    """A formula that cannot be parsed or contains something formulas may not contain."""


class ColumnError(GlmmdiagError, KeyError):
    """A column used by the model is not in the data (or another named thing does not exist)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class FitError(GlmmdiagError):
    """The model cannot be fitted to these data (a numerical property of data and model)."""


class GlmmdiagWarning(UserWarning):
    """Base class of every warning glmmdiag issues."""


class ConvergenceWarning(GlmmdiagWarning):
    """The optimiser stopped away from a verified optimum (large scaled gradient, iteration limit)."""


class SingularFitWarning(GlmmdiagWarning):
    """A boundary (singular) fit: a random-effect variance is zero or a correlation is +-1."""


class DroppedRowsWarning(GlmmdiagWarning):
    """Rows with missing values were dropped before fitting."""


class RankDeficiencyWarning(GlmmdiagWarning):
    """Fixed-effect columns were dropped (rank deficiency) or are nearly collinear."""


class SeparationWarning(GlmmdiagWarning):
    """Complete or quasi-complete separation: fitted probabilities (or means) at the boundary."""


class DegenerateFitWarning(GlmmdiagWarning):
    """Degenerate data for the model: zero residual variance, a saturated model, constant data."""


class RefitWarning(GlmmdiagWarning):
    """Some refits (parametric bootstrap, calibrated tests) failed or did not converge."""


class UndefinedTestWarning(GlmmdiagWarning):
    """A residual test is undefined for these data (e.g. constant observed and simulated values)."""
