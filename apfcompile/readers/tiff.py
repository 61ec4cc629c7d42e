"""TIFF, BigTIFF and Aperio SVS through tifffile (JPEG tiles need imagecodecs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def read(path: Path) -> np.ndarray:
    """Series 0 at full resolution: H x W or H x W x C (a leading plane axis of 1 is dropped)."""
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ValueError("no image series in the file")
        image = tif.series[0].asarray()
    while image.ndim > 3 and image.shape[0] == 1:
        image = image[0]
    return np.ascontiguousarray(image)


def read_level(path: Path, min_side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """The smallest pyramid level of series 0 whose longer side is >= ``min_side`` (level 0 when
    None or when no level is that large), and the full-resolution (H, W).

    Only that level is decoded (tile by tile, by tifffile), never level 0 when a smaller one serves.
    """
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ValueError("no image series in the file")
        series = tif.series[0]
        levels = list(series.levels)
        full = _hw(levels[0])
        chosen = levels[0]
        if min_side is not None:
            for level in levels[1:]:
                if max(_hw(level)) >= min_side:
                    chosen = level
        image = chosen.asarray()
    while image.ndim > 3 and image.shape[0] == 1:
        image = image[0]
    return np.ascontiguousarray(image), full


def _hw(level) -> tuple[int, int]:
    axes, shape = level.axes, level.shape
    return shape[axes.index("Y")], shape[axes.index("X")]
