"""NIfTI-1/2 volumes through nibabel, from a file or from a stream (gzip or not)."""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import nibabel as nib
import numpy as np
from nibabel import orientations

from ..inflate import wait_until
from .limits import check_pixels

# nibabel logs header fixes ("sizeof_hdr should be 348...") to stderr; what matters reaches users
# as the reader's result or its one error line.
logging.getLogger("nibabel").setLevel(logging.ERROR + 10)

try:  # Intel ISA-L's gzip: the same bytes, decompressed 2-3x faster than zlib
    from isal import igzip
except ImportError:  # pragma: no cover - isal is a dependency; a platform without its wheel
    igzip = None


def load(source: Path | BinaryIO) -> nib.spatialimages.SpatialImage:
    """The image with its header read and its voxels not yet: a file through ``nib.load``, a
    stream through ``from_stream`` (NIfTI-1, else NIfTI-2; gzip recognised by its magic bytes)."""
    if isinstance(source, Path):
        if source.suffix.lower() != ".gz" or igzip is None:
            return nib.load(source)
        source = igzip.open(source, "rb")  # ~2x faster than gzip; seeks forward, reads only what is asked
    magic = source.read(2)
    source.seek(0)
    gz = gzip.GzipFile if igzip is None else igzip.IGzipFile
    stream = gz(fileobj=source, mode="rb") if magic == b"\x1f\x8b" else source
    head = stream.read(4)
    stream.seek(0)
    sizeof_hdr = {int.from_bytes(head, "little"), int.from_bytes(head, "big")}
    if 540 in sizeof_hdr:
        return nib.Nifti2Image.from_stream(stream)
    if 348 in sizeof_hdr:
        return nib.Nifti1Image.from_stream(stream)
    raise ValueError("not a NIfTI-1 or NIfTI-2 file (header size is neither 348 nor 540)")


def _orientation(img: nib.spatialimages.SpatialImage) -> np.ndarray | None:
    """nibabel's ``io_orientation`` of the image's affine (stored axis -> (RAS axis, flip)), or None
    for a 2-D image or an affine that names no orientation."""
    if len(img.shape) < 3:
        return None
    ornt = orientations.io_orientation(img.affine)
    return None if np.isnan(ornt).any() else ornt


def canonical_shape(img: nib.spatialimages.SpatialImage) -> tuple[int, ...]:
    """The image's shape once brought to RAS (axis 0 towards Right... axis 2 towards Superior)."""
    ornt = _orientation(img)
    if ornt is None:
        return tuple(img.shape)
    out = list(img.shape)
    for stored, (axis, _) in enumerate(ornt):
        out[int(axis)] = img.shape[stored]
    return tuple(out)


def header(source: Path | BinaryIO) -> tuple[tuple[int, ...], tuple[float, float, float] | None]:
    """(RAS+ shape, RAS+ voxel size in mm or None) from the header alone."""
    img = load(source)
    return canonical_shape(img), canonical_zooms(img)


def oriented(source: Path | BinaryIO) -> bool:
    """Whether the header's affine names an orientation (False for a zero or degenerate matrix:
    the volume is then sliced as stored)."""
    img = load(source)
    return len(img.shape) < 3 or _orientation(img) is not None


def canonical_zooms(img: nib.spatialimages.SpatialImage) -> tuple[float, float, float] | None:
    """Voxel size (mm) along the RAS+ axes of :func:`read`'s array; None for a 2-D image."""
    zooms = img.header.get_zooms()
    if len(img.shape) < 3 or len(zooms) < 3:
        return None
    ornt = _orientation(img)
    out = [float(z) for z in zooms[:3]]
    if ornt is not None:
        for stored, (axis, _) in enumerate(ornt):
            out[int(axis)] = float(zooms[stored])
    return out[0], out[1], out[2]


