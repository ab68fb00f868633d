"""Covariance structures of random-effects terms (glmmTMB's ``us``, ``diag``, ``cs``, ``ar1``, ...).

Each term k has q_k coefficients per level, b_l ~ N(0, s^2 T_k T_k') with s = sigma for the
linear mixed model (theta relative to the residual SD, as lme4) and s = 1 otherwise. A structure
maps its parameter vector phi_k to the lower-triangular factor T_k and pulls a gradient in T_k
back to phi_k:

* ``us``: phi = T's lower triangle column by column (lme4's theta; diagonal >= 0).
* ``diag`` / ``homdiag``: T = diag(sd_1..sd_q) / sd * I.
* correlation structures: T = D L with D = diag(sd) (heterogeneous: ``cs``, ``toep``) or
  sd * I (homogeneous: ``homcs``, ``ar1``, ``ou``, ``exp``, ``gau``, ``mat``) and L the Cholesky
  factor of a correlation matrix R(c) with parameters c:

  - ``cs``/``homcs``: R = rho 11' + (1 - rho) I, rho = (1 + a) / (1 + exp(-c)) - a, a = 1/(q - 1)
    (glmmTMB 1.1.5's map, which keeps R positive definite);
  - ``ar1``: R_ij = rho^|i - j|, rho = c / sqrt(1 + c^2) (glmmTMB's);
  - ``toep``: R_ij = r_|i-j| from partial autocorrelations pi_k = c_k / sqrt(1 + c_k^2) by the
    Durbin-Levinson recursion (positive definite for any c);
  - ``ou``: R_ij = exp(-exp(c) |t_i - t_j|) (glmmTMB's ``ou``; c = log rate);
  - ``exp``: R_ij = exp(-d_ij / exp(c)), d the Euclidean distance (c = log range);
  - ``gau``: R_ij = exp(-(d_ij / exp(c))^2);
  - ``mat``: R_ij = 2^(1-kappa) / Gamma(kappa) x^kappa K_kappa(x), x = d_ij / exp(c_1),
    kappa = exp(c_2) (TMB's ``matern``).

The SD parameters sd >= 0 have lower bound 0 (a boundary fit), correlation parameters are
unbounded. Gradients: with G = dF/dT (lower triangle), dF/dsd_i = sum_j G_ij L_ij (heterogeneous)
or sum G * L (homogeneous); for a correlation parameter, with dL = L Phi(L^-1 dR L^-T) (Phi: the
lower triangle with half the diagonal), dF/dc = sum K * dR where K = L^-T P L^-1 and P = Phi of
L'DG — one pair of triangular solves per evaluation, however many parameters.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import special

from glmmdiag.errors import FormulaError
from glmmdiag.fit.dense import solve_triangular

__all__ = [
    "STRUCTURES",
    "DISTANCE_STRUCTURES",
    "TIME_STRUCTURES",
    "Structure",
    "Unstructured",
    "make_structure",
]

# glmmTMB's names; the distance structures take coordinates (``numFactor(...)``)
DISTANCE_STRUCTURES = ("ou", "exp", "gau", "mat")
TIME_STRUCTURES = ("ar1", "toep")
STRUCTURES = ("us", "diag", "homdiag", "cs", "homcs") + TIME_STRUCTURES + DISTANCE_STRUCTURES


@functools.lru_cache(maxsize=64)
def _lower_triangle_colmajor(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a q x q lower triangle in column-major order (lme4's theta)."""
    r, c = np.tril_indices(q)
    o = np.lexsort((r, c))
    return r[o], c[o]


