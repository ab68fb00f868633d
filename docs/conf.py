"""Sphinx configuration of glmmdiag's documentation site (``make docs``; see README.md here)."""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import gallery_png  # noqa: E402

import glmmdiag  # noqa: E402

gallery_png.prepare()

project = "glmmdiag"
author = "glmmdiag developers"
copyright = "glmmdiag developers (MIT licence)"
release = glmmdiag.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax copied into _static: formulas render offline, no CDN
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5", "auto_examples/*.json"]
html_theme = "alabaster"
html_theme_options = {
    "description": "GLMMs from lme4-style formulas, with DHARMa-style residual diagnostics",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "230px",
}
html_static_path: list[str] = []
html_title = f"glmmdiag {release}"

# autodoc + numpydoc: the public API as documented in the docstrings (no class member tables: the
# result classes document their fields in the class docstring)
autodoc_member_order = "bysource"
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

myst_heading_anchors = 3

# sphinx-gallery over gallery/: every plot_*.py runs with its full simulation counts; the scripts
# save their figure to GLMMDIAG_GALLERY_OUT (set by gallery_png.prepare) and the scraper shows it.
sphinx_gallery_conf = {
    "examples_dirs": "../gallery",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "image_scrapers": ("gallery_png.scrape",),
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 1,
    "abort_on_example_error": True,
    "capture_repr": (),
    "show_memory": False,
    "plot_gallery": "True",
}

suppress_warnings = ["config.cache"]  # sphinx-gallery's config holds a callable sort key
