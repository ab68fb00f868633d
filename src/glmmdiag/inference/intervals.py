"""Wald confidence intervals for the fixed effects and the variance parameters of a fit.

Fixed effects: b +- z SE (``confint(m, method = "Wald")`` in lme4, glmmTMB's default).

Variance parameters are reported as standard deviations and correlations of the random effects
(and the family's dispersion). Their intervals are Wald intervals on an unbounded scale --
log SD, Fisher's z = atanh(correlation), the family's log-scale dispersion psi -- mapped back
(glmmTMB reports SDs the same way, from the log-SD scale). The covariance of those parameters is
the inverse of the Hessian of -log L in them:

* GLMMs and GLMs with a dispersion: the Laplace (or AGQ) deviance over (theta, beta, psi), by
  central differences of its exact gradient (of the deviance itself for AGQ), carried to the
  natural parameters phi by the Jacobian J = d(theta, beta, psi)/d(phi): at the optimum
  H_phi = J' H J.
* LMMs: the criterion with beta profiled out (profiling leaves the curvature of the remaining
  parameters unchanged at the optimum), written in (theta, log sigma):
  d(theta, sigma) = d_prof(theta) - nu [1 + log(2 pi s^2(theta))] + nu log(2 pi sigma^2)
  + nu s^2(theta) / sigma^2, with s^2(theta) the profiled residual variance and nu = n (ML) or
  n - p (REML: the intervals then use the REML criterion, as lme4's profile does).

A variance on the boundary (a singular fit) has no Wald interval on the log scale: its rows are
NaN and its parameters are held fixed for the others.

Zero-inflated, hurdle and dispersion models: the coefficients of the zero model (logit scale) and
of the dispersion model (glmmTMB's betad scale) get Wald intervals b +- z SE from the joint
covariance ``fit.vcov_full``, named as there (``zi~(Intercept)``, ``disp~minedno``); a constant
dispersion is also reported on the family's scale (``dispersion``: theta for nbinom2, ...), its
interval mapped from that of ``disp~(Intercept)``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import linalg, stats
from glmmdiag.errors import ColumnError, GlmmdiagError
from glmmdiag.inference._terms import component_spec

__all__ = ["confint"]

SINGULAR_TOL = 1e-4


def _level_names(level):
    a = (1 - level) / 2
    return f"{100 * a:.3g} %", f"{100 * (1 - a):.3g} %"


def confint(fit, parm=None, level: float = 0.95, method: str = "wald") -> pd.DataFrame:
    """Confidence intervals, as ``confint(m)`` for glmmTMB fits.

    Parameters
    ----------
    fit : GLMMResults
    parm : None, "fixed", "cond", "zi", "disp", "random", str or list of str
        All parameters (default); the fixed effects of every component (the conditional model's,
        then ``zi~...`` and ``disp~...`` rows of a zero / dispersion model); those of one component
        ("cond", "zi", "disp"); the variance parameters (SDs, correlations, dispersion); or rows by
        name (fixed-effect names, ``"zi~(Intercept)"``, ``"disp~minedno"``,
        ``"sd_(Intercept)|block"``, ``"cor_(Intercept).Days|Subject"``, ``"sigma"`` /
        ``"dispersion"``, ``"df"``).
    level : float
    method : "wald"
        Wald intervals (variance parameters on the log-SD / atanh / log-dispersion scale).

    Returns
    -------
    DataFrame with columns "2.5 %", "97.5 %", "Estimate" (for level 0.95), indexed by parameter.

    Examples
    --------
    Wald intervals for the fixed effects and the variance parameters of an LMM:

    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> sleep = datasets.load("sleepstudy")
    >>> fit = glmmdiag.glmm("Reaction ~ Days + (Days | Subject)", sleep, reml=True)
    >>> print(glmmdiag.confint(fit).round(2).to_string())
                                   2.5 %  97.5 %  Estimate
    (Intercept)                   238.03  264.78    251.41
    Days                            7.44   13.50     10.47
    sd_(Intercept)|Subject         15.58   39.28     24.74
    sd_Days|Subject                 3.92    8.95      5.92
    cor_(Intercept).Days|Subject   -0.52    0.61      0.07
    sigma                          22.80   28.72     25.59
    """
    if str(method).lower() != "wald":
        raise GlmmdiagError(f"method must be 'wald' (profile intervals are not implemented); got {method!r}")
    if not 0 < level < 1:
        raise GlmmdiagError(f"level must be in (0, 1); got {level}")
    z = stats.norm.ppf(0.5 + level / 2)
    lo_name, hi_name = _level_names(level)
    if parm is not None and not isinstance(parm, str):
        parm = [str(x) for x in parm]
    if parm in ("zi", "disp"):
        component_spec(fit, parm)  # raises when the fit has no such model
    want = {"cond": parm not in ("random", "zi", "disp"),
            "zi": parm in (None, "fixed", "zi") or not isinstance(parm, str) or parm.startswith("zi~"),
            "disp": parm in (None, "fixed", "disp") or not isinstance(parm, str) or parm.startswith("disp~")}
    want_random = parm not in ("fixed", "cond", "zi", "disp")
    frames = []
    for comp in ("cond", "zi", "disp"):
        if want[comp]:
            frames.append(_fixed_intervals(fit, comp, z, lo_name, hi_name))
    if want_random:
        names, est, lo, hi = _variance_intervals(fit, z)
        if names:
            frames.append(pd.DataFrame({lo_name: lo, hi_name: hi, "Estimate": est}, index=names))
    out = pd.concat(frames) if frames else pd.DataFrame(columns=[lo_name, hi_name, "Estimate"])
    if parm is not None and parm not in ("fixed", "random", "cond", "zi", "disp"):
        wanted = [parm] if isinstance(parm, str) else list(parm)
        missing = [p for p in wanted if p not in out.index]
        if missing:
            raise ColumnError(f"parm names {missing}, not parameters of the fit; they are {list(out.index)}")
        out = out.loc[wanted]
    return out


def _fixed_intervals(fit, component, z, lo_name, hi_name) -> pd.DataFrame:
    """Wald intervals b +- z SE of one component's coefficients (empty if the fit has none); the
    zero and dispersion models' rows are named as in ``fit.vcov_full``."""
    if component == "cond":
        b, se, names = np.asarray(fit.fixef, float), np.asarray(fit.se, float), list(fit.fixef.index)
    else:
        est = fit.fixef_zi if component == "zi" else fit.fixef_disp
        se_s = fit.se_zi if component == "zi" else fit.se_disp
        b, se, names = est.to_numpy(float), se_s.to_numpy(float), [f"{component}~{n}" for n in est.index]
    se = np.where(np.isfinite(se) & (se > 0), se, np.nan)  # no interval from a missing or zero SE
    return pd.DataFrame({lo_name: b - z * se, hi_name: b + z * se, "Estimate": b}, index=names)


