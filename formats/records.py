"""What the writer is given: one compiled sample as plain numpy (no compiler types, no pyarrow).

Kept apart from :mod:`formats.writer` so that building records imports neither zarr nor pyarrow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .nodes import NodeTable

__all__ = ["SampleRecord"]


@dataclass
class SampleRecord:
    """One compiled sample, as the writer needs it (plain numpy, no compiler types).

    nodes: the sample's :class:`~formats.nodes.NodeTable` (n rows);
    image: (n, p, p, C); mask: (n, p, p) or None -- for volumes (n, p, p, p, C) and (n, p, p, p),
    with ``canvas`` and ``original`` as (D, H, W) and nodes carrying z1/z2; transform: canvas -> original pixels,
    ``orig = canvas * scale + offset`` per axis; ceiling: per-class Dice (classes, dice) or None;
    spacing: millimetres per original pixel along rows and columns, and the slice thickness, for
    volume slices (None otherwise); modality: what the compiler took the pixels for (``ct``,
    ``mr``, ``rgb``, ``grey``; None: not recorded); split / split_group: the sample's split and the
    group that went to it whole (None when the dataset has no splits).
    """

    sample: int
    key: str
    source: str
    mask_source: str | None
    view: int
    canvas: tuple[int, ...]
    original: tuple[int, ...]
    scale: tuple[float, float]
    offset: tuple[float, float]
    slice_axis: int | None
    slice_index: int | None
    gamma: float
    ceiling: tuple[np.ndarray, np.ndarray] | None
    blur: int
    canny: tuple[float, float]
    nodes: NodeTable
    image: np.ndarray
    mask: np.ndarray | None
    spacing: tuple[float, float, float] | None = None
    modality: str | None = None
    split: str | None = None
    split_group: str | None = None
