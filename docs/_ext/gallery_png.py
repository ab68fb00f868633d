"""A sphinx-gallery image scraper for glmmdiag's gallery scripts.

Each ``gallery/plot_*.py`` saves its one figure with ``fig.savefig(OUT / "name.png")`` and closes it
(the scripts are also run by ``make gallery`` and by the test suite), so matplotlib's own scraper,
which collects figures still open, finds nothing. ``conf.py`` points ``GLMMDIAG_GALLERY_OUT`` at
:data:`OUT_DIR`; after each code block this scraper copies every PNG written there since the
previous block to the path sphinx-gallery reserves for it and returns the reST that shows it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from sphinx_gallery.scrapers import figure_rst

#: where conf.py tells the gallery scripts to write their figures (outside the source tree)
OUT_DIR = Path(__file__).resolve().parents[1] / "_build" / "gallery_figures"
_seen: dict[str, float] = {}


def scrape(block, block_vars, gallery_conf, **kwargs) -> str:
    """The reST for the PNGs the block just wrote to :data:`OUT_DIR` (in the order written)."""
    new = []
    for png in sorted(OUT_DIR.glob("*.png"), key=lambda p: p.stat().st_mtime_ns):
        mtime = png.stat().st_mtime
        if _seen.get(png.name) != mtime:
            _seen[png.name] = mtime
            new.append(png)
    paths = []
    for png, target in zip(new, block_vars["image_path_iterator"]):
        shutil.copyfile(png, target)
        paths.append(target)
    return figure_rst(paths, gallery_conf["src_dir"])


def prepare() -> None:
    """Empty :data:`OUT_DIR` and point the gallery scripts at it."""
    shutil.rmtree(OUT_DIR, ignore_errors=True)
    OUT_DIR.mkdir(parents=True)
    os.environ["GLMMDIAG_GALLERY_OUT"] = str(OUT_DIR)
    os.environ["MPLBACKEND"] = "Agg"


def check_site(html_dir: Path) -> list[str]:
    """Problems of the built gallery: a ``gallery/plot_*.py`` without its page, or a page that does
    not show its script's figure (an ``<img>`` of an existing, non-empty PNG)."""
    import re

    gallery = Path(__file__).resolve().parents[2] / "gallery"
    problems = []
    for script in sorted(gallery.glob("plot_*.py")):
        page = html_dir / "auto_examples" / f"{script.stem}.html"
        if not page.is_file():
            problems.append(f"{script.name}: no page {page}")
            continue
        imgs = re.findall(rf'src="(\.\./_images/sphx_glr_{script.stem}_\d+\.png)"', page.read_text(encoding="utf-8"))
        shown = [src for src in imgs if (page.parent / src).is_file() and (page.parent / src).stat().st_size > 10_000]
        if not shown:
            problems.append(f"{page.name}: shows no figure")
    return problems


if __name__ == "__main__":
    import sys

    html = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "_build" / "html")
    bad = check_site(html)
    for b in bad:
        print(f"gallery: {b}", file=sys.stderr)
    n = len(list((Path(__file__).resolve().parents[2] / "gallery").glob("plot_*.py")))
    print(f"gallery: {n - len(bad)} of {n} example pages show their figure")
    sys.exit(1 if bad else 0)