def _composite_dispersion(fit, z):
    """(names, estimates, lower, upper) of a constant dispersion of a zero / dispersion model on the
    family's scale, mapped from the Wald interval of ``disp~(Intercept)`` (betad = c psi)."""
    fam = fit.family
    if not fam.kd or not fam.d_const or not fam.base.n_psi or fam.base.n_psi != 1:
        return [], [], [], []
    zeta = float(fit.fixef_disp.iloc[0])
    se = float(fit.se_disp.iloc[0])

    def to_disp(v):
        return float(fam.base.dispersion(np.array([v / fam.c])))

    name = "sigma" if fam.base.name in ("gaussian", "t") else "dispersion"
    if not (np.isfinite(se) and se > 0):
        return [name], [to_disp(zeta)], [np.nan], [np.nan]
    a, b = to_disp(zeta - z * se), to_disp(zeta + z * se)
    return [name], [to_disp(zeta)], [min(a, b)], [max(a, b)]


# ---------------------------------------------------------------------------- variance parameters
def _natural_from_factor(T_list, scale):
    """Per term: (sd vector, correlation matrix) of scale^2 T T'."""
    out = []
    for T in T_list:
        S = scale**2 * (T @ T.T)
        sd = np.sqrt(np.clip(np.diag(S), 0, None))
        with np.errstate(divide="ignore", invalid="ignore"):
            R = S / np.outer(sd, sd)
        out.append((sd, R))
    return out