class Structure:
    """Map phi -> T (q x q, lower triangular) for one random-effects term."""

    code = "us"
    n_par = 0

    def __init__(self, q: int):
        self.q = q

    # -- parameters
    def lower(self) -> np.ndarray:
        return np.where(self.sd_mask(), 0.0, -np.inf)

    def sd_mask(self) -> np.ndarray:
        """Parameters that are standard deviations (bounded below by 0; 0 = singular fit)."""
        raise NotImplementedError

    def initial(self) -> np.ndarray:
        raise NotImplementedError

    def factor(self, par) -> np.ndarray:
        raise NotImplementedError

    def pullback(self, par, G) -> np.ndarray:
        """dF/dphi from G = dF/dT (entries above the diagonal are ignored)."""
        raise NotImplementedError

    def start(self, S: np.ndarray) -> np.ndarray:
        """Parameters whose covariance T T' approximates S (a moment estimate)."""
        raise NotImplementedError

    def names(self, term: str, cnames: list[str]) -> list[str]:
        raise NotImplementedError

    def describe(self, par) -> dict:
        """The structure's own parameters on glmmTMB's reporting scale (rho, range, ...)."""
        return {}

    def markov_steps(self, c) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """A Markov correlation's step quantities, or None when R^-1 is not tridiagonal.

        For R_ij = prod of rho_k over the steps k between i and j (ar1; ou with sorted 1-D times),
        R = L L' with L^-1 lower bidiagonal: row 1 is e_1', row i (i >= 2) is
        a_i e_i' - b_i e_{i-1}' with a_i = 1 / sqrt(1 - rho_i^2), b_i = rho_i a_i. Returns, per step
        i = 2..q (arrays of length q - 1), g = rho^2 / (1 - rho^2) (so a^2 = 1 + g), h = rho / (1 - rho^2)
        (so a b = h) and their derivatives dg/dc, dh/dc in the (single) correlation parameter c;
        then R^-1 = L^-T L^-1 has diagonal 1 + g_i + g_{i+1} (g_1 = g_{q+1} = 0), subdiagonal -h and
        log|R| = -sum log(1 + g) (:mod:`glmmdiag.fit.banded`).
        """
        return None


class Unstructured(Structure):
    """lme4's general positive semi-definite covariance (glmmTMB's ``us``)."""

    code = "us"

    def __init__(self, q: int):
        super().__init__(q)
        self.order = _lower_triangle_colmajor(q)
        self.n_par = q * (q + 1) // 2

    def sd_mask(self):
        r, c = self.order
        return r == c

    def initial(self):
        return self.sd_mask().astype(float)

    def factor(self, par):
        T = np.zeros((self.q, self.q))
        T[self.order] = par
        return T

    def pullback(self, par, G):
        return np.asarray(G)[self.order]

    def start(self, S):
        vals, vecs = np.linalg.eigh(0.5 * (S + S.T))
        vals = np.maximum(vals, 1e-4 * max(vals.max(), 1e-12))
        L = np.linalg.cholesky((vecs * vals) @ vecs.T)
        return np.clip(L[self.order], -10, 10)

    def names(self, term, cnames):
        return [f"{term}.{cnames[i]}" if i == j else f"{term}.{cnames[i]}.{cnames[j]}" for i, j in zip(*self.order)]


class Diagonal(Structure):
    """Independent coefficients with their own SDs (glmmTMB's ``diag``; ``homdiag``: one SD)."""

    def __init__(self, q: int, homogeneous: bool = False):
        super().__init__(q)
        self.homogeneous = homogeneous
        self.code = "homdiag" if homogeneous else "diag"
        self.n_par = 1 if homogeneous else q

    def sd_mask(self):
        return np.ones(self.n_par, bool)

    def initial(self):
        return np.ones(self.n_par)

    def factor(self, par):
        return np.diag(np.broadcast_to(np.asarray(par, float), (self.q,)).copy())

    def pullback(self, par, G):
        d = np.diagonal(np.asarray(G))
        return np.array([d.sum()]) if self.homogeneous else d.copy()

    def start(self, S):
        sd = np.sqrt(np.maximum(np.diag(S), 1e-4 * max(np.max(np.diag(S)), 1e-12)))
        return np.array([np.sqrt(np.mean(sd**2))]) if self.homogeneous else sd

    def names(self, term, cnames):
        return [f"{term}.sd"] if self.homogeneous else [f"{term}.{c}" for c in cnames]


