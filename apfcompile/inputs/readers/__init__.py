"""Readers: one file in, numpy arrays out, chosen by file suffix.

=================  ============================  =====================================
suffix             reader                        gives
=================  ============================  =====================================
.png .jpg .jpeg    OpenCV (``cv2.imread``)        H x W or H x W x 3 (RGB), any depth
.bmp
.tif .tiff .svs    tifffile (+ imagecodecs)       series 0, level 0: H x W [x C]
.nii .nii.gz       nibabel                        the volume in RAS+ (X x Y x Z [x C])
.nrrd .nhdr        SimpleITK (extra ``volumes``)  the volume in RAS+ (X x Y x Z [x C])
.mha .mhd
.dcm               SimpleITK/GDCM (``volumes``)   the series of the file's folder, in RAS+
.npy .npz          numpy (``allow_pickle=False``) the array (``.npz``: key ``image`` or the
                                                  only array); stacks: :mod:`.stacks`
.h5 .hdf5          h5py (extra ``hdf5``)          stacks only (:mod:`.stacks`)
=================  ============================  =====================================

Every reader takes a local ``Path`` or an open binary file object (a URL opened by
a :class:`~apfcompile.inputs.locations.Place`). Every failure is an :class:`~apfcompile.errors.APFError`
naming the file: a path that does not exist, a suffix no reader knows, an empty, truncated or
otherwise unreadable file.
"""

from __future__ import annotations

import importlib
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path, PurePath
from types import ModuleType

import numpy as np

from ...errors import InputError, UnreadableInputError
from ..locations import Place, open_input
from .limits import DEFAULT_MAX_PIXELS, MemoryNeeded, TooManyPixels, pixel_limit

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "READERS",
    "SLIDE_SUFFIXES",
    "VOLUME_SUFFIXES",
    "pixel_limit",
    "read_array",
    "read_slide_level",
    "read_volume_slices",
    "volume_slice_blocks",
    "volume_header",
    "volume_oriented",
    "reader_module",
    "suffix_of",
]

READERS: dict[str, str] = {
    ".png": "raster",
    ".jpg": "raster",
    ".jpeg": "raster",
    ".bmp": "raster",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".svs": "tiff",
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".nrrd": "itk",
    ".nhdr": "itk",
    ".mha": "itk",
    ".mhd": "itk",
    ".dcm": "dicom",
    ".npy": "arrays",
    ".npz": "arrays",
    ".h5": "stacks",
    ".hdf5": "stacks",
}
"""Suffix -> the reader module (beside this one) whose ``read(source)`` reads it. Modules are
imported when first needed, so a compile of PNGs never imports nibabel or tifffile."""


def reader_module(name: str) -> ModuleType:
    """The reader module ``name`` (``raster``, ``tiff``, ``nifti``, ``arrays``), imported now."""
    return importlib.import_module(f"{__name__}.{name}")


def suffix_of(path: Place | str | PurePath) -> str:
    """The suffix that picks a reader: ``.nii.gz`` counts as one, case is ignored."""
    name = (path.name if isinstance(path, (Place, PurePath)) else posixpath.basename(path)).lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def read_array(path: Place | str | os.PathLike, storage_options: dict | None = None) -> np.ndarray:
    """Read one image, mask or volume file (a local path, a URL or a :class:`Place`) as a numpy
    array (see the module table); ``storage_options`` go to a URL's filesystem."""
    place = Place.of(path, storage_options)
    module = READERS.get(suffix_of(place))
    return _read(place, None if module is None else reader_module(module).read)


VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")
"""Suffixes read as volumes: one frame per slice of the third axis (:func:`read_volume_slices`)."""


def read_volume_slices(path: Place, z0: int, z1: int) -> np.ndarray:
    """Slices ``[z0, z1)`` of a volume's third axis (X x Y x (z1 - z0) [x C]); errors as
    :func:`read_array`'s."""
    return _read(path, lambda source: reader_module(READERS[suffix_of(path)]).read(source, (z0, z1)))


