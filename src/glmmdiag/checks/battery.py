"""``residual_tests``: the main tests together."""
from __future__ import annotations



from glmmdiag.results import ResidualTests, ScaledResiduals
from glmmdiag.checks.dispersion import dispersion_test
from glmmdiag.checks.outliers import outlier_test
from glmmdiag.checks.uniformity import uniformity_test


# ---------------------------------------------------------------------------------- together
def residual_tests(res: ScaledResiduals) -> ResidualTests:
    """Uniformity (KS), dispersion (default kind) and outliers (default type) together."""
    family = res.family_name if res.family_name not in ("", "unknown") else None
    return ResidualTests(uniformity_test(res), dispersion_test(res), outlier_test(res), family=family)