def read(source: Path | BinaryIO, slices: tuple[int, int] | None = None) -> np.ndarray:
    """The voxel array in its stored dtype (scaling slopes ignored for ints), brought to the closest
    canonical (RAS+) orientation, as ``nibabel.as_closest_canonical`` does: whatever the affine it
    was saved with, the same anatomy gives the same array, and axis 2 runs inferior to superior.
    With ``slices = (z0, z1)``, only canonical slices ``[z0, z1)`` (nibabel reads no more of the
    file than it must).

    A stream is read whole first, in one request: gzip would otherwise pull it in small pieces."""
    if not isinstance(source, Path):
        source = io.BytesIO(source.read())
    img = load(source)
    spatial = list(img.shape[:3])
    if slices is not None and len(spatial) == 3:
        spatial[2] = max(0, min(slices[1], spatial[2]) - max(slices[0], 0))
    check_pixels(
        tuple(spatial) + tuple(img.shape[3:4]) if len(img.shape) > 3 else tuple(spatial),
        img.get_data_dtype().itemsize,
    )
    ornt = _orientation(img)
    proxy = img.dataobj
    if ornt is None:
        return np.asarray(proxy if slices is None else proxy[:, :, slices[0] : slices[1]])
    if slices is None:
        data = np.asarray(proxy)
    else:  # the stored axis that becomes axis 2, read over the stored range of those slices
        stored = int(np.flatnonzero(ornt[:, 0] == 2)[0])
        n, (z0, z1) = img.shape[stored], slices
        a, b = (n - z1, n - z0) if ornt[stored, 1] < 0 else (z0, z1)
        cut = [slice(None)] * len(img.shape)
        cut[stored] = slice(max(a, 0), max(b, 0))
        data = np.asarray(proxy[tuple(cut)])
    # A view (flips, transposes) of the stored array: NIfTI voxels come Fortran-ordered, so a slice
    # along axis 2 stays one contiguous block; a C-ordered copy would make every slice a strided gather.
    return orientations.apply_orientation(data, ornt)


def open_gzip(path: Path) -> BinaryIO:
    """A ``.gz`` file opened for reading, through ISA-L where it is installed."""
    return igzip.open(path, "rb") if igzip is not None else gzip.open(path, "rb")


def slice_blocks(
    source: Path, slices: tuple[int, int] | None, block: int, plain: Path | None = None
) -> Iterator[np.ndarray] | None:
    """Canonical slices ``[z0, z1)`` (all with None) in blocks of at most ``block`` slices, each
    X x Y x k and equal to :func:`read`'s slices, read front to back from one open stream: a gzip
    file is decompressed once, a block at a time, never held whole. None where a volume cannot be
    read so, and :func:`read` reads it: more or fewer than three axes, scaled or byte-swapped
    voxels, or slices that the file does not store in canonical order (its axis 2 is not the
    canonical axis 2, or runs the other way). The header is read now, the voxels as blocks are asked for.

    ``plain``: the bytes of a ``.gz`` ``source`` decompressed by another thread or process, still
    being written (:mod:`apfcompile.inputs.inflate`): blocks are read from it once it holds them,
    and from ``source`` itself if it never will, or if it is not there yet when the first block
    is asked for (its decompression has not started: the others come first)."""
    img = load(source)
    ornt = _orientation(img)
    proxy = img.dataobj
    dtype = np.dtype(proxy.dtype)
    if (
        len(img.shape) != 3
        or not dtype.isnative
        or (ornt is not None and (ornt[2, 0] != 2 or ornt[2, 1] < 0))
        or float(proxy.slope) != 1.0
        or float(proxy.inter) != 0.0
        or getattr(proxy, "order", "F") != "F"
    ):
        return None
    x, y, n = img.shape
    z0, z1 = (0, n) if slices is None else (max(0, slices[0]), min(slices[1], n))
    check_pixels((x, y, max(z1 - z0, 0)), dtype.itemsize)
    return _blocks(source, int(proxy.offset), dtype, (x, y), range(z0, z1), max(1, block), ornt, plain)


def _blocks(
    source: Path,
    offset: int,
    dtype: np.dtype,
    xy: tuple[int, int],
    z: range,
    block: int,
    ornt: np.ndarray | None,
    plain: Path | None,
) -> Iterator[np.ndarray]:
    per = xy[0] * xy[1] * dtype.itemsize  # bytes of one stored slice
    gz = source.suffix.lower() == ".gz"
    f = None
    if plain is not None:
        try:
            f = open(plain, "rb")
        except FileNotFoundError:  # the shared decompression has not reached this file yet: no wait
            plain = None
    if f is None:
        f = open_gzip(source) if gz else open(source, "rb")
    try:
        f.seek(offset + z.start * per)  # gzip: decompresses what comes before, once
        for a in range(z.start, z.stop, block):
            k = min(block, z.stop - a)
            if plain is not None and not wait_until(plain, offset + (a + k) * per):
                f.close()  # the shared decompression stopped short: the file's own read, and its error
                f, plain = open_gzip(source), None
                f.seek(offset + a * per)
            buf = np.empty(k * per, np.uint8)
            view, got = memoryview(buf), 0
            while got < buf.size:
                n = f.readinto(view[got:])
                if not n:
                    raise ValueError(f"the file ends inside slice {a + got // per} of {z.stop}; it is truncated")
                got += n
            data = buf.view(dtype).reshape(xy + (k,), order="F")
            yield data if ornt is None else orientations.apply_orientation(data, ornt)
    finally:
        f.close()


def streamable(source: Path) -> bool:
    """Whether :func:`slice_blocks` reads this file (from its header alone)."""
    blocks = slice_blocks(source, (0, 0), 1)
    if blocks is None:
        return False
    blocks.close()
    return True
