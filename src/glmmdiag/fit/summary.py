"""Text summary laid out like glmmTMB's ``summary()``."""
from __future__ import annotations

import html

import numpy as np


class Summary(str):
    """The summary text: prints as today, shows as itself in a REPL (not as a quoted string) and as
    preformatted HTML in Jupyter."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return "<pre>" + html.escape(str(self)) + "</pre>"


def _signif_stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


def _fmt_p(p: float) -> str:
    """R's format.pval: "<2e-16", 3 significant digits, "NA" for a missing p-value."""
    if not np.isfinite(p):
        return "NA"
    return "<2e-16" if p < 2e-16 else f"{p:.3g}"


def _fmt_fixed(x: float, spec: str) -> str:
    return f"{x:{spec}}" if np.isfinite(x) else "NA"


def _fmt(x: float, digits: int = 4) -> str:
    if x is None or not np.isfinite(x):
        return "NA"
    return f"{x:.{digits}g}"


# glmmTMB's summary reports sigma^2 for the families whose sigma() is a residual scale (gaussian,
# Gamma: the CV, t: the scale) and sigma() itself, with an empty "()", for the others.
_SIGMA_SQUARED = ("gaussian", "gamma", "t")


def _dispersion_lines(fit) -> list[str]:
    """glmmTMB 1.1.5's dispersion line (3 significant digits), plus t's df (ours)."""
    fam = fit.family
    disp = fit.dispersion
    if disp is None or getattr(fam, "disp_fixed", False):  # dispformula ~0: glmmTMB prints no estimate
        return []
    if fam.name in _SIGMA_SQUARED:
        out = ["", f"Dispersion estimate for {fam.display_name} family (sigma^2): {_fmt(disp ** 2, 3)}"]
    else:
        out = ["", f"Dispersion parameter for {fam.display_name} family (): {_fmt(disp, 3)}"]
    if fam.name == "t":
        how = "fixed" if fit.df_fixed else "estimated"
        out.append(f"Degrees of freedom for t family ({how}): {_fmt(fit.df, 3)}")
    if fam.name in _EXTRA_LABELS:
        label, keys = _EXTRA_LABELS[fam.name]
        extra = fam.dispersion_extra(fit.psi)
        out.append(f"{label}: {', '.join(_fmt(extra[k], 4) for k in keys)}")
    return out


# the family parameters other than the dispersion: (label, keys of family.dispersion_extra)
_EXTRA_LABELS = {
    "tweedie": ("Tweedie power parameter", ("power",)),
    "ordbeta": ("Ordered beta cutoffs (probability scale)", ("lower cutoff", "upper cutoff")),
}


