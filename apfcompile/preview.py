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

__all__ = ["colorize_labels", "draw_leaves", "plane", "side_by_side", "write_preview"]


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
    if ds.manifest.dims == 3:
        return _write_volume_preview(ds, sample, out, input_root)
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
    return _save(side_by_side(*panels), max(canvas), out)


def _save(picture: np.ndarray, side: int, out: str | Path) -> Path:
    zoom = max(1, 384 // side)  # small canvases (a CT slice) are enlarged to be seen
    if zoom > 1:
        picture = np.repeat(np.repeat(picture, zoom, axis=0), zoom, axis=1)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture[:, :, ::-1]):
        raise OSError(f"{path}: could not write the preview (use a .png name in a writable folder)")
    return path


_PLANES = {0: ("x", "y"), 1: ("x", "z"), 2: ("y", "z")}
"""Per fixed axis (0 = z: axial, 1 = y: coronal, 2 = x: sagittal): the volume axes that become the
plane's columns and rows."""


def plane(leaves: NodeTable, patches: np.ndarray, axis: int, index: int) -> tuple[NodeTable, np.ndarray]:
    """The 2-D leaves and patches where the plane ``axis = index`` cuts a volume's octree leaves.

    ``patches``: (N, p, p, p [, ...]) in (z, y, x) order. Returns a 2-D :class:`NodeTable` (its x/y
    the plane's columns/rows: x/y for an axial plane, x/z coronal, y/z sagittal) and the (n, p, p
    [, ...]) patch planes, for :func:`~apfcompile.core.reconstruct.reconstruct`."""
    lo = {0: leaves.z1, 1: leaves.y1, 2: leaves.x1}[axis]
    hit = np.flatnonzero((lo <= index) & (index < lo + leaves.size))
    cut = leaves.take(hit)
    col, row = _PLANES[axis]
    boxes = {"x": (cut.x1, cut.x2), "y": (cut.y1, cut.y2), "z": (cut.z1, cut.z2)}
    d, h, w = leaves.canvas
    extent = {"x": w, "y": h, "z": d}
    flat = NodeTable(
        x1=boxes[col][0],
        x2=boxes[col][1],
        y1=boxes[row][0],
        y2=boxes[row][1],
        size=cut.size,
        depth=cut.depth,
        tile=cut.tile,
        edges=cut.edges,
        canvas=(extent[row], extent[col]),
    )
    p = patches.shape[1]
    k = (index - lo[hit]) // (cut.size // p)  # the cell layer of each patch the plane goes through
    rows = np.arange(len(hit))
    picked = patches[hit]
    layer = {0: picked[rows, k], 1: picked[rows, :, k], 2: picked[rows, :, :, k]}[axis]
    return flat, layer


def _write_volume_preview(
    ds: Dataset, sample: int | str, out: str | Path, input_root: Place | str | Path | None = None
) -> Path:
    """A volume sample: its axial, coronal and sagittal planes through the centre, one row each:
    the image (the source's with ``input_root``, else rebuilt from the patches) with the borders
    of the leaves the plane cuts, the source mask (with ``input_root``) and the rebuilt mask."""
    data = ds.read_sample(sample)
    d, h, w = data.nodes.canvas
    window = ds.manifest.parameters.get("window")  # CT: the HU window the edges saw
    source = source_mask = None
    if input_root is not None:
        source, source_mask = original_on_canvas(ds, sample, Place.of(input_root))
    rows = []
    for axis, index in ((0, d // 2), (1, h // 2), (2, w // 2)):
        flat, layer = plane(data.nodes, data.image, axis, index)
        canvas = flat.canvas
        picture = reconstruct(layer, flat, None, canvas) if source is None else _plane_of(source, axis, index)
        if window is not None and picture.dtype != np.uint8:
            picture = to_uint8(to_grey(picture), tuple(window))
        panels = [draw_leaves(picture, flat)]
        if source_mask is not None:
            panels.append(colorize_labels(_plane_of(source_mask, axis, index)))
        if data.mask is not None and data.meta.get("mask_source"):
            _, mask_layer = plane(data.nodes, data.mask, axis, index)
            panels.append(colorize_labels(reconstruct(mask_layer, flat, None, canvas)))
        rows.append(side_by_side(*panels))
    width = max(r.shape[1] for r in rows)
    stacked = []
    for i, r in enumerate(rows):
        pad = np.full((r.shape[0], width, 3), 255, np.uint8)
        pad[:, : r.shape[1]] = r
        stacked.append(pad)
        if i < len(rows) - 1:
            stacked.append(np.full((8, width, 3), 255, np.uint8))
    return _save(np.concatenate(stacked, axis=0), max(d, h, w), out)


def _plane_of(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The plane ``axis = index`` of a (D, H, W [, C]) array, rows and columns as :func:`plane`'s."""
    cut = np.take(volume, index, axis=axis)
    return np.ascontiguousarray(cut)