class CorrelationStructure(Structure):
    """T = D L(c): SDs (one, or one per coefficient) times the Cholesky factor of R(c)."""

    heterogeneous = False
    n_corr = 1

    def __init__(self, q: int, coords: np.ndarray | None = None):
        super().__init__(q)
        self.coords = coords
        self.n_sd = q if self.heterogeneous else 1
        self.n_par = self.n_sd + self.n_corr
        self._cache: tuple | None = None
        self._dcache: tuple | None = None

    # -- correlation model (per structure)
    def corr(self, c) -> np.ndarray:
        raise NotImplementedError

    def corr_derivatives(self, c) -> list[np.ndarray]:
        """dR/dc_j for each correlation parameter (symmetric q x q)."""
        raise NotImplementedError

    def corr_start(self, R) -> np.ndarray:
        return np.zeros(self.n_corr)

    # -- shared algebra
    def _chol(self, c):
        key = np.asarray(c, float).tobytes()
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        R = self.corr(c)
        try:
            L = np.linalg.cholesky(R)
        except np.linalg.LinAlgError:  # numerically semi-definite (a very long range): a tiny ridge
            L = np.linalg.cholesky(R + 1e-10 * np.eye(self.q))
        self._cache = (key, L)
        return L

    def _sd(self, par):
        return np.broadcast_to(np.asarray(par[: self.n_sd], float), (self.q,))

    def sd_mask(self):
        m = np.zeros(self.n_par, bool)
        m[: self.n_sd] = True
        return m

    def initial(self):
        return np.concatenate([np.ones(self.n_sd), self.corr_start(None)])

    def factor(self, par):
        par = np.asarray(par, float)
        L = self._chol(par[self.n_sd :])
        return self._sd(par)[:, None] * L

    def pullback(self, par, G):
        par = np.asarray(par, float)
        c = par[self.n_sd :]
        L = self._chol(c)
        G = np.tril(np.asarray(G, float))
        sd = self._sd(par)
        GL = np.sum(G * L, axis=1)
        out = np.empty(self.n_par)
        out[: self.n_sd] = GL if self.heterogeneous else GL.sum()
        B = L.T @ (sd[:, None] * G)
        P = np.tril(B, -1)
        P[np.diag_indices(self.q)] = 0.5 * np.diag(B)
        Y = solve_triangular(L, P, lower=True, trans=True)  # L^-T P (LAPACK trtrs, no input checks)
        K = solve_triangular(L, np.ascontiguousarray(Y.T), lower=True, trans=True).T  # (L^-T P) L^-1
        for j, dR in enumerate(self._corr_derivatives_cached(c)):
            out[self.n_sd + j] = float(np.sum(K * dR))
        return out

    def _corr_derivatives_cached(self, c) -> list[np.ndarray]:
        """``corr_derivatives`` memoised for the last c (the gradients of a finite-difference
        Hessian step along the SDs or the fixed effects share c; Matern's cost three Bessel arrays)."""
        key = np.asarray(c, float).tobytes()
        if self._dcache is None or self._dcache[0] != key:
            self._dcache = (key, self.corr_derivatives(c))
        return self._dcache[1]

    def start(self, S):
        d = np.maximum(np.diag(S), 1e-4 * max(np.max(np.diag(S)), 1e-12))
        sd = np.sqrt(d)
        R = S / np.outer(sd, sd)
        sd_par = sd if self.heterogeneous else np.array([np.sqrt(np.mean(d))])
        return np.concatenate([sd_par, self.corr_start(R)])

    def names(self, term, cnames):
        sd = [f"{term}.{c}" for c in cnames] if self.heterogeneous else [f"{term}.sd"]
        return sd + [f"{term}.{n}" for n in self.corr_names()]

    def corr_names(self) -> list[str]:
        return ["corr"]


def _mean_offdiagonal(R, lag=None) -> float:
    """Mean correlation below the diagonal (or on the lag-th subdiagonal), clipped to [-0.9, 0.9]."""
    if R is None or R.shape[0] < 2:
        return 0.0
    vals = np.diagonal(R, offset=-lag) if lag else R[np.tril_indices(R.shape[0], -1)]
    vals = vals[np.isfinite(vals)]
    return float(np.clip(np.mean(vals), -0.9, 0.9)) if vals.size else 0.0


