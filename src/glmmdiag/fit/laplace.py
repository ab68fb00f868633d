"""GLMM objectives: penalised IRLS for the conditional modes, the Laplace approximation and
adaptive Gauss-Hermite quadrature.

For given (beta, theta, psi) the conditional mode u^ maximises  l(y | u) - |u|^2 / 2  with
eta = X beta + Z Lambda u + offset and psi the family's extra parameters (log dispersion, t's
log df; empty for binomial and Poisson). Newton steps on u (with beta in the step for the
nAGQ = 0 stage) use H = Lambda'Z'WZ Lambda + I, W = -d2 l / d eta2, with step halving. The
Laplace deviance is

    -2 l(y | u^) + |u^|^2 + log det H(u^),

l including every constant, so logLik = -deviance / 2 compares with lme4 and glmmTMB.

W is the observed information. For canonical links it is the IRLS weight and positive; for
Student t and for non-canonical links (Gamma with log or inverse link, beta, nbinom1) single
rows can have W < 0. The log-determinant is always taken with the observed W at the mode (TMB's
exact Hessian, which glmmTMB uses). The Newton step for u uses the observed H too when it is
positive definite (quadratic convergence near the mode); otherwise it uses H with max(W, 0),
positive definite because of the identity, so the step is still a descent direction and step
halving keeps PIRLS monotone (Fisher-scoring-like, linear convergence, only away from the mode).
AGQ (one scalar term): per group j, with sd_j = H_jj^{-1/2} and nodes z_k, weights w_k for a
standard normal,  log int = log sd_j + log sum_k w_k exp(l_j(u^_j + sd_j z_k) - (u^_j + sd_j z_k)^2/2 + z_k^2/2).
"""
from __future__ import annotations

import numpy as np
from scipy import sparse

from glmmdiag.fit.blocked import BlockedSystem, CrossProducts, Factor
from glmmdiag.fit.covariance import ThetaMap

__all__ = ["GLMMProblem", "gauss_hermite"]

