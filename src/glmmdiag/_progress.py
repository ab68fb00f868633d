"""Progress bars for long work: refits, model comparisons, bootstraps and large simulations.

One switch, ``progress``, on every function that may run long:

- ``False``: silent.
- ``True``: a bar (``tqdm.auto``: a widget in Jupyter, a text bar in a terminal) from the start.
- ``"auto"`` (the default): a bar only where someone can see it — a Jupyter kernel or a terminal
  on stderr — and only once the work has taken longer than ``AUTO_DELAY`` seconds, so that short
  calls, tests (pytest sets ``PYTEST_CURRENT_TEST``), pipes and CI logs stay silent.

tqdm is an optional dependency (``pip install glmmdiag[progress]``). Without it ``progress=True``
prints a plain text line on stderr at most every few seconds, and ``"auto"`` stays silent.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Literal, TypeVar

from .errors import GlmmdiagError

T = TypeVar("T")
Progress = bool | Literal["auto"]

#: seconds of work after which ``progress="auto"`` shows a bar
AUTO_DELAY = 2.0


def _check(progress) -> Progress:
    if progress is True or progress is False or progress == "auto":
        return progress
    raise GlmmdiagError(f"progress must be True, False or 'auto'; got {progress!r}")


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is not a terminal but a bar is still seen)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


def _someone_watches() -> bool:
    """A person can see a bar: not under pytest, and a notebook or a terminal on stderr."""
    if os.environ.get("PYTEST_CURRENT_TEST"):
        return False
    if _in_notebook():
        return True
    stream = sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class _TextBar:
    """A stand-in for tqdm when it is not installed: one line on stderr every ``every`` seconds."""

    def __init__(self, total: int | None, desc: str, every: float = 5.0):
        self.total, self.desc, self.every = total, desc, every
        self.n, self._t0, self._last = 0, time.perf_counter(), -float("inf")

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.perf_counter()
        if now - self._last >= self.every or (self.total is not None and self.n >= self.total):
            self._last = now
            of = f"/{self.total}" if self.total is not None else ""
            print(f"{self.desc}: {self.n}{of} ({now - self._t0:.0f} s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


class _NoBar:
    def update(self, k: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int | None, desc: str, progress: Progress = "auto"):
    """A bar with ``update(k)`` and ``close()``, or a silent stand-in (see the module doc).

    Parameters
    ----------
    total : int or None
        Units of work (refits, draws, models); None when unknown.
    desc : str
        What is being done, e.g. "refits".
    progress : bool or "auto"
        Whether to show it.
    """
    progress = _check(progress)
    if progress is False or (progress == "auto" and not _someone_watches()):
        return _NoBar()
    tqdm = _tqdm()
    if tqdm is None:
        return _TextBar(total, desc) if progress is True else _NoBar()
    delay = AUTO_DELAY if progress == "auto" else 0.0
    return tqdm(total=total, desc=desc, delay=delay, leave=progress is True, file=sys.stderr)


def track(items: Iterable[T], total: int | None, desc: str, progress: Progress = "auto") -> Iterator[T]:
    """Yield ``items`` one by one while a bar (see :func:`progress_bar`) counts them."""
    bar = progress_bar(total, desc, progress)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()
