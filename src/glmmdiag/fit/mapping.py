"""glmmTMB's ``start=`` and ``map=``: starting values, and fixed or shared parameters.

Parameters are named and scaled as in glmmTMB (``fit$obj$env$parList()``):

``beta``
    the fixed effects, in the order of ``fit.fixef`` (after any aliased column is dropped);
``betad``
    the dispersion on glmmTMB's scale: log sigma^2 (gaussian), log sigma (t), log theta
    (nbinom2), log phi (nbinom1, beta, betabinomial), log shape (Gamma); absent for binomial and
    Poisson;
``theta``
    the random-effects covariance, term by term in the order the terms are written in the
    formula: an unstructured term ``(x | g)`` with q coefficients has q log SDs, then q(q-1)/2
    correlation parameters, the below-diagonal entries of a unit lower-triangular L taken row by
    row (correlation matrix = D^-1/2 L L' D^-1/2, D = diag(L L'); for q = 2 the correlation is
    t / sqrt(1 + t^2)); ``diag(x | g)`` has q log SDs, ``homdiag`` one;
``psi``
    the t family's log df (when ``t_df=`` does not fix it).

``fixed={"betad": [0.0]}`` fixes entries (None entries stay free): the same as
``start={"betad": [0.0]}, map={"betad": [None]}``. ``start={"beta": [...], "theta": [...]}`` sets
starting values; entries not given start where
the fit would start anyway. ``map={"theta": [0, 0, None]}`` gives each entry of a parameter a
label: entries with the same label share one value, ``None`` fixes the entry at its value in
``start`` (which must then be given), a label used once leaves the entry free (glmmTMB's
``map=list(theta = factor(c(1, 1, NA)))``). A mapped model is fitted by maximum likelihood
(Laplace; exact for gaussian) over the free values only: fixed values are not in the optimiser,
not in the covariance of the estimates (a fixed beta has variance 0) and not counted in the df
of logLik / AIC.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import linalg, optimize

from glmmdiag.errors import GlmmdiagError

__all__ = ["PARAMETERS", "ParameterLayout", "ParameterMap", "build_parameter_map", "fit_mapped", "engine_start",
           "state_value", "default_value"]

PARAMETERS = ("beta", "betad", "theta", "psi")
_STRUCTURES = ("us", "diag", "homdiag")


def _formula_order(design) -> list[int]:
    """For each random-effects term as written in the formula, its index in ``design.terms``
    (which are sorted by decreasing number of levels)."""
    specs = list(design.formula.re_terms)
    used: set[int] = set()
    order = []
    for spec in specs:
        for k, t in enumerate(design.terms):
            if k not in used and t.lhs == spec.lhs and t.group == spec.group_name and t.structure == spec.structure:
                used.add(k)
                order.append(k)
                break
        else:  # pragma: no cover - the design builds one term per spec
            raise RuntimeError(f"internal error: no design term for {spec.label}")
    return order


def _us_to_factor(par: np.ndarray, q: int) -> np.ndarray:
    """glmmTMB's (log SDs, row-wise L entries) -> the lower Cholesky factor T of the covariance:
    T = diag(sd_i / |L_i|) L."""
    L = np.eye(q)
    L[np.tril_indices(q, -1)] = par[q:]  # numpy's tril_indices run row by row
    sd = np.exp(par[:q])
    return (sd / np.linalg.norm(L, axis=1))[:, None] * L


def _factor_to_us(T: np.ndarray) -> np.ndarray:
    """Inverse of ``_us_to_factor``: sd_i = |T_i|, L_i = T_i / T_ii (T_ii > 0)."""
    q = T.shape[0]
    sd = np.linalg.norm(T, axis=1)
    d = np.maximum(np.diag(T), 1e-300)
    L = T / d[:, None]
    return np.concatenate([np.log(np.maximum(sd, 1e-300)), L[np.tril_indices(q, -1)]])


@dataclasses.dataclass
class ParameterLayout:
    """glmmTMB's parameter vectors for a design and family, and the maps to the engine's
    (theta, beta, psi)."""

    sizes: dict
    p: int
    n_psi: int
    betad_slope: float | None  # betad = slope * psi[0]
    df_index: int | None
    terms: list  # (design term index, structure code, q, tmb length) in formula order
    thetamap: object

    @classmethod
    def of(cls, design, family) -> "ParameterLayout":
        from glmmdiag.fit.covariance import ThetaMap

        if getattr(family, "composite", False):
            raise GlmmdiagError("start= and map= with ziformula, dispformula or a truncated family are not supported yet")
        k = family.n_psi
        df_index = getattr(family, "t_df_index", None)
        slope = None
        if k:
            b0 = family.glmmtmb_betad(np.zeros(k))
            if b0 is not None:
                e = np.zeros(k)
                e[0] = 1.0
                slope = float(family.glmmtmb_betad(e) - b0)
        n_known = int(slope is not None) + int(df_index is not None)
        if k != n_known:
            raise GlmmdiagError(
                f"start= and map= are not supported yet for the {family.name} family (its parameters "
                f"{list(family.psi_names)} have no glmmTMB name here)")
        terms = []
        for i in _formula_order(design):
            t = design.terms[i]
            if t.structure not in _STRUCTURES or t.index_vars:
                raise GlmmdiagError(
                    f"start= and map= of theta support us, diag and homdiag terms; {t.label} has structure "
                    f"{t.structure!r}")
            n = t.q * (t.q + 1) // 2 if t.structure == "us" else (1 if t.structure == "homdiag" else t.q)
            terms.append((i, t.structure, t.q, n))
        sizes = {"beta": design.X.shape[1], "betad": int(slope is not None),
                 "theta": sum(n for *_, n in terms), "psi": int(df_index is not None)}
        return cls(sizes, design.X.shape[1], k, slope, df_index, terms, ThetaMap.for_terms(design.terms))

    @property
    def n(self) -> int:
        return sum(self.sizes.values())

    def offsets(self) -> dict:
        out, pos = {}, 0
        for name in PARAMETERS:
            out[name] = (pos, pos + self.sizes[name])
            pos += self.sizes[name]
        return out

    def to_engine(self, v: np.ndarray):
        """glmmTMB's full vector (beta, betad, theta, psi) -> the engine's (theta, beta, psi)."""
        o = self.offsets()
        beta = v[o["beta"][0] : o["beta"][1]]
        psi = None
        if self.n_psi:
            psi = np.zeros(self.n_psi)
            if self.betad_slope is not None:
                psi[0] = v[o["betad"][0]] / self.betad_slope
            if self.df_index is not None:
                psi[self.df_index] = v[o["psi"][0]]
        theta = np.zeros(self.thetamap.n)
        pos = o["theta"][0]
        tm = self.thetamap
        for i, code, q, n in self.terms:
            par = v[pos : pos + n]
            pos += n
            seg = slice(tm.starts[i], tm.starts[i + 1])
            if code == "us":
                theta[seg] = _us_to_factor(par, q)[tm.structs[i].order]
            else:
                theta[seg] = np.exp(par)
        return theta, np.array(beta, float), psi

    def from_engine(self, theta, beta, psi) -> np.ndarray:
        """The engine's (theta, beta, psi) -> glmmTMB's full vector."""
        o = self.offsets()
        v = np.zeros(self.n)
        v[o["beta"][0] : o["beta"][1]] = beta
        if self.betad_slope is not None:
            v[o["betad"][0]] = self.betad_slope * psi[0]
        if self.df_index is not None:
            v[o["psi"][0]] = psi[self.df_index]
        pos = o["theta"][0]
        tm = self.thetamap
        for i, code, q, n in self.terms:
            seg = np.asarray(theta[tm.starts[i] : tm.starts[i + 1]], float)
            if code == "us":
                v[pos : pos + n] = _factor_to_us(tm.structs[i].factor(seg))
            else:
                v[pos : pos + n] = np.log(np.maximum(seg, 1e-300))
            pos += n
        return v


@dataclasses.dataclass
class ParameterMap:
    """Start values and the map of a fit: ``value`` holds glmmTMB's full parameter vector at the
    start (fixed entries at their fixed values); ``group[j]`` is the index of entry j's free
    value, -1 when it is fixed."""

    layout: ParameterLayout
    value: np.ndarray
    group: np.ndarray
    given: np.ndarray  # entries whose start the user gave

    @property
    def mapped(self) -> bool:
        """True when some entry is fixed or shared (the fit is over fewer values)."""
        return bool(np.any(self.group < 0) or self.n_free < len(self.group))

    @property
    def n_free(self) -> int:
        return int(self.group.max() + 1) if np.any(self.group >= 0) else 0

    @property
    def n_removed(self) -> int:
        """Parameters the map removes from the model's count (fixed, or shared with another)."""
        return len(self.group) - self.n_free

    def expand(self, z: np.ndarray) -> np.ndarray:
        v = self.value.copy()
        free = self.group >= 0
        v[free] = np.asarray(z, float)[self.group[free]]
        return v

    def z_start(self) -> np.ndarray:
        z = np.zeros(self.n_free)
        for g in range(self.n_free):
            z[g] = self.value[np.flatnonzero(self.group == g)[0]]
        return z

    def with_value(self, value: np.ndarray) -> "ParameterMap":
        return dataclasses.replace(self, value=np.asarray(value, float).copy())

    def selection(self) -> np.ndarray:
        """(n x n_free) matrix A with v = value_fixed + A z."""
        A = np.zeros((len(self.group), self.n_free))
        free = np.flatnonzero(self.group >= 0)
        A[free, self.group[free]] = 1.0
        return A


