"""``python -m glmmdiag``: the ``glmmdiag`` command line (glmmdiag/cli.py)."""
from __future__ import annotations

import sys

from glmmdiag.cli import main

if __name__ == "__main__":
    sys.exit(main())
