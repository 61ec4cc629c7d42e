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
from .dicom_elements import check_elements
from .itk import _ras_orientation, _sitk
from .limits import check_pixels

__all__ = ["header", "read"]


def _files(source: Path | BinaryIO) -> list[str]:
    """The file names of the one series in the folder of ``source``, in GDCM's slice order."""
    if not isinstance(source, Path):
        raise ValueError("DICOM series are read from local folders; copy the series to local disk first")
    sitk = _sitk()
    folder = str(source.parent)
    for path in sorted(source.parent.glob("*")):  # GDCM parses every file of the folder
        if path.is_file() and path.suffix.lower() == ".dcm":
            try:
                check_elements(path)
            except ValueError as exc:
                raise UnreadableInputError(path, str(exc), "re-export the series, or remove that file") from None
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


def _guard(files: list[str]) -> None:
    """The pixel and memory guards (:func:`~.limits.check_pixels`) on the whole series, from the
    first file's header alone (ITK allocates a slice's pixels before reading them)."""
    from .itk import pixel_dtype_of

    sitk = _sitk()
    reader = sitk.ImageFileReader()
    reader.SetFileName(files[0])
    reader.ReadImageInformation()
    x, y = reader.GetSize()[:2]
    dtype = pixel_dtype_of(sitk, reader.GetPixelID())
    check_pixels((x, y, len(files)), reader.GetNumberOfComponents() * (dtype.itemsize if dtype is not None else 8))


def _canonical(sitk, image) -> np.ndarray:
    data = np.moveaxis(sitk.GetArrayFromImage(image), (0, 1, 2), (2, 1, 0))  # (x, y, z[, c])
    return orientations.apply_orientation(data, _ras_orientation(image.GetDirection(), image.GetSpacing()))


def header(source: Path | BinaryIO) -> tuple[tuple[int, ...], tuple[float, float, float]]:
    """(RAS+ shape, RAS+ voxel size in mm) from the first two files of the series (their positions
    give the slice spacing) and its file count: the voxels are not read."""
    files = _files(source)
    _guard(files)
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
    files = _files(source)
    _guard(files)
    sitk, image = _series(source, files)
    out = _canonical(sitk, image)
    return out if slices is None else out[:, :, slices[0] : slices[1]]
