"""Issue 15: data-frame friendly per-row arguments and DHARMa's ``sel=`` in recalculate_residuals."""
import numpy as np
import pandas as pd
import pytest

import glmmdiag as gd
from glmmdiag.errors import GlmmdiagError


@pytest.fixture(scope="module")
def with_na():
    """A fit whose data have missing values (rows 3 and 10 dropped) and a shuffled index."""
    rng = np.random.default_rng(11)
    n = 120
    g = np.repeat(np.arange(12), 10)
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(0.4 + 0.3 * x + rng.normal(0, 0.4, 12)[g])).astype(float)
    x[[3, 10]] = np.nan
    d = pd.DataFrame({"y": y, "x": x, "site": pd.Categorical(g.astype(str), categories=[str(k) for k in range(12)]),
                      "keep": np.arange(n) % 3 != 0}, index=rng.permutation(n) + 1000)
    fit = gd.glmm("y ~ x + (1 | site)", d, family="poisson")
    res = gd.simulate_residuals(fit, 40, seed=5)
    used = np.setdiff1d(np.arange(n), [3, 10])
    return d, fit, res, used


def test_group_as_column_name_or_full_length_vector(with_na):
    d, fit, res, used = with_na
    ref = gd.recalculate_residuals(res, d["site"].to_numpy()[used])
    for group in ("site", d["site"], d["site"].to_numpy()):
        got = gd.recalculate_residuals(res, group, data=d)
        assert np.array_equal(got.residuals, ref.residuals) and np.array_equal(got.group, ref.group)
    # without data: a grouping factor the model knows
    assert np.array_equal(gd.recalculate_residuals(res, "site").residuals, ref.residuals)
    # a full-length Series in another row order is aligned on the data's index
    shuffled = d["site"].sample(frac=1.0, random_state=1)
    assert np.array_equal(gd.recalculate_residuals(res, shuffled, data=d).residuals, ref.residuals)
    with pytest.raises(GlmmdiagError, match="expected 118"):
        gd.recalculate_residuals(res, np.zeros(50))


def test_sel_subsets_rows_as_mask_positions_or_column(with_na):
    d, fit, res, used = with_na
    keep = d["keep"].to_numpy()[used]
    pos = np.flatnonzero(keep)
    a = gd.recalculate_residuals(res, sel=keep)
    b = gd.recalculate_residuals(res, sel=pos)
    c = gd.recalculate_residuals(res, sel="keep", data=d)
    assert np.array_equal(a.residuals, b.residuals) and np.array_equal(a.residuals, c.residuals)
    assert a.nobs == pos.size and list(a.group) == list(pos)
    # the selected rows keep their own observed values and counts (same simulations)
    assert np.array_equal(a.observed, res.observed[pos])
    assert np.array_equal(a.counts_less, res.counts_less[pos]) and np.array_equal(a.counts_leq, res.counts_leq[pos])
    # combined with group: the selected rows summed within their groups
    site = d["site"].to_numpy()[used]
    s = gd.recalculate_residuals(res, "site", sel=keep, data=d)
    for lab, yk in zip(s.group, s.observed):
        assert yk == res.observed[keep & (site == lab)].sum()
    with pytest.raises(GlmmdiagError, match="selects no rows"):
        gd.recalculate_residuals(res, sel=np.zeros(res.nobs, bool))
    with pytest.raises(GlmmdiagError, match="outside"):
        gd.recalculate_residuals(res, sel=[0, 500])
    with pytest.raises(GlmmdiagError, match="give group"):
        gd.recalculate_residuals(res)


def test_tests_take_column_names(with_na):
    d, fit, res, used = with_na
    x = d["x"].to_numpy()[used]
    assert gd.quantile_test(res, "x", data=d, curves=False).p_value == \
        gd.quantile_test(res, x, curves=False).p_value
    assert gd.quantile_test(res, d["x"], data=d, curves=False).p_value == \
        gd.quantile_test(res, x, curves=False).p_value
    site = d["site"].to_numpy()[used]
    a = gd.categorical_test(res, "site", data=d)
    b = gd.categorical_test(res, pd.Categorical(site, categories=d["site"].cat.categories))
    assert a.p_value == b.p_value
    assert list(a.table.index) == [str(k) for k in range(12)]  # the Categorical's order, not '0', '1', '10', ...
    assert gd.categorical_test(res, "site").p_value == a.p_value  # the model knows its grouping factor