_GH_CACHE: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def gauss_hermite(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E f(Z), Z ~ N(0, 1) (probabilists' Hermite), weights sum to 1."""
    if k not in _GH_CACHE:
        z, w = np.polynomial.hermite_e.hermegauss(k)
        _GH_CACHE[k] = (z, w / w.sum())
    return _GH_CACHE[k]


def _params_key(beta, theta, psi):
    return (np.asarray(beta, float).tobytes(), np.asarray(theta, float).tobytes(),
            None if psi is None else np.asarray(psi, float).tobytes())


def _read_only(a):
    """A read-only copy: families may cache terms that depend on the data only (NBinom2)."""
    a = np.array(a, float)
    a.flags.writeable = False
    return a


class PirlsError(RuntimeError):
    pass


def _check_decrement(dec):
    """A Newton decrement that is not a finite number >= 0 (NaN or inf weights, an indefinite
    solve) would never meet a stopping rule (``nan < x`` is False): PirlsError."""
    if not dec >= 0.0 or dec == np.inf:
        raise PirlsError(f"Newton decrement {dec!r} in penalised IRLS (non-finite weights or scores)")


def _not_converged(max_iter):
    raise PirlsError(f"penalised IRLS did not converge in {max_iter} iterations")


class GLMMProblem:
    def __init__(self, design, family, n_agq: int = 1, tol: float = 1e-14, max_iter: int = 100):
        self.d = design
        self.family = family
        self.y, self.w, self.X, self.offset = (_read_only(a) for a in (design.y, design.w, design.X, design.offset))
        self.n, self.p = design.X.shape
        self.terms = design.terms
        self.thetamap = ThetaMap.for_terms(design.terms)
        self.system = BlockedSystem(design.terms, design.n)
        self.nq = sum(t.nlev * t.q for t in design.terms)
        self.const = float(np.sum(family.loglik_const(self.y, self.w)))
        self.n_agq = n_agq
        self.tol = tol
        self.max_iter = max_iter
        self.u = np.zeros(self.nq)  # warm start, updated after each solve
        self._starts = np.concatenate([[0], np.cumsum([t.nlev * t.q for t in design.terms])]).astype(int)
        # a single scalar term: diagonal H, handled without the blocked system (``_pirls_diag``)
        self._diag = len(design.terms) == 1 and design.terms[0].q == 1
        if self._diag:
            t = design.terms[0]
            self._refs, self._nlev = t.refs, t.nlev
            zc = np.ascontiguousarray(t.z[:, 0], dtype=float)
            ones = bool(np.all(zc == 1.0))
            self._z = None if ones else zc
            self._z2 = None if ones else zc * zc
        self._empty22 = np.zeros((0, 0))
        self._last = None  # the last mode of the diagonal path (``_predict_u``)
        self._last_general = None  # the last mode of the general path (``_predict_u_general``)
        self._pirls_memo = None  # (parameters, result, eta) of the last PIRLS
        self._grad_memo = None  # (parameters, deviance, gradient) of the last gradient
        self._indicators: dict = {}  # sparse level indicators of terms with many coefficients (``lamt_zt``)

    def reset_modes(self):
        """Cold-start the next PIRLS from u = 0 (no warm start, no predicted mode)."""
        self.u = np.zeros(self.nq)
        self._last_general = None

    # ------------------------------------------------------------------ Z Lambda maps
    def zlam(self, T, u) -> np.ndarray:
        """Z Lambda u (length n)."""
        out = np.zeros(self.n)
        for k, t in enumerate(self.terms):
            uk = u[self._starts[k] : self._starts[k + 1]].reshape(t.nlev, t.q)
            bk = uk @ T[k].T
            if t.q == 1:
                out += t.z[:, 0] * bk[t.refs, 0]
            else:
                out += np.einsum("ij,ij->i", t.z, bk[t.refs])
        return out

    def _level_indicator(self, k: int):
        """The sparse (levels x n) indicator of term k's levels (cached)."""
        if k not in self._indicators:
            t = self.terms[k]
            self._indicators[k] = sparse.csr_matrix((np.ones(self.n), (t.refs, np.arange(self.n))),
                                                    shape=(t.nlev, self.n))
        return self._indicators[k]

    def lamt_zt(self, T, s) -> np.ndarray:
        """Lambda' Z' s."""
        parts = []
        for k, t in enumerate(self.terms):
            if t.q == 1:
                v = np.bincount(t.refs, t.z[:, 0] * s, minlength=t.nlev)[:, None]
            elif t.q > 8:  # many coefficients per level (ar1, spatial): one sparse product
                v = self._level_indicator(k) @ (t.z * s[:, None])
            else:
                v = np.column_stack([np.bincount(t.refs, t.z[:, a] * s, minlength=t.nlev) for a in range(t.q)])
            parts.append((v @ T[k]).ravel())
        return np.concatenate(parts)

    # ------------------------------------------------------------------ PIRLS
    def _factor(self, W, theta, D=None):
        """Cross-products and blocked factor of H with weights W; ``ok`` False unless H is
        positive definite (with negative weights a scalar first block can reach a11 <= 0)."""
        sysm = self.system
        cp = sysm.crossprods(W, D)
        with np.errstate(invalid="ignore", divide="ignore"):  # log(a11 <= 0): flagged just below
            F = sysm.factor(cp, theta, self.thetamap)
        if F.ok and sysm.q1 == 1 and not np.all(F.a11 > 0):
            F.ok = False
        return cp, F

    def _no_descent(self, dec, scale):
        """Every halving of a Newton step failed to decrease the objective: fine (the caller
        stops at the mode) when the predicted decrease ``dec`` is at rounding level, otherwise
        the objective and its derivatives disagree (a kink at the edge of the support)."""
        if dec >= self.DEC_FLAT * scale:
            raise PirlsError(
                f"step halving found no decrease of the penalised deviance along the Newton direction "
                f"(predicted decrease {dec:.3g}): the conditional mode is at the edge of the family's support"
            )

    def _flat(self, step, dec, scale) -> bool:
        """A halved step although the predicted decrease is below the acceptance slack: the
        objective's rounding hides any further progress, u is the mode to machine precision."""
        return step < 1.0 and dec < self.DEC_FLAT * scale

    def _progress(self, step, change, scale, stalls, evals) -> int:
        """Bookkeeping after an accepted step that did not end the iteration; returns the new
        count of consecutive stalled steps, or raises PirlsError when the call has stalled
        MAX_STALLS times in a row or used up its MAX_EVALS evaluations."""
        if step < 1.0 and change < self.DEC_FLAT * scale:
            stalls += 1
            if stalls >= self.MAX_STALLS:
                raise PirlsError(
                    f"penalised IRLS makes no progress: {stalls} halved Newton steps in a row did not "
                    f"decrease the penalised deviance (the conditional mode is at the edge of the "
                    f"family's support)"
                )
        else:
            stalls = 0
        if evals >= self.MAX_EVALS:
            raise PirlsError(f"penalised IRLS did not converge within {evals} evaluations")
        return stalls

    # PIRLS stopping rule, on the Newton decrement dec = g'H^{-1}g = |u - u^|_H^2 to first order
    # (the predicted decrease of the objective -2 l + |u|^2). With s = |objective| + 1: if
    # dec < DEC_STOP s, u is the mode (|u - u^|_H < 1e-11 sqrt(s)) and its factor is reused; if
    # dec < DEC_TOL s, one more full Newton step (quadratic convergence: error about dec) ends the
    # iteration without checking the objective. The exact gradient and the finite-difference
    # Hessian (steps of 1e-6) built from it need u^ to about 1e-11 (the old rule: decrease
    # < 1e-14 s). With the first-order warm start, the Hessian's evaluations stop at once.
    DEC_TOL = 1e-14
    DEC_STOP = 1e-22
    # Termination: every call ends after at most MAX_EVALS evaluations of the log density, and a
    # call that does not converge raises PirlsError rather than returning a point that is not the
    # mode. A Newton step may be halved MAX_HALVINGS times (a saturated row, W ~ 0 with a score
    # that is not, can make the full step 1e15 times too long: 2^-50). If no halved step is
    # accepted, the direction is not a descent direction of the objective: a kink, where the
    # family clamps mu at the edge of its support so the objective is flat while the score is not.
    # That is acceptable only when the predicted decrease dec is at rounding level (< DEC_FLAT s,
    # the acceptance slack of a step). An accepted halved step that decreased the objective by
    # less than that slack made no progress (the mode sits on such a kink and the accepted steps
    # shrink towards it): MAX_STALLS of them in a row end the call.
    MAX_HALVINGS = 60
    DEC_FLAT = 1e-10
    MAX_STALLS = 3
    MAX_EVALS = 1000
    PREDICT = True  # first-order warm start of the modes (``_predict_u``), single scalar term

    def pirls(self, beta, theta, u0=None, with_beta=False, psi=None):
        """Conditional modes u^ (and beta^ if with_beta) by Newton steps with step halving.

        Returns (u, beta, factor, cross-products, ll, s, W, dW) at the optimum; the factor and
        cross-products are those of H with the observed W at the mode; dW is None for families
        whose third derivative is costly (``family.dw_costly``: the gradient asks for it at the
        mode). ``self.eta`` holds the linear predictor at the mode. The last result is memoised.
        """
        key = None
        if u0 is None and not with_beta:
            key = _params_key(beta, theta, psi)
            if self._pirls_memo is not None and self._pirls_memo[0] == key:
                out = self._pirls_memo[1]
                self.u, self.eta = out[0], self._pirls_memo[2]
                return out
        # trial points may leave the family's support (inf/nan): handled below, not warnings
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            try:
                out = self._pirls_any(beta, theta, u0, with_beta, psi)
            except PirlsError:
                if u0 is not None or not self._warm():
                    raise
                out = self._cold_retry(beta, theta, with_beta, psi)
        # the same parameters come back (the optimum: final gradient, Hessian, conditional variances)
        self._pirls_memo = (key, out, self.eta) if key is not None else None
        return out

    def _pirls_any(self, beta, theta, u0, with_beta, psi):
        if self._diag and not with_beta:
            return self._pirls_diag(beta, theta, u0, psi)
        return self._pirls(beta, theta, u0, with_beta, psi)

    def _warm(self) -> bool:
        """Whether the next PIRLS starts anywhere but u = 0 (a warm start or a predicted mode)."""
        return bool(np.any(self.u != 0.0)) or self._last is not None or self._last_general is not None

    def _cold_retry(self, beta, theta, with_beta, psi):
        """PIRLS once more from u = 0 after a failure from a warm start (the modes of other
        parameters can sit across a kink of the objective from this mode). A second failure
        raises and leaves the warm-start state as it was."""
        saved = (self.u, self._last, self._last_general)
        self.u, self._last, self._last_general = np.zeros(self.nq), None, None
        try:
            return self._pirls_any(beta, theta, None, with_beta, psi)
        except PirlsError:
            self.u, self._last, self._last_general = saved
            raise

    def _pirls(self, beta, theta, u0, with_beta, psi):
        self._last = None
        fam, sysm = self.family, self.system
        order = 2 if fam.dw_costly else 3
        T = self.thetamap.factors(theta)
        beta = np.asarray(beta, float).copy()
        base = self.offset + self.X @ beta
        starts = [(self.u if u0 is None else u0).copy()]
        if u0 is None and not with_beta and self._last_general is not None and self.PREDICT:
            predicted = self._predict_u_general(beta, theta, T)
            if predicted is not None:
                starts.insert(0, predicted)  # the warm start stays the fallback
        for u in starts:
            eta = base + self.zlam(T, u)
            ll, s, W, dW = fam.eta_derivs(self.y, eta, self.w, psi, order)
            obj = -2.0 * ll.sum() + u @ u
            if np.isfinite(obj):
                break
        if u0 is None and np.any(u != 0):
            # u = 0 when it is the better start (outside the support, or another basin: see
            # ``_pirls_diag``)
            ll0, s0, W0, dW0 = fam.eta_derivs(self.y, base, self.w, psi, order)
            obj0 = -2.0 * ll0.sum()
            if np.isfinite(obj0) and not obj0 >= obj:
                u, eta, ll, s, W, dW, obj = np.zeros_like(u), base, ll0, s0, W0, dW0, obj0
        if not np.isfinite(obj):
            raise PirlsError("log-likelihood not finite at the starting conditional modes")
        q1 = sysm.l1 * sysm.q1
        D = self.X if with_beta else None
        final = None
        evals = stalls = 0
        for it in range(self.max_iter):
            g_u = self.lamt_zt(T, s) - u
            cp, F = self._factor(W, theta, D)
            observed = True
            if not F.ok and W.min() < 0:
                cp, F = self._factor(np.maximum(W, 0.0), theta, D)
                observed = False
            if not F.ok:
                raise PirlsError("penalised Hessian not positive definite")
            grest = g_u[q1:]
            if with_beta:
                gb = self.X.T @ s
                grest = np.concatenate([grest, gb])
            d1, dr = sysm.solve(cp, F, g_u[:q1], grest)
            du = np.concatenate([d1, dr[: sysm.qr]])
            db = dr[sysm.qr :] if with_beta else None
            dec = float(g_u @ du) + (float(gb @ db) if with_beta else 0.0)
            scale = abs(obj) + 1.0
            if dec < self.DEC_STOP * scale:
                if observed and not with_beta:
                    final = (cp, F)
                break
            _check_decrement(dec)
            last = dec < self.DEC_TOL * scale
            step = 1.0
            for _ in range(self.MAX_HALVINGS):
                evals += 1
                u_new = u + step * du
                if with_beta:
                    b_new = beta + step * db
                    base_new = self.offset + self.X @ b_new
                else:
                    base_new = base
                eta_new = base_new + self.zlam(T, u_new)
                ll_n, s_n, W_n, dW_n = fam.eta_derivs(self.y, eta_new, self.w, psi, order)
                obj_new = -2.0 * ll_n.sum() + u_new @ u_new
                if last or (np.isfinite(obj_new) and obj_new <= obj + 1e-10 * abs(obj)):
                    break
                step *= 0.5
            else:
                self._no_descent(dec, scale)
                break  # no improvement possible: at the optimum to machine precision
            if not np.isfinite(obj_new):
                break
            u, ll, s, W, dW, eta = u_new, ll_n, s_n, W_n, dW_n, eta_new
            if with_beta:
                beta, base = b_new, base_new
            change = obj - obj_new
            obj = obj_new
            # Newton converges quadratically: stop once the decrease is at rounding level (or a
            # step had to be halved although the predicted decrease was below the rounding slack)
            if last or (change < self.tol * (abs(obj) + 1.0) and step == 1.0) or self._flat(step, dec, scale):
                break
            stalls = self._progress(step, change, scale, stalls, evals)
        else:
            _not_converged(self.max_iter)
        if final is None:
            final = self._factor(W, theta)
        cp, F = final
        if not F.ok:
            raise PirlsError("penalised Hessian not positive definite at the mode")
        self.u = u
        self.eta = eta
        self._last_general = None if with_beta else (beta, T, u, s, W, F, cp)
        return u, beta, F, cp, ll, s, W, dW

    def _predict_u_general(self, beta, theta, T):
        """First-order prediction of the mode at (beta, theta) from the last one (any terms):
        with g(u) = Lambda'Z's - u and H = Lambda'Z'WZ Lambda + I at the last mode,
        du = H^{-1} (dLambda'Z's - Lambda'Z'W deta), deta = X dbeta + Z dLambda u the change of
        the linear predictor at fixed u (``_predict_u``'s rule for a single scalar term)."""
        beta0, T0, u0, s0, W0, F0, cp0 = self._last_general
        dT = [a - b for a, b in zip(T, T0)]
        deta = self.X @ (beta - beta0) + self.zlam(dT, u0)
        dg = self.lamt_zt(dT, s0) - self.lamt_zt(T0, W0 * deta)
        q1 = self.system.l1 * self.system.q1
        d1, dr = self.system.solve(cp0, F0, dg[:q1], dg[q1:])
        du = np.concatenate([d1, dr])
        if not np.all(np.isfinite(du)) or np.max(np.abs(du), initial=0.0) > 0.5:
            return None
        return u0 + du

    def _pirls_diag(self, beta, theta, u0, psi):
        """PIRLS for a single scalar term, (1 | g) or (0 + x | g): H is diagonal, one entry per
        level, so every step is a pair of bincounts (same algorithm and stopping rule as
        ``pirls``)."""
        fam = self.family
        order = 2 if fam.dw_costly else 3
        th = float(theta[0])
        refs, nl, z, z2 = self._refs, self._nlev, self._z, self._z2
        beta = np.asarray(beta, float)
        base = self.offset + self.X @ beta
        u = None
        if u0 is None and self._last is not None and self.PREDICT:
            u = self._predict_u(beta, th, psi, base)
        if u is None:
            u = (self.u if u0 is None else u0).copy()
        zu = u[refs] if z is None else z * u[refs]
        eta = base + th * zu
        ll, s, W, dW = fam.eta_derivs(self.y, eta, self.w, psi, order)
        obj = -2.0 * ll.sum() + u @ u
        if not np.isfinite(obj) and u0 is None and u is not self.u:
            u = self.u.copy()  # the prediction left the support: the last mode instead
            zu = u[refs] if z is None else z * u[refs]
            eta = base + th * zu
            ll, s, W, dW = fam.eta_derivs(self.y, eta, self.w, psi, order)
            obj = -2.0 * ll.sum() + u @ u
        if u0 is None and np.any(u != 0):
            # u = 0 when it is the better start: a warm start outside the support, or one that sits
            # in another basin (a non-canonical link's plateau: gaussian(inverse) once carried a
            # mode with a 1000x larger penalised deviance from one evaluation to the next)
            ll0, s0, W0, dW0 = fam.eta_derivs(self.y, base, self.w, psi, order)
            obj0 = -2.0 * ll0.sum()
            if np.isfinite(obj0) and not obj0 >= obj:
                u, eta, ll, s, W, dW, obj = np.zeros_like(u), base, ll0, s0, W0, dW0, obj0
        if not np.isfinite(obj):
            raise PirlsError("log-likelihood not finite at the starting conditional modes")
        t2 = th * th
        h = None
        evals = stalls = 0
        for it in range(self.max_iter):
            g = th * np.bincount(refs, s if z is None else z * s, minlength=nl) - u
            Dw = np.bincount(refs, W if z2 is None else W * z2, minlength=nl)
            h = t2 * Dw + 1.0
            observed = True
            if h.min() <= 0.0:
                Wp = np.maximum(W, 0.0)
                h = t2 * np.bincount(refs, Wp if z2 is None else Wp * z2, minlength=nl) + 1.0
                observed = False
            du = g / h
            dec = float(g @ du)
            scale = abs(obj) + 1.0
            if dec < self.DEC_STOP * scale:
                if not observed:
                    h = None
                break
            _check_decrement(dec)
            last = dec < self.DEC_TOL * scale
            step = 1.0
            for _ in range(self.MAX_HALVINGS):
                evals += 1
                u_new = u + step * du
                zu = u_new[refs] if z is None else z * u_new[refs]
                eta_new = base + th * zu
                ll_n, s_n, W_n, dW_n = fam.eta_derivs(self.y, eta_new, self.w, psi, order)
                obj_new = -2.0 * ll_n.sum() + u_new @ u_new
                if last or (np.isfinite(obj_new) and obj_new <= obj + 1e-10 * abs(obj)):
                    break
                step *= 0.5
            else:
                self._no_descent(dec, scale)
                h = None
                break
            if not np.isfinite(obj_new):
                h = None
                break
            u, ll, s, W, dW, eta = u_new, ll_n, s_n, W_n, dW_n, eta_new
            change = obj - obj_new
            obj = obj_new
            h = None
            if last or (change < self.tol * (abs(obj) + 1.0) and step == 1.0) or self._flat(step, dec, scale):
                break
            stalls = self._progress(step, change, scale, stalls, evals)
        else:
            _not_converged(self.max_iter)
        if h is None:
            Dw = np.bincount(refs, W if z2 is None else W * z2, minlength=nl)
            h = t2 * Dw + 1.0
        if not h.min() > 0.0:
            raise PirlsError("penalised Hessian not positive definite at the mode")
        F = Factor(theta, [np.array([[th]])], h, t2 / h, self._empty22, float(np.log(h).sum()), True)
        cp = CrossProducts(Dw[:, None, None], None, None, self._empty22)
        self.u = u
        self.eta = eta
        self._last = {"beta": beta, "theta": th, "psi": None if psi is None else np.array(psi, float),
                      "u": u, "s": s, "W": W, "h": h, "s_psi": None}
        return u, beta, F, cp, ll, s, W, dW

    def _predict_u(self, beta, th, psi, base):
        """First-order prediction of the mode at new parameters from the last one (single scalar
        term): du = H^{-1} (dg/dbeta dbeta + dg/dtheta dtheta + dg/dpsi dpsi), g = theta Z's - u the
        gradient of the penalised log-likelihood in u. A warm start that is one Newton step closer."""
        L = self._last
        refs, nl, z = self._refs, self._nlev, self._z
        u, s, W = L["u"], L["s"], L["W"]
        dth = th - L["theta"]
        zu = u[refs] if z is None else z * u[refs]
        # change of the linear predictor at fixed u (fixed part and theta), then the rows' score change
        deta = self.X @ (beta - L["beta"]) + dth * zu
        v = s * (dth / th if th != 0.0 else 0.0) - W * deta
        if L["s_psi"] is not None and psi is not None and L["psi"] is not None:
            dpsi = np.asarray(psi, float) - L["psi"]
            for k, sp in enumerate(L["s_psi"]):
                if dpsi[k] != 0.0:
                    v = v + sp * dpsi[k]
        rhs = th * np.bincount(refs, v if z is None else z * v, minlength=nl)
        du = rhs / (th * th / L["theta"] ** 2 * (L["h"] - 1.0) + 1.0) if L["theta"] != 0.0 else rhs
        # a first-order prediction is for small moves (u is on the N(0, 1) scale)
        if not np.all(np.isfinite(du)) or np.max(np.abs(du), initial=0.0) > 0.5:
            return None
        return u + du

    # ------------------------------------------------------------------ objectives
    def laplace_deviance(self, beta, theta, with_beta=False, u0=None, psi=None):
        try:
            u, beta, F, cp, ll, s, W, dW = self.pirls(beta, theta, u0=u0, with_beta=with_beta, psi=psi)
        except PirlsError:
            return np.inf
        if self.n_agq > 1:
            return self._agq_deviance(beta, theta, u, F, psi)
        logdet = F.logdet11 + (self.system.logdet_rest(F) if self.system.qr else 0.0)
        return float(-2.0 * (ll.sum() + self.const) + u @ u + logdet)

    def _agq_deviance(self, beta, theta, u, F, psi=None):
        """Adaptive Gauss-Hermite deviance for one scalar random-intercept-like term."""
        t = self.terms[0]
        z, wk = gauss_hermite(self.n_agq)
        th = theta[0]
        sd = 1.0 / np.sqrt(F.a11)  # conditional sd of u_j
        nodes = u[:, None] + sd[:, None] * z[None, :]  # (l, K)
        eta = (self.offset + self.X @ beta)[:, None] + th * t.z[:, :1] * nodes[t.refs]
        ll = self.family.eta_derivs(self.y[:, None], eta, self.w[:, None], psi, 1)[0]
        llg = np.stack([np.bincount(t.refs, ll[:, k], minlength=t.nlev) for k in range(len(z))], axis=1)
        logterm = llg - 0.5 * nodes**2 + 0.5 * z[None, :] ** 2 + np.log(wk)[None, :]
        mx = logterm.max(axis=1, keepdims=True)
        lse = mx[:, 0] + np.log(np.exp(logterm - mx).sum(axis=1))
        return float(-2.0 * (np.sum(lse + np.log(sd)) + self.const))

    def agq_deviance_and_gradient(self, beta, theta):
        """AGQ deviance and its exact gradient in (theta, beta) for families without psi.

        Per group j with nodes v_jk = u^_j + sd_j z_k and node weights p_jk = softmax_k(logterm_jk):
        dD/dpsi = -2 sum_j [dlog sd_j + sum_k p_jk (dlogterm_jk|_(u^, sd) + G_jk (du^_j + z_k dsd_j))],
        G_jk = theta sum_i z_i s_ik - v_jk; the adaptive nodes move with the parameters through
        du^_j = (dg_j/dpsi) / H_j (g_j = theta sum z s - u = 0 at the mode) and
        dsd_j = -sd_j (dH_j/dpsi) / (2 H_j), H_j = theta^2 sum z^2 W(eta^) + 1.
        """
        try:
            u, beta, F, cp, ll, s, W, dW = self.pirls(beta, theta)
        except PirlsError:
            return np.inf, None
        fam, t = self.family, self.terms[0]
        refs, z, nl = t.refs, t.z[:, 0], t.nlev
        th = float(theta[0])
        base = self.offset + self.X @ beta
        eta0 = base + th * z * u[refs]
        _, s0, W0, dW0 = fam.eta_derivs(self.y, eta0, self.w)
        zk, wk = gauss_hermite(self.n_agq)
        H = th * th * np.bincount(refs, z * z * W0, minlength=nl) + 1.0
        sd = 1.0 / np.sqrt(H)
        v = u[:, None] + sd[:, None] * zk[None, :]  # (l, K)
        eta = base[:, None] + th * z[:, None] * v[refs]
        ll_k, s_k, _, _ = fam.eta_derivs(self.y[:, None], eta, self.w[:, None], None, 1)
        ind = self._group_indicator()
        L = ind @ ll_k  # (l, K)
        Sz = ind @ (s_k * z[:, None])
        logterm = L - 0.5 * v**2 + 0.5 * zk[None, :] ** 2 + np.log(wk)[None, :]
        mx = logterm.max(axis=1, keepdims=True)
        ex = np.exp(logterm - mx)
        tot = ex.sum(axis=1)
        dev = float(-2.0 * (np.sum(mx[:, 0] + np.log(tot) + np.log(sd)) + self.const))
        pk = ex / tot[:, None]
        G = th * Sz - v
        EG, EGz = (pk * G).sum(axis=1), (pk * G * zk[None, :]).sum(axis=1)
        p = self.X.shape[1]
        # partial derivatives of logterm at fixed nodes, averaged over p_jk
        Eth = (pk * Sz * v).sum(axis=1)  # (l,)
        Eb = np.asarray(ind @ ((s_k * pk[refs]).sum(axis=1)[:, None] * self.X)) if p else np.zeros((nl, 0))
        # the mode and the node scale as functions of the parameters
        zW = z * W0
        Sz2W = np.bincount(refs, z * zW, minlength=nl)
        dg_th = np.bincount(refs, z * s0, minlength=nl) - th * u * Sz2W
        dg_b = -th * np.asarray(ind @ (zW[:, None] * self.X)) if p else np.zeros((nl, 0))
        du_th, du_b = dg_th / H, dg_b / H[:, None]
        deta_th = z * u[refs] + th * z * du_th[refs]
        deta_b = self.X + th * z[:, None] * du_b[refs]
        zzdW = z * z * dW0
        dH_th = 2.0 * th * Sz2W + th * th * np.bincount(refs, zzdW * deta_th, minlength=nl)
        dH_b = th * th * np.asarray(ind @ (zzdW[:, None] * deta_b)) if p else np.zeros((nl, 0))
        dlsd_th, dlsd_b = -0.5 * dH_th / H, -0.5 * dH_b / H[:, None]
        g_th = dlsd_th + Eth + EG * du_th + EGz * sd * dlsd_th
        g_b = dlsd_b + Eb + EG[:, None] * du_b + (EGz * sd)[:, None] * dlsd_b
        grad = -2.0 * np.concatenate([[g_th.sum()], g_b.sum(axis=0)])
        return dev, grad

    def _group_indicator(self):
        if getattr(self, "_ind", None) is None:
            t = self.terms[0]
            self._ind = sparse.csr_matrix(
                (np.ones(len(t.refs)), (t.refs, np.arange(len(t.refs)))), shape=(t.nlev, len(t.refs))
            )
        return self._ind

    def beta_hat_stage0(self, theta, beta0, psi=None):
        """nAGQ = 0: beta inside PIRLS; returns (beta, deviance)."""
        u, beta, F, cp, ll, s, W, dW = self.pirls(beta0, theta, with_beta=True, psi=psi)
        logdet = F.logdet11 + (self.system.logdet_rest(F) if self.system.qr else 0.0)
        return beta, float(-2.0 * (ll.sum() + self.const) + u @ u + logdet)

    # ------------------------------------------------------------------ exact gradient
    def _own_inverse(self, F, cp, W):
        """Per term k, (n, q_k): entries of H^{-1} z~_i at row i's own levels (BlockedSystem.own_inverse)."""
        return self.system.own_inverse(F, cp, self.terms)

    def deviance_and_gradient(self, beta, theta, psi=None):
        """Laplace deviance and its exact gradient in (theta, beta, psi).

        With r = c - 2 s - W (Z Lambda t), c_i = lev_i dW_i, lev_i = z~_i' H^{-1} z~_i and
        t = H^{-1} Lambda'Z'c:  dF/dbeta = X'r;  for theta_m with dLambda/dtheta_m = D_m,
        dF/dtheta_m = r'(Z D_m u) + s'(Z D_m t) + 2 tr(H^{-1} Lambda'Z'WZ D_m).

        For psi_k (the family's extra parameters; l_psi, s_psi = d l_eta/dpsi_k and
        W_psi = dW/dpsi_k per row):  dF/dpsi_k = sum_i [-2 l_psi,i + lev_i W_psi,i + (Z Lambda t)_i s_psi,i].
        The first term is the envelope theorem on -2 l + |u|^2 (d/du vanishes at u^); the second
        is d log det H / dpsi at fixed u; the third the change of log det H through the mode,
        du^/dpsi = H^{-1} Lambda'Z' s_psi, paired with d log det H / du = Lambda'Z'c.
        The gradient has the order [theta, beta, psi] (no psi entries for families without).
        """
        if self.n_agq > 1 and not self.family.n_psi:
            return self.agq_deviance_and_gradient(beta, theta)
        key = _params_key(beta, theta, psi)
        if self._grad_memo is not None and self._grad_memo[0] == key:
            return self._grad_memo[1], self._grad_memo[2].copy()
        try:
            u, beta, F, cp, ll, s, W, dW = self.pirls(beta, theta, psi=psi)
        except PirlsError:
            return np.inf, None
        dev, grad = self._gradient_at_mode(u, beta, F, cp, ll, s, W, dW, theta, psi)
        self._grad_memo = (key, dev, grad.copy())
        return dev, grad

    def _gradient_at_mode(self, u, beta, F, cp, ll, s, W, dW, theta, psi):
        fam = self.family
        if dW is None or fam.n_psi:
            # dW (when PIRLS skipped the costly third derivative) and the psi terms at the mode
            dW, pd = fam.laplace_gradient_terms(self.y, self.eta, self.w, psi, dW)
        else:
            pd = []
        if self._diag:
            return self._diag_gradient(u, F, ll, s, W, dW, theta, pd)
        sysm = self.system
        logdet = F.logdet11 + (sysm.logdet_rest(F) if sysm.qr else 0.0)
        dev = float(-2.0 * (ll.sum() + self.const) + u @ u + logdet)
        Wc = W  # the observed W: F and cp were built with it
        T = F.T
        band = F.band  # a single Markov term in precision form (fit/banded.py)
        if band is not None:
            own, lev = None, band.leverage()
        else:
            own = self._own_inverse(F, cp, Wc)
            lev = np.zeros(self.n)
            for t, Tk, ok in zip(self.terms, T, own):
                lev += np.einsum("ic,ic->i", t.z @ Tk, ok)
        c = lev * dW
        g = self.lamt_zt(T, c)
        q1 = sysm.l1 * sysm.q1
        t1, tr = sysm.solve(cp, F, g[:q1], g[q1:])
        tvec = np.concatenate([t1, tr])
        zt = self.zlam(T, tvec)
        r = c - 2.0 * s - Wc * zt
        grad_beta = self.X.T @ r
        grad_theta = np.empty(self.thetamap.n)
        m = 0
        for k, t in enumerate(self.terms):
            uk = u[self._starts[k] : self._starts[k + 1]].reshape(t.nlev, t.q)
            tk = tvec[self._starts[k] : self._starts[k + 1]].reshape(t.nlev, t.q)
            if band is not None:  # data part through G; 2 tr(H^-1 dH) = d log|H| in precision form
                mk = sysm.markov
                G = mk.data_g(r, uk) + mk.data_g(s, tk)
                sl = slice(self.thetamap.starts[k], self.thetamap.starts[k + 1])
                grad_theta[sl] = self.thetamap.pullback(k, theta, G) + band.logdet_gradient(None)
                m = self.thetamap.starts[k + 1]
                continue
            if self.thetamap.structured(k):  # G = dF/dT_k, pulled back to the structure's parameters
                G = t.z.T @ (r[:, None] * uk[t.refs] + s[:, None] * tk[t.refs] + 2.0 * Wc[:, None] * own[k])
                grad_theta[self.thetamap.starts[k] : self.thetamap.starts[k + 1]] = self.thetamap.pullback(k, theta, G)
                m = self.thetamap.starts[k + 1]
                continue
            rows, cols = self.thetamap._order[k]
            for a, b in zip(rows, cols):
                za = t.z[:, a]
                grad_theta[m] = (
                    r @ (za * uk[t.refs, b]) + s @ (za * tk[t.refs, b]) + 2.0 * np.sum(Wc * za * own[k][:, b])
                )
                m += 1
        if not self.family.n_psi:
            return dev, np.concatenate([grad_theta, grad_beta])
        grad_psi = np.array([-2.0 * l_p.sum() + lev @ W_p + zt @ s_p for l_p, s_p, W_p in pd])
        return dev, np.concatenate([grad_theta, grad_beta, grad_psi])

    def _diag_gradient(self, u, F, ll, s, W, dW, theta, pd):
        """``deviance_and_gradient`` for a single scalar term: H = diag(h), h_j = theta^2 sum_i W_i z_i^2 + 1,
        lev_i = theta^2 z_i^2 / h_j(i), t = H^{-1} Lambda'Z'c and the trace term
        2 tr(H^{-1} Lambda'Z'WZ) / theta = 2 theta sum_i W_i z_i^2 / h_j(i)."""
        th = float(theta[0])
        refs, nl, z, z2 = self._refs, self._nlev, self._z, self._z2
        h = F.a11
        dev = float(-2.0 * (ll.sum() + self.const) + u @ u + F.logdet11)
        ih = (1.0 / h)[refs]
        lev = th * th * ih if z2 is None else th * th * z2 * ih
        c = lev * dW
        tvec = th * np.bincount(refs, c if z is None else z * c, minlength=nl) / h
        zt_ = tvec[refs] if z is None else z * tvec[refs]  # Z t (without theta)
        zt = th * zt_
        r = c - 2.0 * s - W * zt
        grad_beta = self.X.T @ r
        zu = u[refs] if z is None else z * u[refs]
        wz2 = W if z2 is None else W * z2
        grad_theta = float(r @ zu + s @ zt_ + 2.0 * th * (wz2 @ ih))
        if not self.family.n_psi:
            return dev, np.concatenate([[grad_theta], grad_beta])
        grad_psi = [-2.0 * l_p.sum() + lev @ W_p + zt @ s_p for l_p, s_p, W_p in pd]
        if self._last is not None:  # the psi-sensitivity of the mode for the next warm start
            self._last["s_psi"] = [s_p for _, s_p, _ in pd]
        return dev, np.concatenate([[grad_theta], grad_beta, grad_psi])

    def diag_gradients_near(self, beta, theta, psi, betas, thetas, psis=None):
        """Exact gradients (rows as ``deviance_and_gradient``'s) at K points (thetas[k], betas[k],
        psis[k]) near (beta, theta, psi), for a single scalar term, all K at once; None where the
        batch does not apply (theta = 0, PIRLS trouble), the caller then loops. ``psis`` (K, n_psi),
        when given, may differ from psi only in the components the family evaluates per point
        (``family.rowwise_psi``: a zero model's coefficients); None means psi at every point.

        The finite-difference Hessian of the covariance matrix needs one gradient per parameter
        at a point 1e-6 away: each mode is predicted to first order from the one at
        (beta, theta, psi) (``_predict_u``'s rule) and polished by Newton steps on all K points
        together (per-level sums over a flattened (K, l) bincount), so the K evaluations cost
        about as many numpy calls as one.
        """
        th = float(theta[0])
        if self.n_agq > 1:
            return None
        fam = self.family
        betas = np.asarray(betas, float)
        TH = np.asarray(thetas, float)[:, None]
        K = TH.shape[0]
        P = psi
        dpsi = None
        if psis is not None:
            dpsi = np.asarray(psis, float) - np.asarray(psi, float)[None, :]
            if not np.any(dpsi):
                dpsi = None
            elif getattr(fam, "composite", False):
                P = np.asarray(psis, float)  # (K, n_psi): CompositeFamily.split's batch
            else:
                P = np.asarray(psis, float).T[:, :, None]  # component k: a (K, 1) column against eta (K, n)
        if th == 0.0:
            return self._boundary_gradients(betas, TH, P) if not np.any(TH) else None
        u, _, F, _, _, s, W, dW0 = self.pirls(beta, theta, psi=psi)
        order = 2 if fam.dw_costly else 3
        refs, nl, z, z2 = self._refs, self._nlev, self._z, self._z2
        flat = (refs[None, :] + nl * np.arange(K)[:, None]).ravel()

        def level_sums(v):
            return np.bincount(flat, v.ravel(), minlength=K * nl).reshape(K, nl)

        def by_row(a):
            return a[:, refs] if z is None else z * a[:, refs]

        h = F.a11
        base = self.offset + betas @ self.X.T
        zu0 = u[refs] if z is None else z * u[refs]
        deta = (betas - beta) @ self.X.T + (TH - th) * zu0
        v = s * ((TH - th) / th) - W * deta
        if dpsi is not None:  # the rows' score change with psi (s_psi at the mode)
            cols = fam.laplace_gradient_terms(self.y, self.eta, self.w, psi, dW0)[1]
            v = v + dpsi @ np.array([np.broadcast_to(c[1], (self.n,)) for c in cols])
        U = u + TH * level_sums(v if z is None else z * v) / ((TH / th) ** 2 * (h - 1.0) + 1.0)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for _ in range(4):
                zu = by_row(U)
                eta = base + TH * zu
                ll, sk, Wk, dWk = fam.eta_derivs(self.y, eta, self.w, P, order)
                g = TH * level_sums(sk if z is None else z * sk) - U
                hk = TH * TH * level_sums(Wk if z2 is None else Wk * z2) + 1.0
                obj = -2.0 * ll.sum(axis=1) + np.einsum("kj,kj->k", U, U)
                if not (np.all(np.isfinite(obj)) and hk.min() > 0.0):
                    return None
                du = g / hk
                if np.all(np.einsum("kj,kj->k", g, du) < self.DEC_STOP * (np.abs(obj) + 1.0)):
                    break
                U = U + du
            else:
                return None
            if dWk is None or fam.n_psi:
                dWk, pd = fam.laplace_gradient_terms(self.y, eta, self.w, P, dWk)
            else:
                pd = []
            ih = (1.0 / hk)[:, refs]
            lev = TH * TH * ih if z2 is None else TH * TH * z2 * ih
            c = lev * dWk
            tvec = TH * level_sums(c if z is None else z * c) / hk
            zt_ = by_row(tvec)
            zt = TH * zt_
            r = c - 2.0 * sk - Wk * zt
            wz2 = Wk if z2 is None else Wk * z2
            cols = [(np.einsum("ki,ki->k", r, zu) + np.einsum("ki,ki->k", sk, zt_)
                     + 2.0 * TH[:, 0] * np.einsum("ki,ki->k", wz2, ih))[:, None], r @ self.X]
            for l_p, s_p, W_p in pd:
                l_p, s_p, W_p = (np.broadcast_to(a, eta.shape) for a in (l_p, s_p, W_p))
                cols.append((-2.0 * l_p.sum(axis=1) + np.einsum("ki,ki->k", lev, W_p)
                             + np.einsum("ki,ki->k", zt, s_p))[:, None])
            out = np.concatenate(cols, axis=1)
        return out if np.all(np.isfinite(out)) else None

    def _boundary_gradients(self, betas, TH, P):
        """``diag_gradients_near`` with theta = 0 at every point (a variance on its boundary, held
        fixed): Z Lambda = 0, so u^ = 0, H = I and the Laplace deviance is the GLM's -2 l(beta, psi);
        its gradient is (r'Zu = 0, X'r, -2 sum l_psi) with r = -2 s (``_diag_gradient`` at theta = 0)."""
        fam = self.family
        K = TH.shape[0]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            eta = self.offset + betas @ self.X.T
            ll, sk, Wk, dWk = fam.eta_derivs(self.y, eta, self.w, P, 2)
            cols = [np.zeros((K, 1)), (-2.0 * sk) @ self.X]
            if fam.n_psi:
                for d in fam.psi_derivs(self.y, eta, self.w, P, second=False):
                    cols.append(-2.0 * np.broadcast_to(d[0], eta.shape).sum(axis=1)[:, None])
            out = np.concatenate(cols, axis=1)
        return out if np.all(np.isfinite(out)) else None