class CompoundSymmetry(CorrelationStructure):
    """One correlation between any two coefficients (``cs``: own SDs; ``homcs``: one SD)."""

    def __init__(self, q, heterogeneous: bool):
        self.heterogeneous = heterogeneous
        self.code = "cs" if heterogeneous else "homcs"
        super().__init__(q)
        self._a = 1.0 / (q - 1) if q > 1 else 0.0

    def rho(self, c):
        return (1.0 + self._a) * special.expit(c[0]) - self._a

    def corr(self, c):
        r = self.rho(c)
        return np.full((self.q, self.q), r) + (1.0 - r) * np.eye(self.q)

    def corr_derivatives(self, c):
        e = special.expit(c[0])
        drho = (1.0 + self._a) * e * (1.0 - e)
        return [drho * (1.0 - np.eye(self.q))]

    def corr_start(self, R):
        r = 0.1 if R is None else _mean_offdiagonal(R)
        r = float(np.clip(r, -self._a + 1e-3, 0.95))
        return np.array([special.logit((r + self._a) / (1.0 + self._a))])

    def corr_names(self):
        return ["rho"]

    def describe(self, par):
        return {"rho": float(self.rho(np.asarray(par[self.n_sd :])))}


def _lags(q):
    i = np.arange(q)
    return np.abs(i[:, None] - i[None, :])


class AR1(CorrelationStructure):
    """First-order autoregressive correlation over equally spaced times: R_ij = rho^|i-j|."""

    code = "ar1"

    def __init__(self, q):
        super().__init__(q)
        self._lag = _lags(q)

    @staticmethod
    def rho(c):
        return c[0] / np.sqrt(1.0 + c[0] ** 2)

    def corr(self, c):
        return self.rho(c) ** self._lag

    def corr_derivatives(self, c):
        r = self.rho(c)
        drho = (1.0 + c[0] ** 2) ** -1.5
        lag = self._lag
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(lag > 0, lag * np.power(r, np.maximum(lag - 1, 0)), 0.0)
        return [drho * d]

    def corr_start(self, R):
        r = 0.3 if R is None else _mean_offdiagonal(R, lag=1)
        r = float(np.clip(r, -0.9, 0.9))
        return np.array([r / np.sqrt(1.0 - r * r)])

    def markov_steps(self, c):
        """rho = c / sqrt(1 + c^2) at every step: g = c^2, h = c sqrt(1 + c^2) exactly (no
        cancellation as |rho| -> 1), dg/dc = 2 c, dh/dc = (1 + 2 c^2) / sqrt(1 + c^2)."""
        c0 = float(c[0])
        r = np.sqrt(1.0 + c0 * c0)
        k = self.q - 1
        return (np.full(k, c0 * c0), np.full(k, c0 * r), np.full(k, 2.0 * c0), np.full(k, (1.0 + 2.0 * c0 * c0) / r))

    def corr_names(self):
        return ["rho"]

    def describe(self, par):
        return {"rho": float(self.rho(np.asarray(par[self.n_sd :])))}


