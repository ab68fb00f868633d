"""glmmdiag: generalized linear mixed models and simulation-based residual diagnostics."""
from glmmdiag.fit import glmm

__version__ = "0.1.0.dev0"
__all__ = ["glmm", "__version__"]
