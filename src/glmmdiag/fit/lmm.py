"""Linear mixed models: the profiled deviance (ML) and REML criterion as functions of theta.

Bates et al. (2015, JSS 67(1), sec. 3): with the Cholesky factor of the augmented system
[Z~'WZ~ + I, Z~'WX, Z~'Wy; ...] (Z~ = Z Lambda), r^2 = penalised residual sum of squares and

    ML:   d(theta)  = log|L_Z|^2 + n (1 + log(2 pi r^2 / n))
    REML: d_R(theta) = log|L_Z|^2 + log|L_X|^2 + (n-p)(1 + log(2 pi r^2 / (n-p)))

minus sum(log w) with prior weights w. beta and sigma follow in closed form.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from glmmdiag.fit.blocked import BlockedSystem
from glmmdiag.fit.covariance import ThetaMap

__all__ = ["LMMProblem", "LMMSolution"]


@dataclass
class LMMSolution:
    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray  # spherical random effects, term order
    sigma: float
    deviance: float  # the minimised criterion (ML deviance or REML criterion)
    loglik: float  # ML log-likelihood at these parameters (for REML: the REML log-likelihood)
    RX: np.ndarray  # lower Cholesky of the beta block of the Schur complement (X'V^-1X / sigma^2)


class LMMProblem:
    def __init__(self, design, reml: bool):
        self.design = design
        self.reml = reml
        self.thetamap = ThetaMap([t.q for t in design.terms])
        self.system = BlockedSystem(design.terms, design.n)
        Xy = np.column_stack([design.X, design.y - design.offset])
        self.cp = self.system.crossprods(design.w, Xy)
        self.n, self.p = design.X.shape
        self.sum_log_w = float(np.sum(np.log(design.w)))

    has_gradient = True

    def objective(self, theta) -> float:
        F = self.system.factor(self.cp, np.asarray(theta, float), self.thetamap)
        if not F.ok:
            return np.inf
        return self._criterion(F)[0]

    def _criterion(self, F):
        qr, p, n = self.system.qr, self.p, self.n
        L = F.L22
        r2 = L[-1, -1] ** 2
        ldz = F.logdet11 + self.system.logdet_rest(F)
        if self.reml:
            ldx = float(2.0 * np.sum(np.log(np.diag(L)[qr : qr + p])))
            nr = n - p
            dev = ldz + ldx + nr * (1.0 + np.log(2.0 * np.pi * r2 / nr))
        else:
            dev = ldz + n * (1.0 + np.log(2.0 * np.pi * r2 / n))
        return dev - self.sum_log_w, r2

    def _solve(self, F):
        """beta^ and u^ (term order) from the factor of the augmented system."""
        sysm = self.system
        qr = sysm.qr
        L = F.L22
        x = linalg.solve_triangular(L[:-1, :-1], L[-1, :-1], lower=True, trans="T", check_finite=False)
        ur, beta = x[:qr], x[qr:]
        # u1 = A11^{-1} Lambda1' C' v with v = [-Lambda_r ur, -beta, 1]
        v = np.concatenate([-sysm.lam_tilde(F, np.concatenate([ur, beta]))[:qr], -beta, [1.0]])
        u1 = sysm.a11_solve(F, sysm.lam1t(F.T[0], sysm.c_transpose_times(self.cp, v)))
        return beta, np.concatenate([u1, ur])

    def objective_and_gradient(self, theta):
        """Criterion and its exact gradient in theta.

        d/dtheta_m = tr(A^{-1} dA/dtheta_m) + nu / r^2 * dr^2/dtheta_m with nu = n (ML) or n - p (REML),
        A = H (ML) or the (u, beta) block (REML); dr^2/dtheta_m = -2 e'W Z D_m u^ (envelope theorem),
        tr(A^{-1} dA) = 2 sum_i w_i z_ik[a] (A^{-1} zbar_i)_(k, j_i, b) for theta_m = T_k[a, b].
        """
        theta = np.asarray(theta, float)
        sysm, d = self.system, self.design
        F = sysm.factor(self.cp, theta, self.thetamap)
        if not F.ok:
            return np.inf, np.zeros_like(theta)
        dev, r2 = self._criterion(F)
        beta, u = self._solve(F)
        T = F.T
        terms = d.terms
        own = sysm.own_inverse(F, self.cp, terms, d.X if self.reml else None)
        starts = np.concatenate([[0], np.cumsum([t.nlev * t.q for t in terms])]).astype(int)
        fitted = d.offset + d.X @ beta
        for k, t in enumerate(terms):
            bk = u[starts[k] : starts[k + 1]].reshape(t.nlev, t.q) @ T[k].T
            fitted = fitted + np.einsum("ij,ij->i", t.z, bk[t.refs])
        we = d.w * (d.y - fitted)
        nu = (self.n - self.p) if self.reml else self.n
        grad = np.empty(self.thetamap.n)
        m = 0
        for k, t in enumerate(terms):
            uk = u[starts[k] : starts[k + 1]].reshape(t.nlev, t.q)
            rows, cols = self.thetamap._order[k]
            for a, b in zip(rows, cols):
                za = t.z[:, a]
                grad[m] = 2.0 * np.sum(d.w * za * own[k][:, b]) - 2.0 * nu / r2 * np.sum(we * za * uk[t.refs, b])
                m += 1
        return dev, grad

    def solution(self, theta) -> LMMSolution:
        theta = np.asarray(theta, float)
        sysm = self.system
        F = sysm.factor(self.cp, theta, self.thetamap)
        dev, r2 = self._criterion(F)
        qr, p, n = sysm.qr, self.p, self.n
        L = F.L22
        beta, u = self._solve(F)
        sigma = float(np.sqrt(r2 / (n - p if self.reml else n)))
        loglik = -0.5 * dev
        RX = L[qr : qr + p, qr : qr + p]
        return LMMSolution(theta, beta, u, sigma, dev, loglik, RX)
