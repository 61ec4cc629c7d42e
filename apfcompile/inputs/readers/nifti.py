"""NIfTI-1/2 volumes through nibabel, from a file or from a stream (gzip or not)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import BinaryIO

import nibabel as nib
import numpy as np


def load(source: Path | BinaryIO) -> nib.spatialimages.SpatialImage:
    """The image with its header read and its voxels not yet: a file through ``nib.load``, a
    stream through ``from_stream`` (NIfTI-1, else NIfTI-2; gzip recognised by its magic bytes)."""
    if isinstance(source, Path):
        return nib.load(source)
    magic = source.read(2)
    source.seek(0)
    stream = gzip.GzipFile(fileobj=source, mode="rb") if magic == b"\x1f\x8b" else source
    head = stream.read(4)
    stream.seek(0)
    sizeof_hdr = {int.from_bytes(head, "little"), int.from_bytes(head, "big")}
    if 540 in sizeof_hdr:
        return nib.Nifti2Image.from_stream(stream)
    if 348 in sizeof_hdr:
        return nib.Nifti1Image.from_stream(stream)
    raise ValueError("not a NIfTI-1 or NIfTI-2 file (header size is neither 348 nor 540)")


def read(source: Path | BinaryIO, slices: tuple[int, int] | None = None) -> np.ndarray:
    """The voxel array in its stored dtype and axis order (scaling slopes ignored for ints); with
    ``slices = (z0, z1)``, only slices ``[z0, z1)`` of the third axis (nibabel reads no more of
    the file than it must).

    A stream is read whole first, in one request: gzip would otherwise pull it in small pieces."""
    if not isinstance(source, Path):
        source = io.BytesIO(source.read())
    proxy = load(source).dataobj
    if slices is None:
        return np.asarray(proxy)
    return np.asarray(proxy[:, :, slices[0] : slices[1]])
