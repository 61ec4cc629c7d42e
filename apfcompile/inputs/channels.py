"""Which axis of a 3-D image array holds the channels: first (C x H x W) or last (H x W x C).

The rule, for an array of shape ``(a, b, c)`` (``channel_order="auto"``):

1. with a mask of shape (H, W): the axis whose removal leaves exactly (H, W), if only one does;
2. else the axis (0 or 2) that is at most :data:`MAX_CHANNELS` long and strictly shorter than both
   other axes, if only one is — ``(16, 256, 256)`` is channels-first, ``(256, 256, 3)`` and
   ``(4, 500, 3)`` channels-last;
3. else the order cannot be told (``(3, 3, 3)``, ``(8, 8, 8)``): :class:`InputError`, asking for
   ``--channels-first`` or ``--channels-last``.

``"first"`` / ``"last"`` say it outright. The result is always H x W x C.
"""

from __future__ import annotations

import numpy as np

from ..choices import ChannelOrder
from ..errors import InputError

__all__ = ["MAX_CHANNELS", "channel_axis", "channels_last", "first_by_shape"]

MAX_CHANNELS = 64
"""The most channels an image axis may hold for the rule to take it as the channel axis."""


def channel_axis(
    shape: tuple[int, ...], mask_hw: tuple[int, int] | None = None, order: ChannelOrder = "auto"
) -> int | None:
    """0 or 2 for a 3-D ``shape`` (see the module docstring); None when it cannot be told."""
    if order == "first":
        return 0
    if order == "last":
        return 2
    if mask_hw is not None:
        fits = [ax for ax in (0, 2) if tuple(s for i, s in enumerate(shape) if i != ax) == tuple(mask_hw)]
        if len(fits) == 1:
            return fits[0]
    small = [
        ax for ax in (0, 2) if shape[ax] <= MAX_CHANNELS and all(shape[ax] < shape[o] for o in range(3) if o != ax)
    ]
    return small[0] if len(small) == 1 else None


def first_by_shape(
    shape: tuple[int, ...], mask_hw: tuple[int, int] | None = None, order: ChannelOrder = "auto"
) -> bool:
    """True when rule 2 alone (no flag, no mask that decides) takes a 3-D ``shape`` as channels-first:
    the one guess of this module, which a compile reports and records."""
    if order != "auto" or len(shape) != 3 or channel_axis(shape, mask_hw, order) != 0:
        return False
    if mask_hw is None:
        return True
    fits = [ax for ax in (0, 2) if tuple(s for i, s in enumerate(shape) if i != ax) == tuple(mask_hw)]
    return len(fits) != 1


def channels_last(
    a: np.ndarray, path: object, mask_hw: tuple[int, int] | None = None, order: ChannelOrder = "auto"
) -> np.ndarray:
    """``a`` (H x W, or 3-D in either order) as H x W [x C]; raises InputError naming ``path`` when
    the order cannot be told."""
    if a.ndim != 3:
        return a
    axis = channel_axis(a.shape, mask_hw, order)
    if axis is None:
        raise InputError(
            path,
            f"cannot tell whether the channels of a {' x '.join(map(str, a.shape))} image come first or last",
            "pass --channels-first or --channels-last",
        )
    return a if axis == 2 else np.moveaxis(a, 0, 2)
