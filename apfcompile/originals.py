"""A compiled sample's source pixels, found again from the compile's INPUT.

The dataset holds patches, not full-size pixels. To score a model against the truth — and to see
how far the stored patches are from it (the ceiling) — :func:`original_sample` re-reads a sample's
image and mask the way the compile read them (same layout, resolution, label map, grey-as-RGB rule),
and :func:`original_on_canvas` brings them to the sample's canvas (same fit and padding). With
:func:`loaders.to_original`, which maps a canvas-size prediction back to the original pixel grid,
"my model's Dice against the ceiling" is three lines (docs/python.md, "evaluation against the ceiling").
"""

from __future__ import annotations

import numpy as np

from formats import Dataset, open_dataset

from .build.samples import is_grey_rgb
from .core.resample_volume import resample_image, resample_mask
from .errors import InputError
from .inputs.canvas import fit_canvas
from .inputs.frames import load_frames, load_volume
from .inputs.labels import apply_label_map
from .inputs.layouts import CT_WINDOW, discover
from .inputs.locations import Place
from .inputs.modality import decide

__all__ = ["original_on_canvas", "original_sample"]


def _dataset(ds: Dataset | str | object) -> Dataset:
    return ds if isinstance(ds, Dataset) else open_dataset(ds)


def _frame(ds: Dataset, sample: int | str, input_root: Place | str | object, masks: Place | str | object | None = None):
    meta = ds.read_sample(sample).meta
    params = ds.manifest.parameters
    paip_label = params.get("paip_label", "both")
    items, info = discover(
        Place.of(input_root),
        params.get("layout", "auto"),
        None if masks is None else Place.of(masks),
        paip_label,
        params.get("image_key"),
        params.get("mask_key"),
        True,
    )
    item = next((it for it in items if it.source == meta["source"]), None)
    if item is None:
        raise InputError(
            input_root,
            f"holds no input {meta['source']!r} (the sample's source)",
            "pass the INPUT the dataset was compiled from",
        )
    if ds.manifest.dims == 3:  # --mode volume: the whole volume, (D, H, W [, C])
        vol = load_volume(item)
        image, mask = vol.image, vol.mask
    else:
        frames = load_frames(item, params.get("resolution"), paip_label, None, params.get("channel_order", "auto"))
        frame = next(f for f in frames if f.key == meta["key"])
        image, mask = frame.image, frame.mask
    if mask is not None:
        mask = apply_label_map(mask, {int(a): int(b) for a, b in params.get("label_map", [])})
    if not params.get("keep_channels", False) and is_grey_rgb(image):
        image = np.ascontiguousarray(image[..., 0])
    return params, info, image, mask


def original_sample(
    ds: Dataset | str | object,
    sample: int | str,
    input_root: Place | str | object,
    masks: Place | str | object | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The sample's image (H x W [x C]) and mask (H x W, or None) as the compile read them from
    ``input_root`` (its INPUT: a path, URL or Place; ``masks``: its ``--masks`` folder, if it had
    one), before the canvas: at the original size (a slide: the pyramid level read), labels
    remapped by the compile's ``--label-map``."""
    _, _, image, mask = _frame(_dataset(ds), sample, input_root, masks)
    return image, mask


def original_on_canvas(
    ds: Dataset | str | object,
    sample: int | str,
    input_root: Place | str | object,
    masks: Place | str | object | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`original_sample` brought to the sample's canvas as the compile did (resampled, and
    padded with the same value for ``--fit pad``): the mask the ceiling Dice was measured against."""
    ds = _dataset(ds)
    params, info, image, mask = _frame(ds, sample, input_root, masks)
    if ds.manifest.dims == 3:  # volumes: the canvas is the stored voxels, or --spacing's grid
        meta = ds.read_sample(sample).meta
        canvas = (int(meta["canvas_d"]), int(meta["canvas_h"]), int(meta["canvas_w"]))
        if canvas != image.shape[:3]:
            image = resample_image(image, canvas)
            mask = None if mask is None else resample_mask(mask, canvas)
        return image, mask
    window = params.get("window")
    intensity = decide(
        image,
        params.get("modality", "auto"),
        None if window is None else tuple(window),
        info.window,
        params.get("pad_value"),
        CT_WINDOW,
    )
    canvas = fit_canvas(image, mask, params.get("resolution"), params.get("fit", "square"), intensity.pad_value)
    return canvas.image, canvas.mask
