"""100,000 observations: the density layer, with the real quantile test.
=====================================================================

Simulated counts whose log-mean is quadratic in x, fitted with a Poisson GLM that is linear in x.
Above 10,000 points the residual panel draws a density layer instead of points (DHARMa switches to
an untested smoothing spline there); the quantile curves are still fitted to every residual and
highlighted by ``quantile_test`` computed on all of them. The printout gives the timings.
"""
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import glmmdiag as gd  # noqa: E402

SMOKE = os.environ.get("GLMMDIAG_GALLERY_SMOKE") == "1"
# the gallery folder (sphinx-gallery runs the scripts from it without defining __file__)
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("GLMMDIAG_GALLERY_OUT", HERE / "figures"))
N_SIM = 50 if SMOKE else 250
N = 20_000 if SMOKE else 100_000


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240611)
    x = rng.uniform(-1, 1, N)
    data = pd.DataFrame({"x": x, "count": rng.poisson(np.exp(1.0 + 0.5 * x + 0.35 * x**2))})
    t0 = time.perf_counter()
    fit = gd.glmm("count ~ x", data, family="poisson")
    t1 = time.perf_counter()
    res = gd.simulate_residuals(fit, N_SIM, seed=1, n_jobs=1)
    t2 = time.perf_counter()
    fig = gd.plot_diagnostics(res)
    t3 = time.perf_counter()
    path = OUT / "large_data.png"
    fig.savefig(path, dpi=150)
    t4 = time.perf_counter()
    plt.close(fig)
    q = gd.quantile_test(res, curves=False)
    print(f"{N:,} observations, {N_SIM} simulations")
    print(f"  fit {t1 - t0:.2f} s, simulate_residuals {t2 - t1:.2f} s, plot_diagnostics (tests + figure) "
          f"{t3 - t2:.2f} s, savefig {t4 - t3:.2f} s")
    print(f"  quantile test p = {q.p_value:.3g}; per quantile (BH-adjusted):")
    print(q.table[["level_p", "shape_p", "p_adjusted"]].to_string())
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()
