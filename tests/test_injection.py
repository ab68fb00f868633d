"""Formulas are data, never code: a catalogue of injection vectors, each refused before anything
is evaluated -- through the API (FormulaError, or ColumnError for a name that is only a missing
column), the command line in-process (exit 2, one line on stderr, no traceback) and, for a few,
a real ``python -m glmmdiag`` subprocess. Every test runs in tmp_path, where the payloads try to
create files; none may appear."""
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import glmmdiag
from glmmdiag import cli
from glmmdiag.errors import ColumnError, FormulaError, GlmmdiagError

OS = "__import__('os').system('touch pwned')"
OPEN = "open('pwned', 'w')"

# (id, formula, family, expected error)
VECTORS = [
    # the examples
    ("fixed-import", f"cnt ~ x + I({OS}) + (1|g)", "poisson", FormulaError),
    ("bar-lhs-import", f"cnt ~ x + (1 + I({OS}) | g)", "poisson", FormulaError),
    ("offset-np-save", "cnt ~ x + offset(np.save('pwned', 1) or 0*x) + (1|g)", "poisson", FormulaError),
    ("classic-escape-c", "cnt ~ x + I(c.__class__.__base__.__subclasses__()) + (1|g)", "poisson", FormulaError),
    ("classic-escape-tuple", "cnt ~ x + I(().__class__.__base__.__subclasses__()) + (1|g)", "poisson", FormulaError),
    # every position
    ("response", f"I({OS}) ~ x + (1|g)", "poisson", FormulaError),
    ("response-attr", "log(cnt).__class__ ~ x + (1|g)", "poisson", FormulaError),
    ("cbind-first", f"cbind({OPEN}.write('1'), n - s) ~ x + (1|g)", "binomial", FormulaError),
    ("cbind-second", f"cbind(s, n - s + eval(\"{OS}\")) ~ x + (1|g)", "binomial", FormulaError),
    ("offset-open", f"cnt ~ x + offset(log(t) + len({OPEN})) + (1|g)", "poisson", FormulaError),
    ("bar-lhs-np", "cnt ~ x + (np.save('pwned', x) | g)", "poisson", FormulaError),
    ("grouping-call", f"cnt ~ x + (1 | {OS})", "poisson", FormulaError),
    ("grouping-interaction", f"cnt ~ x + (1 | g:{OPEN})", "poisson", FormulaError),
    ("grouping-dunder", "cnt ~ x + (1 | __builtins__)", "poisson", FormulaError),
    # builtins
    ("eval", f"cnt ~ x + I(eval(\"{OS}\")) + (1|g)", "poisson", FormulaError),
    ("exec", f"cnt ~ x + I(exec(\"{OPEN}\")) + (1|g)", "poisson", FormulaError),
    ("open", f"cnt ~ x + I({OPEN}) + (1|g)", "poisson", FormulaError),
    ("getattr", "cnt ~ x + I(getattr(np, 'save')('pwned', x)) + (1|g)", "poisson", FormulaError),
    ("globals", "cnt ~ x + I(globals()) + (1|g)", "poisson", FormulaError),
    ("fullwidth-eval", f"cnt ~ x + I(\uff45\uff56\uff41\uff4c(\"{OS}\")) + (1|g)", "poisson", FormulaError),
    ("bare-dunder", "cnt ~ x + I(__builtins__) + (1|g)", "poisson", FormulaError),
    # numpy attribute chains
    ("np-lib", "cnt ~ x + np.lib.npyio.save('pwned', x) + (1|g)", "poisson", FormulaError),
    ("numpy-ctypeslib", "cnt ~ x + numpy.ctypeslib.load_library('pwned', '.') + (1|g)", "poisson", FormulaError),
    ("np-load", "cnt ~ x + np.load('pwned.npy', allow_pickle=True) + (1|g)", "poisson", FormulaError),
    ("np-dunder", "cnt ~ x + I(np.log.__self__) + (1|g)", "poisson", FormulaError),
    ("np-out-argument", "cnt ~ x + np.log(x, x) + (1|g)", "poisson", FormulaError),
    ("np-inside-allowed", "cnt ~ x + I(np.where(x > 0, x, np.save('pwned', x))) + (1|g)", "poisson", FormulaError),
    # Python constructs
    ("subscript", "cnt ~ x + I(np.__dict__['save']('pwned', x)) + (1|g)", "poisson", FormulaError),
    ("lambda", f"cnt ~ x + I((lambda: {OS})()) + (1|g)", "poisson", FormulaError),
    ("comprehension", f"cnt ~ x + I([{OPEN} for _ in x]) + (1|g)", "poisson", FormulaError),
    ("generator", f"cnt ~ x + I(sum({OPEN} for _ in x)) + (1|g)", "poisson", FormulaError),
    ("walrus", f"cnt ~ x + I((p := {OPEN})) + (1|g)", "poisson", FormulaError),
    ("f-string", f"cnt ~ x + I(f\"{{{OPEN}}}\") + (1|g)", "poisson", FormulaError),
    ("starred", f"cnt ~ x + log(*[{OPEN}]) + (1|g)", "poisson", FormulaError),
    ("conditional", f"cnt ~ x + I(x if {OPEN} else x) + (1|g)", "poisson", FormulaError),
    ("boolop", f"cnt ~ x + I({OPEN} and x) + (1|g)", "poisson", FormulaError),
    ("curly-python-block", f"cnt ~ x + {{{OS}}} + (1|g)", "poisson", FormulaError),
    ("method-on-term", "cnt ~ x + I(x).__class__ + (1|g)", "poisson", FormulaError),
    ("newline-term", f"cnt ~ x + (1|g)\n+ I({OS})", "poisson", FormulaError),
    # keywords and transform arguments
    ("kwargs-splat", f"cnt ~ x + poly(x, **{{'degree': {OPEN}}}) + (1|g)", "poisson", FormulaError),
    ("poly-keyword", f"cnt ~ x + poly(x, degree={OPEN}) + (1|g)", "poisson", FormulaError),
    ("poly-positional", f"cnt ~ x + poly(x, {OS}) + (1|g)", "poisson", FormulaError),
    ("bs-keyword", f"cnt ~ x + bs(x, df={OS}) + (1|g)", "poisson", FormulaError),
    ("scale-state", f"cnt ~ x + scale(x, _state={OPEN}) + (1|g)", "poisson", FormulaError),
    ("C-contrast-call", f"cnt ~ x + C(f, {OS}) + (1|g)", "poisson", FormulaError),
    ("C-contrast-attr", "cnt ~ x + C(f, contr.__class__) + (1|g)", "poisson", FormulaError),
    ("C-contrast-keyword", f"cnt ~ x + C(f, Treatment(reference={OPEN})) + (1|g)", "poisson", FormulaError),
    ("C-levels", f"cnt ~ x + C(f, levels=[{OPEN}]) + (1|g)", "poisson", FormulaError),
    # resource exhaustion
    ("huge-power", "cnt ~ x + I(x + 9**9**9) + (1|g)", "poisson", FormulaError),
    ("string-repeat", "cnt ~ x + I('a' * 10**10) + (1|g)", "poisson", FormulaError),
    ("deep-nesting", "cnt ~ x + I(" + "x+" * 1500 + "x) + (1|g)", "poisson", FormulaError),
    ("huge-poly-degree", "cnt ~ x + poly(x, 100000) + (1|g)", "poisson", FormulaError),
    ("huge-poly-degree-keyword", "cnt ~ x + poly(x, degree=1e12) + (1|g)", "poisson", FormulaError),
    ("huge-bs-df", "cnt ~ x + bs(x, df=10000000) + (1|g)", "poisson", FormulaError),
    ("huge-term-power", "cnt ~ (x + t)**40 + (1|g)", "poisson", FormulaError),
    ("huge-term-power-caret", "cnt ~ (x + t)^40 + (1|g)", "poisson", FormulaError),
    ("huge-single-term-power", "cnt ~ x**10000000 + (1|g)", "poisson", FormulaError),
    ("huge-term-power-bar-lhs", "cnt ~ x + ((x + t)**40 | g)", "poisson", FormulaError),
    # a string that would end formulaic's own quoting of a stateful call's source text
    ("string-splice-stateful", "cnt ~ x + center(x * (f == \"+'`' + open.__init__.__globals__['builtins']"
     ".__import__('os').system('touch pwned'))#`\")) + (1|g)", "poisson", FormulaError),
    # back-quoted names are column names, never code
    ("backquoted-fixed", f"cnt ~ x + `{OS}` + (1|g)", "poisson", ColumnError),
    ("backquoted-in-I", f"cnt ~ x + I(`{OS}` + 1) + (1|g)", "poisson", GlmmdiagError),
    ("backquoted-group", f"cnt ~ x + (1 | `{OS}`)", "poisson", ColumnError),
    ("backquoted-called", "cnt ~ x + I(`__import__`('os')) + (1|g)", "poisson", FormulaError),
    ("backquoted-builtin-alias", "cnt ~ x + I(`__build.class__`) + (1|g)", "poisson", GlmmdiagError),
    ("backquote-in-string", f"cnt ~ x + I((x == \"`\") + len({OPEN}) + (x == \"`\")) + (1|g)", "poisson",
     FormulaError),
    ("backquote-in-string-response", f"I((cnt == '`') + len({OPEN}) + (cnt == '`')) ~ x + (1|g)", "poisson",
     FormulaError),
]
IDS = [v[0] for v in VECTORS]


