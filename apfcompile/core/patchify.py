"""One sample through the core: edges -> forest -> patch sequence (+ mask patches, quality).

:func:`patchify` is the library entry point the CLI and the benchmarks use for one in-memory
image. The canvas is the image as given (resampling to a target resolution happens before).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from formats.nodes import NodeTable

from ..errors import InputError, ParameterError
from .edges import EdgeParams, edge_count_grid, edge_map
from .forest import ForestParams, build_forest
from .patches import ImageMethod, MaskMethod, mode_patches, serialise_image, serialise_mask
from .reconstruct import ceiling_dice, dice_from_confusion

__all__ = ["PatchParams", "PatchedSample", "patchify"]


@dataclass(frozen=True)
class PatchParams:
    """Everything that decides a sample's sequence.

    patch_size: side p of every output patch, a power of two.
    edges, forest: see :class:`EdgeParams` and :class:`ForestParams`; ``forest.min_size``
        must be >= patch_size (no leaf is upsampled).
    image_method: ``area`` or ``nearest``; mask_method: ``mode`` or ``nearest``.
    ignore_index: the mask's ignore label, or None.
    """

    patch_size: int = 8
    edges: EdgeParams = field(default_factory=EdgeParams)
    forest: ForestParams = field(default_factory=ForestParams)
    image_method: ImageMethod = "area"
    mask_method: MaskMethod = "mode"
    ignore_index: int | None = None

    def __post_init__(self) -> None:
        p = self.patch_size
        if not (isinstance(p, int) and p >= 1 and not p & (p - 1)):
            raise ParameterError("patch_size", "a power of two", p)
        if self.forest.min_size < p:
            raise ParameterError("min_size", f">= patch_size ({p})", self.forest.min_size)

    @classmethod
    def make(cls, patch_size: int = 8, min_size: int | None = None, **kw: object) -> PatchParams:
        """Convenience: forest/edge fields by keyword, ``min_size`` defaulting to ``patch_size``."""
        forest_keys = {f for f in ForestParams.__dataclass_fields__} - {"min_size"}
        edge_keys = set(EdgeParams.__dataclass_fields__)
        forest = ForestParams(min_size=min_size or patch_size, **{k: kw.pop(k) for k in list(kw) if k in forest_keys})
        edges = EdgeParams(**{k: kw.pop(k) for k in list(kw) if k in edge_keys})
        return cls(patch_size=patch_size, edges=edges, forest=forest, **kw)

    def with_view(self, blur: int, canny: tuple[float, float]) -> PatchParams:
        """The same parameters under other edge settings (a "view")."""
        return replace(self, edges=replace(self.edges, blur=blur, canny=canny))


@dataclass(frozen=True)
class PatchedSample:
    """A sample's sequence before padding: row i of every array <-> leaf i (Z-order).

    patches: (N, p, p, C) in the image's dtype; mask: (N, p, p) in the mask's dtype or None;
    gamma: compression ratio, uniform p-grid patches over the canvas / N;
    ceiling: (classes, per-class Dice) of the mask rebuilt from ``mask`` against the mask,
    or None without a mask.
    """

    leaves: NodeTable
    patches: np.ndarray
    mask: np.ndarray | None
    gamma: float
    ceiling: tuple[np.ndarray, np.ndarray] | None


def _check_image(image: np.ndarray, mask: np.ndarray | None, p: int) -> None:
    if image.ndim not in (2, 3) or image.size == 0:
        raise InputError("image", f"expected a non-empty H x W or H x W x C array, found shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16, np.int16, np.float32):
        raise InputError("image", f"expected uint8, uint16, int16 or float32, found {image.dtype}", "convert it first")
    if min(image.shape[:2]) < p:
        raise InputError(
            "image",
            f"{image.shape[0]} x {image.shape[1]} px is smaller than the patch size {p}",
            "use a smaller --patch-size or a larger --resolution",
        )
    if mask is not None and mask.shape != image.shape[:2]:
        raise InputError("mask", f"size {mask.shape} differs from its image's {image.shape[:2]}")


def patchify(image: np.ndarray, mask: np.ndarray | None = None, params: PatchParams = PatchParams()) -> PatchedSample:
    """Cut one image (and its label mask) into an adaptive patch sequence.

    image: H x W or H x W x C (uint8 / uint16 / int16 / float32); mask: H x W integer labels.
    """
    p = params.patch_size
    _check_image(image, mask, p)
    shape = image.shape[:2]
    counts = edge_count_grid(edge_map(image, params.edges), params.forest.min_size)
    leaves = build_forest(counts, shape, params.forest)
    patches = serialise_image(image, leaves, p, params.image_method)
    gamma = (-(-shape[0] // p)) * (-(-shape[1] // p)) / max(len(leaves), 1)
    mask_patches, ceiling = None, None
    if mask is not None:
        ignore = params.ignore_index
        if params.mask_method == "mode":  # the ceiling from the votes counted anyway: no rebuild
            fill = 0 if ignore is None else ignore
            mask_patches, labels, confusion = mode_patches(mask, leaves, p, ignore, fill)
            ceiling = dice_from_confusion(labels, confusion, ignore)
        else:
            mask_patches = serialise_mask(mask, leaves, p, params.mask_method, ignore)
            ceiling = ceiling_dice(mask, mask_patches, leaves, ignore)
    return PatchedSample(leaves, patches, mask_patches, float(gamma), ceiling)
