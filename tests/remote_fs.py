"""fsspec test doubles: copy a tree to ``memory://``, and a memory filesystem that counts the
bytes its files fetch (to check that remote reads fetch only what they need)."""

from __future__ import annotations

import uuid

import fsspec
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.spec import AbstractBufferedFile


def upload(local, protocol: str = "memory") -> str:
    """Copy a local tree to a fresh ``memory://`` (or ``countmem://``) URL; returns the URL."""
    url = f"{protocol}://in-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem(protocol)
    fs.put(str(local), url.split("://")[1], recursive=True)
    return url


class _CountingFile(AbstractBufferedFile):
    def _fetch_range(self, start, end):
        CountingFS.fetched += end - start
        return MemoryFileSystem.cat_file(self.fs, self.path, start, end)


class CountingFS(MemoryFileSystem):
    """``countmem://``: memory:// (the same store) whose reads add to ``CountingFS.fetched``."""

    protocol = "countmem"
    fetched = 0

    @classmethod
    def _strip_protocol(cls, path):
        return MemoryFileSystem._strip_protocol(path.replace("countmem://", "memory://", 1))

    def _open(self, path, mode="rb", block_size=None, **kwargs):
        if mode != "rb":
            return super()._open(path, mode, **kwargs)
        return _CountingFile(self, path, mode, block_size=block_size or 2**16, size=self.size(path))

    def cat_file(self, path, start=None, end=None, **kwargs):
        data = super().cat_file(path, start, end, **kwargs)
        CountingFS.fetched += len(data)
        return data


fsspec.register_implementation("countmem", CountingFS, clobber=True)
