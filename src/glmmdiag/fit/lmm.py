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

    @property
    def has_gradient(self) -> bool:
        return False

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

    def solution(self, theta) -> LMMSolution:
        theta = np.asarray(theta, float)
        sysm = self.system
        F = sysm.factor(self.cp, theta, self.thetamap)
        dev, r2 = self._criterion(F)
        qr, p, n = sysm.qr, self.p, self.n
        L = F.L22
        Lp = L[:-1, :-1]
        lvec = L[-1, :-1]
        x = linalg.solve_triangular(Lp, lvec, lower=True, trans="T", check_finite=False)
        ur, beta = x[:qr], x[qr:]
        # u1 = A11^{-1} Lambda1' C' v with v = [-Lambda_r ur, -beta, 1]
        v = np.concatenate([-sysm.lam_tilde(F, np.concatenate([ur, beta]))[:qr], -beta, [1.0]])
        u1 = sysm.a11_solve(F, sysm.lam1t(F.T[0], sysm.c_transpose_times(self.cp, v)))
        sigma = float(np.sqrt(r2 / (n - p if self.reml else n)))
        loglik = -0.5 * dev
        RX = L[qr : qr + p, qr : qr + p]
        return LMMSolution(theta, beta, np.concatenate([u1, ur]), sigma, dev, loglik, RX)
