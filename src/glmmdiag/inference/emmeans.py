"""Estimated marginal means over a reference grid (Searle, Speed & Milliken 1980; Lenth's emmeans).

The reference grid crosses the levels of every factor of the fixed part; each numeric covariate
sits at its mean over the rows used in the fit (or at the values given in ``at=``), and
transformed terms are computed from it (``I(age^2)`` at mean(age)^2, as emmeans does). Each row of
the grid gives a row x of the fixed-effects model matrix (formulaic's model spec replays the
encoding). A marginal mean for a combination of the ``specs`` factors is the equally weighted
average of the grid rows with that combination, l = mean(x), so

    estimate (link scale)  eta = l'b (+ offset),   SE = sqrt(l' V l).

On the response scale the estimate is h(eta) for the inverse link h, its SE h'(eta) SE (delta
method), and the interval is the link-scale interval eta +- q SE mapped through h, with q the
normal quantile (``df=None``: asymptotic intervals, emmeans' ``df = Inf``, ``asymp.LCL``) or a t
quantile with ``df`` degrees of freedom (``df="residual"``: ``fit.df_resid``, what emmeans uses for
glmmTMB fits). emmeans' default for lme4's linear mixed models, Kenward-Roger degrees of freedom,
is not implemented: give ``df="residual"`` or a number there.

Offsets written in the formula (``offset(log(t))``) are evaluated on the grid, i.e. at the mean of
their variables, as emmeans does; ``offset=`` sets the link-scale offset directly.
"""
from __future__ import annotations

import itertools
import re

import numpy as np
import pandas as pd
from scipy import stats

from glmmdiag.errors import ColumnError, GlmmdiagError
from glmmdiag.fit.columns import classic_frame
from glmmdiag.fit.design import evaluate_expression
from glmmdiag.fit.formula import expression_variables, formula_variables
from glmmdiag.fit.links import Identity, Logit
from glmmdiag.inference._terms import component_coefs, component_spec

__all__ = ["marginal_means", "MarginalMeans"]


def _kind_name(kind) -> str:
    return str(getattr(kind, "value", kind)).lower()


def _spec_variables(spec) -> tuple[dict, list, list]:
    """({factor variable: levels}, [numeric variables], [variables in formula order]) of a spec."""
    data_vars = set(spec.variables_by_source.get("data", set()))
    factors: dict[str, list] = {}
    for key, (kind, state) in spec.encoder_state.items():
        if _kind_name(kind) != "categorical":
            continue
        vs = (expression_variables(key) & data_vars) if key not in data_vars else {key}
        if len(vs) != 1:
            raise GlmmdiagError(
                f"the factor {key!r} is built from {len(vs)} variables; marginal means need each factor "
                f"to come from one column (create the combined factor in the data first)"
            )
        (v,) = vs
        factors[v] = list(state.get("categories", []))
    numeric = [v for v in sorted(data_vars) if v not in factors]
    order = []
    for term in spec.terms:
        for v in sorted(spec.term_variables[term] & data_vars, key=lambda s: str(term).find(s)):
            if v not in order:
                order.append(v)
    return factors, numeric, order


def model_variables(fit, components=("cond",)) -> tuple[dict, list]:
    """({factor variable: levels}, [numeric variables]) of the fixed part and the formula offsets,
    followed by those of the other ``components`` ("zi", "disp") that only they use."""
    factors, numeric, order = _spec_variables(fit.design.x_spec)
    for e in fit.design.formula.offsets:
        for v in sorted(expression_variables(e)):
            if v not in factors and v not in numeric:
                numeric.append(v)
    for comp in components:
        spec = component_spec(fit, comp)[0] if comp != "cond" else None
        if spec is None:
            continue
        f2, n2, o2 = _spec_variables(spec)
        for v, levels in f2.items():
            if v in numeric:
                raise GlmmdiagError(f"{v!r} is a factor in the {comp} model and numeric in another component")
            if v in factors and list(map(str, factors[v])) != list(map(str, levels)):
                raise GlmmdiagError(f"the factor {v!r} has different levels in the {comp} model than in "
                                    f"the conditional model")
            factors.setdefault(v, levels)
        numeric += [v for v in n2 if v not in numeric and v not in factors]
        order += [v for v in o2 if v not in order]
    # keep the order in which the variables enter the formula (for the grid's column order)
    rank = {v: i for i, v in enumerate(order)}
    numeric.sort(key=lambda v: rank.get(v, len(rank)))
    factors = dict(sorted(factors.items(), key=lambda kv: rank.get(kv[0], len(rank))))
    return factors, numeric