def volume_slice_blocks(
    path: Place, z0: int, z1: int, block: int, plain: str | None = None
) -> Iterator[np.ndarray] | None:
    """The slices :func:`read_volume_slices` gives, in blocks of at most ``block`` slices read front
    to back from one open stream (a gzip file decompressed once, never held whole); None where the
    volume's reader cannot (not a NIfTI file on a local disk, or one :func:`.nifti.slice_blocks`
    declines). Errors as :func:`read_array`'s: the header's now, the voxels' when their block is read.
    ``plain``: the file's bytes decompressed once for every reader (:mod:`apfcompile.inputs.inflate`)."""
    if READERS.get(suffix_of(path)) != "nifti" or path.local is None:
        return None
    local = path.local
    shared = None if plain is None else Path(plain)
    blocks = _read_header(path, lambda source: reader_module("nifti").slice_blocks(local, (z0, z1), block, shared))
    return None if blocks is None else _named_errors(path, blocks)


def _named_errors(path: Place, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    try:
        yield from blocks
    except UnreadableInputError:
        raise
    except Exception as exc:
        raise _input_error(path, exc) from exc


def volume_header(path: Place) -> tuple[tuple[int, ...], tuple[float, float, float] | None]:
    """A volume's RAS+ shape and voxel size (mm) from its header; errors as :func:`read_array`'s."""
    return _read_header(path, lambda source: reader_module(READERS[suffix_of(path)]).header(source))


def volume_oriented(path: Place) -> bool:
    """Whether a volume's header names its orientation (NIfTI: an affine that is not degenerate;
    NRRD, MetaImage and DICOM always carry a direction)."""
    if READERS[suffix_of(path)] != "nifti":
        return True
    return _read_header(path, lambda source: reader_module("nifti").oriented(source))


SLIDE_SUFFIXES = (".tif", ".tiff", ".svs")
"""Suffixes read as (possibly pyramidal) slides: :func:`read_slide_level` picks their level."""


def read_slide_level(path: Place, min_side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """A TIFF/SVS at the smallest pyramid level whose longer side is >= ``min_side`` (level 0
    when None or none is), and its full-resolution (H, W); errors as :func:`read_array`'s."""
    full: list[tuple[int, int]] = []

    def reader(source):
        image, hw = reader_module("tiff").read_level(source, min_side)
        full.append(hw)
        return image

    image = _read(path, reader if suffix_of(path) in SLIDE_SUFFIXES else None)
    return image, full[0]


def _read(path: Place, reader) -> np.ndarray:
    out = _read_header(path, reader)
    if out.size == 0:
        raise UnreadableInputError(path, "holds no pixels", "re-export or remove it")
    return out


def _read_header(path: Place, reader):
    """``reader(source)`` on the opened file, every failure one UnreadableInputError naming it."""
    suffix = suffix_of(path)
    with open_input(path) as (source, size):
        if reader is None:
            known = " ".join(sorted(READERS))
            raise UnreadableInputError(path, f"no reader for suffix {suffix or '(none)'!r}", f"use one of: {known}")
        if size == 0:
            raise UnreadableInputError(path, "the file is empty (0 bytes)", "re-export or remove it")
        try:
            out = reader(source)
        except UnreadableInputError:
            raise
        except Exception as exc:
            raise _input_error(path, exc) from exc
    return out


def _input_error(path: Place, exc: Exception) -> InputError:
    """The one error line a reader's failure on ``path`` becomes."""
    if isinstance(exc, MemoryNeeded):
        return InputError(path, str(exc), "compile it on a machine with more memory, or check the file's header")
    if isinstance(exc, TooManyPixels):
        gb = exc.pixels * 3 / 1e9
        return InputError(
            path,
            str(exc),
            f"if the file is genuine, raise --max-pixels (it needs ~{gb:,.0f} GB of memory as RGB); "
            "else the file's header is corrupt",
        )
    # the libraries raise many kinds; all mean "cannot read this file"
    detail = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    return UnreadableInputError(
        path, f"cannot be read as {suffix_of(path)} ({detail})", "check that the file is complete and of that format"
    )
