"""Salamander counts: Poisson vs negative binomial (zero inflation and overdispersion).
====================================================================================

``count ~ spp + mined + (1 | site)`` on glmmTMB's Salamanders data (644 surveys, 23 sites). The
Poisson GLMM has too many zeros and is overdispersed; the negative binomial (nbinom2) accounts
for both. Both families model the same counts, so their AICs compare directly.
"""
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import glmmdiag as gd  # noqa: E402
from glmmdiag import datasets  # noqa: E402

SMOKE = os.environ.get("GLMMDIAG_GALLERY_SMOKE") == "1"
# the gallery folder (sphinx-gallery runs the scripts from it without defining __file__)
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("GLMMDIAG_GALLERY_OUT", HERE / "figures"))
N_SIM = 50 if SMOKE else 1000
REF = HERE.parent / "tests" / "reference" / "dharma"
COLUMNS = ["logLik", "AIC", "delta_AIC", "dispersion", "dispersion_p", "zero_inflation", "zero_inflation_p",
           "ks_D", "ks_p", "outlier_p", "quantile_p", "verdict"]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    data = datasets.load("Salamanders")
    kw = dict(families=("poisson", "nbinom2"), n_sim=N_SIM, seed=1)
    formula = "count ~ spp + mined + (1 | site)"
    cond = gd.compare_families(formula, data, **kw)
    uncond = gd.compare_families(formula, data, simulate_re="unconditional", **kw)
    with pd.option_context("display.width", 180, "display.max_columns", 30, "display.precision", 3):
        print(f"Salamanders: {len(data)} surveys, {N_SIM} simulations per model\n")
        print("conditional simulation (default; the figure):")
        print(cond[COLUMNS].to_string(), "\n")
        print("unconditional simulation:")
        print(uncond[COLUMNS].to_string())
        refs = {}
        for fam, case in (("poisson", "salamanders_poisson"), ("nbinom2", "salamanders_nbinom2")):
            path = REF / f"{case}.json"
            if path.exists():
                t = json.loads(path.read_text())["results"]["user-specified"]["tests"]
                refs[fam] = {"dispersion": t["testDispersion_default"]["statistic"],
                             "dispersion_p": t["testDispersion_default"]["p_value"],
                             "zero_inflation": t["testZeroInflation"]["statistic"],
                             "zero_inflation_p": t["testZeroInflation"]["p_value"],
                             "ks_D": t["testUniformity"]["statistic"], "ks_p": t["testUniformity"]["p_value"]}
        if refs:
            print("\nDHARMa 0.5.0 with glmmTMB 1.1.5 (unconditional, 1000 simulations):")
            print(pd.DataFrame(refs).T.to_string())
    fig = gd.plot_comparison(cond)
    fig.suptitle(f"Salamander counts: Poisson vs negative binomial GLMM ({N_SIM} conditional simulations)",
                 fontsize="large")
    path = OUT / "salamanders_poisson_nbinom2.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()
