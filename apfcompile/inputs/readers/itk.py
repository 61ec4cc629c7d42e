"""NRRD and MetaImage (MHA/MHD) volumes through SimpleITK (the ``volumes`` extra).

SimpleITK gives the voxels in index order (z, y, x) with a direction matrix and spacing in ITK's
LPS physical frame. They are turned into NIfTI's conventions — an X x Y x Z array and a RAS affine
— and brought to the same RAS+ orientation as :mod:`.nifti` does, so a volume gives the same
slices whichever of the three formats holds it. SimpleITK reads from file names only: a volume on
object storage is copied to a temporary file first (a ``.mhd`` with its data in a separate file
cannot be read that way).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
from nibabel import orientations

from .limits import check_pixels

__all__ = ["header", "pixel_dtype", "read"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def _sitk():
    try:
        import SimpleITK
    except ImportError:
        raise ValueError("reading NRRD/MHA/MHD needs SimpleITK: pip install 'apfcompile[volumes]'") from None
    SimpleITK.ProcessObject.SetGlobalWarningDisplay(False)  # failures reach users as one error line
    return SimpleITK


class _Local:
    """A file name for SimpleITK: the path itself, or a temporary copy of a stream."""

    def __init__(self, source: Path | BinaryIO, suffix: str) -> None:
        self.source, self.suffix, self.tmp = source, suffix, None

    def __enter__(self) -> str:
        if isinstance(self.source, Path):
            return str(self.source)
        fd, self.tmp = tempfile.mkstemp(suffix=self.suffix)
        with os.fdopen(fd, "wb") as f:
            f.write(self.source.read())
        return self.tmp

    def __exit__(self, *exc) -> None:
        if self.tmp is not None:
            os.unlink(self.tmp)


def _suffix(source: Path | BinaryIO) -> str:
    name = source.name if isinstance(source, Path) else getattr(source, "path", getattr(source, "name", ""))
    return Path(str(name)).suffix.lower() or ".nrrd"


def _ras_orientation(direction: tuple, spacing: tuple) -> np.ndarray:
    """nibabel's orientation (stored axis -> RAS axis, flip) of an ITK image's x, y, z axes."""
    lps = np.asarray(direction, float).reshape(3, 3) * np.asarray(spacing, float)[None, :]
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ lps
    return orientations.io_orientation(affine)


def header(source: Path | BinaryIO) -> tuple[tuple[int, ...], tuple[float, float, float]]:
    """(RAS+ shape, RAS+ voxel size in mm) from the header alone."""
    sitk = _sitk()
    with _Local(source, _suffix(source)) as name:
        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        reader.ReadImageInformation()
        size, spacing, direction = reader.GetSize(), reader.GetSpacing(), reader.GetDirection()
        channels = reader.GetNumberOfComponents()
    if len(size) != 3:
        raise ValueError(f"expected a 3-D volume, found {len(size)} dimensions")
    ornt = _ras_orientation(direction, spacing)
    shape, zooms = [0, 0, 0], [0.0, 0.0, 0.0]
    for stored, (axis, _) in enumerate(ornt):
        shape[int(axis)], zooms[int(axis)] = int(size[stored]), float(spacing[stored])
    return tuple(shape) + ((channels,) if channels > 1 else ()), (zooms[0], zooms[1], zooms[2])


def pixel_dtype(source: Path | BinaryIO) -> np.dtype | None:
    """The stored pixel type as a numpy dtype, from the header alone (None for complex/vector types)."""
    sitk = _sitk()
    with _Local(source, _suffix(source)) as name:
        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        reader.ReadImageInformation()
        ident = reader.GetPixelID()
    return pixel_dtype_of(sitk, ident)


def pixel_dtype_of(sitk, ident: int) -> np.dtype | None:
    """SimpleITK's pixel id as a numpy dtype (None for complex/vector types)."""
    names = {
        sitk.sitkUInt8: "uint8",
        sitk.sitkInt8: "int8",
        sitk.sitkUInt16: "uint16",
        sitk.sitkInt16: "int16",
        sitk.sitkUInt32: "uint32",
        sitk.sitkInt32: "int32",
        sitk.sitkUInt64: "uint64",
        sitk.sitkInt64: "int64",
        sitk.sitkFloat32: "float32",
        sitk.sitkFloat64: "float64",
    }
    return np.dtype(names[ident]) if ident in names else None


def read(source: Path | BinaryIO, slices: tuple[int, int] | None = None) -> np.ndarray:
    """The voxels as X x Y x Z [x C] in RAS+ order (:mod:`.nifti`'s convention), in their stored
    dtype; with ``slices``, only RAS+ slices ``[z0, z1)`` (the file is read whole: ITK has no
    partial reads for these formats)."""
    sitk = _sitk()
    with _Local(source, _suffix(source)) as name:
        reader = sitk.ImageFileReader()
        reader.SetFileName(name)
        reader.ReadImageInformation()
        components = reader.GetNumberOfComponents()
        dtype = pixel_dtype_of(sitk, reader.GetPixelID())
        check_pixels(tuple(reader.GetSize()), components * (dtype.itemsize if dtype is not None else 8))
        image = reader.Execute()
    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3-D volume, found {image.GetDimension()} dimensions")
    data = sitk.GetArrayFromImage(image)  # (z, y, x[, c]), C order: x-rows contiguous
    data = np.moveaxis(data, (0, 1, 2), (2, 1, 0))  # (x, y, z[, c]), a view; each z-slice one block
    out = orientations.apply_orientation(data, _ras_orientation(image.GetDirection(), image.GetSpacing()))
    return out if slices is None else out[:, :, slices[0] : slices[1]]
