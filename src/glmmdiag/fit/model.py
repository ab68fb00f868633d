"""GLMMResults: what a fitted model offers (lme4/glmmTMB vocabulary, pandas in and out)."""
from __future__ import annotations

import ast
import contextlib
import dataclasses
import warnings

import numpy as np
import pandas as pd
from formulaic.errors import DataMismatchWarning
from scipy import stats

from glmmdiag._arguments import seed_or_rng
from glmmdiag.errors import ColumnError, ConvergenceWarning, GlmmdiagError, GlmmdiagWarning
from glmmdiag.fit.columns import classic_frame, float_values, match_levels, missing_values
from glmmdiag.fit.covariance import ThetaMap, varcorr_table
from glmmdiag.fit.design import Design, SimpleTermSpec, evaluate_expression
from glmmdiag.fit.families import simulable_means
from glmmdiag.fit.formula import expression_variables, formula_variables, parse_formula, signed_terms

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

    parameter_map = None  # glmmTMB's map= (fit/mapping.py): fixed or shared parameters, kept for refits

    def __init__(self, design: Design, family, state, *, reml=False, n_agq=1, data_name="data"):
        self.design = design
        self.family = family
        self._st = state
        self.reml = reml
        self.n_agq = n_agq
        self.data_name = data_name
        self.formula = design.formula.text
        self._thetamap = ThetaMap.for_terms(design.terms)
        # the LMM path (gaussian, identity link) keeps theta relative to sigma, as lme4
        self._relative = (family.name == "gaussian" and family.link.name == "identity"
                          and not getattr(family, "composite", False) and getattr(family, "profiled_lmm", True))

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
        """Standard errors; NaN where the variance is negative or not finite (a Hessian that is not
        positive definite: the fit's warnings say so)."""
        v = np.diag(np.asarray(self._st.vcov, float))
        with np.errstate(invalid="ignore"):
            se = np.where(np.isfinite(v) & (v >= 0), np.sqrt(np.abs(v)), np.nan)
        return pd.Series(se, index=self.design.xnames, name="Std. Error")

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
        """glmmTMB's ``sigma()`` (see the class docstring); None for binomial and Poisson, and
        with a dispersion model whose dispersion differs between rows (see ``fixef_disp``)."""
        if getattr(self.family, "disp_fixed", False):  # dispformula ~0: the fixed value, no coefficient
            return float(self.family.dispersion(np.zeros(0)))
        if self._st.psi is not None and self.family.n_psi:
            d = self.family.dispersion(self._st.psi)
            return None if d is None else float(d)
        return self._st.sigma

    # ------------------------------------------------------------------ submodels (ziformula, dispformula)
    @property
    def _composite(self) -> bool:
        return bool(getattr(self.family, "composite", False))

    @property
    def fixef_zi(self) -> pd.Series:
        """Zero model coefficients (logit scale, glmmTMB's ``fixef(m)$zi``); empty without ``ziformula``."""
        if not self._composite or not self.family.kz:
            return pd.Series([], dtype=float, name="Estimate")
        fam = self.family
        return pd.Series(self._st.psi[fam.kd : fam.kd + fam.kz], index=fam.znames, name="Estimate")

    @property
    def fixef_disp(self) -> pd.Series:
        """Dispersion model coefficients on glmmTMB's ``betad`` scale (``fixef(m)$disp``): log theta
        (nbinom2), log phi (nbinom1, beta), log sigma^2 (gaussian), log shape (Gamma); empty for
        families without dispersion and for models without ``ziformula``/``dispformula``."""
        if not self._composite or not self.family.kd:
            return pd.Series([], dtype=float, name="Estimate")
        fam = self.family
        return pd.Series(self._st.psi[: fam.kd], index=fam.dnames, name="Estimate")

    @property
    def vcov_full(self) -> pd.DataFrame:
        """Joint covariance of the conditional, dispersion and zero model coefficients (glmmTMB's
        ``vcov(m, full=TRUE)`` for the fixed effects), names "cond~x", "disp~x", "zi~x": the inverse
        of the Hessian of -logLik over (free theta, beta, psi), the rows and columns of beta and psi."""
        names = [f"cond~{n}" for n in self.design.xnames]
        if not self._composite:
            return pd.DataFrame(self._st.vcov, index=names, columns=names)
        names += list(self.family.psi_names)
        k = len(names)
        if self._st.hessian is None:
            return pd.DataFrame(np.full((k, k), np.nan), index=names, columns=names)
        H, free_t = self._st.hessian
        m = int(np.sum(free_t))
        if not np.all(np.isfinite(H)):
            V = np.full((k, k), np.nan)
        else:
            try:
                V = np.linalg.inv(H)[m:, m:]
            except np.linalg.LinAlgError:
                V = np.linalg.pinv(H)[m:, m:]
        if V.shape[0] < k:  # a parameter held fixed at its limit (t's df, the last one): no variance
            V = np.pad(V, (0, k - V.shape[0]), constant_values=np.nan)
        return pd.DataFrame(0.5 * (V + V.T), index=names, columns=names)

    def _sub_se(self, prefix, est) -> pd.Series:
        V = self.vcov_full
        keys = [f"{prefix}~{n}" for n in est.index]
        v = np.array([V.loc[k, k] for k in keys], float) if keys else np.zeros(0)
        with np.errstate(invalid="ignore"):
            se = np.where(np.isfinite(v) & (v >= 0), np.sqrt(np.abs(v)), np.nan)
        return pd.Series(se, index=est.index, name="Std. Error")

    @property
    def se_zi(self) -> pd.Series:
        """Standard errors of ``fixef_zi``."""
        return self._sub_se("zi", self.fixef_zi)

    @property
    def se_disp(self) -> pd.Series:
        """Standard errors of ``fixef_disp``."""
        return self._sub_se("disp", self.fixef_disp)

    def coef_table_zi(self) -> pd.DataFrame:
        """The zero model's Estimate, Std. Error, z value, Pr(>|z|)."""
        return _coef_table(self.fixef_zi, self.se_zi)

    def coef_table_disp(self) -> pd.DataFrame:
        """The dispersion model's Estimate, Std. Error, z value, Pr(>|z|)."""
        return _coef_table(self.fixef_disp, self.se_disp)

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

    @property
    def covariance_parameters(self) -> list[dict]:
        """Per random-effects term, the covariance structure's own parameters on glmmTMB's
        reporting scale: ``{"rho": ...}`` for ``ar1``/``cs``/``homcs``, ``{"range": ...}`` for
        ``exp``/``gau`` (and ``"kappa"`` for ``mat``), ``{"rate", "rho_unit"}`` for ``ou``, the
        lag correlations ``r1, r2, ...`` for ``toep``; ``{}`` for unstructured and diagonal terms
        (their SDs and correlations are in :attr:`varcorr`)."""
        return self._thetamap.describe(self._st.theta)

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
        """Estimated parameters: beta, theta, and sigma or the family's psi (a fixed t df is not one);
        with ``map=``, the free values only (glmmTMB's df of logLik)."""
        extra = len(self._st.psi) if self._st.psi is not None else int(self._st.sigma is not None)
        removed = self.parameter_map.n_removed if self.parameter_map is not None else 0
        return len(self._st.beta) + len(self._st.theta) + extra - removed

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
        return bool(self._st.opt.converged) and not any(
            isinstance(w, ConvergenceWarning) or "converge" in str(w) for w in self._st.warnings)

    @property
    def warnings(self) -> list[str]:
        """The fit's warnings as text (``warning_objects`` keeps their classes)."""
        return [str(w) for w in self._st.warnings]

    @property
    def warning_objects(self) -> list[Warning]:
        """The fit's warnings as instances of :mod:`glmmdiag.errors` classes (ConvergenceWarning, ...)."""
        return list(self._st.warnings)

    @property
    def optinfo(self):
        return self._st.opt

    # ------------------------------------------------------------------ prediction
    def _eta_parts(self, newdata=None, re_form=None):
        """Linear predictor of the fitted rows or of ``newdata`` with the random-effects terms
        that ``re_form`` selects (see :meth:`predict`)."""
        d = self.design
        selected = _select_terms(d.terms, re_form)
        if newdata is None:
            fixed = d.X @ self._st.beta + d.offset
            if not selected:
                return fixed
            terms = [d.terms[k] for k in selected]
            return fixed + self._zb(selected, [t.refs for t in terms], [t.z for t in terms])
        frame = newdata if isinstance(newdata, pd.DataFrame) else pd.DataFrame(newdata)
        names = _needed_columns(d, selected)
        rows = _complete_rows(frame, names, d.formula.text)  # NA rows predict NaN (na.pass)
        eta = np.full(len(frame), np.nan)
        if not rows.any():
            return eta
        newdata = classic_frame(frame.iloc[np.flatnonzero(rows)].reset_index(drop=True), names)
        newdata = _with_fitted_levels(newdata, d.x_spec, "fixed-effect")
        with _mismatch_as_error("fixed-effect"):
            X = np.asarray(d.x_spec.get_model_matrix(newdata, na_action="ignore"), float)
        if d.x_kept is not None:
            X = X[:, d.x_kept]
        off = np.zeros(len(newdata))
        for e in d.formula.offsets:
            off += np.asarray(evaluate_expression(e, newdata), float)
        off += _argument_offset(d, newdata)
        fixed = X @ self._st.beta + off
        if selected:
            refs, zs = [], []
            for k in selected:
                t = d.terms[k]
                refs.append(_group_refs(t, newdata))
                zdata = _with_fitted_levels(newdata, t.spec, "random-effect")
                with _mismatch_as_error("random-effect"):
                    zs.append(np.asarray(t.spec.get_model_matrix(zdata, na_action="ignore"), float))
            fixed = fixed + self._zb(selected, refs, zs)
        eta[rows] = fixed
        return eta

    def _zb(self, selected, refs, zs):
        """Sum over the terms ``selected`` (positions in design.terms) of z_i . b[level of row i];
        rows whose level was not seen in fitting (refs -1) get b = 0."""
        out = 0.0
        blocks = self._b_blocks()
        for k, r, z in zip(selected, refs, zs):
            b = blocks[k]
            known = r >= 0
            bb = np.where(known[:, None], b[np.where(known, r, 0)], 0.0)  # unseen level -> 0
            out = out + np.einsum("ij,ij->i", z, bb)
        return out

    def predict(self, newdata=None, type: str = "link", re_form=None) -> np.ndarray:
        """Predictions on the link or response scale (lme4's ``predict.merMod``).

        Parameters
        ----------
        newdata : DataFrame or dict, optional
            Rows to predict; the fitted rows by default. It needs every column the fixed part,
            the formula's offsets and the selected random-effects terms use (a missing one
            raises :class:`~glmmdiag.errors.ColumnError`). Any dtype works: values are matched to
            the fitted levels by value, not by dtype -- equal values match (1 and 1.0), then equal
            labels (the int 1 and the level ``"1"``: R factors are labels), then equal numbers
            (the string ``"1.0"`` and the level 1). A fixed-effect factor value not seen in
            fitting raises :class:`~glmmdiag.errors.GlmmdiagError` naming the column, the unseen
            values and the known levels; a grouping level not seen in fitting gets a zero random
            effect (lme4's ``allow.new.levels = TRUE``). Rows with a missing value (NaN, None,
            NaT, ``pd.NA``) in a column the prediction uses predict NaN (R's ``na.pass``).
            Offsets are replayed on ``newdata``: the formula's ``offset()`` terms, and an
            ``offset=`` given to ``glmm`` as a column name (an ``offset=`` given as values cannot
            be, and predicting new data then raises :class:`~glmmdiag.errors.GlmmdiagError`).
        type : {"link", "response", "conditional", "zprob", "disp"}
            "link": the conditional model's linear predictor; "conditional": its mean mu;
            "zprob": the zero model's pi (0 without ``ziformula``); "response": the mean of the
            response, mu without a zero model, (1 - pi) mu with zero-inflation and
            (1 - pi) mu / (1 - f(0)) for hurdle / zero-truncated families; "disp": each row's
            dispersion on glmmTMB's ``sigma()`` scale (from ``dispformula``; the constant
            ``fit.dispersion`` otherwise, 1 for families without one) (glmmTMB's types).
        re_form : None or str
            Which random effects to include. None: all of them. ``"~0"``, ``"~ 0"``, ``"NA"``
            (or 0, False, NaN): none, the population level. A formula of bar terms, such as
            ``"~(1 | site)"`` or ``"~ (1 | site) + (0 + x | g)"``: those terms only, matched to the
            model's terms (``fit.varcorr``) by their left-hand side and grouping factor,
            whitespace and term order ignored; ``(x || g)`` stands for ``(1 | g) + (0 + x | g)``.
            Anything else raises :class:`~glmmdiag.errors.GlmmdiagError` listing the model's terms.

        Returns
        -------
        ndarray
            One value per row of ``newdata`` (or per fitted row).
        """
        if type not in ("link", "response", "conditional", "zprob", "disp"):
            raise GlmmdiagError("type must be 'link', 'response', 'conditional', 'zprob' or 'disp'")
        eta = self._eta_parts(newdata, re_form)
        if type == "link":
            return eta
        if not self._composite:
            if type == "zprob":
                return np.zeros(len(eta))
            if type == "disp":
                disp = self.dispersion
                return np.full(len(eta), 1.0 if disp is None else float(disp))
            return self.family.link.inverse(eta)
        fam = self.family
        Xd = Xz = None
        if newdata is not None:
            Xd = self._submodel_X(newdata, "disp") if fam.disp_varies else None
            Xz = self._submodel_X(newdata, "zi") if fam.kz else None
            if fam.kd and fam.d_const:
                Xd = np.ones((len(eta), 1))
        mu, bpsi, pi, f0 = fam.parts(eta, self._st.psi, Xd, Xz)
        if type == "disp":
            disp = 1.0 if bpsi is None else fam.base.dispersion(bpsi)
            return np.broadcast_to(np.asarray(disp, float), np.shape(eta)).copy()
        if type == "conditional":
            return mu
        if type == "zprob":
            return pi
        return fam.mean(mu, pi, f0)

    def _submodel_X(self, newdata, key):
        """The ``ziformula`` (key "zi") or ``dispformula`` ("disp") model matrix of ``newdata``."""
        spec, kept = self.family.specs[key]
        frame = newdata if isinstance(newdata, pd.DataFrame) else pd.DataFrame(newdata)
        frame = _with_fitted_levels(frame.reset_index(drop=True), spec, f"{key}-model")
        with _mismatch_as_error(f"{key}-model"):
            X = np.asarray(spec.get_model_matrix(frame, na_action="ignore"), float)
        return X if kept is None else X[:, kept]

    def fitted(self) -> np.ndarray:
        """Conditional fitted means (response scale) at the conditional modes."""
        return self.predict(type="response")

    # ------------------------------------------------------------------ simulation
    def simulate(self, n_sim: int = 1, seed=None, conditional: bool = False, re_form=None, *, rng=None) -> np.ndarray:
        """Draw ``n_sim`` responses per row: array (nobs, n_sim) (R's ``nsim``; ``rng=`` is the same
        argument as ``seed=``).

        conditional=False draws new random effects u ~ N(0, I) per simulation (lme4/glmmTMB
        default); True keeps the conditional modes. ``re_form`` (lme4's ``simulate(re.form=)``)
        chooses term by term and overrides ``conditional``: the terms it names, e.g.
        ``"~(1 | site)"``, keep their conditional modes and the others are drawn anew; ``"~0"``
        or ``"NA"`` draws all (unconditional). Binomial: success counts.

        Families whose weights are likelihood weights (Poisson, Gamma, beta, nbinom1, nbinom2, t)
        have no generative model for a weighted row: the draws ignore the weights, with a warning
        when the weights are not all 1 (DHARMa's rule; a ``GlmmdiagWarning``).

        Raises FitError when the model implies infinite or NaN means for the draws (e.g. a huge
        random-effect variance under the log link); Poisson and negative binomial means above
        1e18 are drawn by the normal approximation (numpy's Poisson sampler stops near 9.2e18).
        """
        seed = seed_or_rng(seed, rng, "simulate")
        nsim = int(n_sim)
        if nsim < 1:
            raise GlmmdiagError(f"n_sim must be a positive integer; got {n_sim!r}")
        rng = _as_generator(seed)
        d = self.design
        n = d.n
        if self.family.weight_role == "likelihood" and not np.all(d.w == 1.0):
            warnings.warn(
                f"the model has prior weights, which the {self.family.name} family uses as likelihood "
                f"weights: simulated responses ignore the weights (a weighted likelihood has no "
                f"generative model), so residuals computed from these simulations may be miscalibrated",
                GlmmdiagWarning,
                stacklevel=2,
            )
        if re_form is not None:
            kept = set(_select_terms(d.terms, re_form))
        else:
            kept = set(range(len(d.terms))) if conditional else set()
        if len(kept) == len(d.terms):
            eta = np.repeat(self.predict(type="link")[:, None], nsim, axis=1)
        else:
            base = d.X @ self._st.beta + d.offset
            if kept:
                keep = sorted(kept)
                base = base + self._zb(keep, [d.terms[k].refs for k in keep], [d.terms[k].z for k in keep])
            eta = np.repeat(base[:, None], nsim, axis=1)
            T = self._thetamap.factors(self._st.theta)
            scale = self.sigma if self._relative else 1.0
            for k, (t, Tk) in enumerate(zip(d.terms, T)):
                if k in kept:
                    continue
                u = rng.standard_normal((t.nlev, t.q, nsim))
                b = np.einsum("ab,lbs->las", Tk, u) * scale
                eta += np.einsum("ia,ias->is", t.z, b[t.refs])
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # checked just below
            mu = self.family.link.inverse(eta)
        w = np.broadcast_to(d.w[:, None], mu.shape)
        if self.family.name == "gaussian" and not self._composite:
            mu = simulable_means(mu, self.family.name)
            return mu + rng.standard_normal(mu.shape) * self.sigma / np.sqrt(w)
        return self.family.sample(mu, w, rng, self._st.psi).reshape(n, nsim)

    def refit(self, new_response) -> "GLMMResults":
        """Refit to a new response (successes for binomial), warm-started from this optimum."""
        from glmmdiag.fit.engine import fit_or_raise

        y = np.asarray(new_response, float).reshape(-1)
        if y.shape[0] != self.nobs:
            raise GlmmdiagError(f"new response has {y.shape[0]} values, the model has {self.nobs} rows")
        self.family.check_response(y, self.design.w, self.design.response_name)
        d = dataclasses.replace(self.design, y=y)
        psi = self._st.psi if self._st.psi is not None else np.zeros(0)
        start = np.concatenate([self._st.theta, self._st.beta, psi])
        if self._relative:
            start = self._st.theta
        pmap = self.parameter_map
        if pmap is not None:  # the same map, started at this fit's values
            from glmmdiag.fit.mapping import state_value

            pmap = pmap.with_value(state_value(pmap.layout, self._st, self._relative))
            st = fit_or_raise(d, self.family, opt=self._st.opt, mapping=pmap)
        else:
            st = fit_or_raise(d, self.family, reml=self.reml, n_agq=self.n_agq, start=start if d.terms else None,
                              opt=self._st.opt)
        for w in st.warnings:
            warnings.warn(w, stacklevel=2)
        res = GLMMResults(d, self.family, st, reml=self.reml, n_agq=self.n_agq, data_name=self.data_name)
        res.parameter_map = pmap
        return res

    # ------------------------------------------------------------------ text
    def coef_table(self) -> pd.DataFrame:
        """Estimate, Std. Error, z value, Pr(>|z|); z and p are NaN where the standard error is
        NaN, 0 or infinite (never a p-value of 0 from a missing or zero standard error)."""
        return _coef_table(self.fixef, self.se)

    def summary(self) -> "Summary":
        """glmmTMB's summary as text: a ``str`` that prints (and shows in a REPL) as the text and
        renders as preformatted HTML in Jupyter."""
        from glmmdiag.fit.summary import Summary, format_summary

        return Summary(format_summary(self))

    def __repr__(self):
        return (f"<GLMMResults: {self.formula}; {self.family.name}({self.family.link.name}); "
                f"{self.nobs} obs; logLik {self.loglik:.6g}>")

    def __str__(self):
        return str(self.summary())

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    # ------------------------------------------------------------------ statsmodels-style aliases
    @property
    def params(self) -> pd.Series:
        """statsmodels' name for the fixed effects (:attr:`fixef`)."""
        return self.fixef

    @property
    def bse(self) -> pd.Series:
        """statsmodels' name for the fixed effects' standard errors (:attr:`se`)."""
        return self.se

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """statsmodels' ``conf_int``: Wald intervals of the fixed effects, columns 0 (lower) and 1
        (upper) (see :func:`glmmdiag.confint` for the variance components and submodels)."""
        from scipy import stats as _stats

        z = _stats.norm.ppf(1 - alpha / 2)
        est, se = self.fixef, self.se
        return pd.DataFrame({0: est - z * se, 1: est + z * se})