def parse_specs(specs) -> list[str]:
    """``"a"``, ``"~ a * b"``, ``"a:b"``, ``["a", "b"]`` -> ["a", "b"]."""
    if isinstance(specs, str):
        text = specs.strip()
        if "|" in text:
            raise GlmmdiagError(
                f"specs {specs!r}: conditioning with '|' is not supported; give the factors to cross "
                f"(e.g. '~ a * b') and compare within groups yourself"
            )
        text = text.lstrip("~").strip()
        names = [p for p in re.split(r"[\s*:+]+", text) if p]
    else:
        names = [str(s).strip() for s in specs]
    if not names:
        raise GlmmdiagError("specs names no variable; give e.g. '~ treatment' or ['a', 'b']")
    if len(set(names)) != len(names):
        raise GlmmdiagError(f"specs repeats a variable: {names}")
    return names


def _fit_data(fit, data):
    if data is None:
        data = getattr(fit, "data", None)
    if data is None:
        return None
    data = pd.DataFrame(data)
    rows = np.asarray(fit.design.rows)
    if len(data) < (rows.max() + 1 if rows.size else 0):
        raise GlmmdiagError(
            f"data= has {len(data)} rows but the fit used rows up to position {rows.max()}: pass the data "
            f"frame the model was fitted to"
        )
    return data.iloc[rows]


def _covariate_mean(fit, var, used, components=("cond",)) -> float:
    if used is not None:
        if var not in used.columns:
            raise ColumnError(f"covariate {var!r} is not a column of data=")
        vals = pd.to_numeric(used[var], errors="coerce").to_numpy(float)
        return float(np.nanmean(vals))
    # without the data: a covariate that is its own term has its values as a column of a model matrix
    mats = [(fit.design.x_spec, fit.design.x_kept, fit.design.X)]
    for comp in components:
        if comp == "cond":
            continue
        spec, kept = component_spec(fit, comp)
        if spec is not None:
            mats.append((spec, kept, fit.family.Xz if comp == "zi" else fit.family.Xd))
    for spec, kept, X in mats:
        for term, cols in spec.term_indices.items():
            fs = list(term.factors)
            if len(fs) == 1 and str(fs[0].expr) == var and len(cols) == 1:
                c = cols[0]
                if kept is not None:
                    pos = np.flatnonzero(np.asarray(kept) == c)
                    if not pos.size:
                        continue
                    c = int(pos[0])
                return float(np.mean(X[:, c]))
    raise GlmmdiagError(
        f"cannot recover the mean of covariate {var!r} from the fit (it enters the model only through a "
        f"transformation); pass data= (the data frame the model was fitted to) or give its value in at="
    )


def _as_values(v) -> list:
    if isinstance(v, (str, bytes)) or np.ndim(v) == 0:
        return [v]
    return list(v)


def _non_estimable(fit, Xg_full, used) -> np.ndarray:
    """Grid rows outside the row space of the full model matrix (columns dropped as aliased).

    A linear function l'beta of a rank-deficient model is estimable iff l is orthogonal to the
    null space of X; that needs the full X, rebuilt from the data.
    """
    if used is None:
        raise GlmmdiagError(
            "the model dropped aliased (rank-deficient) fixed-effect columns, so some marginal means may "
            "not be estimable; pass data= (the data frame the model was fitted to) so that they can be "
            "detected"
        )
    used = classic_frame(used, [c for c in used.columns if c in formula_variables(fit.design.formula.fixed)])
    X = np.asarray(fit.design.x_spec.get_model_matrix(used, na_action="ignore"), float)
    _, sv, Vt = np.linalg.svd(X, full_matrices=True)
    tol = (sv[0] if sv.size else 0.0) * max(X.shape) * np.finfo(float).eps * 10
    rank = int(np.sum(sv > tol))
    N = Vt[rank:].T  # null space of X
    if N.size == 0:
        return np.zeros(len(Xg_full), bool)
    scale = np.maximum(np.linalg.norm(Xg_full, axis=1), 1.0)
    return np.max(np.abs(Xg_full @ N), axis=1) > 1e-6 * scale


_RESPONSE_LABEL = {"binomial": "prob", "poisson": "rate", "nbinom1": "rate", "nbinom2": "rate"}


