"""Run many fuzz cases and write a report of every non-clean outcome, with minimal reproducers.

    python tests/fuzz_report.py --n 2000 --jobs 2 --out /tmp/fuzz_report.md

For each failure category (stage, exception type, innermost glmmdiag frame, message head) the
report gives the number of cases and their seeds, the message, the glmmdiag frames of the
traceback, and a reproducer shrunk from the smallest case of the category: unused columns
dropped, then rows deleted while the case still fails the same way (same stage, exception type and
innermost glmmdiag frame). Small data are written into the snippet; larger data go to
``<workdir>/case_<seed>.pkl`` (and ``.csv``). Plain ``ValueError``/``KeyError`` (not yet
``GlmmdiagError``) get their own section, as do foreign warnings (numpy/scipy RuntimeWarnings ...),
plain ``UserWarning`` messages, clear errors and slow fits. Every outcome is also written to
``<workdir>/outcomes.jsonl``.

Exit status: 0 when every case is clean under the chosen rule (strict unless ``--lenient``), 1
otherwise.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_cases as fc  # noqa: E402

_OPTS: dict = {}


def _init(opts):
    _OPTS.update(opts)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _run(seed: int) -> fc.Outcome:
    return fc.run_case(seed, timeout=_OPTS["timeout"], post=True, strict_warnings=_OPTS["strict_warnings"])


# ------------------------------------------------------------------------------------ shrinking
def _same(o: fc.Outcome, target: fc.Outcome) -> bool:
    if o.kind != target.kind or o.stage != target.stage or o.exc_type != target.exc_type:
        return False
    if target.exc_type in ("Timeout", "ForeignWarning"):
        return True
    if target.exc_type == "NonFinite":  # same quantity non-finite
        return (o.message or "").split()[:3] == (target.message or "").split()[:3]
    return o.signature == target.signature


def shrink(case: fc.FuzzCase, target: fc.Outcome, *, timeout: float, budget: int) -> tuple[fc.FuzzCase, int]:
    """A smaller case failing like ``target``: unused columns dropped, rows deleted (ddmin-style)."""
    attempts = 0
    pruned = case.pruned()
    o = fc.run_case(pruned, timeout=timeout)
    attempts += 1
    if _same(o, target):
        case = pruned
    if target.exc_type == "Timeout":
        return case, attempts  # every attempt could cost the whole time limit
    rows = np.arange(len(case.data))
    chunk = max(1, len(rows) // 2)
    while attempts < budget:
        i, progressed = 0, False
        while i < len(rows) and attempts < budget:
            cand = np.delete(rows, np.arange(i, min(i + chunk, len(rows))))
            if len(cand) == 0:
                i += chunk
                continue
            o = fc.run_case(case.subset_rows(cand), timeout=timeout)
            attempts += 1
            if _same(o, target):
                rows, progressed = cand, True
            else:
                i += chunk
        if chunk == 1 and not progressed:
            break
        chunk = max(1, chunk // 2)
    return case.subset_rows(rows), attempts


# --------------------------------------------------------------------------------- reproducers
def _value_literal(v) -> str:
    if v is None:
        return "None"
    if isinstance(v, (bool, np.bool_)):
        return repr(bool(v))
    if isinstance(v, (int, np.integer)):
        return repr(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if np.isnan(v):
            return "nan"
        if np.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return repr(v)
    if pd.isna(v):
        return "None"
    return repr(v)


def _list_literal(values) -> str:
    return "[" + ", ".join(_value_literal(v) for v in values) + "]"


def frame_literal(df: pd.DataFrame) -> str:
    """Python source building ``df`` (dtypes kept: Categorical with its categories, bool, int, float)."""
    lines = ["data = pd.DataFrame({"]
    for col in df.columns:
        s = df[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            vals = [None if pd.isna(v) else v for v in s.astype(object)]
            lines.append(f"    {col!r}: pd.Categorical({_list_literal(vals)}, "
                         f"categories={_list_literal(list(s.cat.categories))}),")
        elif s.dtype == object:
            lines.append(f"    {col!r}: np.array({_list_literal(list(s))}, dtype=object),")
        elif pd.api.types.is_string_dtype(s.dtype):
            lines.append(f"    {col!r}: pd.array({_list_literal(list(s))}, dtype={str(s.dtype)!r}),")
        elif pd.api.types.is_bool_dtype(s.dtype):
            lines.append(f"    {col!r}: {_list_literal(list(s))},")
        elif pd.api.types.is_integer_dtype(s.dtype):
            lines.append(f"    {col!r}: np.array({_list_literal(list(s))}, dtype=np.int64),")
        elif pd.api.types.is_float_dtype(s.dtype):
            lines.append(f"    {col!r}: np.array({_list_literal(list(s))}, dtype=float),")
        else:
            lines.append(f"    {col!r}: pd.array({_list_literal(list(s))}, dtype={str(s.dtype)!r}),")
    idx = df.index
    default = isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1
    lines.append("}" + ("" if default else f", index={_list_literal(list(idx))}") + ")")
    return "\n".join(lines)


_POST_CODE = {
    "summary": "fit.summary()",
    "predict": "fit.predict(); fit.predict(type='response')",
    "simulate": "fit.simulate(5, seed=1)",
    "simulate_residuals": "res = glmmdiag.simulate_residuals(fit, n_sim=20, seed=1)",
    "residual_tests": "res = glmmdiag.simulate_residuals(fit, n_sim=20, seed=1)\nglmmdiag.residual_tests(res)",
    "check": "print(fit.fixef, fit.se, fit.loglik, fit.theta, fit.dispersion, fit.warnings)",
}


def reproducer(case: fc.FuzzCase, stage: str, workdir: Path, inline_rows: int = 60) -> str:
    """A self-contained snippet reproducing ``case`` (data inline, or from a pickle in workdir)."""
    out = ["import numpy as np, pandas as pd, glmmdiag", "nan, inf = float('nan'), float('inf')"]
    if len(case.data) <= inline_rows:
        out.append(frame_literal(case.data))
    else:
        workdir.mkdir(parents=True, exist_ok=True)
        pkl = workdir / f"case_{case.seed}.pkl"
        case.data.to_pickle(pkl)
        case.data.to_csv(workdir / f"case_{case.seed}.csv")
        out.append(f"data = pd.read_pickle({str(pkl)!r})  # {len(case.data)} rows; or make_case({case.seed}) "
                   f"from tests/fuzz_cases.py")
    args = [repr(case.formula), "data", f"family={case.family!r}"]
    if case.link is not None:
        args.append(f"link={case.link!r}")
    for name in ("weights", "offset"):
        v = getattr(case, name)
        if isinstance(v, str):
            args.append(f"{name}={v!r}")
        elif v is not None:
            args.append(f"{name}=np.array({_list_literal(list(v))})")
    if case.reml:
        args.append("reml=True")
    if case.n_agq != 1:
        args.append(f"n_agq={case.n_agq}")
    if case.df is not None:
        args.append(f"df={case.df!r}")
    for name in ("ziformula", "dispformula"):
        if getattr(case, name, None) is not None:
            args.append(f"{name}={getattr(case, name)!r}")
    out.append(f"fit = glmmdiag.glmm({', '.join(args)})")
    if stage in _POST_CODE:
        out.append(_POST_CODE[stage])
    return "\n".join(out)


# ------------------------------------------------------------------------------------- reporting
def _tail(tb: str | None, lines: int = 14) -> str:
    if not tb:
        return "(no traceback)"
    return "\n".join(tb.rstrip().splitlines()[-lines:])


def _write_report(path: Path, outcomes, args, accepted, shrunk, elapsed):
    counts = fc.summarize(outcomes)
    bad = [o for o in outcomes if o.kind not in accepted]
    md = ["# glmmdiag fuzz report", ""]
    md.append(f"Seeds {args.seed0}..{args.seed0 + args.n - 1} ({args.n} cases), per-fit time limit "
              f"{args.timeout:g} s, {args.jobs} process(es), {elapsed:.0f} s wall; rule: "
              f"{'lenient' if args.lenient else 'strict'} (accepted: {', '.join(accepted)}).")
    md += ["", "## Counts", "", "| | |", "|---|---|"]
    md += [f"| {k} | {v} |" for k, v in counts.items()]
    md += ["", "Kinds: ok = finite fit, no warning; warned = finite fit with a glmmdiag warning; clear_error = "
           "GlmmdiagError; plain_error = one-line ValueError/KeyError raised in glmmdiag's code (not yet a "
           "GlmmdiagError); failure = any other exception, a time-out, non-finite estimates, or a raw "
           "exception from summary/predict/simulate/simulate_residuals/residual_tests.", ""]

    groups: dict[str, list] = defaultdict(list)
    for o in bad:
        groups[o.category].append(o)
    order = sorted(groups, key=lambda k: (groups[k][0].kind != "failure", -len(groups[k]), k))
    md += [f"## Non-clean outcomes: {len(bad)} cases in {len(groups)} categories", ""]
    md += ["| # | kind | cases | stage | exception | innermost glmmdiag frame | message head |",
           "|---|---|---|---|---|---|---|"]
    for i, k in enumerate(order, 1):
        o = groups[k][0]
        where = o.frames[-1] if o.frames else (o.last_frame or "")
        md.append(f"| {i} | {o.kind} | {len(groups[k])} | {o.stage} | {o.exc_type} | `{where}` | "
                  f"{fc.message_head(o.message, 80).replace('|', '/')} |")
    md.append("")
    for i, k in enumerate(order, 1):
        os_ = groups[k]
        o = os_[0]
        md.append(f"### {i}. {o.kind}: {o.stage} / {o.exc_type} ({len(os_)} cases)")
        md.append("")
        md.append(f"- seeds: {', '.join(str(x.seed) for x in os_[:15])}{' ...' if len(os_) > 15 else ''}")
        fams = Counter(x.description.split()[2].split("(")[0] for x in os_)
        md.append(f"- families: {dict(sorted(fams.items()))}")
        md.append(f"- message: `{(o.message or '').strip().splitlines()[0][:300] if (o.message or '').strip() else ''}`")
        if o.frames:
            md.append("- glmmdiag frames (innermost last): " + " → ".join(f"`{f}`" for f in o.frames[-4:]))
        if o.last_frame and (not o.frames or o.last_frame != o.frames[-1]):
            md.append(f"- raised in: `{o.last_frame}`")
        rep = shrunk.get(k)
        if rep is not None:
            case, n0, attempts, outcome = rep
            md.append(f"- example case: {case.describe()} (shrunk from {n0} rows in {attempts} fits)")
            md += ["", "```python", reproducer(case, o.stage, Path(args.workdir)), "```", ""]
            tb = outcome.traceback or o.traceback
            md += ["Traceback (last lines):", "", "```", _tail(tb), "```", ""]
        else:
            md += ["", "```", _tail(o.traceback), "```", ""]

    def _foreign_key(c, h):
        msg, _, loc = h.rpartition(" [")
        return c, f"{fc.message_head(msg, 90)} [{loc}"

    foreign = Counter(_foreign_key(c, h) for o in outcomes
                      for c, h in {(c, h) for c, h, origin in o.warnings if origin == "foreign"})
    plain = Counter(fc.message_head(h, 100) for o in outcomes for c, h, origin in set(o.warnings)
                    if origin == "plain_user")
    own = Counter(c for o in outcomes for c, h, origin in set(o.warnings) if origin == "glmmdiag")
    md += ["## Warnings", "", "Number of cases in which each warning appeared.", "",
           "GlmmdiagWarning subclasses: " + (", ".join(f"{c} {v}" for c, v in own.most_common()) or "none"), ""]
    md += ["### Foreign warnings (not glmmdiag's; location of the warning)", ""]
    md += [f"- {v}x {c}: {h}" for (c, h), v in foreign.most_common()] or ["- none"]
    md += ["", "### Plain UserWarning (not yet a GlmmdiagWarning subclass)", ""]
    md += [f"- {v}x {h}" for h, v in plain.most_common()] or ["- none"]
    clear = Counter(f"{o.exc_type}: {fc.message_head(o.message, 100)}" for o in outcomes if o.kind == "clear_error")
    md += ["", "## Clear errors (GlmmdiagError), by message head", ""]
    md += [f"- {v}x {h}" for h, v in clear.most_common()] or ["- none"]
    for o in outcomes:  # outcomes.jsonl of older runs has wall time only
        o.fit_cpu = o.fit_cpu or o.fit_seconds
    slow = sorted((o for o in outcomes if o.fit_cpu > 3.0 and o.exc_type != "Timeout"), key=lambda o: -o.fit_cpu)
    md += ["", "## Slow fits (> 3 s CPU, not timed out)", ""]
    md += [f"- {o.fit_cpu:.1f} s CPU ({o.fit_seconds:.1f} s wall) [{o.kind}] {o.description}"
           for o in slow[:30]] or ["- none"]
    path.write_text("\n".join(md) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="number of cases (default 1000)")
    p.add_argument("--seed0", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per fit (default 10)")
    p.add_argument("--out", default="/tmp/fuzz_report.md", help="markdown report path")
    p.add_argument("--workdir", default="/tmp/glmmdiag_fuzz", help="pickles/CSVs of large reproducers, outcomes.jsonl")
    p.add_argument("--lenient", action="store_true", help="accept plain one-line ValueError/KeyError from glmmdiag")
    p.add_argument("--strict-warnings", action="store_true", help="foreign warnings are failures")
    p.add_argument("--from-jsonl", default=None,
                   help="re-render (and re-shrink) from a previous run's outcomes.jsonl instead of running cases")
    p.add_argument("--shrink-budget", type=int, default=60, help="fits per category spent shrinking (0: none)")
    args = p.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    opts = {"timeout": args.timeout, "strict_warnings": args.strict_warnings}
    seeds = list(range(args.seed0, args.seed0 + args.n))
    t0 = time.perf_counter()
    outcomes: list[fc.Outcome] = []
    if args.from_jsonl:
        names = {f.name for f in dataclasses.fields(fc.Outcome)}
        with open(args.from_jsonl, encoding="utf-8") as fh:
            for line in fh:
                d = {k: v for k, v in json.loads(line).items() if k in names}
                d["warnings"] = [tuple(w) for w in d.get("warnings", [])]
                outcomes.append(fc.Outcome(**d))
        seeds = sorted(o.seed for o in outcomes)
        args.seed0, args.n = seeds[0], len(seeds)
    elif args.jobs > 1:
        ctx = mp.get_context("fork")
        with ctx.Pool(args.jobs, initializer=_init, initargs=(opts,), maxtasksperchild=250) as pool:
            for k, o in enumerate(pool.imap_unordered(_run, seeds, chunksize=1), 1):
                outcomes.append(o)
                if k % 100 == 0:
                    print(f"{k}/{len(seeds)} cases, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    else:
        _init(opts)
        for k, s in enumerate(seeds, 1):
            outcomes.append(_run(s))
            if k % 100 == 0:
                print(f"{k}/{len(seeds)} cases, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    outcomes.sort(key=lambda o: o.seed)

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / ("outcomes.rerender.jsonl" if args.from_jsonl else "outcomes.jsonl"), "w",
              encoding="utf-8") as fh:
        for o in outcomes:
            fh.write(json.dumps(dataclasses.asdict(o)) + "\n")

    accepted = fc.ACCEPTED_LENIENT if args.lenient else fc.ACCEPTED_STRICT
    bad = [o for o in outcomes if o.kind not in accepted]
    groups: dict[str, list] = defaultdict(list)
    for o in bad:
        groups[o.category].append(o)
    shrunk = {}
    _init(opts)
    for k, os_ in groups.items():
        smallest = min(os_, key=lambda o: (o.exc_type == "Timeout", int(o.description.split()[1][2:])))
        case = fc.make_case(smallest.seed)
        if args.shrink_budget > 0:
            small, attempts = shrink(case, smallest, timeout=args.timeout, budget=args.shrink_budget)
        else:
            small, attempts = case, 0
        final = fc.run_case(small, timeout=args.timeout) if attempts else smallest
        shrunk[k] = (small, len(case.data), attempts, final)
    elapsed = time.perf_counter() - t0
    _write_report(Path(args.out), outcomes, args, accepted, shrunk, elapsed)
    counts = fc.summarize(outcomes)
    print(json.dumps(counts))
    print(f"{len(bad)} non-clean cases in {len(groups)} categories; report: {args.out}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
