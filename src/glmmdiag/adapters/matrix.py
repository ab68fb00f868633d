"""A model given by the user's own simulations (DHARMa's ``createDHARMa``): ``from_simulations``."""
from __future__ import annotations

import numpy as np

from glmmdiag.adapters._common import _is_integral, _vector
from glmmdiag.errors import GlmmdiagError

__all__ = ["SimulationsAdapter", "from_simulations"]


class SimulationsAdapter:
    """A model given by its simulations (DHARMa's ``createDHARMa``); made by ``from_simulations``."""

    thread_safe = True  # simulate only slices a read-only matrix

    def __init__(self, observed, simulated, fitted, integer_response=None, family_name="unknown"):
        y = _vector(observed, "observed")
        n = y.shape[0]
        S = np.asarray(simulated, dtype=float)
        if S.ndim == 1:
            raise GlmmdiagError(
                f"simulated must be a 2-D array of shape (nobs, nsim) = ({n}, nsim); got a 1-D array of "
                f"length {S.shape[0]}"
            )
        if S.ndim != 2:
            raise GlmmdiagError(f"simulated must be 2-D (nobs, nsim); got shape {S.shape}")
        if S.shape[0] != n:
            if S.shape[1] == n:
                raise GlmmdiagError(
                    f"simulated has shape {S.shape} but observed has {n} values: simulations must be "
                    f"(nobs, nsim) with one row per observation; pass simulated.T"
                )
            raise GlmmdiagError(f"simulated has {S.shape[0]} rows but observed has {n} values (one row per observation)")
        if S.shape[1] < 2:
            raise GlmmdiagError(f"at least 2 simulations are needed; simulated has {S.shape[1]} column(s)")
        if not np.all(np.isfinite(y)):
            bad = np.flatnonzero(~np.isfinite(y))
            raise GlmmdiagError(f"observed has {bad.size} missing/non-finite values (first at row {bad[0]})")
        finite = np.isfinite(S)
        if not finite.all():
            rows = np.flatnonzero(~finite.all(axis=1))
            raise GlmmdiagError(
                f"simulated has {int((~finite).sum())} NaN/infinite values in {rows.size} rows (first row "
                f"{rows[0]}): every simulation must be a finite number"
            )
        f = _vector(fitted, "fitted", n)
        if integer_response is None:
            integer_response = _is_integral(y) and _is_integral(S)
        # copies: the caller's arrays stay theirs (writable), and later replays of these
        # simulations cannot change under the residuals computed from them
        self._y = y.copy()
        self._S = S.copy() if np.may_share_memory(S, simulated) else S
        self._S.setflags(write=False)
        self._fitted = f.copy()
        self.nobs = n
        self.integer_response = bool(integer_response)
        self.family_name = family_name
        self.simulate_re = "given"

    @property
    def simulations(self) -> np.ndarray:
        return self._S

    def observed(self):
        return self._y

    def trials(self):
        return np.ones(self.nobs)

    def fitted(self):
        return self._fitted

    def simulate(self, n, rng=None, conditional=True):
        if n > self._S.shape[1]:
            raise GlmmdiagError(f"only {self._S.shape[1]} simulations were given; {n} requested")
        return self._S[:, :n]


def from_simulations(observed, simulated, fitted, integer_response=None) -> SimulationsAdapter:
    """Wrap a user's own simulations for ``simulate_residuals`` (DHARMa's ``createDHARMa``).

    Parameters
    ----------
    observed : (nobs,) array
        The observed response (binomial: successes).
    simulated : (nobs, nsim) array
        nsim >= 2 responses simulated from the fitted model, one row per observation.
    fitted : (nobs,) array
        The model's (population-level) predicted mean, used for the dispersion statistic and plots.
    integer_response : bool, optional
        Whether responses are whole numbers; guessed from the data when omitted.

    ``simulate_residuals(from_simulations(...))`` then uses exactly these columns (its ``n_sim``
    defaults to all of them and cannot exceed them); ``simulate_re`` is recorded as "given".
    """
    return SimulationsAdapter(observed, simulated, fitted, integer_response)

