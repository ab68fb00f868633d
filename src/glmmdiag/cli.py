"""The ``glmmdiag`` command line (stdlib argparse): ``check``, ``demo``, ``datasets``.

Exit codes
----------
0  done.
2  bad input: exactly one line ``glmmdiag...: error: <reason>`` on stderr, no traceback. Bad input
   is recognised by class: the package's :class:`~glmmdiag.errors.GlmmdiagError` (and its
   subclasses FormulaError, ColumnError, FitError), this module's :class:`BadInput` (option and
   file checks, CSV files pandas cannot read) and argparse's usage errors. A plain ``ValueError``,
   ``KeyError`` or ``TypeError`` is not bad input: the package raises its own classes for that.
1  anything else (a bug): the traceback, for a bug report.

Progress goes to stderr when it is a terminal (not with --quiet). Python warnings are collected
and printed one line each (``glmmdiag: warning: ...``) after a run that did not fail on bad input.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

EXAMPLES = """\
examples:
  glmmdiag demo                                  # Beta vs Gamma on the shipped yellow-rust trial
  glmmdiag check data.csv --formula "y ~ trt + (1 | block)" --family beta --out report/
  glmmdiag check rust.csv --formula "severity ~ fungicide + (1 | block)" --family beta \\
      --compare gamma --transform gamma=100 --link gamma=log --n-sim 1000 --seed 1 --jobs -1 --out rust/
  glmmdiag check sal.csv --formula "count ~ spp + mined + (1 | site)" --family poisson \\
      --compare nbinom2 --compare "nbinom2; ziformula=~1" --compare "truncated_nbinom2; ziformula=~1" --suggest --out sal/
  glmmdiag datasets                              # the shipped data sets

exit codes: 0 done, 2 bad input (one line on stderr), 1 unexpected failure (traceback)
"""

FAMILIES = ("gaussian", "binomial", "poisson", "gamma", "beta", "nbinom1", "nbinom2", "t", "betabinomial",
            "tweedie", "ordbeta", "truncated_poisson", "truncated_nbinom1", "truncated_nbinom2")

class BadInput(Exception):
    """A user error: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line (exit 2), like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_squash(message)} (see {self.prog} --help)\n")


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.t0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def _progress(args) -> _Progress:
    return _Progress(not args.quiet and sys.stderr.isatty())


def _squash(text: str) -> str:
    """All whitespace runs (newlines included) to single spaces."""
    return " ".join(str(text).split())


# ------------------------------------------------------------------------------ option types
def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None


def _n_sim(text: str) -> int:
    """--n-sim: an integer >= 2."""
    n = _integer(text)
    if n < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2 simulations; got {n}")
    return n


