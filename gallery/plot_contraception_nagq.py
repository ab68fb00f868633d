"""Contraception use in Bangladesh: Laplace vs adaptive Gauss-Hermite quadrature
=============================================================================

Bernoulli GLMM fitted by Laplace and by adaptive Gauss-Hermite quadrature (nAGQ = 9, lme4's
``glmer(..., nAGQ = 9)``).

1,934 women in 60 districts, ``use ~ age + I(age^2) + urban + livch + (1 | district)``. The two
fits differ in the fourth digit of the log-likelihood (printed next to lme4's values); the figure
is the two-panel diagnostic of the AGQ fit. 0/1 responses cannot show overdispersion per
observation: plot_grouped_residuals.py checks the same kind of model per district.
"""
import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import glmmdiag as gd  # noqa: E402
from glmmdiag import datasets  # noqa: E402

SMOKE = os.environ.get("GLMMDIAG_GALLERY_SMOKE") == "1"
# the gallery folder (sphinx-gallery runs the scripts from it without defining __file__)
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
OUT = Path(os.environ.get("GLMMDIAG_GALLERY_OUT", HERE / "figures"))
N_SIM = 50 if SMOKE else 1000
REF = HERE.parent / "tests" / "reference"
FORMULA = "use ~ age + I(age**2) + urban + livch + (1 | district)"


def r_loglik(case):
    path = REF / f"{case}.json"
    return json.loads(path.read_text())["fit"]["logLik"] if path.exists() else float("nan")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    data = datasets.load("Contraception")
    print(f"Contraception: {len(data)} women, 60 districts, {N_SIM} conditional simulations\n")
    print(f"{'fit':10s} {'logLik':>10s} {'lme4':>10s} {'district SD':>11s}")
    fits = {}
    for label, n_agq, case in (("Laplace", 1, "contra_glmer_nAGQ1"), ("nAGQ = 9", 9, "contra_glmer_nAGQ9")):
        fit = gd.glmm(FORMULA, data, family="binomial", n_agq=n_agq)
        fits[label] = fit
        sd = float(fit.varcorr["sdcor"].iloc[0])
        print(f"{label:10s} {fit.loglik:10.3f} {r_loglik(case):10.3f} {sd:11.4f}")
    fit = fits["nAGQ = 9"]
    res = gd.simulate_residuals(fit, N_SIM, seed=1)
    tests = gd.residual_tests(res)
    q = gd.quantile_test(res)
    print("\nresiduals of the nAGQ = 9 fit:")
    for name, t in tests.items():
        print(f"  {name:11s} statistic {t.statistic:8.4f}  p {t.p_value:.3f}")
    print(f"  quantiles   p {q.p_value:.3f}")
    fig = gd.plot_diagnostics(res, tests=tests, quantile=q)
    fig.axes[1].set_title("Residuals vs predicted (nAGQ = 9)")
    path = OUT / "contraception_nagq.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()
