"""PNG / JPEG / BMP through OpenCV, channels returned as RGB."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np


def read(source: Path | BinaryIO) -> np.ndarray:
    """H x W (grey) or H x W x 3 (RGB; an alpha channel is dropped), in the file's bit depth."""
    if isinstance(source, Path):
        data = np.fromfile(source, dtype=np.uint8)
    else:
        data = np.frombuffer(source.read(), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("OpenCV could not decode it (not an image, or truncated)")
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        else:
            cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)  # in place: no second full copy
    return image
