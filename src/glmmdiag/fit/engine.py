"""Fit a design: LMM (profiled ML/REML), GLMM (Laplace or AGQ over (theta, beta, psi), with an
nAGQ = 0 fallback start), or a plain GLM (joint ML over (beta, psi)) when there are no
random-effects terms. psi are the family's extra parameters on the log scale (dispersion, t's df);
gaussian with the identity link profiles sigma out instead (LMM / least squares). Returns the raw estimates
(:class:`FitState`) that :class:`glmmdiag.fit.model.GLMMResults` presents."""
from __future__ import annotations

import contextlib
import dataclasses
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from glmmdiag._threads import blas_threads
from glmmdiag.errors import (
    ConvergenceWarning,
    DegenerateFitWarning,
    FitError,
    GlmmdiagError,
    RankDeficiencyWarning,
    SeparationWarning,
    SingularFitWarning,
)
from glmmdiag.fit import dense
from glmmdiag.fit.covariance import ThetaMap
from glmmdiag.fit.design import check_rows_vs_parameters
from glmmdiag.fit.laplace import GLMMProblem, PirlsError, _read_only
from glmmdiag.fit.lmm import LMMProblem
from glmmdiag.fit.optimize import OptSummary, fd_gradient, fd_hessian, minimize, newton_step_size

__all__ = ["FitState", "fit_design", "fit_or_raise"]

SINGULAR_TOL = 1e-4  # lme4's isSingular tolerance on theta's diagonal
GRAD_TOL = 2e-3  # max |H^{-1} g| (Newton step, parameter units) at the optimum before a warning


@dataclass
class FitState:
    beta: np.ndarray
    theta: np.ndarray
    u: np.ndarray
    vcov: np.ndarray
    deviance: float  # -2 logLik (ML) or the REML criterion
    loglik: float
    sigma: float | None
    opt: OptSummary
    warnings: list = field(default_factory=list)  # warning instances (ConvergenceWarning, ...)
    cond_var: list | None = None  # per term (l_k, q_k, q_k) conditional covariance of b
    psi: np.ndarray | None = None  # the family's extra parameters (log scale); None without any
    hessian: tuple | None = None  # (H, free theta mask): the FD Hessian of the deviance over (free theta, beta, psi)


LARGE_DENSE = 4000  # Schur complements this large may use several BLAS threads (threads under load cost 10x)


def fit_design(design, family, reml=False, n_agq=1, start=None, opt=None, mapping=None) -> FitState:
    """Fit with BLAS single-threaded unless the dense Schur complement is large.

    Rows with zero prior weight contribute nothing to the likelihood (R's glm and lm drop them
    from it): the fit uses the other rows (``rows_with_weight``). The numerical core runs with
    numpy's floating-point warnings and scipy's ill-conditioning warnings off: it handles
    non-finite values itself (step halving, fallbacks), the result is checked once at the optimum
    (``_check_finite_fit``, ``_post_fit_checks``), and what matters reaches the user as a
    glmmdiag warning or FitError rather than as numpy/scipy warnings from inside the optimiser."""
    kept = rows_with_weight(design, family, reml)
    if kept is not design and getattr(family, "composite", False):
        family = family.subset(np.asarray(design.w) > 0)  # the submodels' rows follow the design's
    design = kept
    qr = sum(t.q * t.nlev for t in design.terms[1:])
    with blas_threads(None if qr + design.X.shape[1] >= LARGE_DENSE else 1), quiet_numerics():
        return _fit_design(design, family, reml, n_agq, start, opt, mapping)


