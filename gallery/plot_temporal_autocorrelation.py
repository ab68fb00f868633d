"""Temporal autocorrelation: daily counts with an unmodelled AR(1) process.
========================================================================

Simulated data (seed 20240611): 200 days of counts whose log-mean follows temperature plus an
AR(1) disturbance (rho = 0.7, SD 0.35). A Poisson GLM ``count ~ temperature`` ignores the
disturbance; its residuals, ordered by day, are autocorrelated (Durbin-Watson test, as DHARMa's
testTemporalAutocorrelation). With several series or repeated times, aggregate per time first:
``recalculate_residuals(res, group=day)``.
"""
import os
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
N_SIM = 50 if SMOKE else 1000


def simulate_data(n=200, rho=0.7, sd=0.35, seed=20240611) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    day = np.arange(1, n + 1)
    temperature = 12 + 8 * np.sin(2 * np.pi * day / 365) + rng.normal(0, 2, n)
    e = np.empty(n)
    e[0] = rng.normal(0, sd / np.sqrt(1 - rho**2))
    for t in range(1, n):
        e[t] = rho * e[t - 1] + rng.normal(0, sd)
    count = rng.poisson(np.exp(0.5 + 0.08 * temperature + e))
    return pd.DataFrame({"day": day, "temperature": temperature, "count": count})


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    data = simulate_data()
    fit = gd.glmm("count ~ temperature", data, family="poisson")
    res = gd.simulate_residuals(fit, N_SIM, seed=1)
    dw = gd.temporal_autocorrelation_test(res, data["day"])
    d = gd.dispersion_test(res)
    print(f"Poisson GLM on {len(data)} days, {N_SIM} simulations")
    print(f"  Durbin-Watson {dw.statistic:.3f}, p = {dw.p_value:.3g} (2 = no autocorrelation)")
    print(f"  lag-1 autocorrelation of the residuals {np.corrcoef(res.residuals[:-1], res.residuals[1:])[0, 1]:.3f}")
    print(f"  dispersion {d.statistic:.3f}, p = {d.p_value:.3g}")
    fig = gd.plot_temporal(res, data["day"], test=dw)
    fig.suptitle("Daily counts, Poisson GLM without the AR(1) disturbance", fontsize="large")
    path = OUT / "temporal_autocorrelation.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()
