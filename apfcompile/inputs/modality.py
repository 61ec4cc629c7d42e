"""What the pixels are: the modality decides the edge window and what ``--fit pad`` pads with.

=========  ====================================================  ===================================
modality   edge window (images that are not uint8)                pad value (``--fit pad``)
=========  ====================================================  ===================================
ct         the HU window (``--window``, else the layout's, else  air, -1024 HU (below the window:
           :data:`~apfcompile.inputs.layouts.CT_WINDOW`)          no edge at the pad border)
mr, grey   ``--window``, else a percentile stretch                the image's background
rgb        (uint8: none)                                          the image's background
=========  ====================================================  ===================================

The *background* is the per-channel median of the resampled image's top and bottom rows (a slide's
glass, an MR's black): padding with it adds no edge where the image's border is background.
``--pad-value`` overrides it for every modality.

``--modality auto`` decides per frame, by a documented rule (:func:`decide`): a layout that says
its images are CT (``btcv``; ``nnunet`` whose channels are all CT) makes them CT; else a frame of
3 or 4 channels is ``rgb``; a single-channel frame of a signed or float dtype with at least 1 % of
its pixels below -500 is ``ct`` (air is -1000 HU; MR, microscopy and photographs have no such
values); anything else is ``grey``. A frame taken as CT by the rule is reported (one warning line
per compile) and recorded per sample (``samples.parquet`` column ``modality``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..choices import Modality

__all__ = ["AIR_HU", "CT_RULE", "Intensity", "background", "decide", "looks_like_ct"]

AIR_HU = -1024.0
"""What CT is padded with: air, below every HU window."""

CT_RULE = (-500.0, 0.01)
"""A single-channel signed/float frame with at least this fraction of pixels below this value is CT."""


@dataclass(frozen=True)
class Intensity:
    """How one frame's intensities are treated: its modality, the edge window (None: the
    percentile stretch, or none for uint8), the pad value (None: the frame's background), and
    whether ``auto`` took it as CT by :data:`CT_RULE` (not told by an option or the layout)."""

    modality: str
    window: tuple[float, float] | None
    pad_value: float | None
    by_rule: bool = False


def looks_like_ct(image: np.ndarray) -> bool:
    """:data:`CT_RULE` on one frame (H x W [x C])."""
    if (image.ndim == 3 and image.shape[2] != 1) or image.dtype.kind not in "if" or image.size == 0:
        return False
    level, fraction = CT_RULE
    return int(np.count_nonzero(image < level)) >= fraction * image.size


def decide(
    image: np.ndarray,
    asked: Modality,
    window: tuple[float, float] | None,
    layout_window: tuple[float, float] | None,
    pad_value: float | None,
    ct_window: tuple[float, float],
) -> Intensity:
    """The treatment of one frame (see the module docstring). ``window``: ``--window``;
    ``layout_window``: the layout's (set for CT layouts); ``pad_value``: ``--pad-value``;
    ``ct_window``: the HU window CT gets when neither gives one."""
    by_rule = False
    modality = asked
    if asked == "auto":
        if layout_window is not None:
            modality = "ct"
        elif image.ndim == 3 and image.shape[2] in (3, 4):
            modality = "rgb"
        elif looks_like_ct(image):
            modality, by_rule = "ct", True
        else:
            modality = "grey"
    if modality == "ct":
        pad = AIR_HU if pad_value is None else pad_value
        return Intensity("ct", window or layout_window or ct_window, pad, by_rule)
    return Intensity(modality, window, pad_value)


def background(image: np.ndarray) -> np.ndarray:
    """Per-channel median of ``image``'s top and bottom rows (H x W [x C] -> () or (C,)),
    rounded to the image's dtype."""
    rows = np.concatenate([image[:1], image[-1:]], axis=0)
    med = np.median(rows.reshape((-1,) + image.shape[2:]), axis=0)
    if image.dtype.kind in "iu":
        info = np.iinfo(image.dtype)
        med = np.clip(np.round(med), info.min, info.max)
    return med.astype(image.dtype)