def _as_vector(name: str, value, size: int, what: str) -> np.ndarray | list:
    if size == 0:
        raise GlmmdiagError(f"{what}: this model has no parameter {name!r}")
    if np.ndim(value) == 0:
        value = [value]
    value = list(value)
    if len(value) != size:
        raise GlmmdiagError(f"{what}[{name!r}] has {len(value)} values; this model's {name} has {size}")
    return value


def _check_names(d, what: str, layout: ParameterLayout) -> dict:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise GlmmdiagError(f"{what} must be a dict of parameter name -> values, got {type(d).__name__}")
    unknown = sorted(set(map(str, d)) - set(PARAMETERS))
    if unknown:
        sizes = ", ".join(f"{k} ({v})" for k, v in layout.sizes.items() if v)
        raise GlmmdiagError(f"{what} has unknown parameter name(s) {unknown}; this model has: {sizes}")
    return d


def build_parameter_map(design, family, start, map_, default_value: np.ndarray, fixed=None) -> ParameterMap:
    """Check ``start=``, ``map=`` and ``fixed=`` against the model's parameters and combine them.

    ``default_value`` is glmmTMB's full vector where the fit would start without ``start=``.
    ``fixed={"betad": [0.0]}`` is ``start={"betad": [0.0]}, map={"betad": [None]}``; a None
    entry in ``fixed`` leaves that entry as ``start``/``map`` say.

    Raises
    ------
    GlmmdiagError
        An unknown parameter name, a wrong number of values, a non-finite start, a map label
        that is not an integer or None, or an entry fixed by the map without a start value.
    """
    layout = ParameterLayout.of(design, family)
    start = _check_names(start, "start", layout)
    map_ = _check_names(map_, "map", layout)
    fixed = _check_names(fixed, "fixed", layout)
    o = layout.offsets()
    value = np.array(default_value, float)
    given = np.zeros(layout.n, bool)
    for name, vals in start.items():
        vals = np.asarray(_as_vector(name, vals, layout.sizes[name], "start"), dtype=float)
        if not np.all(np.isfinite(vals)):
            raise GlmmdiagError(f"start[{name!r}] must be finite numbers, got {vals.tolist()}")
        a, b = o[name]
        value[a:b], given[a:b] = vals, True
    group = np.arange(layout.n)
    labels: dict = {}
    for name, labs in map_.items():
        labs = _as_vector(name, labs, layout.sizes[name], "map")
        a, _ = o[name]
        for j, lab in enumerate(labs):
            if lab is None or (isinstance(lab, float) and np.isnan(lab)):
                if not given[a + j]:
                    raise GlmmdiagError(
                        f"map[{name!r}] fixes entry {j} but start[{name!r}] does not give its value: "
                        f"pass start={{{name!r}: [...]}} with the value to fix")
                group[a + j] = -1
                continue
            if isinstance(lab, bool) or not isinstance(lab, (int, np.integer, str)):
                raise GlmmdiagError(f"map[{name!r}] labels must be integers (or strings) or None, got {lab!r}")
            key = (name, lab)
            group[a + j] = labels.setdefault(key, a + j)
    for name, vals in fixed.items():
        vals = _as_vector(name, vals, layout.sizes[name], "fixed")
        a, _ = o[name]
        for j, v in enumerate(vals):
            if v is None:
                continue
            v = float(v)
            if not np.isfinite(v):
                raise GlmmdiagError(f"fixed[{name!r}] must be finite numbers (or None), got {vals}")
            if name in map_ and map_[name][j] is not None:
                raise GlmmdiagError(f"fixed[{name!r}] fixes entry {j}, which map[{name!r}] labels "
                                    f"{map_[name][j]!r}: give it in one of them")
            value[a + j], given[a + j], group[a + j] = v, True, -1
    # renumber the free groups 0..n_free-1 in order of first appearance
    free_ids: dict = {}
    out = np.full(layout.n, -1)
    for j, g in enumerate(group):
        if g >= 0:
            out[j] = free_ids.setdefault(int(g), len(free_ids))
    pm = ParameterMap(layout, value, out, given)
    # shared entries start from their first entry's value
    return pm.with_value(pm.expand(pm.z_start()))


