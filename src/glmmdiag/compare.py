"""``compare_families``: fit one formula with several response distributions and put the fit
statistics and the residual diagnostics side by side (e.g. Beta vs Gamma for a proportion).

Information criteria are only comparable between models of the same response. When a family is
fitted to a transformed response y' = f(y) (Gamma on the percent scale, 100 * y, next to Beta on the
proportion y), the density of y is the density of y' times |f'(y)|, so

    logLik_y = logLik_y' + sum_i log |f'(y_i)|        (100 * y: n log 100)

and ``AIC_common`` = -2 logLik_y + 2 k is comparable across the rows (``BIC_common`` likewise).
Discrete and continuous families are never comparable this way (a probability mass is not a
density); mixing them gives a warning.

The diagnostics are simulation-based (``simulate_residuals``) in one mode for every family. p-values
are not effect sizes (DHARMa's advice): the table reports the dispersion ratio, the KS distance and
the zero-inflation ratio next to them, and ``plot_comparison`` draws them on shared axes.
"""
from __future__ import annotations

import math
import numbers
import re
import warnings

import numpy as np
import pandas as pd
from glmmdiag._arguments import seed_or_rng
from glmmdiag._progress import track
from glmmdiag.errors import ColumnError, GlmmdiagError

__all__ = ["compare_models", "compare_families", "ModelComparison", "FamilyComparison"]


class ModelComparison(pd.DataFrame):
    """The table of ``compare_models`` / ``compare_families`` (a pandas DataFrame, one row per model)
    that also keeps what it was made from: ``fits``, ``residuals`` (ScaledResiduals), ``tests``
    (dict of TestResult per model) and ``specs`` (the model specifications), keyed by the row
    label; ``plot_comparison(table)`` draws them."""

    _metadata = ["fits", "residuals", "tests", "settings", "specs"]

    @property
    def _constructor(self):
        return ModelComparison


FamilyComparison = ModelComparison  # the name compare_families' table had first


def _response_name(formula: str) -> str:
    if "~" not in formula:
        raise GlmmdiagError(f"formula must have a response: 'y ~ ...'; got {formula!r}")
    return formula.split("~", 1)[0].strip()


def _transform(spec, y: np.ndarray, data: pd.DataFrame, response: str):
    """(new response values, per-row log|dy'/dy|, description) of a transform spec."""
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        c = float(spec)
        if c == 0 or not math.isfinite(c):
            raise GlmmdiagError(f"a scale factor must be finite and non-zero; got {spec!r}")
        return c * y, np.full(y.shape, math.log(abs(c))), f"{c:g}*{response}"
    if isinstance(spec, str):
        if spec not in data.columns:
            raise ColumnError(f"transform column {spec!r} is not in the data")
        z = np.asarray(data[spec], float)
        ok = np.isfinite(z) & np.isfinite(y) & (y != 0)
        ratio = z[ok] / y[ok]
        if ratio.size == 0 or not np.allclose(ratio, ratio[0], rtol=1e-8, atol=0):
            raise GlmmdiagError(
                f"column {spec!r} is not a constant multiple of {response!r}, so its Jacobian is unknown: "
                f"pass the transform as a function, e.g. transforms={{family: (f, f_prime)}}"
            )
        c = float(np.median(ratio))
        return z, np.full(y.shape, math.log(abs(c))), f"{spec} = {c:g}*{response}"
    if isinstance(spec, tuple) and len(spec) == 2 and all(callable(f) for f in spec):
        f, fprime = spec
        z = np.asarray(f(y), float)
        d = np.asarray(fprime(y), float)
        return z, np.log(np.abs(d)), f"{getattr(f, '__name__', 'f')}({response})"
    if callable(spec):
        z = np.asarray(spec(y), float)
        h = 1e-6 * np.maximum(np.abs(y), 1e-3)
        d = (np.asarray(spec(y + h), float) - np.asarray(spec(y - h), float)) / (2 * h)
        return z, np.log(np.abs(d)), f"{getattr(spec, '__name__', 'f')}({response})"
    raise TypeError(
        "a transform is a scale factor (e.g. 100), a column name that is a multiple of the response, "
        f"a function, or (function, derivative); got {type(spec).__name__}"
    )


