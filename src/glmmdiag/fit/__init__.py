"""Mixed-model fitting: lme4-style formulas, LMM (ML/REML), GLMM (Laplace, adaptive Gauss-Hermite)."""
from glmmdiag.fit.api import glmm

__all__ = ["glmm"]
