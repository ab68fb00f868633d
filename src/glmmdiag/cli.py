"""The ``glmmdiag`` command line (stdlib argparse): ``check``, ``demo``, ``datasets``.

Exit codes: 0 done, 2 bad input (a one-line reason on stderr, no traceback), 1 unexpected failure
(the traceback, for a bug report). Progress goes to stderr when it is a terminal (not with --quiet).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

EXAMPLES = """\
examples:
  glmmdiag demo                                  # Beta vs Gamma on the shipped yellow-rust trial
  glmmdiag check data.csv --formula "y ~ trt + (1 | block)" --family beta --out report/
  glmmdiag check rust.csv --formula "severity ~ fungicide + (1 | block)" --family beta \\
      --compare gamma --transform gamma=100 --link gamma=log --n-sim 1000 --seed 1 --jobs -1 --out rust/
  glmmdiag datasets                              # the shipped data sets
"""

FAMILIES = ("gaussian", "binomial", "poisson", "gamma", "beta", "nbinom1", "nbinom2", "t")


class BadInput(Exception):
    """A user error: reported in one line, exit code 2."""


class _Progress:
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.t0:6.1f} s] {msg}", file=sys.stderr, flush=True)


def _progress(args) -> _Progress:
    return _Progress(not args.quiet and sys.stderr.isatty())


def _pairs(values, what: str, main_family: str | None = None) -> dict:
    """["gamma=log", "logit"] -> {"gamma": "log", main_family: "logit"}."""
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
        out[k] = val
    return out


def _transform_value(v: str):
    try:
        return float(v)
    except ValueError:
        return v  # a column name


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


def _one_line(e: BaseException) -> str:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    msg = " ".join(str(msg).split())
    return msg or type(e).__name__


def _run(args, data, data_name: str, progress) -> int:
    from glmmdiag import report

    links = _pairs(args.link, "link", args.family)
    transforms = {k: _transform_value(v) for k, v in _pairs(args.transform, "transform").items()}
    compare = [c for c in (args.compare or [])]
    known = {args.family, *compare}
    for name, d in (("link", links), ("transform", transforms)):
        extra = sorted(set(d) - known)
        if extra:
            raise BadInput(f"--{name} names a family that is not fitted: {', '.join(extra)}")
    if args.n_sim < 2:
        raise BadInput(f"--n-sim must be at least 2; got {args.n_sim}")
    try:
        check = report.run_check(data, args.formula, args.family, compare=compare, links=links,
                                 transforms=transforms, n_sim=args.n_sim, seed=args.seed, n_jobs=args.jobs,
                                 simulate_re=args.simulate_re, alpha=args.alpha, data_name=data_name,
                                 progress=progress)
    except (ValueError, KeyError, TypeError) as e:
        # model specification and data problems (bad formula, unknown column, response outside
        # the family's support, ...): glmm and compare_families name the problem and the fix
        raise BadInput(_one_line(e)) from e
    out = report.write_report(check, args.out, formats=tuple(args.format), progress=progress)
    print(f"report: {out['html']}")
    print(f"results: {out['json']}")
    for label, v in check.table["verdict"].items():
        print(f"{label}: {v}")
    return 0


def _check(args) -> int:
    progress = _progress(args)
    data = _read_data(args.data)
    if args.formula is None or "~" not in args.formula:
        raise BadInput(f"--formula must be a model formula 'y ~ ...'; got {args.formula!r}")
    return _run(args, data, Path(args.data).name, progress)


def _demo(args) -> int:
    from glmmdiag import datasets

    progress = _progress(args)
    data = datasets.load("rust")
    args.formula = "severity ~ fungicide + (1 | block)"
    args.family = "beta"
    args.compare = ["gamma"]
    args.link = ["gamma=log"]
    args.transform = ["gamma=severity_pct"]
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
    p.add_argument("--n-sim", type=int, default=250, help="simulations per model (default 250)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--jobs", type=int, default=1, help="parallel workers, -1 = all cores (default 1)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level of the verdicts (default 0.05)")
    p.add_argument("--format", action="append", choices=("png", "svg", "pdf"), default=None,
                   help="figure formats besides the PNG (repeatable; default: png and svg)")
    p.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    if out_default is None:
        p.add_argument("--out", required=True, help="output directory (created)")
    else:
        p.add_argument("--out", default=out_default, help=f"output directory (default {out_default})")


def build_parser() -> argparse.ArgumentParser:
    from glmmdiag import __version__

    parser = argparse.ArgumentParser(
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
    pc.add_argument("--compare", action="append", metavar="FAMILY", help="also fit this family (repeatable)")
    pc.add_argument("--transform", action="append", metavar="FAMILY=SCALE|COLUMN",
                    help="fit FAMILY to SCALE x response or to COLUMN (a multiple of the response), e.g. gamma=100; "
                         "AICs are put on the response's scale")
    pc.add_argument("--simulate-re", choices=("conditional", "unconditional"), default="conditional",
                    help="simulate given the fitted random effects (default) or with new ones")
    _common(pc, None)
    pdm = sub.add_parser("demo", help="Beta vs Gamma on the shipped yellow-rust data; writes a report")
    pdm.add_argument("--simulate-re", choices=("conditional", "unconditional"), default="unconditional",
                     help="default unconditional, as DHARMa 0.5 with glmmTMB 1.1.5 (the published reference)")
    _common(pdm, "glmmdiag-demo")
    sub.add_parser("datasets", help="list the shipped data sets")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits 2 on a bad option, with a usage line
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "format", None) is None and args.command in ("check", "demo"):
        args.format = ["png", "svg"]
    if args.command in ("check", "demo"):
        os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        return {"check": _check, "demo": _demo, "datasets": _datasets}[args.command](args)
    except BadInput as e:
        print(f"glmmdiag: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("glmmdiag: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print("glmmdiag: unexpected failure (a bug? please report it with the traceback above)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
