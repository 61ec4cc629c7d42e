"""Stacked arrays: N samples in one ``.npy``, ``.npz`` or HDF5 file (axis 0 = sample), never read whole.

A local ``.npy`` is memory-mapped; so is an ``.npz`` member stored without compression (what
``np.savez`` writes: the member's bytes sit in the zip file as they are). A compressed member
(``np.savez_compressed``) or a file on object storage is read whole, once per task. No pickle:
object arrays are refused by numpy's own ``allow_pickle=False``. HDF5 (``.h5``/``.hdf5``, h5py from
the ``hdf5`` extra): every dataset at any depth, by its path (``x_train``, ``train/images``), read
one sample at a time through h5py.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .limits import check_pixels

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


_HDF5 = (".h5", ".hdf5")


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ValueError("reading HDF5 needs h5py: pip install 'apfcompile[hdf5]'") from None
    return h5py


def _h5_datasets(group, prefix: str = "") -> dict:
    out = {}
    for name, node in group.items():
        path = f"{prefix}{name}"
        if hasattr(node, "shape"):
            out[path] = node
        else:
            out.update(_h5_datasets(node, path + "/"))
    return out


def array_infos(source: Path | BinaryIO, suffix: str) -> dict[str, ArrayInfo]:
    """Every array of a ``.npy`` (named ``""``), ``.npz`` (by member name, ``.npy`` dropped) or HDF5
    file (by dataset path)."""
    if suffix in _HDF5:
        with _h5py().File(source, "r") as f:
            return {n: (tuple(d.shape), np.dtype(d.dtype)) for n, d in _h5_datasets(f).items()}
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
    """Array ``name`` (``""`` for a ``.npy``), memory-mapped where the file allows it (see above);
    an HDF5 dataset stays in its file (indexing it reads that much), which stays open as long as
    the dataset is referenced."""
    if suffix in _HDF5:
        dataset = _h5py().File(source, "r")[name]
        return dataset if isinstance(source, Path) else dataset[()]  # a stream closes: read it now
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


def read(source: Path | BinaryIO) -> np.ndarray:
    """An HDF5 file as one image: its dataset ``image``, or its only dataset."""
    with _h5py().File(source, "r") as f:
        datasets = _h5_datasets(f)
        name = "image" if "image" in datasets else next(iter(datasets)) if len(datasets) == 1 else None
        if name is None:
            raise ValueError(f"holds datasets {sorted(datasets)}; expected one named 'image' or a single dataset")
        shape = tuple(datasets[name].shape)
        channels = shape[-1] if len(shape) >= 3 and shape[-1] <= 4 else 1
        spatial = shape[:-1] if len(shape) >= 3 and shape[-1] <= 4 else shape
        check_pixels(spatial, np.dtype(datasets[name].dtype).itemsize * channels)
        return datasets[name][()]


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
