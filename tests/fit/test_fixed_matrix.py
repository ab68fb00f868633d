"""The formulaic-free fixed-effects matrix gives formulaic's columns, names and order exactly."""
import pickle

import formulaic
import numpy as np
import pandas as pd
import pytest

import glmmdiag

from glmmdiag.fit.fixed import LazyModelSpec, fixed_model_matrix


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    n = 30
    return pd.DataFrame(
        dict(
            x=rng.normal(size=n),
            z=rng.uniform(1, 2, size=n),
            k=rng.integers(0, 5, n),
            f=pd.Categorical(list("abc") * 10, categories=["c", "a", "b"]),  # non-alphabetical order
            g=["p", "q"] * 15,
            o=pd.Series(["u", "v"] * 15, dtype=object),
            h=pd.Categorical(list("uuvvww") * 5),
            num=pd.Categorical([1, 2, 3] * 10),
            b=[True, False] * 15,
        )
    )


FAST = [
    "x", "1 + x", "x + k", "x*f", "f*x", "f:x + x + f", "f*g", "g*f", "f:g + f + g", "x + I(x**2) + f*z",
    "f*g*x", "x:z + x*f", "f*h", "f*h*g", "f*o", "log(abs(x)) + f", "scale(z) + f", "x + scale(z)*g", "num",
    "I(x - 1)", "I(x**-1) + z", "log(z)*exp(z)", "exp(x/2) + I(2*z + x)", "k:x:z + k:x + k:z + k + x + z + x:z",
]
FALLBACK = ["x:f", "0 + f", "f - 1", "0 + x*f", "b", "x*b", "f:g", "x + f:g", "C(f)", "x*f - x", "poly(x, 2)"]


@pytest.mark.parametrize("rhs", FAST)
def test_fast_path_equals_formulaic(data, rhs):
    X, names, spec = fixed_model_matrix(rhs, data)
    ref = formulaic.model_matrix(rhs, data, na_action="ignore")
    assert isinstance(spec, LazyModelSpec), "expected the fast path"
    assert names == list(ref.columns)
    np.testing.assert_allclose(X, np.asarray(ref, float), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("rhs", FALLBACK)
def test_other_formulas_go_through_formulaic(data, rhs):
    X, names, spec = fixed_model_matrix(rhs, data)
    ref = formulaic.model_matrix(rhs, data, na_action="ignore")
    assert not isinstance(spec, LazyModelSpec)
    assert names == list(ref.columns)
    np.testing.assert_allclose(X, np.asarray(ref, float))


def test_lazy_spec_replays_on_new_data_and_pickles(data):
    _, names, spec = fixed_model_matrix("x*f + scale(z)", data)
    assert spec.column_names == names
    spec = pickle.loads(pickle.dumps(spec))
    new = data.iloc[[4, 0, 7]].reset_index(drop=True)
    got = np.asarray(spec.get_model_matrix(new, na_action="ignore"), float)
    ref = formulaic.model_matrix("x*f + scale(z)", data, na_action="ignore").model_spec
    np.testing.assert_allclose(got, np.asarray(ref.get_model_matrix(new), float))
    assert set(spec.term_indices) == set(ref.term_indices)  # scale() kept the fitted data's centre and scale


@pytest.mark.filterwarnings("ignore:boundary")
def test_rank_deficient_columns_are_dropped_with_a_warning():
    """A column that is a combination of others is dropped (lme4's message), whatever the quick
    well-conditioned test says; a merely badly scaled but full-rank column is kept."""
    from glmmdiag.fit.design import _clearly_full_rank, _drop_rank_deficient

    rng = np.random.default_rng(3)
    n = 60
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    X = np.column_stack([np.ones(n), x1, x2, x1 - 2 * x2])
    assert not _clearly_full_rank(X)
    with pytest.warns(UserWarning, match="rank deficient so dropping 1 column"):
        keep = _drop_rank_deficient(X, ["(Intercept)", "x1", "x2", "x3"])
    assert len(keep) == 3
    scaled = np.column_stack([np.ones(n), 1e4 * x1, x2])
    assert _clearly_full_rank(scaled)
    np.testing.assert_array_equal(_drop_rank_deficient(scaled, ["a", "b", "c"]), [0, 1, 2])
    # an empty cell of a factor interaction: the design path drops the all-zero column too
    d = pd.DataFrame({"y": rng.poisson(2, n).astype(float), "a": pd.Categorical(np.repeat(["p", "q"], n // 2)),
                      "b": pd.Categorical(np.tile(["r", "s", "t"], n // 3)), "g": np.repeat(np.arange(6), n // 6)})
    d = d[~((d.a == "q") & (d.b == "t"))]
    with pytest.warns(UserWarning, match="rank deficient"):
        fit = glmmdiag.glmm("y ~ a * b + (1 | g)", d, family="poisson")  # (g's variance may be 0 here)
    assert list(fit.fixef.index) == ["(Intercept)", "aq", "bs", "bt", "aq:bs"]
