"""One decompression of a gzipped volume, shared by the workers that compile its parts.

gzip has no random access: a worker compiling slices 400-499 of a ``.nii.gz`` decompresses slices
0-399 first, so a volume cut into N parts is decompressed about N/2 times over (a 16-worker compile
of one volume spent most of its time there). When a compile cuts a local ``.nii.gz`` into parts
for a local pool, :class:`Inflater` decompresses it once, front to back, on threads of the main
process, into a plain file of the same bytes (the ``.nii`` inside the ``.gz``) in a temporary
folder; each part reads its slices from that file as soon as the decompression has passed them
(:func:`wait_until`).

The protocol between the one writer and its readers is the file's size and two marker files
beside it: ``NAME.done`` once every byte is written, ``NAME.failed`` if the writer stopped (a
truncated or corrupt ``.gz``, a full disk). A reader whose bytes will never come falls back to
the ``.gz`` itself, whose read then raises the file's own error or simply works: the shared copy
only ever saves time, it never changes a byte or an error.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..scratch import owned_folder

__all__ = ["Inflater", "wait_until"]

CHUNK = 4 << 20
"""Bytes decompressed and written at a time."""

STALL_S = 60.0
"""A reader gives up waiting (and reads the ``.gz`` itself) after this long without growth."""


def wait_until(path: Path, size: int) -> bool:
    """Whether ``path`` holds at least ``size`` bytes, waiting while its writer is still writing:
    False once the writer failed, finished short of ``size``, or wrote nothing for
    :data:`STALL_S` seconds (the caller then reads the original file)."""
    done, failed = _markers(path)
    pause, last, since = 0.0005, -1, time.monotonic()
    while True:
        try:
            have = os.stat(path).st_size
        except FileNotFoundError:
            have = 0
        if have >= size:
            return True
        if failed.exists():
            return False
        if done.exists():
            return os.stat(path).st_size >= size
        if have != last:
            last, since = have, time.monotonic()
        elif time.monotonic() - since > STALL_S:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.01)


def _markers(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + ".done"), path.with_name(path.name + ".failed")


class Inflater:
    """Decompress ``.gz`` files to plain files in a temporary folder, in the order given, a few at
    once (a volume's image and label files side by side), on background threads.

    :attr:`plain` maps each ``.gz`` path (as a string) to its plain file's path, known at once;
    the files fill once :meth:`start` is called. Use as a context manager (which starts it), or
    call :meth:`close`: it stops the threads at their next chunk and removes the folder (its
    readers must be done by then).
    """

    def __init__(self, sources: list[Path], threads: int = 2) -> None:
        self.folder = Path(owned_folder(None, "apfcompile-inflate-"))
        self.plain = {str(p): str(self.folder / f"{i}.raw") for i, p in enumerate(dict.fromkeys(sources))}
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="apf-inflate")

    def start(self) -> None:
        for source, plain in self.plain.items():
            self._pool.submit(self._inflate, Path(source), Path(plain))

    def __enter__(self) -> Inflater:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def release(self, sources: list[Path]) -> None:
        """Remove the plain copies of ``sources`` once every reader of them is done (a temporary
        folder may be memory, as tmpfs: only the volumes in work occupy it). A copy still being
        written is unlinked now and its space freed when its writer ends."""
        for source in sources:
            plain = self.plain.get(str(source))
            if plain is not None:
                for path in (Path(plain), *_markers(Path(plain))):
                    path.unlink(missing_ok=True)

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _inflate(self, source: Path, plain: Path) -> None:
        from .readers.nifti import open_gzip

        done, failed = _markers(plain)
        try:
            with open_gzip(source) as src, open(plain, "wb", buffering=0) as out:
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                while not self._stop.is_set():
                    n = src.readinto(view)
                    if not n:
                        done.touch()
                        return
                    written = 0
                    while written < n:  # a raw write may take fewer bytes than it is given
                        written += out.write(view[written:n])
        except Exception:  # any failure: the readers fall back to the .gz and meet it there
            pass
        try:
            failed.touch()
        except OSError:  # a disk too full for an empty file: readers fall back once it stops growing
            pass
