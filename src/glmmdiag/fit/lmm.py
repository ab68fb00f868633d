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

from glmmdiag.fit.blocked import BlockedSystem, level_crossprods, spd_inverse
from glmmdiag.fit.covariance import ThetaMap
from glmmdiag.fit.dense import solve_pd, solve_triangular

__all__ = ["LMMProblem", "LMMSolution"]

SCALAR_TRICK_MIN = 1e-3  # below this theta the general (own-entries) gradient is used


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
        self.thetamap = ThetaMap.for_terms(design.terms)
        self.system = BlockedSystem(design.terms, design.n)
        Xy = np.column_stack([design.X, design.y - design.offset])
        self.cp = self.system.crossprods(design.w, Xy)
        self.n, self.p = design.X.shape
        self.sum_log_w = float(np.sum(np.log(design.w)))
        self._memo: dict = {}  # the last factorisation and criterion + gradient, by theta

    def _factor(self, theta: np.ndarray):
        key = theta.tobytes()
        if self._memo.get("factor_key") != key:
            self._memo["factor_key"] = key
            self._memo["factor"] = self.system.factor(self.cp, theta, self.thetamap)
        return self._memo["factor"]

    has_gradient = True

    def start_theta(self) -> np.ndarray:
        """Moment starting values from the OLS residuals r.

        Per term and level j, b_j = (Z_j'Z_j)^{-1} Z_j'r_j; with s_k^2 the residual variance within
        the levels, Sigma = cov(b_j) - s_k^2 mean((Z_j'Z_j)^{-1}) (made positive definite) and theta
        from the Cholesky factor of Sigma / s_k^2. Levels with too
        few rows for their q coefficients are skipped; a term with too few usable levels keeps
        lme4's start (identity).
        """
        d = self.design
        theta = self.thetamap.initial()
        qr, p = self.system.qr, self.p
        G = self.cp.G[qr:, qr:]  # [X'WX, X'Wy; y'WX, y'Wy]
        try:
            beta = solve_pd(G[:p, :p], G[:p, p]) if p else np.zeros(0)
        except (linalg.LinAlgError, ValueError):
            sw = np.sqrt(d.w)
            beta = linalg.lstsq(d.X * sw[:, None], (d.y - d.offset) * sw)[0]
        res = d.y - d.offset - d.X @ beta
        s2 = float(np.sum(d.w * res**2) / max(self.n - self.p, 1))
        if not s2 > 0:
            return theta
        for k, t in enumerate(d.terms):
            q = t.q
            markov = self.system.markov if k == 0 else None  # one-hot: Z_j'Z_j diagonal
            if markov is not None:
                zz_diag = self.cp.d1_diag  # (l, q)
                zr = markov.level_sums(d.w * res)
                det, trace = np.prod(zz_diag, axis=1), zz_diag.sum(axis=1)
            else:
                zz = self.cp.D1 if k == 0 else level_crossprods(t.refs, t.z, t.nlev, d.w)  # (l, q, q)
                zr = np.stack([np.bincount(t.refs, d.w * t.z[:, a] * res, minlength=t.nlev) for a in range(q)], -1)
                det, trace = np.linalg.det(zz), np.trace(zz, axis1=1, axis2=2)
            structured = self.thetamap.structured(k)
            # (a structured term's many coefficients: det against (trace / q)^q, as trace^q would
            # exclude every level of a 12-time ar1 term)
            size = np.maximum(trace, 1e-300) / (q if structured else 1)
            ok = det > 1e-8 * size**q
            if ok.sum() < max(3, q + 1) and not (structured and ok.sum() >= 3):
                continue
            if markov is not None:
                inv_diag = 1.0 / zz_diag[ok]
                bj = inv_diag * zr[ok]
                inv_mean = np.diag(inv_diag.mean(axis=0))
            else:
                inv = np.linalg.inv(zz[ok])
                bj = np.einsum("lab,lb->la", inv, zr[ok])
                inv_mean = inv.mean(axis=0)
            # residual variance within the levels (the OLS one still holds this term's variance)
            rss = np.bincount(t.refs, d.w * res**2, minlength=t.nlev)[ok] - np.einsum("la,la->l", bj, zr[ok])
            dof = np.bincount(t.refs, minlength=t.nlev)[ok] - q
            s2k = float(rss.sum() / dof.sum()) if dof.sum() > 0 and rss.sum() > 0 else s2
            if structured and dof.sum() <= 0:  # one row per coefficient: split the residual variance
                s2k = 0.5 * s2
            sigma = np.cov(bj, rowvar=False, ddof=1 if self.reml else 0).reshape(q, q) - s2k * inv_mean
            vals, vecs = np.linalg.eigh(0.5 * (sigma + sigma.T))
            vals = np.maximum(vals, 1e-4 * s2k)
            S = (vecs * vals) @ vecs.T / s2k
            theta[self.thetamap.starts[k] : self.thetamap.starts[k + 1]] = self.thetamap.structs[k].start(S)
        return theta

    def objective(self, theta) -> float:
        F = self._factor(np.asarray(theta, float))
        if not F.ok:
            return np.inf
        return self._criterion(F)[0]

    def _criterion(self, F):
        p, n = self.p, self.n
        L = self.system.tail(F)  # [X, y] block after eliminating the random effects
        r2 = L[-1, -1] ** 2
        ldz = F.logdet11 + self.system.logdet_rest(F)
        if self.reml:
            ldx = float(2.0 * np.sum(np.log(np.diag(L)[:p])))
            nr = n - p
            dev = ldz + ldx + nr * (1.0 + np.log(2.0 * np.pi * r2 / nr))
        else:
            dev = ldz + n * (1.0 + np.log(2.0 * np.pi * r2 / n))
        return dev - self.sum_log_w, r2

    def _solve(self, F):
        """beta^ and u^ (term order) from the factor of the augmented system."""
        sysm = self.system
        qr = sysm.qr
        if F.sparse is not None:  # [ur; beta] = S[:-1, :-1]^{-1} S[:-1, -1] by block elimination
            Ld = F.sparse.Ld
            beta = solve_triangular(Ld[:-1, :-1], Ld[-1, :-1], lower=True, trans=True) if self.p else np.zeros(0)
            ur = F.sparse.B[:, -1] - F.sparse.B[:, :-1] @ beta
        else:
            L = F.L22
            # no fixed effects and a single term: nothing but u1 to solve for
            x = solve_triangular(L[:-1, :-1], L[-1, :-1], lower=True, trans=True) if L.shape[0] > 1 else np.zeros(0)
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
        key = theta.tobytes()
        if self._memo.get("grad_key") == key:
            dev, grad = self._memo["grad"]
            return dev, grad.copy()
        sysm, d = self.system, self.design
        F = self._factor(theta)
        if not F.ok:
            return np.inf, np.zeros_like(theta)
        dev, r2 = self._criterion(F)
        beta, u = self._solve(F)
        T = F.T
        terms = d.terms
        scalar = (all(t.q == 1 for t in terms) and not self.thetamap.any_structured
                  and np.all(theta > SCALAR_TRICK_MIN) and F.sparse is None)
        band = F.band  # a single Markov term in precision form: its trace term without own entries
        own = None if scalar or band is not None else sysm.own_inverse(F, self.cp, terms, d.X if self.reml else None)
        starts = np.concatenate([[0], np.cumsum([t.nlev * t.q for t in terms])]).astype(int)
        fitted = d.offset + d.X @ beta
        for k, t in enumerate(terms):
            bk = u[starts[k] : starts[k + 1]].reshape(t.nlev, t.q) @ T[k].T
            if band is not None:  # one value per row (no n x q gather)
                fitted = fitted + sysm.markov.row_values(bk)
                continue
            fitted = fitted + np.einsum("ij,ij->i", t.z, bk[t.refs])
        we = d.w * (d.y - fitted)
        nu = (self.n - self.p) if self.reml else self.n
        grad = np.empty(self.thetamap.n)
        trace = self._scalar_traces(F) if scalar else None
        m = 0
        tm = self.thetamap
        for k, t in enumerate(terms):
            uk = u[starts[k] : starts[k + 1]].reshape(t.nlev, t.q)
            if band is not None:  # the data part through G, the log-determinant in precision form
                G = sysm.markov.data_g(-(2.0 * nu / r2) * we, uk)
                gamma = spd_inverse(F.L22[: self.p, : self.p]) if self.reml and self.p else None
                grad[tm.starts[k] : tm.starts[k + 1]] = tm.pullback(k, theta, G) + band.logdet_gradient(gamma)
                m = tm.starts[k + 1]
                continue
            if tm.structured(k):  # G = dF/dT_k, pulled back to the structure's parameters
                G = t.z.T @ (2.0 * d.w[:, None] * own[k] - (2.0 * nu / r2) * we[:, None] * uk[t.refs])
                grad[tm.starts[k] : tm.starts[k + 1]] = tm.pullback(k, theta, G)
                m = tm.starts[k + 1]
                continue
            rows, cols = tm._order[k]
            for a, b in zip(rows, cols):
                za = t.z[:, a]
                tr = trace[k] if scalar else 2.0 * np.sum(d.w * za * own[k][:, b])
                grad[m] = tr - 2.0 * nu / r2 * np.sum(we * za * uk[t.refs, b])
                m += 1
        self._memo["grad_key"], self._memo["grad"] = key, (dev, grad.copy())
        return dev, grad

    def _scalar_traces(self, F):
        """tr(A^{-1} dA/dtheta_k) for scalar terms with theta_k > 0.

        With L~'Zbar'WZbar L~ = A - J, tr(A^{-1} dA/dtheta_k) = 2 (l_k - sum_{j in k} (A^{-1})_jj) / theta_k.
        Rest terms: diagonal of S^{-1}; term 1: sum 1/a11 + tr(S^{-1} L~'C D C'L~), D = theta_1^2 / a11^2.
        """
        sysm, d = self.system, self.design
        qr = sysm.qr
        m = qr + (self.p if self.reml else 0)
        theta = F.theta
        t1 = theta[0]
        out = []
        if m:
            Sinv = spd_inverse(F.L22[:m, :m])
            Mw = sysm.scale_rest(sysm.c_w_ct(self.cp, t1 * t1 / F.a11**2), F.T)[:m, :m]
            corr = float(np.sum(Mw * Sinv))
        else:
            corr = 0.0
        out.append(2.0 * (d.terms[0].nlev - (np.sum(1.0 / F.a11) + corr)) / t1)
        off = 0
        for k, t in enumerate(d.terms[1:], start=1):
            dk = float(np.sum(np.diag(Sinv)[off : off + t.nlev]))
            out.append(2.0 * (t.nlev - dk) / theta[k])
            off += t.nlev
        return out

    def solution(self, theta) -> LMMSolution:
        theta = np.asarray(theta, float)
        sysm = self.system
        F = self._factor(theta)
        if not F.ok:
            raise linalg.LinAlgError(
                "the penalised least-squares system is not positive definite at the optimum "
                "(the response may lie in the span of the fixed and random effects)"
            )
        dev, r2 = self._criterion(F)
        p, n = self.p, self.n
        beta, u = self._solve(F)
        sigma = float(np.sqrt(r2 / (n - p if self.reml else n)))
        loglik = -0.5 * dev
        RX = sysm.tail(F)[:p, :p]
        return LMMSolution(theta, beta, u, sigma, dev, loglik, RX)