def engine_start(layout: ParameterLayout, value: np.ndarray, lmm: bool) -> np.ndarray:
    """glmmTMB's full vector -> the engine's warm start: theta relative to sigma for a linear
    mixed model (its profiled criterion), [theta, beta, psi] otherwise."""
    theta, beta, psi = layout.to_engine(value)
    if lmm:
        return theta / float(np.exp(psi[0]))
    return np.concatenate([theta, beta, np.zeros(0) if psi is None else psi])


def state_value(layout: ParameterLayout, state, lmm: bool) -> np.ndarray:
    """A fit's estimates (FitState) as glmmTMB's full vector."""
    if lmm:
        return layout.from_engine(state.theta * state.sigma, state.beta, np.array([np.log(state.sigma)]))
    return layout.from_engine(state.theta, state.beta, state.psi)


def default_value(design, family, lmm: bool) -> np.ndarray:
    """Where the engine starts without ``start=``, as glmmTMB's full vector: the GLM's beta and
    psi, and theta from the engine's moment start (for a linear mixed model lme4's relative start
    times the GLM's sigma)."""
    from glmmdiag.fit.engine import _glm_start, _theta_start
    from glmmdiag.fit.laplace import GLMMProblem
    from glmmdiag.fit.lmm import LMMProblem

    layout = ParameterLayout.of(design, family)
    beta, psi = _glm_start(design, family)
    if lmm:
        theta = LMMProblem(design, False).start_theta() * float(np.exp(psi[0]))
    else:
        theta = _theta_start(GLMMProblem(design, family), beta, psi)
    return layout.from_engine(theta, beta, psi)


