"""The gallery in smoke mode (GLMMDIAG_GALLERY_SMOKE=1: 50 simulations, smaller data): every
gallery/plot_*.py runs, prints its numbers and writes one figure that exists and is not blank.
`make gallery` runs the same scripts with full simulation counts."""
from __future__ import annotations

import runpy
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

GALLERY = Path(__file__).resolve().parents[1] / "gallery"
SCRIPTS = sorted(GALLERY.glob("plot_*.py"))


def test_gallery_has_the_promised_examples():
    names = {p.stem for p in SCRIPTS}
    for needed in ("plot_rust_beta_gamma", "plot_orobanche", "plot_contraception_nagq", "plot_salamanders",
                   "plot_sleepstudy", "plot_grouped_residuals", "plot_temporal_autocorrelation",
                   "plot_salamanders_zero_inflation"):
        assert needed in names
    assert (GALLERY / "README.md").exists()


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script_writes_a_non_blank_figure(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GLMMDIAG_GALLERY_SMOKE", "1")
    monkeypatch.setenv("GLMMDIAG_GALLERY_OUT", str(tmp_path))
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("a gallery script called plt.show()"))
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    pngs = list(tmp_path.glob("*.png"))
    assert len(pngs) == 1, f"{script.name} must write exactly one figure; wrote {pngs}"
    assert f"wrote {pngs[0]}" in out and len(out.splitlines()) >= 3  # the numbers it shows
    png = pngs[0]
    assert png.stat().st_size > 20_000
    img = mpimg.imread(png)[..., :3]
    assert min(img.shape[:2]) >= 400
    ink = np.mean(img.min(axis=2) < 0.9)  # share of pixels that are not (near) white
    assert 0.02 < ink < 0.9, f"{png.name}: {ink:.1%} of the pixels are drawn"
    assert img.std() > 0.05
    plt.close("all")