def _chol_entries(sd, corr_vals, q, order):
    """theta entries (lme4 order) of the lower Cholesky factor of D R D."""
    R = np.eye(q)
    iu = np.tril_indices(q, -1)
    R[iu] = corr_vals
    R = R + np.tril(R, -1).T
    S = np.outer(sd, sd) * R
    if q == 1:
        return np.array([sd[0]])
    T = linalg.cholesky(S, lower=True)
    r, c = order
    return T[r, c]


def _jacobian(fun, x, h=1e-6):
    f0 = fun(x)
    J = np.empty((f0.size, x.size))
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h * max(1.0, abs(x[i]))
        J[:, i] = (fun(x + e) - fun(x - e)) / (2 * e[i])
    return J


def _structure_rows(tm, k, theta, sd, term) -> list[tuple[str, float]]:
    """A structured term's rows: its SD (one per coefficient for cs/toep/diag) and its parameters
    on glmmTMB's scale (rho, range, ...), instead of every SD and correlation of a q x q matrix."""
    struct = tm.structs[k]
    if np.allclose(sd, sd[0]) and struct.code not in ("diag", "cs", "toep"):
        rows = [("sd", float(sd[0]))]
    else:
        rows = [(f"sd_{cn}", float(v)) for cn, v in zip(term.cnames, sd)]
    rows += [(f"{key} ({struct.code})", float(v)) for key, v in tm.describe(theta)[k].items()]
    return rows