def _coef_table(est, se) -> pd.DataFrame:
    """Estimate, Std. Error, z value, Pr(>|z|) (z and p NaN where the SE is NaN, 0 or infinite)."""
    ok = np.isfinite(se.to_numpy()) & (se.to_numpy() > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = est / se.where(ok)
    p = pd.Series(2 * stats.norm.sf(np.abs(z.to_numpy())), index=z.index)
    return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": z, "Pr(>|z|)": p})


# ---------------------------------------------------------------------- prediction helpers
_NO_RANDOM_EFFECTS = ("~0", "~-1", "NA")  # re_form values (whitespace removed) meaning "none"


def _term_label(term) -> str:
    """A random-effects term as ``fit.varcorr`` shows it: ``(lhs | group)`` or ``ar1(lhs | group)``."""
    return term.label


def _lhs_key(lhs: str) -> tuple[bool, frozenset]:
    """``(has intercept, other pieces without whitespace)`` of a bar's left-hand side, so that
    ``1 + x``, ``x`` and ``x+1`` compare equal, as do ``0 + x`` and ``x - 1``."""
    intercept, pieces = True, set()
    for sign, piece in signed_terms(lhs):
        piece = "".join(piece.split())
        if piece in ("0", "1"):
            intercept = (piece == "1") == (sign == "+")
        else:
            pieces.add(piece if sign == "+" else "-" + piece)
    return intercept, frozenset(pieces)


def _is_no_re(re_form) -> bool:
    """True for the non-string spellings of "no random effects": 0, False, NaN (R's NA)."""
    if isinstance(re_form, (bool, np.bool_)):
        return not re_form
    if isinstance(re_form, (int, float, np.integer, np.floating)):
        return re_form == 0 or bool(np.isnan(re_form))
    return False


def _select_terms(terms, re_form) -> list[int]:
    """Positions in ``terms`` of the random-effects terms ``re_form`` selects (see ``predict``).

    Raises
    ------
    GlmmdiagError
        For a ``re_form`` that is neither None, a "none" spelling nor a formula of bar terms of
        the model; the message lists the model's terms.
    """
    if re_form is None:
        return list(range(len(terms)))
    if _is_no_re(re_form):
        return []
    available = ", ".join(_term_label(t) for t in terms) or "none"
    usage = (f"re_form must be None (all random effects), '~0' or 'NA' (none), or a formula of the "
             f"model's random-effects terms such as '~{_term_label(terms[0]) if terms else '(1 | g)'}'; "
             f"the model's terms: {available}")
    if not isinstance(re_form, str):
        raise GlmmdiagError(f"re_form={re_form!r} is not understood: {usage}")
    text = "".join(re_form.split())
    if text in _NO_RANDOM_EFFECTS:
        return []
    if not text.startswith("~") or "|" not in text:
        raise GlmmdiagError(f"re_form={re_form!r} is not understood: {usage}")
    try:
        pf = parse_formula("y " + re_form.strip())
    except ValueError as e:
        raise GlmmdiagError(f"re_form={re_form!r} cannot be parsed ({e}): {usage}") from None
    if "".join(pf.fixed.split()) not in ("1", "0", "1-1") or pf.offsets or not pf.re_terms:
        raise GlmmdiagError(f"re_form={re_form!r} may contain random-effects terms only: {usage}")
    keys = [(_lhs_key(t.lhs), tuple(t.group_vars)) for t in terms]
    selected: set[int] = set()
    for spec in pf.re_terms:
        hits = [k for k, key in enumerate(keys) if key == (_lhs_key(spec.lhs), tuple(spec.group_vars))]
        if not hits:
            raise GlmmdiagError(
                f"re_form={re_form!r}: the term ({spec.lhs} | {spec.group_name}) is not in the model; "
                f"the model's terms: {available}"
            )
        selected.update(hits)
    return sorted(selected)


def _argument_offset(design, newdata: pd.DataFrame):
    """The ``offset=`` argument of the fit replayed on ``newdata`` (0 when there was none)."""
    if design.offset_column is not None:
        return float_values(newdata[design.offset_column])
    if design.offset_array:
        raise GlmmdiagError(
            "the model was fitted with offset= given as values, which new data cannot supply; refit with "
            "the offset as a column name (offset=\"col\") or as offset(expr) in the formula"
        )
    return 0.0


def _needed_columns(design, selected) -> list[str]:
    """Columns a prediction uses: the fixed part, the formula's offsets and the selected terms."""
    names = sorted(formula_variables(design.formula.fixed))
    for e in design.formula.offsets:
        names += sorted(expression_variables(e))
    if design.offset_column is not None:
        names.append(design.offset_column)
    for k in selected:
        t = design.terms[k]
        names += sorted(t.index_vars or formula_variables(t.lhs)) + list(t.group_vars)
    return list(dict.fromkeys(names))


def _complete_rows(frame: pd.DataFrame, names: list[str], formula: str) -> np.ndarray:
    """The rows of ``frame`` without a missing value in the columns ``names``, checked for presence.

    Returns
    -------
    ndarray of bool
        True for the rows where no column in ``names`` is missing (NaN, None, NaT, ``pd.NA``).

    Raises
    ------
    ColumnError
        Naming the columns of the model that ``frame`` lacks.
    """
    absent = [v for v in names if v not in frame.columns]
    if absent:
        cols = ", ".join(map(str, list(frame.columns)[:20]))
        raise ColumnError(
            f"newdata lacks the column(s) {', '.join(map(repr, absent))} that the model {formula!r} uses "
            f"for this prediction ({len(frame)} rows; columns: {cols}); add them"
        )
    rows = np.ones(len(frame), bool)
    for v in names:
        rows &= ~missing_values(frame[v])
    return rows


def _factor_source(key: str) -> str | None:
    """The data column behind a categorical factor of a formulaic spec: ``f`` or ``C(f, ...)``."""
    if key.isidentifier():
        return key
    try:
        node = ast.parse(key, mode="eval").body
    except SyntaxError:
        return None
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "C"
            and node.args and isinstance(node.args[0], ast.Name)):
        return node.args[0].id
    return None