def _family_label(family) -> str:
    return family if isinstance(family, str) else getattr(family, "name", str(family))


def _model_list(models) -> list[dict]:
    """Validated specifications with unique labels from a dict label -> spec or a sequence of specs."""
    from glmmdiag.remedies import normalize_spec

    if isinstance(models, (str, dict)) and not (isinstance(models, dict) and "family" not in models):
        models = [models]
    if isinstance(models, dict):
        specs = []
        for label, spec in models.items():
            spec = {"family": spec} if isinstance(spec, str) and ";" not in spec and "=" not in spec else spec
            s = normalize_spec(spec)
            if not isinstance(label, str) or not label.strip() or "/" in label:
                raise GlmmdiagError(f"model labels must be non-empty strings without '/'; got {label!r}")
            s["label"] = label.strip()
            specs.append(s)
    else:
        specs = [normalize_spec(m) for m in models]
    if not specs:
        raise GlmmdiagError("models must name at least one model")
    labels = [s["label"] for s in specs]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise GlmmdiagError(f"models are repeated (give each a distinct label): {repeated}")
    return specs


def _olre_column(data: pd.DataFrame) -> str:
    """A column name for an observation-level random effect that the data do not have."""
    name = "obs"
    while name in data.columns:
        name += "_"
    return name


def _model_inputs(formula, data, spec, transform, response):
    """(formula, data, response description, per-row log-Jacobian or None) for one model."""
    fdata, fformula, resp_desc, logjac_rows = data, formula, response, None
    if transform is not None:
        if response not in data.columns:
            raise GlmmdiagError(
                f"a transform needs the response to be a column of the data; {response!r} is not "
                f"(write the transformed response in the data, or pass it as a column name)"
            )
        y = np.asarray(data[response], float)
        z, logjac_rows, resp_desc = _transform(transform, y, data, response)
        new = re.sub(r"\W", "_", f"{response}_{spec['label']}_scale")
        fdata = data.copy()
        fdata[new] = z
        fformula = new + " ~ " + formula.split("~", 1)[1]
    if spec.get("olre"):
        col = _olre_column(fdata)
        fdata = fdata.copy() if fdata is data else fdata
        fdata[col] = pd.Categorical(np.arange(len(fdata)))
        fformula = f"{fformula} + (1 | {col})"
    return fformula, fdata, resp_desc, logjac_rows


def _run_tests(res, quantiles) -> dict:
    from glmmdiag import checks

    return {
        "uniformity": checks.uniformity_test(res),
        "dispersion": checks.dispersion_test(res),
        "outliers": checks.outlier_test(res),
        "zero_inflation": checks.zero_inflation_test(res),
        "quantiles": checks.quantile_test(res, quantiles=quantiles, curves=False),
    }


def _row(spec, fit, res, t, logjac, resp_desc, fit_warnings, alpha, formula) -> dict:
    """One row of the comparison table."""
    from glmmdiag.remedies import SEP, format_spec, model_remedies

    k, n = fit.n_params, fit.nobs
    ll_c = fit.loglik + logjac
    read = verdict_tests(t, res)
    return {
        "model": spec["label"], "family": _family_label(spec["family"]), "ziformula": spec["ziformula"],
        "dispformula": spec["dispformula"], "spec": format_spec(spec),
        "link": fit.family.link.name, "response": resp_desc, "nobs": n, "n_params": k,
        "logLik": fit.loglik, "AIC": fit.aic, "BIC": fit.bic, "log_jacobian": logjac,
        "logLik_common": ll_c, "AIC_common": -2.0 * ll_c + 2.0 * k, "BIC_common": -2.0 * ll_c + math.log(n) * k,
        "dispersion": t["dispersion"].statistic, "dispersion_p": t["dispersion"].p_value,
        "ks_D": t["uniformity"].statistic, "ks_p": t["uniformity"].p_value,
        "outliers": t["outliers"].statistic, "outlier_p": t["outliers"].p_value,
        "zero_inflation": t["zero_inflation"].statistic, "zero_inflation_p": t["zero_inflation"].p_value,
        "quantile_p": t["quantiles"].p_value,
        "verdict": verdict(read, alpha),
        "remedies": SEP.join(str(r) for r in model_remedies(spec, fit.family.name, read, alpha, formula)),
        "simulate_re": res.simulate_re, "n_sim": res.n_sim, "converged": bool(fit.converged),
        "fit_warnings": "; ".join(fit_warnings),
    }


