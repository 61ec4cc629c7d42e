"""Where data lives: a local folder or any fsspec URL (``s3://``, ``gs://``, ``memory://``...).

:class:`Place` is the one type for "a place data lives" everywhere (inputs, outputs, datasets): a
local path or a URL together with the fsspec ``storage_options`` of its filesystem.
:class:`Location` is a place resolved to a filesystem and a path in it (:func:`locate`).

Local folders use plain files (and Zarr's ``LocalStore``, the fastest path); URLs go through
fsspec. Only what reading and writing datasets needs is here.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .errors import FormatError

if TYPE_CHECKING:
    import fsspec
    import zarr

__all__ = [
    "RETRY_DELAYS",
    "InputPath",
    "Location",
    "Place",
    "as_input_path",
    "is_url",
    "locate",
    "retried",
    "transient",
]

InputPath = Path | str
"""A local file or folder (``Path``) or a URL (``str`` with ``://``)."""


def is_url(path: object) -> bool:
    """True for an fsspec URL other than ``file://``."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    return "://" in text and not text.startswith("file://")


def as_input_path(path: str | os.PathLike) -> InputPath:
    """A URL stays a ``str``; anything else (``file://`` included) becomes a ``Path``."""
    if is_url(path):
        return str(path).rstrip("/")
    return Path(os.fspath(path).removeprefix("file://"))


def _join(base: InputPath, rel: str) -> InputPath:
    if is_url(rel):
        return rel
    if isinstance(base, Path):
        return base / rel
    protocol, rest = base.split("://", 1)
    return f"{protocol}://{posixpath.normpath(posixpath.join(rest, rel))}"


RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
"""Seconds to wait before each retry of a failed request to object storage (each delay with up to
50 % random jitter, so that workers that failed together do not retry together): seven retries,
about 6 s in all, on top of the retries the client (botocore, gcsfs) makes itself."""

_NOT_TRANSIENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FormatError)
_NO_CONNECTION = {
    "ConnectionRefusedError",
    "EndpointConnectionError",  # botocore: no server at the endpoint, after its own retries
    "ClientConnectorError",  # aiohttp: the same
    "NoCredentialsError",
    "NoRegionError",
}
"""Failures to reach the server at all: a wrong endpoint or missing credentials, which the
client has already retried (s3fs: ~11 s) and which waiting longer does not mend."""


def transient(exc: BaseException) -> bool:
    """Whether a request that raised ``exc`` may succeed if tried again: dropped connections,
    timeouts and server errors (the clients raise OSError kinds, or their own library's); never
    a missing object, a refusal, a server that cannot be reached at all or a format error."""
    if isinstance(exc, _NOT_TRANSIENT) or {c.__name__ for c in type(exc).__mro__} & _NO_CONNECTION:
        return False
    if isinstance(exc, OSError):
        return True
    return type(exc).__module__.split(".")[0] in ("aiohttp", "botocore", "urllib3", "requests", "google")


def retried(request, delays: tuple[float, ...] = RETRY_DELAYS):
    """``request()``, retried after each of ``delays`` while it fails with a :func:`transient`
    error; the last error is raised as it is."""
    import random
    import time

    for delay in delays:
        try:
            return request()
        except Exception as exc:
            if not transient(exc):
                raise
        time.sleep(delay * (1 + 0.5 * random.random()))
    return request()


@dataclass(frozen=True)
class Place:
    """A place data lives: a local ``Path`` or a URL ``str``, with the fsspec ``storage_options``
    of its filesystem (credentials, endpoint; None for local paths and defaults).

    ``str(place)`` is the path or URL as given, which is how errors name it.
    """

    path: InputPath
    storage_options: dict | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, where: Place | str | os.PathLike, storage_options: dict | None = None) -> Place:
        """A Place from a path, URL (``file://`` becomes a local path) or Place (kept as it is)."""
        if isinstance(where, Place):
            return where
        return cls(as_input_path(where), storage_options)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def is_url(self) -> bool:
        return isinstance(self.path, str)

    @property
    def local(self) -> Path | None:
        """The local path, or None for a URL."""
        return None if self.is_url else self.path

    @property
    def name(self) -> str:
        """The file name: last component of the path or URL."""
        return self.path.name if isinstance(self.path, Path) else posixpath.basename(self.path)

    @property
    def parent(self) -> Place:
        parent = self.path.parent if isinstance(self.path, Path) else self.path.rsplit("/", 1)[0]
        return Place(parent, self.storage_options)

    def join(self, rel: str) -> Place:
        """``rel`` (a relative POSIX path, or itself a URL) under this place, same options."""
        return Place(_join(self.path, rel), self.storage_options)

    def absolute(self) -> Place:
        """Local paths made absolute (workers on other hosts resolve no relative path)."""
        return self if self.is_url else Place(self.path.absolute(), self.storage_options)

    def location(self) -> Location:
        """The :class:`~formats.storage.Location` (filesystem + path) of this place."""
        return locate(self.path, self.storage_options)


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
        """The whole file ``rel``; on object storage, a failed request is retried (:func:`retried`)."""
        if self.local is not None:
            return self.fs.cat_file(self.sub(rel))
        return retried(lambda: self.fs.cat_file(self.sub(rel)))

    def isfile(self, rel: str) -> bool:
        return self.fs.isfile(self.sub(rel))

    def size(self, rel: str) -> int:
        return int(self.fs.size(self.sub(rel)))

    def open(self, rel: str, mode: str = "rb") -> IO[bytes]:
        return self.fs.open(self.sub(rel), mode)

    def zarr_group(self, rel: str) -> zarr.Group:
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


