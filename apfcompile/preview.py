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

__all__ = ["PALETTE", "colorize_labels", "draw_leaves", "legend", "plane", "side_by_side", "titled", "write_preview"]


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


def _palette(n: int = 256) -> np.ndarray:
    """``n`` distinct uint8 RGB colours: black for 0, the 15 above for 1-15, then hues a golden
    angle apart over three saturation/brightness tiers (every entry differs from every other)."""
    out = [tuple(c) for c in _PALETTE.tolist()]
    k = 0
    while len(out) < n:
        hue = (k * 0.618033988749895) % 1.0
        sat, val = ((0.85, 0.95), (0.55, 0.8), (0.95, 0.6))[k % 3]
        hsv = np.uint8([[[round(hue * 179), round(sat * 255), round(val * 255)]]])
        rgb = tuple(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].tolist())
        if rgb not in out:
            out.append(rgb)
        k += 1
    return np.array(out, np.uint8)


PALETTE = _palette(256)
"""Label -> colour for labels 0-255 (0 black); larger labels reuse ``PALETTE[1 + (label - 1) % 255]``."""


def colorize_labels(mask: np.ndarray) -> np.ndarray:
    """uint8 RGB picture of a label map: 0 black, labels 1-255 each a colour of its own (PALETTE)."""
    m = mask.astype(np.int64)
    idx = np.where(m <= 0, 0, np.where(m < len(PALETTE), m, 1 + (m - 1) % (len(PALETTE) - 1)))
    return PALETTE[idx]


def titled(panel: np.ndarray, title: str, height: int = 24) -> np.ndarray:
    """``panel`` with ``title`` written above it on a white strip (ASCII; cut to the width)."""
    strip = np.full((height, panel.shape[1], 3), 255, np.uint8)
    scale = 0.45
    text = title
    while text and cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] > panel.shape[1] - 4:
        text = text[:-2] + "~" if len(text) > 2 else ""
    cv2.putText(strip, text, (2, height - 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, panel], axis=0)


