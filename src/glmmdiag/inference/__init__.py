"""Inference after the fit: Wald chi-square tests per term (``car::Anova``), likelihood-ratio
tests between nested fits (``anova(m1, m2)``; by parametric bootstrap, DHARMa's ``simulateLRT``), estimated marginal means with back-transformed
intervals (``emmeans``), pairwise comparisons with multiplicity adjustments and compact letter
displays (``pairs``, ``multcomp::cld``), and Wald confidence intervals (``confint``).
"""
from glmmdiag.inference.bootstrap_lrt import simulate_lrt
from glmmdiag.inference.contrasts import PairwiseComparisons, cld, p_adjust, pairwise
from glmmdiag.inference.emmeans import MarginalMeans, marginal_means
from glmmdiag.inference.intervals import confint
from glmmdiag.inference.lrt import anova
from glmmdiag.inference.wald import wald_anova

__all__ = [
    "wald_anova",
    "anova",
    "simulate_lrt",
    "marginal_means",
    "MarginalMeans",
    "pairwise",
    "PairwiseComparisons",
    "cld",
    "p_adjust",
    "confint",
]
