"""Sleep deprivation: linear mixed model, residuals simulated conditionally and unconditionally.
=============================================================================================

``Reaction ~ Days + (Days | Subject)`` (lme4's sleepstudy, 18 subjects x 10 days). Conditional
simulation (given each subject's fitted line) checks the observations around their own subject's
line: three observations lie outside every simulation (with seed 1 and 1000 simulations: subject
308 on day 7, subject 332 on days 6 and 9, the data's well-known odd readings) and the residual
distribution is heavier-tailed than normal (KS p = 0.03, quantile test p = 0.006). Unconditional simulation (new subjects) mixes the between-subject spread in and sees
nothing: the two modes answer different questions.
"""
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


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    data = datasets.load("sleepstudy")
    fit = gd.glmm("Reaction ~ Days + (Days | Subject)", data, reml=True)
    print(f"sleepstudy LMM (REML): logLik {fit.loglik:.3f}, residual SD {fit.sigma:.2f}, {N_SIM} simulations\n")
    rows = {}
    for mode in ("conditional", "unconditional"):
        res = gd.simulate_residuals(fit, N_SIM, seed=1, simulate_re=mode)
        t = dict(gd.residual_tests(res).items())
        t["quantiles"] = gd.quantile_test(res)
        rows[f"{mode} simulation"] = (res, t)
        print(f"{mode}:")
        for name, test in t.items():
            print(f"  {name:11s} statistic {test.statistic:8.4f}  p {test.p_value:.4f}")
        out = res.outliers()
        if out.size:
            where = ", ".join(f"subject {data.Subject.iloc[i]} day {data.Days.iloc[i]}" for i in out)
            print(f"  outside every simulation: {where}")
    fig = gd.plot_comparison(rows, panels=("qq", "residuals", "histogram"))
    fig.suptitle("sleepstudy LMM: residuals given the subjects' fitted lines vs for new subjects", fontsize="large")
    path = OUT / "sleepstudy_lmm.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()
