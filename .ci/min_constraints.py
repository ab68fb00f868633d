"""Pip constraints pinning every runtime dependency to its floor in pyproject.toml.

``python .ci/min_constraints.py > constraints.txt`` turns ``dependencies = ["numpy>=1.24", ...]``
into ``numpy==1.24`` lines, so that ``make test-min`` installs exactly the lowest versions the
package claims to support (the floors and what is tested cannot drift apart). Only the
``[project] dependencies`` are pinned; optional extras (``test``, ``bench``) resolve freely.
A dependency without a ``>=`` floor is an error: an unbounded dependency has no testable minimum.

``python .ci/min_constraints.py --check`` (run with the environment's interpreter) verifies that
the installed version of each dependency equals its floor and prints them; exit 1 otherwise.
"""
from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
# "name[extra]>=1.2,<3 ; marker" -> name, floor (the marker, extras and other bounds are ignored)
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>[^;]*)")
_FLOOR = re.compile(r">=\s*([0-9][A-Za-z0-9.+!-]*)")


def floor_of(requirement: str) -> tuple[str, str]:
    """("numpy", "1.24") for "numpy>=1.24"; ValueError when there is no ``>=`` lower bound."""
    m = _REQ.match(requirement)
    if not m:
        raise ValueError(f"cannot parse the requirement {requirement!r}")
    floor = _FLOOR.search(m.group("spec"))
    if not floor:
        raise ValueError(f"{requirement!r} has no '>=' floor to test against")
    return m.group(1), floor.group(1)


def constraints(pyproject: Path = PYPROJECT) -> list[str]:
    """One ``name==floor`` line per runtime dependency of ``pyproject``."""
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return [f"{name}=={floor}" for name, floor in map(floor_of, deps)]


def _release(version: str) -> tuple[int, ...]:
    """(1, 24, 0) -> (1, 24) for "1.24.0": the numeric release with trailing zeros dropped."""
    nums = [int(x) for x in re.findall(r"\d+", version.split("+")[0])[:3]]
    while nums and nums[-1] == 0:
        nums.pop()
    return tuple(nums)


def check_installed(pyproject: Path = PYPROJECT) -> list[str]:
    """Problems: each dependency whose installed version is not its floor (empty list = all good)."""
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    problems, found = [], []
    for name, floor in map(floor_of, deps):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} is not installed (floor {floor})")
            continue
        found.append(f"{name} {installed}")
        if _release(installed) != _release(floor):
            problems.append(f"{name} {installed} is installed, the floor is {floor}")
    print("installed: " + ", ".join(found))
    return problems


def main(argv: list[str]) -> int:
    check = "--check" in argv[1:]
    paths = [a for a in argv[1:] if a != "--check"]
    path = Path(paths[0]) if paths else PYPROJECT
    try:
        if check:
            problems = check_installed(path)
            for p in problems:
                print(f"min_constraints: {p}", file=sys.stderr)
            return 1 if problems else 0
        print("\n".join(constraints(path)))
    except ValueError as e:
        print(f"min_constraints: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