def _warn_incomparable(fits: dict, resids: dict, who: str) -> None:
    """Warn when the models' likelihoods are not comparable (discrete vs continuous, other rows)."""
    kinds = {bool(r.integer_response) for r in resids.values()}
    if len(kinds) > 1:
        warnings.warn(
            f"{who}: discrete and continuous families are compared; their logLik/AIC are not "
            "comparable (probability masses vs densities)", UserWarning, stacklevel=3,
        )
    rows = {label: np.asarray(getattr(f.design, "rows", np.arange(f.nobs))) for label, f in fits.items()}
    sizes = {label: len(r) for label, r in rows.items()}
    first = next(iter(rows.values()))
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        warnings.warn(f"{who}: the models were fitted to different numbers of rows ({detail}); "
                      "AIC values are not comparable", UserWarning, stacklevel=3)
    elif any(not np.array_equal(r, first) for r in rows.values()):
        warnings.warn(f"{who}: the models were fitted to different rows of the data; "
                      "AIC values are not comparable", UserWarning, stacklevel=3)


def compare_models(
    formula: str,
    data: pd.DataFrame,
    models,
    n_sim: int = 250,
    seed=None,
    *,
    transforms: dict | None = None,
    simulate_re: str = "conditional",
    quantiles=(0.25, 0.5, 0.75),
    alpha: float = 0.05,
    n_jobs=1,
    progress="auto",
    rng=None,
    _who: str = "compare_models",
    **fit_kw,
) -> ModelComparison:
    """Fit ``formula`` as several models of the same response and compare fit statistics and
    residual diagnostics (e.g. Poisson vs NB2 vs zero-inflated NB2 vs hurdle NB2).

    Parameters
    ----------
    formula, data
        As for ``glmmdiag.glmm``; the response (left of ``~``) is the common scale of comparison.
    models : dict label -> spec, or sequence of specs
        A spec is a dict with "family" and optionally "link", "ziformula", "dispformula", "olre"
        (True: add ``(1 | obs)``) and, in a sequence, "label"; or a string such as
        ``"nbinom2; ziformula=~1"`` or a family name (see ``glmmdiag.remedies``). Labels name the
        rows; by default they are made from the spec ("ZI nbinom2 (zi ~1)").
    n_sim, seed, simulate_re, n_jobs
        For ``simulate_residuals`` (the same seed for every model).
    transforms : dict label -> transform, optional
        Fit that model to a transformed response (as ``compare_families``); its likelihood is put
        back on the response's scale in the ``*_common`` columns.
    quantiles, alpha
        For ``quantile_test`` and the verdict/remedies columns: the tests whose p-value,
        Holm-adjusted over the model's tests as in ``residual_tests``, is < alpha.
    progress : bool or "auto"
        A progress bar over the models (``"auto"``: in a notebook or terminal, once the work takes
        more than a couple of seconds; silent in pipes and tests).
    **fit_kw
        Passed to every ``glmm`` call (weights=, offset=, ...); a spec's own link/ziformula/
        dispformula take precedence.

    Returns
    -------
    ModelComparison
        A DataFrame indexed by the model label with the columns of ``compare_families`` plus
        family, ziformula, dispformula, spec (the string form) and remedies (what the remedy
        table suggests for the failed checks). Warns when the models are fitted to different rows
        or mix discrete and continuous families (AICs not comparable).

    Examples
    --------
    Poisson, negative binomial and zero-inflated negative binomial GLMMs of the same counts:

    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> sal = datasets.load("Salamanders")
    >>> cmp = glmmdiag.compare_models("count ~ spp + mined + (1 | site)", sal,
    ...                               {"Poisson": "poisson", "NB2": "nbinom2",
    ...                                "ZINB2": "nbinom2; ziformula=~1"}, n_sim=250, seed=1)
    >>> print(cmp[["delta_AIC", "dispersion"]].round(1).to_string())
             delta_AIC  dispersion
    model
    Poisson      290.4         3.0
    NB2            0.0         0.9
    ZINB2          2.0         0.9
    """
    from glmmdiag.fit import glmm
    from glmmdiag.residuals import simulate_residuals

    seed = seed_or_rng(seed, rng, _who)
    specs = _model_list(models)
    labels = [s["label"] for s in specs]
    transforms = dict(transforms or {})
    unknown = set(transforms) - set(labels)
    if unknown:
        raise GlmmdiagError(f"transforms names models that are not compared: {sorted(unknown)}")
    response = _response_name(formula)
    rows, fits, resids, tests = [], {}, {}, {}
    for spec in track(specs, len(specs), "models", progress):
        label = spec["label"]
        fformula, fdata, resp_desc, logjac_rows = _model_inputs(formula, data, spec, transforms.get(label), response)
        kw = dict(fit_kw)
        kw.update({k: spec[k] for k in ("link", "ziformula", "dispformula") if spec[k] is not None})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = glmm(fformula, fdata, family=spec["family"], **kw)
        fit_warnings = sorted({str(w.message) for w in caught})
        logjac = 0.0
        if logjac_rows is not None:
            used = np.asarray(getattr(fit.design, "rows", np.arange(len(data))))
            logjac = float(np.sum(logjac_rows[used]))
        res = simulate_residuals(fit, n_sim, seed=seed, simulate_re=simulate_re, n_jobs=n_jobs)
        t = _run_tests(res, quantiles)
        rows.append(_row(spec, fit, res, t, logjac, resp_desc, fit_warnings, alpha, formula))
        fits[label], resids[label], tests[label] = fit, res, t
    _warn_incomparable(fits, resids, _who)
    table = ModelComparison(pd.DataFrame(rows).set_index("model"))
    table.insert(table.columns.get_loc("BIC_common") + 1, "delta_AIC",
                 table["AIC_common"] - table["AIC_common"].min())
    table.fits, table.residuals, table.tests = fits, resids, tests
    table.specs = {s["label"]: s for s in specs}
    table.settings = {"formula": formula, "alpha": alpha, "quantiles": tuple(quantiles), "seed": seed,
                      "simulate_re": simulate_re, "n_sim": n_sim}
    return table


