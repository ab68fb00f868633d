"""The verdicts of every adapter on real data: library x model -> p-values, correct vs misspecified.

The same models as tests/adapters (data from glmmdiag.datasets and tests/data), each simulated with
n_sim = 250 and seed = 1; prints one markdown table row per model with the uniformity (KS) p-value,
the dispersion ratio and p-value, and for the binary models the quantile test against age (a
binary response cannot show a missing term in the first two). tests/adapters asserts these
verdicts; this script prints the numbers for a report.

Usage: python benchmarks/adapter_verdicts.py
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import glmmdiag as gd
from glmmdiag import datasets

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def _row(lib: str, name: str, role: str, model, predictor=None, **kw) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    res = gd.simulate_residuals(model, None if kw.pop("all_columns", False) else 250, seed=1, **kw)
    u, d = gd.uniformity_test(res).p_value, gd.dispersion_test(res)
    q = "" if predictor is None else f"{gd.quantile_test(res, np.asarray(predictor, float), curves=False).p_value:.2g}"
    print(f"| {lib} | {name} | {role} | {u:.2g} | {d.statistic:.2f} | {d.p_value:.2g} | {q} | "
          f"{time.process_time() - c0:.2f} / {time.perf_counter() - t0:.2f} |", flush=True)


def statsmodels_rows(gt, sal, co, cb, ss, tw, zg):
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    fam, f = sm.families, "TICKS ~ YEAR + cHEIGHT"
    nb = smf.negativebinomial(f, gt).fit(disp=0)
    _row("statsmodels GLM", "grouseticks NegativeBinomial", "correct",
         smf.glm(f, gt, family=fam.NegativeBinomial(alpha=nb.params["alpha"])).fit())
    _row("statsmodels GLM", "grouseticks Poisson", "misspecified", smf.glm(f, gt, family=fam.Poisson()).fit())
    _row("statsmodels GLM", "cbpp Binomial + herd (var_weights = size)", "correct",
         smf.glm("prop ~ period + herd", cb, family=fam.Binomial(), var_weights=cb["size"]).fit())
    _row("statsmodels GLM", "cbpp Binomial, no herd", "misspecified",
         smf.glm("prop ~ period", cb, family=fam.Binomial(), var_weights=cb["size"]).fit())
    _row("statsmodels GLM", "sleepstudy Gaussian Days + Subject", "correct", smf.glm("Reaction ~ Days + Subject", ss).fit())
    _row("statsmodels GLM", "grouseticks Gaussian", "misspecified", smf.glm(f, gt).fit())
    _row("statsmodels GLM", "gamma_sim Gamma(log)", "correct", smf.glm("y ~ x + g", zg, family=fam.Gamma(fam.links.Log())).fit())
    _row("statsmodels GLM", "gamma_sim InverseGaussian(log)", "misspecified",
         smf.glm("y ~ x + g", zg, family=fam.InverseGaussian(fam.links.Log())).fit())
    _row("statsmodels GLM", "tweedie_sim Tweedie p = 1.5", "correct", smf.glm("y ~ x + g", tw, family=fam.Tweedie(var_power=1.5)).fit())
    _row("statsmodels GLM", "tweedie_sim Tweedie p = 1.9", "misspecified", smf.glm("y ~ x + g", tw, family=fam.Tweedie(var_power=1.9)).fit())
    _row("statsmodels discrete", "grouseticks NegativeBinomial (NB2)", "correct", nb)
    _row("statsmodels discrete", "grouseticks Poisson", "misspecified", smf.poisson(f, gt).fit(disp=0))
    _row("statsmodels discrete", "grouseticks NegativeBinomial (NB1)", "misspecified",
         smf.negativebinomial(f, gt, loglike_method="nb1").fit(disp=0))
    _row("statsmodels discrete", "grouseticks NegativeBinomialP (p = 1.5)", "-",
         sm.NegativeBinomialP.from_formula(f, gt, p=1.5).fit(disp=0, maxiter=300))
    _row("statsmodels discrete", "grouseticks GeneralizedPoisson", "-", sm.GeneralizedPoisson.from_formula(f, gt).fit(disp=0, maxiter=300))
    X = sm.add_constant(pd.get_dummies(sal[["spp", "mined"]], drop_first=True).astype(float)).to_numpy()
    y = sal["count"].to_numpy(float)
    _row("statsmodels discrete", "Salamanders ZeroInflatedNegativeBinomialP", "correct",
         sm.ZeroInflatedNegativeBinomialP(y, X, exog_infl=X).fit(disp=0, maxiter=1000, method="bfgs"))
    _row("statsmodels discrete", "Salamanders ZeroInflatedPoisson", "misspecified",
         sm.ZeroInflatedPoisson(y, X, exog_infl=X).fit(disp=0, maxiter=500, method="bfgs"))
    for fitter in ("logit", "probit"):
        _row("statsmodels discrete", f"Contraception {fitter.title()} age + age^2", "correct",
             getattr(smf, fitter)("y ~ age + I(age**2) + urban + livch", co).fit(disp=0), predictor=co["age"])
        _row("statsmodels discrete", f"Contraception {fitter.title()} age only", "misspecified",
             getattr(smf, fitter)("y ~ age + urban + livch", co).fit(disp=0), predictor=co["age"])
    ml = smf.mixedlm("Reaction ~ Days", ss, groups=ss["Subject"], re_formula="~Days").fit()
    mt = smf.mixedlm(f, gt, groups=gt["BROOD"]).fit()
    for mode in ("unconditional", "conditional"):
        _row("statsmodels MixedLM", f"sleepstudy (Days | Subject), {mode}", "correct", ml, simulate_re=mode)
        _row("statsmodels MixedLM", f"grouseticks Gaussian (1 | BROOD), {mode}", "misspecified", mt, simulate_re=mode)


def sklearn_rows(gt, co, cb, ss, tw, zg):
    from sklearn import linear_model as lm
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures

    def onehot(cols):
        return make_column_transformer((OneHotEncoder(drop="first"), cols), remainder="passthrough")

    Xc = cb[["period", "herd"]]
    p = make_pipeline(OneHotEncoder(drop="first"), lm.PoissonRegressor(alpha=0, max_iter=1000))
    p.fit(Xc, cb["prop"], poissonregressor__sample_weight=cb["size"])
    _row("scikit-learn", "cbpp PoissonRegressor rate, sample_weight = size", "correct",
         gd.from_sklearn(p, Xc, cb["prop"], sample_weight=cb["size"]))
    Xg = gt[["YEAR", "cHEIGHT"]]
    _row("scikit-learn", "grouseticks PoissonRegressor", "misspecified",
         gd.from_sklearn(make_pipeline(onehot(["YEAR"]), lm.PoissonRegressor(alpha=0)).fit(Xg, gt["TICKS"]), Xg, gt["TICKS"]))
    Xz = zg[["x", "g"]]
    for name, est, role in (("GammaRegressor", lm.GammaRegressor(alpha=0, max_iter=1000), "correct"),
                            ("TweedieRegressor power 3", lm.TweedieRegressor(power=3, alpha=0, max_iter=1000), "misspecified")):
        _row("scikit-learn", f"gamma_sim {name}", role, gd.from_sklearn(make_pipeline(onehot(["g"]), est).fit(Xz, zg["y"]), Xz, zg["y"]))
    Xt = tw[["x", "g"]]
    for power, role in ((1.5, "correct"), (1.9, "misspecified")):
        est = make_pipeline(onehot(["g"]), lm.TweedieRegressor(power=power, alpha=0, max_iter=1000)).fit(Xt, tw["y"])
        _row("scikit-learn", f"tweedie_sim TweedieRegressor power {power}", role, gd.from_sklearn(est, Xt, tw["y"]))
    Xs = ss[["Days", "Subject"]]
    _row("scikit-learn", "sleepstudy TweedieRegressor power 0", "correct",
         gd.from_sklearn(make_pipeline(onehot(["Subject"]), lm.TweedieRegressor(power=0, alpha=0)).fit(Xs, ss["Reaction"]), Xs, ss["Reaction"]))
    _row("scikit-learn", "grouseticks TweedieRegressor power 0", "misspecified",
         gd.from_sklearn(make_pipeline(onehot(["YEAR"]), lm.TweedieRegressor(power=0, alpha=0)).fit(Xg, gt["TICKS"]), Xg, gt["TICKS"]))
    cols = ["age", "urban", "livch"]
    quad = make_pipeline(make_column_transformer((OneHotEncoder(drop="first"), ["urban", "livch"]),
                                                 (PolynomialFeatures(2, include_bias=False), ["age"])),
                         lm.LogisticRegression(C=1e8, max_iter=2000)).fit(co[cols], co["y"])
    lin = make_pipeline(onehot(["urban", "livch"]), lm.LogisticRegression(C=1e8, max_iter=2000)).fit(co[cols], co["y"])
    _row("scikit-learn", "Contraception LogisticRegression age + age^2", "correct", gd.from_sklearn(quad, co[cols], co["y"]), co["age"])
    _row("scikit-learn", "Contraception LogisticRegression age only", "misspecified", gd.from_sklearn(lin, co[cols], co["y"]), co["age"])


def arviz_rows(gt):
    import arviz as az
    import statsmodels.formula.api as smf

    rng = np.random.default_rng(2024)
    for name, fit, negbin, role in (
        ("NB", smf.negativebinomial("TICKS ~ YEAR + cHEIGHT", gt).fit(disp=0), True, "correct"),
        ("Poisson", smf.poisson("TICKS ~ YEAR + cHEIGHT", gt).fit(disp=0), False, "misspecified"),
    ):
        X = np.asarray(fit.model.exog)
        theta = rng.multivariate_normal(np.asarray(fit.params), np.asarray(fit.cov_params()), size=400)
        pp = np.empty((400, X.shape[0]))
        for s, th in enumerate(theta):
            mu = np.exp(X @ th[: X.shape[1]])
            size = 1.0 / max(th[-1], 1e-6) if negbin else None
            pp[s] = rng.negative_binomial(size, size / (size + mu)) if negbin else rng.poisson(mu)
        idata = az.from_dict(posterior_predictive={"TICKS": pp.reshape(4, 100, -1)},
                             observed_data={"TICKS": gt["TICKS"].to_numpy()})
        _row("ArviZ", f"grouseticks {name} posterior predictive (4 x 100 draws)", role,
             gd.from_inference_data(idata, "TICKS"), all_columns=True)


def main() -> int:
    warnings.simplefilter("ignore")
    gt, sal = datasets.load("grouseticks"), datasets.load("Salamanders")
    co = datasets.load("Contraception")
    co = co.assign(y=(co["use"] == "Y").astype(int))
    cb = datasets.load("cbpp")
    cb = cb.assign(prop=cb["incidence"] / cb["size"])
    ss = datasets.load("sleepstudy")
    tw = pd.read_csv(DATA / "tweedie_sim.csv")
    zg = pd.read_csv(DATA / "zigamma_sim.csv")
    zg = zg[zg["y"] > 0].reset_index(drop=True)
    print("| library | model | role | uniformity p | dispersion ratio | dispersion p | quantile-vs-age p | cpu / wall s |")
    print("|---|---|---|---|---|---|---|---|")
    statsmodels_rows(gt, sal, co, cb, ss, tw, zg)
    sklearn_rows(gt, co, cb, ss, tw, zg)
    arviz_rows(gt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
