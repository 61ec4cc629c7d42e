"""The vocabularies of every option with a fixed set of values, as ``Literal`` types.

Each is used as the type of its parameter (in :mod:`apfcompile.core`, :mod:`apfcompile.inputs` and
:mod:`apfcompile.build`) and turned into the CLI's ``click.Choice`` by :func:`choices`, so the two
can never disagree. This module imports nothing heavy: the CLI reads it to build ``--help`` (and
so the one numeric default ``--help`` shows that a heavy module owns lives here too).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "ChannelOrder",
    "Drop",
    "Fit",
    "ImageMethod",
    "Layout",
    "MaskDtype",
    "MaskMethod",
    "Modality",
    "Mode",
    "OnError",
    "OutOfCore",
    "PaipLabel",
    "Policy",
    "VolumeEdges",
    "choices",
    "DEFAULT_MAX_PIXELS",
]

DEFAULT_MAX_PIXELS = 4_000_000_000
"""``--max-pixels``' default (:mod:`apfcompile.inputs.readers.limits`): 4 gigapixels (or voxels),
12 GB as RGB uint8, more than any image a compile holds in memory on purpose, far less than the
terabytes a hostile header can claim."""

Layout = Literal["auto", "folder", "paip", "btcv", "nnunet", "list"]
"""How INPUT is organised (:mod:`apfcompile.inputs.layouts`)."""
PaipLabel = Literal["both", "whole", "viable"]
"""PAIP labels: both = 0 / 1 whole-not-viable / 2 viable; whole or viable = 0/1."""
Fit = Literal["square", "pad"]
"""Canvas fit (:mod:`apfcompile.inputs.canvas`)."""
Policy = Literal["greedy", "threshold"]
"""Forest split policy (:mod:`apfcompile.core.forest`)."""
ImageMethod = Literal["area", "nearest"]
"""Leaf -> patch for images (:mod:`apfcompile.core.patches`)."""
MaskMethod = Literal["mode", "nearest"]
"""Leaf -> patch for masks (:mod:`apfcompile.core.patches`)."""
Drop = Literal["priority", "random"]
"""Which leaves a fixed-length sequence drops (:mod:`apfcompile.core.sequence`)."""
MaskDtype = Literal["auto", "uint8", "uint16", "int16", "int32"]
"""Stored mask dtype; auto = the narrowest that holds the masks' labels (:mod:`apfcompile.build.plan`)."""
Modality = Literal["auto", "ct", "mr", "rgb", "grey"]
"""What the pixels are, which decides the edge window and the pad value (:mod:`apfcompile.inputs.modality`)."""
Mode = Literal["slices", "volume"]
"""A volume as one sample per slice (quadtree) or as one sample (octree; :mod:`apfcompile.core.octree`)."""
VolumeEdges = Literal["slices", "gradient"]
"""Edges of a volume in ``--mode volume`` (:mod:`apfcompile.core.patchify_volume`)."""
OutOfCore = Literal["auto", "always", "never"]
"""When slides compile band by band (:mod:`apfcompile.build.samples`)."""
OnError = Literal["fail", "skip"]
"""What a bad input does to a compile."""
ChannelOrder = Literal["auto", "first", "last"]
"""Where a 3-D image array keeps its channels (:mod:`apfcompile.inputs.channels`)."""


def choices(literal: object) -> list[str]:
    """The values of a ``Literal`` option type, in order, for ``click.Choice``."""
    return list(get_args(literal))