def compare_families(
    formula: str,
    data: pd.DataFrame,
    families=("beta", "gamma"),
    n_sim: int = 250,
    seed=None,
    *,
    transforms: dict | None = None,
    links: dict | None = None,
    simulate_re: str = "conditional",
    quantiles=(0.25, 0.5, 0.75),
    alpha: float = 0.05,
    n_jobs=1,
    progress="auto",
    rng=None,
    **fit_kw,
) -> ModelComparison:
    """Fit ``formula`` with each family and compare fit statistics and residual diagnostics
    (``compare_models`` with one model per family, labelled by the family).

    Parameters
    ----------
    formula, data
        As for ``glmmdiag.glmm``; the response (left of ``~``) is the common scale of comparison.
    families : sequence of str
        Family names for ``glmm`` (row labels of the table), e.g. ("beta", "gamma").
    n_sim, seed, simulate_re, n_jobs
        For ``simulate_residuals`` (the same seed for every family). DHARMa's published numbers
        for glmmTMB 1.1.5 fits are "unconditional"; DHARMa >= 0.5 defaults to "conditional".
    transforms : dict family -> transform, optional
        Fit that family to a transformed response. A number c (y' = c y), the name of a column
        that is a constant multiple of the response, a function f (derivative by central
        differences) or a pair (f, f'). Its logLik/AIC/BIC are reported as fitted and, in the
        ``*_common`` columns, on the response's scale via the log-Jacobian sum log|f'(y)|.
    links : dict family -> link, optional
        Link per family (default: the family's default link).
    quantiles, alpha
        For ``quantile_test`` and the verdict column (Holm-adjusted p < alpha, as in ``residual_tests``).
    progress : bool or "auto"
        A progress bar over the families (see ``compare_models``).
    **fit_kw
        Passed to every ``glmm`` call (weights=, offset=, n_agq=, ...).

    Returns
    -------
    ModelComparison (a DataFrame, one row per family) with columns
        link, response, nobs, n_params, logLik, AIC, BIC, log_jacobian, logLik_common, AIC_common,
        BIC_common, delta_AIC, dispersion, dispersion_p, ks_D, ks_p, outliers, outlier_p,
        zero_inflation, zero_inflation_p, quantile_p, verdict, remedies, simulate_re, n_sim,
        converged; ``.fits``, ``.residuals`` and ``.tests`` keep the fitted models and diagnostics
        for ``plot_comparison``.

    Examples
    --------
    The Beta model of a proportion against a Gamma model of the same response on the percent scale
    (its AIC is put back on the proportion scale by the Jacobian, in ``AIC_common``):

    >>> import glmmdiag
    >>> from glmmdiag import datasets
    >>> rust = datasets.load("rust")
    >>> cmp = glmmdiag.compare_families("severity ~ fungicide + (1 | block)", rust, families=("beta", "gamma"),
    ...                                 transforms={"gamma": 100}, links={"gamma": "log"}, n_sim=250, seed=1)
    >>> print(cmp[["AIC_common", "delta_AIC", "dispersion"]].round(1).to_string())
            AIC_common  delta_AIC  dispersion
    family
    beta         -90.3        0.0         1.1
    gamma        -64.0       26.4         0.3
    """
    seed = seed_or_rng(seed, rng, "compare_families")
    if isinstance(families, str):
        families = (families,)
    families = list(families)
    if not families:
        raise GlmmdiagError("families must name at least one family")
    labels = [_family_label(f) for f in families]
    if len(set(labels)) != len(labels):
        raise GlmmdiagError(f"families are repeated: {labels}")
    links = dict(links or {})
    for name, d in (("transforms", transforms or {}), ("links", links)):
        unknown = set(d) - set(labels)
        if unknown:
            raise GlmmdiagError(f"{name} names families that are not compared: {sorted(unknown)}")
    models = {lab: {"family": fam, "link": links.get(lab)} for fam, lab in zip(families, labels)}
    table = compare_models(formula, data, models, n_sim, seed, transforms=transforms, simulate_re=simulate_re,
                           quantiles=quantiles, alpha=alpha, n_jobs=n_jobs, progress=progress,
                           _who="compare_families", **fit_kw)
    return _as_family_table(table)


def _as_family_table(table: ModelComparison) -> ModelComparison:
    """compare_families' layout: indexed by "family" without the spec columns."""
    meta = {k: getattr(table, k) for k in ModelComparison._metadata}
    out = ModelComparison(table.drop(columns=["family", "ziformula", "dispformula", "spec"]))
    out.index.name = "family"
    for k, v in meta.items():
        setattr(out, k, v)
    return out


def verdict_tests(tests: dict, res) -> dict:
    """The tests as a verdict reads them: p-values Holm-adjusted over the model's tests (zero
    inflation left out for a continuous response, where it is not a test), so that the verdict
    flags a correct model with probability at most alpha (``checks.pvalues.adjust_tests``). The
    same rule as ``residual_tests(...).verdict`` and the report's."""
    from glmmdiag.checks.pvalues import adjust_tests

    return adjust_tests(tests, "holm", exclude=() if res.integer_response else ("zero_inflation",))


def verdict(tests: dict, alpha: float = 0.05) -> str:
    """One line naming the tests that reject at alpha (with effect size), or 'no problems detected'."""
    from glmmdiag.plots._style import problem_phrases

    out = problem_phrases(tests, alpha)
    return "; ".join(out) if out else "no problems detected"
