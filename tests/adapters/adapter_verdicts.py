"""The verdict of a model in the adapter tests (imported by the test modules of this folder).

Every adapter is checked on real data (``glmmdiag.datasets`` or ``tests/data``) with a correct and
a misspecified model: the correct one passes the uniformity (KS) and dispersion tests at the 5%
level, the misspecified one fails one of them below 1% (or the quantile test against the
predictor whose term is missing). Seeds are fixed, so these verdicts are deterministic.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmdiag as gd
from glmmdiag import datasets

DATA = Path(__file__).resolve().parent.parent / "data"
N_SIM = 250


def verdict(model, *, predictor=None, n_sim: int = N_SIM, seed: int = 1, **kw) -> dict:
    """p-values of the uniformity, dispersion (and quantile, given a predictor) tests."""
    res = gd.simulate_residuals(model, n_sim, seed=seed, **kw)
    d = gd.dispersion_test(res)
    out = {"uniformity": gd.uniformity_test(res).p_value, "dispersion": d.p_value, "ratio": d.statistic,
           "res": res}
    if predictor is not None:
        out["quantile"] = gd.quantile_test(res, np.asarray(predictor, float), curves=False).p_value
    return out


def passes(v: dict) -> bool:
    return v["uniformity"] > 0.05 and v["dispersion"] > 0.05 and v.get("quantile", 1.0) > 0.05


def fails(v: dict) -> bool:
    return min(v["uniformity"], v["dispersion"], v.get("quantile", 1.0)) < 0.01
