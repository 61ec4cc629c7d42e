"""Pictures of a sample: leaf boundaries drawn over the image, masks in false colour, and
:func:`write_preview`, the PNG behind ``apfcompile preview``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from formats import Dataset
from formats.nodes import NodeTable

from .core.edges import to_grey, to_uint8
from .core.reconstruct import reconstruct
from .inputs.locations import Place
from .originals import original_on_canvas

__all__ = ["colorize_labels", "draw_leaves", "side_by_side", "write_preview"]


def _rgb8(image: np.ndarray) -> np.ndarray:
    """Any image as uint8 RGB for display (percentile stretch for non-uint8)."""
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return image.copy()
    grey = to_uint8(to_grey(image))
    return np.repeat(grey[:, :, None], 3, axis=2)


def draw_leaves(image: np.ndarray, leaves: NodeTable, color: tuple[int, int, int] = (0, 255, 0)) -> np.ndarray:
    """uint8 RGB copy of ``image`` with every leaf's border drawn one pixel wide."""
    out = _rgb8(image)
    h, w = out.shape[:2]
    # Paint each leaf's index with 1 x 1 "patches", then mark where the owner changes.
    ids = np.arange(len(leaves), dtype=np.int32).reshape(-1, 1, 1)
    owner = reconstruct(ids, leaves, None, (h, w), fill=-1)
    edge = np.zeros((h, w), bool)
    edge[:, 1:] |= owner[:, 1:] != owner[:, :-1]
    edge[1:, :] |= owner[1:, :] != owner[:-1, :]
    out[edge] = color
    return out


_PALETTE = np.array(
    [
        [0, 0, 0],
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
        [250, 190, 212],
        [0, 128, 128],
        [220, 190, 255],
        [170, 110, 40],
        [255, 250, 200],
        [128, 0, 0],
    ],
    dtype=np.uint8,
)


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


def write_preview(
    ds: Dataset, sample: int | str, out: str | Path, input_root: Place | str | Path | None = None
) -> Path:
    """PNG of one sample, panels side by side.

    With ``input_root`` (the compile's INPUT, a path, URL or :class:`Place`): the source image on
    its canvas with the leaf borders, the mask, and the mask rebuilt from its patches. Without: the
    image rebuilt from its patches with the leaf borders, and the rebuilt mask (the dataset holds no
    full-size pixels).
    """
    data = ds.read_sample(sample)
    canvas = (int(data.meta["canvas_h"]), int(data.meta["canvas_w"]))
    leaves = data.nodes
    labelled = data.mask is not None and data.meta.get("mask_source")
    if input_root is not None:
        image, mask = original_on_canvas(ds, sample, Place.of(input_root))
        panels = [draw_leaves(image, leaves)]
        if mask is not None:
            panels.append(colorize_labels(mask))
    else:
        panels = [draw_leaves(reconstruct(data.image, leaves, None, canvas), leaves)]
    if labelled:
        panels.append(colorize_labels(reconstruct(data.mask, leaves, None, canvas)))
    picture = side_by_side(*panels)
    zoom = max(1, 384 // max(canvas))  # small canvases (a CT slice) are enlarged to be seen
    if zoom > 1:
        picture = np.repeat(np.repeat(picture, zoom, axis=0), zoom, axis=1)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture[:, :, ::-1]):
        raise OSError(f"{path}: could not write the preview (use a .png name in a writable folder)")
    return path
