"""The local pool: results in task order, workers forked from the fork server that see the
caller's environment as it is when the pool starts, and no worker left behind."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from apfcompile.build.allocator import ENVIRONMENT
from apfcompile.build.executors import in_order, local_pool, start_workers


def _env_value(name: str) -> str | None:
    return os.environ.get(name)


def _slow_square(x: int) -> int:
    time.sleep(0.02 * (x % 3))  # later tasks often finish first
    return x * x


def test_results_come_in_task_order_from_two_workers():
    assert list(in_order(_slow_square, list(range(12)), 2)) == [x * x for x in range(12)]


def test_workers_see_the_environment_set_after_the_fork_server_started(monkeypatch):
    start_workers(2, None)  # the fork server keeps the environment it started with
    monkeypatch.setenv("APF_TEST_MARK", "set after the server started")
    monkeypatch.delenv("APF_TEST_GONE", raising=False)
    assert list(in_order(_env_value, ["APF_TEST_MARK"] * 3, 2)) == ["set after the server started"] * 3
    assert list(in_order(_env_value, ["APF_TEST_GONE"] * 2, 2)) == [None, None]


def _server_environment(_: int) -> bytes:
    with open(f"/proc/{os.getppid()}/environ", "rb") as f:  # a worker's parent: the fork server
        return f.read()


@pytest.mark.skipif(not os.path.exists("/proc/self/environ"), reason="reads /proc")
def test_the_fork_server_loads_blas_on_one_thread():
    """Its NumPy reads OPENBLAS_NUM_THREADS when it loads: one thread per worker (a float64 np.dot
    on two workers' spinning BLAS threads made -j 2 as slow as -j 1); this process's environment
    is left as it was. (Dask's LocalCluster sets the same variable to 1 in its caller.)"""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork server on this platform")
    if os.environ.get("OPENBLAS_NUM_THREADS", "1") != "1":
        pytest.skip("the caller chose another BLAS thread count, which the server keeps")
    before = dict(os.environ)
    with local_pool(2, None) as pool:
        envs = list(in_order(_server_environment, [0, 1], 2, None, pool))
    assert all(b"\x00OPENBLAS_NUM_THREADS=1\x00" in b"\x00" + env for env in envs)
    for name, value in ENVIRONMENT.items():  # glibc's malloc thresholds, read when it started
        if name not in before:
            assert all(f"\x00{name}={value}\x00".encode() in b"\x00" + env for env in envs)
    assert dict(os.environ) == before


def test_a_warmed_pool_leaves_no_worker_behind():
    before = {p.pid for p in multiprocessing.active_children()}
    with local_pool(2, None) as pool:
        assert pool is not None
        assert list(in_order(_slow_square, [1, 2, 3], 2, None, pool)) == [1, 4, 9]
    after = {p.pid for p in multiprocessing.active_children()}
    assert after <= before


def test_one_worker_or_dask_gets_no_local_pool():
    with local_pool(1, None) as pool:
        assert pool is None
    with local_pool(2, "local:2") as pool:
        assert pool is None


def test_a_pool_closed_before_its_workers_started_raises_nothing_on_any_thread(monkeypatch):
    """A compile that fails at once (a bad input) closes its pool while the thread that starts
    the workers may still be submitting: that thread must end quietly."""
    import threading

    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    for _ in range(20):
        with local_pool(2, None):
            pass
    time.sleep(0.5)  # let every starter thread finish
    assert errors == []


def test_workers_share_the_cores_for_opencv_threads(monkeypatch):
    """-j 2 on 16 cores gives each worker 8 OpenCV threads (-j 1 has all 16 in one process); -j at
    or above the core count gives each one, never more threads than cores."""
    from apfcompile.build import executors

    monkeypatch.setattr(executors.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert [executors.threads_per_worker(j) for j in (1, 2, 3, 16, 64)] == [16, 8, 5, 1, 1]
