"""DICOM series through SimpleITK/GDCM (the ``volumes`` extra): a folder of ``.dcm`` files is one
volume, sorted by GDCM along its slice normal and brought to RAS+ like every volume
(:mod:`.itk`). The reader is handed any one file of the series; it reads the series of that file's
folder. A folder holding two series is refused (one line, naming both UIDs). Local folders only.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
from nibabel import orientations

from ...errors import UnreadableInputError
from .itk import _ras_orientation, _sitk
from .limits import check_pixels

__all__ = ["header", "read"]


def _files(source: Path | BinaryIO) -> list[str]:
    """The file names of the one series in the folder of ``source``, in GDCM's slice order."""
    if not isinstance(source, Path):
        raise ValueError("DICOM series are read from local folders; copy the series to local disk first")
    sitk = _sitk()
    folder = str(source.parent)
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    if len(ids) != 1:
        found = ", ".join(ids) if ids else "none"
        raise UnreadableInputError(
            folder,
            f"a DICOM folder must hold exactly one series, found {len(ids)} ({found})",
            "put each series in a folder of its own",
        )
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, ids[0]))


def _series(source: Path | BinaryIO, files: list[str] | None = None):
    sitk = _sitk()
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files if files is not None else _files(source))
    return sitk, reader.Execute()


def _canonical(sitk, image) -> np.ndarray:
    data = np.moveaxis(sitk.GetArrayFromImage(image), (0, 1, 2), (2, 1, 0))  # (x, y, z[, c])
    return orientations.apply_orientation(data, _ras_orientation(image.GetDirection(), image.GetSpacing()))


def header(source: Path | BinaryIO) -> tuple[tuple[int, ...], tuple[float, float, float]]:
    """(RAS+ shape, RAS+ voxel size in mm) from the first two files of the series (their positions
    give the slice spacing) and its file count: the voxels are not read."""
    files = _files(source)
    _, image = _series(source, files[:2] if len(files) > 1 else files)
    if image.GetDimension() != 3:
        raise ValueError("a DICOM series of one 2-D slice is not a volume; read it as an image instead")
    ornt = _ras_orientation(image.GetDirection(), image.GetSpacing())
    size, spacing = (*image.GetSize()[:2], len(files)), image.GetSpacing()
    shape, zooms = [0, 0, 0], [0.0, 0.0, 0.0]
    for stored, (axis, _) in enumerate(ornt):
        shape[int(axis)], zooms[int(axis)] = int(size[stored]), float(spacing[stored])
    return tuple(shape), (zooms[0], zooms[1], zooms[2])


def read(source: Path | BinaryIO, slices: tuple[int, int] | None = None) -> np.ndarray:
    """The series as X x Y x Z in RAS+ order; with ``slices``, only RAS+ slices ``[z0, z1)``."""
    check_pixels(header(source)[0])
    sitk, image = _series(source)
    out = _canonical(sitk, image)
    return out if slices is None else out[:, :, slices[0] : slices[1]]
