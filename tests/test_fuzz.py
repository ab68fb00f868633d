"""Bounded, seeded fuzz test: random valid-but-odd models over every family never leak a raw error.

Every case of ``tests/fuzz_cases.py`` (random data, formula, family, link, weights, offsets, REML,
n_agq, ziformula, dispformula) must end in one of:

* a fit with finite fixed effects, log-likelihood, theta and dispersion (non-finite standard errors
  only together with a warning), whose ``summary``/``predict``/``simulate``/``simulate_residuals``/
  ``residual_tests`` raise nothing but ``GlmmdiagError``;
* the same with a glmmdiag warning;
* a ``glmmdiag.errors.GlmmdiagError`` from ``glmm``;

within a per-case time limit (CPU time via SIGPROF, 3x as wall time via SIGALRM, in the worker
process). Anything else fails the test: other
exception types, plain ``ValueError``/``KeyError`` (counted as "plain_error"), time-outs and
non-finite estimates.

Settings (environment variables):

``GLMMDIAG_FUZZ_N``        number of cases (default 200; ``make fuzz`` uses more)
``GLMMDIAG_FUZZ_SEED0``    first seed (default 0); cases are seeds SEED0 .. SEED0+N-1
``GLMMDIAG_FUZZ_CHUNK``    cases per test item (default 25; items spread over xdist workers)
``GLMMDIAG_FUZZ_TIMEOUT``  CPU seconds per fit, and again for the post-fit calls (default 10)
``GLMMDIAG_FUZZ_LENIENT``  1: accept plain one-line ValueError/KeyError raised by glmmdiag itself
``GLMMDIAG_FUZZ_STRICT_WARNINGS``  1: a foreign warning (numpy RuntimeWarning, ...) is a failure

Reproduce one case with ``python tests/fuzz_cases.py SEED``; ``python tests/fuzz_report.py`` writes
a grouped report with minimal reproducers.
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_cases as fc  # noqa: E402  (a plain module next to this file, shared with fuzz_report.py)

N_CASES = int(os.environ.get("GLMMDIAG_FUZZ_N", "200"))
SEED0 = int(os.environ.get("GLMMDIAG_FUZZ_SEED0", "0"))
CHUNK = max(1, int(os.environ.get("GLMMDIAG_FUZZ_CHUNK", "25")))
TIMEOUT = float(os.environ.get("GLMMDIAG_FUZZ_TIMEOUT", "10"))
LENIENT = os.environ.get("GLMMDIAG_FUZZ_LENIENT", "0") not in ("", "0")
STRICT_WARNINGS = os.environ.get("GLMMDIAG_FUZZ_STRICT_WARNINGS", "0") not in ("", "0")

_CHUNKS = [(s, min(s + CHUNK, SEED0 + N_CASES)) for s in range(SEED0, SEED0 + N_CASES, CHUNK)]


def _failure_line(o: fc.Outcome) -> str:
    where = o.frames[-1] if o.frames else (o.last_frame or "")
    msg = (o.message or "").strip().replace("\n", " | ")[:200]
    return f"  [{o.kind}] {o.description}\n      {o.stage}: {o.exc_type}: {msg}\n      at {where}"


@pytest.mark.parametrize("lo,hi", _CHUNKS, ids=[f"seeds{lo}-{hi - 1}" for lo, hi in _CHUNKS])
def test_fuzz_fits_fail_cleanly(lo, hi):
    accepted = fc.ACCEPTED_LENIENT if LENIENT else fc.ACCEPTED_STRICT
    outcomes = [fc.run_case(s, timeout=TIMEOUT, post=True, strict_warnings=STRICT_WARNINGS)
                for s in range(lo, hi)]
    counts = fc.summarize(outcomes)
    print(f"fuzz seeds {lo}..{hi - 1}: {counts}")
    bad = [o for o in outcomes if o.kind not in accepted]
    if bad:
        by_cat = Counter(o.category for o in bad)
        lines = [f"{len(bad)} of {len(outcomes)} fuzz cases ended badly; counts: {counts}",
                 "categories: " + "; ".join(f"{v}x {k}" for k, v in by_cat.most_common()),
                 "reproduce one with: python tests/fuzz_cases.py SEED"]
        lines += [_failure_line(o) for o in bad]
        pytest.fail("\n".join(lines), pytrace=False)


# -------------------------------------------------------------------------- the generator itself
@pytest.mark.parametrize("seed", [0, 7, 123, 4999])
def test_cases_are_deterministic(seed):
    a, b = fc.make_case(seed), fc.make_case(seed)
    assert (a.formula, a.family, a.link, a.reml, a.n_agq, a.df, a.tags, a.ziformula, a.dispformula) == (
        b.formula, b.family, b.link, b.reml, b.n_agq, b.df, b.tags, b.ziformula, b.dispformula)
    pd.testing.assert_frame_equal(a.data, b.data)
    for u, v in ((a.weights, b.weights), (a.offset, b.offset)):
        if isinstance(u, np.ndarray):
            np.testing.assert_array_equal(u, v)
        else:
            assert u == v


def test_cases_cover_the_model_space():
    """The default seeds exercise every family and the odd features the fuzz test is about."""
    cases = [fc.make_case(s) for s in range(SEED0, SEED0 + max(N_CASES, 200))]
    fams = Counter(c.family for c in cases)
    assert set(fams) == set(fc.FAMILIES), fams
    text = " ".join(c.formula for c in cases)
    for piece in ("(1|a/b)", "(x||g)", "(x|g)", "offset(log(t))", "I(x^2)", "log(z)", "scale(x)",
                  "0 + ", "cbind(", "(1|c)"):
        assert piece in text.replace(" | ", "|").replace(" || ", "||"), piece
    tags = " ".join(" ".join(c.tags) for c in cases)
    for tag in ("degenerate:", "empty cells", "x2 == x", "binomial:prop", "constant"):
        assert tag in tags, tag
    assert any(c.n_agq > 1 for c in cases) and any(c.reml for c in cases)
    assert any(len(c.data) <= 3 for c in cases) and any(len(c.data) > 300 for c in cases)
    assert any(c.weights is not None for c in cases) and any(c.offset is not None for c in cases)
    # the submodels: zero-inflation (and hurdles), refused zero-inflation, dispersion models
    zi = [c for c in cases if c.ziformula not in (None, "~0")]
    assert {c.family for c in zi} >= {"poisson", "gamma", "tweedie", "betabinomial", "truncated_nbinom2"}, zi
    assert any(c.ziformula is not None and c.family in fc.ZI_REFUSED for c in cases)
    assert any(c.dispformula not in (None, "~1", "~0") and c.family == "t" for c in cases)
    assert any(c.dispformula == "~0" for c in cases) and any(c.ziformula == "~0" for c in cases)
