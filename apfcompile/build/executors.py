"""Where the per-input work runs: in this process, a process pool, or a Dask cluster.

Every executor yields results in task order with a bounded number of tasks in flight, which is
what makes a compile's bytes independent of where and how widely it ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import TypeVar

from ..errors import ParameterError

__all__ = ["in_order"]

T = TypeVar("T")
R = TypeVar("R")


def in_order(fn: Callable[[T], R], tasks: list[T], workers: int, scheduler: str | None = None) -> Iterator[R]:
    """``fn(task)`` for every task, yielded in task order, at most 2 x workers in flight.

    ``fn`` and the tasks travel to worker processes (a spawn pool, or Dask), so ``fn`` must be a
    module-level function. ``scheduler``: a Dask address or ``local:N`` (see :func:`_on_dask`).
    """
    if scheduler is not None:
        yield from _on_dask(fn, tasks, scheduler)
        return
    if workers == 1 or len(tasks) <= 1:
        for t in tasks:
            yield fn(t)
        return
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init) as pool:
        pending: list[Future] = []
        queue = iter(tasks)
        try:
            for t in queue:
                pending.append(pool.submit(fn, t))
                if len(pending) >= 2 * workers:
                    break
            while pending:
                result = pending.pop(0).result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.append(pool.submit(fn, nxt))
                yield result
        finally:
            for f in pending:
                f.cancel()


def _on_dask(fn: Callable[[T], R], tasks: list[T], scheduler: str) -> Iterator[R]:
    """Results in task order from a Dask cluster (``tcp://host:port``, or ``local:N`` processes).

    Tasks are pure functions of their inputs: a task lost with a worker is simply run again, so
    nothing is lost or written twice, and the shards are the ones a local compile writes.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ParameterError("scheduler", "Dask installed", scheduler, "pip install 'apfcompile[dask]'") from None
    cluster = None
    try:
        if scheduler.startswith("local:"):
            try:
                n = int(scheduler.split(":", 1)[1])
            except ValueError:
                raise ParameterError("scheduler", "local:N with N >= 1, or tcp://host:port", scheduler) from None
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout="5s")
            except (OSError, TimeoutError, ValueError) as exc:
                raise ParameterError(
                    "scheduler",
                    "a reachable Dask scheduler",
                    scheduler,
                    f"could not connect ({exc.__class__.__name__})",
                ) from None
        with client:
            window = 2 * max(1, sum(client.nthreads().values()))
            pending = []
            queue = iter(tasks)
            for t in queue:
                pending.append(client.submit(fn, t, pure=False, retries=2))
                if len(pending) >= window:
                    break
            while pending:
                result = pending.pop(0).result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.append(client.submit(fn, nxt, pure=False, retries=2))
                yield result
    finally:
        if cluster is not None:
            cluster.close()


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core already
