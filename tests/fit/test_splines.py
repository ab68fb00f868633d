"""ns() and bs() spline terms as R's splines package builds them (issue 17, item 5).

Reference: tests/reference/rstyle/splines.R (R 4.2.2, lme4 1.1.31) wrote splines.csv and
splines.json: the basis columns of ten ns()/bs() calls on the data, the same bases replayed on
new x (several beyond the boundary knots), and an lmer and a glmer fit with spline terms with
their predictions on that new x (``predict(m, newdata, re.form = NA)``).
"""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

from glmmdiag.errors import FormulaError
from glmmdiag.fit import glmm
from glmmdiag.fit.fixed import formulaic_matrix
from glmmdiag.fit.splines import natural_spline_basis

HERE = pathlib.Path(__file__).parent.parent / "reference" / "rstyle"
REF = json.loads((HERE / "splines.json").read_text())
DATA = pd.read_csv(HERE / "splines.csv")
NEW = pd.DataFrame({"x": REF["newx"], "g": 1})


@pytest.mark.parametrize("case", REF["bases"], ids=[b["r"] for b in REF["bases"]])
def test_basis_columns_and_new_data_match_r(case):
    """Columns (not only fitted values) to 1e-8; knots are R's type-7 quantiles; new x beyond
    the boundary knots extrapolate as R (bs: the boundary polynomial, ns: linearly)."""
    X, names, spec = formulaic_matrix("0 + " + case["py"], DATA)
    np.testing.assert_allclose(X, np.array(case["basis"]), rtol=0, atol=1e-8)
    assert len(names) == np.array(case["basis"]).shape[1]
    Xn = np.asarray(spec.get_model_matrix(NEW[["x"]]))
    np.testing.assert_allclose(Xn, np.array(case["newdata"]), rtol=0, atol=1e-8)


def test_natural_spline_has_zero_second_derivative_at_the_boundary():
    """Closed form: the ns() basis is linear beyond the boundary knots (second differences 0)."""
    x = np.array([-3.0, -2.0, -1.0, 11.0, 12.0, 13.0])
    B = natural_spline_basis(x, [2.0, 5.0], [0.0, 10.0])
    np.testing.assert_allclose(B[:3].sum(0) - 3 * B[1], 0, atol=1e-12)
    np.testing.assert_allclose(B[3:].sum(0) - 3 * B[4], 0, atol=1e-12)


# lmer's profiled optimum is matched to 1e-5. glmer stops where its inner PIRLS tolerance makes the
# Laplace deviance noisy: ours is 4e-5 higher there (a better optimum), so logLik must be >= R's
# - 1e-6 and within 1e-3, and beta and the predictions agree to 1e-3 absolute.
@pytest.mark.parametrize("which,formula,family,tol", [
    ("lmer", "y ~ ns(x, 3) + (1 | g)", "gaussian", 1e-5),
    ("glmer", "count ~ bs(x, df = 5) + (1 | g)", "poisson", 1e-3),
])
def test_fit_and_predict_newdata_match_lme4(which, formula, family, tol):
    ref = REF[which]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmm(formula, DATA, family=family)
    assert ref["logLik"] - 1e-6 <= fit.loglik <= ref["logLik"] + tol
    assert [n.replace(" ", "") for n in fit.fixef.index] == [n.replace(" ", "") for n in ref["names"]]
    np.testing.assert_allclose(fit.fixef.to_numpy(), ref["fixef"], rtol=0, atol=tol)
    pred = fit.predict(NEW, re_form="~0")
    np.testing.assert_allclose(pred, ref["predict"], rtol=0, atol=tol)


def test_spline_arguments_are_checked():
    with pytest.raises(FormulaError):
        glmm("y ~ ns(x, df=1000) + (1 | g)", DATA)
    with pytest.raises(FormulaError):
        glmm("y ~ ns(x, foo=3) + (1 | g)", DATA)
    with pytest.raises(FormulaError):
        glmm("y ~ ns(x, df=x) + (1 | g)", DATA)


@pytest.mark.parametrize("case", REF["bases"], ids=[b["r"] for b in REF["bases"]])
def test_r_spelling_of_the_arguments(case):
    """R's own text (``knots = c(2, 6)``, ``Boundary.knots = c(1, 9)``, ``intercept = TRUE``) gives
    R's columns too."""
    from glmmdiag.fit.formula import parse_formula

    rhs = parse_formula("y ~ 0 + " + case["r"]).fixed
    X, _, _ = formulaic_matrix(rhs, DATA)
    np.testing.assert_allclose(X, np.array(case["basis"]), rtol=0, atol=1e-8)
