"""Pictures of a forest: leaf boundaries drawn over the image, masks in false colour."""

from __future__ import annotations

import numpy as np

from .edges import to_grey, to_uint8
from .forest import Leaves
from .reconstruct import reconstruct

__all__ = ["colorize_labels", "draw_leaves", "side_by_side"]


def _rgb8(image: np.ndarray) -> np.ndarray:
    """Any image as uint8 RGB for display (percentile stretch for non-uint8)."""
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image.copy()
    grey = to_uint8(to_grey(image))
    return np.repeat(grey[:, :, None], 3, axis=2)


def draw_leaves(image: np.ndarray, leaves: Leaves, color=(0, 255, 0)) -> np.ndarray:
    """uint8 RGB copy of ``image`` with every leaf's border drawn one pixel wide."""
    out = _rgb8(image)
    h, w = out.shape[:2]
    # Paint each leaf's index with 1 x 1 "patches", then mark where the owner changes.
    ids = np.arange(len(leaves), dtype=np.int32).reshape(-1, 1, 1)
    owner = reconstruct(ids, leaves, (h, w), fill=-1)
    edge = np.zeros((h, w), bool)
    edge[:, 1:] |= owner[:, 1:] != owner[:, :-1]
    edge[1:, :] |= owner[1:, :] != owner[:-1, :]
    out[edge] = color
    return out


_PALETTE = np.array(
    [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
     [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0]],
    dtype=np.uint8,
)  # fmt: skip


def colorize_labels(mask: np.ndarray) -> np.ndarray:
    """uint8 RGB picture of a label map: 0 black, other labels cycle through 15 colours."""
    m = mask.astype(np.int64)
    idx = np.where(m == 0, 0, 1 + (m - 1) % (len(_PALETTE) - 1))
    return _PALETTE[idx]


def side_by_side(*images: np.ndarray, gap: int = 8) -> np.ndarray:
    """Same-height uint8 RGB images joined left to right with white gaps."""
    h = max(im.shape[0] for im in images)
    parts = []
    for i, im in enumerate(images):
        pad = np.full((h, im.shape[1], 3), 255, np.uint8)
        pad[: im.shape[0]] = im
        parts.append(pad)
        if i < len(images) - 1:
            parts.append(np.full((h, gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)
