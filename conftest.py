"""Root conftest: applies to the test suite and to the doctests of the package
(``pytest --doctest-modules src/glmmdiag``, run by ``make test``). Figures are drawn with the
non-interactive Agg backend, so Examples that plot open no window and need no display."""
import matplotlib

matplotlib.use("Agg")
