"""Progress bars: shown when asked (or when someone watches long work), silent in tests and pipes."""
from __future__ import annotations

import pytest

import glmmdiag as gd
from glmmdiag import _progress
from glmmdiag._progress import progress_bar, track
from glmmdiag.errors import GlmmdiagError
from glmmdiag.fit import glmm


def test_track_yields_every_item_in_order():
    assert list(track(iter(range(7)), 7, "x", progress=False)) == list(range(7))
    assert list(track(range(5), 5, "x", progress=True)) == list(range(5))


def test_asked_for_a_bar_shows_its_count_on_stderr(capsys):
    list(track(range(8), 8, "refits", progress=True))
    err = capsys.readouterr().err
    assert "refits" in err and "8/8" in err


def test_silent_when_switched_off_and_under_pytest_by_default(capsys):
    list(track(range(8), 8, "refits", progress=False))
    list(track(range(8), 8, "refits", progress="auto"))  # PYTEST_CURRENT_TEST is set here
    assert capsys.readouterr().err == ""


def test_auto_shows_a_delayed_bar_in_a_terminal(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(_progress, "_someone_watches", lambda: True)
    bar = progress_bar(3, "draws", "auto")
    try:
        assert bar.delay == _progress.AUTO_DELAY  # short work never shows it
    finally:
        bar.close()


def test_without_tqdm_a_plain_line_when_asked_and_silence_on_auto(monkeypatch, capsys):
    monkeypatch.setattr(_progress, "_tqdm", lambda: None)
    monkeypatch.setattr(_progress, "_someone_watches", lambda: True)
    list(track(range(4), 4, "models", progress=True))
    assert "models: 4/4" in capsys.readouterr().err
    list(track(range(4), 4, "models", progress="auto"))
    assert capsys.readouterr().err == ""


def test_a_wrong_switch_is_refused():
    with pytest.raises(GlmmdiagError, match="progress must be"):
        progress_bar(3, "x", "yes")


def test_simulate_lrt_and_compare_models_report_progress_when_asked(capsys):
    data = gd.datasets.load("cbpp")
    m1 = glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, family="binomial")
    m0 = glmm("cbind(incidence, size - incidence) ~ period", data, family="binomial")
    gd.simulate_lrt(m0, m1, n_sim=5, seed=1, progress=True)
    assert "bootstrap refits" in capsys.readouterr().err
    gd.compare_families("cbind(incidence, size - incidence) ~ period + (1 | herd)", data,
                        families=("binomial",), n_sim=50, seed=1, progress=True)
    assert "models" in capsys.readouterr().err
