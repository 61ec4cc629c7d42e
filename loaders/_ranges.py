"""Byte ranges of one stored file: memory-mapped on local disk, ranged GETs on object storage,
optionally through a local block cache.

The cache is content-addressed: a file's blocks live under ``CACHE_DIR/<sha256 of the file>/``,
the checksum the manifest records for every shard file. Shards never change once written, and a
recompiled dataset whose bytes differ has other checksums, so a cached block can never be stale.
Blocks are written to a temporary name and renamed into place, so several DataLoader workers (or
training processes on one node) can share one cache folder: the worst case is that two of them
fetch the same block, and both write the same bytes. fsspec's own ``blockcache`` keeps its
block list in per-process memory and is not safe to share that way. Nothing is evicted: delete
the folder to reclaim the space.
"""

from __future__ import annotations

import io
import mmap
import os
import uuid
from pathlib import Path

import fsspec

from formats.errors import CorruptShardError
from formats.storage import retried

__all__ = ["CACHE_BLOCK", "CachedFile", "MappedFile", "RangeFile", "RemoteFile"]

CACHE_BLOCK = 1 << 20
"""Bytes per cached block: one ranged GET fetches whole blocks, so a sample's chunks (tens to
hundreds of KiB) cost at most one block more than they need, and their neighbours come along."""


class MappedFile:
    """A local file, memory-mapped: ``read`` returns views, no copy."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.size = len(self._map)

    def read(self, offset: int, nbytes: int) -> memoryview:
        return memoryview(self._map)[offset : offset + nbytes]


class RemoteFile:
    """A file on an fsspec filesystem, read with one ranged request per ``read``."""

    def __init__(self, fs: fsspec.AbstractFileSystem, path: str, size: int) -> None:
        self.fs, self.path, self.size = fs, path, size

    def read(self, offset: int, nbytes: int) -> bytes:
        """Bytes [offset, offset + nbytes): one ranged request, retried while it fails with a
        transient error (:func:`formats.storage.retried`); a short answer is an error too."""

        def request() -> bytes:
            data = self.fs.cat_file(self.path, start=offset, end=offset + nbytes)
            if len(data) != min(nbytes, max(self.size - offset, 0)) and self.size:
                raise _ShortRead(len(data))
            return data

        try:
            return retried(request)
        except _ShortRead as exc:  # the same short answer every time: the object is shorter than recorded
            raise CorruptShardError(
                self.path, f"truncated: {nbytes} bytes asked at {offset} of {self.size}, {exc.received} received"
            ) from None


class _ShortRead(ConnectionError):
    def __init__(self, received: int) -> None:
        self.received = received
        super().__init__(f"short read: {received} bytes")


class CachedFile:
    """A :class:`RemoteFile` read through the block cache (see the module docstring)."""

    def __init__(self, remote: RemoteFile, cache_dir: str | os.PathLike, sha256: str) -> None:
        self.remote, self.size = remote, remote.size
        self.folder = Path(cache_dir) / sha256
        self.folder.mkdir(parents=True, exist_ok=True)

    def _block_path(self, k: int) -> Path:
        return self.folder / f"{k:08d}"

    def read(self, offset: int, nbytes: int) -> bytes:
        if nbytes <= 0:
            return b""
        first, last = offset // CACHE_BLOCK, (offset + nbytes - 1) // CACHE_BLOCK
        parts: dict[int, bytes] = {}  # block -> the part of it this read needs
        missing = []
        for k in range(first, last + 1):
            lo, hi = (
                max(offset, k * CACHE_BLOCK) - k * CACHE_BLOCK,
                min(offset + nbytes, (k + 1) * CACHE_BLOCK) - k * CACHE_BLOCK,
            )
            try:
                fd = os.open(self._block_path(k), os.O_RDONLY)
            except FileNotFoundError:
                missing.append(k)
                continue
            try:
                parts[k] = os.pread(fd, hi - lo, lo)  # only the bytes needed, not the whole block
            finally:
                os.close(fd)
        # one request per run of consecutive missing blocks
        runs: list[list[int]] = []
        for k in missing:
            if runs and runs[-1][-1] == k - 1:
                runs[-1].append(k)
            else:
                runs.append([k])
        for run in runs:
            start = run[0] * CACHE_BLOCK
            data = self.remote.read(start, min(self.size, (run[-1] + 1) * CACHE_BLOCK) - start)
            for i, k in enumerate(run):
                block = data[i * CACHE_BLOCK : (i + 1) * CACHE_BLOCK]
                self._store(k, block)
                lo = max(offset, k * CACHE_BLOCK) - k * CACHE_BLOCK
                parts[k] = block[lo : min(offset + nbytes, (k + 1) * CACHE_BLOCK) - k * CACHE_BLOCK]
        return parts[first] if first == last else b"".join(parts[k] for k in range(first, last + 1))

    def _store(self, k: int, block: bytes) -> None:
        tmp = self.folder / f".{k:08d}.{uuid.uuid4().hex}.tmp"
        try:
            tmp.write_bytes(block)
            os.replace(tmp, self._block_path(k))
        except OSError:  # a full or read-only disk costs speed, not correctness
            tmp.unlink(missing_ok=True)


class RangeFile(io.RawIOBase):
    """A read-only, seekable file object over any of the above (for pyarrow's Parquet reader)."""

    def __init__(self, source: MappedFile | RemoteFile | CachedFile) -> None:
        super().__init__()
        self.source, self.pos = source, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.source.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: bytearray | memoryview) -> int:
        n = max(0, min(len(buffer), self.source.size - self.pos))
        if n:
            buffer[:n] = self.source.read(self.pos, n)
            self.pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        n = self.source.size - self.pos if size is None or size < 0 else min(size, self.source.size - self.pos)
        data = bytes(self.source.read(self.pos, n)) if n > 0 else b""
        self.pos += len(data)
        return data