def _seed(text: str) -> int:
    """--seed: a non-negative integer."""
    n = _integer(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer; got {n}")
    return n


def _jobs(text: str) -> int:
    """--jobs: a positive number of workers, or negative as joblib (-1 = all cores)."""
    n = _integer(text)
    if n == 0:
        raise argparse.ArgumentTypeError("must be a positive number of workers, or -1 for all cores; got 0")
    return n


def _budget(text: str) -> float:
    """--refit-budget: a number of seconds >= 0."""
    try:
        a = float(text)
    except ValueError:
        a = math.nan
    if not (a >= 0 and math.isfinite(a)):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0; got {text!r}")
    return a


def _positive(text: str) -> int:
    """--calibrate-boot: an integer >= 1."""
    v = _integer(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text!r}")
    return v


def _alpha(text: str) -> float:
    """--alpha: a number strictly between 0 and 1."""
    try:
        a = float(text)
    except ValueError:
        a = math.nan
    if not 0 < a < 1:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1 (exclusive); got {text!r}")
    return a


def _out_dir(text: str) -> str:
    """--out: a non-blank path."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a directory; got an empty string")
    return text


# ------------------------------------------------------------------------------ input checks
def _pairs(values, what: str, main_family: str | None = None) -> dict:
    """["gamma=log", "logit"] -> {"gamma": "log", main_family: "logit"}; a family given twice is
    bad input."""
    out = {}
    for v in values or []:
        if "=" in v:
            k, _, val = v.partition("=")
            k, val = k.strip(), val.strip()
        elif main_family is not None:
            k, val = main_family, v.strip()
        else:
            raise BadInput(f"--{what} takes FAMILY=VALUE; got {v!r}")
        if not k or not val:
            raise BadInput(f"--{what} takes FAMILY=VALUE; got {v!r}")
        k = _family_name(k, f"--{what}")
        if k in out:
            raise BadInput(f"--{what} is given twice for the {k} family")
        out[k] = val
    return out


def _family_name(name: str, option: str) -> str:
    """The canonical family name ("Gamma" -> "gamma", "negative_binomial" -> "nbinom2"); the
    zero-truncated (hurdle) families as they are."""
    from glmmdiag.fit.families import get_family
    from glmmdiag.fit.submodels import TRUNCATED

    if name.strip().lower() in TRUNCATED:
        return name.strip().lower()
    try:
        canonical = get_family(name.strip()).name
    except ValueError:
        canonical = None
    if canonical not in FAMILIES:
        raise BadInput(f"{option}: unknown family {name!r}; choose one of {', '.join(FAMILIES)}")
    return canonical


def _is_plain(text: str) -> bool:
    """A bare family name rather than a model specification 'family; key=value; ...'."""
    return ";" not in text and "=" not in text


def _compare_spec(text: str) -> str | dict:
    """One --compare value: a canonical family name, or a validated specification dict."""
    from glmmdiag.errors import GlmmdiagError
    from glmmdiag.remedies import parse_spec

    if _is_plain(text):
        return _family_name(text, "--compare")
    try:
        return parse_spec(text)
    except GlmmdiagError as e:
        raise BadInput(f"--compare {text!r}: {_one_line(e)}") from None


def _submodel_option(value: str | None, option: str) -> str | None:
    """--ziformula / --dispformula: a one-sided whitelisted formula."""
    from glmmdiag.errors import GlmmdiagError
    from glmmdiag.remedies import _check_submodel

    if value is None:
        return None
    try:
        return _check_submodel(value, option)
    except GlmmdiagError as e:
        raise BadInput(f"{option}: {_one_line(e)}") from None


def _check_links(links: dict) -> None:
    """Each FAMILY=LINK names a link the family has."""
    from glmmdiag.fit.families import get_family

    for fam, link in links.items():
        try:
            get_family(fam, link)
        except ValueError as e:
            raise BadInput(f"--link {fam}={link}: {_one_line(e)}") from None


def _transform_value(family: str, v: str, columns) -> float | str:
    """A finite non-zero scale factor, or the name of a column of the data."""
    try:
        c = float(v)
    except ValueError:
        if v not in columns:
            raise BadInput(f"--transform {family}={v}: {v!r} is neither a number nor a column of the data") from None
        return v
    if not math.isfinite(c) or c == 0:
        raise BadInput(f"--transform {family}={v}: a scale factor must be finite and non-zero")
    return c


def _check_formula(formula: str | None) -> None:
    """A formula at all (the package's parser checks the rest, raising FormulaError)."""
    if formula is None or "~" not in formula:
        raise BadInput(f"--formula must be a model formula 'y ~ ...'; got {formula!r}")


def _check_out(out: str) -> None:
    """--out can be created (or is a directory) and holds no planted link where we write."""
    from glmmdiag import report
    from glmmdiag.errors import GlmmdiagError

    try:
        report.check_out_dir(out)
    except GlmmdiagError as e:
        raise BadInput(f"--out: {_one_line(e)}") from None


def _read_data(path: str):
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise BadInput(f"data file not found: {path}")
    if p.is_dir():
        raise BadInput(f"data file is a directory: {path}")
    try:
        if p.suffix.lower() in (".tsv", ".tab"):
            return pd.read_csv(p, sep="\t")
        return pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise BadInput(f"cannot read {path} as CSV: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror or e}") from None


def _one_line(e: BaseException) -> str:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    return _squash(msg) or type(e).__name__


# ------------------------------------------------------------------------------ classification
def is_bad_input(e: BaseException) -> bool:
    """Whether ``e`` is the user's input (exit 2, one line) rather than a bug (exit 1, traceback)."""
    from glmmdiag.errors import GlmmdiagError

    return isinstance(e, (BadInput, GlmmdiagError))


def _print_warnings(caught) -> None:
    """Each distinct warning of the run, one line on stderr."""
    seen = set()
    for w in caught:
        line = f"glmmdiag: warning: {w.category.__name__}: {_squash(w.message)}"
        if line not in seen:
            seen.add(line)
            print(line, file=sys.stderr)


# ------------------------------------------------------------------------------ commands
def _options(args, columns) -> dict:
    """The model options of ``check``/``demo``, validated: families, links, transforms."""
    family = _family_name(args.family, "--family")
    ziformula = _submodel_option(getattr(args, "ziformula", None), "--ziformula")
    dispformula = _submodel_option(getattr(args, "dispformula", None), "--dispformula")
    main_plain = ziformula is None and dispformula is None
    compare, keys = [], []
    for text in args.compare or []:
        c = _compare_spec(text)
        key = c if isinstance(c, str) else c["label"]
        if key in keys:
            raise BadInput(f"--compare names the {key} {'family' if isinstance(c, str) else 'model'} twice")
        keys.append(key)
        if not (isinstance(c, str) and c == family and main_plain):  # not the main model itself
            compare.append(c)
    links = _pairs(args.link, "link", family)
    transforms = _pairs(args.transform, "transform")
    fitted = {family, *[c for c in compare if isinstance(c, str)]}
    for option, d in (("link", links), ("transform", transforms)):
        extra = sorted(set(d) - fitted)
        if extra:
            raise BadInput(f"--{option} names a family that is not fitted: {', '.join(extra)} "
                           f"(add --compare {extra[0]})")
    _check_links(links)
    transforms = {k: _transform_value(k, v, columns) for k, v in transforms.items()}
    return {"family": family, "compare": compare, "links": links, "transforms": transforms,
            "ziformula": ziformula, "dispformula": dispformula}


def _autocorrelation_options(args, data) -> dict:
    """--time/--series/--coords/--autocorrelation-boot, checked against the data's columns."""
    time_col, series, coords = getattr(args, "time", None), getattr(args, "series", None), getattr(args, "coords", None)
    if series and not time_col:
        raise BadInput("--series needs --time (the time column of each series)")
    for option, col in (("--time", time_col), ("--series", series), *((("--coords", c) for c in coords or ()))):
        if col is not None and col not in data.columns:
            raise BadInput(f"{option} {col}: no such column (columns: {', '.join(map(str, list(data.columns)[:20]))})")
    for c in coords or ():
        import pandas as pd

        if not pd.api.types.is_numeric_dtype(data[c].dtype):
            raise BadInput(f"--coords {c}: the coordinate column must be numeric (dtype {data[c].dtype})")
    boot = getattr(args, "autocorrelation_boot", 0) or 0
    if boot < 0:
        raise BadInput(f"--autocorrelation-boot must be >= 0; got {boot}")
    if not (time_col or coords):
        return {}
    return {"time": time_col, "series": series, "coords": tuple(coords) if coords else None,
            "autocorrelation_boot": boot}


def _run(args, data, data_name: str, progress) -> int:
    from glmmdiag import report

    opts = _options(args, data.columns)
    check = report.run_check(data, args.formula, opts["family"], compare=opts["compare"], links=opts["links"],
                             transforms=opts["transforms"], ziformula=opts["ziformula"],
                             dispformula=opts["dispformula"], suggest=bool(getattr(args, "suggest", False)),
                             n_sim=args.n_sim, seed=args.seed, n_jobs=args.jobs,
                             simulate_re=None if args.simulate_re == "auto" else args.simulate_re,
                             alpha=args.alpha, data_name=data_name, progress=progress,
                             calibrate={"auto": "auto", "always": True, "never": False}[
                                 getattr(args, "calibrate", "auto")],
                             refit_budget=getattr(args, "refit_budget", None),
                             n_boot=getattr(args, "calibrate_boot", None),
                             **_autocorrelation_options(args, data))
    try:
        out = report.write_report(check, args.out, formats=tuple(args.format), progress=progress)
    except OSError as e:  # disk full, permissions, a path component that became a file, ...
        raise BadInput(f"cannot write the report to {args.out}: {e.strerror or e}"
                       + (f" ({e.filename})" if e.filename else "")) from None
    print(f"report: {out['html']}")
    print(f"results: {out['json']}")
    _print_verdicts(check)
    return 0


def _print_verdicts(check) -> None:
    """One line per model (label: verdict), its remedies indented, and with --suggest one line per
    fitted remedy (verdict, AIC and ΔAIC against the main model)."""
    from glmmdiag.remedies import SEP

    from glmmdiag.report import combined_verdict

    table = check.table
    for label, v in table["verdict"].items():
        print(f"{label}: {combined_verdict(check, label, v)}")
        cal = getattr(check, "calibration", {}).get(label)
        if cal:
            print(f"  p-values: {cal['p_values']}")
        if "remedies" in table.columns and table.loc[label, "remedies"]:
            for part in str(table.loc[label, "remedies"]).split(SEP):
                print(f"  remedy: {part}")
        _print_autocorrelation(check, label)
        for r in _autocorrelation_remedies(check, label):
            print(f"  remedy: {r}")
    if not check.settings.get("suggest"):
        return
    main = table.index[0]
    sug = check.suggestions
    if sug is None and not check.suggest_failed:
        if not check.structured:
            print(f"suggest: nothing to fit for {main} (no failed check with a remedy that is not already compared)")
        _print_structured(check)
        return
    print(f"suggest: remedies for {main} (AIC {table.loc[main, 'AIC_common']:.1f}), fitted and checked:")
    for label in ([] if sug is None else sug.index):
        row = sug.loc[label]
        status = "passes" if row["verdict"] == "no problems detected" else "still flagged"
        print(f"  {label} [{row['spec']}]: {status}: {row['verdict']} · AIC {row['AIC_common']:.1f} "
              f"(ΔAIC {row['delta_AIC']:+.1f} vs {main})")
    for spec, err in check.suggest_failed.items():
        print(f"  [{spec}]: could not be fitted: {err}")
    _print_structured(check)


def _autocorrelation_remedies(check, label) -> list:
    """The structured terms that remedy ``label``'s failed autocorrelation tests (``Remedy`` objects)."""
    from glmmdiag.remedies import autocorrelation_remedy, structured_term

    s = check.settings
    out = []
    for kind, t in check.autocorrelation.get(label, {}).items():
        if not (t.p_value is not None and t.p_value < s["alpha"]):
            continue
        planned = [row for row in check.structured if row["kind"] == kind]
        if planned:
            term = planned[0]["term"]
        elif kind == "temporal":
            term = structured_term("temporal", time=s["time"], series=s.get("series") or s["one_level_column"],
                                   equal_steps=s.get("equal_steps", True))
        else:
            term = structured_term("spatial", coords=s["coords"], group=s["one_level_column"])
        out.append(autocorrelation_remedy(kind, term, s["formula"]))
    return out


def _print_autocorrelation(check, label) -> None:
    from glmmdiag.report import autocorrelation_phrase

    alpha = check.settings["alpha"]
    for kind, t in check.autocorrelation.get(label, {}).items():
        if not (t.p_value is not None and t.p_value < alpha):  # failed ones are in the verdict line
            print(f"  {autocorrelation_phrase(kind, t, alpha)}")


def _print_structured(check) -> None:
    """With --suggest: each structured remedy (fitted), whether its autocorrelation test passes now."""
    if not check.structured:
        return
    main = check.table.index[0]
    print(f"suggest: structured models for {main}'s autocorrelation, fitted and checked:")
    for row in check.structured:
        if row.get("error"):
            print(f"  {row['formula']}: could not be fitted: {row['error']}")
            continue
        status = "passes" if row["passes"] else "still flagged"
        mode = row["simulate_re"] + " simulation" + (", rotated residuals" if row.get("rotation") else "")
        print(f"  {row['formula']}: {status}: {row['autocorrelation']}; {row['verdict']} · AIC {row['AIC']:.1f} "
              f"(ΔAIC {row['delta_AIC']:+.1f} vs {main}; {mode})")


def _check(args) -> int:
    progress = _progress(args)
    _check_formula(args.formula)
    _check_out(args.out)
    data = _read_data(args.data)
    return _run(args, data, Path(args.data).name, progress)


def _demo(args) -> int:
    from glmmdiag import datasets

    progress = _progress(args)
    _check_out(args.out)
    data = datasets.load("rust")
    args.formula = "severity ~ fungicide + (1 | block)"
    args.family = "beta"
    args.compare = ["gamma"]
    args.link = ["gamma=log"]
    args.transform = ["gamma=severity_pct"]
    args.calibrate = "never"  # the raw p-values, as the published DHARMa reference the demo is compared with
    print("glmmdiag demo: yellow-rust severity (12 fungicides x 4 blocks) -- Beta GLMM on the proportion vs "
          "Gamma GLMM (log link) on the percent scale", flush=True)
    print(f"  same as: glmmdiag check rust.csv --formula {args.formula!r} --family beta --compare gamma "
          f"--link gamma=log --transform gamma=severity_pct --n-sim {args.n_sim} --seed {args.seed} "
          f"--simulate-re {args.simulate_re} --out {args.out}", flush=True)
    rc = _run(args, data, "rust (glmmdiag.datasets)", progress)
    print(f"open {Path(args.out).resolve() / 'report.html'} in a browser")
    return rc


def _datasets(args) -> int:
    from glmmdiag import datasets

    for name in datasets.list():
        meta = datasets.info(name)
        print(f"{name:<14} {meta['rows'] or '':>6} rows  {meta['description']}")
    return 0


def _common(p: argparse.ArgumentParser, out_default: str | None):
    p.add_argument("--n-sim", type=_n_sim, default=250, help="simulations per model, at least 2 (default 250)")
    p.add_argument("--seed", type=_seed, default=1, help="random seed, a non-negative integer (default 1)")
    p.add_argument("--jobs", type=_jobs, default=1, help="parallel workers, -1 = all cores (default 1)")
    p.add_argument("--alpha", type=_alpha, default=0.05,
                   help="significance level of the verdicts, between 0 and 1 (default 0.05)")
    p.add_argument("--format", action="append", choices=("png", "svg", "pdf"), default=None,
                   help="figure formats besides the PNG (repeatable; default: png and svg)")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    if out_default is None:
        p.add_argument("--out", type=_out_dir, required=True, help="output directory (created)")
    else:
        p.add_argument("--out", type=_out_dir, default=out_default, help=f"output directory (default {out_default})")


def build_parser() -> argparse.ArgumentParser:
    from glmmdiag import __version__

    parser = _Parser(
        prog="glmmdiag", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generalized linear mixed models with simulation-based (DHARMa-style) residual diagnostics.",
        epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"glmmdiag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{check,demo,datasets}")
    pc = sub.add_parser("check", help="fit a model to a CSV file, simulate residuals, test, draw, write a report",
                        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
                        description="Fit FORMULA with FAMILY (and each --compare family), simulate scaled "
                                    "residuals, run the residual tests, and write OUT/report.html (self-"
                                    "contained), OUT/results.json and OUT/figures/.")
    pc.add_argument("data", help="CSV file (a .tsv/.tab file is read tab-separated)")
    pc.add_argument("--formula", required=True, help='lme4-style formula, e.g. "y ~ x + (1 | g)"')
    pc.add_argument("--family", required=True, help=f"response family: {', '.join(FAMILIES)}")
    pc.add_argument("--link", action="append", metavar="[FAMILY=]LINK",
                    help="link of the main family, or FAMILY=LINK for a compared one (repeatable)")
    pc.add_argument("--compare", action="append", metavar="FAMILY|SPEC",
                    help='also fit this family, or a model "family; ziformula=~1; dispformula=~x; link=log; '
                         'olre=yes; label=NAME" (repeatable)')
    pc.add_argument("--ziformula", metavar="FORMULA", help='zero model of the main model, e.g. "~1" '
                    "(a hurdle with a truncated_* family)")
    pc.add_argument("--dispformula", metavar="FORMULA", help='dispersion model of the main model, e.g. "~ x"')
    pc.add_argument("--suggest", action="store_true",
                    help="also fit the models the remedy table proposes for the main model's failed checks "
                         "and check them the same way")
    pc.add_argument("--transform", action="append", metavar="FAMILY=SCALE|COLUMN",
                    help="fit FAMILY to SCALE x response or to COLUMN (a multiple of the response), e.g. gamma=100; "
                         "AICs are put on the response's scale")
    pc.add_argument("--simulate-re", choices=("auto", "conditional", "unconditional"), default="auto",
                    help="simulate given the fitted random effects or with new ones; auto (default): "
                         "unconditional (with rotated residuals) for models with ar1/ou/exp/... terms, "
                         "conditional otherwise")
    pc.add_argument("--time", metavar="COL", help="run the temporal autocorrelation test (Durbin-Watson) on "
                    "residuals ordered by COL; with --suggest a failure is remedied by ar1(COL + 0 | SERIES)")
    pc.add_argument("--series", metavar="COL", help="the series of --time (the test is pooled within series)")
    pc.add_argument("--coords", nargs=2, metavar=("XCOL", "YCOL"), help="run the spatial autocorrelation test "
                    "(Moran's I); with --suggest a failure is remedied by exp(numFactor(XCOL, YCOL) + 0 | field)")
    pc.add_argument("--autocorrelation-boot", type=_integer, default=0, metavar="B",
                    help="calibrate the autocorrelation tests of models with a structured term by B bootstrap "
                         "refits (e.g. 39; default 0: uncalibrated, which is not exact for such models)")
    pc.add_argument("--calibrate", choices=("auto", "always", "never"), default="auto",
                    help="parametric-bootstrap calibrated p-values for the residual tests: auto (default) when one "
                         "timed refit says --calibrate-boot refits fit in --refit-budget seconds per model")
    pc.add_argument("--refit-budget", type=_budget, default=10.0, metavar="SECONDS",
                    help="CPU seconds per model the automatic calibration may spend (default 10)")
    pc.add_argument("--calibrate-boot", type=_positive, default=100, metavar="B",
                    help="bootstrap refits of the calibrated p-values (default 100)")
    _common(pc, None)
    pdm = sub.add_parser("demo", help="Beta vs Gamma on the shipped yellow-rust data; writes a report")
    pdm.add_argument("--simulate-re", choices=("conditional", "unconditional"), default="unconditional",
                     help="default unconditional, as DHARMa 0.5 with glmmTMB 1.1.5 (the published reference)")
    _common(pdm, "glmmdiag-demo")
    sub.add_parser("datasets", help="list the shipped data sets")
    return parser


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)  # a usage error: one line on stderr, code 2
    except SystemExit as e:  # also --help and --version (code 0)
        return 0 if e.code is None else e.code if isinstance(e.code, int) else 2
    if args.command is None:
        parser.print_help()
        print("glmmdiag: error: a command is required: check, demo or datasets", file=sys.stderr)
        return 2
    if getattr(args, "format", None) is None and args.command in ("check", "demo"):
        args.format = ["png", "svg"]
    if args.command in ("check", "demo"):
        os.environ.setdefault("MPLBACKEND", "Agg")
    command = {"check": _check, "demo": _demo, "datasets": _datasets}[args.command]
    with warnings.catch_warnings(record=True) as caught:
        try:
            rc = command(args)
        except KeyboardInterrupt:
            print("glmmdiag: interrupted", file=sys.stderr)
            return 130
        except Exception as e:
            if is_bad_input(e):  # the one line is the whole message: warnings before it are dropped
                print(f"glmmdiag: error: {_one_line(e)}", file=sys.stderr)
                return 2
            _print_warnings(caught)
            traceback.print_exc()
            print("glmmdiag: unexpected failure (a bug? please report it with the traceback above)",
                  file=sys.stderr)
            return 1
    _print_warnings(caught)
    return rc


if __name__ == "__main__":
    sys.exit(main())
