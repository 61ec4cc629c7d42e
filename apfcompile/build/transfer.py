"""A worker's samples back to the main process through one shared-memory file, not the pool's pipe.

A pool worker's result holds every sample it compiled: for a 100-slice CT volume ~23 MB of patch,
mask and node arrays. Through the pool's pipe those bytes are pickled into a buffer, written to the
pipe, read back and unpickled: four copies and thousands of system calls, and the unpickling runs
on the one thread of the main process that receives every worker's results. Instead the worker
writes the arrays once into a file of the compile's folder in shared memory (:func:`exported`),
and the pipe carries only their layout; the main process maps the file, removes its name and
takes the arrays as views of the mapping (:func:`imported`), so they cost it no copy at all.

Contract: ``imported(exported(result, folder))`` equals ``result`` array for array (values, shapes,
dtypes; the arrays are writable, copy-on-write views of the file); with no folder, little room
left in shared memory (other programs need it too), a failed write or nothing to move,
:func:`exported` returns the result as it was and it travels through the pipe as before. A file
nobody imports (a compile stopped early) goes with its folder, which the compile removes when it
ends (:func:`transfer_folder`).
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import CompileError
from ..scratch import owned_folder
from .samples import Result, Task, compile_input

__all__ = ["Shared", "compile_exported", "exported", "imported", "transfer_folder"]

SHARED_MEMORY = Path("/dev/shm")
"""Where the folder goes: a RAM-backed file system (Linux). Elsewhere results use the pipe."""

MIN_BYTES = 1 << 16
"""Results with fewer array bytes than this use the pipe (a file costs more than it saves)."""

KEEP_FREE = 256 << 20
"""Shared memory a worker leaves free whatever the file system's size (:func:`_room_for`)."""

_ALIGN = 64
_COLUMNS = ("x1", "x2", "y1", "y2", "size", "depth", "tile", "edges", "z1", "z2")
"""The array fields of a :class:`~formats.nodes.NodeTable`."""


@dataclass(frozen=True)
class Shared:
    """Where a result's arrays went: the file, and per array ``(record, field, offset, shape,
    dtype)``, ``field`` being ``image``, ``mask`` or ``nodes.COLUMN``."""

    path: str
    layout: tuple[tuple[int, str, int, tuple[int, ...], str], ...]


@contextlib.contextmanager
def transfer_folder(enabled: bool) -> Iterator[str | None]:
    """A new folder in shared memory for one compile's results, removed on leaving with whatever
    is left in it; None where there is none to make (``enabled`` False, no ``/dev/shm``, not
    writable). Leave it after the pool has shut down: a worker still finishing a task may write a
    file into it until then. Folders left by killed compiles are removed first
    (:func:`~apfcompile.scratch.owned_folder`)."""
    folder = None
    if enabled and SHARED_MEMORY.is_dir():
        try:
            folder = owned_folder(SHARED_MEMORY, "apf-results-")
        except OSError:
            folder = None
    try:
        yield folder
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _arrays(result: Result) -> Iterator[tuple[int, str, np.ndarray]]:
    """``(record, field, array)`` of every array a result's records hold, in a fixed order."""
    for i, rec in enumerate(result.records):
        yield i, "image", rec.image
        if rec.mask is not None:
            yield i, "mask", rec.mask
        nodes = rec.nodes
        for name in _COLUMNS:
            column = getattr(nodes, name)
            if column is not None:
                yield i, f"nodes.{name}", column


def compile_exported(task: Task) -> Result:
    """:func:`~.samples.compile_input` in a pool worker: its result :func:`exported` to
    ``task.transfer``."""
    return exported(compile_input(task), task.transfer)


def exported(result: Result, folder: str | None) -> Result:
    """Worker side: ``result`` with its records' arrays written into a new file of ``folder`` and
    set to None, ``result.shared`` saying where they are; or ``result`` unchanged (see the module
    docstring)."""
    if folder is None or not result.records:
        return result
    arrays = [(i, name, np.ascontiguousarray(a)) for i, name, a in _arrays(result)]
    if sum(a.nbytes for *_, a in arrays) < max(MIN_BYTES, 1):  # (an empty file cannot be mapped)
        return result
    layout, offset = [], 0
    for i, name, a in arrays:
        layout.append((i, name, offset, tuple(a.shape), a.dtype.str))
        offset += -(-a.nbytes // _ALIGN) * _ALIGN
    if not _room_for(folder, offset):
        return result
    path = None
    try:
        fd, path = tempfile.mkstemp(prefix=f"{result.index}-", dir=folder)
        try:
            # pwrite, not a mapping: a full shared memory is then an error here, not a SIGBUS
            for (_, _, at, _, _), (*_, a) in zip(layout, arrays):
                view = memoryview(a.reshape(-1).view(np.uint8))
                while view.nbytes:
                    n = os.pwrite(fd, view, at)
                    view, at = view[n:], at + n
            os.ftruncate(fd, offset)
        finally:
            os.close(fd)
    except OSError:  # shared memory full, or the folder gone (the compile is over): use the pipe
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return result
    records = list(result.records)
    for i in {i for i, *_ in layout}:
        rec = records[i]
        gone = {name: None for name in _COLUMNS if getattr(rec.nodes, name) is not None}
        records[i] = replace(rec, image=None, mask=None, nodes=replace(rec.nodes, **gone))
    return replace(result, records=records, shared=Shared(path, tuple(layout)))


def _room_for(folder: str, nbytes: int) -> bool:
    """Whether ``nbytes`` more in ``folder``'s file system leave it a good share free: a quarter
    of it and :data:`KEEP_FREE` at least. Other programs need shared memory too (a training job's
    DataLoader workers, on the same node); a small one (Docker's default is 64 MB) is left to them."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    return free - nbytes >= max(total // 4, KEEP_FREE)


def imported(result: Result) -> Result:
    """Main-process side: ``result`` with its records' arrays back, as views of the file, whose
    name is removed at once (the mapping lives as long as the arrays); ``result`` itself if it
    came through the pipe."""
    shared = result.shared
    if shared is None:
        return result
    try:
        with open(shared.path, "rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        os.unlink(shared.path)
    except OSError as exc:  # removed under the compile (e.g. logind's RemoveIPC at logout)
        raise CompileError(
            f"{shared.path}: a worker's samples in shared memory are gone ({(exc.strerror or str(exc)).lower()}); run "
            "the same command with --resume (the shards finished so far are kept)"
        ) from None
    buffer = np.frombuffer(mapped, np.uint8)
    found: dict[int, dict[str, np.ndarray]] = {}
    for i, name, offset, shape, dtype in shared.layout:
        dt = np.dtype(dtype)
        nbytes = math.prod(shape) * dt.itemsize
        found.setdefault(i, {})[name] = buffer[offset : offset + nbytes].view(dt).reshape(shape)
    records = list(result.records)
    for i, arrays in found.items():
        rec = records[i]
        columns = {name[6:]: a for name, a in arrays.items() if name.startswith("nodes.")}
        records[i] = replace(rec, image=arrays["image"], mask=arrays.get("mask"), nodes=replace(rec.nodes, **columns))
    return replace(result, records=records, shared=None)
