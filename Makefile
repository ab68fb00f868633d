# Every target sets up its own virtual environment from the project's files.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-all bench calibrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	MPLBACKEND=Agg $(PY) -m glmmdiag demo

# two test workers, each with single-threaded BLAS (no oversubscription of the 2 cores)
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1

test: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2

bench: $(STAMP)
	-$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/fit_bench.py
	$(PY) benchmarks/residuals_bench.py

# the residual-test calibration study (benchmarks/calibration.py: 200 replicates per scenario, both
# simulation modes, bootstrap-calibrated p-values in conditional mode), then the slow test studies
calibrate: $(STAMP)
	$(PY) benchmarks/calibration.py --reps 200 --calibrate 39
	$(PY) -m pytest -q -n 2 -m slow

# the gallery: each gallery/plot_*.py writes one figure to gallery/figures/ and prints its numbers
# (GLMMDIAG_GALLERY_SMOKE=1: few simulations; tests/test_gallery.py runs them so in `make test`)
.PHONY: gallery
gallery: $(STAMP)
	@set -e; for f in gallery/plot_*.py; do echo "== $$f"; MPLBACKEND=Agg $(PY) $$f; echo; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
