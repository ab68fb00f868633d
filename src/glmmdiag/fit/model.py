"""GLMMResults: what a fitted model offers (lme4/glmmTMB vocabulary, pandas in and out)."""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from glmmdiag.fit.covariance import ThetaMap, varcorr_table
from glmmdiag.fit.design import Design, evaluate_expression

__all__ = ["GLMMResults"]


def _as_generator(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


class GLMMResults:
    """A fitted (generalized) linear mixed model.

    Attributes follow lme4/glmmTMB: ``fixef``, ``se``, ``vcov``, ``varcorr``, ``ranef``,
    ``loglik``, ``aic``, ``bic``, ``deviance``, ``df_resid``, ``nobs``, ``ngroups``,
    ``dispersion``, ``psi``, ``df`` (t only), ``converged``, ``warnings``.

    ``dispersion`` is the number glmmTMB's ``sigma()`` reports: gaussian the residual SD sigma;
    Gamma the coefficient of variation 1/sqrt(shape) (glmmTMB's summary prints its square,
    "sigma^2"); beta the precision phi; nbinom2 theta (var = mu + mu^2/theta); nbinom1 phi
    (var = mu (1 + phi)); t the scale sigma. It is None for binomial and Poisson, which have
    none. ``psi`` holds the family's extra parameters on the estimation (log) scale.
    """

    def __init__(self, design: Design, family, state, *, reml=False, n_agq=1, data_name="data"):
        self.design = design
        self.family = family
        self._st = state
        self.reml = reml
        self.n_agq = n_agq
        self.data_name = data_name
        self.formula = design.formula.text
        self._thetamap = ThetaMap([t.q for t in design.terms])
        # the LMM path (gaussian, identity link) keeps theta relative to sigma, as lme4
        self._relative = family.name == "gaussian" and family.link.name == "identity"

    # ------------------------------------------------------------------ estimates
    @property
    def fixef(self) -> pd.Series:
        return pd.Series(self._st.beta, index=self.design.xnames, name="Estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        n = self.design.xnames
        return pd.DataFrame(self._st.vcov, index=n, columns=n)

    @property
    def se(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self._st.vcov)), index=self.design.xnames, name="Std. Error")

    @property
    def theta(self) -> np.ndarray:
        return self._st.theta.copy()

    @property
    def psi(self) -> np.ndarray:
        """The family's extra parameters on the log scale (``family.psi_names``); empty if none."""
        psi = self._st.psi
        if psi is None:
            if self.family.name == "gaussian" and self._st.sigma is not None:
                return np.array([np.log(self._st.sigma)])
            return np.zeros(0)
        return np.asarray(psi, float).copy()

    @property
    def dispersion(self) -> float | None:
        """glmmTMB's ``sigma()`` (see the class docstring); None for binomial and Poisson."""
        if self._st.psi is not None and self.family.n_psi:
            return float(self.family.dispersion(self._st.psi))
        return self._st.sigma

    @property
    def df(self) -> float | None:
        """The t family's degrees of freedom (estimated, or as fixed by the user); None otherwise."""
        if self.family.name != "t":
            return None
        return float(self.family.dispersion_extra(self._st.psi)["df"])

    @property
    def df_fixed(self) -> bool:
        return self.family.name == "t" and getattr(self.family, "df", None) is not None

    @property
    def sigma(self) -> float:
        return 1.0 if self._st.sigma is None else self._st.sigma

    @property
    def varcorr(self) -> pd.DataFrame:
        T = self._thetamap.factors(self._st.theta)
        sigma = self._st.sigma
        if sigma is not None and not self._relative:
            # gaussian with a non-identity link: theta is absolute; the Residual row is sigma
            T = [Tk / sigma for Tk in T]
        return varcorr_table(self.design.terms, T, sigma)

    def _b_blocks(self) -> list[np.ndarray]:
        """Random effects b = Lambda u per term, shape (levels, q)."""
        T = self._thetamap.factors(self._st.theta)
        out, off = [], 0
        for t, Tk in zip(self.design.terms, T):
            uk = self._st.u[off : off + t.nlev * t.q].reshape(t.nlev, t.q)
            out.append(uk @ Tk.T)
            off += t.nlev * t.q
        return out

    def _per_group(self, blocks) -> dict[str, pd.DataFrame]:
        out: dict[str, pd.DataFrame] = {}
        for t, b in zip(self.design.terms, blocks):
            df = pd.DataFrame(b, index=pd.Index(t.levels, name=t.group), columns=t.cnames)
            out[t.group] = pd.concat([out[t.group], df], axis=1) if t.group in out else df
        return out

    @property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects: group -> DataFrame (levels x terms)."""
        return self._per_group(self._b_blocks())

    @property
    def ranef_condvar(self) -> dict[str, pd.DataFrame]:
        """Conditional variances of the random effects (diagonal), same layout as ``ranef``."""
        cv = self._st.cond_var or []
        return self._per_group([np.diagonal(c, axis1=1, axis2=2) for c in cv])

    @property
    def ranef_condsd(self) -> dict[str, pd.DataFrame]:
        return {k: np.sqrt(v) for k, v in self.ranef_condvar.items()}

    # ------------------------------------------------------------------ fit statistics
    @property
    def loglik(self) -> float:
        return float(self._st.loglik)

    @property
    def n_params(self) -> int:
        """Estimated parameters: beta, theta, and sigma or the family's psi (a fixed t df is not one)."""
        extra = len(self._st.psi) if self._st.psi is not None else int(self._st.sigma is not None)
        return len(self._st.beta) + len(self._st.theta) + extra

    @property
    def nobs(self) -> int:
        return self.design.n

    @property
    def n_dropped(self) -> int:
        return self.design.n_dropped

    @property
    def aic(self) -> float:
        return -2 * self.loglik + 2 * self.n_params

    @property
    def bic(self) -> float:
        return -2 * self.loglik + np.log(self.nobs) * self.n_params

    @property
    def deviance(self) -> float:
        """-2 logLik (glmmTMB's summary 'deviance'); the REML criterion for REML fits."""
        return -2 * self.loglik

    @property
    def df_resid(self) -> int:
        return self.nobs - self.n_params

    @property
    def ngroups(self) -> dict[str, int]:
        out = {}
        for t in self.design.terms:
            out[t.group] = t.nlev
        return out

    @property
    def converged(self) -> bool:
        return bool(self._st.opt.converged) and not any("converge" in w for w in self._st.warnings)

    @property
    def warnings(self) -> list[str]:
        return list(self._st.warnings)

    @property
    def optinfo(self):
        return self._st.opt

    # ------------------------------------------------------------------ prediction
    def _eta_parts(self, newdata=None, re_form=None):
        d = self.design
        if newdata is None:
            fixed = d.X @ self._st.beta + d.offset
            if re_form in ("~0", "NA", 0, False) or not d.terms:
                return fixed
            return fixed + self._zb(d.terms, [t.refs for t in d.terms], [t.z for t in d.terms])
        newdata = pd.DataFrame(newdata)
        X = np.asarray(d.x_spec.get_model_matrix(newdata, na_action="ignore"), float)
        if d.x_kept is not None:
            X = X[:, d.x_kept]
        off = np.zeros(len(newdata))
        for e in d.formula.offsets:
            off += np.asarray(evaluate_expression(e, newdata), float)
        fixed = X @ self._st.beta + off
        if re_form in ("~0", "NA", 0, False) or not d.terms:
            return fixed
        refs, zs = [], []
        for t in d.terms:
            lookup = {lv: i for i, lv in enumerate(t.levels)}
            labels = None
            for v in t.group_vars:
                col = newdata[v].astype(str).to_numpy()
                labels = col if labels is None else np.char.add(np.char.add(labels.astype(str), ":"), col)
            refs.append(np.array([lookup.get(lb, -1) for lb in labels], dtype=np.intp))
            zs.append(np.asarray(t.spec.get_model_matrix(newdata, na_action="ignore"), float))
        return fixed + self._zb(d.terms, refs, zs)

    def _zb(self, terms, refs, zs):
        out = 0.0
        for t, b, r, z in zip(terms, self._b_blocks(), refs, zs):
            known = r >= 0
            bb = np.where(known[:, None], b[np.where(known, r, 0)], 0.0)  # unseen level -> 0
            out = out + np.einsum("ij,ij->i", z, bb)
        return out

    def predict(self, newdata=None, type: str = "link", re_form=None) -> np.ndarray:
        """Predictions on the link or response scale; ``re_form="~0"`` gives population level.

        Levels of a grouping factor not seen in fitting get a zero random effect.
        """
        if type not in ("link", "response"):
            raise ValueError("type must be 'link' or 'response'")
        eta = self._eta_parts(newdata, re_form)
        return eta if type == "link" else self.family.link.inverse(eta)

    def fitted(self) -> np.ndarray:
        """Conditional fitted means (response scale) at the conditional modes."""
        return self.predict(type="response")

    # ------------------------------------------------------------------ simulation
    def simulate(self, nsim: int = 1, seed=None, conditional: bool = False) -> np.ndarray:
        """Draw ``nsim`` responses per row: array (nobs, nsim).

        conditional=False draws new random effects u ~ N(0, I) per simulation (lme4/glmmTMB
        default); True keeps the conditional modes. Binomial: success counts.

        Families whose weights are likelihood weights (Poisson, Gamma, beta, nbinom1, nbinom2, t)
        have no generative model for a weighted row: the draws ignore the weights, with a warning
        when the weights are not all 1 (DHARMa's rule).
        """
        rng = _as_generator(seed)
        d = self.design
        n = d.n
        if self.family.weight_role == "likelihood" and not np.all(d.w == 1.0):
            warnings.warn(
                f"the model has prior weights, which the {self.family.name} family uses as likelihood "
                f"weights: simulated responses ignore the weights (a weighted likelihood has no "
                f"generative model), so residuals computed from these simulations may be miscalibrated",
                UserWarning,
                stacklevel=2,
            )
        if conditional or not d.terms:
            eta = np.repeat(self.predict(type="link")[:, None], nsim, axis=1)
        else:
            eta = np.repeat((d.X @ self._st.beta + d.offset)[:, None], nsim, axis=1)
            T = self._thetamap.factors(self._st.theta)
            scale = self.sigma if self._relative else 1.0
            for t, Tk in zip(d.terms, T):
                u = rng.standard_normal((t.nlev, t.q, nsim))
                b = np.einsum("ab,lbs->las", Tk, u) * scale
                eta += np.einsum("ia,ias->is", t.z, b[t.refs])
        mu = self.family.link.inverse(eta)
        w = np.broadcast_to(d.w[:, None], mu.shape)
        if self.family.name == "gaussian":
            return mu + rng.standard_normal(mu.shape) * self.sigma / np.sqrt(w)
        return self.family.sample(mu, w, rng, self._st.psi).reshape(n, nsim)

    def refit(self, new_response) -> "GLMMResults":
        """Refit to a new response (successes for binomial), warm-started from this optimum."""
        from glmmdiag.fit.engine import fit_design

        y = np.asarray(new_response, float).reshape(-1)
        if y.shape[0] != self.nobs:
            raise ValueError(f"new response has {y.shape[0]} values, the model has {self.nobs} rows")
        self.family.check_response(y, self.design.w, self.design.response_name)
        d = dataclasses.replace(self.design, y=y)
        psi = self._st.psi if self._st.psi is not None else np.zeros(0)
        start = np.concatenate([self._st.theta, self._st.beta, psi])
        if self._relative:
            start = self._st.theta
        st = fit_design(d, self.family, reml=self.reml, n_agq=self.n_agq, start=start if d.terms else None,
                        opt=self._st.opt)
        for w in st.warnings:
            warnings.warn(w, stacklevel=2)
        return GLMMResults(d, self.family, st, reml=self.reml, n_agq=self.n_agq, data_name=self.data_name)

    # ------------------------------------------------------------------ text
    def coef_table(self) -> pd.DataFrame:
        est, se = self.fixef, self.se
        z = est / se
        p = 2 * stats.norm.sf(np.abs(z))
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": z, "Pr(>|z|)": p})

    def summary(self) -> str:
        from glmmdiag.fit.summary import format_summary

        return format_summary(self)

    def __repr__(self):
        return self.summary()