@contextlib.contextmanager
def quiet_numerics():
    """numpy floating-point warnings and scipy's LinAlgWarning off (see ``fit_design``)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        yield


def rows_with_weight(design, family, reml=False):
    """The design without its rows of zero prior weight (binomial: zero trials), which contribute
    nothing to the likelihood; the design itself when there are none. A GlmmdiagError when no
    row, or too few rows for the parameters, are left."""
    keep = np.asarray(design.w) > 0
    if keep.all():
        return design
    n, k = design.n, int(keep.sum())
    what = "zero trials" if family.name == "binomial" else "zero weight"
    if k == 0:
        raise GlmmdiagError(f"all {n} rows have {what}: there is nothing to fit")
    sub = dataclasses.replace(
        design, y=design.y[keep], w=design.w[keep], X=design.X[keep], offset=design.offset[keep],
        rows=design.rows[keep],
        terms=[dataclasses.replace(t, refs=t.refs[keep], z=t.z[keep]) for t in design.terms])
    try:
        check_rows_vs_parameters(sub, family, reml)
    except GlmmdiagError as e:
        raise GlmmdiagError(
            f"{n - k} of {n} rows have {what} and contribute nothing to the likelihood; with the {k} rows "
            f"left: {e}"
        ) from None
    return sub


# numerical failures that data can cause while fitting (bugs are not wrapped)
NUMERICAL_FAILURES = (linalg.LinAlgError, np.linalg.LinAlgError, PirlsError, FloatingPointError)


def fit_or_raise(design, family, reml=False, n_agq=1, start=None, opt=None, mapping=None) -> FitState:
    """``fit_design``, with the numerical failures that data can cause (a singular or indefinite
    matrix, penalised IRLS finding no mode) turned into a :class:`FitError` that says what
    failed and what to try (the original exception is chained)."""
    try:
        return fit_design(design, family, reml=reml, n_agq=n_agq, start=start, opt=opt, mapping=mapping)
    except NUMERICAL_FAILURES as e:
        p = design.X.shape[1]
        terms = ", ".join(t.label for t in design.terms) or "none"
        hint = support_hint(family)
        raise FitError(
            f"the {family.name} model could not be fitted to these data ({design.n} rows, {p} fixed-effect "
            f"parameters, random-effects terms: {terms}): {type(e).__name__}: {e}. "
            + (f"{hint}; otherwise try" if hint else "Try")
            + " simpler random effects, centring and scaling the predictors, removing nearly collinear "
            "predictors, or checking for factor levels or groups whose responses are all at a boundary "
            "(all 0 or all 1)"
        ) from e


_POSITIVE_MEAN = ("poisson", "nbinom1", "nbinom2", "gamma")


def support_hint(family) -> str:
    """For a link that does not keep the mean inside the family's support (identity or inverse
    for a positive mean, log for a probability), what that means and the link to try; "" for
    links that cannot leave it."""
    fam, lk = family.name, family.link.name
    if fam in _POSITIVE_MEAN and lk in ("identity", "inverse"):
        return (f"With the {lk} link the {family.display_name} mean is not kept positive: the mean left the "
                f"family's support (mu <= 0) on some rows; try the log link")
    if fam == "binomial" and lk == "log":
        return ("With the log link the binomial probability is not kept below 1: the mean left the family's "
                "support (mu >= 1) on some rows; try the logit link")
    if lk == "inverse":
        return (f"With the inverse link the {family.display_name} mean 1/eta is infinite where the linear "
                f"predictor crosses 0; try the identity or log link")
    return ""


def _check_finite_fit(st: FitState, design, family) -> None:
    """Never return a fit whose log-likelihood or fixed effects are not finite (logLik = +inf of
    an exact linear fit is reported, with its own warning, by ``_exact_lm``): a FitError that
    says which and why (typically the mean outside the family's support at every point the
    optimiser tried)."""
    ll = float(st.loglik)
    bad_beta = ~np.isfinite(np.asarray(st.beta, float))
    ok_theta = bool(np.all(np.isfinite(st.theta)))
    ok_psi = st.psi is None or bool(np.all(np.isfinite(st.psi)))
    if (np.isfinite(ll) or ll == np.inf) and not bad_beta.any() and ok_theta and ok_psi:
        return
    what = []
    if not (np.isfinite(ll) or ll == np.inf):
        what.append(f"log-likelihood {ll}")
    if bad_beta.any():
        what.append(f"non-finite fixed effects ({', '.join(np.asarray(design.xnames, object)[bad_beta])})")
    if not ok_theta:
        what.append("non-finite variance parameters")
    if not ok_psi:
        what.append(f"non-finite {family.name} dispersion parameter")
    hint = support_hint(family)
    raise FitError(
        f"the {family.name} model with the {family.link.name} link could not be fitted to these data "
        f"({design.n} rows, {design.X.shape[1]} fixed-effect parameters): the optimiser found no point with a "
        f"finite likelihood ({'; '.join(what)}). "
        + (f"{hint}." if hint else "Check the response, weights and offset, and try simpler models or "
           "centring and scaling the predictors.")
    )


def _fit_design(design, family, reml, n_agq, start, opt, mapping=None) -> FitState:
    """``mapping``: a :class:`~glmmdiag.fit.mapping.ParameterMap` with fixed or shared
    parameters (glmmTMB's ``map=``), fitted over its free values by ``fit_mapped``."""
    opt = opt or OptSummary()
    opt = OptSummary(**{k: getattr(opt, k) for k in ("method", "ftol", "gtol", "maxiter", "fd_step")})
    _check_constant_response(design, family)
    if mapping is not None:
        from glmmdiag.fit.mapping import fit_mapped

        st = fit_mapped(design, family, mapping, opt)
        _check_boundary(st, design)
    elif not design.terms:
        st = _fit_glm(design, family, reml, opt)
    else:
        if _is_lmm(family):
            st = _fit_lmm(design, reml, opt, start)
        else:
            st = _fit_glmm(design, family, n_agq, opt, start)
        _check_boundary(st, design)
    _check_finite_fit(st, design, family)
    _post_fit_checks(st, design, family)
    return st


def _is_lmm(family) -> bool:
    """Gaussian with the identity link and a constant residual variance: the profiled LMM path."""
    return (family.name == "gaussian" and family.link.name == "identity" and not getattr(family, "composite", False)
            and getattr(family, "profiled_lmm", True))  # not with glmmTMB's weights (fit/gaussian_weights.py)


def _scalar_sigma(family) -> bool:
    """Whether FitState.sigma holds the gaussian residual SD (not with a dispersion model)."""
    return family.name == "gaussian" and not getattr(family, "composite", False)


def _check_constant_response(design, family) -> None:
    """A continuous family with a dispersion parameter (gaussian with a non-identity link, Gamma,
    beta, t) cannot be fitted to a constant response: the likelihood grows without bound as the
    dispersion shrinks to 0. (Gaussian with the identity link: ``_exact_lm`` / ``_check_lmm_residual``.)"""
    lmm = _is_lmm(family)
    if lmm or family.name not in ("gaussian", "gamma", "beta", "t") or design.n == 0:
        return
    y = design.y
    if np.ptp(y) == 0:
        raise FitError(
            f"the response is constant (all {design.n} rows are {y[0]:g}): the {family.name} family's "
            f"dispersion has no maximum-likelihood estimate (the likelihood grows without bound as it "
            f"shrinks to 0); check the response, or model it with a family without a dispersion parameter"
        )


# ---------------------------------------------------------------------------- GLM
def start_eta(family, y, w):
    """A starting linear predictor from the family's starting means, kept inside the link's domain."""
    mu0 = np.asarray(family.start_mu(y, w), float)
    lk = family.link.name
    if lk in ("logit", "probit", "cloglog"):
        mu0 = np.clip(mu0, 1e-6, 1 - 1e-6)
    elif lk in ("log", "sqrt", "inverse"):
        mu0 = np.clip(mu0, 1e-8, None)
    return family.link.link(mu0)


def _in_support(family, y, w, eta, psi) -> bool:
    """True when every row's mean and log density are finite at this linear predictor."""
    with np.errstate(all="ignore"):
        mu = family.link.inverse(eta)
        return bool(np.all(np.isfinite(mu)) and np.all(np.isfinite(family.eta_derivs(y, eta, w, psi, 1)[0])))


def _support_start(X, y, w, offset, family, beta, psi):
    """``beta`` if its linear predictor is inside the family's support; else, for a link whose
    support is a half-space of the linear predictor (identity or inverse with a positive mean,
    log with a probability), the point closest to ``beta`` on the segment from a strictly
    feasible point (a linear program maximising the smallest margin, up to a typical value of
    the linear predictor) that keeps every row at least half that margin inside. ``beta``
    unchanged when there is no such point (the fit then reports the failure)."""
    p = X.shape[1]
    if p == 0 or _in_support(family, y, w, offset + X @ beta, psi):
        return beta
    fam, lk = family.name, family.link.name
    if fam in _POSITIVE_MEAN and lk in ("identity", "inverse"):
        sign = 1.0  # eta > 0
        typical = float(np.mean(start_eta(family, y, w)))
    elif fam == "binomial" and lk == "log":
        sign = -1.0  # eta < 0
        typical = -float(np.mean(start_eta(family, y, w)))
    else:
        return beta
    if not (np.isfinite(typical) and typical > 0):
        return beta
    from scipy.optimize import linprog

    # maximise t subject to sign (offset + X b) >= t, t <= typical (variables b, t)
    A = np.column_stack([-sign * X, np.ones(len(y))])
    res = linprog(np.r_[np.zeros(p), -1.0], A_ub=A, b_ub=sign * offset,
                  bounds=[(None, None)] * p + [(None, typical)], method="highs")
    if res.status != 0 or not res.x[-1] > 0:
        return beta
    b_in, t = res.x[:p], float(res.x[-1])
    e_in, e_out = sign * (offset + X @ b_in), sign * (offset + X @ beta)
    # largest lam in [0, 1] with e_in + lam (e_out - e_in) >= t / 2 on every row
    d = e_out - e_in
    neg = d < 0
    lam = float(np.min(np.r_[1.0, (t / 2 - e_in[neg]) / d[neg]])) if neg.any() else 1.0
    b = b_in + max(lam, 0.0) * (beta - b_in)
    return b if _in_support(family, y, w, offset + X @ b, psi) else b_in


def glm_irls(X, y, w, offset, family, beta0=None, max_iter=100, psi=None, start_only=False):
    """Maximum-likelihood GLM at fixed psi by Newton steps with step halving; returns
    (beta, loglik without the data-only constant, information X'WX).

    ``start_only`` (a starting point for the GLMM): stop once the Newton decrement s'I^{-1}s is
    below 1e-8 (|l| + 1) after taking that step unchecked (beta then within about 1e-8 of its
    limit; no final information matrix, the second and third results are None)."""
    p = X.shape[1]
    if beta0 is None:
        beta = dense.lstsq(X, start_eta(family, y, w) - offset) if p else np.zeros(0)
        beta = _support_start(X, y, w, offset, family, beta, psi)
    else:
        beta = np.asarray(beta0, float).copy()
    ll, s, W, _ = family.eta_derivs(y, offset + X @ beta, w, psi, 2)
    obj = -ll.sum()
    for _ in range(max_iter):
        info = X.T @ (np.maximum(W, 1e-300)[:, None] * X)
        step_dir = dense.solve_pd(info, X.T @ s) if p else np.zeros(0)
        if start_only and float(s @ (X @ step_dir)) < 1e-8 * (abs(obj) + 1.0):
            return beta + step_dir, None, None
        t = 1.0
        for _ in range(40):
            b_new = beta + t * step_dir
            ll_n, s_n, W_n, _ = family.eta_derivs(y, offset + X @ b_new, w, psi, 2)
            if np.isfinite(ll_n.sum()) and -ll_n.sum() <= obj + 1e-12 * abs(obj):
                break
            t *= 0.5
        else:
            break
        change = obj + ll_n.sum()
        beta, ll, s, W, obj = b_new, ll_n, s_n, W_n, -ll_n.sum()
        if change < 1e-13 * (abs(obj) + 1.0):
            break
    info = X.T @ (np.maximum(W, 1e-300)[:, None] * X)
    return beta, float(ll.sum()), info


def _glm_hessian(X, y, w, offset, family, beta, psi):
    """(l, gradient, negative Hessian) of the log-likelihood over (beta, psi), exact."""
    eta = offset + X @ beta
    ll, s, W, _ = family.eta_derivs(y, eta, w, psi, 2)
    pd_ = family.psi_derivs(y, eta, w, psi, second=True)
    k = len(pd_)
    p = X.shape[1]
    g = np.concatenate([X.T @ s, [d[0].sum() for d in pd_]])
    J = np.empty((p + k, p + k))
    J[:p, :p] = X.T @ (W[:, None] * X)
    for j, d in enumerate(pd_):
        J[:p, p + j] = J[p + j, :p] = -(X.T @ d[1])
    if k == 1:
        J[p, p] = -float(np.sum(pd_[0][3]))
    else:  # cross terms (t's log sigma and log df)
        J[p:, p:] = -family.psi_hessian(y, eta, w, psi, summed=True)
    return float(ll.sum()), g, J


def _modified_newton_for(family) -> bool:
    """Whether ``glm_ml`` replaces an indefinite Hessian by its absolute-eigenvalue modification
    (submodels and the newer families, whose GLM likelihoods are not concave far from the optimum;
    the block-diagonal surrogate drops the cross terms and needs tens of steps there)."""
    return bool(getattr(family, "composite", False)) or family.name in ("betabinomial", "tweedie", "ordbeta")


_MODIFIED_NEWTON = _modified_newton_for


def _modified_newton(J, g):
    """A Newton direction with J's eigenvalues replaced by their absolute values (floored at 1e-8
    of the largest): the exact curvature's directions and scales, a step of ascent; None when J
    is not finite."""
    if not np.all(np.isfinite(J)) or not np.all(np.isfinite(g)):
        return None
    ev, Q = np.linalg.eigh(0.5 * (J + J.T))
    a = np.abs(ev)
    top = float(a.max(initial=0.0))
    if not top > 0:
        return None
    a = np.maximum(a, 1e-8 * top)
    return Q @ ((Q.T @ g) / a)


def glm_ml(X, y, w, offset, family, max_iter=200, tol=1e-13, final=True):
    """Joint maximum likelihood over (beta, psi) for a family with extra parameters.

    Start: beta by a few IRLS steps at the moment estimate of psi, then Newton steps on
    (beta, psi) with the exact Hessian (a positive-definite block-diagonal surrogate where it is
    not) and step halving, until the Newton decrement g'J^{-1}g (the predicted gain in l) falls
    below tol (|l| + 1) (a looser tol for a GLMM's starting values).
    Returns (beta, psi, loglik without the data-only constant, negative Hessian over (beta, psi));
    with ``final=False`` (a start: only beta and psi are used) the last full Newton step is not
    followed by another evaluation of the Hessian, and the last two results are those before it.
    """
    p = X.shape[1]
    eta0 = start_eta(family, y, w)
    beta = dense.lstsq(X, eta0 - offset) if p else np.zeros(0)
    psi_m = family.psi_start(y, family.link.inverse(eta0), w)
    if not _in_support(family, y, w, offset + X @ beta, psi_m):
        # the least-squares start leaves the mean space (e.g. inverse link): a constant predictor
        mu_bar = family.link.inverse(eta0).mean()
        beta = dense.lstsq(X, np.full(len(y), float(family.link.link(mu_bar))) - offset) if p else beta
        beta = _support_start(X, y, w, offset, family, beta, psi_m)
    psi = family.psi_start(y, family.link.inverse(offset + X @ beta), w)
    beta, _, _ = glm_irls(X, y, w, offset, family, beta0=beta, psi=psi, max_iter=4)
    psi = family.psi_start(y, family.link.inverse(offset + X @ beta), w)
    z = np.concatenate([beta, psi])
    ll, g, J = _glm_hessian(X, y, w, offset, family, beta, psi)
    for _ in range(max_iter):
        last = False
        try:
            step_dir = dense.solve_pd(J, g)
            # quadratic convergence: after this full step the error is about the decrement squared
            last = float(g @ step_dir) < tol * (abs(ll) + 1.0)
        except (linalg.LinAlgError, ValueError):
            step_dir = _modified_newton(J, g) if _MODIFIED_NEWTON(family) else None
        if step_dir is None:
            eta = offset + X @ z[:p]
            W = family.eta_derivs(y, eta, w, z[p:], 2)[2]
            Js = np.zeros_like(J)
            Js[:p, :p] = X.T @ (np.maximum(W, 1e-300)[:, None] * X)
            d = np.abs(np.diag(J)[p:])
            Js[p:, p:] = np.diag(np.where(d > 1e-8, d, 1.0))
            step_dir = dense.solve_pd(Js, g)
        if last:
            z_new = z + step_dir
        else:
            t = 1.0
            for _ in range(50):
                z_new = z + t * step_dir
                ll_n = float(np.sum(family.eta_derivs(y, offset + X @ z_new[:p], w, z_new[p:], 2)[0]))
                if np.isfinite(ll_n) and ll_n >= ll - 1e-12 * abs(ll):
                    break
                t *= 0.5
            else:
                break
        z = z_new
        if last and not final:
            break
        ll, g, J = _glm_hessian(X, y, w, offset, family, z[:p], z[p:])
        if last:
            break
    return z[:p], z[p:], ll, J


def _fit_glm(design, family, reml, opt):
    X, y, w, off = design.X, design.y, design.w, design.offset
    n, p = X.shape
    if _is_lmm(family):
        sw = np.sqrt(w)
        beta, *_ = linalg.lstsq(X * sw[:, None], (y - off) * sw)
        rss = float(np.sum(w * (y - off - X @ beta) ** 2))
        if _exact_fit(rss, y - off, w):
            return _exact_lm(design, beta, opt)
        sigma = np.sqrt(rss / (n - p if reml else n))
        ll = float(-0.5 * (n * np.log(2 * np.pi * sigma**2) + rss / sigma**2) + 0.5 * np.sum(np.log(w)))
        vcov = sigma**2 * linalg.inv(X.T @ (w[:, None] * X)) if p else np.zeros((0, 0))
        return FitState(beta, np.zeros(0), np.zeros(0), vcov, -2 * ll, ll, float(sigma), opt)
    const = float(np.sum(family.loglik_const(y, w)))
    if family.n_psi:
        y = _read_only(y)
        beta, psi, ll_var, J = glm_ml(X, y, w, off, family)
        ll = ll_var + const
        vcov = _inv_block(J, p)
        sigma = family.dispersion(psi) if _scalar_sigma(family) else None
        # a model with submodels keeps the joint information over (beta, psi) for their SEs
        hess = (J, np.zeros(0, bool)) if getattr(family, "composite", False) else None
        st = FitState(beta, np.zeros(0), np.zeros(0), vcov, -2 * ll, ll, sigma, opt, psi=psi, hessian=hess)
        g = _glm_hessian(X, y, w, off, family, beta, psi)[1]
        _gradient_check(st, opt, g, J)
        return st
    beta, ll_var, info = glm_irls(X, y, w, off, family)
    ll = ll_var + const
    vcov = linalg.inv(info)
    return FitState(beta, np.zeros(0), np.zeros(0), vcov, -2 * ll, ll, None, opt)


EXACT_FIT_TOL = 1e-9  # residual SD below this times the response's scale: an exact fit


def _exact_fit(rss, y, w) -> bool:
    """True when the residual sum of squares is zero to rounding: sqrt(rss / sum w) is at most
    EXACT_FIT_TOL times the largest |y| (a constant response, a saturated model)."""
    scale = float(np.max(np.abs(y), initial=0.0))
    return bool(np.sqrt(rss / max(float(np.sum(w)), 1e-300)) <= EXACT_FIT_TOL * max(scale, 1e-300))


def _exact_lm(design, beta, opt) -> FitState:
    """A linear model that reproduces the response exactly (as R's lm: residual SD 0, standard
    errors 0, the likelihood unbounded): logLik = +inf and a DegenerateFitWarning."""
    n, p = design.X.shape
    st = FitState(beta, np.zeros(0), np.zeros(0), np.zeros((p, p)), -np.inf, np.inf, 0.0, opt)
    what = "the response is constant" if np.ptp(design.y - design.offset) == 0 else "the model is saturated"
    st.warnings.append(DegenerateFitWarning(
        f"essentially perfect fit ({what}): {p} fixed-effect parameter(s) reproduce all {n} rows, so the "
        f"residual SD and the standard errors are 0, z values and p-values are not available (NA) and the "
        f"likelihood is unbounded (logLik = +inf); check the response, or use fewer parameters than rows"
    ))
    return st


def _inv_block(H, p):
    """The leading p x p block of H^{-1} (pseudo-inverse if H is singular), symmetrised; NaN
    when H is not finite (a failed Hessian)."""
    if not np.all(np.isfinite(H)):
        return np.full((p, p), np.nan)
    try:
        inv = linalg.inv(H)
    except linalg.LinAlgError:
        inv = linalg.pinv(H)
    V = inv[:p, :p]
    return 0.5 * (V + V.T)


def _gradient_check(st, opt, g, J):
    """Newton step J^{-1} g at the GLM optimum: a warning above GRAD_TOL."""
    try:
        step = linalg.solve(J, g)
    except (linalg.LinAlgError, ValueError):
        step = g
    opt.max_grad = float(np.max(np.abs(step))) if step.size else 0.0
    if not np.isfinite(opt.max_grad) or opt.max_grad > GRAD_TOL:
        opt.converged = False
        st.warnings.append(ConvergenceWarning(
            f"model may not have converged: the Newton step at the optimum is {opt.max_grad:.2g} "
            f"(tolerance {GRAD_TOL:g})"
        ))


# ---------------------------------------------------------------------------- LMM
def _check_lmm_residual(design):
    """Refuse a linear mixed model whose response the fixed effects already reproduce exactly
    (a constant response, or as many fixed effects as distinct patterns): theta is relative to
    a residual SD of 0, so no variance component is defined."""
    X, y, w = design.X, design.y - design.offset, design.w
    sw = np.sqrt(w)
    beta = dense.lstsq(X * sw[:, None], y * sw) if X.shape[1] else np.zeros(0)
    rss = float(np.sum(w * (y - X @ beta) ** 2))
    if _exact_fit(rss, y, w):
        what = "the response is constant" if np.ptp(y) == 0 else "the fixed effects reproduce every row"
        raise FitError(
            f"the fixed effects fit the response exactly ({what}; {design.n} rows, {X.shape[1]} fixed-effect "
            f"parameters, residual variance 0): a linear mixed model has no residual or random-effect "
            f"variance to estimate; fit it without random effects, or check the response"
        )


def _fit_lmm(design, reml, opt, start):
    _check_lmm_residual(design)
    prob = LMMProblem(design, reml)
    tm = prob.thetamap
    lb = tm.lower_bounds()
    th0 = prob.start_theta() if start is None else np.maximum(start, lb)
    stage = "profiled REML" if reml else "profiled ML"
    logged = np.zeros(tm.n, bool)
    if tm.any_structured:
        theta, logged = _minimize_log_sd(prob, th0, lb, opt, stage)
    else:
        jac = prob.objective_and_gradient if prob.has_gradient else None
        theta, _ = minimize(prob.objective, th0, lb, opt, stage, jac=jac)
        theta = _lmm_off_boundary(prob, theta, lb, opt, stage)
    sol = prob.solution(theta)
    vcov = sol.sigma**2 * dense.cho_solve_lower(sol.RX, np.eye(prob.p)) if prob.p else np.zeros((0, 0))
    g = np.array(prob.objective_and_gradient(theta)[1], float)
    g[logged] *= theta[logged]  # the optimiser's coordinates (its inverse Hessian is in them)
    free = (theta > lb + 1e-8) & ~(logged & (theta == 0.0))
    opt.max_grad = newton_step_size(opt, g, free)
    if prob.system.qr:  # conditional variances given beta: the factor of the random-effects block alone
        cp_u = prob.system.crossprods(design.w, None)
        F = prob.system.factor(cp_u, theta, tm)
    else:  # one term: its diagonal blocks do not involve X
        cp_u, F = prob.cp, prob._factor(np.asarray(theta, float))
    cv = [sol.sigma**2 * b for b in prob.system.cond_var(F, cp_u, design.terms)]
    ll = sol.loglik
    st = FitState(sol.beta, theta, sol.u, vcov, sol.deviance, ll, sol.sigma, opt, cond_var=cv)
    if logged.any() and np.max(theta[logged]) > RESIDUAL_ABSORBED:
        # the structure's own variances absorb the residual one: the optimum is sigma -> 0, the
        # flat end of a ridge (glmmTMB stops there too), not a failure to converge
        st.warnings.append(SingularFitWarning(
            f"boundary (singular) fit: the residual SD ({sol.sigma:.2g}) is near 0, absorbed by the "
            f"variances of the {', '.join(t.label for t in design.terms if t.structure != 'us')} term; "
            f"a structure with a single variance (ar1, homcs) identifies it"
        ))
    elif opt.max_grad > GRAD_TOL:
        st.warnings.append(ConvergenceWarning(
            f"model may not have converged: the scaled gradient (Newton step) at the optimum is "
            f"{opt.max_grad:.2g} (tolerance {GRAD_TOL:g})"
        ))
    return st


def _lmm_off_boundary(prob, theta, lb, opt, stage):
    """``_lmm_off_boundary_once`` until no restart improves the criterion (at most
    BOUNDARY_ROUNDS; see ``_off_boundary``)."""
    for _ in range(BOUNDARY_ROUNDS):
        new = _lmm_off_boundary_once(prob, theta, lb, opt, stage)
        if new is theta:
            break
        theta = new
    return theta


def _lmm_off_boundary_once(prob, theta, lb, opt, stage):
    """lme4's restart_edge for the profiled criterion: SDs that ended at 0 are moved inside.

    The criterion's slope in a scalar term's theta_j is exactly 0 at theta_j = 0 (it is even in
    theta_j), so a gradient method that lands there stays, although the optimum may be inside (a
    gaussian fit of lme4's tests stopped 0.013 log-likelihood units short with both SDs at 0).
    Try each zero SD, and all of them together, at the values of BOUNDARY_SCAN (relative to the
    residual SD); from the best point that lowers the criterion, optimise again and keep the better
    optimum."""
    tm = prob.thetamap
    at0 = np.flatnonzero(tm.diag_mask() & (theta <= lb + 1e-8))
    if not at0.size:
        return theta
    f0 = prob.objective(theta)
    best_f, best = f0, None
    groups = [[j] for j in at0] + ([list(at0)] if at0.size > 1 else [])
    cands = []
    for js in groups:
        for c in BOUNDARY_SCAN:
            th = theta.copy()
            th[js] = c
            cands.append(th)
    for th in cands + _mirrored_candidates(tm, theta, at0, np.ones(tm.n)):
        f = prob.objective(th)
        if f < best_f - 1e-6:
            best_f, best = f, th
    if best is None:
        return theta
    jac = prob.objective_and_gradient if prob.has_gradient else None
    floor = _restart_floor(lb, theta, best)
    again, f1 = minimize(prob.objective, best, floor, opt, stage + " (restart off the boundary)", jac=jac)
    if _at_floor(again, floor, lb):
        again, f1 = minimize(prob.objective, again, lb, opt, stage + " (restart off the boundary)", jac=jac)
    return again if f1 < f0 - 1e-8 else theta


LOG_SD_FLOOR = np.log(1e-10)  # log-coordinate floor of a structured term's relative SD
RESIDUAL_ABSORBED = 1e3  # a structured term's SD this many times the residual SD: sigma -> 0
# stop the log-SD optimisation once this many evaluations lowered the criterion (a deviance) by
# less than this in total: where a structure absorbs the residual variance (cs, toep) the optimum
# is the flat end of a ridge, and L-BFGS-B spent half its evaluations (ar1_sim_cs: 50 of 97)
# on line searches trading 3e-6 of deviance in rounding-level steps
LOG_SD_STALL = (10, 1e-5)


def _minimize_log_sd(prob, th0, lb, opt, stage):
    """The profiled LMM criterion over theta with the SDs of structured terms on the log scale.

    In the profiled criterion theta is relative to the residual SD, so when a structure absorbs
    the residual variance (cs, toep: glmmTMB's residual SD ends near 2e-4) the optimum lies at
    theta -> infinity and L-BFGS-B creeps along a flat ridge; in log theta (glmmTMB's own scale)
    the same ridge is reached in a few steps. d/dlog theta_j = theta_j d/dtheta_j. A relative SD
    that goes to 0 stops at exp(LOG_SD_FLOOR) = 1e-10 and is reported as 0 (a singular fit).
    Returns theta and the mask of the log-scale entries.
    """
    tm = prob.thetamap
    logged = np.zeros(tm.n, bool)
    for k in range(len(tm.structs)):
        if tm.structured(k):
            logged[tm.starts[k] : tm.starts[k + 1]] = tm.structs[k].sd_mask()

    def to_theta(x):
        th = np.array(x, float)
        th[logged] = np.exp(x[logged])
        return th

    def objective(x):
        return prob.objective(to_theta(x))

    def objective_and_gradient(x):
        th = to_theta(x)
        f, g = prob.objective_and_gradient(th)
        g = np.array(g, float)
        g[logged] *= th[logged]
        return f, g

    x0 = np.array(th0, float)
    x0[logged] = np.log(np.maximum(th0[logged], 1e-8))
    xlb = np.array(lb, float)
    xlb[logged] = LOG_SD_FLOOR
    x, _ = minimize(objective, x0, xlb, opt, stage, jac=objective_and_gradient, stall=LOG_SD_STALL)
    theta = to_theta(x)
    theta[logged & (x <= LOG_SD_FLOOR + 1e-8)] = 0.0
    return theta, logged


# ---------------------------------------------------------------------------- GLMM
def _glm_start(design, family):
    """(beta, psi) of the GLM without random effects: the starting point of the GLMM fit. With
    extra parameters: a few IRLS steps at the moment estimate of psi, then psi's moment estimate
    again (the GLMM optimiser does the joint fit; the GLM's own ML psi would absorb the random
    effects' variance anyway)."""
    X, y, w, off = design.X, _read_only(design.y), design.w, design.offset
    if family.n_psi:
        if GLM_START_FULL or getattr(family, "composite", False):
            # submodels: the GLM's joint ML (exact Newton) starts every submodel coefficient well
            beta, psi, _, _ = glm_ml(X, y, w, off, family, tol=GLM_START_TOL, final=False)
        else:
            beta, psi, _, _ = glm_ml(X, y, w, off, family, max_iter=0)
        return beta, psi
    return glm_irls(X, y, w, off, family, start_only=True)[0], None


def _fit_glmm(design, family, n_agq, opt, start):
    """Direct start (GLM beta and psi as glmmTMB; theta from ``_theta_start``); if that ends with
    a convergence warning, refit from lme4's nAGQ = 0 stage and keep the better optimum.

    ``start`` (a warm start, e.g. from ``refit``) is [theta, beta, psi]."""
    prob = GLMMProblem(design, family, n_agq=n_agq)
    tm = prob.thetamap
    nt, p = tm.n, prob.p
    if start is not None:
        start = np.asarray(start, float)
        theta0, beta0 = np.maximum(start[:nt], tm.lower_bounds()), start[nt : nt + p]
        psi0 = start[nt + p :] if family.n_psi else None
        if family.n_psi and len(psi0) != family.n_psi:
            beta_glm, psi0 = _glm_start(design, family)
        return _off_boundary(prob, _glmm_from(prob, theta0, beta0, psi0, opt), opt)
    if n_agq > 1:
        # AGQ has no exact gradient: start it at the Laplace optimum, a few quasi-Newton steps away
        lap = _fit_glmm(design, family, 1, opt, None)
        prob.u = lap.u.copy()
        return _glmm_from(prob, lap.theta, lap.beta, lap.psi if family.n_psi else None, opt,
                          scales=_scales_from_hessian(lap, prob))
    beta_glm, psi_glm = _glm_start(design, family)
    theta0 = _theta_start(prob, beta_glm, psi_glm)
    if getattr(family, "composite", False) and family.zero is not None and prob._diag:
        theta0 = _theta_start_scan(prob, theta0, beta_glm, psi_glm)
    # (a single scalar term's evaluations are cheap: a better beta start does not pay for itself)
    beta0 = beta_glm if prob._diag else _beta_start(prob, theta0, beta_glm, psi_glm)
    first = _off_boundary(prob, _glmm_from(prob, theta0, beta0, psi_glm, opt), opt)
    if not first.warnings:
        return first
    opt2 = OptSummary(**{k: getattr(opt, k) for k in ("method", "ftol", "gtol", "maxiter", "fd_step")})
    try:  # the second attempt only competes with the first: its failure keeps the first
        theta0, beta0 = _stage0(prob, beta_glm, psi_glm, opt2)
        prob.reset_modes()
        second = _off_boundary(prob, _glmm_from(prob, theta0, beta0, psi_glm, opt2), opt2)
    except NUMERICAL_FAILURES:
        return first
    second.opt.stages = opt.stages + second.opt.stages
    # a clean second fit replaces a warned first one only where it is as good: a fit without a
    # warning can still be a worse (boundary) optimum (at scipy 1.10 the first Poisson random-slope
    # fit of sleepstudy warned, and the second, 59 logLik units lower, was taken for being clean)
    better = second.deviance < first.deviance - 1e-8
    as_good_and_clean = not second.warnings and second.deviance <= first.deviance + 1e-6
    return second if better or as_good_and_clean else first


THETA_START_MIN, THETA_START_MAX = 0.05, 3.0
GLM_START_TOL = 1e-8  # submodels: the GLM start's Newton decrement tolerance (relative to |l| + 1)
GLM_START_FULL = False  # the GLMM optimiser does the joint (beta, psi) fit; a moment psi is start enough


def _beta_start(prob, theta0, beta_glm, psi):
    """beta^(theta0): the fixed effects that go with the starting theta, from one penalised IRLS
    over (u, beta) (lme4's nAGQ = 0 fit at theta0). With random effects the GLM's beta is biased
    as a start (a log-link intercept by about sum var / 2, a logit slope towards zero); the
    GLM's beta is kept if PIRLS fails."""
    try:
        beta, _ = prob.beta_hat_stage0(theta0, beta_glm, psi=psi)
    except Exception:
        beta = None
    if beta is None or not np.all(np.isfinite(beta)):
        prob.reset_modes()
        return beta_glm
    return beta  # prob.u holds the modes at (beta, theta0): the warm start of the next PIRLS


def _theta_start(prob, beta, psi):
    """Starting theta: 1 on the diagonals (glmmTMB's start) except for scalar terms, which get a
    moment estimate at the GLM fit. Per level j of the term, one Newton step from b_j = 0 gives
    b^_j = S_j / I_j (score and information of the level's rows) with sampling variance 1 / I_j,
    so var(b) ~ mean(b^_j^2) - mean(1 / I_j), clipped to [THETA_START_MIN, THETA_START_MAX]
    (a start at 1 far above a small optimum sends the first quasi-Newton step onto the bound)."""
    tm = prob.thetamap
    theta = tm.initial()
    eta = prob.offset + prob.X @ beta
    try:
        _, s, W, _ = prob.family.eta_derivs(prob.y, eta, prob.w, psi, 2)
    except Exception:
        return theta
    W = np.maximum(W, 0.0)
    for k, t in enumerate(prob.terms):
        if t.q != 1:
            continue
        z = t.z[:, 0]
        S = np.bincount(t.refs, z * s, minlength=t.nlev)
        info = np.bincount(t.refs, z * z * W, minlength=t.nlev)
        ok = info > 1e-8
        if ok.sum() < 2:
            continue
        var = np.mean((S[ok] / info[ok]) ** 2) - np.mean(1.0 / info[ok])
        sd = np.sqrt(var) if np.isfinite(var) and var > 0 else THETA_START_MIN
        theta[tm.starts[k]] = float(np.clip(sd, THETA_START_MIN, THETA_START_MAX))
    return theta


THETA_SCAN = (1.0, 0.5, 0.25)


def _theta_start_scan(prob, theta0, beta, psi):
    """The best of theta0 scaled by THETA_SCAN, by the Laplace deviance at the GLM's (beta, psi)
    (one PIRLS each). With a zero model the moment estimate of ``_theta_start`` (its score and
    information are the composed density's at the GLM fit, where the zero model has absorbed
    part of the between-group variation) can be several times the optimum, and the first
    quasi-Newton steps then overshoot onto the bound."""
    best, best_th, best_u, last = np.inf, theta0, None, None
    for f in THETA_SCAN:
        th = np.maximum(theta0 * f, prob.thetamap.lower_bounds())
        try:
            dv = prob.laplace_deviance(beta, th, psi=psi)
        except NUMERICAL_FAILURES:
            continue
        last = th
        if np.isfinite(dv) and dv < best:
            best, best_th, best_u = dv, th, prob.u.copy()
    if best_u is not None and last is not best_th:
        # the fit starts with PIRLS at the chosen point: from its mode (one evaluation), not from
        # a first-order prediction off the last point scanned
        prob.u, prob._last = best_u, None
    return best_th


BOUNDARY_ROUNDS = 3  # a restart that leaves one boundary face may stop on another (SD 0 -> correlation -1)


def _off_boundary(prob, st, opt):
    """``_off_boundary_once`` until no restart improves the fit (at most BOUNDARY_ROUNDS): moving
    the intercept SD off 0 can end with the slope's own Cholesky entry at 0 (a correlation of
    +-1), another boundary to check (benchmarks/boundary_study.py: 3 of 200 fits)."""
    for _ in range(BOUNDARY_ROUNDS):
        new = _off_boundary_once(prob, st, opt)
        if new is st:
            break
        st = new
    return _interior_restart(prob, st, opt)


def _off_boundary_once(prob, st, opt):
    """A variance component that ends at 0 while the deviance decreases away from 0.

    For a scalar term the gradient in theta_j vanishes at theta_j = 0 (u^_j = 0 there, and the
    deviance is even in theta_j), so a bounded quasi-Newton run that steps onto the bound stays
    there although theta_j = 0 may be a maximum along that direction (glmmTMB, on the log-SD
    scale, never reaches 0). Probe the gradient at theta_j = 1e-3: if it is negative, restart from
    the best of a few values of theta_j and keep the better optimum.
    """
    tm = prob.thetamap
    lb = tm.lower_bounds()
    at0 = np.flatnonzero(tm.diag_mask() & (st.theta <= lb + 1e-8))
    if not at0.size or prob.n_agq > 1:
        return st
    best_dev, best_th = st.deviance, None
    for th in _boundary_candidates(prob, st, at0):
        try:
            dv = prob.laplace_deviance(st.beta, th, psi=st.psi)
        except NUMERICAL_FAILURES:
            continue
        if dv < best_dev - 1e-6:
            best_dev, best_th = dv, th
    if best_th is None:
        return st
    opt2 = OptSummary(**{k: getattr(opt, k) for k in ("method", "ftol", "gtol", "maxiter", "fd_step")})
    floor = _restart_floor(lb, st.theta, best_th)
    try:  # a restart that fails keeps the boundary fit (with its warning)
        again = _glmm_from(prob, best_th, st.beta, st.psi, opt2, theta_lb=floor)
        if _at_floor(again.theta, floor, lb):  # the optimum is at (or below) the floor: finish with
            opt3 = OptSummary(**{k: getattr(opt, k) for k in ("method", "ftol", "gtol", "maxiter", "fd_step")})
            again = _glmm_from(prob, again.theta, again.beta, again.psi, opt3)  # the true bounds
    except NUMERICAL_FAILURES:
        return st
    if again.deviance < st.deviance - 1e-8:
        again.opt.stages = st.opt.stages + again.opt.stages
        again.opt.n_eval += st.opt.n_eval
        return again
    return st


BOUNDARY_SCAN = (1.0, 0.3, 0.1, 0.03, 0.01)
MIRROR_SCAN = BOUNDARY_SCAN + (0.003, 0.001)  # an optimum just off 0 (benchmarks/boundary_study.py: 0.0047)
RESTART_FLOOR = 0.1  # a restart keeps SDs it moved off 0 above this fraction of their start at first


def _reset_candidates(prob, theta, at0):
    """For an unstructured term with zero diagonal entries ``at0``: those entries at c / sd(z_j)
    for c in BOUNDARY_SCAN (a coefficient's SD of c on the linear-predictor scale per SD of its
    column), with that term's correlations reset to 0."""
    tm, out = prob.thetamap, []
    for k, t in enumerate(prob.terms):
        if tm.structured(k) or t.q == 1:
            continue
        seg = np.arange(tm.starts[k], tm.starts[k + 1])
        rows, cols = tm._order[k]
        zero = [j for j, (a, b) in zip(seg, zip(rows, cols)) if a == b and j in set(at0.tolist())]
        if not zero:
            continue
        scale = np.array([np.std(t.z[:, rows[j - seg[0]]]) for j in zero])
        scale = np.where(scale > 1e-8, scale, 1.0)
        for c in BOUNDARY_SCAN:
            th = np.array(theta, float)
            th[[j for j, (a, b) in zip(seg, zip(rows, cols)) if a != b]] = 0.0
            th[zero] = c / scale
            out.append(th)
    return out


def _interior_restart(prob, st, opt):
    """One restart from inside, whether or not the deviance there is lower: a random-slope fit
    with a zero diagonal entry can sit in a local optimum whose basin the boundary probes never
    leave (benchmarks/boundary_study.py: (T11, T21, T22) = (0.009, -0.11, 0) at logLik -215.636,
    while (0.080, -0.033, 0.108) reaches -215.627, and every probe next to the first is worse).
    From the lowest-deviance ``_reset_candidates`` point (correlations 0, the zero SDs moved
    in), optimise, check that optimum's own boundary, and keep the better fit."""
    tm = prob.thetamap
    lb = tm.lower_bounds()
    at0 = np.flatnonzero(tm.diag_mask() & (st.theta <= lb + 1e-8))
    if not at0.size or prob.n_agq > 1:
        return st
    best_dev, best_th = np.inf, None
    for th in _reset_candidates(prob, st.theta, at0):
        try:
            dv = prob.laplace_deviance(st.beta, th, psi=st.psi)
        except NUMERICAL_FAILURES:
            continue
        if dv < best_dev:
            best_dev, best_th = dv, th
    if best_th is None:
        return st
    opt2 = OptSummary(**{k: getattr(opt, k) for k in ("method", "ftol", "gtol", "maxiter", "fd_step")})
    floor = _restart_floor(lb, st.theta, best_th)
    try:
        other = _glmm_from(prob, best_th, st.beta, st.psi, opt2, theta_lb=floor)
        if _at_floor(other.theta, floor, lb):
            other = _glmm_from(prob, other.theta, other.beta, other.psi, opt2)
    except NUMERICAL_FAILURES:
        return st
    if not other.deviance < st.deviance - 1e-8:
        return st
    for _ in range(BOUNDARY_ROUNDS):
        new = _off_boundary_once(prob, other, opt)
        if new is other:
            break
        other = new
    other.opt.stages = st.opt.stages + other.opt.stages
    other.opt.n_eval += st.opt.n_eval
    return other


def _at_floor(theta, floor, lb) -> bool:
    """Whether an SD kept off 0 by ``_restart_floor`` ended on that floor."""
    raised = floor > lb
    return bool(np.any(raised & (np.asarray(theta) <= floor + 1e-10 * np.maximum(1.0, np.abs(floor)))))


def _restart_floor(lb, theta, start):
    """Lower bounds for a restart from ``start``: SDs that were at their bound 0 in ``theta`` and
    are positive in ``start`` stay above RESTART_FLOOR x their start in a first run. The deviance
    is even in such an SD, so its slope vanishes at 0: a quasi-Newton run whose first step lands
    on the bound stops there, even from a point where the deviance decreases inward
    (benchmarks/boundary_study.py: 2 of 200 random-slope fits)."""
    floor = np.array(lb, float)
    moved = (np.asarray(theta) <= lb + 1e-8) & (np.asarray(start) > lb) & np.isfinite(lb)
    floor[moved] = lb[moved] + RESTART_FLOOR * (np.asarray(start)[moved] - lb[moved])
    return floor


def _boundary_candidates(prob, st, at0):
    """Interior points to try from a fit whose SD parameters ``at0`` ended at 0.

    1. Where the gradient at theta_j = 1e-3 is negative, those entries at each value of
       BOUNDARY_SCAN (the deviance decreases away from 0 there).
    2. For an unstructured term with a zero diagonal entry the gradient probe can be positive
       although a much better optimum lies inside (a Poisson random-slope model of lme4's tests
       stopped 59 log-likelihood units short): the zero entries at c / sd(z_j) for c in
       BOUNDARY_SCAN (a coefficient's SD of c on the linear-predictor scale per SD of its
       column), with that term's correlations reset to 0.
    """
    tm = prob.thetamap
    th = st.theta.copy()
    th[at0] = 1e-3
    out = []
    try:
        _, g = prob.deviance_and_gradient(st.beta, th, psi=st.psi)
    except NUMERICAL_FAILURES:
        g = None
    if g is not None and np.any(g[at0] < 0):
        move = at0[g[at0] < 0]
        for t in BOUNDARY_SCAN:
            th = st.theta.copy()
            th[move] = t
            out.append(th)
    out += _reset_candidates(prob, st.theta, at0)
    scales = np.ones(tm.n)
    for k, t in enumerate(prob.terms):
        if not tm.structured(k):
            rows, _ = tm._order[k]
            sd = np.array([np.std(t.z[:, r]) for r in rows])
            scales[tm.starts[k] : tm.starts[k + 1]] = np.where(sd > 1e-8, sd, 1.0)
    return out + _mirrored_candidates(tm, st.theta, at0, scales)


def _mirrored_candidates(tm, theta, at0, scales):
    """Interior points beside a zero diagonal entry T_aa of an unstructured term, keeping the
    entries below it in column a, once as they are and once with their signs flipped.

    Sigma = T T' does not change when a column of T changes sign, so at T_aa = 0 both signs of
    T_{ra} (r > a) are the same point, and the optimiser keeps whichever sign it had; moving
    T_aa off 0 makes the correlation of coefficients a and r follow that sign. If the better
    optimum has the other sign (a random-slope model with a correlation near +-1), no probe along
    T_aa alone finds it (benchmarks/boundary_study.py found 4 such fits in 12). Candidates:
    T_aa = c / scale_aa for c in BOUNDARY_SCAN, with column a below the diagonal flipped or not;
    when that column is (near) 0 as well (every SD at 0), the perfectly correlated directions
    T_ra = +-c / scale_r instead (an optimum at a correlation of +-1 is not reached from
    uncorrelated starts).
    """
    out = []
    zero = set(at0.tolist())
    for k in range(len(tm.structs)):
        if tm.structured(k):
            continue
        seg = np.arange(tm.starts[k], tm.starts[k + 1])
        rows, cols = tm._order[k]
        for j, a, b in zip(seg, rows, cols):
            if a != b or j not in zero:
                continue
            below = [i for i, r, c in zip(seg, rows, cols) if c == a and r > a]
            if not below:
                continue
            flat = np.max(np.abs(theta[below])) * scales[below].min() < 1e-4  # column a is all (near) 0
            for sign in (1.0, -1.0):
                for c in MIRROR_SCAN:
                    th = np.array(theta, float)
                    th[below] = sign * (c / scales[below] if flat else th[below])
                    th[j] = c / scales[j]
                    out.append(th)
    return out


def _stage0(prob, beta_glm, psi, opt):
    """lme4's nAGQ = 0: beta inside PIRLS, theta optimised alone at fixed psi (a starting point)."""
    bstate = {"beta": beta_glm.copy()}

    def dev0(th):
        try:
            b, dv = prob.beta_hat_stage0(th, bstate["beta"], psi=psi)
        except Exception:
            return np.inf
        bstate["beta"] = b
        return dv

    opt0 = OptSummary(ftol=1e-8, gtol=1e-4)
    theta0, _ = minimize(dev0, prob.thetamap.initial(), prob.thetamap.lower_bounds(), opt0, "nAGQ=0")
    opt.stages += opt0.stages
    opt.n_eval += opt0.n_eval
    prob.reset_modes()
    beta0, _ = prob.beta_hat_stage0(theta0, bstate["beta"], psi=psi)
    return theta0, beta0


T_PHI_MIN = 1e-4  # t family: 1/df >= this, i.e. df <= 1e4 (indistinguishable from the normal)


def _t_info_phi(nu):
    """Expected information per unit weight of phi = 1/df in the t density, I(df) df^4, with
    I(df) = [psi'(df/2) - psi'((df+1)/2)]/4 - (df+5)/(2 df (df+1)(df+3)) (about 0.45 at df = 1,
    1.9 at 5, 3.5 as df -> infinity)."""
    from scipy import special

    nu = float(nu)
    info = 0.25 * (special.polygamma(1, nu / 2) - special.polygamma(1, (nu + 1) / 2)) - (nu + 5) / (
        2 * nu * (nu + 1) * (nu + 3))
    return max(float(info) * nu**4, 0.1)


def _psi_whitening(H, k):
    """Upper-triangular R with R'R = H (psi's curvature at the start) when H is finite and
    positive definite; else the square roots of its usable diagonal entries, and 1 wherever
    there is none (no curvature at all, e.g. PIRLS failed at the start: identity scaling).
    Always finite and invertible."""
    if k == 0:
        return np.eye(0)
    if H is not None and np.all(np.isfinite(H)):
        try:
            R = linalg.cholesky(H, lower=False)
            if np.all(np.isfinite(R)):
                return R
        except (linalg.LinAlgError, ValueError):
            pass
    d = np.abs(np.diag(H)) if H is not None else np.ones(k)
    return np.diag(np.sqrt(np.where(np.isfinite(d) & (d > 1e-8), d, 1.0)))


class _PsiCoords:
    """The optimiser's coordinates for psi.

    Every component is whitened linearly, psi = psi0 + Rp^{-1} d, except t's log df when it is
    estimated: along log df the deviance flattens like df^-2 as df grows (a quasi-Newton run that
    starts at a large df stalls there), while in phi = 1/df its curvature stays within a factor
    of about 8 for df in [1, infinity) (``_t_info_phi``). So that component is optimised as
    phi = phi0 + d / s, bounded below by T_PHI_MIN, and mapped back to psi = -log(phi).
    """

    def __init__(self, prob, psi0, Hp):
        fam = prob.family
        self.k = k = fam.n_psi
        self.psi0 = None if psi0 is None else np.asarray(psi0, float).copy()
        self.df_idx = getattr(fam, "t_df_index", None)  # t with df estimated (also under a dispersion model)
        lin = [j for j in range(k) if j != self.df_idx]
        self.lin = np.asarray(lin, int)
        self.Rp = _psi_whitening(None if Hp is None else Hp[np.ix_(lin, lin)], len(lin))
        if self.df_idx is not None:
            self.phi0 = max(float(np.exp(-self.psi0[self.df_idx])), T_PHI_MIN)
            self.s = np.sqrt(2.0 * float(np.sum(prob.w)) * _t_info_phi(1.0 / self.phi0))
        self.Rp_inv = linalg.solve_triangular(self.Rp, np.eye(len(lin)), lower=False) if len(lin) else self.Rp
        self.all_lin = self.df_idx is None

    def lower(self):
        lb = np.full(self.k, -np.inf)
        if self.df_idx is not None:
            lb[self.df_idx] = (T_PHI_MIN - self.phi0) * self.s
        return lb

    def to_psi(self, d):
        if not self.k:
            return None
        if self.all_lin:
            return self.psi0 + self.Rp_inv @ d
        psi = self.psi0.copy()
        if len(self.lin):
            psi[self.lin] += self.Rp_inv @ d[self.lin]
        if self.df_idx is not None:
            phi = max(self.phi0 + d[self.df_idx] / self.s, T_PHI_MIN)
            psi[self.df_idx] = -np.log(phi)
        return psi

    def grad(self, d, g_psi):
        if self.all_lin:
            return self.Rp_inv.T @ g_psi
        out = np.empty(self.k)
        if len(self.lin):
            out[self.lin] = self.Rp_inv.T @ g_psi[self.lin]
        if self.df_idx is not None:
            phi = max(self.phi0 + d[self.df_idx] / self.s, T_PHI_MIN)
            out[self.df_idx] = g_psi[self.df_idx] * (-1.0 / phi) / self.s
        return out

    def free(self, psi):
        f = np.ones(self.k, bool)
        if self.df_idx is not None:
            f[self.df_idx] = np.exp(-psi[self.df_idx]) > T_PHI_MIN * (1 + 1e-6)
        return f


def _scales_from_hessian(st, prob):
    """(R, theta scales) for ``_glmm_from`` from a Laplace fit's Hessian (the AGQ stage starts at
    the Laplace optimum, where that Hessian is a better metric than the start-up estimates and
    costs no AGQ evaluations). H is the Hessian of deviance / 2 (``_glmm_vcov``): theta_j is
    scaled by sqrt(2 H_jj) and beta whitened by R'R = 2 H_bb, the deviance's curvature, as
    ``_theta_scales`` and ``_scales`` do at the start. None where it does not apply (a theta on
    its boundary, extra parameters, no Hessian)."""
    if st.hessian is None or prob.family.n_psi:
        return None
    H, free_t = st.hessian
    if not np.all(free_t):
        return None
    nt = len(free_t)
    d = 2.0 * np.diag(H)[:nt]
    if not np.all(np.isfinite(d) & (d > 0)):
        return None
    L = dense.cholesky_lower(np.ascontiguousarray(2.0 * H[nt:, nt:]))
    if L is None:
        return None
    return L.T.copy(), np.clip(np.sqrt(d), 1e-2, 1e3)


def _glmm_from(prob, theta0, beta0, psi0, opt, scales=None, theta_lb=None):
    """Laplace (or AGQ) optimum from (theta0, beta0, psi0); ``theta_lb`` replaces theta's lower
    bounds (a restart off the boundary keeps the moved SDs off 0 in its first run)."""
    design = prob.d
    n_agq = prob.n_agq
    tm = prob.thetamap
    lb_t = tm.lower_bounds() if theta_lb is None else np.asarray(theta_lb, float)
    nt, p = tm.n, len(beta0)
    k = prob.family.n_psi
    # whitening: beta = beta0 + R^{-1} gamma with R'R ~ the Hessian of the deviance in beta (after
    # eliminating u); psi through _PsiCoords (its Hessian conditional on u)
    if scales is None:
        R, Hp, W0 = _scales(prob, beta0, theta0, psi0)
        # a single scalar term: the expected curvature (no evaluation; as good a scale there);
        # with several terms the finite-difference curvature (crossed terms share information
        # that the per-term expected curvature ignores: grouseticks needs 25 evaluations, not 15)
        ts = _theta_scales_expected(prob, theta0, W0) if (THETA_SCALING and prob._diag) else None
        if ts is None:
            ts = _theta_scales(prob, theta0, beta0, psi0) if THETA_SCALING else np.ones(nt)
    else:
        (R, ts), Hp = scales, None
    pc = _PsiCoords(prob, psi0, Hp)
    R_inv = dense.solve_triangular(np.ascontiguousarray(R), np.eye(p), lower=False) if p else np.zeros((0, 0))
    R_inv_t = np.ascontiguousarray(R_inv.T)
    M = prob.__dict__.pop("_joint_start", None) if scales is None else None
    U_inv = _joint_whitening(M) if (M is not None and pc.all_lin) else None
    if U_inv is not None:
        U_inv_t = np.ascontiguousarray(U_inv.T)
        psi0 = np.asarray(psi0, float)

    def to_params(x):
        if U_inv is not None:  # (beta, psi) whitened jointly
            z = U_inv @ x[nt:]
            return x[:nt] / ts, beta0 + z[:p], psi0 + z[p:]
        b = beta0 + R_inv @ x[nt : nt + p]
        return x[:nt] / ts, b, pc.to_psi(x[nt + p :])

    def dev(x):
        th, b, ps = to_params(x)
        return prob.laplace_deviance(b, th, psi=ps)

    def dev_grad(x):
        th, b, ps = to_params(x)
        f, g = prob.deviance_and_gradient(b, th, psi=ps)
        if g is None or not np.isfinite(f) or not np.all(np.isfinite(g)):
            return 1e300, np.zeros_like(x)
        if U_inv is not None:
            return f, np.concatenate([g[:nt] / ts, U_inv_t @ g[nt:]])
        parts = [g[:nt] / ts, R_inv_t @ g[nt : nt + p]]
        if k:
            parts.append(pc.grad(x[nt + p :], g[nt + p :]))
        return f, np.concatenate(parts)

    lb = np.concatenate([lb_t * ts, np.full(p, -np.inf), pc.lower()])
    x0 = np.concatenate([theta0 * ts, np.zeros(p + k)])
    stage = f"AGQ({n_agq})" if n_agq > 1 else "Laplace"
    exact = n_agq == 1 or not prob.family.n_psi  # AGQ: exact gradient without psi
    x, fval = minimize(dev, x0, lb, opt, stage, jac=dev_grad if exact else None)
    theta, beta, psi = to_params(x)
    if exact:
        deviance, g = dev_grad(x)
    else:
        deviance = prob.laplace_deviance(beta, theta, psi=psi)
        g = fd_gradient(dev, x, step=1e-5, lb=lb, central=True)
    free_psi = pc.free(psi) if k else np.zeros(0, bool)
    free = np.concatenate([theta > lb_t + 1e-8, np.ones(p, bool), free_psi])
    opt.max_grad = newton_step_size(opt, g, free)
    u, _, F, cp, *_ = prob.pirls(beta, theta, psi=psi)  # the optimum's modes (memoised)
    cv = prob.system.cond_var(F, cp, design.terms)
    vcov, H = _glmm_vcov(prob, beta, theta, psi, lb_t, free_psi, with_hessian=True)
    sigma = prob.family.dispersion(psi) if _scalar_sigma(prob.family) else None
    st = FitState(beta, theta, u, vcov, deviance, -0.5 * deviance, sigma, opt, cond_var=cv,
                  psi=None if psi is None else np.asarray(psi, float), hessian=H)
    if opt.max_grad > GRAD_TOL:
        st.warnings.append(ConvergenceWarning(
            f"model may not have converged: the scaled gradient (Newton step) at the optimum is "
            f"{opt.max_grad:.2g} (tolerance {GRAD_TOL:g})"
        ))
    if k and not np.all(free_psi):
        st.warnings.append(DegenerateFitWarning(
            f"the t family's df reached its upper limit {1 / T_PHI_MIN:g}: the data show no heavier "
            f"tails than the normal distribution (consider family='gaussian')"
        ))
    return st


THETA_SCALING = True


def _joint_hessian(prob, theta, psi, W, Hp):
    """The deviance's Hessian over (beta, psi) at the modes with u eliminated, for one scalar
    random-effects term (a diagonal u block): with G_i = [W_i x_i, -ds_i/dpsi] (the rows'
    cross derivatives of -l with eta) and per level l, a_l = 1 + theta^2 sum_l W_i z_i^2 and
    g_l = theta sum_l z_i G_i, it is 2 (A - sum_l g_l g_l' / a_l), A = [[X'WX, -X'S], [-S'X, Hp/2]]."""
    t = prob.terms[0]
    n, p = prob.X.shape
    fam = prob.family
    pdv = fam.psi_derivs(prob.y, prob.eta, prob.w, psi, second=False)
    S = np.column_stack([np.broadcast_to(d[1], (n,)) for d in pdv])
    G = np.column_stack([W[:, None] * prob.X, -S])
    z = t.z[:, 0]
    th = float(theta[0])
    a = 1.0 + th * th * np.bincount(t.refs, W * z * z, minlength=t.nlev)
    zt = th * z
    g = np.column_stack([np.bincount(t.refs, zt * G[:, j], minlength=t.nlev) for j in range(G.shape[1])])
    A = np.empty((G.shape[1], G.shape[1]))
    A[:p, :p] = prob.X.T @ (W[:, None] * prob.X)
    A[:p, p:] = -(prob.X.T @ S)
    A[p:, :p] = A[:p, p:].T
    A[p:, p:] = 0.5 * Hp
    if not np.all(a > 0):
        return None
    return 2.0 * (A - g.T @ (g / a[:, None]))


def _joint_whitening(M):
    """U^{-1} for the optimiser's coordinates of (beta, psi) = start + U^{-1} x, with U'U = M the
    deviance's Hessian over (beta, psi) at the start (``_joint_hessian``). None when M is not
    positive definite (then beta and psi are whitened apart)."""
    if M is None or not np.all(np.isfinite(M)):
        return None
    L = dense.cholesky_lower(np.ascontiguousarray(0.5 * (M + M.T)))
    if L is None:
        return None
    try:
        return dense.solve_triangular(np.ascontiguousarray(L.T), np.eye(M.shape[0]), lower=False)
    except (linalg.LinAlgError, ValueError):
        return None


def _theta_scales(prob, theta, beta, psi):
    """Scale factors for the diagonal theta entries: sqrt of the deviance's curvature in theta_j at
    the start (a forward difference of the exact gradient), so that a unit step in the optimiser's
    coordinates is about one standard error, as for the whitened beta; 1 where the curvature is
    not positive (a start in a concave region) and for the off-diagonal entries."""
    tm = prob.thetamap
    ts = np.ones(tm.n)
    f0, g0 = prob.deviance_and_gradient(beta, theta, psi=psi)
    if g0 is None or not np.isfinite(f0):
        return ts
    for j in np.flatnonzero(tm.diag_mask()):
        h = 1e-4 * max(abs(theta[j]), 0.1)
        th = theta.copy()
        th[j] += h
        _, g1 = prob.deviance_and_gradient(beta, th, psi=psi)
        if g1 is None:
            continue
        c = (g1[j] - g0[j]) / h
        if np.isfinite(c) and c > 0:
            ts[j] = float(np.clip(np.sqrt(c), 1e-2, 1e3))
    return ts


def _theta_scales_expected(prob, theta, W):
    """Scale factors for the diagonal theta entries from the expected curvature instead of
    finite differences (no extra evaluations): treating level l's mode as b_l ~ N(0, v_l) with
    v_l = theta^2 + 1/d_l, d_l = sum_i W_i z_i^2 over its rows (W at the starting modes), the
    deviance's expected curvature in theta is sum_l 4 theta^2 / v_l^2; 1 where that is not
    positive (theta = 0) and for the off-diagonal entries."""
    if W is None:
        return None
    tm = prob.thetamap
    ts = np.ones(tm.n)
    W = np.maximum(W, 0.0)
    for k, t in enumerate(prob.terms):
        if tm.structured(k):  # structured terms keep unit scales
            continue
        rows, cols = tm._order[k]
        for j, (a, b) in enumerate(zip(rows, cols)):
            if a != b:
                continue
            th = float(theta[tm.starts[k] + j])
            d = np.bincount(t.refs, W * t.z[:, a] ** 2, minlength=t.nlev)
            ok = d > 1e-12
            if th <= 0 or not ok.any():
                continue
            c = float(np.sum(4.0 * th * th / (th * th + 1.0 / d[ok]) ** 2))
            if np.isfinite(c) and c > 0:
                ts[tm.starts[k] + j] = float(np.clip(np.sqrt(c), 1e-2, 1e3))
    return ts


def _scales(prob, beta, theta, psi):
    """(R, Hp, W): upper-triangular R with R'R = 2 x the beta block of the penalised information at
    (beta, theta, psi) with u eliminated (identity if not positive definite); Hp = -2 d2 l/dpsi2
    at the conditional modes (None without psi or if PIRLS fails); W the rows' weights there."""
    p, k = prob.p, prob.family.n_psi
    try:
        u, b, F, cp, ll, s, W, dW = prob.pirls(beta, theta, psi=psi)
    except Exception:
        return np.eye(p), None, None
    Hp = -2.0 * prob.family.psi_hessian(prob.y, prob.eta, prob.w, psi, summed=True) if k else None
    # submodels: whiten (beta, psi) together (zero-model and count coefficients trade off)
    if (k and getattr(prob.family, "composite", False) and prob._diag
            and len(prob.terms) == 1 and prob.terms[0].q == 1 and Hp is not None):
        prob._joint_start = _joint_hessian(prob, theta, psi, W, Hp)
    sysm = prob.system
    cpx = sysm.crossprods(np.maximum(W, 1e-300), prob.X)
    Fx = sysm.factor(cpx, theta, prob.thetamap)
    if not Fx.ok or p == 0:
        return np.eye(p), Hp, W
    LX = sysm.tail(Fx)
    return np.sqrt(2.0) * LX.T, Hp, W


# families whose psi components may differ between the points of one batched gradient evaluation
# (each component a (K, 1) column against eta (K, n): their formulas broadcast, tested in
# tests/fit/test_batched_gradients.py); the others' psi columns of the Hessian are one gradient each
BATCHED_PSI_FAMILIES = ("ordbeta", "betabinomial", "beta", "gamma")


def _batched_psi(fam):
    """Indices of the psi components ``diag_gradients_near`` may vary per point."""
    if getattr(fam, "composite", False):
        return tuple(fam.rowwise_psi)
    return tuple(range(fam.n_psi)) if fam.name in BATCHED_PSI_FAMILIES else ()


def _glmm_vcov(prob, beta, theta, psi, lb_t, free_psi=None, with_hessian=False):
    """Inverse Hessian of the deviance/2 over (theta, beta, psi) (glmmTMB's sdreport, lme4's
    use.hessian), beta block. theta on the boundary (and t's df at its limit) is held fixed.

    The beta block of the inverse Hessian at the optimum does not depend on how the other
    parameters are parameterised; t's df enters as 1/df, where the deviance is far from flat."""
    nt, p = len(theta), len(beta)
    fam = prob.family
    k = fam.n_psi
    free_t = theta > lb_t + SINGULAR_TOL
    idx_t = np.flatnonzero(free_t)
    m = len(idx_t)
    idx_p = np.flatnonzero(free_psi) if (k and free_psi is not None) else np.arange(k)
    df_idx = getattr(fam, "t_df_index", None)
    pos_df = int(np.flatnonzero(idx_p == df_idx)[0]) if df_idx is not None and df_idx in idx_p else None

    def split(z):
        th = theta.copy()
        th[idx_t] = z[:m]
        ps = None
        if k:
            ps = np.array(psi, float)
            zp = z[m + p :].copy()
            if pos_df is not None:
                zp[pos_df] = -np.log(zp[pos_df])
            ps[idx_p] = zp
        return th, z[m : m + p], ps

    def f(z):
        th, b, ps = split(z)
        return prob.laplace_deviance(b, th, psi=ps)

    zp0 = np.array(psi, float)[idx_p] if k else np.zeros(0)
    if pos_df is not None:
        zp0[pos_df] = np.exp(-zp0[pos_df])
    z0 = np.concatenate([theta[idx_t], beta, zp0])
    # without residual variance (dispformula ~0, W = 1 / 1.5e-8) the exact gradient carries
    # cancellation noise (~1e-4) that swamps forward differences; the deviance itself stays
    # accurate, so its central second differences are used there
    if (prob.n_agq == 1 or not prob.family.n_psi) and not getattr(fam, "disp_fixed", False):

        def in_z(g, z):
            gp = g[nt + p :][idx_p] if k else np.zeros(0)
            if pos_df is not None:
                gp[pos_df] *= -1.0 / z[m + p + pos_df]
            return np.concatenate([g[idx_t], g[nt : nt + p], gp])

        def grad(z):
            th, b, ps = split(z)
            g = prob.deviance_and_gradient(b, th, psi=ps)[1]
            return np.full(z.size, np.nan) if g is None else in_z(g, z)

        H = np.empty((z0.size, z0.size))
        g0 = grad(z0)
        steps = 1e-6 * np.maximum(1.0, np.abs(z0))
        todo = list(range(z0.size))
        if prob._diag and prob.n_agq == 1:
            # theta, beta and the psi components the family evaluates per point (a zero model's
            # coefficients) at once; the other psi columns by the loop below
            rowwise = set(_batched_psi(fam)) if pos_df is None else set()
            ib = np.r_[np.arange(m + p), [m + p + j for j, ip in enumerate(idx_p) if ip in rowwise]].astype(int)
            Z = z0 + np.diag(steps)[ib]
            psis = None
            if len(ib) > m + p:
                psis = np.tile(np.asarray(psi, float), (len(ib), 1))
                psis[:, idx_p] = Z[:, m + p :]
            G = prob.diag_gradients_near(beta, theta, psi, Z[:, m : m + p],
                                         Z[:, 0] if m else np.full(len(ib), theta[0]), psis=psis)
            if G is not None:
                for r, i in enumerate(ib):
                    H[:, i] = (in_z(G[r].copy(), Z[r]) - g0) / steps[i]
                done = set(ib.tolist())
                todo = [i for i in todo if i not in done]
        for i in todo:
            e = np.zeros(z0.size)
            e[i] = steps[i]
            H[:, i] = (grad(z0 + e) - g0) / steps[i]
        H = 0.25 * (H + H.T)
    else:
        H = fd_hessian(f, z0, step=1e-4) / 2.0
    if not np.all(np.isfinite(H)):
        V = np.full((p, p), np.nan)
    else:
        try:
            inv = linalg.inv(H)
        except linalg.LinAlgError:
            inv = linalg.pinv(H)
        V = inv[m : m + p, m : m + p]
        V = 0.5 * (V + V.T)
    return (V, (H, free_t)) if with_hessian else V



def _check_boundary(st: FitState, design):
    tm = ThetaMap.for_terms(design.terms)
    diag = tm.diag_mask()
    if np.any(st.theta[diag] < SINGULAR_TOL):
        st.warnings.append(SingularFitWarning(
            "boundary (singular) fit: a random-effect variance is (near) zero or a correlation is +-1; "
            "see the variance components and consider simplifying the random-effects structure"
        ))


# ---------------------------------------------------------------------------- post-fit checks
# (run once at the optimum, never inside the objective)
SEP_TRIGGER = 1e-7  # a fitted mean this close to its boundary on a boundary row: look for separation
SEP_STRICT = 1e-6  # LP: a row is separated when s_i x_i'd exceeds this (columns scaled to max |x| = 1)
COLLINEAR_COND = 1e10  # condition number of the correlation matrix of beta^ above which to warn
SCALE_TOL = 1e-6  # residual scale / response SD below this: a degenerate (exact) fit


def _post_fit_checks(st: FitState, design, family) -> None:
    """Honest warnings about the optimum: the optimiser's own status, separation, a covariance
    of the fixed effects that is not positive definite or nearly singular, a residual scale of
    (nearly) zero."""
    _check_optimizer(st)
    _check_divergence(st, design)
    if not _check_separation(st, design, family):
        _check_vcov(st, design)
    _check_scale(st, design, family)
    _check_tweedie_power(st, family)


TWEEDIE_P_EDGE = 1e-4  # a tweedie power within this of 2 is at the family's boundary


def _check_tweedie_power(st: FitState, family) -> None:
    """A tweedie fit whose power went to its upper limit 2: without zeros in the response (zeros
    have probability exp(-mu^(2-p) / (phi (2-p))) -> 0 as p -> 2) the likelihood increases
    monotonically towards the Gamma family's (p = 2, shape 1 / phi) and the optimum is that limit;
    the optimiser stops where the likelihood is flat to its tolerance (glmmTMB 1.1.5 too: p =
    1.999995 on tests/data/tweedie_nozero_sim.csv). Say so, with the power reached."""
    base = getattr(family, "base", family)
    if base.name != "tweedie" or st.psi is None:
        return
    power = family.dispersion_extra(st.psi).get("power")
    if power is not None and 2.0 - power < TWEEDIE_P_EDGE:
        st.warnings.append(DegenerateFitWarning(
            f"the tweedie power went to its upper limit 2 (p = {power:.7g}): the likelihood increases "
            f"towards the Gamma family's (p = 2, the limit of this fit), as it does when the response has "
            f"no zeros; consider family='gamma' (same mean model, var = phi mu^2)"
        ))


DIVERGED = 1e8  # |beta_j| x the spread of its column: a linear-predictor effect no fit can mean


def _check_divergence(st: FitState, design) -> None:
    """Fixed effects that ran off to infinity (a non-canonical link's mode on a plateau once gave
    beta ~ -1.7e15 with 'converged'): never reported as a converged fit."""
    X = design.X
    if not X.shape[1] or not X.shape[0]:
        return
    spread = np.maximum(np.max(np.abs(X), axis=0), 1e-300)
    effect = np.abs(np.asarray(st.beta, float)) * spread
    bad = np.flatnonzero(~np.isfinite(effect) | (effect > DIVERGED))
    if bad.size and not any(isinstance(w, ConvergenceWarning) and "diverged" in str(w) for w in st.warnings):
        names = ", ".join(design.xnames[j] for j in bad[:5])
        st.opt.converged = False
        st.warnings.append(ConvergenceWarning(
            f"the fit diverged: fixed effects {names} reached {np.max(np.abs(st.beta[bad])):.3g} (a linear "
            f"predictor beyond {DIVERGED:g}); the estimates are not usable: check the link (a non-canonical "
            f"link needs starting values near the solution), the scale of the predictors and separation"
        ))


def _check_optimizer(st: FitState) -> None:
    """The optimiser reported failure (iteration limit, ...) without a convergence warning yet."""
    if not st.opt.converged and not any(isinstance(w, ConvergenceWarning) for w in st.warnings):
        st.warnings.append(ConvergenceWarning(
            f"model may not have converged: the optimiser stopped before its tolerance was met ({st.opt.message})"
        ))


def _boundary_side(design, family):
    """Per row: -1 if the response sits at the lower boundary of the mean (0), +1 at the upper
    (binomial: all trials successes), 0 inside; None for families/links whose estimates cannot
    diverge that way. Rows with zero weight are 0 and left out by the caller."""
    y, w, lk = design.y, design.w, family.link.name
    if family.name == "binomial" and lk in ("logit", "probit", "cloglog"):
        return np.where(y <= 0, -1, np.where(y >= w, 1, 0))
    if family.name in ("poisson", "nbinom1", "nbinom2") and lk == "log":
        return np.where(y <= 0, -1, 0)
    return None


def _separating_direction(X, side):
    """A direction d of the fixed effects along which the likelihood rises for ever (Konis 2007's
    linear program): s_i x_i'd >= 0 on boundary rows, x_i'd = 0 on interior rows, maximising
    sum s_i x_i'd with |d_j| <= 1 (columns scaled to max |x| = 1). Returns (d in the original
    column scale, number of rows strictly separated) or None when there is none."""
    from scipy.optimize import linprog

    p = X.shape[1]
    scale = np.max(np.abs(X), axis=0)
    scale[scale == 0] = 1.0
    Xs = X / scale
    bnd = side != 0
    A = side[bnd, None] * Xs[bnd]
    kw = {}
    if (~bnd).any():
        kw = {"A_eq": Xs[~bnd], "b_eq": np.zeros(int((~bnd).sum()))}
    res = linprog(-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(A.shape[0]), bounds=[(-1.0, 1.0)] * p,
                  method="highs", **kw)
    if res.status != 0:
        return None
    strict = A @ res.x > SEP_STRICT
    if not strict.any():
        return None
    d = np.where(np.abs(res.x) > SEP_STRICT, res.x, 0.0)
    return d / scale, int(strict.sum())


def _check_separation(st: FitState, design, family) -> bool:
    """Complete or quasi-complete separation (binomial; a count family with a log link: a level
    whose responses are all 0): when some boundary row's fitted mean is within SEP_TRIGGER of
    its boundary, confirm with ``_separating_direction`` and warn with SeparationWarning. Without
    random effects, also R's glm rule (a fitted probability within 10 eps of 0 or 1). True when
    separation was found."""
    side = _boundary_side(design, family)
    p = design.X.shape[1]
    if side is None or p == 0 or not np.all(np.isfinite(st.beta)):
        return False
    eta = design.offset + design.X @ st.beta
    # cheap first look (two scalars through the link): is any linear predictor near a boundary?
    lo = float(family.link.link(np.array([SEP_TRIGGER]))[0])
    hi = float(family.link.link(np.array([1.0 - SEP_TRIGGER]))[0]) if family.name == "binomial" else np.inf
    if eta.min() > lo and eta.max() < hi:
        return False
    side = np.where(design.w > 0, side, 0)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        mu = family.link.inverse(eta)
    near0 = (side < 0) & (mu < SEP_TRIGGER)
    near1 = (side > 0) & (1.0 - mu < SEP_TRIGGER) if family.name == "binomial" else np.zeros_like(near0)
    if not (near0.any() or near1.any()):
        return False
    used = design.w > 0
    found = _separating_direction(design.X[used], side[used])
    binom = family.name == "binomial"
    if found is not None:
        d, k = found
        names = ", ".join(n for n, dj in zip(design.xnames, d) if dj != 0)
        if binom:
            head = (f"complete or quasi-complete separation: fitted probabilities numerically 0 or 1 "
                    f"occurred; {k} of {int(used.sum())} rows are predicted perfectly by the fixed effects")
        else:
            head = (f"fitted means numerically 0 occurred: {k} of {int(used.sum())} rows with a zero response "
                    f"are predicted exactly by the fixed effects (a factor level or combination whose "
                    f"responses are all 0)")
        st.warnings.append(SeparationWarning(
            f"{head} ({names}): their maximum-likelihood estimates do not exist (they diverge), so these "
            f"estimates, standard errors, Wald tests and intervals are meaningless; merge or drop the "
            f"levels or predictor concerned, or use a penalised (bias-reduced) fit"
        ))
        return True
    eps = 10 * np.finfo(float).eps
    if not design.terms and ((mu < eps).any() or (binom and (mu > 1 - eps).any())):
        what = "fitted probabilities numerically 0 or 1" if binom else "fitted rates numerically 0"
        st.warnings.append(SeparationWarning(f"{what} occurred (R's glm warning)"))
    return False


def _check_vcov(st: FitState, design) -> None:
    """A covariance matrix of the fixed effects with negative or non-finite variances (the
    Hessian at the optimum is not positive definite: ConvergenceWarning), or a nearly singular
    one, scale-free (the correlation matrix's condition number above COLLINEAR_COND:
    RankDeficiencyWarning, lme4's 'nearly unidentifiable')."""
    V = np.asarray(st.vcov, float)
    p = V.shape[0]
    if p == 0:
        return
    d = np.diag(V)
    names = np.asarray(design.xnames, dtype=object)
    bad = ~np.isfinite(d) | (d < 0)
    if bad.any():
        st.warnings.append(ConvergenceWarning(
            f"the Hessian at the optimum is not positive definite: the standard errors of "
            f"{', '.join(names[bad])} are not available (NA); the fit may not be at a maximum -- check for "
            f"nearly collinear predictors or separation, and simplify the model"
        ))
        return
    pos = np.flatnonzero(d > 0)
    if pos.size < 2 or not np.all(np.isfinite(V)):
        return
    s = np.sqrt(d[pos])
    C = (V if pos.size == p else V[np.ix_(pos, pos)]) / np.outer(s, s)
    C = 0.5 * (C + C.T)
    ev = np.linalg.eigvalsh(C)
    if ev[-1] > 0 and ev[0] <= ev[-1] / COLLINEAR_COND:
        ev, U = np.linalg.eigh(C)
        v = np.abs(U[:, 0])
        involved = names[pos][v > 0.1 * v.max()]
        cond = ev[-1] / max(ev[0], np.finfo(float).tiny)
        st.warnings.append(RankDeficiencyWarning(
            f"the fixed effects are nearly unidentifiable: {', '.join(involved)} are nearly collinear "
            f"(the correlation matrix of their estimates has condition number {cond:.2g}), so their "
            f"estimates and standard errors are unreliable; drop or combine some of them, or centre and "
            f"rescale the predictors"
        ))


def _check_scale(st: FitState, design, family) -> None:
    """A residual scale of (nearly) zero relative to the response's SD (gaussian, Gamma, t): the
    model reproduces the response exactly and the likelihood is unbounded."""
    if st.loglik == np.inf or family.name not in ("gaussian", "gamma", "t") or getattr(family, "composite", False):
        return
    if family.name == "gaussian" and st.sigma is not None and st.psi is None:
        val, name = float(st.sigma), "residual SD"
    elif st.psi is not None and family.n_psi:
        val = float(family.dispersion(st.psi))
        name = "coefficient of variation" if family.name == "gamma" else "residual scale"
    else:
        return
    y = design.y
    if np.isfinite(val) and family.name != "gamma" and val > SCALE_TOL * float(np.abs(y).max()):
        return  # std(y) <= max |y|: clearly not degenerate
    ref = 1.0 if family.name == "gamma" else float(np.std(y))
    if not (np.isfinite(val) and val <= SCALE_TOL * ref):
        return
    by = f" by the fixed and random effects" if design.terms else ""
    st.warnings.append(DegenerateFitWarning(
        f"the {name} is (nearly) zero ({val:.2g}; response SD {np.std(y):.2g}): the model reproduces the "
        f"response (almost) exactly{by} -- e.g. a constant response, or one that is constant within every "
        f"level of a grouping factor -- so the likelihood is unbounded and logLik, the variance components "
        f"and the standard errors are not meaningful; check the response or simplify the model"
    ))
