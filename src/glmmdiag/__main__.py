"""Command line: ``python -m glmmdiag demo`` (the full CLI grows with the diagnostics)."""
from __future__ import annotations

import argparse
import sys
import time


def _demo(args) -> int:
    import glmmdiag
    from glmmdiag import datasets

    df = datasets.load("Contraception")
    formula = "use ~ age + I(age^2) + urban + livch + (1 | district)"
    print(f"glmmdiag {glmmdiag.__version__} demo: Bangladesh Contraception survey, {len(df)} women")
    print(f">>> glmmdiag.glmm({formula!r}, data, family='binomial')\n")
    t0 = time.perf_counter()
    fit = glmmdiag.glmm(formula, df, family="binomial")
    dt = time.perf_counter() - t0
    print(fit.summary())
    print(f"\nfitted in {dt * 1000:.0f} ms; random-effect modes of the first districts:")
    print(fit.ranef["district"].head().to_string())
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="glmmdiag", description="GLMMs with simulation-based diagnostics")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="fit the shipped Contraception model and print its summary")
    sub.add_parser("datasets", help="list the shipped data sets")
    args = parser.parse_args(argv)
    if args.version:
        import glmmdiag

        print(glmmdiag.__version__)
        return 0
    if args.command == "demo":
        return _demo(args)
    if args.command == "datasets":
        from glmmdiag.datasets import list_datasets

        print("\n".join(list_datasets()))
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