def _fitted_levels(spec) -> dict[str, list]:
    """Column -> the levels it had in fitting, for the categorical factors of a model spec that are
    a data column (``f``, ``C(f, ...)``); a column seen with different level sets is left out."""
    state = getattr(spec, "encoder_state", None) if not isinstance(spec, SimpleTermSpec) else None
    found: dict[str, list] = {}
    conflicting: set[str] = set()
    for key, (kind, st) in (state or {}).items():
        if str(getattr(kind, "value", kind)).lower() != "categorical":
            continue
        col = _factor_source(str(key))
        if col is None:
            continue
        levels = list(st.get("categories", []))
        if col in found and found[col] != levels:
            conflicting.add(col)
        found.setdefault(col, levels)
    return {c: lv for c, lv in found.items() if c not in conflicting}


def _with_fitted_levels(frame: pd.DataFrame, spec, what: str) -> pd.DataFrame:
    """``frame`` with each factor column of ``spec`` as a Categorical of the fitted levels.

    Values are matched to the levels across dtypes (:func:`glmmdiag.fit.columns.match_levels`),
    so that the model spec replays the fitted encoding whatever dtype ``frame`` has.

    Raises
    ------
    GlmmdiagError
        When a column holds values not seen in fitting (naming them and the known levels).
    """
    out = frame
    for col, levels in _fitted_levels(spec).items():
        if col not in frame.columns:
            continue
        pos = match_levels(frame[col], levels)
        if (pos < 0).any():
            bad = pd.unique(np.asarray(frame[col], dtype=object)[pos < 0])
            shown = ", ".join(map(repr, bad[:10])) + (", ..." if len(bad) > 10 else "")
            raise GlmmdiagError(
                f"newdata column {col!r} has {what} factor value(s) not seen in fitting: {shown} "
                f"({int((pos < 0).sum())} of {len(frame)} rows); the known levels are {list(levels)}. "
                f"Predictions for unseen levels of a fixed-effect factor are not defined: fix the "
                f"spelling or drop those rows"
            )
        if out is frame:
            out = frame.copy(deep=False)
        out[col] = pd.Categorical.from_codes(pos, categories=pd.Index(levels, dtype=object))
    return out