# ------------------------------------------------------------------------------ the mapped fit
def _theta_jacobian(layout: ParameterLayout, v: np.ndarray) -> np.ndarray:
    """d theta_engine / d v_theta (central differences of the small, smooth map)."""
    a, b = layout.offsets()["theta"]
    J = np.zeros((layout.thetamap.n, b - a))
    for j in range(a, b):
        h = 1e-6 * max(1.0, abs(v[j]))
        vp, vm = v.copy(), v.copy()
        vp[j] += h
        vm[j] -= h
        J[:, j - a] = (layout.to_engine(vp)[0] - layout.to_engine(vm)[0]) / (2 * h)
    return J


def _full_gradient(layout: ParameterLayout, v: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The deviance gradient over glmmTMB's vector from the engine's (theta, beta, psi) gradient."""
    nt, p = layout.thetamap.n, layout.p
    o = layout.offsets()
    out = np.zeros(layout.n)
    out[o["beta"][0] : o["beta"][1]] = g[nt : nt + p]
    if layout.betad_slope is not None:
        out[o["betad"][0]] = g[nt + p] / layout.betad_slope
    if layout.df_index is not None:
        out[o["psi"][0]] = g[nt + p + layout.df_index]
    a, b = o["theta"]
    if b > a:
        out[a:b] = _theta_jacobian(layout, v).T @ g[:nt]
    return out


def _fd_hessian(fg, z: np.ndarray) -> np.ndarray | None:
    """Symmetrised central-difference Hessian from the gradient."""
    n = len(z)
    H = np.zeros((n, n))
    for j in range(n):
        h = 1e-4 * max(1.0, abs(z[j]))
        zp, zm = z.copy(), z.copy()
        zp[j] += h
        zm[j] -= h
        gp, gm = fg(zp)[1], fg(zm)[1]
        if not (np.all(np.isfinite(gp)) and np.all(np.isfinite(gm))):
            return None
        H[:, j] = (gp - gm) / (2 * h)
    return 0.5 * (H + H.T)


def fit_mapped(design, family, pmap: ParameterMap, opt):
    """Maximum likelihood (Laplace; exact for gaussian) over the free values of ``pmap``.

    The deviance D(z) = -2 logLik at v = value_fixed + A z is minimised with L-BFGS-B in
    coordinates whitened by the finite-difference Hessian at the start (when positive definite),
    then polished by Newton steps with the finite-difference Hessian. cov(beta) = A_beta
    (H/2)^{-1} A_beta' with H the deviance Hessian over z (fixed betas: variance 0).
    Returns a :class:`~glmmdiag.fit.engine.FitState`.
    """
    from glmmdiag.fit.engine import ConvergenceWarning, FitState, GRAD_TOL, _is_lmm, _scalar_sigma
    from glmmdiag.fit.laplace import GLMMProblem

    lay = pmap.layout
    lmm = _is_lmm(family)
    prob = GLMMProblem(design, family)
    A = pmap.selection()
    n_eval = [0]

    def fg(z):
        n_eval[0] += 1
        v = pmap.expand(z)
        th, b, ps = lay.to_engine(v)
        try:
            f, g = prob.deviance_and_gradient(b, th, psi=ps)
        except Exception:  # PIRLS failure away from the optimum: a wall for the optimiser
            return 1e300, np.zeros_like(z)
        if g is None or not np.isfinite(f) or not np.all(np.isfinite(g)):
            return 1e300, np.zeros_like(z)
        return float(f), A.T @ _full_gradient(lay, v, np.asarray(g, float))

    z0 = pmap.z_start()
    nz = len(z0)
    if nz:
        H0 = _fd_hessian(fg, z0)
        R = None
        if H0 is not None:
            try:
                R = linalg.cholesky(H0, lower=False)
            except linalg.LinAlgError:
                R = None
        if R is None:
            d = np.sqrt(np.maximum(np.abs(np.diag(H0)) if H0 is not None else np.ones(nz), 1e-8))
            R = np.diag(d)
        R_inv = linalg.solve_triangular(R, np.eye(nz), lower=False)

        def fg_w(x):
            f, g = fg(z0 + R_inv @ x)
            return f, R_inv.T @ g

        res = optimize.minimize(fg_w, np.zeros(nz), jac=True, method="L-BFGS-B",
                                options={"maxiter": opt.maxiter, "ftol": 1e-15, "gtol": 1e-10})
        z = z0 + R_inv @ res.x
        f, g = fg(z)
        for _ in range(8):  # Newton polish
            H = _fd_hessian(fg, z)
            if H is None:
                break
            try:
                step = linalg.solve(H, g, assume_a="pos")
            except (linalg.LinAlgError, ValueError):
                break
            t = 1.0
            while t > 1e-4:
                f1, g1 = fg(z - t * step)
                if f1 <= f + 1e-10 * abs(f):
                    break
                t /= 2
            else:
                break
            done = abs(f - f1) < 1e-10 and np.max(np.abs(t * step)) < 1e-7
            z, f, g = z - t * step, f1, g1
            if done:
                break
        H = _fd_hessian(fg, z)
    else:
        z, H = z0, np.zeros((0, 0))
        f, g = fg(z)
    v = pmap.expand(z)
    theta, beta, psi = lay.to_engine(v)
    deviance = prob.laplace_deviance(beta, theta, psi=psi)
    opt.n_eval += n_eval[0]
    opt.stages.append(f"Laplace over {nz} free parameter(s) (map=)")
    step_size = 0.0
    vcov = np.full((lay.p, lay.p), np.nan)
    if H is not None and nz:
        try:
            Hinv = linalg.inv(0.5 * H)  # H of the deviance -> information of logLik
            Ab = A[lay.offsets()["beta"][0] : lay.offsets()["beta"][1]]
            vcov = Ab @ Hinv @ Ab.T
            step_size = float(np.max(np.abs(0.5 * Hinv @ g)))  # |H^-1 g|, H the deviance Hessian
        except linalg.LinAlgError:
            pass
    elif not nz:
        vcov = np.zeros((lay.p, lay.p))
    opt.max_grad = step_size
    u, _, F, cp, *_ = prob.pirls(beta, theta, psi=psi)
    cv = prob.system.cond_var(F, cp, design.terms)
    sigma = family.dispersion(psi) if _scalar_sigma(family) else None
    if lmm:  # the LMM presentation (lme4's): b = Lambda_rel u with theta relative to sigma (us/diag
        # factors scale with sigma) and u ~ N(0, sigma^2 I), no psi
        st = FitState(beta, theta / sigma, sigma * u, vcov, deviance, -0.5 * deviance, sigma, opt, cond_var=cv)
    else:
        st = FitState(beta, theta, u, vcov, deviance, -0.5 * deviance, sigma, opt, cond_var=cv,
                      psi=None if psi is None else np.asarray(psi, float))
    if step_size > GRAD_TOL:
        st.warnings.append(ConvergenceWarning(
            f"model may not have converged: the scaled gradient (Newton step) at the optimum is "
            f"{step_size:.2g} (tolerance {GRAD_TOL:g})"))
    return st