class Toeplitz(CorrelationStructure):
    """A separate correlation for every lag, heterogeneous SDs (glmmTMB's ``toep``).

    Unconstrained c_k -> partial autocorrelation pi_k = c_k / sqrt(1 + c_k^2) -> autocorrelations
    r_1..r_{q-1} by the Durbin-Levinson recursion; R_ij = r_|i-j| is positive definite for any c.
    """

    code = "toep"
    heterogeneous = True

    def __init__(self, q):
        self.n_corr = max(q - 1, 0)
        super().__init__(q)
        self._lag = _lags(q)

    @staticmethod
    def autocorrelations(c):
        """r_0..r_m from the unconstrained parameters (works on complex input: complex-step derivatives)."""
        c = np.asarray(c)
        pacf = c / np.sqrt(1.0 + c * c)
        m = len(c)
        r = np.zeros(m + 1, dtype=pacf.dtype)
        r[0] = 1.0
        phi = np.zeros(0, dtype=pacf.dtype)
        for k in range(m):
            a = pacf[k]
            # r_{k+1} = sum_j phi_j r_{k-j} + a (1 - sum_j phi_j r_{j+1})
            r[k + 1] = np.sum(phi * r[k:0:-1]) + a * (1.0 - np.sum(phi * r[1 : k + 1]))
            phi = np.concatenate([phi - a * phi[::-1], [a]])
        return r

    def corr(self, c):
        return self.autocorrelations(np.asarray(c, float))[self._lag]

    def corr_derivatives(self, c):
        c = np.asarray(c, float)
        h = 1e-20
        out = []
        for j in range(self.n_corr):
            cc = c.astype(complex)
            cc[j] += 1j * h
            dr = self.autocorrelations(cc).imag / h
            out.append(dr[self._lag])
        return out

    def corr_start(self, R):
        return np.zeros(self.n_corr)

    def corr_names(self):
        return [f"pacf{k + 1}" for k in range(self.n_corr)]

    def describe(self, par):
        r = self.autocorrelations(np.asarray(par[self.n_sd :], float))
        return {f"r{k}": float(v) for k, v in enumerate(r[1:], start=1)}


