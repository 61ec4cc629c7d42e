"""PNG / JPEG / BMP through OpenCV, channels returned as RGB."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_rgb8(data: np.ndarray) -> bool:
    """True for an 8-bit RGB or RGBA PNG (its IHDR chunk says so): OpenCV can decode it straight to
    RGB (alpha dropped), without a BGR image and a second pass to swap its channels."""
    head = data[:26].tobytes()
    return (
        len(head) == 26 and head[:8] == _PNG_MAGIC and head[12:16] == b"IHDR" and head[24] == 8 and head[25] in (2, 6)
    )


def read(source: Path | BinaryIO) -> np.ndarray:
    """H x W (grey) or H x W x 3 (RGB; an alpha channel is dropped), in the file's bit depth."""
    if isinstance(source, Path):
        data = np.fromfile(source, dtype=np.uint8)
    else:
        data = np.frombuffer(source.read(), dtype=np.uint8)
    if _png_rgb8(data):
        image = cv2.imdecode(data, cv2.IMREAD_COLOR_RGB)
        if image is None:
            raise ValueError("OpenCV could not decode it (not an image, or truncated)")
        return image
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("OpenCV could not decode it (not an image, or truncated)")
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        else:
            cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)  # in place: no second full copy
    return image
