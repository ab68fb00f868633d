# Every target sets up its own virtual environment from the project's files.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# the lowest allowed version of every runtime dependency (pins derived from pyproject.toml's floors)
VENV_MIN  := .venv-min
PY_MIN    := $(VENV_MIN)/bin/python
STAMP_MIN := $(VENV_MIN)/.installed
PYTEST    := -m pytest -q -n 2 -m "not slow"

.PHONY: install demo test test-min test-all fuzz bench calibrate clean docs wheel-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# rebuilt from scratch whenever the floors change, so nothing newer is left behind
$(STAMP_MIN): pyproject.toml .ci/min_constraints.py
	rm -rf $(VENV_MIN)
	$(PYTHON) -m venv $(VENV_MIN)
	echo '*' > $(VENV_MIN)/.gitignore
	$(PYTHON) .ci/min_constraints.py > $(VENV_MIN)/constraints.txt
	$(PY_MIN) -m pip install --quiet --upgrade pip
	$(PY_MIN) -m pip install --quiet --constraint $(VENV_MIN)/constraints.txt -e ".[test]"
	$(PY_MIN) .ci/min_constraints.py --check
	touch $(STAMP_MIN)

install: $(STAMP)

demo: $(STAMP)
	MPLBACKEND=Agg $(PY) -m glmmdiag demo

# two test workers, each with single-threaded BLAS (no oversubscription of the 2 cores)
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1

# the suite, then the Examples of the docstrings (conftest.py at the root sets the Agg backend)
test: $(STAMP)
	$(PY) $(PYTEST)
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules src/glmmdiag

# the same tests against the floors in pyproject.toml (numpy, scipy, pandas, ... at their minimum)
test-min: $(STAMP_MIN)
	$(PY_MIN) .ci/min_constraints.py --check
	$(PY_MIN) $(PYTEST)

# the seeded fuzz test at scale (make test runs its first 200 cases); FUZZ_N cases, a report of
# every case that is not clean (an error that is not glmmdiag's, a time-out, a non-finite fit)
FUZZ_N ?= 5000
fuzz: $(STAMP)
	GLMMDIAG_FUZZ_N=$(FUZZ_N) $(PY) -m pytest -q -n 2 tests/test_fuzz.py

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2

bench: $(STAMP)
	-$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/fit_bench.py
	$(PY) benchmarks/residuals_bench.py

# the residual-test calibration study (benchmarks/calibration.py: 200 replicates per scenario, both
# simulation modes, bootstrap-calibrated p-values and the defaults of residual_tests / glmmdiag check
# (auto_*) in conditional mode), the large-n study (benchmarks/calibration_large_n.py: Poisson and
# Bernoulli GLMMs at n = 1e4 x 200, 1e5 x 50, 1e6 x 10 replicates, glmmdiag check's defaults; long:
# its rows go to calibration_large_n.csv as they finish), the boundary study
# (benchmarks/boundary_study.py: 200 random-slope GLMMs near the boundary vs random restarts), then
# the slow test studies
calibrate: $(STAMP)
	$(PY) benchmarks/calibration.py --reps 200 --calibrate 39 --auto
	$(PY) benchmarks/calibration_large_n.py --n-jobs 2 --out calibration_large_n.csv
	$(PY) benchmarks/boundary_study.py --models 200 --restarts 5
	$(PY) -m pytest -q -n 2 -m slow

# the gallery: each gallery/plot_*.py writes one figure to gallery/figures/ and prints its numbers
# (GLMMDIAG_GALLERY_SMOKE=1: few simulations; tests/test_gallery.py runs them so in `make test`)
.PHONY: gallery
gallery: $(STAMP)
	@set -e; for f in gallery/plot_*.py; do echo "== $$f"; MPLBACKEND=Agg $(PY) $$f; echo; done

# the documentation site (docs/README.md): the docs extra into .venv, Sphinx with warnings as errors;
# sphinx-gallery runs every gallery script (full simulation counts). Output: docs/_build/html/
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	MPLBACKEND=Agg $(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	$(PY) docs/_ext/gallery_png.py docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

# build the wheel and sdist, install the wheel in a fresh venv outside the repo, run the README's
# quick start, `glmmdiag demo` and the sdist's own quick tests there (.ci/wheel_check.py)
wheel-check: $(STAMP)
	PYTHON=$(PYTHON) $(PY) .ci/wheel_check.py

clean:
	rm -rf $(VENV) $(VENV_MIN) build dist src/*.egg-info .pytest_cache docs/_build docs/auto_examples docs/sg_execution_times.rst