def _coef_lines(tab) -> list[str]:
    """A coefficient table as glmmTMB prints it (with significance stars)."""
    if not len(tab):
        return ["No fixed effect coefficients"]
    lines = []
    cells = [("", "Estimate", "Std. Error", "z value", "Pr(>|z|)", "")]
    for name, r in tab.iterrows():
        p = r["Pr(>|z|)"]
        cells.append((name, _fmt_fixed(r["Estimate"], ".6g"), _fmt_fixed(r["Std. Error"], ".6g"),
                      _fmt_fixed(r["z value"], ".2f"), _fmt_p(p), _signif_stars(p)))
    w = [max(len(c[k]) for c in cells) for k in range(6)]
    for c in cells:
        lines.append(c[0].ljust(w[0]) + " " + " ".join(c[k].rjust(w[k]) for k in range(1, 5)) + " " + c[5])
    lines += ["---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]
    return lines


def _unstructured_rows(grp, sub) -> list[tuple]:
    """lme4's layout: one row per coefficient, correlations with the earlier ones."""
    rows = []
    var_rows = sub[sub["var2"].isna()]
    cov_rows = sub[sub["var2"].notna()]
    for i, (_, r) in enumerate(var_rows.iterrows()):
        corr = ""
        if i > 0:
            cs = [cov_rows[(cov_rows.var1 == var_rows.iloc[j].var1) & (cov_rows.var2 == r.var1)] for j in range(i)]
            corr = " ".join(f"{c.sdcor.iloc[0]:.2f}" if len(c) else "" for c in cs)
        name = "" if r.var1 is None or (isinstance(r.var1, float) and np.isnan(r.var1)) else str(r.var1)
        rows.append((str(grp) if i == 0 else "", name, _fmt(r.vcov), _fmt(r.sdcor), corr))
    return rows


_HOMOGENEOUS = ("ar1", "homcs", "homdiag", "ou", "exp", "gau", "mat")


def _structure_note(code: str, params: dict) -> str:
    """glmmTMB's ``0.71 (ar1)``; the range (and smoothness) of the distance structures."""
    if not params:
        return f"({code})"
    shown = params if code not in ("ou",) else {"rate": params["rate"]}
    if code in ("ar1", "cs", "homcs"):
        return f"{params['rho']:.2f} ({code})"
    return " ".join(f"{k} {_fmt(v, 3)}" for k, v in shown.items()) + f" ({code})"


def _structured_rows(grp, sub, term, params) -> list[tuple]:
    """A structured term: its SDs (one row if they are equal by construction) and its parameters."""
    var_rows = sub[sub["var2"].isna()]
    if term.structure in _HOMOGENEOUS:
        var_rows = var_rows.iloc[:1]
    rows = []
    for i, (_, r) in enumerate(var_rows.iterrows()):
        note = _structure_note(term.structure, params) if i == 0 and term.structure not in ("diag", "homdiag") else ""
        rows.append((str(grp) if i == 0 else "", str(r.var1), _fmt(r.vcov), _fmt(r.sdcor), note))
    return rows


def _random_effect_rows(fit) -> list[tuple]:
    """The variance-component rows of the summary, term by term, then the residual."""
    vc = fit.varcorr
    rows, off = [], 0
    for term, params in zip(fit.design.terms, fit.covariance_parameters):
        size = term.q + term.q * (term.q - 1) // 2
        sub = vc.iloc[off : off + size]
        off += size
        if term.structure == "us":
            rows += _unstructured_rows(term.group, sub)
        else:
            rows += _structured_rows(term.group, sub, term, params)
    for _, r in vc.iloc[off:].iterrows():
        rows.append((str(r.grp), "", _fmt(r.vcov), _fmt(r.sdcor), ""))
    return rows


def format_summary(fit) -> str:
    fam = fit.family
    lines = [f" Family: {fam.display_name}  ( {fam.link.name} )", f"Formula:          {fit.formula}"]
    forms = getattr(fam, "formulas", {}) if getattr(fam, "composite", False) else {}
    if forms.get("zi"):
        lines.append(f"Zero inflation:            {forms['zi']}")
    if forms.get("disp"):
        lines.append(f"Dispersion:                {forms['disp']}")
    lines += [f"Data: {fit.data_name}", ""]
    if fit.n_dropped:
        lines.insert(3, f"({fit.n_dropped} rows dropped for missing values)")
    crit = "REML criterion" if fit.reml else "deviance"
    hdr = ["AIC", "BIC", "logLik", crit, "df.resid"]
    vals = [f"{fit.aic:.1f}", f"{fit.bic:.1f}", f"{fit.loglik:.1f}", f"{fit.deviance:.1f}", f"{fit.df_resid}"]
    width = [max(len(h), len(v)) + 2 for h, v in zip(hdr, vals)]
    lines.append("".join(h.rjust(w) for h, w in zip(hdr, width)))
    lines.append("".join(v.rjust(w) for v, w in zip(vals, width)))
    lines.append("")
    if fit.design.terms:
        lines += ["Random effects:", "", "Conditional model:"]
        rows = [("Groups", "Name", "Variance", "Std.Dev.", "Corr")] + _random_effect_rows(fit)
        ncol = 5 if any(r[4] for r in rows[1:]) else 4
        w = [max(len(r[k]) for r in rows) for k in range(ncol)]
        for r in rows:
            lines.append(" " + " ".join(r[k].ljust(w[k]) for k in range(ncol)).rstrip())
        groups = ", ".join(f"{g}, {n}" for g, n in fit.ngroups.items())
        lines.append(f"Number of obs: {fit.nobs}, groups:  {groups}")
    else:
        lines.append(f"Number of obs: {fit.nobs}")
    lines += _dispersion_lines(fit)
    lines += ["", "Conditional model:"]
    lines += _coef_lines(fit.coef_table())
    if forms.get("zi"):
        lines += ["", "Zero-inflation model:"] + _coef_lines(fit.coef_table_zi())
    if forms.get("disp") and fam.kd:
        lines += ["", "Dispersion model:"] + _coef_lines(fit.coef_table_disp())
    if fit.warnings:
        lines += [""] + [f"Warning: {w}" for w in fit.warnings]
    return "\n".join(lines)
