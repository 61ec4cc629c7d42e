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
