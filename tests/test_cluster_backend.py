"""Refit-based work on a dask cluster: the same numbers as one process.

The parametric bootstraps (refit residuals, calibrated tests, ``simulate_lrt``) and the streamed
simulation run through joblib, so ``joblib.parallel_config(backend="dask")`` sends them to a
``dask.distributed`` cluster. Every random draw is made from the seed before the work is split,
so a cluster must give results identical to ``n_jobs=1``. This runs a real ``LocalCluster`` with
two worker processes (``distributed`` is in the test extra).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from joblib import parallel_config

import glmmdiag as gd
from glmmdiag.checks import calibrated_tests
from glmmdiag.fit import glmm

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster_client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dask's port/dashboard notices
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
        client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.fixture(scope="module")
def cbpp_fit():
    data = gd.datasets.load("cbpp")
    return glmm("cbind(incidence, size - incidence) ~ period + (1 | herd)", data, family="binomial")


def _on_cluster(fn):
    with parallel_config(backend="dask"):
        return fn(2)


def test_the_cluster_really_runs_the_work(cluster_client, cbpp_fit):
    m0 = glmm("cbind(incidence, size - incidence) ~ period", gd.datasets.load("cbpp"), family="binomial")
    with distributed.get_task_stream(cluster_client) as stream:
        _on_cluster(lambda n_jobs: gd.simulate_lrt(m0, cbpp_fit, n_sim=8, seed=3, n_jobs=n_jobs, progress=False))
    assert len(stream.data) > 0, "no task reached the dask workers"


def test_simulated_residuals_identical_on_a_cluster(cluster_client, cbpp_fit):
    one = gd.simulate_residuals(cbpp_fit, 300, seed=11, n_jobs=1, chunk_size=50)
    many = _on_cluster(lambda n_jobs: gd.simulate_residuals(cbpp_fit, 300, seed=11, n_jobs=n_jobs, chunk_size=50))
    np.testing.assert_array_equal(one.residuals, many.residuals)


def test_refit_residuals_identical_on_a_cluster(cluster_client, cbpp_fit):
    one = gd.simulate_residuals(cbpp_fit, 16, seed=5, refit=True, n_jobs=1)
    many = _on_cluster(lambda n_jobs: gd.simulate_residuals(cbpp_fit, 16, seed=5, refit=True, n_jobs=n_jobs))
    np.testing.assert_array_equal(one.residuals, many.residuals)


def test_calibrated_p_values_identical_on_a_cluster(cluster_client, cbpp_fit):
    res = gd.simulate_residuals(cbpp_fit, 100, seed=2)
    one = calibrated_tests(res, n_boot=9, seed=4, n_jobs=1)
    many = _on_cluster(lambda n_jobs: calibrated_tests(res, n_boot=9, seed=4, n_jobs=n_jobs))
    assert set(one) == set(many)
    for name in one:
        assert one[name].p_value == many[name].p_value, name


def test_bootstrap_lrt_identical_on_a_cluster(cluster_client, cbpp_fit):
    m0 = glmm("cbind(incidence, size - incidence) ~ period", gd.datasets.load("cbpp"), family="binomial")
    one = gd.simulate_lrt(m0, cbpp_fit, n_sim=12, seed=9, n_jobs=1, progress=False)
    many = _on_cluster(lambda n_jobs: gd.simulate_lrt(m0, cbpp_fit, n_sim=12, seed=9, n_jobs=n_jobs, progress=False))
    assert one.p_value == many.p_value
    np.testing.assert_array_equal(one.plot_data["simulated"], many.plot_data["simulated"])
