"""Outer optimisation: bounded quasi-Newton with finite-difference gradients, and the checks
that turn numerical trouble into honest warnings (boundary, gradient, convergence)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

__all__ = ["OptSummary", "minimize", "fd_gradient", "fd_hessian", "newton_step_size", "projected_gradient"]


@dataclass
class OptSummary:
    """What the optimiser did; kept on the fit so refits reuse the settings."""

    method: str = "L-BFGS-B"
    ftol: float = 1e-12
    gtol: float = 1e-6
    maxiter: int = 1000
    fd_step: float = 1e-6
    n_eval: int = 0
    converged: bool = True
    message: str = ""
    max_grad: float = 0.0
    stages: list = field(default_factory=list)
    hess_inv: object = None


def newton_step_size(opt: OptSummary, grad, free) -> float:
    """max |H^-1 g| over free parameters (lme4's scaled-gradient check), using the optimiser's
    inverse-Hessian estimate; falls back to max |g| without one."""
    g = np.where(free, grad, 0.0)
    if opt.hess_inv is not None:
        try:
            step = np.asarray(opt.hess_inv @ g if not hasattr(opt.hess_inv, "matvec") else opt.hess_inv.matvec(g))
            return float(np.max(np.abs(step[free]))) if free.any() else 0.0
        except Exception:  # a failed estimate is not a verdict on the fit
            pass
    return float(np.max(np.abs(g))) if free.any() else 0.0


def fd_gradient(fun, x, f0=None, step=1e-6, lb=None, central=False):
    x = np.asarray(x, float)
    g = np.empty_like(x)
    f0 = fun(x) if f0 is None else f0
    for i in range(x.size):
        h = step * max(1.0, abs(x[i]))
        xp = x.copy()
        if central:
            xm = x.copy()
            xp[i] += h
            xm[i] -= h
            if lb is not None and xm[i] < lb[i]:
                xm[i] = x[i]
                g[i] = (fun(xp) - f0) / h
            else:
                g[i] = (fun(xp) - fun(xm)) / (2 * h)
        else:
            if lb is not None and x[i] - h < lb[i] and x[i] <= lb[i]:
                xp[i] += h
            elif lb is not None and x[i] + h > np.inf:
                xp[i] -= h
                h = -h
            else:
                xp[i] += h
            g[i] = (fun(xp) - f0) / h
    return g


def fd_hessian(fun, x, step=1e-4):
    """Central second differences (4 evaluations per off-diagonal pair)."""
    x = np.asarray(x, float)
    k = x.size
    h = step * np.maximum(1.0, np.abs(x))
    f0 = fun(x)
    H = np.empty((k, k))
    fp = np.empty(k)
    fm = np.empty(k)
    for i in range(k):
        e = np.zeros(k)
        e[i] = h[i]
        fp[i], fm[i] = fun(x + e), fun(x - e)
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
    for i in range(k):
        for j in range(i + 1, k):
            ei = np.zeros(k)
            ej = np.zeros(k)
            ei[i], ej[j] = h[i], h[j]
            v = (fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej) + fun(x - ei - ej)) / (4 * h[i] * h[j])
            H[i, j] = H[j, i] = v
    return H


def projected_gradient(x, g, lb) -> float:
    """max |projected gradient| for bounds x >= lb (L-BFGS-B's pgtol criterion)."""
    g = np.asarray(g, float)
    proj = np.where(g > 0, np.minimum(x - lb, g), g)
    return float(np.max(np.abs(proj))) if proj.size else 0.0


FAILED = 1e300  # what the optimiser sees where the objective has no value (PIRLS failed)


class _Stalled:
    """L-BFGS-B callback: StopIteration at the end of an iteration once the last ``window``
    evaluations lowered the best objective value by less than ``tol`` in total (a flat ridge,
    where line searches spend a dozen evaluations a step on rounding-level differences)."""

    def __init__(self, window: int, tol: float):
        self.window, self.tol, self.best, self.stopped = window, tol, [], False

    def record(self, value: float):
        """Called at every evaluation: the running best value."""
        self.best.append(min(value, self.best[-1]) if self.best else value)

    def __call__(self, intermediate_result):
        b = self.best
        if len(b) > self.window and b[-1 - self.window] - b[-1] < self.tol:
            self.stopped = True
            raise StopIteration


def minimize(fun, x0, lb, opt: OptSummary, stage: str, jac=None, stall: tuple[int, float] | None = None):
    """Minimise fun over x >= lb with L-BFGS-B; records evaluations and status in ``opt``.

    ``stall`` = (window, tol): also stop, as converged, at the end of an iteration once the last
    ``window`` evaluations lowered the objective by less than ``tol`` in total (``_Stalled``)."""
    count = [0]
    stalled = _Stalled(*stall) if stall is not None else None

    def f(x):
        count[0] += 1
        v = fun(x)
        return v if np.isfinite(v) else FAILED

    bounds = [(None if not np.isfinite(l) else l, None) for l in lb]
    if jac is None:

        def fg_raw(x):
            f0 = f(x)
            return f0, fd_gradient(f, x, f0=f0, step=opt.fd_step, lb=lb)

    else:

        def fg_raw(x):
            count[0] += 1
            return jac(x)

    last: dict = {}

    best: dict = {}

    def fg(x):  # L-BFGS-B evaluates its starting point again: remember the last point
        key = x.tobytes()
        if last.get("key") != key:
            last["key"], last["value"] = key, fg_raw(x)
            if stalled is not None:
                stalled.record(last["value"][0])
                if not best or last["value"][0] < best["fun"]:
                    best["x"], best["fun"] = np.array(x, float), float(last["value"][0])
        return last["value"]

    x0 = np.asarray(x0, float)
    f0, g0 = fg(x0)
    if not f0 < FAILED:  # no value at the start (PIRLS failed): nothing to descend from
        opt.n_eval += count[0]
        opt.hess_inv = None
        opt.converged = False
        opt.message = f"{stage}: the objective could not be evaluated at the starting point"
        opt.stages.append({"stage": stage, "nfev": count[0], "nit": 0, "fun": float("inf"),
                           "message": "the objective could not be evaluated at the starting point"})
        return x0, float("inf")
    if projected_gradient(x0, g0, lb) <= opt.gtol:  # converged at the start
        opt.n_eval += count[0]
        opt.hess_inv = None
        opt.stages.append({"stage": stage, "nfev": count[0], "nit": 0, "fun": float(f0),
                           "message": "the starting point satisfies the projected-gradient tolerance"})
        return x0, float(f0)
    try:
        res = optimize.minimize(
            fg,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": opt.ftol, "gtol": opt.gtol, "maxiter": opt.maxiter, "maxcor": 20},
            callback=stalled,
        )
    except StopIteration:  # scipy < 1.11 lets a callback's StopIteration through: the best point
        res = optimize.OptimizeResult(x=best["x"], fun=best["fun"], nit=-1, success=True,
                                      message="stopped by the stall rule")
    opt.n_eval += count[0]
    opt.hess_inv = getattr(res, "hess_inv", None)
    message = str(res.message)
    if stalled is not None and stalled.stopped:
        message = f"objective decreased by less than {stalled.tol:g} over {stalled.window} evaluations"
    opt.stages.append({"stage": stage, "nfev": count[0], "nit": int(res.nit), "fun": float(res.fun),
                       "message": message})
    if stalled is not None and stalled.stopped:
        return res.x, float(res.fun)
    if not res.success and "ABNORMAL" not in str(res.message).upper():
        opt.converged = False
        opt.message = f"{stage}: {res.message}"
    return res.x, float(res.fun)
