"""The diagnostic figures: every plot on small, large (10^5) and degenerate residuals without error;
figures agree with the tests they show; styling by rc settings and PALETTE; the fast quantile
curves against the exact LP; the 3-second budget of plot_diagnostics on 10^5 residuals."""
from __future__ import annotations

import dataclasses
import io
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import glmmdiag as gd  # noqa: E402
from glmmdiag import plots  # noqa: E402
from glmmdiag.plots import _quantreg  # noqa: E402
from glmmdiag.plots._style import fmt_num, fmt_p  # noqa: E402

BIG = 100_000


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("a plot function called plt.show()")

    monkeypatch.setattr(plt, "show", forbidden)
    yield
    plt.close("all")


def _poisson_res(n, nsim, seed=1, over=1.0):
    rng = np.random.default_rng(seed)
    mu = rng.gamma(2.0, 1.5, n)
    y = rng.poisson(mu * rng.gamma(over, 1.0 / over, n) if over != 1.0 else mu).astype(float)
    S = rng.poisson(mu[:, None], (n, nsim)).astype(float)
    return gd.simulate_residuals(gd.from_simulations(y, S, mu), seed=seed)


@pytest.fixture(scope="module")
def small():
    return _poisson_res(80, 100, seed=2)


@pytest.fixture(scope="module")
def big():
    return _poisson_res(BIG, 20, seed=3)


def _with(res, r):
    return dataclasses.replace(res, residuals=np.asarray(r, float))