class _LocalFileSystem:
    """The local disk as the few fsspec calls a compile makes on it (``exists``, ``isdir``,
    ``isfile``, ``size``, ``cat_file``, ``pipe_file``, ``ls`` of names, ``rm``, ``makedirs``: the
    same answers and errors as fsspec's ``LocalFileSystem``), by ``os``; any other attribute is
    fsspec's, imported on first use. fsspec (and asyncio, which it imports) is ~0.14 s of every
    process that never touches a URL: a local compile and its workers."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def isfile(self, path: str) -> bool:
        return os.path.isfile(path)

    def size(self, path: str) -> int:
        return os.path.getsize(path)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        if start is not None or end is not None:
            return self._fsspec().cat_file(path, start=start, end=end)
        with open(path, "rb") as f:
            return f.read()

    def pipe_file(self, path: str, data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)

    def ls(self, path: str, detail: bool = True) -> list:
        if detail:
            return self._fsspec().ls(path, detail=True)
        if not os.path.isdir(path):
            os.stat(path)  # FileNotFoundError when missing, as fsspec
            return [path]
        return [posixpath.join(path, entry.name) for entry in os.scandir(path)]

    def rm(self, path: str, recursive: bool = False) -> None:
        if recursive and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        os.makedirs(path, exist_ok=exist_ok)

    @staticmethod
    def _fsspec():
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem()  # fsspec caches the instance

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):  # copy / pickle protocol lookups are this object's own
            raise AttributeError(name)
        return getattr(self._fsspec(), name)


_LOCAL_FS = _LocalFileSystem()


def locate(
    path_or_url: Place | str | os.PathLike, storage_options: dict | None = None, fresh: bool = False
) -> Location:
    """Resolve a :class:`Place`, a local path or an fsspec URL (``storage_options`` go to its
    filesystem; a Place brings its own).

    ``fresh``: a new filesystem instance, not fsspec's cached one (after a fork: asynchronous
    filesystems such as s3fs must not be shared across processes).
    """
    if isinstance(path_or_url, Place):
        path_or_url, storage_options = path_or_url.path, path_or_url.storage_options
    text = os.fspath(path_or_url)
    if "://" not in text or text.startswith("file://"):
        local = Path(text.removeprefix("file://"))
        return Location(text, _LOCAL_FS, str(local.absolute()), local)
    try:
        options = dict(storage_options or {})
        if fresh:
            options["skip_instance_cache"] = True
        import fsspec

        fs, path = fsspec.core.url_to_fs(text, **options)
    except ImportError as exc:
        need = exc.name or str(exc).rstrip(".") or "its fsspec backend"
        raise FormatError(
            f"{text}: reading or writing this URL needs a filesystem package ({need}); for s3:// install apfcompile[s3]"
        ) from None
    return Location(text, fs, path.rstrip("/"), None)
