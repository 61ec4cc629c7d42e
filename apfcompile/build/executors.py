"""Where the per-input work runs: in this process, a process pool, or a Dask cluster.

Every executor yields results in task order with a bounded number of tasks in flight, which is
what makes a compile's bytes independent of where and how widely it ran.

Pool workers are forked from a fork server (where the platform has one; spawned elsewhere) that
imports what a worker needs once, while this process is still planning (:func:`start_workers`):
a spawned worker imports the same ~1 s of modules itself, on the critical path, once per worker.
The server is a single-threaded process that has only imported modules, so forking it is safe; each
worker takes this process's current working folder, ``sys.path`` and environment when it starts.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from typing import TypeVar

from ..errors import ParameterError
from .allocator import ENVIRONMENT

__all__ = ["in_order", "local_pool", "start_workers"]

WORKER_MODULES = (
    "apfcompile.build.samples",
    "formats.writer",
    "apfcompile.cli",
    *(f"apfcompile.inputs.readers.{name}" for name in ("nifti", "raster", "arrays")),
)
"""What pool workers import: the compile's work, the shard writer (workers write the shards of a
volume cut at shard boundaries), the command line (a worker started from ``apfcompile`` imports the
main script, which imports the command line) and the readers of many small frames (NIfTI,
PNG/JPEG, NumPy). TIFF's (tifffile: ~0.08 s), SimpleITK's and DICOM's are imported by the
workers that need them: a slide takes seconds, where a volume's first slice takes milliseconds."""

_ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Thread counts the fork server starts with (where the caller has not set them), beside
:data:`~apfcompile.build.allocator.ENVIRONMENT`."""

_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def start_workers(workers: int, scheduler: str | None) -> None:
    """Start the fork server, importing :data:`WORKER_MODULES`, if this compile will use a local
    pool (``workers > 1``, no ``scheduler``): its imports then overlap this process's planning. A
    no-op otherwise, when the server already runs, or where there is no fork server."""
    if scheduler is not None or workers <= 1 or _METHOD != "forkserver":
        return
    from multiprocessing import forkserver

    ctx = get_context(_METHOD)
    ctx.set_forkserver_preload(list(WORKER_MODULES))
    # BLAS reads its thread count when NumPy loads, in the server: one thread per worker (the
    # compile's arrays are too small for BLAS threads to pay), or each worker's spinning BLAS
    # threads take the cores from the others; glibc reads its malloc thresholds at start (the
    # workers keep freed memory for their next frames).
    added = {k: v for k, v in {**_ONE_THREAD, **ENVIRONMENT}.items() if k not in os.environ}
    os.environ.update(added)
    try:
        forkserver.ensure_running()
    finally:
        for k in added:
            os.environ.pop(k, None)


@contextlib.contextmanager
def local_pool(workers: int, scheduler: str | None) -> Iterator[ProcessPoolExecutor | None]:
    """The local process pool of a compile (None when it runs in this process or on Dask), its
    workers already starting: forked from the fork server, they set up while this process plans,
    so the first tasks start at once. Shut down (pending tasks cancelled) on leaving."""
    if scheduler is not None or workers <= 1:
        yield None
        return
    start_workers(workers, scheduler)
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context(_METHOD),
        initializer=_worker_init,
        initargs=(dict(os.environ), threads_per_worker(workers)),
    )
    if _METHOD == "forkserver":  # a fork is cheap: start every worker now (spawned ones start on demand)
        # on a thread: a fork waits for the server to finish its imports, this process need not
        threading.Thread(target=_warm, args=(pool, workers), name="apf-warm-pool", daemon=True).start()
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


T = TypeVar("T")
R = TypeVar("R")


def in_order(
    fn: Callable[[T], R],
    tasks: list[T],
    workers: int,
    scheduler: str | None = None,
    pool: ProcessPoolExecutor | None = None,
) -> Iterator[R]:
    """``fn(task)`` for every task, yielded in task order, at most 2 x workers in flight.

    ``fn`` and the tasks travel to worker processes (a local pool, or Dask), so ``fn`` must be a
    module-level function. ``scheduler``: a Dask address or ``local:N`` (see :func:`_on_dask`).
    ``pool``: the :func:`local_pool` to run on (its owner shuts it down); by default one is made.
    """
    if scheduler is not None:
        yield from _on_dask(fn, tasks, scheduler)
        return
    if workers == 1 or len(tasks) <= 1:
        for t in tasks:
            yield fn(t)
        return
    if pool is None:
        with local_pool(workers, scheduler) as own:
            yield from in_order(fn, tasks, workers, scheduler, own)
        return
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


def _ready() -> None:
    """A task that does nothing: submitted once per worker to start them all early."""


def _warm(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start ``workers`` workers of ``pool`` (on a thread: each fork waits for the fork server)."""
    try:
        for _ in range(workers):
            pool.submit(_ready)
    except RuntimeError:  # shut down first: the compile ended before its workers were needed
        pass


def threads_per_worker(workers: int) -> int:
    """OpenCV threads for each of ``workers`` pool workers: the cores this process may run on,
    shared out (at least one). ``-j 2`` on 16 cores gives each worker 8, as ``-j 1`` has all 16 in
    this process; ``-j`` at or above the core count gives one, so threads never outnumber cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks (macOS, Windows)
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def _worker_init(environ: dict[str, str], threads: int = 1) -> None:
    """A worker's set-up: this process's environment as it is now (the fork server's is the one
    it had when the server started: credentials or options set since would be missing), and
    OpenCV on ``threads`` threads (:func:`threads_per_worker`)."""
    if os.environ != environ:
        os.environ.clear()
        os.environ.update(environ)
    import cv2

    cv2.setNumThreads(threads)
