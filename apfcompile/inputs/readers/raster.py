"""PNG / JPEG / BMP through OpenCV, channels returned as RGB."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from .limits import check_pixels

# A file OpenCV cannot decode is one UnreadableInputError (readers/__init__.py); its own log
# lines ("imdecode_(''): can't read header...") would only add noise to that one line.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_rgb8(data: np.ndarray) -> bool:
    """True for an 8-bit RGB or RGBA PNG (its IHDR chunk says so): OpenCV can decode it straight to
    RGB (alpha dropped), without a BGR image and a second pass to swap its channels."""
    head = data[:26].tobytes()
    return (
        len(head) == 26 and head[:8] == _PNG_MAGIC and head[12:16] == b"IHDR" and head[24] == 8 and head[25] in (2, 6)
    )


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def header_size(data: np.ndarray) -> tuple[int, int] | None:
    """(H, W) from a PNG, BMP or JPEG header (None when the header does not say, or is cut short):
    read before decoding, for :func:`~.limits.check_pixels`."""
    head = data[:32].tobytes()
    if head[:8] == _PNG_MAGIC and len(head) >= 24:
        w, h = struct.unpack(">II", head[16:24])
        return h, w
    if head[:2] == b"BM" and len(head) >= 26:
        if struct.unpack("<I", head[14:18])[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
            w, h = struct.unpack("<HH", head[18:22])
            return h, w
        w, h = struct.unpack("<ii", head[18:26])
        return abs(h), abs(w)
    if head[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 9 <= n:  # JPEG: hop from segment to segment to the frame header
        if data[i] != 0xFF:
            return None
        marker = int(data[i + 1])
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9].tobytes())
            return h, w
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
        else:
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4].tobytes())[0]
    return None


def read(source: Path | BinaryIO) -> np.ndarray:
    """H x W (grey) or H x W x 3 (RGB; an alpha channel is dropped), in the file's bit depth."""
    if isinstance(source, Path):
        data = np.fromfile(source, dtype=np.uint8)
    else:
        data = np.frombuffer(source.read(), dtype=np.uint8)
    size = header_size(data)
    if size is not None:
        check_pixels(size)
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
