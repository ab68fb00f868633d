"""statsmodels ``MixedLM`` results: the linear mixed model, simulated conditionally or marginally."""
from __future__ import annotations

import numpy as np

from glmmdiag.adapters._common import convergence_warnings
from glmmdiag.errors import GlmmdiagError

__all__ = ["StatsmodelsMixedLMAdapter"]


class _Group:
    """One group's rows, random-effects design and Cholesky factor of its effects' covariance."""

    __slots__ = ("rows", "z", "chol")

    def __init__(self, rows: np.ndarray, z: np.ndarray, chol: np.ndarray):
        self.rows, self.z, self.chol = rows, z, chol


class StatsmodelsMixedLMAdapter:
    """statsmodels ``MixedLMResults``: y = X beta + Z_g b_g + sum_j V_jg c_jg + e.

    Row i of group g has the fixed-effects mean ``x_i' beta`` (``results.fe_params``), random
    effects ``b_g ~ N(0, results.cov_re)`` with design ``exog_re`` and, for every variance
    component j (``exog_vc``), independent effects ``c_jg ~ N(0, results.vcomp[j] I)``; the
    residual is ``e ~ N(0, results.scale)``. ``simulate(n, rng, conditional)`` draws

    * ``conditional=True``: ``results.fittedvalues`` (the fixed part plus the predicted random
      effects, ``results.random_effects``) + e: new residuals given the fitted groups;
    * ``conditional=False`` (marginal): new b_g and c_jg from their estimated distribution, then e:
      the marginal model y ~ N(X beta, Z G Z' + V + scale I).

    The mode is chosen by ``simulate_residuals(..., simulate_re=...)`` like for glmmdiag's own fits,
    with the same default. ``fitted()`` is ``X beta`` (``results.predict()``),
    ``conditional_fitted()`` the fitted values with the predicted random effects.
    """

    family_name = "gaussian"
    integer_response = False

    def __init__(self, results):
        model = results.model
        y = np.asarray(model.endog, float).reshape(-1)
        if not np.all(np.isfinite(y)):
            raise GlmmdiagError("the MixedLM response has missing/non-finite values")
        scale = float(results.scale)
        if not np.isfinite(scale) or scale <= 0:
            raise GlmmdiagError(f"the MixedLM residual variance (scale) is {scale!r}: nothing to simulate from")
        self.results = results
        self._y = y
        self.nobs = int(y.size)
        self._scale = scale
        self._mu = np.asarray(results.predict(), float).reshape(-1)
        self._mu_c = np.asarray(results.fittedvalues, float).reshape(-1)

    def observed(self):
        return self._y

    def trials(self):
        return np.ones(self.nobs)

    def fitted(self):
        return self._mu

    def conditional_fitted(self):
        return self._mu_c

    def _groups(self) -> list[_Group]:
        """Per group: rows, [exog_re | vc designs] and the Cholesky factor of blockdiag(cov_re, vcomp)."""
        if "_group_list" in self.__dict__:
            return self.__dict__["_group_list"]
        r, m = self.results, self.results.model
        cov_re = np.atleast_2d(np.asarray(r.cov_re, float)) if m.k_re else np.zeros((0, 0))
        vcomp = np.asarray(r.vcomp, float).reshape(-1)
        out = []
        for gi, label in enumerate(m.group_labels):
            mats, var_blocks = [], []
            if m.k_re and m.exog_re_li is not None:
                mats.append(np.asarray(m.exog_re_li[gi], float))
                var_blocks.append(cov_re)
            for j in range(m.k_vc):
                mat = np.asarray(m.exog_vc.mats[j][gi], float)
                mats.append(mat)
                var_blocks.append(np.eye(mat.shape[1]) * max(vcomp[j], 0.0))
            if not mats:
                continue
            z = np.concatenate(mats, axis=1)
            dim = z.shape[1]
            cov = np.zeros((dim, dim))
            off = 0
            for blk in var_blocks:
                k = blk.shape[0]
                cov[off:off + k, off:off + k] = blk
                off += k
            out.append(_Group(np.asarray(m.row_indices[label]), z, _psd_factor(cov)))
        self.__dict__["_group_list"] = out
        return out

    def simulate(self, n, rng, conditional=True):
        """(nobs, n) responses: conditional on the predicted random effects, or marginal (see class)."""
        n = int(n)
        if conditional:
            mean = np.broadcast_to(self._mu_c[:, None], (self.nobs, n))
            return mean + rng.standard_normal((self.nobs, n)) * np.sqrt(self._scale)
        eta = np.repeat(self._mu[:, None], n, axis=1)
        for g in self._groups():
            u = rng.standard_normal((g.chol.shape[1], n))
            eta[g.rows] += g.z @ (g.chol @ u)
        return eta + rng.standard_normal((self.nobs, n)) * np.sqrt(self._scale)

    def refit(self, y):
        """The same MixedLM (design, groups, random-effects and variance-component designs) refitted to ``y``."""
        m = self.results.model
        kw = {"exog_re": m.exog_re if m.k_re else None}
        if m.k_vc:
            kw["exog_vc"] = m.exog_vc
        new = type(m)(np.asarray(y, float), m.exog, groups=m.groups, use_sqrt=m.use_sqrt, **kw)
        fit = new.fit(reml=self.results.method == "REML", start_params=self.results.params_object)
        return StatsmodelsMixedLMAdapter(fit)

    def simulation_warnings(self) -> list[str]:
        return convergence_warnings(self.converged, "statsmodels MixedLM")

    @property
    def converged(self) -> bool:
        return bool(getattr(self.results, "converged", True))

    @property
    def fixef(self) -> np.ndarray:
        return np.asarray(self.results.fe_params, float)

    @property
    def df_resid(self) -> float:
        """n minus the fixed effects, the covariance parameters and the residual variance (as lme4)."""
        return float(self.nobs - np.asarray(self.results.params).size - 1)

    def pearson_residuals(self):
        """(y - fitted with predicted random effects) / sqrt(scale)."""
        return (self._y - self._mu_c) / np.sqrt(self._scale)


def _psd_factor(cov: np.ndarray) -> np.ndarray:
    """A square root L with L L' = cov for a positive semi-definite cov (singular fits allowed)."""
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    return vecs * np.sqrt(np.clip(vals, 0.0, None))[None, :]
