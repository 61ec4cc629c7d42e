"""Where inputs live: a local path, or an fsspec URL (``s3://``, ``gs://``, ``memory://``...).

A :class:`Place` is a :class:`~pathlib.Path` on local disk or a ``str`` URL elsewhere, together with
the ``storage_options`` of its filesystem (credentials, endpoint); places flow through layouts,
frames, readers and sources unchanged, so no function needs the options beside the path. Remote files are never copied
whole unless a reader needs a file name: slides are read tile by tile through a file object (only
the pyramid level chosen is fetched), PNG/NumPy files are read into memory, NIfTI headers are read
from the first bytes of the stream.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

from formats.errors import FormatError
from formats.storage import InputPath, Location, Place, as_input_path, is_url

from ..errors import APFWarning, InputError, InputNotFoundError

__all__ = [
    "STREAM_BLOCK",
    "InputPath",
    "Place",
    "as_input_path",
    "input_root",
    "is_file",
    "is_url",
    "list_files",
    "open_input",
    "symlink_policy",
]

_BLOCK = 64 << 10
"""Remote read-ahead for whole-file and header reads: tifffile fetches a pyramid level's tiles in
large reads of its own, so a bigger block only over-fetches around the IFDs it hops between
(bench_remote.py: a 16,384^2 PAIP case at --resolution 2048 fetched 43 MiB of 89 with 4 MiB
blocks, 3 MiB with 64 KiB, in the same ~24 requests)."""

STREAM_BLOCK = 4 << 20
"""Read-ahead for band-by-band reading (:class:`apfcompile.inputs.sources.TiffSource`), which asks for
one tile at a time: a block holds a run of neighbouring tiles."""


def _unreachable(where: object, exc: BaseException) -> InputError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return InputError(
        where,
        f"cannot be read ({type(exc).__name__}: {detail})",
        "check the URL, the credentials (--storage-option or the environment) and the endpoint",
    )


def _exists_after_all(loc: Location) -> bool:
    """Object storage clients answer ``exists`` with no for any failure: ask again, so that a
    credential or endpoint problem raises its own error instead of reading as "not found"."""
    try:
        loc.fs.info(loc.path)
    except FileNotFoundError:
        return False
    return True


def input_root(path: Place) -> Location:
    """The :class:`~formats.storage.Location` of an INPUT (or ``--masks``) root; raises
    :class:`InputNotFoundError` when nothing is there, :class:`InputError` when it cannot be asked."""
    try:
        loc = path.location()
        exists = loc.fs.exists(loc.path) or _exists_after_all(loc)
    except FormatError as exc:
        raise InputError(path, str(exc).split(": ", 1)[-1]) from None
    except Exception as exc:  # object storage clients raise their own kinds (credentials, endpoint)
        raise _unreachable(path, exc) from None
    if not exists:
        raise InputNotFoundError(path, "check the INPUT path (and for a URL, the bucket and credentials)")
    return loc


_FOLLOW_SYMLINKS: ContextVar[bool] = ContextVar("follow_symlinks", default=False)


@contextlib.contextmanager
def symlink_policy(follow: bool) -> Iterator[None]:
    """Within the block, :func:`list_files` follows symbolic links that point outside the root
    (``--follow-symlinks``); by default it leaves them out, with one warning."""
    token = _FOLLOW_SYMLINKS.set(bool(follow))
    try:
        yield
    finally:
        _FOLLOW_SYMLINKS.reset(token)


def list_files(loc: Location) -> list[str]:
    """Every file under ``loc`` as sorted relative POSIX paths; hidden files and folders are left out.

    On local disk, a symbolic link (to a file or a folder) whose target lies outside the root is
    left out unless :func:`symlink_policy` says to follow (one ``APFWarning`` names how many and
    the first); so is a broken link (warned the same way). Links to folders inside the root are
    not entered (their files are listed where they really are); followed links to folders are
    entered once each (no cycles)."""
    if loc.local is not None:
        root = loc.local
        if root.is_file():
            return []
        rels = _walk_local(root, _FOLLOW_SYMLINKS.get())
    else:
        try:
            found = loc.fs.find(loc.path)
        except Exception as exc:
            raise _unreachable(loc.url, exc) from None
        prefix = loc.path.rstrip("/") + "/"
        rels = (p[len(prefix) :] for p in found if p.startswith(prefix))
    return sorted(r for r in rels if not any(part.startswith(".") for part in r.split("/")))


def _walk_local(root: Path, follow: bool) -> list[str]:
    real_root = os.path.realpath(root)
    inside = lambda p: os.path.commonpath([real_root, p]) == real_root  # noqa: E731
    rels, outside, broken, seen = [], [], [], {real_root}
    for folder, dirs, files in os.walk(root, followlinks=True):
        rel_folder = os.path.relpath(folder, root)
        keep = []
        for d in sorted(dirs):
            path = os.path.join(folder, d)
            if d.startswith(".") or not os.path.islink(path):
                keep.append(d)
                continue
            real = os.path.realpath(path)
            if not inside(real) and not follow:
                outside.append(os.path.normpath(os.path.join(rel_folder, d)))
            elif not inside(real) and real not in seen:
                seen.add(real)
                keep.append(d)
        dirs[:] = keep
        for f in files:
            path = os.path.join(folder, f)
            rel = os.path.normpath(os.path.join(rel_folder, f)).replace(os.sep, "/")
            if os.path.islink(path):
                real = os.path.realpath(path)
                if not os.path.isfile(real):
                    broken.append(rel)
                    continue
                if not inside(real) and not follow:
                    outside.append(rel)
                    continue
            elif not os.path.isfile(path):
                continue
            rels.append(rel)
    hidden = lambda r: any(part.startswith(".") for part in r.split("/"))  # noqa: E731
    outside, broken = [r for r in outside if not hidden(r)], [r for r in broken if not hidden(r)]
    if outside:
        warnings.warn(
            f"{root}: left out {len(outside)} symbolic link(s) pointing outside INPUT (e.g. {outside[0]} -> "
            f"{os.path.realpath(root / outside[0])}); pass --follow-symlinks to compile what they point to",
            APFWarning,
            stacklevel=2,
        )
    if broken:
        warnings.warn(
            f"{root}: left out {len(broken)} broken symbolic link(s) (e.g. {broken[0]})", APFWarning, stacklevel=2
        )
    return rels


def is_file(loc: Location) -> bool:
    return loc.local.is_file() if loc.local is not None else loc.fs.isfile(loc.path)


@contextlib.contextmanager
def open_input(path: Place, block_size: int | None = None) -> Iterator[tuple[Path | BinaryIO, int]]:
    """``(source, size in bytes)`` of one input file: the ``Path`` itself for a local file, an open
    binary file object (seekable, read ahead in blocks of ``block_size``, default ``_BLOCK``) for
    a URL. Raises InputNotFoundError."""
    if not path.is_url:
        local = path.path
        if not local.exists():
            raise InputNotFoundError(local)
        yield local, (0 if local.is_dir() else local.stat().st_size)
        return
    try:
        loc = path.location()
        info = loc.fs.info(loc.path)
        handle = loc.fs.open(loc.path, "rb", block_size=block_size or _BLOCK)
    except FileNotFoundError:
        raise InputNotFoundError(path) from None
    except FormatError as exc:
        raise InputError(path, str(exc).split(": ", 1)[-1]) from None
    except Exception as exc:
        raise _unreachable(path, exc) from None
    with handle:
        yield handle, (0 if info.get("type") == "directory" else int(info.get("size") or 0))