@contextlib.contextmanager
def _mismatch_as_error(what: str):
    """Turn formulaic's warning about unseen factor levels (which it encodes as the reference
    level's zeros) into a GlmmdiagError."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataMismatchWarning)
        try:
            yield
        except DataMismatchWarning as e:
            raise GlmmdiagError(f"newdata has {what} factor values not seen in fitting: {e}") from None


def _group_refs(term, frame: pd.DataFrame) -> np.ndarray:
    """Level of ``term`` (position in ``term.levels``) of each row of ``frame``; -1 when unseen.

    Each grouping column is matched to the fitted labels by value across dtypes
    (:func:`glmmdiag.fit.columns.match_levels`); for ``a:b`` each column separately, then the pair.
    """
    gv = term.group_vars
    if not gv:  # ``| 1``: every row is in the one level
        return np.zeros(len(frame), np.intp)
    if len(gv) == 1:
        return match_levels(frame[gv[0]], term.levels)
    parts = [lv.split(":") for lv in term.levels]
    if any(len(p) != len(gv) for p in parts):  # a label contains ":": match whole labels
        cols = [frame[v].astype(str).to_numpy() for v in gv]
        labels = [":".join(row) for row in zip(*cols)]
        return pd.Index(term.levels).get_indexer(labels).astype(np.intp)
    fit_key = np.zeros(len(parts), np.int64)
    new_key = np.zeros(len(frame), np.int64)
    unseen = np.zeros(len(frame), bool)
    for j, v in enumerate(gv):
        uniq = list(dict.fromkeys(p[j] for p in parts))
        index = {u: i for i, u in enumerate(uniq)}
        codes = match_levels(frame[v], uniq)
        fit_key = fit_key * len(uniq) + np.array([index[p[j]] for p in parts], np.int64)
        new_key = new_key * len(uniq) + np.maximum(codes, 0)
        unseen |= codes < 0
    refs = pd.Index(fit_key).get_indexer(new_key).astype(np.intp)
    refs[unseen] = -1
    return refs
