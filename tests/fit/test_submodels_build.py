"""Building the submodels' matrices: a ziformula that is the conditional fixed part takes the
design's matrix, names and replay spec, which must be what building it separately gives."""
from __future__ import annotations

import numpy as np

from glmmdiag import datasets
from glmmdiag.fit.design import build_design
from glmmdiag.fit.families import get_family
from glmmdiag.fit.submodels import _submodel_matrix, build_composite


def test_zero_model_equal_to_the_fixed_part_reuses_the_design():
    data = datasets.load("Salamanders")
    fam = get_family("poisson")
    d = build_design("count ~ spp * mined + cover + (1 | site)", data, fam)
    comp = build_composite(fam, d, data, ziformula="~ spp*mined +  cover")
    X, names, (spec, kept) = _submodel_matrix("spp * mined + cover", d, data, "ziformula")
    np.testing.assert_array_equal(comp.Xz, X)
    assert comp.znames == names
    assert comp.specs["zi"][1] is None and kept is None
    new = data.iloc[[3, 50, 400]]
    np.testing.assert_array_equal(np.asarray(comp.specs["zi"][0].get_model_matrix(new), float),
                                  np.asarray(spec.get_model_matrix(new), float))
    # another right-hand side is built on its own
    other = build_composite(fam, d, data, ziformula="~ mined")
    assert other.znames == ["(Intercept)", "minedno"]
    assert comp.Xz is not d.X  # a copy: the design's matrix is not shared
