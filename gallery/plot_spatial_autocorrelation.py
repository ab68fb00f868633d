"""Spatial autocorrelation: counts at 300 sites with an unmodelled smooth spatial trend.
=====================================================================================

Simulated data (seed 20240611): sites scattered in a 10 x 10 km square, counts whose log-mean has
a smooth east-west/north-south wave the Poisson GLM ``count ~ cover`` leaves out. The residual map
shows the pattern; Moran's I with inverse-distance weights (DHARMa's testSpatialAutocorrelation,
ape::Moran.I) tests it.
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


def simulate_data(n=300, seed=20240611) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0, 10, n), rng.uniform(0, 10, n)
    cover = rng.normal(0, 1, n)
    trend = 1.0 * np.sin(x / 2.0) * np.cos(y / 3.0)
    count = rng.poisson(np.exp(1.0 + 0.4 * cover + trend))
    return pd.DataFrame({"x_km": x, "y_km": y, "cover": cover, "count": count})


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    data = simulate_data()
    fit = gd.glmm("count ~ cover", data, family="poisson")
    res = gd.simulate_residuals(fit, N_SIM, seed=1)
    moran = gd.spatial_autocorrelation_test(res, data["x_km"], data["y_km"])
    print(f"Poisson GLM at {len(data)} sites, {N_SIM} simulations")
    print(f"  Moran's I {moran.statistic:.4f} (expected {moran.estimate['expected']:.4f}), p = {moran.p_value:.3g}")
    ax = gd.plot_spatial(res, data["x_km"], data["y_km"], test=moran,
                         title="Residuals of a Poisson GLM without the spatial trend")
    path = OUT / "spatial_autocorrelation.png"
    ax.figure.savefig(path, dpi=150)
    plt.close(ax.figure)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()
