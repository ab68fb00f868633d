"""One plotting convention: every plot function takes ``ax=``; multi-panel figures take a Figure,
a SubFigure or one Axes per panel; the old ``fig=``/``axes=`` keywords still work, with a warning."""
from __future__ import annotations

import inspect

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import glmmdiag as gd  # noqa: E402
from glmmdiag import plots  # noqa: E402
from glmmdiag.errors import GlmmdiagError  # noqa: E402
from glmmdiag.fit import glmm  # noqa: E402


@pytest.fixture(scope="module")
def res():
    data = gd.datasets.load("cbpp")
    fit = glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, family="binomial")
    return gd.simulate_residuals(fit, 100, seed=1)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.mark.parametrize("name", [n for n in plots.__all__ if n.startswith("plot_")])
def test_every_plot_function_takes_ax(name):
    assert "ax" in inspect.signature(getattr(plots, name)).parameters


def test_diagnostics_draw_into_two_given_axes(res):
    fig, axes = plt.subplots(1, 2)
    out = gd.plot_diagnostics(res, ax=axes)
    assert out is fig
    assert all(a.has_data() for a in axes)
    assert len(fig.axes) == 2  # nothing added besides them


def test_diagnostics_draw_into_a_subfigure(res):
    fig = plt.figure()
    left, right = fig.subfigures(1, 2)
    out = gd.plot_diagnostics(res, ax=right)
    assert out is right and len(right.axes) == 2 and not left.axes


def test_old_keywords_warn_and_still_draw(res):
    fig = plt.figure()
    with pytest.warns(FutureWarning, match="fig= is now ax="):
        gd.plot_diagnostics(res, fig=fig)
    assert len(fig.axes) == 2
    fig2, axes = plt.subplots(1, 2)
    t = np.arange(res.residuals.size, dtype=float)
    with pytest.warns(FutureWarning, match="axes= is now ax="):
        gd.plot_temporal(res, t, axes=axes)
    assert all(a.has_data() for a in axes)


def test_wrong_number_of_axes_and_both_keywords_are_refused(res):
    _, axes = plt.subplots(1, 3)
    with pytest.raises(GlmmdiagError, match="2 matplotlib Axes"):
        gd.plot_diagnostics(res, ax=axes)
    with pytest.raises(GlmmdiagError, match="give ax= only"):
        gd.plot_diagnostics(res, ax=plt.figure(), fig=plt.figure())


def test_comparison_draws_into_a_given_figure(res):
    fig = plt.figure()
    out = gd.plot_comparison({"a": res, "b": res}, ax=fig, panels=("qq",))
    assert out is fig and len(fig.axes) == 2
    with pytest.raises(GlmmdiagError, match="Figure or SubFigure"):
        gd.plot_comparison({"a": res}, ax=plt.subplots()[1])


def test_simulated_lrt_plot_shows_the_bootstrap_and_the_chi_square_reference():
    data = gd.datasets.load("cbpp")
    m1 = glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, family="binomial")
    m0 = glmm("cbind(incidence, size - incidence) ~ period", data, family="binomial")
    test = gd.simulate_lrt(m0, m1, n_sim=19, seed=2, progress=False)
    ax = gd.plot_simulated_lrt(test)
    heights = [p.get_height() for p in ax.patches]
    assert len(heights) == 30 and sum(heights) > 0  # the density histogram of the 19 statistics
    assert any(np.isclose(line.get_xdata()[0], test.statistic) for line in ax.lines)  # observed line
    assert len(ax.lines) == 2  # observed + chi-square(df) curve
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "χ²(1)" in legend and "observed LR" in legend
    with pytest.raises(GlmmdiagError, match="simulate_lrt"):
        gd.plot_simulated_lrt(gd.TestResult(method="x", statistic=1.0, statistic_name="D", p_value=0.5,
                                             alternative="two.sided"))