def _render(fig) -> None:
    """Draw the figure (errors in layout or artists only show at draw time)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.tell() > 1000


EDGES = {
    "all equal": lambda n: np.full(n, 0.5),
    "no outliers": lambda n: np.linspace(0.1, 0.9, n),
    "every point an outlier": lambda n: np.where(np.arange(n) % 2 == 0, 0.0, 1.0),
    "all zero": lambda n: np.zeros(n),
}


# ------------------------------------------------------------------ every plot, small and big
def test_panels_small_return_axes_and_draw_into_given_axes(small):
    fig, axes = plt.subplots(2, 4, figsize=(12, 6), layout="constrained")
    out = [
        gd.plot_qq(small, axes[0, 0]),
        gd.plot_residuals(small, ax=axes[0, 1]),
        gd.plot_histogram(small, axes[0, 2]),
        gd.plot_dispersion(small, axes[0, 3]),
        gd.plot_zero_inflation(small, axes[1, 0]),
        gd.plot_spatial(small, np.arange(80) % 9, np.arange(80) // 9 + 0.1 * (np.arange(80) % 3), axes[1, 1]),
        gd.plot_residuals(small, pd.Series(np.repeat(list("abcd"), 20), name="site"), ax=axes[1, 2]),
        gd.plot_residuals(small, np.linspace(-3, 5, 80), ax=axes[1, 3], rank=False),
    ]
    for ax, got in zip(axes.ravel(), out):
        assert got is ax
    _render(fig)


def test_figures_small(small):
    fig = gd.plot_diagnostics(small)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    _render(fig)
    fig2 = gd.plot_temporal(small, np.arange(80))
    assert isinstance(fig2, Figure)
    _render(fig2)
    for f in (gd.plot_qq, gd.plot_histogram, gd.plot_dispersion, gd.plot_zero_inflation, gd.plot_residuals):
        assert isinstance(f(small), Axes)


def test_every_plot_on_1e5_residuals(big):
    fig = gd.plot_diagnostics(big)
    _render(fig)
    ax = gd.plot_residuals(big)
    assert any(type(c).__name__ == "PolyCollection" for c in ax.collections)  # hexbin density layer
    for f in (gd.plot_qq, gd.plot_histogram, gd.plot_dispersion, gd.plot_zero_inflation):
        assert isinstance(f(big), Axes)
    gd.plot_residuals(big, pd.Series(np.arange(BIG) % 7).astype(str))  # categorical, 7 levels
    gd.plot_temporal(big, np.arange(BIG))
    rng = np.random.default_rng(0)
    ax = gd.plot_spatial(big, rng.random(BIG), rng.random(BIG))  # k-nearest-neighbour Moran's I
    assert "nearest neighbours" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    _render(ax.figure)


def test_plot_diagnostics_1e5_draws_a_thinned_figure(big):
    """At 1e5 residuals the figure stays small: no artist holds more than MAX_POINTS points and
    large scatters are rasterised (the time is measured in benchmarks/, never asserted here)."""
    from glmmdiag.plots.residual import MAX_POINTS

    t0 = time.perf_counter()
    fig = gd.plot_diagnostics(big)
    elapsed = time.perf_counter() - t0
    print(f"\nplot_diagnostics on {BIG:,} residuals: {elapsed:.2f} s")
    sizes = []
    for ax in fig.axes:
        sizes += [len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets")]
        sizes += [len(line.get_xdata()) for line in ax.lines]
        for c in ax.collections:
            if hasattr(c, "get_offsets") and len(c.get_offsets()) > 2000:
                assert c.get_rasterized()
    assert sizes and max(sizes) <= MAX_POINTS
    fig.savefig(io.BytesIO(), format="png", dpi=100)


@pytest.mark.parametrize("case", list(EDGES))
def test_edge_cases_never_fail(small, case):
    res = _with(small, EDGES[case](small.nobs))
    fig = gd.plot_diagnostics(res)
    _render(fig)
    gd.plot_histogram(res)
    gd.plot_residuals(res, pd.Series(np.repeat(["a", "b"], 40)))
    gd.plot_temporal(res, np.arange(res.nobs))
    gd.plot_spatial(res, np.arange(res.nobs) % 9, np.arange(res.nobs) // 9)
    gd.plot_comparison({"edge": res, "model": small})


def test_one_level_factor_and_single_fitted_value(small):
    ax = gd.plot_residuals(small, pd.Series(["only"] * small.nobs, name="block"))
    texts = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "one level" in texts
    const = dataclasses.replace(small, fitted=np.full(small.nobs, 2.0))
    _render(gd.plot_diagnostics(const))  # one predicted value: one box, no between-level test


def test_duplicate_times_draw_and_explain(small):
    t = np.repeat(np.arange(40), 2)
    fig = gd.plot_temporal(small, t)
    assert any("not unique" in txt.get_text() for txt in fig.axes[1].texts)
    _render(fig)


def test_dispersion_plot_of_every_test_kind(load_data):
    fit = gd.glmm("cbind(germ, n - germ) ~ extract * gen", load_data("orobanche"), family="binomial")
    res = gd.simulate_residuals(fit, 50, seed=1)
    for test in (gd.dispersion_test(res), gd.dispersion_test(res, centre="expected"),
                 gd.dispersion_test(res, kind="pearson", alternative="greater")):
        ax = gd.plot_dispersion(res, test=test)
        assert fmt_p(test.p_value, test.n_sim) in " ".join(_legend_texts(ax))
        _render(ax.figure)


def test_tiny_inputs():
    res = gd.simulate_residuals(gd.from_simulations([1.0, 2.0, 0.0], np.array([[1, 2], [0, 3], [1, 1]], float),
                                                    [1.0, 1.5, 1.0]), seed=1)
    _render(gd.plot_diagnostics(res))
    gd.plot_histogram(res)
    gd.plot_dispersion(res)
    gd.plot_zero_inflation(res)
    gd.plot_temporal(res, [3, 1, 2])


def test_bad_input_is_explained(small):
    with pytest.raises(TypeError, match="ScaledResiduals"):
        gd.plot_qq(np.random.default_rng(0).random(10))
    with pytest.raises(ValueError, match="predictor has 3 values"):
        gd.plot_residuals(small, [1, 2, 3])
    with pytest.raises(ValueError, match=r"time has 2 values; expected 80 \(one per residual\)"):
        gd.plot_temporal(small, [1, 2])
    with pytest.raises(ValueError, match="unknown panels"):
        gd.plot_comparison({"a": small}, panels=("qq", "pie"))


# ------------------------------------------------------------------ figure and tests agree
def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_residual_panel_uses_the_quantile_test_and_highlights_what_it_rejects(monkeypatch):
    rng = np.random.default_rng(5)
    n = 3000
    x = rng.random(n)
    r = np.clip(rng.random(n) ** (0.6 + 0.8 * x), 0, 1)  # quantiles depend on x
    base = _poisson_res(n, 50, seed=5)
    res = dataclasses.replace(base, residuals=r, fitted=x)
    q = gd.quantile_test(res, curves=False)
    from glmmdiag import checks

    monkeypatch.setattr(checks, "quantile_test", lambda *a, **k: (_ for _ in ()).throw(AssertionError("refit")))
    ax = gd.plot_residuals(res, test=q)
    labels = _legend_texts(ax)
    signal = matplotlib.colors.to_hex(plots.PALETTE["signal"])
    for qq, p in q.plot_data["p_per_quantile"].items():
        label = next(t for t in labels if t.startswith(f"q = {np.format_float_positional(qq, trim='-')},"))
        assert fmt_p(p) in label
        text = ax.get_legend().get_texts()[labels.index(label)]
        assert (matplotlib.colors.to_hex(text.get_color()) == signal) == (p < 0.05)
    assert q.p_value < 0.05
    curves = [ln for ln in ax.get_lines() if ln.get_linewidth() > 2.0]
    assert curves and all(matplotlib.colors.to_hex(ln.get_color()) == signal for ln in curves)


def test_qq_texts_show_the_given_tests(small):
    tests = gd.residual_tests(small)
    ax = gd.plot_qq(small, tests=tests)
    texts = " | ".join(_legend_texts(ax))
    assert fmt_num(tests["uniformity"].statistic) in texts
    assert fmt_p(tests["dispersion"].p_value, tests["dispersion"].n_sim) in texts
    assert fmt_p(tests["outliers"].p_value, tests["outliers"].n_sim) in texts


def test_verdict_title_names_the_problem():
    res = _poisson_res(400, 200, seed=7, over=2.0)  # overdispersed
    fig = gd.plot_diagnostics(res)
    title = fig._suptitle.get_text()
    assert title.startswith("Problems detected") and "overdispersion" in title
    fine = _poisson_res(400, 200, seed=8)
    assert gd.plot_diagnostics(fine)._suptitle.get_text() == "No significant problems detected"


def test_outlier_markers_are_the_outlier_tests_outliers(small):
    r = np.linspace(0.2, 0.8, small.nobs)
    r[[3, 10, 50]] = [0.0, 1.0, 0.0]
    res = _with(small, r)
    out = gd.outlier_test(res, type="binomial")
    ax = gd.plot_residuals(res, outlier_test=out)
    stars = [c for c in ax.collections if c.get_paths() and len(c.get_offsets()) == 3]
    assert stars, "three outlier markers expected"
    assert f"outliers: {int(out.statistic)}" in " ".join(_legend_texts(ax))


# ------------------------------------------------------------------ styling
def test_rc_settings_style_the_figures(small):
    with plt.rc_context({"font.size": 15, "axes.titlesize": 19, "lines.linewidth": 3}):
        ax = gd.plot_qq(small)
        assert ax.title.get_fontsize() == pytest.approx(19)
        assert ax.xaxis.label.get_fontsize() == pytest.approx(15)


def test_palette_is_user_editable(small, monkeypatch):
    monkeypatch.setitem(plots.PALETTE, "signal", "#CC79A7")
    res = _poisson_res(400, 200, seed=7, over=2.0)
    fig = gd.plot_diagnostics(res)
    assert matplotlib.colors.to_hex(fig._suptitle.get_color()) == "#cc79a7"


def test_p_value_formatting():
    assert fmt_p(0.0483) == "p = 0.048"
    assert fmt_p(0.656) == "p = 0.66"
    assert fmt_p(0.0, 250) == "p < 0.004"
    assert fmt_p(0.0, 1000) == "p < 0.001"
    assert fmt_p(1e-9) == "p < 0.001"
    assert fmt_p(float("nan")) == "p = NA"


# ------------------------------------------------------------------ fast quantile curves
def test_smooth_quantile_curves_match_the_exact_lp():
    from glmmdiag.checks import _quantile_lp, _spline_basis

    rng = np.random.default_rng(11)
    n = 1500
    x = (np.argsort(np.argsort(rng.random(n))) + 1) / n
    r = rng.random(n) ** (1 + 0.5 * x)
    basis, _ = _spline_basis(x, 4)
    B, G = basis(x), basis(np.linspace(0, 1, 101))
    curves = _quantreg.quantile_curves(x, r, (0.25, 0.5, 0.75), 4, np.linspace(0, 1, 101))
    for q, c in curves.items():
        exact = G @ _quantile_lp(B, r, q)
        assert np.max(np.abs(c - exact)) < 0.015  # the band half-width here is ~0.05


def test_smooth_quantile_curves_on_1e5_are_flat_for_uniform_residuals():
    rng = np.random.default_rng(12)
    x = rng.random(BIG)
    r = rng.random(BIG)
    curves = _quantreg.quantile_curves(x, r, (0.25, 0.5, 0.75), 4, np.linspace(0, 1, 101))
    for q, c in curves.items():
        assert np.max(np.abs(c - q)) < 0.02  # uniform residuals: flat curves at q


def test_box_plot_tick_labels_are_short_and_in_numeric_order():
    """Issue 15: fitted values used as a factor print to 4 significant digits (not 17), and numeric
    labels sort by value."""
    rng = np.random.default_rng(4)
    n = 120
    fitted = np.repeat([0.196937412321, 1.4142135623730951, 0.7071067811865476], n // 3)
    res = gd.simulate_residuals(gd.from_simulations(rng.poisson(fitted), rng.poisson(fitted[:, None], size=(n, 60)), fitted), seed=1)
    ax = gd.plot_residuals(res, as_factor=True)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["0.1969", "0.7071", "1.414"]
    ax = gd.plot_residuals(res, pd.Series([str(i) for i in np.arange(n) % 12 + 1]))
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(i) for i in range(1, 13)]


def test_significant_quantile_curves_stay_distinguishable():
    """Issue 15: when all three quantile curves are significant (same highlight colour) they differ
    by line style, in the panel and in the legend."""
    rng = np.random.default_rng(8)
    n = 400
    x = rng.random(n)
    fitted = np.exp(1 + x)
    y = rng.poisson(fitted * rng.gamma(0.5 + 4 * x, 1 / (0.5 + 4 * x)))  # spread that changes with x
    res = gd.simulate_residuals(gd.from_simulations(y, rng.poisson(fitted[:, None], size=(n, 200)), fitted), seed=1)
    ax = gd.plot_residuals(res, x)
    curves = [line for line in ax.lines if len(line.get_xdata()) > 10]
    styles = {str(line.get_linestyle()) for line in curves}
    assert len(curves) >= 3 and len(styles) == 3
    legend_styles = {str(h.get_linestyle()) for h in ax.get_legend().legend_handles[:3]}
    assert len(legend_styles) == 3