def _variance_intervals(fit, z):
    design = fit.design
    terms = design.terms
    tm = fit._thetamap
    theta = np.asarray(fit.theta, float)
    relative = bool(getattr(fit, "_relative", False))
    sigma = fit.sigma if relative else 1.0
    T_list = tm.factors(theta)
    nat = _natural_from_factor(T_list, sigma)

    names, kinds = [], []  # kinds: ("sd", k, i) / ("cor", k, (i, j)) / ("struct", k, value)
    for k, (t, (sd, R)) in enumerate(zip(terms, nat)):
        if tm.structured(k):  # the structure's own parameters (their intervals are not computed)
            for key, value in _structure_rows(tm, k, theta, sd, t):
                names.append(f"{key}|{t.group}")
                kinds.append(("struct", k, value))
            continue
        for i, cn in enumerate(t.cnames):
            names.append(f"sd_{cn}|{t.group}")
            kinds.append(("sd", k, i))
        ii, jj = np.tril_indices(t.q, -1)
        for i, j in zip(ii, jj):
            names.append(f"cor_{t.cnames[j]}.{t.cnames[i]}|{t.group}")
            kinds.append(("cor", k, (i, j)))
    # which terms can be given Wald intervals: all their SDs away from 0 and |corr| < 1
    ok_term = []
    for k, (t, (sd, R)) in enumerate(zip(terms, nat)):
        ii, jj = np.tril_indices(t.q, -1)
        # structured terms (ar1, exp, ...): their SDs and correlations are not free parameters
        good = (not tm.structured(k) and np.all(sd > SINGULAR_TOL * max(sigma, 1e-300))
                and np.all(np.abs(R[ii, jj]) < 1 - 1e-6))
        ok_term.append(bool(good))

    fam = fit.family
    composite = bool(getattr(fam, "composite", False))
    psi = np.asarray(fit.psi, float) if not relative else np.zeros(0)
    disp_names = []
    extra = _composite_dispersion(fit, z) if composite else ([], [], [], [])
    if relative:
        disp_names = ["sigma"]
    elif fam.n_psi and not composite:
        for j in range(fam.n_psi):
            disp_names.append("df" if (fam.name == "t" and j == 1) else
                              ("sigma" if fam.name in ("gaussian", "t") else "dispersion"))
    if not names and not disp_names:
        return extra

    # phi for the free terms (log sd, atanh corr), in term order
    phi_var, phi_slices = [], []
    for k, (t, (sd, R)) in enumerate(zip(terms, nat)):
        if not ok_term[k]:
            phi_slices.append(None)
            continue
        ii, jj = np.tril_indices(t.q, -1)
        start = len(phi_var)
        phi_var.extend(np.log(sd))
        phi_var.extend(np.arctanh(R[ii, jj]))
        phi_slices.append(slice(start, len(phi_var)))
    phi_var = np.asarray(phi_var, float)
    m = phi_var.size

    def theta_of(phi_v, scale):
        th = theta.copy()
        for k, t in enumerate(terms):
            sl = phi_slices[k]
            if sl is None:
                continue
            v = phi_v[sl]
            sd = np.exp(v[: t.q]) / scale
            th[tm.starts[k] : tm.starts[k + 1]] = _chol_entries(sd, np.tanh(v[t.q :]), t.q, tm._order[k])
        return th

    free_idx = np.concatenate([np.arange(tm.starts[k], tm.starts[k + 1])
                               for k in range(len(terms)) if ok_term[k]] or [np.zeros(0, int)]).astype(int)

    if relative:
        cov_phi = _lmm_cov(fit, phi_var, theta_of, free_idx)
        est_disp = [float(sigma)]
        disp_cov_idx = [m]
        to_disp = [lambda v: float(np.exp(v))]
        disp_center = [float(np.log(sigma))]
    else:
        cov_phi = _glmm_cov(fit, phi_var, theta_of, free_idx)
        est_disp, to_disp, disp_center, disp_cov_idx = [], [], [], []
        p = len(fit.fixef)
        for j in range(0 if composite else fam.n_psi):
            def f(v, j=j):
                ps = psi.copy()
                ps[j] = v
                if fam.name == "t" and j == 1:
                    return float(fam.dispersion_extra(ps)["df"])
                return float(fam.dispersion(ps))
            to_disp.append(f)
            disp_center.append(float(psi[j]))
            est_disp.append(f(psi[j]))
            disp_cov_idx.append(m + p + j)

    se_phi = np.sqrt(np.clip(np.diag(cov_phi), 0, None)) if cov_phi is not None else None
    est, lo, hi = [], [], []
    for (kind, k, ij) in kinds:
        if kind == "struct":
            est.append(float(ij))
            lo.append(np.nan)
            hi.append(np.nan)
            continue
        sd, R = nat[k]
        if kind == "sd":
            e = float(sd[ij])
        else:
            e = float(R[ij])
        est.append(e)
        sl = phi_slices[k]
        if sl is None or se_phi is None:
            lo.append(np.nan)
            hi.append(np.nan)
            continue
        t = terms[k]
        if kind == "sd":
            pos = sl.start + ij
            c, s = np.log(e), se_phi[pos]
            lo.append(float(np.exp(c - z * s)))
            hi.append(float(np.exp(c + z * s)))
        else:
            ii, jj = np.tril_indices(t.q, -1)
            r = int(np.flatnonzero((ii == ij[0]) & (jj == ij[1]))[0])
            pos = sl.start + t.q + r
            c, s = np.arctanh(e), se_phi[pos]
            lo.append(float(np.tanh(c - z * s)))
            hi.append(float(np.tanh(c + z * s)))
    for nm, e, f, c, idx in zip(disp_names, est_disp, to_disp, disp_center, disp_cov_idx):
        names.append(nm)
        est.append(e)
        if se_phi is None or idx >= se_phi.size:
            lo.append(np.nan)
            hi.append(np.nan)
            continue
        s = se_phi[idx]
        a, b = f(c - z * s), f(c + z * s)
        lo.append(min(a, b))
        hi.append(max(a, b))
    for lst, more in zip((names, est, lo, hi), extra):
        lst.extend(more)
    return names, est, lo, hi


