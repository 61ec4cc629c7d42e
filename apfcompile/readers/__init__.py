"""Readers: one file in, numpy arrays out, chosen by file suffix.

=================  ============================  =====================================
suffix             reader                        gives
=================  ============================  =====================================
.png .jpg .jpeg    OpenCV (``cv2.imread``)        H x W or H x W x 3 (RGB), any depth
.bmp
.tif .tiff .svs    tifffile (+ imagecodecs)       series 0, level 0: H x W [x C]
.nii .nii.gz       nibabel                        the volume, X x Y x Z (x C) as stored
.npy .npz          numpy (``allow_pickle=False``) the array (``.npz``: key ``image`` or the
                                                  only array)
=================  ============================  =====================================

Every failure is an :class:`~apfcompile.errors.APFError` naming the file: a path that does not
exist, a suffix no reader knows, an empty, truncated or otherwise unreadable file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputNotFoundError, UnreadableInputError
from . import arrays, nifti, raster, tiff

__all__ = ["READERS", "read_array", "suffix_of"]

READERS: dict[str, Callable[[Path], np.ndarray]] = {
    ".png": raster.read,
    ".jpg": raster.read,
    ".jpeg": raster.read,
    ".bmp": raster.read,
    ".tif": tiff.read,
    ".tiff": tiff.read,
    ".svs": tiff.read,
    ".nii": nifti.read,
    ".nii.gz": nifti.read,
    ".npy": arrays.read,
    ".npz": arrays.read,
}


def suffix_of(path: str | Path) -> str:
    """The suffix that picks a reader: ``.nii.gz`` counts as one, case is ignored."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def read_array(path: str | Path) -> np.ndarray:
    """Read one image, mask or volume file as a numpy array (see the module table)."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(path)
    suffix = suffix_of(path)
    reader = READERS.get(suffix)
    if reader is None:
        known = " ".join(sorted(READERS))
        raise UnreadableInputError(path, f"no reader for suffix {suffix or '(none)'!r}",
                                   f"use one of: {known}")  # fmt: skip
    if path.is_dir() or path.stat().st_size == 0:
        raise UnreadableInputError(path, "the file is empty (0 bytes)", "re-export or remove it")
    try:
        out = reader(path)
    except UnreadableInputError:
        raise
    except Exception as exc:  # the libraries raise many kinds; all mean "cannot read this file"
        detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UnreadableInputError(path, f"cannot be read as {suffix} ({detail})",
                                   "check that the file is complete and of that format") from exc  # fmt: skip
    if out.size == 0:
        raise UnreadableInputError(path, "holds no pixels", "re-export or remove it")
    return out