def _data(n=48, seed=7):
    rng = np.random.default_rng(seed)
    n_tr = rng.integers(5, 12, n)
    return pd.DataFrame({
        "cnt": rng.poisson(3, n), "x": rng.normal(size=n), "t": rng.uniform(1, 3, n),
        "s": rng.binomial(n_tr, 0.4), "n": n_tr, "c": rng.normal(size=n),
        "g": np.repeat(list("abcdef"), n // 6), "f": pd.Categorical(rng.choice(list("pqr"), n)),
    })


def _no_payload_ran(root):
    assert not [p for p in root.rglob("*") if "pwned" in p.name], "a payload created a file"


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    _no_payload_ran(tmp_path)


@pytest.fixture
def csv(in_tmp):
    path = in_tmp / "data.csv"
    _data().to_csv(path, index=False)
    return path


def test_catalogue_is_large_and_covers_every_position():
    assert len(VECTORS) >= 25
    for word in ("response", "cbind", "offset", "bar-lhs", "grouping", "C-", "poly", "bs-", "backquoted"):
        assert any(word in v for v in IDS), word


@pytest.mark.parametrize("vector, formula, family, error", VECTORS, ids=IDS)
def test_api_refuses(in_tmp, vector, formula, family, error):
    with pytest.raises(error) as info:
        glmmdiag.glmm(formula, _data(), family=family)
    assert isinstance(info.value, GlmmdiagError)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("vector, formula, family, error", VECTORS, ids=IDS)
def test_cli_refuses_in_process(csv, capsys, vector, formula, family, error):
    rc = cli.main(["check", str(csv), "--formula", formula, "--family", family, "--n-sim", "2",
                   "--quiet", "--out", str(csv.parent / "out")])
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err


@pytest.mark.parametrize("argument", ["weights", "offset"])
def test_weights_and_offset_arguments_are_column_names_only(in_tmp, argument):
    with pytest.raises(ColumnError, match="not in the data"):
        glmmdiag.glmm("cnt ~ x + (1|g)", _data(), family="poisson", **{argument: OS})


@pytest.mark.parametrize("vector", ["fixed-import", "offset-np-save", "classic-escape-c"])
def test_cli_refuses_in_a_subprocess(csv, vector):
    _, formula, family, _ = VECTORS[IDS.index(vector)]
    env = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "glmmdiag", "check", str(csv), "--formula", formula,
                        "--family", family, "--n-sim", "2", "--out", "out"],
                       capture_output=True, text=True, cwd=csv.parent, env=env, timeout=300)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "FormulaError" not in r.stderr and "may not contain" in r.stderr