def legend(labels: list[int], names: dict[int, str], width: int, limit: int = 48) -> np.ndarray | None:
    """A strip of colour swatches and class names for ``labels`` (at most ``limit``; then "+N
    more"), laid out in rows to ``width`` pixels; None for no labels."""
    labels = sorted(set(int(v) for v in labels))
    if not labels:
        return None
    entries = [(v, f"{v} {names.get(v, f'label_{v}')}") for v in labels[:limit]]
    if len(labels) > limit:
        entries.append((None, f"+{len(labels) - limit} more"))
    rows, row, x = [], [], 0
    for value, text in entries:
        w = 18 + cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0] + 12
        if row and x + w > width:
            rows.append(row)
            row, x = [], 0
        row.append((value, text, x))
        x += w
    rows.append(row)
    out = np.full((20 * len(rows) + 4, max(width, 1), 3), 255, np.uint8)
    for r, row in enumerate(rows):
        y = 4 + 20 * r
        for value, text, x0 in row:
            if value is not None:
                out[y + 2 : y + 14, x0 + 2 : x0 + 14] = colorize_labels(np.array([[value]]))[0, 0]
                cv2.rectangle(out, (x0 + 2, y + 2), (x0 + 13, y + 13), (90, 90, 90), 1)
            cv2.putText(out, text, (x0 + 18, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return out


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
    ds: Dataset,
    sample: int | str,
    out: str | Path,
    input_root: Place | str | Path | None = None,
    masks: Place | str | Path | None = None,
) -> Path:
    """PNG of one sample, titled panels side by side, and a legend of the labels shown.

    With ``input_root`` (the compile's INPUT, a path, URL or :class:`Place`; ``masks``: its
    ``--masks`` folder, if it had one): the source image on its canvas with the leaf borders, the
    mask, and the mask rebuilt from its patches. Without: the image rebuilt from its patches with
    the leaf borders, and the rebuilt mask (the dataset holds no full-size pixels). Slices of CT
    and MR volumes are shown in the radiological view (anterior up, the patient's right on the
    left), the CT window applied.
    """
    if ds.manifest.dims == 3:
        return _write_volume_preview(ds, sample, out, input_root, masks)
    data = ds.read_sample(sample)
    meta = data.meta
    canvas = (int(meta["canvas_h"]), int(meta["canvas_w"]))
    leaves = data.nodes
    labelled = data.mask is not None and meta.get("mask_source")
    window = ds.manifest.parameters.get("window") if meta.get("modality") == "ct" else None
    gamma = f", gamma = {meta['gamma']:.2f}" if meta.get("gamma") is not None else ""
    leaves_title = f"leaves: L = {len(leaves)}{gamma}"
    panels: list[tuple[np.ndarray, str]] = []
    shown: list[np.ndarray] = []
    if input_root is not None:
        image, mask = original_on_canvas(ds, sample, Place.of(input_root), masks)
        panels.append((draw_leaves(_display(image, window), leaves), leaves_title))
        if mask is not None:
            panels.append((colorize_labels(mask), "mask (source)"))
            shown.append(mask)
    else:
        rebuilt = reconstruct(data.image, leaves, None, canvas)
        panels.append((draw_leaves(_display(rebuilt, window), leaves), leaves_title + " (image rebuilt)"))
    if labelled:
        mask = reconstruct(data.mask, leaves, None, canvas)
        dice = meta.get("ceiling_dice")
        title = "mask rebuilt from patches" + (f": Dice {dice:.3f}" if dice is not None and dice == dice else "")
        panels.append((colorize_labels(mask), title))
        shown.append(mask)
    if _radiological(meta):
        panels = [(radiological(p), t) for p, t in panels]
    return _save_panels(panels, shown, _class_names(ds), max(canvas), out)


def _display(image: np.ndarray, window) -> np.ndarray:
    """A CT image through its HU window (as the compile's edges saw it); others unchanged."""
    if window is not None and image.dtype != np.uint8:
        return to_uint8(to_grey(image), tuple(window))
    return image


def _radiological(meta: dict) -> bool:
    """Whether a sample is an axial slice of a CT or MR volume (shown in the radiological view)."""
    return meta.get("modality") in ("ct", "mr") and meta.get("slice_axis") == 2


def radiological(picture: np.ndarray) -> np.ndarray:
    """An axial slice stored as (x, y) rows and columns of a RAS+ volume (x towards the patient's
    right, y anterior) turned to the radiological view: rows anterior to posterior, columns from
    the patient's right to left."""
    return np.ascontiguousarray(np.swapaxes(picture[::-1, ::-1], 0, 1))


def _class_names(ds: Dataset) -> dict[int, str]:
    return {c.id: c.name for c in (ds.manifest.classes or [])}


def _save_panels(
    panels: list[tuple[np.ndarray, str]], masks: list[np.ndarray], names: dict[int, str], side: int, out
) -> Path:
    zoom = max(1, 384 // side)  # small canvases (a CT slice) are enlarged to be seen
    parts = [titled(_zoomed(p, zoom), t) for p, t in panels]
    return _save(_with_legend(side_by_side(*parts), masks, names), 10**9, out)


def _with_legend(picture: np.ndarray, masks: list[np.ndarray], names: dict[int, str]) -> np.ndarray:
    """``picture`` with the legend of the labels in ``masks`` below it (unchanged without labels)."""
    labels = sorted(set(np.unique(np.concatenate([np.unique(m) for m in masks])).tolist())) if masks else []
    strip = legend(labels, names, picture.shape[1])
    if strip is None:
        return picture
    return np.concatenate([picture, np.full((6, picture.shape[1], 3), 255, np.uint8), strip], axis=0)


def _zoomed(picture: np.ndarray, zoom: int) -> np.ndarray:
    return picture if zoom == 1 else np.repeat(np.repeat(picture, zoom, axis=0), zoom, axis=1)


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
    ds: Dataset,
    sample: int | str,
    out: str | Path,
    input_root: Place | str | Path | None = None,
    masks: Place | str | Path | None = None,
) -> Path:
    """A volume sample: its axial, coronal and sagittal planes through the centre, one row each:
    the image (the source's with ``input_root``, else rebuilt from the patches) with the borders
    of the leaves the plane cuts, the source mask (with ``input_root``) and the rebuilt mask."""
    data = ds.read_sample(sample)
    d, h, w = data.nodes.canvas
    window = ds.manifest.parameters.get("window")  # CT: the HU window the edges saw
    source = source_mask = None
    if input_root is not None:
        source, source_mask = original_on_canvas(ds, sample, Place.of(input_root), masks)
    rows, shown = [], []
    zoom = max(1, 384 // max(d, h, w))
    for axis, index in ((0, d // 2), (1, h // 2), (2, w // 2)):
        name = ("axial", "coronal", "sagittal")[axis]
        flat, layer = plane(data.nodes, data.image, axis, index)
        canvas = flat.canvas
        picture = reconstruct(layer, flat, None, canvas) if source is None else _plane_of(source, axis, index)
        if window is not None and picture.dtype != np.uint8:
            picture = to_uint8(to_grey(picture), tuple(window))
        panels = [(draw_leaves(picture, flat), f"{name} {index}: {len(flat)} leaves cut")]
        if source_mask is not None:
            cut = _plane_of(source_mask, axis, index)
            panels.append((colorize_labels(cut), "mask (source)"))
            shown.append(cut)
        if data.mask is not None and data.meta.get("mask_source"):
            _, mask_layer = plane(data.nodes, data.mask, axis, index)
            rebuilt = reconstruct(mask_layer, flat, None, canvas)
            panels.append((colorize_labels(rebuilt), "mask rebuilt from patches"))
            shown.append(rebuilt)
        rows.append(side_by_side(*[titled(_zoomed(p, zoom), t) for p, t in panels]))
    width = max(r.shape[1] for r in rows)
    stacked = []
    for i, r in enumerate(rows):
        pad = np.full((r.shape[0], width, 3), 255, np.uint8)
        pad[:, : r.shape[1]] = r
        stacked.append(pad)
        if i < len(rows) - 1:
            stacked.append(np.full((8, width, 3), 255, np.uint8))
    return _save(_with_legend(np.concatenate(stacked, axis=0), shown, _class_names(ds)), 10**9, out)


def _plane_of(volume: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The plane ``axis = index`` of a (D, H, W [, C]) array, rows and columns as :func:`plane`'s."""
    cut = np.take(volume, index, axis=axis)
    return np.ascontiguousarray(cut)