def _invert(H):
    H = 0.5 * (H + H.T)
    if not np.all(np.isfinite(H)):
        return None
    try:
        return linalg.inv(H)
    except linalg.LinAlgError:
        return linalg.pinv(H)


def _lmm_cov(fit, phi_var, theta_of, free_idx):
    """Covariance of (phi_var, log sigma) from the LMM criterion with beta profiled out."""
    from glmmdiag.fit.lmm import LMMProblem

    if not fit.design.terms:
        # a linear model: -log L in log sigma has curvature nu (= n, or n - p for REML) at the optimum
        n, p = fit.design.X.shape
        return np.array([[1.0 / (2.0 * (n - p if fit.reml else n))]])
    prob = LMMProblem(fit.design, fit.reml)
    nu = prob.n - prob.p if fit.reml else prob.n

    def dev(x):
        log_sigma = x[-1]
        sigma = np.exp(log_sigma)
        th = theta_of(x[:-1], sigma)
        sol = prob.solution(th)
        if not np.isfinite(sol.deviance):
            return np.inf
        s2 = sol.sigma**2
        return (sol.deviance - nu * (1 + np.log(2 * np.pi * s2)) + nu * np.log(2 * np.pi * sigma**2)
                + nu * s2 / sigma**2)

    from glmmdiag.fit.optimize import fd_hessian

    x0 = np.concatenate([phi_var, [np.log(fit.sigma)]])
    H = fd_hessian(dev, x0, step=1e-4) / 2.0  # -log L
    return _invert(H)


def _glmm_cov(fit, phi_var, theta_of, free_idx):
    """Covariance of (phi_var, beta, psi) from the Laplace / AGQ deviance."""
    from glmmdiag.fit.laplace import GLMMProblem
    from glmmdiag.fit.optimize import fd_hessian

    design, fam = fit.design, fit.family
    theta = np.asarray(fit.theta, float)
    beta = np.asarray(fit.fixef, float)
    psi = np.asarray(fit.psi, float) if fam.n_psi else None
    p, k, m = beta.size, fam.n_psi, phi_var.size
    nt = theta.size
    if not design.terms:
        if not k:
            return None
        from glmmdiag.fit.engine import _glm_hessian

        J = _glm_hessian(design.X, design.y, design.w, design.offset, fam, beta, psi)[2]
        return _invert(J)  # J is -d2 log L over (beta, psi)
    prob = GLMMProblem(design, fam, n_agq=fit.n_agq)

    def split(x):
        th = theta_of(x[:m], 1.0)
        return th, x[m : m + p], (x[m + p :] if k else None)

    x0 = np.concatenate([phi_var, beta, psi if k else np.zeros(0)])
    if fit.n_agq == 1:
        # Hessian in z = (theta_free, beta, psi) from the exact gradient, then J' H J
        z_idx = free_idx

        def zvec(x):
            th, b, ps = split(x)
            return np.concatenate([th[z_idx], b, ps if k else np.zeros(0)])

        def grad_z(zv):
            th = theta.copy()
            th[z_idx] = zv[: z_idx.size]
            b = zv[z_idx.size : z_idx.size + p]
            ps = zv[z_idx.size + p :] if k else None
            g = prob.deviance_and_gradient(b, th, psi=ps)[1]
            if g is None:
                return np.full(zv.size, np.nan)
            return np.concatenate([g[z_idx], g[nt : nt + p], g[nt + p :] if k else np.zeros(0)])

        z0 = zvec(x0)
        H = np.empty((z0.size, z0.size))
        for i in range(z0.size):
            h = 1e-5 * max(1.0, abs(z0[i]))
            e = np.zeros(z0.size)
            e[i] = h
            H[:, i] = (grad_z(z0 + e) - grad_z(z0 - e)) / (2 * h)
        J = _jacobian(zvec, x0)
        Hx = J.T @ (0.5 * (H + H.T)) @ J / 2.0
    else:
        def dev(x):
            th, b, ps = split(x)
            return prob.laplace_deviance(b, th, psi=ps)

        Hx = fd_hessian(dev, x0, step=1e-4) / 2.0
    return _invert(Hx)
