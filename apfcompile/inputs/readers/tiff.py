"""TIFF, BigTIFF and Aperio SVS through tifffile (JPEG tiles need imagecodecs).

Every function takes a local ``Path`` or an open binary file object: tifffile reads only the IFDs
and the tiles it needs through either, so a slide on object storage costs the bytes of the level
read, not the whole file.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tifffile

from .limits import check_pixels

# tifffile logs what it cannot read before raising; the raise becomes the one line users see.
logging.getLogger("tifffile").setLevel(logging.ERROR + 10)


def _check(level, tif: tifffile.TiffFile) -> None:
    """Guards on a series or level, from its header: the pixel limit (every axis but the
    samples'), and a tile/strip grid that the page's offsets cover (a header claiming a huge
    image over a few tiles would otherwise be decoded position by position, for minutes)."""
    samples = math.prod(n for a, n in zip(level.axes, level.shape) if a == "S")
    check_pixels(tuple(n for a, n in zip(level.axes, level.shape) if a != "S"), level.dtype.itemsize * samples)
    for page in level.pages[:64]:
        if page is None or not hasattr(page, "chunked"):
            continue
        needed, listed = math.prod(page.chunked), len(page.dataoffsets)
        if needed > listed:
            raise ValueError(
                f"its header claims a {page.imagelength:,} x {page.imagewidth:,} image in {needed:,} tiles or "
                f"strips but lists {listed:,} (a corrupt header)"
            )


def read(source: Path | BinaryIO) -> np.ndarray:
    """Series 0 at full resolution: H x W or H x W x C (a leading plane axis of 1 is dropped)."""
    with tifffile.TiffFile(source) as tif:
        if not tif.series:
            raise ValueError("no image series in the file")
        _check(tif.series[0], tif)
        image = tif.series[0].asarray()
    while image.ndim > 3 and image.shape[0] == 1:
        image = image[0]
    return np.ascontiguousarray(image)


def _choose(levels: list, min_side: int | None) -> int:
    """Index of the smallest level whose longer side is >= ``min_side`` (0 when None or none is)."""
    chosen = 0
    if min_side is not None:
        for k, level in enumerate(levels[1:], 1):
            if max(_hw(level)) >= min_side:
                chosen = k
    return chosen


def choose_level(source: Path | BinaryIO, min_side: int | None) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """(level, that level's (H, W), full-resolution (H, W)) that :func:`read_level` reads."""
    with tifffile.TiffFile(source) as tif:
        if not tif.series:
            raise ValueError("no image series in the file")
        levels = list(tif.series[0].levels)
        k = _choose(levels, min_side)
        return k, _hw(levels[k]), _hw(levels[0])


def read_level(source: Path | BinaryIO, min_side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """The smallest pyramid level of series 0 whose longer side is >= ``min_side`` (level 0 when
    None or when no level is that large), and the full-resolution (H, W).

    Only that level is decoded (tile by tile, by tifffile), never level 0 when a smaller one serves.
    """
    with tifffile.TiffFile(source) as tif:
        if not tif.series:
            raise ValueError("no image series in the file")
        levels = list(tif.series[0].levels)
        full = _hw(levels[0])
        level = levels[_choose(levels, min_side)]
        _check(level, tif)
        image = level.asarray()
    while image.ndim > 3 and image.shape[0] == 1:
        image = image[0]
    return np.ascontiguousarray(image), full


def _hw(level) -> tuple[int, int]:
    axes, shape = level.axes, level.shape
    return shape[axes.index("Y")], shape[axes.index("X")]
