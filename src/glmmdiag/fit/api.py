"""The entry point: ``glmm(formula, data, family=...)``."""
from __future__ import annotations

import warnings

import pandas as pd

from glmmdiag._threads import blas_threads
from glmmdiag.fit.design import build_design, check_rows_vs_parameters
from glmmdiag.fit.engine import fit_or_raise
from glmmdiag.fit.families import Family, get_family
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
    df: float | None = None,
    ziformula: str | None = None,
    dispformula: str | None = None,
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
        must be > 0.
    reml : bool
        REML for linear mixed models (ignored otherwise, as in glmmTMB's default ML).
    n_agq : int
        1 = Laplace approximation; > 1 = adaptive Gauss-Hermite quadrature with that many nodes,
        available for a single scalar random-effects term.
    df : float, optional
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
        (Gamma), log sigma (t; its df stays one scalar, estimated or fixed by ``df=``). "~1" (the
        default) is the constant dispersion. Estimates: ``fit.fixef_disp``.

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
    if df is not None:
        name = family.name if isinstance(family, Family) else str(family).lower()
        if name not in ("t", "student_t", "t_family"):
            raise GlmmdiagError(f"df= applies to the t family only; got family={family!r}")
        fam = get_family(family, link, df=df)
    else:
        fam = get_family(family, link)
    n_agq = int(n_agq)
    if n_agq < 1:
        raise GlmmdiagError("n_agq must be >= 1 (1 = Laplace approximation)")
    with blas_threads(1):
        design = build_design(formula, data, response_family(fam, ziformula), weights=weights, offset=offset)
    lmm = fam.name == "gaussian" and fam.link.name == "identity"
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
            "REML is available for linear mixed models (family='gaussian' with the identity link) only"
        )
    comp = build_composite(fam, design, data, ziformula, dispformula, truncated)
    if comp is not None:
        if n_agq > 1:
            raise GlmmdiagError("n_agq > 1 with ziformula, dispformula or a truncated family is not supported yet")
        if reml:
            raise GlmmdiagError("REML with ziformula or dispformula is not supported yet")
        fam = comp
    check_rows_vs_parameters(design, fam, reml)
    # numerical failures (singular matrices, PIRLS without a mode) become a FitError
    state = fit_or_raise(design, fam, reml=reml, n_agq=n_agq)
    for w in state.warnings:  # instances: each keeps its class (ConvergenceWarning, ...)
        warnings.warn(w, stacklevel=2)
    return GLMMResults(design, fam, state, reml=reml, n_agq=n_agq)
