"""Packaging promises that no other test sees: one version source, the citation and changelog at
that version, and an API reference that lists every public name. (``make wheel-check`` checks the
built wheel and sdist; ``make docs`` builds the site with warnings as errors.)"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import glmmdiag

ROOT = Path(__file__).resolve().parents[1]


def test_one_version_source():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"], "pyproject.toml must not repeat the version"
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "glmmdiag.__version__"}
    init = (ROOT / "src" / "glmmdiag" / "__init__.py").read_text(encoding="utf-8")
    assert re.findall(r'^__version__ = "([^"]+)"$', init, re.M) == [glmmdiag.__version__]


def test_citation_and_changelog_name_the_version():
    cff = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert re.findall(r'^version: "([^"]+)"$', cff, re.M) == [glmmdiag.__version__]
    assert re.search(r"^cff-version: 1\.2\.0$", cff, re.M)
    for key in ("title", "message", "authors", "license"):
        assert re.search(rf"^{key}:", cff, re.M), key
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    first = re.search(r"^## (\S+)", changelog, re.M)
    assert first and first.group(1) == glmmdiag.__version__


def test_api_reference_lists_every_public_name():
    api = (ROOT / "docs" / "api.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. auto(?:function|class|exception):: (?:glmmdiag\.)?(\w+)\s*$", api, re.M))
    public = set(glmmdiag.__all__) - {"__version__", "datasets"}
    assert public - documented == set(), "add these to docs/api.rst"
