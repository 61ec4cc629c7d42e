"""apfcompile: compile high-resolution images into adaptive patch sequences, once.

The core, importable without torch:

- :mod:`apfcompile.edges`: grey reduction, blur, Canny, edge-count grids;
- :mod:`apfcompile.forest`: the quadtree forest (greedy and threshold policies) in Z-order;
- :mod:`apfcompile.serialise`: leaves -> p x p patches (area / nearest; masks by mode / nearest);
- :mod:`apfcompile.reconstruct`: patches -> full-size canvases, Dice, the reconstruction ceiling;
- :mod:`apfcompile.sequence`: pad or drop to a fixed length;
- :mod:`apfcompile.pipeline`: :func:`patchify`, all of the above for one image.
"""

from .edges import EdgeParams, edge_count_grid, edge_map
from .errors import APFError, InputError, InputNotFoundError, ParameterError, UnreadableInputError
from .forest import ForestParams, Leaves, build_forest
from .pipeline import PatchedSample, PatchParams, patchify
from .reconstruct import ceiling_dice, dice_per_class, reconstruct
from .sequence import FixedSequence, fit_length, select_leaves
from .serialise import serialise_image, serialise_mask

__version__ = "0.1.0"

__all__ = [
    "APFError", "EdgeParams", "FixedSequence", "ForestParams", "InputError", "InputNotFoundError",
    "Leaves", "ParameterError", "PatchParams", "PatchedSample", "UnreadableInputError",
    "build_forest", "ceiling_dice", "dice_per_class", "edge_count_grid", "edge_map", "fit_length",
    "patchify", "reconstruct", "select_leaves", "serialise_image", "serialise_mask",
]  # fmt: skip