def distances(coords: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``coords`` (q x d)."""
    diff = coords[:, None, :] - coords[None, :, :]
    return np.sqrt(np.sum(diff * diff, axis=-1))


class DistanceStructure(CorrelationStructure):
    """R_ij = f(d_ij / range) for coordinates (one SD; the range on the log scale)."""

    def __init__(self, q, coords):
        super().__init__(q, np.asarray(coords, float))
        self.dist = distances(self.coords)
        pos = self.dist[self.dist > 0]
        self._typical = float(np.median(pos)) if pos.size else 1.0

    def corr_names(self):
        return ["log_range"]

    def range(self, c):
        return float(np.exp(c[0]))

    def describe(self, par):
        return {"range": self.range(np.asarray(par[self.n_sd :], float))}


class OU(DistanceStructure):
    """Ornstein-Uhlenbeck (continuous-time AR1): R_ij = exp(-exp(c) |t_i - t_j|) (glmmTMB's ``ou``)."""

    code = "ou"

    def corr(self, c):
        return np.exp(-np.exp(c[0]) * self.dist)

    def corr_derivatives(self, c):
        k = np.exp(c[0])
        return [-k * self.dist * np.exp(-k * self.dist)]

    def corr_start(self, R):
        return np.array([np.log(1.0 / self._typical)])

    def corr_names(self):
        return ["log_rate"]

    def markov_steps(self, c):
        """Sorted 1-D times t_1 < ... < t_q: rho_i = exp(-x_i), x_i = exp(c) (t_i - t_{i-1}), so
        g = 1 / expm1(2 x), h = 1 / (2 sinh x), dg/dc = -2 x g (1 + g), dh/dc = -x h coth x
        (dx/dc = x). None for coordinates in more than one dimension or not strictly increasing."""
        if self.coords.shape[1] != 1 or self.q < 2:
            return None
        steps = np.diff(self.coords[:, 0])
        if not np.all(steps > 0):
            return None
        x = np.exp(float(c[0])) * steps
        with np.errstate(over="ignore"):
            g = 1.0 / np.expm1(2.0 * x)
            h = 0.5 / np.sinh(x)
        return g, h, -2.0 * x * g * (1.0 + g), -x * h / np.tanh(x)

    def describe(self, par):
        k = float(np.exp(par[self.n_sd]))
        return {"rate": k, "rho_unit": float(np.exp(-k))}


class Exponential(DistanceStructure):
    code = "exp"

    def corr(self, c):
        return np.exp(-self.dist / np.exp(c[0]))

    def corr_derivatives(self, c):
        x = self.dist / np.exp(c[0])
        return [x * np.exp(-x)]

    def corr_start(self, R):
        return np.array([np.log(self._typical / 2.0)])


class GaussianCorrelation(DistanceStructure):
    code = "gau"

    def corr(self, c):
        return np.exp(-((self.dist / np.exp(c[0])) ** 2))

    def corr_derivatives(self, c):
        x2 = (self.dist / np.exp(c[0])) ** 2
        return [2.0 * x2 * np.exp(-x2)]

    def corr_start(self, R):
        return np.array([np.log(self._typical / 2.0)])


BESSEL_STRIP = 1.3  # half-width a < pi/2 of the strip in ``bessel_k_quadrature``'s error bound
BESSEL_DIGITS = 35.0  # aim: trapezoid error exp(-35) ~ 6e-16 relative
BESSEL_TAIL = 50.0  # truncate once x_min cosh t - (|nu| + 1) t exceeds this (integrand < e^-50)


def bessel_k_quadrature(x: np.ndarray, nu: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K_nu(x), K_{nu-1}(x) and dK_nu(x)/dnu for x > 0 from one table of exp(-x cosh t).

    K_nu(x) = int_0^inf exp(-x cosh t) cosh(nu t) dt and dK_nu/dnu = int_0^inf t sinh(nu t)
    exp(-x cosh t) dt (DLMF 10.32.9 and its derivative in nu). The integrands are even and
    analytic in the strip |Im t| < pi / 2 with double-exponential decay, so the trapezoid rule
    with step h (half weight at t = 0) has relative error about exp(-2 pi a / h) M(a) / K_nu(x)
    for any a < pi / 2, with M(a) / K_nu(x) <~ exp(x (1 - cos a)) / cos(a)^|nu| (Trefethen &
    Weideman 2014, SIAM Review 56(3)). With a = 1.3 the step is chosen so that this is exp(-35)
    at the largest x where x^nu K_nu(x) still matters (x <= 40 + 2 |nu|); nodes run until
    x_min cosh t - (|nu| + 1) t > 50. Against scipy's kv: |error| of 2^(1-nu)/Gamma(nu) x^nu K
    below 1e-13 for nu <= 6 and x in [1e-5, 60] (tests/fit/test_covstruct.py).
    """
    x = np.asarray(x, float)
    xmin = float(np.min(x)) if x.size else 1.0
    xcap = min(float(np.max(x)) if x.size else 1.0, 40.0 + 2.0 * abs(nu))
    a = BESSEL_STRIP
    h = 2.0 * np.pi * a / (BESSEL_DIGITS + xcap * (1.0 - np.cos(a)) - abs(nu) * np.log(np.cos(a)))
    t = np.arange(0.0, 80.0, h)  # (80: x_min down to 1e-30)
    tail = xmin * np.cosh(t) - (abs(nu) + 1.0) * t
    t = t[: int(np.argmax(tail > BESSEL_TAIL)) + 1] if np.any(tail > BESSEL_TAIL) else t
    w = np.full(t.size, h)
    w[0] = 0.5 * h
    weights = np.stack([w * np.cosh(nu * t), w * np.cosh((nu - 1.0) * t), w * t * np.sinh(nu * t)], axis=1)
    # node t_j only matters for x < (50 + (|nu| + 1) t_j) / (cosh t_j - 1) (relative to K_nu(x) >
    # exp(-x)): with x sorted, each node works on a prefix (half the table for spatial ranges)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ch = np.cosh(t)
    with np.errstate(divide="ignore"):
        limit = (BESSEL_TAIL + (abs(nu) + 1.0) * t) / (ch - 1.0)
    counts = np.searchsorted(xs, limit, side="right")
    E = np.zeros((t.size, x.size))  # exp(-x cosh t_j) on each node's prefix, zero beyond
    with np.errstate(under="ignore"):
        for j in range(t.size):
            nj = int(counts[j])
            np.multiply(xs[:nj], -ch[j], out=E[j, :nj])
            np.exp(E[j, :nj], out=E[j, :nj])
    out = np.empty((x.size, 3))
    out[order] = E.T @ weights
    return out[:, 0], out[:, 1], out[:, 2]


class Matern(DistanceStructure):
    """Matern correlation f = 2^(1-kappa)/Gamma(kappa) x^kappa K_kappa(x), x = d / range; c = (log range,
    log kappa). Exact derivatives: df/dlog(range) = 2^(1-kappa)/Gamma(kappa) x^(kappa+1) K_{kappa-1}(x)
    (d/dx [x^k K_k(x)] = -x^k K_{k-1}(x)) and df/dlog(kappa) = kappa [f (log(x / 2) - psi(kappa))
    + 2^(1-kappa)/Gamma(kappa) x^kappa dK_kappa/dkappa], with K_{kappa-1} and dK/dkappa from one
    quadrature table (``bessel_k_quadrature``; scipy has no derivative of K in its order)."""

    code = "mat"
    n_corr = 2

    def __init__(self, q, coords):
        super().__init__(q, coords)
        self._iu = np.triu_indices(q, 1)  # Bessel functions on the upper triangle only (symmetry)
        self._dtri = self.dist[self._iu]

    def _full(self, tri: np.ndarray, diag: float) -> np.ndarray:
        out = np.empty((self.q, self.q))
        out[self._iu] = tri
        out[self._iu[1], self._iu[0]] = tri
        np.fill_diagonal(out, diag)
        return out

    @staticmethod
    def _scaled_bessel(x, kappa, order):
        """2^(1-kappa) / Gamma(kappa) x^kappa K_order(x) for x > 0 (0 where it underflows)."""
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            v = np.exp((1.0 - kappa) * np.log(2.0) - special.gammaln(kappa) + kappa * np.log(x)) * special.kv(order, x)
        return np.where(np.isfinite(v) & (x > 0), v, np.where(x > 0, 0.0, 1.0))

    def corr(self, c):
        kappa = np.exp(c[1])
        return self._full(self._scaled_bessel(self._dtri / np.exp(c[0]), kappa, kappa), 1.0)

    def corr_derivatives(self, c):
        kappa = float(np.exp(c[1]))
        x = self._dtri / np.exp(c[0])
        k_nu, k_lower, dk_nu = bessel_k_quadrature(x, kappa)
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            pref = np.exp((1.0 - kappa) * np.log(2.0) - special.gammaln(kappa) + kappa * np.log(x))
            d_range = pref * k_lower * x
            d_kappa = kappa * pref * (k_nu * (np.log(x / 2.0) - special.digamma(kappa)) + dk_nu)
        ok = (x > 0) & np.isfinite(d_range) & np.isfinite(d_kappa)
        return [self._full(np.where(ok, d_range, 0.0), 0.0), self._full(np.where(ok, d_kappa, 0.0), 0.0)]

    def corr_start(self, R):
        return np.array([np.log(self._typical / 2.0), np.log(0.5)])

    def corr_names(self):
        return ["log_range", "log_kappa"]

    def describe(self, par):
        c = np.asarray(par[self.n_sd :], float)
        return {"range": float(np.exp(c[0])), "kappa": float(np.exp(c[1]))}


def make_structure(code: str, q: int, coords: np.ndarray | None = None) -> Structure:
    """The structure named ``code`` (glmmTMB's name) for a term with q coefficients per level."""
    if code == "us":
        return Unstructured(q)
    if code in ("diag", "homdiag"):
        return Diagonal(q, homogeneous=code == "homdiag")
    if code in ("cs", "homcs"):
        return CompoundSymmetry(q, heterogeneous=code == "cs")
    if code == "ar1":
        return AR1(q)
    if code == "toep":
        return Toeplitz(q)
    if code in DISTANCE_STRUCTURES:
        if coords is None:
            raise FormulaError(f"{code}() needs coordinates: write {code}(numFactor(x, y) + 0 | group)")
        cls = {"ou": OU, "exp": Exponential, "gau": GaussianCorrelation, "mat": Matern}[code]
        return cls(q, coords)
    raise FormulaError(f"unknown covariance structure {code!r}; known: {', '.join(STRUCTURES)}")
