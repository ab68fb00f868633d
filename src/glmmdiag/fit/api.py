"""The entry point: ``glmm(formula, data, family=...)``."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from glmmdiag._threads import blas_threads
from glmmdiag.fit.design import build_design, check_rows_vs_parameters
from glmmdiag.fit.engine import _is_lmm, fit_or_raise
from glmmdiag.fit.mapping import ParameterLayout, build_parameter_map, default_value, engine_start, state_value
from glmmdiag.fit.families import Family, get_family
from glmmdiag.fit.gaussian_weights import gaussian_with_weights
from glmmdiag.fit.model import GLMMResults
from glmmdiag.fit.submodels import TRUNCATED, build_composite, response_family
from glmmdiag.errors import GlmmdiagError

__all__ = ["glmm"]


def glmm(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "gaussian",
    *,
    link: str | None = None,
    weights=None,
    offset=None,
    reml: bool = False,
    n_agq: int = 1,
    t_df: float | None = None,
    ziformula: str | None = None,
    dispformula: str | None = None,
    start: dict | None = None,
    map: dict | None = None,  # noqa: A002 - glmmTMB's name
    fixed: dict | None = None,
    weights_type: str | None = None,
) -> GLMMResults:
    """Fit a (generalized) linear mixed model from an lme4-style formula.

    Parameters
    ----------
    formula : str
        ``response ~ fixed + (expr | group)``; ``(expr || g)``, ``(1 | a/b)``, ``(1 | a:b)``,
        ``offset(expr)`` and ``cbind(successes, failures)`` as in lme4. Inside the fixed part and
        the bars, expressions follow formulaic (Python operators: ``I(x**2)``).
    data : DataFrame
        Factor level order (treatment-contrast reference) comes from pandas Categorical columns.
    family : str or Family
        "gaussian", "binomial", "poisson", "gamma" (or "Gamma"), "beta" (or "beta_family"),
        "nbinom2", "nbinom1", "t" (or "t_family"). Gaussian with the identity link is fitted as
        a linear mixed model (ML or REML); every other family and link by the Laplace
        approximation, with the family's dispersion parameter (and t's df) estimated jointly on
        the log scale, as glmmTMB. ``fit.dispersion`` holds glmmTMB's ``sigma()``.
    link : str, optional
        Link function; the family's default link by default (R's: inverse for Gamma).
    weights, offset : array-like or column name, optional
        Prior weights (binomial: the number of trials when the response is a proportion) and an
        offset added to the linear predictor. A row with zero weight (binomial: zero trials)
        contributes nothing to the likelihood and is left out of the fit (as R's glm/lm leave it
        out of the log-likelihood), whatever its mean; it keeps its fitted value, prediction and
        simulated responses. Gaussian weights are precision weights (variance sigma^2 / w) and
        must be > 0 (unless ``weights_type="frequency"``).
    weights_type : {None, "precision", "frequency"}
        How gaussian weights enter the model. "precision" (the default, lme4's ``lmer``/``glm``
        and R's ``lm``): y_i ~ N(mu_i, sigma^2 / w_i). "frequency" (glmmTMB's gaussian weights):
        each row's log density is multiplied by w_i, as if the row occurred w_i times, so
        sum(w) rather than n rows inform sigma; fitted by maximum likelihood (Laplace, exact for
        gaussian), zero weights allowed. The two give the same fit only when every w_i = 1.
        Other families have one reading of their weights (binomial: trials; the rest:
        log-density multipliers, as glmmTMB) and take only None.
    reml : bool
        REML for linear mixed models (ignored otherwise, as in glmmTMB's default ML).
    n_agq : int
        1 = Laplace approximation; > 1 = adaptive Gauss-Hermite quadrature with that many nodes,
        available for a single scalar random-effects term.
    t_df : float, optional
        Student t family only: fix the degrees of freedom at this value (> 0); by default they
        are estimated.
    ziformula : str, optional
        glmmTMB's zero model, a one-sided formula of fixed effects ("~ x + f", "~1"; "~0" or None:
        none): logit pi_i = X_zi beta_zi. With poisson, binomial, nbinom1, nbinom2, betabinomial,
        tweedie it is zero-inflation, P(0) = pi + (1 - pi) f(0), P(k) = (1 - pi) f(k); with gamma
        (f(0) = 0, glmmTMB's ziGamma) P(0) = pi, P(y > 0) = (1 - pi) f(y); with the zero-truncated
        families "truncated_poisson", "truncated_nbinom1", "truncated_nbinom2" a hurdle model,
        P(0) = pi, P(k > 0) = (1 - pi) f(k) / (1 - f(0)). Estimates: ``fit.fixef_zi``.
    dispformula : str, optional
        glmmTMB's dispersion model (fixed effects), on glmmTMB's scale of ``betad``: log theta
        (nbinom2), log phi (nbinom1, beta, betabinomial, tweedie), log sigma^2 (gaussian), log shape
        (Gamma), log sigma (t; its df stays one scalar, estimated or fixed by ``t_df=``). "~1" (the
        default) is the constant dispersion. Estimates: ``fit.fixef_disp``.
    start : dict, optional
        glmmTMB's ``start=``: starting values by glmmTMB's parameter names and scales --
        ``"beta"`` (fixed effects, in the order of ``fit.fixef``), ``"betad"`` (dispersion: log
        sigma^2 for gaussian, log sigma for t, log theta for nbinom2, log phi for nbinom1 / beta /
        betabinomial, log shape for Gamma), ``"theta"`` (per random-effects term in formula order:
        its log SDs, then for ``(x | g)`` with q > 1 the q(q-1)/2 correlation parameters, row by
        row below the diagonal of glmmTMB's unit lower-triangular factor; for q = 2 the
        correlation is t / sqrt(1 + t^2)) and ``"psi"`` (the t family's log df). E.g.
        ``start={"theta": [np.log(2.0)]}``. Entries not given start where the fit would.
    map : dict, optional
        glmmTMB's ``map=``: per parameter name, one label per entry. ``None`` fixes the entry at
        its ``start`` value (which must be given); entries with equal labels share one value;
        other labels leave entries free. E.g. ``map={"theta": [0, 0]}`` (two SDs equal),
        ``start={"betad": [0.0]}, map={"betad": [None]}`` (gaussian sigma fixed at 1),
        ``start={"psi": [np.log(3)]}, map={"psi": [None]}`` (t df fixed at 3). A mapped model is
        fitted by maximum likelihood (Laplace, exact for gaussian) over the free values only:
        fixed values are excluded from the optimiser and from ``fit.vcov`` (a fixed beta has
        variance 0), and ``fit.n_params`` (the df of logLik, AIC, BIC) counts free values only.
        Not with REML, ``n_agq > 1``, ``ziformula``/``dispformula`` or covariance structures
        other than us, diag and homdiag. Unknown names and wrong lengths raise GlmmdiagError.
    fixed : dict, optional
        Shorthand for fixed values: ``fixed={"betad": [0.0]}`` is ``start={"betad": [0.0]},
        map={"betad": [None]}``; ``fixed={"theta": [None, np.log(2)]}`` fixes the second entry
        only (None entries stay free). Same names and scales as ``start``.

    Returns
    -------
    GLMMResults

    Raises
    ------
    GlmmdiagError
        Bad input, or too few rows for the parameters (e.g. REML with as many fixed effects as rows).
    FitError
        The model cannot be fitted to these data (a singular system, no conditional modes).

    Warns
    -----
    ConvergenceWarning, SingularFitWarning, SeparationWarning, RankDeficiencyWarning,
    DegenerateFitWarning
        From :mod:`glmmdiag.errors`; their messages are also in ``fit.warnings``.

    Examples
    --------
    A linear mixed model (lme4's ``lmer(Reaction ~ Days + (Days | Subject), sleepstudy)``):

    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> sleep = datasets.load("sleepstudy")
    >>> fit = glmmdiag.glmm("Reaction ~ Days + (Days | Subject)", sleep, reml=True)
    >>> print(fit.fixef.round(2).to_string())
    (Intercept)    251.41
    Days            10.47
    >>> print(f"REML criterion {-2 * fit.loglik:.1f}")
    REML criterion 1743.6

    A binomial GLMM from success and failure counts (``glmer(cbind(incidence, size - incidence) ~
    period + (1 | herd), cbpp, family = binomial)``, AIC 194.1 in lme4):

    >>> cbpp = datasets.load("cbpp")
    >>> gfit = glmmdiag.glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
    ...                      family="binomial")
    >>> print(f"AIC {gfit.aic:.1f}, herd SD {gfit.varcorr['sdcor'].iloc[0]:.3f}")
    AIC 194.1, herd SD 0.642
    """
    truncated = None
    if isinstance(family, str) and family.lower() in TRUNCATED:
        truncated = family.lower()
        family = TRUNCATED[truncated]
    elif isinstance(family, Family) and getattr(family, "truncated_name", None):
        # get_family("truncated_nbinom2"): rebuilt over these data (and ziformula) below
        truncated, family = family.truncated_name, family.base
    if t_df is not None:
        name = family.name if isinstance(family, Family) else str(family).lower()
        if name not in ("t", "student_t", "t_family"):
            raise GlmmdiagError(f"t_df= applies to the t family only; got family={family!r}")
        fam = get_family(family, link, df=t_df)
    else:
        fam = get_family(family, link)
    fam = gaussian_with_weights(fam, weights_type)
    n_agq = int(n_agq)
    if n_agq < 1:
        raise GlmmdiagError("n_agq must be >= 1 (1 = Laplace approximation)")
    with blas_threads(1):
        design = build_design(formula, data, response_family(fam, ziformula, dispformula), weights=weights, offset=offset)
    lmm = _is_lmm(fam)
    if n_agq > 1:
        if lmm:
            raise GlmmdiagError("n_agq > 1 applies to GLMMs; a linear mixed model is fitted exactly")
        if len(design.terms) != 1 or design.terms[0].q != 1:
            raise GlmmdiagError(
                "adaptive Gauss-Hermite quadrature (n_agq > 1) needs exactly one random-effects term with "
                "a single coefficient, such as (1 | g); use n_agq=1 (Laplace) for this model"
            )
    if reml and not lmm:
        raise GlmmdiagError(
            "REML is available for linear mixed models (family='gaussian' with the identity link and "
            "precision weights) only"
        )
    comp = build_composite(fam, design, data, ziformula, dispformula, truncated)
    if comp is not None:
        if n_agq > 1:
            raise GlmmdiagError("n_agq > 1 with ziformula, dispformula or a truncated family is not supported yet")
        if reml:
            raise GlmmdiagError("REML with ziformula or dispformula is not supported yet")
        fam = comp
    check_rows_vs_parameters(design, fam, reml)
    pmap = None
    if start is not None or map is not None or fixed is not None:
        pmap = _parameter_map(design, fam, start, map, fixed, reml, n_agq)
    # numerical failures (singular matrices, PIRLS without a mode) become a FitError
    if pmap is not None and pmap.mapped:
        state = fit_or_raise(design, fam, mapping=pmap)
    elif pmap is not None:
        state = fit_or_raise(design, fam, reml=reml, n_agq=n_agq, start=engine_start(pmap.layout, pmap.value, _is_lmm(fam)))
    else:
        state = fit_or_raise(design, fam, reml=reml, n_agq=n_agq)
    for w in state.warnings:  # instances: each keeps its class (ConvergenceWarning, ...)
        warnings.warn(w, stacklevel=2)
    res = GLMMResults(design, fam, state, reml=reml, n_agq=n_agq)
    if pmap is not None and pmap.mapped:
        res.parameter_map = pmap
    return res


def _parameter_map(design, fam, start, map_, fixed, reml: bool, n_agq: int):
    """Check ``start=``/``map=`` and build the :class:`~glmmdiag.fit.mapping.ParameterMap`. A
    map starts from the unmapped fit's optimum where ``start`` does not say otherwise."""
    if not design.terms:
        raise GlmmdiagError("start=, map= and fixed= apply to models with random effects")
    if (map_ is not None or fixed is not None) and (reml or n_agq > 1):
        raise GlmmdiagError("map= fits by maximum likelihood with the Laplace approximation: use reml=False and n_agq=1")
    lmm = _is_lmm(fam)
    ParameterLayout.of(design, fam)  # unsupported families and structures fail before any fit
    value = default_value(design, fam, lmm)
    pmap = build_parameter_map(design, fam, start, map_, value, fixed)
    if pmap.mapped:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                st = fit_or_raise(design, fam)
                value = np.where(pmap.given, pmap.value, state_value(pmap.layout, st, lmm))
            except GlmmdiagError:
                value = pmap.value
        pmap = build_parameter_map(design, fam, start, map_, value, fixed)
    return pmap