class MarginalMeans:
    """Estimated marginal means (``marginal_means``): ``table`` is the DataFrame emmeans prints.

    Also kept, for contrasts: ``labels`` (one per mean), ``L`` (rows of the linear functions of
    the fixed effects), ``eta`` and ``vcov_eta`` (link scale, offset included), ``df``, ``level``,
    ``type``, ``link`` and ``estimate_name`` (the table's estimate column), ``component``.
    For ``component="zi"``, ``L`` multiplies ``fit.fixef_zi`` and ``link`` is the logit; for
    ``component="response"``, ``eta`` holds the response-scale means, ``L`` their gradient in the
    coefficients of ``fit.vcov_full`` and ``link`` is the identity.
    """

    def __init__(self, table, specs, labels, L, eta, vcov_eta, df, level, type_, link, family_name,
                 estimate_name, notes, component="cond"):
        self.table = table
        self.specs = specs
        self.labels = labels
        self.L = L
        self.eta = eta
        self.vcov_eta = vcov_eta
        self.df = df
        self.level = level
        self.type = type_
        self.link = link
        self.family_name = family_name
        self.estimate_name = estimate_name
        self.notes = notes
        self.component = component

    @property
    def columns(self):
        return self.table.columns

    def __getitem__(self, key):
        return self.table[key]

    def __len__(self):
        return len(self.table)

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def __repr__(self):
        return self.table.to_string(index=False) + "\n\n" + "\n".join(self.notes)

    def _repr_html_(self):
        return self.table.to_html(index=False) + "<p>" + "<br>".join(self.notes) + "</p>"


def resolve_df(fit, df) -> float:
    if df is None:
        return np.inf
    if isinstance(df, str):
        if df != "residual":
            raise GlmmdiagError(f"df must be None (asymptotic), 'residual' or a number; got {df!r}")
        return float(fit.df_resid)
    df = float(df)
    if not df > 0:
        raise GlmmdiagError(f"df must be positive; got {df}")
    return df


MEAN_COMPONENTS = ("cond", "zi", "response", "cmean")


def _base_name(fam) -> str:
    return fam.base.name if getattr(fam, "composite", False) else fam.name


def _grid_components(fit, component) -> tuple:
    """The components whose variables make the reference grid for ``component``."""
    if component not in MEAN_COMPONENTS:
        raise GlmmdiagError(f"component must be one of {list(MEAN_COMPONENTS)}; got {component!r}")
    fam = fit.family
    if component in ("cond", "cmean"):
        return ("cond",)
    if component == "zi":
        component_spec(fit, "zi")  # raises without a zero model
        return ("cond", "zi")
    comps = ["cond"]
    if getattr(fam, "composite", False):
        if fam.kz:
            comps.append("zi")
        if fam.zero == "hurdle" and fam.disp_varies:
            comps.append("disp")
    return tuple(comps)


def _log_f0_derivs(base_name, mu, zeta):
    """(d log f(0) / d mu, d log f(0) / d zeta) of the base count family, zeta its dispersion
    predictor on glmmTMB's betad scale (log theta for nbinom2, log phi for nbinom1)."""
    if base_name == "poisson":  # f0 = exp(-mu)
        return -np.ones_like(mu), np.zeros_like(mu)
    if base_name == "nbinom2":  # f0 = (theta / (theta + mu))^theta
        th = np.exp(zeta)
        return -th / (th + mu), th * (np.log(th / (th + mu)) + mu / (th + mu))
    if base_name == "nbinom1":  # f0 = (1 + phi)^(-mu / phi)
        ph = np.exp(zeta)
        return -np.log1p(ph) / ph, mu / ph * np.log1p(ph) - mu / (1.0 + ph)
    raise GlmmdiagError(f"component='response' for a hurdle model of the {base_name} family is not supported")


