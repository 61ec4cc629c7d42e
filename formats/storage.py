"""Where a dataset lives: a local folder or any fsspec URL (``s3://``, ``gs://``, ``memory://``...).

Local folders use plain files (and Zarr's ``LocalStore``, the fastest path); URLs go through
fsspec. Only what reading and writing datasets needs is here.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

import fsspec
from fsspec.implementations.local import LocalFileSystem

from .errors import FormatError

__all__ = ["Location", "locate"]


@dataclass(frozen=True)
class Location:
    """A dataset root: ``fs`` + ``path`` inside it; ``local`` is the Path when on local disk."""

    url: str
    fs: fsspec.AbstractFileSystem
    path: str
    local: Path | None

    def sub(self, rel: str) -> str:
        """The fs path of ``rel`` (a relative POSIX path) under the root."""
        return posixpath.join(self.path, rel) if rel else self.path

    def display(self, rel: str = "") -> str:
        return str(self.local / rel) if self.local is not None else posixpath.join(self.url.rstrip("/"), rel)

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self.sub(rel))

    def isfile(self, rel: str) -> bool:
        return self.fs.isfile(self.sub(rel))

    def size(self, rel: str) -> int:
        return int(self.fs.size(self.sub(rel)))

    def open(self, rel: str, mode: str = "rb"):
        return self.fs.open(self.sub(rel), mode)

    def zarr_group(self, rel: str):
        """The Zarr group at ``rel``, opened read-only (zarr is imported on first use)."""
        import zarr

        if self.local is not None:
            return zarr.open_group(zarr.storage.LocalStore(self.local / rel, read_only=True), mode="r")
        store = zarr.storage.FsspecStore.from_url(
            self.display(rel), read_only=True, storage_options=getattr(self.fs, "storage_options", None)
        )
        return zarr.open_group(store, mode="r")

    def parquet_args(self, rel: str) -> tuple[str, object | None]:
        """(path, filesystem) for ``pyarrow.parquet.read_table``."""
        if self.local is not None:
            return str(self.local / rel), None
        return self.sub(rel), self.fs


def locate(path_or_url: str | os.PathLike, storage_options: dict | None = None, fresh: bool = False) -> Location:
    """Resolve a local path or an fsspec URL (``storage_options`` go to its filesystem).

    ``fresh``: a new filesystem instance, not fsspec's cached one (after a fork: asynchronous
    filesystems such as s3fs must not be shared across processes).
    """
    text = os.fspath(path_or_url)
    if "://" not in text or text.startswith("file://"):
        local = Path(text.removeprefix("file://"))
        return Location(text, LocalFileSystem(), str(local.absolute()), local)
    try:
        options = dict(storage_options or {})
        if fresh:
            options["skip_instance_cache"] = True
        fs, path = fsspec.core.url_to_fs(text, **options)
    except ImportError as exc:
        need = exc.name or str(exc).rstrip(".") or "its fsspec backend"
        raise FormatError(
            f"{text}: reading or writing this URL needs a filesystem package ({need}); for s3:// install apfcompile[s3]"
        ) from None
    return Location(text, fs, path.rstrip("/"), None)
