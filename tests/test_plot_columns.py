"""Plots take per-row arguments as the tests do (issue 15): a column name looked up in the fitting
data (after its missing-value mask), a full-length vector aligned on the data's index, or one value
per residual; and they draw the same figure from each."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import glmmdiag as gd  # noqa: E402
from glmmdiag.errors import GlmmdiagError  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(21)
    n = 150
    d = pd.DataFrame({"x": rng.standard_normal(n), "site": rng.integers(0, 10, n),
                      "t": np.arange(n, dtype=float), "east": rng.random(n), "north": rng.random(n)})
    d["habitat"] = pd.Categorical(rng.choice(["wet", "dry", "mixed"], n), categories=["wet", "dry", "mixed"])
    d["y"] = rng.poisson(np.exp(0.5 + 0.4 * d["x"]))
    d.loc[[3, 40], "x"] = np.nan  # two rows dropped by the fit: names and full-length vectors must skip them
    with pytest.warns(gd.errors.DroppedRowsWarning):
        fit = gd.glmm("y ~ x", d, family="poisson")
    return d, gd.simulate_residuals(fit, 100, seed=2)


def _points(ax):
    return np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())], axis=0)


def test_residual_plot_by_column_name_equals_by_values(fitted):
    d, res = fitted
    kept = d.drop(index=[3, 40])
    by_name = gd.plot_residuals(res, "east", data=d)
    by_full = gd.plot_residuals(res, d["east"], data=d)
    by_rows = gd.plot_residuals(res, kept["east"].to_numpy())
    assert by_name.get_xlabel() == "east (rank-transformed)"
    np.testing.assert_array_equal(_points(by_name), _points(by_rows))
    np.testing.assert_array_equal(_points(by_full), _points(by_rows))
    plt.close("all")


def test_categorical_column_keeps_its_category_order(fitted):
    d, res = fitted
    ax = gd.plot_residuals(res, "habitat", data=d)
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == ["wet", "dry", "mixed"]
    plt.close("all")


def test_temporal_and_spatial_plots_take_column_names(fitted):
    d, res = fitted
    kept = d.drop(index=[3, 40])
    fig = gd.plot_temporal(res, "t", data=d)
    ref = gd.plot_temporal(res, kept["t"].to_numpy())
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_xdata(), ref.axes[0].lines[0].get_xdata())
    ax = gd.plot_spatial(res, "east", "north", data=d)
    ax_ref = gd.plot_spatial(res, kept["east"].to_numpy(), kept["north"].to_numpy())
    np.testing.assert_array_equal(_points(ax), _points(ax_ref))
    plt.close("all")


def test_diagnostics_figure_takes_a_column_name(fitted):
    d, res = fitted
    fig = gd.plot_diagnostics(res, "x", data=d)
    assert "x" in fig.axes[1].get_xlabel()
    plt.close("all")


def test_a_wrong_column_or_length_names_the_problem(fitted):
    d, res = fitted
    with pytest.raises(GlmmdiagError, match="'elevation' is not in data"):
        gd.plot_residuals(res, "elevation", data=d)
    with pytest.raises(GlmmdiagError, match=r"has 7 values; expected 148 \(one per residual\) or 150"):
        gd.plot_residuals(res, np.arange(7.0))