def response_mean_rows(fit, grid, Xg, off) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the response at each grid row and its gradient in (beta, beta_disp, beta_zi).

    Zero-inflation: m = (1 - pi) mu; hurdle: m = (1 - pi) mu / (1 - f0), with mu = h(x'beta + offset),
    pi = expit(z'beta_zi), f0 the base family's P(0 | mu, zeta), zeta = x_disp'beta_disp. Without a
    zero model m = mu. The gradient columns follow ``fit.vcov_full`` (cond, disp, zi).
    """
    fam = fit.family
    b = np.asarray(fit.fixef, float)
    eta = Xg @ b + off
    mu, dmu = fit.family.link.inverse_derivs(eta)[:2]
    composite = getattr(fam, "composite", False)
    kd = fam.kd if composite else 0
    kz = fam.kz if composite else 0
    if not composite or fam.zero is None:
        J = np.zeros((len(eta), b.size + kd + kz))
        J[:, : b.size] = dmu[:, None] * Xg
        return mu, J
    psi = np.asarray(fit._st.psi, float)
    Zg = fit._submodel_X(grid, "zi") if kz else None
    Dg = None
    if kd:
        Dg = np.ones((len(eta), 1)) if fam.d_const else fit._submodel_X(grid, "disp")
    pi = np.zeros(len(eta)) if Zg is None else _expit(Zg @ psi[kd : kd + kz])
    dm_deta, dm_dzeta = (1.0 - pi) * dmu, np.zeros(len(eta))
    if fam.zero == "zi":
        m = (1.0 - pi) * mu
    else:
        zeta = Dg @ psi[:kd] if kd else np.zeros(len(eta))
        f0 = fam.parts(eta, psi, Dg, Zg)[3]
        g_mu, g_zeta = _log_f0_derivs(fam.base.name, mu, zeta)
        m = (1.0 - pi) * mu / (1.0 - f0)
        k = (1.0 - pi) * mu * f0 / (1.0 - f0) ** 2  # d m / d log f0
        dm_deta = (1.0 - pi) * dmu / (1.0 - f0) + k * g_mu * dmu
        dm_dzeta = k * g_zeta
    dm_dxi = -pi * (1.0 - pi) * (mu if fam.zero == "zi" else mu / (1.0 - f0))
    parts = [dm_deta[:, None] * Xg]
    if kd:
        parts.append(dm_dzeta[:, None] * Dg)
    if kz:
        parts.append(dm_dxi[:, None] * Zg)
    return m, np.hstack(parts)


def _expit(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def marginal_means(fit, specs, type: str = "link", at: dict | None = None, level: float = 0.95,
                   df=None, data=None, offset: float | None = None, component: str = "cond") -> MarginalMeans:
    """Estimated marginal means, as ``emmeans(m, specs, type=...)``.

    Parameters
    ----------
    fit : GLMMResults
    specs : str or list of str
        The factors whose level combinations get a mean: ``"fungicide"``, ``"~ extract * gen"``,
        ``["extract", "gen"]``. A numeric covariate may appear only with its values in ``at``.
    type : "link" or "response"
        Link scale (column ``emmean``) or back-transformed (``prob`` for binomial, ``rate`` for
        Poisson / negative binomial, ``response`` otherwise; identity links stay ``emmean``).
    at : dict, optional
        Values for grid variables: factor -> levels to keep, covariate -> value(s) (several values
        of a covariate not in ``specs`` are averaged over).
    level : float
        Confidence level of the intervals.
    df : None, "residual" or number
        None: asymptotic (z) intervals (``df = inf``, columns ``asymp.LCL``/``asymp.UCL``);
        "residual": t intervals with ``fit.df_resid`` (emmeans' choice for glmmTMB fits);
        a number: t intervals with that many degrees of freedom (``lower.CL``/``upper.CL``).
    data : DataFrame, optional
        The data the model was fitted to; needed only for covariates that enter the model only
        through a transformation (e.g. ``log(x)``) or an offset, whose mean cannot be read off the
        fit.
    offset : float, optional
        The offset (link scale) at which to evaluate the means; by default offset expressions of
        the formula are evaluated on the grid and an ``offset=`` vector is taken at its mean.
    component : "cond", "zi", "response" or "cmean"
        For zero-inflated / hurdle / dispersion models (emmeans' ``component`` for glmmTMB):
        "cond" (default) the conditional model, on the link scale or back-transformed by ``type``;
        "cmean" the same with ``type="response"`` (the conditional mean mu);
        "zi" the zero model's probability pi (logit scale, or the probability with
        ``type="response"``); "response" the mean of the response including the zero model,
        (1 - pi) mu with zero-inflation and (1 - pi) mu / (1 - f(0)) for a hurdle model (f the
        conditional family's density, which depends on the dispersion model), averaged over the
        grid on the response scale, with delta-method SEs from the joint covariance
        ``fit.vcov_full``, symmetric intervals and ``type`` ignored. The grid then also crosses
        the factors of the zero (and, for a hurdle, dispersion) model.

    Returns
    -------
    MarginalMeans (``.table`` is the DataFrame; ``pairwise()`` takes the object).

    Examples
    --------
    ``emmeans(m, ~ period, type = "response")`` for a binomial GLMM:

    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> cbpp = datasets.load("cbpp")
    >>> fit = glmmdiag.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
    ...                     family="binomial")
    >>> means = glmmdiag.marginal_means(fit, "period", type="response")
    >>> print(means.table[["period", "prob", "SE"]].round(3).to_string(index=False))
    period  prob    SE
         1 0.198 0.037
         2 0.084 0.024
         3 0.074 0.023
         4 0.048 0.020
    """
    if type not in ("link", "response"):
        raise GlmmdiagError(f"type must be 'link' or 'response'; got {type!r}")
    if not 0 < level < 1:
        raise GlmmdiagError(f"level must be in (0, 1); got {level}")
    comps = _grid_components(fit, component)
    if component == "cmean":
        component, type = "cond", "response"
    df_val = resolve_df(fit, df)
    design = fit.design
    factors, numeric = model_variables(fit, comps)
    names = parse_specs(specs)
    known = list(factors) + numeric
    at = dict(at or {})
    for v in list(at):
        if v not in known:
            raise ColumnError(f"at= names {v!r}, which is not a variable of the model's fixed part ({known})")
    for v in names:
        if v not in known:
            raise ColumnError(
                f"specs names {v!r}, which is not a variable of the model's fixed part; its variables are "
                f"{known}" + (f" (factors: {list(factors)})" if factors else " (no factors)")
            )
        if v in numeric and v not in at:
            raise GlmmdiagError(
                f"specs names the numeric covariate {v!r}: give the values at which to evaluate it, e.g. "
                f"at={{{v!r}: [1, 2, 3]}}; without at= emmeans would report it at its mean only"
            )

    used = _fit_data(fit, data)
    values: dict[str, list] = {}
    for v, levels in factors.items():
        if v in at:
            keep = _as_values(at[v])
            bad = [x for x in keep if x not in levels and str(x) not in map(str, levels)]
            if bad:
                raise GlmmdiagError(f"at[{v!r}] has levels {bad} that the factor does not have ({levels})")
            by_str = {str(x): x for x in levels}
            values[v] = [x if x in levels else by_str[str(x)] for x in keep]
        else:
            values[v] = list(levels)
    data_vars = set(design.x_spec.variables_by_source.get("data", set()))
    for comp in comps[1:]:
        spec = component_spec(fit, comp)[0]
        if spec is not None:
            data_vars |= set(spec.variables_by_source.get("data", set()))
    offset_only = set(numeric) - data_vars
    for v in numeric:
        if v in offset_only and offset is not None:
            continue  # the offset is given: its variables are not needed
        if v in at:
            values[v] = [float(x) for x in _as_values(at[v])]
            continue
        try:
            values[v] = [_covariate_mean(fit, v, used, comps)]
        except ValueError:
            if v in offset_only:
                raise GlmmdiagError(
                    f"the offset uses {v!r}, whose mean cannot be read off the fit: pass data= (the data "
                    f"frame the model was fitted to), its value in at=, or the offset itself as offset= "
                    f"(link scale, e.g. 0 for rates per unit)"
                ) from None
            raise

    # the grid: specs variables first (the first varying fastest, as emmeans), then the rest
    others = [v for v in values if v not in names]
    order = list(names) + others
    combos = list(itertools.product(*[values[v] for v in reversed(order)]))
    grid = pd.DataFrame([tuple(reversed(c)) for c in combos], columns=order)
    for v in factors:
        grid[v] = pd.Categorical(grid[v], categories=factors[v])
    Xg = np.asarray(design.x_spec.get_model_matrix(grid, na_action="ignore"), float)
    non_est = np.zeros(len(grid), bool)
    if design.x_kept is not None:
        non_est = _non_estimable(fit, Xg, used)
        Xg = Xg[:, np.asarray(design.x_kept, int)]
    off = np.zeros(len(grid))
    if offset is not None:
        off[:] = float(offset)
    else:
        for e in design.formula.offsets:
            off += np.asarray(evaluate_expression(e, grid), float)
        if design.formula.offsets and used is not None:
            formula_off = sum(np.asarray(evaluate_expression(e, used), float) for e in design.formula.offsets)
            off += float(np.mean(design.offset - formula_off))
        elif not design.formula.offsets:
            off += float(np.mean(design.offset)) if design.offset.size else 0.0

    # average the grid rows sharing a specs combination (equal weights)
    n_spec = int(np.prod([len(values[v]) for v in names]))
    group = np.arange(len(grid)) % n_spec  # specs vary fastest in the product above
    counts = np.bincount(group, minlength=n_spec)
    A = np.zeros((n_spec, len(grid)))
    A[group, np.arange(len(grid))] = 1.0 / counts[group]
    bad = (A @ non_est.astype(float)) > 0  # a mean averaging any non-estimable grid row
    if component == "cond":
        L = A @ Xg
        eta = L @ np.asarray(fit.fixef, float) + A @ off
        Veta = L @ np.asarray(fit.vcov, float) @ L.T
        link, fam = fit.family.link, _base_name(fit.family)
    elif component == "zi":
        L = A @ fit._submodel_X(grid, "zi")
        bz, Vz, _ = component_coefs(fit, "zi")
        eta, Veta = L @ bz, L @ Vz @ L.T
        link, fam = Logit(), "binomial"
    else:
        m, J = response_mean_rows(fit, grid, Xg, off)
        L = A @ J  # gradient of each mean in (beta, beta_disp, beta_zi), the order of vcov_full
        eta, Veta = A @ m, L @ fit.vcov_full.to_numpy(float) @ L.T
        link, fam = Identity(), _base_name(fit.family)
    eta[bad] = np.nan
    Veta[bad, :] = np.nan
    Veta[:, bad] = np.nan
    v = np.diag(Veta)
    # a zero (an exact fit), negative (a Hessian that is not positive definite) or NaN variance
    # gives no SE and no interval, never a zero-width one
    with np.errstate(invalid="ignore"):
        se = np.where(np.isfinite(v) & (v > 0), np.sqrt(np.abs(v)), np.nan)

    q = stats.norm.ppf(0.5 + level / 2) if np.isinf(df_val) else stats.t.ppf(0.5 + level / 2, df_val)
    out = grid.iloc[:n_spec][names].reset_index(drop=True)
    lo_eta, hi_eta = eta - q * se, eta + q * se
    notes = []
    if type == "response" and link.name != "identity":
        mu, d1 = link.inverse_derivs(eta)[:2]
        est_name = _RESPONSE_LABEL.get(fam, "response")
        est, se_out = mu, np.abs(d1) * se
        a, c = link.inverse(lo_eta), link.inverse(hi_eta)
        lo, hi = np.minimum(a, c), np.maximum(a, c)
        notes.append(f"Intervals are back-transformed from the {link.name} scale")
    else:
        est_name = "emmean"
        est, se_out, lo, hi = eta, se, lo_eta, hi_eta
        if type == "link" and link.name != "identity":
            notes.append(f"Results are given on the {link.name} (not the response) scale.")
    lcl, ucl = ("asymp.LCL", "asymp.UCL") if np.isinf(df_val) else ("lower.CL", "upper.CL")
    out[est_name] = est
    out["SE"] = se_out
    out["df"] = df_val
    out[lcl] = lo
    out[ucl] = hi
    avg = [v for v in others if len(values[v]) > 1 and v in factors]
    if avg:
        notes.insert(0, f"Results are averaged over the levels of: {', '.join(avg)}")
    if bad.any():
        notes.insert(0, f"{int(bad.sum())} mean(s) not estimable (aliased columns were dropped from the "
                        f"model; e.g. an empty cell): reported as NaN")
    if component == "zi":
        notes.insert(0, "Component: zi (the zero model's probability pi)")
    elif component == "response":
        what = ("(1 - pi) mu / (1 - f(0)) (hurdle)" if getattr(fit.family, "zero", None) == "hurdle"
                else "(1 - pi) mu")
        notes.insert(0, f"Component: response, the mean of the response {what}; SEs by the delta method")
    notes.append(f"Confidence level used: {level:g}")
    labels = [" ".join(str(out.at[i, v]) for v in names) for i in range(n_spec)]
    type_out = "response" if component == "response" else type
    return MarginalMeans(out, names, labels, L, eta, Veta, df_val, level, type_out, link, fam, est_name, notes,
                         component)
