"""Stacked arrays: N samples in one ``.npy`` or ``.npz`` (axis 0 = sample), never read whole.

A local ``.npy`` is memory-mapped; so is an ``.npz`` member stored without compression (what
``np.savez`` writes: the member's bytes sit in the zip file as they are). A compressed member
(``np.savez_compressed``) or a file on object storage is read whole, once per task. No pickle:
object arrays are refused by numpy's own ``allow_pickle=False``.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

__all__ = ["ArrayInfo", "array_infos", "open_array"]

ArrayInfo = tuple[tuple[int, ...], np.dtype]
"""(shape, dtype) of one stored array, from its header alone."""


def _npy_header(f: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran order, dtype, header length) of the ``.npy`` bytes starting at ``f``'s position."""
    start = f.tell()
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    if dtype.hasobject:
        raise ValueError("the array holds Python objects (pickle), which apfcompile never loads")
    return tuple(shape), fortran, dtype, f.tell() - start


def array_infos(source: Path | BinaryIO, suffix: str) -> dict[str, ArrayInfo]:
    """Every array of a ``.npy`` (named ``""``) or ``.npz`` (by member name, ``.npy`` dropped)."""
    if suffix == ".npy":
        with _opened(source) as f:
            shape, _, dtype, _ = _npy_header(f)
        return {"": (shape, dtype)}
    out = {}
    with zipfile.ZipFile(source) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with z.open(info) as f:
                shape, _, dtype, _ = _npy_header(_Peek(f))
            out[info.filename[: -len(".npy")]] = (shape, dtype)
    return out


def open_array(source: Path | BinaryIO, suffix: str, name: str) -> np.ndarray:
    """Array ``name`` (``""`` for a ``.npy``), memory-mapped where the file allows it (see above)."""
    if suffix == ".npy":
        if isinstance(source, Path):
            return np.load(source, mmap_mode="r", allow_pickle=False)
        return np.lib.format.read_array(source, allow_pickle=False)
    if isinstance(source, Path):
        with zipfile.ZipFile(source) as z:
            info = z.getinfo(name + ".npy")
            if info.compress_type == zipfile.ZIP_STORED:
                with open(source, "rb") as f:
                    f.seek(info.header_offset)
                    head = f.read(30)
                    name_len, extra_len = struct.unpack("<HH", head[26:30])
                    data = info.header_offset + 30 + name_len + extra_len
                    f.seek(data)
                    shape, fortran, dtype, length = _npy_header(f)
                return np.memmap(
                    source, dtype, mode="r", offset=data + length, shape=shape, order="F" if fortran else "C"
                )
    with zipfile.ZipFile(source) as z, z.open(name + ".npy") as f:
        return np.lib.format.read_array(f, allow_pickle=False)


class _Peek:
    """A zip member stream with the ``tell`` numpy's header readers need."""

    def __init__(self, f) -> None:
        self.f, self.pos = f, 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.pos += len(data)
        return data

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0 and pos == self.pos:
            return pos
        raise OSError("a zip member stream cannot seek")


class _opened:
    def __init__(self, source: Path | BinaryIO) -> None:
        self.source, self.f = source, None

    def __enter__(self):
        self.f = open(self.source, "rb") if isinstance(self.source, Path) else self.source
        return self.f

    def __exit__(self, *exc) -> None:
        if isinstance(self.source, Path):
            self.f.close()