def test_message_names_the_piece_and_what_is_allowed():
    with pytest.raises(FormulaError) as info:
        glmmdiag.glmm(f"cnt ~ x + I({OS}) + (1|g)", _data(), family="poisson")
    msg = str(info.value)
    assert "__import__('os').system('touch pwned')" in msg and "fixed term" in msg
    assert "column names" in msg and "log" in msg and "What a formula may contain" in msg


def test_formulaic_namespace_has_no_builtins_or_full_numpy():
    from glmmdiag.fit.expressions import FORMULAIC_CONTEXT

    for name in ("__import__", "eval", "exec", "open", "getattr", "globals", "compile"):
        with pytest.raises(FormulaError):
            FORMULAIC_CONTEXT[name]("1")
    for np_name in ("np", "numpy"):
        ns = FORMULAIC_CONTEXT[np_name]
        assert not hasattr(ns, "save") and not hasattr(ns, "load") and not hasattr(ns, "lib")
        assert ns.log is np.log


@pytest.mark.parametrize("argument", ["ziformula", "dispformula"])
@pytest.mark.parametrize("payload", [f"~ x + I({OS})", "~ (x + t)^40", f"~ log(`{OS}`)"])
def test_submodel_formulas_are_checked_too(in_tmp, argument, payload):
    """ziformula= and dispformula= go through the same whitelist (and power bound) as the formula."""
    family = "nbinom2"
    with pytest.raises(GlmmdiagError):
        glmmdiag.glmm("cnt ~ x + (1|g)", _data(), family=family, **{argument: payload})
    assert not os.listdir(in_tmp)
