"""Extra linear predictors on a family's parameters, as glmmTMB's ``ziformula`` and ``dispformula``:
one composition over any base family, not a copy per family.

Per row i the base family has the conditional linear predictor eta_i (mean mu_i = g^{-1}(eta_i)) and
its dispersion parameter on glmmTMB's scale (``betad``), now a linear predictor

    zeta_i = X_disp,i' beta_disp        (the base family's psi_i = zeta_i / c, c = d betad / d psi:
                                         1 for nbinom1, nbinom2, beta; 2 for gaussian (log sigma^2);
                                         -1 for Gamma (log shape)),

and an optional zero model with xi_i = X_zi,i' beta_zi, pi_i = logit^{-1}(xi_i). With
f the base density and L_i = log f(0 | eta_i, zeta_i):

* zero-inflation:  p(0) = pi + (1 - pi) f(0),  p(k > 0) = (1 - pi) f(k);
* hurdle:          p(0) = pi,                  p(k > 0) = (1 - pi) f(k) / (1 - f(0));
* zero truncation (a hurdle family without ``ziformula``, pi = 0):  p(k > 0) = f(k) / (1 - f(0));
* zero-inflation of a base without mass at 0 (Gamma, glmmTMB's ``ziGamma``): f(0) = 0, so
  p(0) = pi, p(y > 0) = (1 - pi) f(y) -- the hurdle formula with L_i = -inf (``point0`` False).

A base family with several parameters (t: log sigma, log df; tweedie: log phi, logit(p - 1)) has
its first one, the dispersion, modelled by X_disp; the others are scalars appended to the
coefficient vector ("extras"): psi = [beta_disp, beta_zi, extras].

Every case is  l_i = m_i lf(y_i) + h(L_i, xi_i)  with m_i in {0, 1} (whether the base log density of
y_i enters) and a scalar function h of (L, xi) per row, so all derivatives follow from the base
family's own derivatives in (eta, psi) at y_i and at 0 by the chain rule (``_zero_terms`` and
``eta_derivs`` for hurdles and for the zero-inflation of a base without mass at 0; for
zero-inflation otherwise L_i is needed on the zero rows only, where it is the base density at y_i
itself, so the base family is evaluated once: ``_zi_terms``). The engine sees one family whose
psi is the coefficient vector [beta_disp, beta_zi, extras]: the derivative of the log-likelihood
in a coefficient j of a submodel with design matrix X is
sum_i X_ij d l_i / d(linear predictor)_i, so the exact Laplace gradient
(``GLMMProblem.deviance_and_gradient``'s psi terms) needs only the per-row derivatives multiplied by
the columns of X. An intercept-only dispersion model passes a scalar psi to the base family (its
fast, cached paths), which is today's scalar-psi model.

Likelihood weights (all count families but binomial) multiply the whole composed row log density,
as in glmmTMB; binomial's trials go to the base density.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from glmmdiag.errors import GlmmdiagError
from glmmdiag.fit.families import TRUNCATED_FAMILIES, Family, _poisson_draws, simulable_means

__all__ = ["CompositeFamily", "ZERO_FAMILIES", "DISP_FAMILIES", "TRUNCATED", "truncated_family"]

# ziformula supported for these bases: a point mass mixed with the base (counts, beta-binomial,
# tweedie) or, for Gamma (f(0) = 0), glmmTMB's ziGamma: P(0) = pi, P(y > 0) = (1 - pi) f(y)
ZERO_FAMILIES = ("poisson", "binomial", "nbinom1", "nbinom2", "betabinomial", "tweedie", "gamma")
NO_ZERO_MASS = ("gamma",)  # bases whose density has no mass at 0: zero-inflation is then a hurdle
# dispformula supported for these
DISP_FAMILIES = ("gaussian", "gamma", "beta", "nbinom1", "nbinom2", "t", "betabinomial", "tweedie")
TRUNCATED = TRUNCATED_FAMILIES
# dispformula "~0" (gaussian): glmmTMB 1.1.5 maps betad = log sigma^2 to this fixed value,
# log(sqrt(.Machine$double.eps)) = -18.0218 (sigma^2 = 1.49e-8, sigma = 1.22e-4)
DISP_ZERO_BETAD = float(np.log(np.sqrt(np.finfo(float).eps)))

# why ziformula is refused for the other families, and what to use instead
ZI_REFUSALS = {
    "beta": "the beta family's support is 0 < y < 1, so there are no zeros to inflate; for proportions with "
            "exact 0s (and 1s) use family='ordbeta'",
    "ordbeta": "the ordbeta family already gives exact 0s (and 1s) their own probabilities through its "
               "cutpoints, so zero-inflation does not apply; fit family='ordbeta' without ziformula",
    "gaussian": "glmmTMB 1.1.5 accepts it but adds the probability pi to the density value f(0) at y = 0, "
                "mixing a probability with a density (the fit then depends on the response's units and is "
                "not the likelihood of any distribution), so glmmdiag does not fit it; for exact zeros plus "
                "positive amounts use family='tweedie' (with or without ziformula) or family='gamma' with "
                "ziformula (a hurdle, glmmTMB's ziGamma)",
}
ZI_REFUSALS["t"] = ZI_REFUSALS["gaussian"]


def _expit(x):
    """logit^{-1}(x) without overflow."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _softplus(x):
    """log(1 + e^x) without overflow."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _times(v, mult):
    """A per-row derivative entry of ``_row_derivs`` (an array, or a tuple or list of them, None
    kept) times the likelihood weights."""
    if v is None:
        return None
    if isinstance(v, (tuple, list)):
        return type(v)(_times(a, mult) for a in v)
    return v * mult


def betad_slope(base) -> float:
    """c = d betad / d psi_0 of the base family (psi_0 its dispersion component): glmmTMB's
    dispersion predictor is c psi_0."""
    e = np.zeros(base.n_psi)
    e[0] = 1.0
    return float(base.glmmtmb_betad(e) - base.glmmtmb_betad(np.zeros(base.n_psi)))


class CompositeFamily(Family):
    """A base family with a dispersion model and/or a zero model (see the module docstring).

    Parameters
    ----------
    base : Family
        The conditional (count or continuous) family.
    Xd : ndarray (n, k_d) or None
        Dispersion-model matrix (an intercept column for a constant dispersion); None when the base
        family has no dispersion parameter.
    Xz : ndarray (n, k_z) or None
        Zero-model matrix; None without ``ziformula``.
    zero : {None, "zi", "hurdle"}
        "zi": zero-inflation; "hurdle": zero-truncated base (with Xz: a hurdle model).
    dnames, znames : list of str
        Column names of Xd and Xz (R's model.matrix names).
    specs : dict
        Model specs of the submodels (``"disp"``, ``"zi"``) to replay on new data.
    disp_offset : float, optional
        A fixed offset added to the dispersion predictor, zeta_i = X_disp,i' beta_disp + disp_offset
        (on glmmTMB's ``betad`` scale). With no dispersion coefficients (``Xd`` with zero columns)
        it fixes the dispersion: glmmTMB's ``dispformula = ~0`` (``DISP_ZERO_BETAD``).
    """

    composite = True

    def __init__(self, base, Xd=None, Xz=None, zero=None, dnames=(), znames=(), specs=None, truncated_name=None,
                 disp_offset=0.0):
        self.base = base
        self.disp_offset = float(disp_offset)
        self.link = base.link
        self.zero = zero
        self.Xd = None if Xd is None else np.ascontiguousarray(Xd, float)
        self.Xz = None if Xz is None else np.ascontiguousarray(Xz, float)
        self.dnames, self.znames = list(dnames), list(znames)
        self.specs = specs or {}
        self.truncated_name = truncated_name
        self.kd = 0 if self.Xd is None else self.Xd.shape[1]
        self.kz = 0 if self.Xz is None else self.Xz.shape[1]
        self._XdT = None if self.Xd is None else np.ascontiguousarray(self.Xd.T)
        self._XzT = None if self.Xz is None else np.ascontiguousarray(self.Xz.T)
        self.ke = max(base.n_psi - 1, 0)  # the base's parameters after its dispersion (t's df, tweedie's power)
        self.point0 = base.name not in NO_ZERO_MASS  # the base has (possibly) mass at 0
        # zero-inflation mixing a point mass with a base that has mass at 0 (``_zi_terms``); the
        # zero-inflation of a base without it (ziGamma) takes the hurdle's path with L = -inf
        self._zi_mix = zero == "zi" and self.point0
        self.c = betad_slope(base) if base.n_psi else 1.0
        # the base family has its dispersion (a model with coefficients, or fixed: dispformula ~0)
        self.has_disp = self.Xd is not None and bool(base.n_psi)
        self.disp_fixed = self.has_disp and self.kd == 0
        # an intercept-only (or fixed) dispersion model: the base family gets a scalar psi (its fast paths)
        self.d_const = self.disp_fixed or (self.kd == 1 and bool(np.all(self.Xd[:, 0] == 1.0)))
        self.name = base.name if truncated_name is None else truncated_name
        self.default_link = base.default_link
        self.allowed_links = base.allowed_links
        self.discrete = base.discrete
        self.has_dispersion = base.has_dispersion
        self.weight_role = base.weight_role
        self.dw_costly = base.dw_costly
        self._psi_names = (tuple(f"disp~{n}" for n in self.dnames) + tuple(f"zi~{n}" for n in self.znames)
                           + tuple(base.psi_names[1:]))
        self._nb1_log = base.name == "nbinom1" and base.link.name == "log"
        self._ypos = (None, None)

    @property
    def df(self):
        """The t base's fixed degrees of freedom (None: estimated, or not a t base)."""
        return getattr(self.base, "df", None)

    @property
    def t_df_index(self):
        """Position of t's log df in psi when it is estimated (the engine optimises it as 1/df)."""
        return None if getattr(self.base, "t_df_index", None) is None else self.kd + self.kz

    @property
    def psi_names(self):
        return self._psi_names

    @property
    def display_name(self):
        return self.name if self.truncated_name else self.base.display_name

    @property
    def disp_varies(self) -> bool:
        """True when the dispersion differs between rows (a non-constant dispersion model)."""
        return self.kd > 0 and not self.d_const

    def __repr__(self):
        return f"{self.display_name}({self.link.name}; zero={self.zero}, disp={self.dnames}, zi={self.znames})"

    def subset(self, keep):
        """The same model on the rows ``keep`` (a boolean mask)."""
        rows = lambda X: X if X.shape[0] == 1 and len(keep) != 1 else X[keep]  # noqa: E731 (a row-free constant)
        fam = CompositeFamily(self.base, None if self.Xd is None else rows(self.Xd),
                              None if self.Xz is None else self.Xz[keep], self.zero, self.dnames,
                              self.znames, self.specs, self.truncated_name, self.disp_offset)
        if hasattr(self, "formulas"):
            fam.formulas = self.formulas
        return fam

    # ------------------------------------------------------------------ parameters
    def split(self, psi, Xd=None, Xz=None):
        """(base psi, xi): the base family's psi -- a vector [psi_0, extras] for a constant
        dispersion, or an (n_psi, n) array of per-row values with psi_0,i = X_disp,i' beta_disp / c
        and the extras repeated -- and the zero model's linear predictor (None without one).

        psi may also be a (K, n_psi) matrix of K coefficient vectors that differ in the zero
        model's coefficients only (``rowwise_psi``; K points evaluated at once with eta of shape
        (K, n)): xi is then (K, n)."""
        Xd = self.Xd if Xd is None else Xd
        Xz = self.Xz if Xz is None else Xz
        psi = np.asarray(psi, float)
        if psi.ndim == 2 and psi.shape[0] > 1 and psi.shape[1] == self.n_psi:
            P = psi
            psi = P[0]
            fixed = np.r_[0 : self.kd, self.kd + self.kz : P.shape[1]]  # the dispersion model and the extras
            if fixed.size and not np.array_equal(P[:, fixed], np.broadcast_to(psi[fixed], (len(P), fixed.size))):
                raise ValueError("a batch of coefficient vectors may differ in the zero model's coefficients only")
            xi = P[:, self.kd : self.kd + self.kz] @ Xz.T if self.kz else None
        else:
            psi = psi.reshape(-1)
            xi = Xz @ psi[self.kd : self.kd + self.kz] if self.kz else None
        bpsi = None
        if self.has_disp:
            bd = psi[: self.kd]
            extras = psi[self.kd + self.kz : self.kd + self.kz + self.ke]
            if self.d_const:
                z0 = ((bd[0] if self.kd else 0.0) + self.disp_offset) / self.c
                bpsi = np.array([z0]) if not self.ke else np.concatenate([[z0], extras])
            else:
                z = (Xd @ bd + self.disp_offset) / self.c
                bpsi = np.vstack([z] + [np.full(z.shape, e) for e in extras]) if self.ke else z[None, :]
        return bpsi, xi

    @property
    def rowwise_psi(self):
        """Indices of the psi components that ``split`` takes per point in a (K, n_psi) batch:
        the zero model's coefficients (they enter the composition only, not the base family)."""
        return tuple(range(self.kd, self.kd + self.kz))

    def _weights(self, w):
        """(w for the base density, multiplier of the composed row log density or None for 1)."""
        if self.zero is None or self.base.weight_role != "likelihood":
            return w, None
        memo = self._ones_memo
        if memo is None or memo.shape != np.shape(w):
            memo = np.ones(np.shape(w))
            memo.flags.writeable = False
            self._ones_memo = memo
        return memo, (None if self._unit(w) else w)

    _ones_memo = None
    _unit_memo = (None, False)

    def _unit(self, w) -> bool:
        """Whether the weights are all 1 (kept for the last read-only w: the engine's)."""
        cw, val = self._unit_memo
        if cw is w:
            return val
        val = bool(np.all(np.asarray(w) == 1.0))
        if isinstance(w, np.ndarray) and not w.flags.writeable:
            self._unit_memo = (w, val)
        return val

    def _y0(self, y):
        """A read-only array of zeros like y (cached: families cache terms per read-only y)."""
        shape = np.shape(y)
        cache = self.__dict__.setdefault("_y0_cache", {})  # (dropped when pickled: Family.__getstate__)
        z = cache.get(shape)
        if z is None:
            z = np.zeros(shape)
            z.flags.writeable = False
            cache[shape] = z
        return z

    def _y_base(self, y):
        """y where the base density is evaluated: y itself, except for a base without mass at 0,
        whose zero rows (m = 0: its density does not enter) get y = 1 so that everything stays
        finite. Read-only and cached per read-only y (the base families cache per y object)."""
        if self.point0 or self.zero is None:
            return y
        cy, ypos = self._ypos
        if cy is y:
            return ypos
        ypos = np.where(np.asarray(y) > 0, y, 1.0)
        if isinstance(y, np.ndarray) and not y.flags.writeable:
            ypos.flags.writeable = False
            self._ypos = (y, ypos)
        return ypos

    # ------------------------------------------------------------------ the zero model
    _xi_memo = None

    def _xi_terms(self, xi):
        """(pi, softplus(xi), pi (1 - pi)) for the zero model's linear predictor, kept for the last
        xi (PIRLS varies eta at fixed coefficients)."""
        memo = self._xi_memo
        if memo is not None and memo[0].shape == np.shape(xi) and np.array_equal(memo[0], xi):
            return memo[1]
        pi = _expit(xi)
        out = (pi, _softplus(xi), pi * (1.0 - pi))
        self._xi_memo = (np.array(xi, float, copy=True), out)
        return out

    def _zero_terms(self, y, L, xi):
        """Hurdle and zero truncation: m and the derivatives of h(L, xi) per row,
        (m, h, h_L, h_LL, h_LLL, h_x, h_xx, h_Lx, h_LLx).

        y = 0: m = 0, h = log pi; y > 0: m = 1, h = -log(1 - e^L) - log(1 + e^xi) with
        a = e^L/(1 - e^L): h_L = a, h_LL = a(1+a), h_LLL = a(1+a)(1+2a), h_x = -pi,
        h_xx = -pi(1-pi) (without xi the softplus terms are absent). Zero-inflation of a base
        without mass at 0 (``point0`` False) is this case with L = -inf (a = 0). (Zero-inflation of
        a base with mass at 0 needs no base density at 0: ``_zi_terms``.)"""
        pos = np.broadcast_to(np.asarray(y) > 0, np.shape(L))
        m = pos.astype(float)
        zero = np.zeros(np.shape(L))
        a = 1.0 / np.expm1(-L)
        a1 = a * (1.0 + a)
        h = np.where(pos, -np.log(-np.expm1(L)), 0.0)
        hL = np.where(pos, a, 0.0)
        hLL = np.where(pos, a1, 0.0)
        hLLL = np.where(pos, a1 * (1.0 + 2.0 * a), 0.0)
        if xi is None:
            return m, h, hL, hLL, hLLL, None, None, None, None
        pi, sp, v_pi = self._xi_terms(xi)
        h = h + np.where(pos, -sp, xi - sp)
        hx = np.where(pos, -pi, 1.0 - pi) + zero
        hxx = -v_pi + zero
        return m, h, hL, hLL, hLLL, hx, hxx, zero, zero

    # ------------------------------------------------------------------ derivatives in eta
    def eta_derivs(self, y, eta, w, psi=None, order=3):
        """(l, s, W, dW) of the composed row log density (see the module docstring)."""
        if self.zero is not None:
            hit = self._memo_hit(y, w, eta, psi)  # PIRLS's last point, asked again for the gradient
            if hit is not None and "eta" in hit[5]:
                ll, s, W, dW = hit[5]["eta"]
                return ll, s, W, (dW if order >= 3 else None)
        bpsi, xi = self.split(psi)
        if self.zero is None:
            return self.base.eta_derivs(y, eta, w, bpsi, order)
        wb, mult = self._weights(w)
        if self._zi_mix:
            (l1, s1, W1, dW1), _, (qm, vm, ll) = self._at(y, eta, w, wb, bpsi, xi, psi)
            sp = self._xi_terms(xi)[1]
            s = qm * s1
            W = qm * W1 - vm * s1 * s1
            dW = qm * dW1 + vm * s1 * (3.0 * W1 - (1.0 - 2.0 * qm) * s1 * s1)
            ll = ll - sp
            if mult is not None:
                ll, s, W, dW = ll * mult, s * mult, W * mult, dW * mult
            memo = self._memo
            if memo is not None and memo[0] is y and memo[1] is w:
                memo[5]["eta"] = (ll, s, W, dW)
            return ll, s, W, (dW if order >= 3 else None)
        hit = self._memo_hit(y, w, eta, psi)
        if hit is not None and "eta" in hit[5]:
            ll, s, W, dW = hit[5]["eta"]
            return ll, s, W, (dW if order >= 3 else None)
        (l1, s1, W1, dW1), (L, Le, LW, LdW), _ = self._at(y, eta, w, wb, bpsi, xi, psi)
        # hurdle, on the rows y > 0 (the others: l = log pi, no eta derivatives), with
        # a = e^L / (1 - e^L), a1 = a (1 + a) (``_zero_terms``'s h_L, h_LL):
        # l = l1 - log(1 - e^L) - softplus(xi), s = s1 + a Le, W = W1 + a LW - a1 Le^2,
        # dW = dW1 + a LdW + a1 Le (3 LW - (1 + 2a) Le^2)
        pos = ~self._zero_mask(y)
        a = 1.0 / np.expm1(-L)
        a1 = a * (1.0 + a)
        lp = l1 - np.log(-np.expm1(L))
        if xi is None:
            ll = np.where(pos, lp, 0.0)
        else:
            ll = np.where(pos, lp, xi) - self._xi_terms(xi)[1]
        s = np.where(pos, s1 + a * Le, 0.0)
        W = np.where(pos, W1 + a * LW - a1 * Le * Le, 0.0)
        dW = np.where(pos, dW1 + a * LdW + a1 * Le * (3.0 * LW - (1.0 + 2.0 * a) * Le * Le), 0.0)
        if mult is not None:
            ll, s, W, dW = ll * mult, s * mult, W * mult, dW * mult
        memo = self._memo
        if memo is not None and memo[0] is y and memo[1] is w:
            memo[5]["eta"] = (ll, s, W, dW)
        return ll, s, W, (dW if order >= 3 else None)

    def _zero_mask(self, y):
        """y == 0 (cached for the last read-only y)."""
        memo = self._z0_memo
        if memo is not None and memo[0] is y:
            return memo[1]
        z0 = np.asarray(y) == 0
        if isinstance(y, np.ndarray) and not y.flags.writeable:
            self._z0_memo = (y, z0)
        return z0

    _z0_memo = None

    def _zi_terms(self, y, l1, xi):
        """Zero-inflation per row, from the base log density l1 at y (which is L = log f(0) on
        the rows with y = 0): (qm, vm, l) with qm = q = expit(L - xi) (the probability that a zero
        comes from the count part) on zero rows and 1 on the others, vm = qm (1 - qm), and
        l = log(e^xi + e^L) on zero rows, l1 on the others (the composed log density plus
        softplus(xi)). In these terms the chain rule of ``_zero_terms`` is, on every row,
        s = qm s1, W = qm W1 - vm s1^2, dW = qm dW1 + vm s1 (3 W1 - (1 - 2 qm) s1^2)."""
        z0 = self._zero_mask(y)
        t = np.where(z0, l1 - xi, np.inf)  # +inf off the zero rows: q = 1, softplus = inf
        e = np.exp(-np.abs(t))
        qm = np.where(t >= 0.0, 1.0, e) / (1.0 + e)
        ll = np.where(z0, xi + (np.maximum(t, 0.0) + np.log1p(e)), l1)
        return qm, qm * (1.0 - qm), ll

    _memo = None

    def _at(self, y, eta, w, wb, bpsi, xi, psi):
        """(base derivatives at y, base derivatives at 0, ``_zero_terms``), all of order 3, for the
        last (y, w, eta, psi) seen (PIRLS's last step, the gradient at its mode and the GLM's
        Hessian evaluate the same point several times). y and w are matched by identity (the
        engine passes the same read-only arrays), eta and psi by value."""
        hit = self._memo_hit(y, w, eta, psi)
        if hit is not None:
            return hit[4]
        eta_a = np.asarray(eta)
        psi_a = np.asarray(psi, float).reshape(-1)
        base = self.base
        if self._zi_mix:  # the zero rows' base density at y is the one at 0
            d_y = self._by_rows(y, eta, wb, bpsi, lambda *a: base.eta_derivs(*a, 3), self._nb1_zero)
            out = (d_y, None, self._zi_terms(y, d_y[0], xi))
        else:
            d_y = base.eta_derivs(self._y_base(y), eta, wb, bpsi, 3)
            if not self.point0:  # no mass at 0: L = log f(0) = -inf, its derivatives 0
                shape = np.shape(eta)
                d_0 = (np.full(shape, -np.inf),) + tuple(np.zeros(shape) for _ in range(3))
            else:
                d_0 = self._nb1_zero(eta, wb, bpsi)
                if d_0 is None:
                    d_0 = base.eta_derivs(self._y0(y), eta, wb, bpsi, 3)
            out = (d_y, d_0, None)  # ``_zero_terms``: by ``_hurdle_terms`` when the psi derivatives need them
        if isinstance(y, np.ndarray) and not y.flags.writeable:
            self._memo = (y, w, eta_a.copy(), psi_a.copy(), out, {})
        return out

    def _hurdle_terms(self, y, eta, w, psi, L, xi):
        """``_zero_terms`` at this point, kept with ``_at``'s memo entry."""
        hit = self._memo_hit(y, w, eta, psi)
        if hit is not None and "zt" in hit[5]:
            return hit[5]["zt"]
        zt = self._zero_terms(y, L, xi)
        if hit is not None:
            hit[5]["zt"] = zt
        return zt

    def _memo_hit(self, y, w, eta, psi):
        """The memo entry of ``_at`` when (y, w) are the same objects and (eta, psi) the same values."""
        memo = self._memo
        if memo is None or memo[0] is not y or memo[1] is not w:
            return None
        eta_a = np.asarray(eta)
        if memo[2].shape != eta_a.shape or not np.array_equal(memo[2], eta_a):
            return None
        psi_a = np.asarray(psi, float).reshape(-1)
        if memo[3].shape != psi_a.shape or not np.array_equal(memo[3], psi_a):
            return None
        return memo

    _split_memo = None

    def _by_rows(self, y, eta, wb, bpsi, at_y, at_zero):
        """``at_y(y, eta, wb, bpsi)``, a tuple of per-row arrays, with the zero rows computed by
        ``at_zero(eta, wb, bpsi)`` instead when that has a closed form there (nbinom1 with the log
        link, whose general derivatives cost digamma, trigamma and tetragamma per row; at y = 0
        they cancel): the general form then runs on the rows with y > 0 only. y must be a
        read-only vector (the engine's); anything else takes the general form on every row."""
        split = None
        if (at_zero is not None and self._nb1_log and bpsi is not None
                and isinstance(y, np.ndarray) and y.ndim == 1 and not y.flags.writeable):
            memo = self._split_memo
            if memo is not None and memo[0] is y:
                split = memo[1]
            else:
                zr = np.flatnonzero(y == 0)
                pr = np.flatnonzero(y != 0)
                yp = y[pr]
                yp.flags.writeable = False
                split = (zr, pr, yp) if zr.size else None
                self._split_memo = (y, split)
        if split is None:
            return at_y(y, eta, wb, bpsi)
        zr, pr, yp = split
        eta = np.asarray(eta, float)
        n = y.shape[0]

        def rows(a, idx):  # the columns idx of a per-row array (plain indexing is the fast one for 1-d)
            a = np.asarray(a)
            if not a.ndim or a.shape[-1] != n:
                return a
            return a[idx] if a.ndim == 1 else a[..., idx]

        bp = bpsi if np.ndim(bpsi[0]) == 0 else rows(bpsi, pr)
        bz = bpsi if np.ndim(bpsi[0]) == 0 else rows(bpsi, zr)
        d_p = at_y(yp, rows(eta, pr), rows(wb, pr), bp)
        d_z = at_zero(rows(eta, zr), rows(wb, zr), bz)
        shape = np.broadcast(y, eta).shape
        out = []
        for a, b in zip(d_p, d_z):
            if a is None:
                out.append(None)
                continue
            o = np.empty(shape)
            if o.ndim == 1:
                o[pr] = a
                o[zr] = b
            else:
                o[..., pr] = a
                o[..., zr] = b
            out.append(o)
        return tuple(out)

    def _nb1_phi(self, eta, bpsi):
        """(mu, phi, r, L) for the nbinom1 base with the log link at y = 0; None otherwise."""
        if self.base.name != "nbinom1" or self.link.name != "log" or bpsi is None:
            return None
        from glmmdiag.fit.families import _TINY

        c = bpsi[0]
        phi = np.exp(c)
        m = np.maximum(np.exp(eta), _TINY)
        return m, phi, m / phi, np.log1p(phi)

    def _nb1_zero(self, eta, wb, bpsi):
        """nbinom1 (log link) at y = 0, in closed form (the digamma/trigamma differences of
        y + r and r vanish): l = -w r log(1 + phi), r = mu / phi; with mu = e^eta, s = l, W = -l,
        dW = -l. The same values as the family's general derivatives, without special functions."""
        t = self._nb1_phi(eta, bpsi)
        if t is None:
            return None
        m, phi, r, L = t
        ll = -wb * r * L
        return ll, ll, -ll, -ll

    def _nb1_zero_psi(self, eta, wb, bpsi):
        """(l_psi, s_psi, W_psi, l_psipsi) of nbinom1 (log link) at y = 0 in closed form (see
        NBinom1._psi_mu_terms with D0 = D1 = D2 = 0): g = w r (L - q), g_mu = -w (q - L) / phi,
        g_mumu = 0, h = w r (2q - L - q(1 - q)), q = phi / (1 + phi)."""
        t = self._nb1_phi(eta, bpsi)
        if t is None:
            return None
        m, phi, r, L = t
        q = phi / (1.0 + phi)
        g = wb * r * (L - q)
        g1 = -wb * (q - L) / phi
        h = wb * r * (2.0 * q - L - q * (1.0 - q))
        shape = np.shape(eta)
        return tuple(np.broadcast_to(a, shape) for a in (g, g1 * m, -g1 * m, h))

    _rows_memo = None

    def _row_derivs(self, y, eta, w, psi, second):
        """Per-row derivatives in the submodels' linear predictors (zeta, xi) and the extras:
        dict with dW; "d" = (l_p, s_p, W_p[, l_pp]) in zeta (the dispersion predictor, psi_0 = zeta / c);
        "e" the same per extra component; "z" in xi; the cross terms "dz_x" (zeta, xi), and with
        extras "ex" (each extra with xi) and "bb" (second only: the (n, n_psi, n_psi) Hessian of the
        composed row in the base's psi, component 0 included); each multiplied by the likelihood
        weight. With m, h of ``_zero_terms``, L = log f(0) and g = log f(y) (the base's), a base
        parameter a has l_a = m g_a + h_L L_a and l_ab = m g_ab + h_L L_ab + h_LL L_a L_b,
        l_ax = h_Lx L_a; the eta derivatives follow by the chain rule (zero-inflation of a base
        with mass at 0: ``_zi_row_derivs``). The last result is kept (the GLM's Hessian asks for
        the columns and the summed Hessian at the same point; y and w by identity)."""
        eta_a = np.asarray(eta)
        psi_a = np.asarray(psi, float).reshape(-1)
        memo = self._rows_memo
        if (memo is not None and memo[0] is y and memo[1] is w and (memo[4] or not second)
                and memo[2].shape == eta_a.shape and np.array_equal(memo[2], eta_a)
                and memo[3].shape == psi_a.shape and np.array_equal(memo[3], psi_a)):
            return memo[5]
        out = self._row_derivs_at(y, eta, w, psi, second)
        if isinstance(y, np.ndarray) and not y.flags.writeable:
            self._rows_memo = (y, w, eta_a.copy(), psi_a.copy(), second, out)
        return out

    def _base_psi_terms(self, y, eta, wb, bpsi, second, zero_rows=False):
        """The base family's (l_a, s_a, W_a, l_aa) at y per component a of its psi, component 0 on
        the scale of the dispersion predictor (divided by c, l_aa by c^2), the extras as they are
        (l_aa None without ``second``); ``zero_rows``: the rows with y = 0 may use the closed form
        at 0 (``_by_rows``; nbinom1, one component)."""
        c = self.c
        nb = self.base.n_psi

        def at_y(y_, eta_, wb_, bpsi_):
            comps = self.base.psi_derivs(y_, eta_, wb_, bpsi_, second=second)
            return tuple(a for d in comps for a in (tuple(d) if second else tuple(d[:3]) + (None,)))

        at_zero = None
        if zero_rows:
            def at_zero(eta_, wb_, bpsi_):
                return self._nb1_zero_psi(eta_, wb_, bpsi_)

        flat = self._by_rows(y, eta, wb, bpsi, at_y, at_zero)
        comps = [tuple(flat[4 * a : 4 * a + 4]) for a in range(nb)]
        if c != 1.0:
            g, gs, gW, gh = comps[0]
            comps[0] = (g / c, gs / c, gW / c, None if gh is None else gh / (c * c))
        return comps

    def _psi_at_zero(self, y0, eta, wb, bpsi, second):
        """The base's psi derivatives at y = 0 per component, scaled as ``_base_psi_terms``:
        nbinom1's closed form, zeros for a base without mass at 0, the base's own otherwise."""
        if not self.point0:
            zero = np.zeros(np.shape(eta))
            return [(zero, zero, zero, zero)] * self.base.n_psi
        z0 = self._nb1_zero_psi(eta, wb, bpsi)
        if z0 is not None:
            c = self.c
            return [tuple(a / c for a in z0[:3]) + ((z0[3] / (c * c)) if second else None,)]
        return self._base_psi_terms(y0, eta, wb, bpsi, second)

    def _row_derivs_at(self, y, eta, w, psi, second):
        bpsi, xi = self.split(psi)
        base = self.base
        wb, mult = self._weights(w)
        c = self.c
        nb = base.n_psi if self.kd else 0
        out = {}
        if self.zero is None and not self.kd:  # a fixed dispersion (dispformula ~0): no coefficients
            out["dW"] = base.eta_derivs(y, eta, wb, bpsi, 3)[3]
            return out
        if self.zero is None:
            if second:
                dW = base.eta_derivs(y, eta, wb, bpsi, 3)[3]
                comps = base.psi_derivs(y, eta, wb, bpsi, second=True)
            else:
                dW, comps = base.laplace_gradient_terms(y, eta, wb, bpsi, None)
                comps = [tuple(cp[:3]) + (None,) for cp in comps]
            lp, sp, Wp, lpp = comps[0]
            out["d"] = (lp / c, sp / c, Wp / c, None if lpp is None else lpp / (c * c))
            out["dW"] = dW
            if self.ke:
                out["e"] = list(comps[1:])
                if second:
                    out["bb"] = base.psi_hessian(y, eta, wb, bpsi)
            return out
        if self._zi_mix:
            return self._zi_row_derivs(y, eta, w, wb, mult, bpsi, xi, psi, second)
        # hurdle, zero truncation, zero-inflation of a base without mass at 0
        mult = 1.0 if mult is None else mult
        y0 = self._y0(y)
        yb = self._y_base(y)
        (_, s1, W1, dW1), (L, Le, LW, LdW), _ = self._at(y, eta, w, wb, bpsi, xi, psi)
        m, h, hL, hLL, hLLL, hx, hxx, hLx, hLLx = self._hurdle_terms(y, eta, w, psi, L, xi)
        Lee, Leee = -LW, -LdW
        d3 = -m * dW1 - hL * LdW + 3.0 * hLL * Le * Lee + hLLL * Le**3
        out["dW"] = -d3 * mult
        if nb:
            at_y = self._base_psi_terms(yb, eta, wb, bpsi, second)
            at_0 = self._psi_at_zero(y0, eta, wb, bpsi, second)
            comps, Ls = [], []
            for (g1, gs1, gW1, gh1), (La, Lea, LWa, Laa) in zip(at_y, at_0):
                l_a = m * g1 + hL * La
                s_a = m * gs1 + hL * Lea + hLL * Le * La
                d_eea = -m * gW1 - hL * LWa + hLL * (Lee * La + 2.0 * Le * Lea) + hLLL * Le * Le * La
                l_aa = None
                if second:
                    l_aa = (m * gh1 + hL * Laa + hLL * La * La) * mult
                comps.append((l_a * mult, s_a * mult, -d_eea * mult, l_aa))
                Ls.append(La)
            out["d"] = comps[0]
            if self.ke:
                out["e"] = comps[1:]
                if second:
                    Hy = base.psi_hessian(yb, eta, wb, bpsi)
                    H0 = base.psi_hessian(y0, eta, wb, bpsi) if self.point0 else 0.0
                    # in base coordinates (component 0 not divided by c)
                    La0 = [Ls[0] * c] + Ls[1:]
                    Lab = np.stack([np.stack([La0[i] * La0[j] for j in range(nb)], -1) for i in range(nb)], -2)
                    out["bb"] = (m[..., None, None] * Hy + hL[..., None, None] * H0
                                 + hLL[..., None, None] * Lab) * np.asarray(mult)[..., None, None]
            if xi is not None:
                out["dz_x"] = hLx * Ls[0] * mult
                if self.ke:
                    out["ex"] = [hLx * La * mult for La in Ls[1:]]
        if xi is not None:
            s_x = hLx * Le
            d_eex = hLx * Lee + hLLx * Le * Le
            out["z"] = (hx * mult, s_x * mult, -d_eex * mult, hxx * mult)
        return out

    def _zi_row_derivs(self, y, eta, w, wb, mult, bpsi, xi, psi, second):
        """``_row_derivs`` for zero-inflation of a base with mass at 0, from the base family at y
        only (``_zi_terms``): per base parameter a, with g = the base's l_a at y (on the zero rows
        the one at 0), l_a = qm g, s_a = qm g_s + vm s1 g, W_a = qm g_W + vm (W1 g - 2 s1 g_s) - v3 s1^2 g,
        l_aa = qm g_h + vm g^2, l_a,xi = -vm g (and l_ab = qm g_ab + vm g_a g_b between two of
        them); l_xi = 1 - qm - pi, s_xi = -vm s1, W_xi = -vm W1 + v3 s1^2, l_xixi = vm - pi (1 - pi),
        v3 = vm (1 - 2 qm)."""
        (_, s1, W1, dW1), _, (qm, vm, _) = self._at(y, eta, w, wb, bpsi, xi, psi)
        v3 = vm * (1.0 - 2.0 * qm)
        s1s1 = s1 * s1
        out = {"dW": qm * dW1 + vm * s1 * (3.0 * W1 - (1.0 - 2.0 * qm) * s1s1)}
        if self.kd:
            at_y = self._base_psi_terms(y, eta, wb, bpsi, second, zero_rows=True)
            comps, vgs = [], []
            for g, gs, gW, gh in at_y:
                vg = vm * g
                comps.append((qm * g, qm * gs + vg * s1, qm * gW + vg * W1 - 2.0 * vm * s1 * gs - v3 * s1s1 * g,
                              (qm * gh + vg * g) if second else None))
                vgs.append(vg)
            out["d"] = comps[0]
            if self.ke:
                out["e"] = comps[1:]
                if second:
                    nb = len(at_y)
                    Hy = self.base.psi_hessian(y, eta, wb, bpsi)
                    gb = [at_y[0][0] * self.c] + [cp[0] for cp in at_y[1:]]  # in base coordinates
                    Gab = np.stack([np.stack([gb[i] * gb[j] for j in range(nb)], -1) for i in range(nb)], -2)
                    out["bb"] = qm[..., None, None] * Hy + vm[..., None, None] * Gab
            if xi is not None:
                out["dz_x"] = -vgs[0]
                if self.ke:
                    out["ex"] = [-vg for vg in vgs[1:]]
        if xi is not None:
            pi, _, v_pi = self._xi_terms(xi)
            out["z"] = (1.0 - qm - pi, -vm * s1, v3 * s1s1 - vm * W1, vm - v_pi)
        if mult is not None:
            bb = out.pop("bb", None)
            out = {k: _times(v, mult) for k, v in out.items()}
            if bb is not None:  # one (n_psi, n_psi) block per row
                out["bb"] = bb * np.asarray(mult)[..., None, None]
        return out

    def _columns(self, rows, second):
        """Per-coefficient (l, s, W, l_pp) from the per-row derivatives: column j of a submodel's
        matrix times each (disp, zi; one broadcast product per derivative and submodel), then the
        extras as they are."""
        out = []
        for key, X in (("d", self.Xd), ("z", self.Xz)):
            if X is None or key not in rows:
                continue
            lp, sp, Wp, lpp = rows[key]
            if key == "d" and self.d_const:
                out.append((lp, sp, Wp, lpp if second else None))
                continue
            Xt = self._XdT if key == "d" else self._XzT
            k = Xt.shape[0]
            nd = max(np.ndim(lp), np.ndim(sp), np.ndim(Wp), 1)
            Xt = Xt.reshape((k,) + (1,) * (nd - 1) + (Xt.shape[1],))
            parts = [Xt * lp, Xt * sp, Xt * Wp]
            parts.append(Xt * Xt * lpp if second else [None] * k)
            out.extend(zip(*parts))
        for lp, sp, Wp, lpp in rows.get("e", ()):
            out.append((lp, sp, Wp, lpp if second else None))
        return out

    def laplace_gradient_terms(self, y, eta, w, psi, dW=None):
        rows = self._row_derivs(y, eta, w, psi, second=False)
        cols = self._columns(rows, False)
        return (rows["dW"] if dW is None else dW), [c[:3] for c in cols]

    def psi_derivs(self, y, eta, w, psi, second: bool = True):
        rows = self._row_derivs(y, eta, w, psi, second=second)
        shape = np.broadcast(y, eta).shape
        return [tuple(a if (a is None or np.shape(a) == shape) else np.broadcast_to(a, shape) for a in c)
                for c in self._columns(rows, second)]

    def psi_hessian(self, y, eta, w, psi, summed: bool = False):
        """d2 l / d(beta_disp, beta_zi)^2: X' diag(per-row second derivatives) X blocks."""
        rows = self._row_derivs(y, eta, w, psi, second=True)
        if self.ke:
            return self._psi_hessian_extras(rows, np.shape(eta)[-1], summed)
        n = np.shape(eta)[-1]
        blocks = []
        if "d" in rows:
            blocks.append(("d", self.Xd, np.broadcast_to(rows["d"][3], (n,))))
        if "z" in rows:
            blocks.append(("z", self.Xz, np.broadcast_to(rows["z"][3], (n,))))
        k = self.n_psi
        off = {"d": 0, "z": self.kd}
        both = "d" in rows and "z" in rows
        if summed:
            H = np.zeros((k, k))
            for key, X, hrow in blocks:
                o, kx = off[key], X.shape[1]
                H[o : o + kx, o : o + kx] = X.T @ (hrow[:, None] * X)
            if both:
                C = self.Xd.T @ (np.broadcast_to(rows["dz_x"], (n,))[:, None] * self.Xz)
                H[: self.kd, self.kd :] = C
                H[self.kd :, : self.kd] = C.T
            return H
        H = np.zeros((n, k, k))
        for key, X, hrow in blocks:
            o = off[key]
            H[:, o : o + X.shape[1], o : o + X.shape[1]] = hrow[:, None, None] * X[:, :, None] * X[:, None, :]
        if both:
            cross = np.broadcast_to(rows["dz_x"], (n,))
            C = cross[:, None, None] * self.Xd[:, :, None] * self.Xz[:, None, :]
            H[:, : self.kd, self.kd :] = C
            H[:, self.kd :, : self.kd] = np.swapaxes(C, 1, 2)
        return H

    def _psi_hessian_extras(self, rows, n, summed):
        """The Hessian over [beta_disp, beta_zi, extras] with extras: per row, with D the second
        derivatives in the predictors (the base's psi components and xi) and coefficient k acting
        on predictor r_k through the column v_k (X_disp / c, X_zi, or ones),
        H_i[k, l] = v_ik v_il D_i[r_k, r_l]."""
        nb = self.base.n_psi
        P = nb + (1 if self.kz else 0)
        D = np.zeros((n, P, P))
        D[:, :nb, :nb] = np.broadcast_to(rows["bb"], (n, nb, nb))
        if self.kz:
            D[:, nb, nb] = np.broadcast_to(rows["z"][3], (n,))
            cross = [rows["dz_x"] * self.c] + list(rows["ex"])  # in base coordinates
            for a in range(nb):
                D[:, a, nb] = D[:, nb, a] = np.broadcast_to(cross[a], (n,))
        cols, pred = [], []
        if self.kd:
            cols.append(np.broadcast_to(self.Xd, (n, self.kd)) / self.c)
            pred += [0] * self.kd
        if self.kz:
            cols.append(self.Xz)
            pred += [nb] * self.kz
        cols.append(np.ones((n, self.ke)))
        pred += list(range(1, nb))
        V = np.hstack(cols)
        pred = np.asarray(pred)
        H = V[:, :, None] * V[:, None, :] * D[:, pred][:, :, pred]
        return H.sum(axis=0) if summed else H

    # ------------------------------------------------------------------ density
    def loglik_const(self, y, w):
        if self.point0 or self.zero is None:
            return self.base.loglik_const(y, w)
        # no mass at 0: the base's constant enters the positive rows only
        pos = np.asarray(y) > 0
        return np.where(pos, self.base.loglik_const(self._y_base(y), w), 0.0)

    def mu_derivs(self, y, mu, w, psi=None, order=3):
        raise NotImplementedError("CompositeFamily works on the linear predictor (eta_derivs)")

    def loglik(self, y, mu, w, psi=None):
        eta = self.link.link(np.asarray(mu, float))
        return self.eta_derivs(y, eta, w, psi, 1)[0] + self.loglik_const(y, w)

    def check_response(self, y, w, name):
        if self.point0 or self.zero is None:
            self.base.check_response(y, w, name)
        else:  # zeros are the zero model's; the rest must be in the base's support
            y = np.asarray(y, float)
            self.base._check_finite(y, name)
            neg = y < 0
            if neg.any():
                raise GlmmdiagError(
                    f"response {name!r} has {int(neg.sum())} negative values of {y.size} rows, outside the support "
                    f"of the zero-inflated {self.base.display_name} family (y = 0 or y > 0)"
                )
            pos = y > 0
            self.base.check_response(y[pos], np.broadcast_to(np.asarray(w, float), y.shape)[pos], name)
        if self.zero == "hurdle" and self.Xz is None and np.any(np.asarray(y) == 0):
            raise GlmmdiagError(
                f"response {name!r} has {int(np.sum(np.asarray(y) == 0))} zeros, outside the support of the "
                f"zero-truncated family {self.name} (k >= 1); give ziformula (e.g. '~1') for a hurdle model"
            )

    def start_mu(self, y, w):
        if self.point0 or self.zero is None:
            return self.base.start_mu(y, w)
        y = np.asarray(y, float)
        pos = y > 0
        fill = float(np.mean(y[pos])) if pos.any() else 1.0
        return self.base.start_mu(np.where(pos, y, fill), w)

    def psi_start(self, y, mu, w):
        """Starting coefficients: the base family's moment estimate of psi on the dispersion
        model's intercept (c psi, least squares on X_disp); for a hurdle the logistic regression
        of 1{y = 0} on X_zi (exact: the hurdle's zero part is separable); for zero-inflation the
        intercept logit((p0 - f0) / (1 - f0)), p0 the share of zeros and f0 the mean base
        probability of a zero, at least 0.05 (for a base without mass at 0 the logistic regression,
        exact as for a hurdle); the extras from the base's own start."""
        y, mu, w = (np.asarray(v, float) for v in (y, mu, w))
        parts = []
        bpsi = None
        if self.kd:
            sel = y > 0 if self.zero is not None else np.ones(len(y), bool)
            if sel.sum() < 2:
                sel = np.ones(len(y), bool)
            w_sel = np.broadcast_to(w, y.shape)[sel]
            b0 = np.asarray(self.base.psi_start(y[sel], mu[sel], w_sel), float)
            z0 = float(self.c * b0[0])
            if self.d_const:
                bd = np.array([z0])
            else:
                bd = np.linalg.lstsq(self.Xd, np.full(len(y), z0), rcond=None)[0]
            parts.append(bd)
            bpsi = np.concatenate([[z0 / self.c], b0[1:]])
            extras = b0[1:]
        if self.kz:
            if self.zero == "hurdle" or not self.point0:
                parts.append(_logistic_fit(self.Xz, (y == 0).astype(float)))
            else:
                wb, _ = self._weights(w)
                eta = self.link.link(np.maximum(mu, 1e-8))
                f0 = np.exp(self.base.eta_derivs(np.zeros_like(y), eta, wb, bpsi, 1)[0])
                p0, f0m = float(np.mean(y == 0)), float(np.mean(f0))
                pi0 = float(np.clip((p0 - f0m) / max(1.0 - f0m, 1e-8), 0.05, 0.95))
                parts.append(np.linalg.lstsq(self.Xz, np.full(len(y), np.log(pi0 / (1 - pi0))), rcond=None)[0])
        if self.ke:
            parts.append(extras)
        return np.concatenate(parts) if parts else np.zeros(0)

    # ------------------------------------------------------------------ reported parameters
    def dispersion(self, psi=None):
        """The base family's ``sigma()`` for a constant (or fixed) dispersion; None when it varies."""
        if not self.has_disp or self.disp_varies:
            return None
        return self.base.dispersion(self.split(psi)[0])

    def dispersion_extra(self, psi=None):
        """The base's further parameters (t's df, tweedie's power), which do not vary by row."""
        if not self.kd:
            return {}
        psi = np.asarray(psi, float).reshape(-1)
        extras = psi[self.kd + self.kz : self.kd + self.kz + self.ke]
        return self.base.dispersion_extra(np.concatenate([[0.0], extras]))

    def glmmtmb_betad(self, psi=None):
        if not self.kd:
            return None
        return np.asarray(psi, float)[: self.kd]

    # ------------------------------------------------------------------ response-scale pieces
    def parts(self, eta, psi, Xd=None, Xz=None):
        """(mu, base psi, pi, f0) per row for linear predictor ``eta`` (pi = 0 without a zero
        model; f0 = base P(y = 0), computed for the zero models only)."""
        bpsi, xi = self.split(psi, Xd, Xz)
        mu = self.link.inverse(eta)
        pi = np.zeros(np.shape(eta)) if xi is None else _expit(xi)
        f0 = None
        if self.zero is not None:
            f0 = self._f0(mu, bpsi)
        return mu, bpsi, pi, f0

    def _f0(self, mu, bpsi):
        w1 = np.ones(np.shape(mu))
        return self.base.cdf(np.zeros(np.shape(mu)), mu, w1, bpsi) if self.base.name != "binomial" else (1 - mu)

    @staticmethod
    def _over_nonzero(a, f0):
        """a / (1 - f0): a moment of the zero-truncated base from the untruncated one; where
        1 - f0 underflows to 0 (a mean ~ 0) its limit 1 (all the mass at k = 1)."""
        den = 1.0 - np.asarray(f0, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, a / np.where(den > 0, den, 1.0), 1.0)

    def mean(self, mu, pi, f0):
        """E y: (1 - pi) mu for zero-inflation, (1 - pi) mu / (1 - f0) for a hurdle."""
        if self.zero == "hurdle":
            return (1.0 - pi) * self._over_nonzero(mu, f0)
        return (1.0 - pi) * mu

    def variance(self, mu, psi=None):
        """Var y for the fitted rows (for Pearson residuals): mu is the conditional mean."""
        bpsi, pi = self._base_psi_rows(psi, mu)
        v = self.base.variance(mu, bpsi)
        if self.zero is None:
            return v
        pi = np.zeros(np.shape(mu)) if pi is None else pi
        if self.zero == "zi":
            m2 = v + mu * mu
            return (1 - pi) * m2 - ((1 - pi) * mu) ** 2
        f0 = self._f0(mu, bpsi)
        m1, m2 = self._over_nonzero(mu, f0), self._over_nonzero(v + mu * mu, f0)
        return (1 - pi) * m2 - ((1 - pi) * m1) ** 2

    def _rows_first(self, a, like):
        """A per-row vector (n,) shaped to broadcast with ``like``, whose first axis is the rows
        (the simulation layout (nobs, nsim))."""
        a = np.asarray(a, float)
        like = np.asarray(like)
        if a.ndim == 1 and like.ndim == 2:
            return a[:, None]
        return a

    def _base_psi_rows(self, psi, like):
        bpsi, xi = self.split(psi)
        if bpsi is not None and not self.d_const:
            bpsi = np.stack([self._rows_first(b, like) for b in bpsi])
        pi = None if xi is None else self._rows_first(_expit(xi), like)
        return bpsi, pi

    def sample(self, mu, w, rng, psi=None):
        """Draws of the composed response for conditional means ``mu`` (nobs,) or (nobs, nsim):
        the base draw; zero-truncated draws by the inverse CDF on (f0, 1); then a zero with
        probability pi (zero-inflation: replacing the draw; hurdle: instead of the positive draw)."""
        mu = simulable_means(mu, self.name)
        bpsi, pi = self._base_psi_rows(psi, mu)
        wb = w if self.base.weight_role == "trials" else np.ones_like(mu)
        if self.zero == "hurdle":
            y = self._truncated_draws(mu, bpsi, rng)
        else:
            y = self.base.sample(mu, wb, rng, bpsi)
        if pi is not None:
            y = np.where(rng.random(np.shape(mu)) < pi, 0.0, y)
        return y

    def _truncated_draws(self, mu, bpsi, rng):
        """Zero-truncated base draws (``truncated_draws``)."""
        return truncated_draws(self.base, mu, bpsi, rng)

    def cdf(self, y, mu, w, psi=None):
        """P(Y <= y): zero-inflation pi + (1 - pi) F(y) (y >= 0); hurdle pi + (1 - pi)(F(y) - f0)/(1 - f0)
        (y >= 1) and pi at 0 <= y < 1; 0 below 0."""
        y = np.asarray(y, float)
        bpsi, pi = self._base_psi_rows(psi, mu)
        pi = 0.0 if pi is None else pi
        F = self.base.cdf(y, mu, w, bpsi)
        if self.zero == "zi":
            return np.where(y < 0, 0.0, pi + (1 - pi) * F)
        if self.zero is None:
            return F
        f0 = self._f0(mu, bpsi)
        return np.where(y < 0, 0.0, np.where(y < 1, pi, pi + (1 - pi) * (F - f0) / (1 - f0)))

    def cdf_lower(self, y, mu, w, psi=None):
        """P(Y < y): the CDF at y - 1 for counts; for a continuous base (with or without an atom at
        0) 0 at y <= 0 with a zero model, (1 - pi) P_base(Y < y) + pi above 0 (zero-inflation)."""
        if self.discrete:
            return self.cdf(np.asarray(y, float) - 1.0, mu, w, psi)
        if self.zero is None:
            bpsi, _ = self._base_psi_rows(psi, mu)
            return self.base.cdf_lower(y, mu, w, bpsi)
        y = np.asarray(y, float)
        bpsi, pi = self._base_psi_rows(psi, mu)
        pi = 0.0 if pi is None else pi
        return np.where(y <= 0, 0.0, pi + (1 - pi) * self.base.cdf_lower(y, mu, w, bpsi))


def truncated_poisson_draws(lam, rng):
    """Zero-truncated Poisson draws for means ``lam`` > 0 (any shape), exact and without rejection.

    Think of y ~ Poisson(lam) as the number of arrivals on [0, 1] of a Poisson process of rate lam.
    Given at least one arrival, the first arrival time T has density lam e^(-lam t) / (1 - e^(-lam))
    on [0, 1], and the arrivals after it are Poisson(lam (1 - T)), independent of T. So with
    V ~ Uniform(0, 1), T = -log(1 - V (1 - e^(-lam))) / lam (inverse CDF) and

        y = 1 + Poisson(lam (1 - T)) = 1 + Poisson(lam + log(1 - V (1 - e^(-lam)))).

    One uniform and one Poisson draw per value whatever lam (rejection needs 1 / (1 - e^(-lam))
    rounds, 10 at lam = 0.1). Rounding can make the inner mean slightly negative when V is near 1
    (the first arrival near the end of the interval): clipped at 0.
    Means above ~1e18 use the normal approximation of ``families._poisson_draws``.
    """
    lam = np.asarray(lam, float)
    v = rng.random(lam.shape)
    rest = np.maximum(lam + np.log1p(v * np.expm1(-lam)), 0.0)
    return 1.0 + _poisson_draws(rest, rng)


TRUNC_REJECT_F0 = 0.5  # rows with P(0) below this: rejection; above: inverse CDF by sequential search
TRUNC_ROUNDS = 40  # rejection rounds / search steps before the rest goes through scipy's quantile function


def truncated_draws(base, mu, bpsi, rng):
    """Draws of the zero-truncated base (Poisson or negative binomial) for means ``mu`` (any shape;
    ``bpsi`` broadcasts with it), exact and vectorised. Poisson: ``truncated_poisson_draws`` (no
    rejection). Negative binomial:

    * values with f0 = P(0) < TRUNC_REJECT_F0: rejection -- base draws, zeros redrawn (at most
      TRUNC_ROUNDS rounds; fewer than 2 draws per value on average);
    * the others: the inverse CDF of U ~ Uniform(f0, 1) by sequential search over k = 1, 2, ...
      with the pmf recurrence (their values are small);
    * whatever is left after TRUNC_ROUNDS rounds or steps (heavy tails): scipy's quantile function.

    The random stream depends only on the means and the generator (reproducible)."""
    mu = np.maximum(np.asarray(mu, float), 1e-300)
    if base.name == "poisson":
        return truncated_poisson_draws(mu, rng)
    size, p = base._size_prob(mu, bpsi)
    shape = np.broadcast(mu, size, p).shape
    size = np.ascontiguousarray(np.broadcast_to(size, shape), float).ravel()
    p = np.ascontiguousarray(np.broadcast_to(p, shape), float).ravel()
    m = np.ascontiguousarray(np.broadcast_to(mu, shape)).ravel()
    f0 = np.exp(size * np.log(p))
    y = np.zeros(m.size)
    rej = f0 < TRUNC_REJECT_F0
    # rejection
    idx = np.flatnonzero(rej)
    for _ in range(TRUNC_ROUNDS):
        if not idx.size:
            break
        # (means above ~1e18, which numpy's sampler refuses, by the normal approximation)
        sz = size[idx]
        d = _poisson_draws(rng.gamma(sz, m[idx] / sz), rng)
        y[idx] = d
        idx = idx[d == 0]
    rest, u_rest = idx, None
    # inverse CDF by sequential search
    idx = np.flatnonzero(~rej)
    if idx.size:
        f0i = f0[idx]
        u = f0i + (1.0 - f0i) * rng.random(idx.size)
        sz, q = size[idx], 1.0 - p[idx]
        pk = f0i.copy()  # P(k), from k = 0
        F = f0i.copy()
        active = np.arange(idx.size)
        for k in range(1, TRUNC_ROUNDS + 1):
            a = active
            pk[a] *= (k - 1.0 + sz[a]) / k * q[a]
            F[a] += pk[a]
            done = u[a] <= F[a]
            y[idx[a[done]]] = k
            active = a[~done]
            if not active.size:
                break
        if active.size:
            rest = np.concatenate([rest, idx[active]])
            u_rest = u[active]
    # leftovers: scipy's quantile function (fresh uniforms after rejection, the searched ones after search)
    if rest.size:
        n_rej = rest.size - (0 if u_rest is None else u_rest.size)
        f0r = f0[rest[:n_rej]]
        u_all = f0r + (1.0 - f0r) * rng.random(n_rej)
        if u_rest is not None:
            u_all = np.concatenate([u_all, u_rest])
        u_all = np.minimum(u_all, np.nextafter(1.0, 0.0))
        y[rest] = stats.nbinom.ppf(u_all, size[rest], p[rest])
    return np.maximum(y, 1.0).reshape(shape)


def _logistic_fit(X, z, iters=25):
    """Maximum-likelihood logistic regression of z on X by Newton steps (a start only)."""
    b = np.zeros(X.shape[1])
    for _ in range(iters):
        p = _expit(X @ b)
        Wt = np.maximum(p * (1 - p), 1e-10)
        step = np.linalg.lstsq(X.T @ (Wt[:, None] * X) + 1e-8 * np.eye(X.shape[1]), X.T @ (z - p), rcond=None)[0]
        b = b + step
        if np.max(np.abs(step), initial=0.0) < 1e-10:
            break
    return np.clip(b, -15, 15)


# ---------------------------------------------------------------------------- building
_NONE = ("", "0", "-1", "~0", "~-1", "~0+0")


def _rhs(formula, what):
    """The right-hand side of a one-sided submodel formula; None for none ("~0", None)."""
    if formula is None:
        return None
    text = str(formula).strip()
    if "".join(text.split()) in _NONE:
        return None
    if not text.startswith("~"):
        raise GlmmdiagError(f"{what} must be a one-sided formula such as '~ x + f' or '~1'; got {formula!r}")
    rhs = text[1:].strip()
    if "|" in rhs:
        raise GlmmdiagError(
            f"random effects in {what} ({formula!r}) are not supported yet: the {what} model may contain "
            f"fixed effects only"
        )
    return rhs


def _submodel_matrix(rhs, design, data, what):
    """(X, R names, spec) of a submodel's fixed effects on the fitted rows."""
    import pandas as pd

    from glmmdiag.fit.design import _drop_rank_deficient, _r_poly_name, ordered_poly_rhs, r_column_name
    from glmmdiag.fit.fixed import fixed_model_matrix
    from glmmdiag.fit.formula import formula_variables

    if not isinstance(data, pd.DataFrame):
        data = pd.DataFrame(data)
    names = sorted(formula_variables(rhs))
    missing = [v for v in names if v not in data.columns]
    if missing:
        from glmmdiag.errors import ColumnError

        raise ColumnError(f"{what} uses column(s) {missing} that are not in the data")
    frame = data.iloc[design.rows].reset_index(drop=True)
    for v in names:
        col = frame[v]
        if col.isna().any():
            raise GlmmdiagError(
                f"column {v!r} of the {what} has {int(col.isna().sum())} missing values among the rows the "
                f"conditional model uses; missing values in submodel columns are not supported yet: drop them"
            )
        if isinstance(col.dtype, pd.CategoricalDtype):
            frame[v] = col.cat.remove_unused_categories()
    rhs, poly_columns = ordered_poly_rhs(rhs, frame)  # ordered factors: R's contr.poly, as the conditional model
    X, xnames, spec = fixed_model_matrix(rhs, frame)
    X = np.asarray(X, float)
    xnames = [_r_poly_name(r_column_name(c), poly_columns) for c in xnames]
    if X.shape[0] != design.n or not np.all(np.isfinite(X)):
        raise GlmmdiagError(f"the {what} model matrix has non-finite values or the wrong number of rows")
    keep = _drop_rank_deficient(X, xnames)
    return X[:, keep], [xnames[i] for i in keep], (spec, keep if len(keep) < len(xnames) else None)


def _is_fixed_part(rhs, design) -> bool:
    """Whether a submodel's right-hand side is the conditional model's fixed part, written the same
    way: its matrix, names and replay spec are then the design's (built from the same rows by the
    same steps as ``_submodel_matrix``). Not when the design encoded ordered factors as
    ``C(col, contr.poly)`` (``fit.design._ordered_as_poly``): it then names their columns as R does
    (``dose.L``), which ``_submodel_matrix`` does not."""
    fixed = getattr(getattr(design, "formula", None), "fixed", None)
    return (isinstance(fixed, str) and "contr.poly" not in fixed
            and "".join(rhs.split()) == "".join(fixed.split()))


def truncated_family(name, link=None):
    """The zero-truncated family ``name`` ("truncated_poisson", "truncated_nbinom1",
    "truncated_nbinom2") with a constant dispersion, for ``families.get_family``: usable on its
    own (density, CDF, draws at a scalar psi = [disp~(Intercept)]); ``glmm`` rebuilds it over its
    data (with ``ziformula``: a hurdle model)."""
    from glmmdiag.fit.families import get_family

    base = get_family(TRUNCATED[name], link)
    Xd = np.ones((1, 1)) if base.n_psi else None
    return CompositeFamily(base, Xd, None, "hurdle", ["(Intercept)"] if base.n_psi else [], [],
                           truncated_name=name)


def response_family(base, ziformula=None, dispformula=None):
    """The family whose support check the design applies to the response: the base family, or
    with a zero model over a base without mass at 0 (Gamma) one that takes the zeros as the zero
    model's (``CompositeFamily.check_response``); for a gaussian model without residual variance
    (dispformula "~0") one that says so (``disp_fixed``: a random effect per row is then allowed)."""
    if base.name in NO_ZERO_MASS and _rhs(ziformula, "ziformula") is not None:
        return CompositeFamily(base, zero="zi")
    if base.name == "gaussian" and dispformula is not None and _rhs(dispformula, "dispformula") is None:
        return CompositeFamily(base, np.zeros((1, 0)), disp_offset=DISP_ZERO_BETAD)
    return base


def build_composite(base, design, data, ziformula=None, dispformula=None, truncated_name=None):
    """The CompositeFamily for these submodel formulas, or None when there is nothing to add
    (no zero model, a constant or absent dispersion model, not a truncated family).

    Raises GlmmdiagError ("not supported yet") for combinations that are not implemented."""
    zrhs = _rhs(ziformula, "ziformula")
    drhs = _rhs(dispformula, "dispformula") if dispformula is not None else "1"
    zero = "hurdle" if truncated_name else ("zi" if zrhs is not None else None)
    if zrhs is not None and base.name not in ZERO_FAMILIES:
        why = ZI_REFUSALS.get(base.name)
        if why is not None:
            raise GlmmdiagError(f"ziformula (zero-inflation) is not available for the {base.name} family: {why}")
        raise GlmmdiagError(
            f"ziformula with the {base.name} family is not supported yet; zero-inflation is available for "
            f"{', '.join(ZERO_FAMILIES)} (and hurdles via {', '.join(TRUNCATED)})"
        )
    if not base.n_psi:
        if dispformula is not None and drhs is not None and "".join(drhs.split()) != "1":
            raise GlmmdiagError(f"the {base.name} family has no dispersion parameter: dispformula does not apply")
        drhs = None
    elif drhs is None and base.name != "gaussian":
        raise GlmmdiagError(
            f"dispformula '~0' (no residual variance) applies to the gaussian family only (as in glmmTMB); "
            f"the {base.name} family needs its dispersion parameter"
        )
    disp_zero = base.n_psi > 0 and drhs is None  # gaussian without residual variance
    disp_const = drhs is not None and "".join(drhs.split()) == "1"
    if drhs is not None and not disp_const and base.name not in DISP_FAMILIES:
        raise GlmmdiagError(
            f"dispformula with the {base.name} family is not supported yet; available for {', '.join(DISP_FAMILIES)}"
        )
    if zero is None and not disp_zero and (drhs is None or disp_const):
        return None
    specs = {}
    Xd = Xz = None
    dnames = znames = []
    if disp_zero:  # the dispersion predictor is the fixed offset alone
        Xd = np.zeros((design.n, 0))
    elif drhs is not None:
        if disp_const:
            Xd, dnames = np.ones((design.n, 1)), ["(Intercept)"]
        else:
            Xd, dnames, specs["disp"] = _submodel_matrix(drhs, design, data, "dispformula")
    if zrhs is not None:
        if _is_fixed_part(zrhs, design):  # (glmmTMB's common ziformula = the conditional fixed part)
            Xz, znames, specs["zi"] = design.X.copy(), list(design.xnames), (design.x_spec, design.x_kept)
        else:
            Xz, znames, specs["zi"] = _submodel_matrix(zrhs, design, data, "ziformula")
        if Xz.shape[1] == 0:
            Xz, znames = None, []
    fam = CompositeFamily(base, Xd, Xz, zero, dnames, znames, specs, truncated_name,
                          DISP_ZERO_BETAD if disp_zero else 0.0)
    fam.formulas = {"zi": None if zrhs is None else f"~{zrhs}",
                    "disp": "~0" if disp_zero else (None if (drhs is None or disp_const) else f"~{drhs}")}
    fam.check_response(design.y, design.w, design.response_name)
    return fam
