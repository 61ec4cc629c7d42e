"""Region sources: the kinds of :class:`~apfcompile.core.out_of_core.RegionSource`, in one place.

A region source gives the rows of a canvas on demand (``shape``, ``dtype``, ``rows(y0, y1)``) and is
a context manager that releases what it holds (files, object-storage handles) on exit:

- :class:`ArraySource`: an in-memory array or a numpy memory map;
- :class:`TiffSource`: one pyramid level of a TIFF/SVS, read tile-wise through tifffile's Zarr
  view and resampled band by band to the canvas (:mod:`apfcompile.core.resample`), so any banding
  gives the pixels the whole-level resampling gives;
- :class:`LabelSource`: a single-channel label mask over another source (trailing channel of 1
  dropped, bool as 0/1);
- :class:`PaipLabelSource`: a PAIP slide's whole/viable 0/1 masks combined into labels.

:func:`read_slide_header` reads a slide input's header once (levels and sizes of the slide and
its masks); :func:`open_slide_sources` opens the slide and its labels on the canvas from it, as one
:class:`SlideSources` that closes everything it opened.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..choices import PaipLabel
from ..core.out_of_core import RegionSource
from ..core.resample import resample_rows
from ..errors import InputError, UnreadableInputError
from .canvas import Fit, canvas_size
from .labels import apply_label_map
from .layouts import InputItem
from .locations import STREAM_BLOCK, Place, open_input
from .readers import SLIDE_SUFFIXES, reader_module, suffix_of

__all__ = [
    "ArraySource",
    "LabelSource",
    "PaipLabelSource",
    "RegionSource",
    "SlideHeader",
    "SlideSources",
    "TiffSource",
    "is_slide_input",
    "mask_labels",
    "open_slide_sources",
    "read_slide_header",
]


class _Closing:
    """Context-manager protocol on top of ``close()``."""

    def close(self) -> None:
        """Release what the source holds (nothing, for an array)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class ArraySource(_Closing):
    """An in-memory array (or a numpy memory map) as a region source."""

    array: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    def rows(self, y0: int, y1: int) -> np.ndarray:
        return np.ascontiguousarray(self.array[y0:y1])


class TiffSource(_Closing):
    """One level of a pyramidal TIFF/SVS, read tile-wise, resampled to a canvas.

    ``size``: the resampled image's (H, W) (default: the level's); ``via``: an (H, W) to bring the
    level to first (nearest; PAIP masks go through their slide level's size, as in memory);
    ``pad_to``: the canvas (H, W), padded below and right of the image with :attr:`pad_value`. Resampling is
    :mod:`apfcompile.core.resample` (``nearest=True`` for masks), so any banding gives the same
    pixels as resampling the whole level.
    """

    def __init__(
        self,
        path: Place | str | os.PathLike,
        level: int = 0,
        size: tuple[int, int] | None = None,
        nearest: bool = False,
        via: tuple[int, int] | None = None,
        pad_to: tuple[int, int] | None = None,
    ) -> None:
        import tifffile
        import zarr

        self._stack = contextlib.ExitStack()  # a URL's file object stays open as long as the source
        try:
            source, _ = self._stack.enter_context(open_input(Place.of(path), STREAM_BLOCK))
            self._tif = self._stack.enter_context(tifffile.TiffFile(source))
            self._store = self._tif.series[0].aszarr(level=level, read_only=True)
            self._stack.callback(self._store.close)
        except BaseException:
            self._stack.close()
            raise
        self._z = zarr.open(self._store, mode="r")
        self.nearest, self.level = nearest, level
        self.level_hw = tuple(self._z.shape[:2])
        self.via = tuple(via) if via is not None else self.level_hw
        self.size = tuple(size) if size is not None else self.via
        self.canvas = tuple(pad_to) if pad_to is not None else self.size
        self.shape = self.canvas + tuple(self._z.shape[2:])
        self.dtype = np.dtype(self._z.dtype)

    def overview(self, min_pixels: int = 1 << 20) -> np.ndarray | None:
        """The coarsest pyramid level with at least ``min_pixels`` pixels, whole (None when the
        file has no level coarser than the one read): a cheap sample of the slide's values."""
        levels = list(self._tif.series[0].levels)
        pixels = [level.shape[level.axes.index("Y")] * level.shape[level.axes.index("X")] for level in levels]
        coarser = [k for k in range(self.level + 1, len(levels)) if pixels[k] >= min_pixels]
        if not coarser:
            return None
        image = levels[coarser[-1]].asarray()
        while image.ndim > 3 and image.shape[0] == 1:
            image = image[0]
        return image

    def _level_rows(self, y0: int, y1: int) -> np.ndarray:
        return np.asarray(self._z[y0:y1])

    def _via_rows(self, y0: int, y1: int) -> np.ndarray:
        return resample_rows(self._level_rows, self.level_hw, self.via, y0, y1, nearest=True)

    pad_value: object = 0
    """What the canvas is padded with below and right of the image (a scalar or one per channel)."""

    def rows(self, y0: int, y1: int) -> np.ndarray:
        h = self.size[0]
        if self.canvas == self.size:  # no padding: no extra copy
            return resample_rows(self._via_rows, self.via, self.size, y0, y1, self.nearest)
        out = np.empty((y1 - y0,) + self.shape[1:], self.dtype)
        out[...] = self.pad_value
        top = min(y1, h)
        if y0 < top:
            part = resample_rows(self._via_rows, self.via, self.size, y0, top, self.nearest)
            out[: top - y0, : self.size[1]] = part
        return out

    def close(self) -> None:
        self._stack.close()


class LabelSource(_Closing):
    """A single-channel label mask over ``source`` (a trailing channel of 1 dropped, bool as 0/1).

    Raises :class:`InputError` (naming ``path``) for several channels or non-integer values."""

    def __init__(self, source: RegionSource, path: Place, label_map: dict[int, int] | None = None) -> None:
        if len(source.shape) == 3 and source.shape[2] != 1:
            raise InputError(path, f"a mask must be H x W labels, found {source.shape[2]} channels")
        if source.dtype.kind not in "uib":
            raise InputError(path, f"mask dtype {source.dtype} is not integer", "masks hold integer class ids")
        self.source = source
        self.shape = source.shape[:2]
        self.label_map = label_map
        stored = np.dtype(np.uint8) if source.dtype == np.bool_ else source.dtype
        self.dtype = apply_label_map(np.zeros(0, stored), label_map).dtype

    def rows(self, y0: int, y1: int) -> np.ndarray:
        rows = self.source.rows(y0, y1)
        rows = rows[..., 0] if rows.ndim == 3 else rows
        return apply_label_map(rows.view(np.uint8) if rows.dtype == np.bool_ else rows, self.label_map)


class PaipLabelSource(_Closing):
    """A PAIP slide's whole/viable 0/1 masks combined into labels (see
    :data:`apfcompile.inputs.layouts.PAIP_CLASSES`): ``both`` gives viable -> 2, else whole -> 1,
    else 0; ``whole`` / ``viable`` give that mask as 0/1."""

    def __init__(
        self, whole: RegionSource, viable: RegionSource, label: PaipLabel, label_map: dict[int, int] | None = None
    ) -> None:
        self.whole, self.viable, self.label = whole, viable, label
        self.shape = whole.shape[:2]
        self.label_map = label_map
        self.dtype = apply_label_map(np.zeros(0, np.uint8), label_map).dtype

    def labels(self) -> list[int]:
        """The values this source can hold, sorted."""
        held = np.array([0, 1, 2] if self.label == "both" else [0, 1], np.uint8)
        return sorted(set(apply_label_map(held, self.label_map).tolist()))

    def rows(self, y0: int, y1: int) -> np.ndarray:
        return apply_label_map(self._rows(y0, y1), self.label_map)

    def _rows(self, y0: int, y1: int) -> np.ndarray:
        whole = self.whole.rows(y0, y1) != 0
        viable = self.viable.rows(y0, y1) != 0
        whole = whole if whole.ndim == 2 else whole[..., 0]
        viable = viable if viable.ndim == 2 else viable[..., 0]
        if self.label == "both":  # uint8 all the way
            return np.maximum(whole.view(np.uint8), viable.view(np.uint8) << 1)
        return (whole if self.label == "whole" else viable).view(np.uint8)


def is_slide_input(item: InputItem) -> bool:
    """A PAIP case, or a TIFF/SVS image whose masks (if any) are TIFFs too: what can be read by
    region."""
    if item.kind == "paip":
        return True
    return (
        item.kind == "image"
        and not item.channels
        and suffix_of(item.image) in SLIDE_SUFFIXES
        and all(suffix_of(m) in SLIDE_SUFFIXES for m in item.masks)
    )


@dataclass(frozen=True)
class _LevelHeader:
    path: Place
    level: int
    level_hw: tuple[int, int]
    full: tuple[int, int]


def _level_header(path: Place, resolution: int | None) -> _LevelHeader:
    try:
        with open_input(path) as (source, _):
            level, hw, full = reader_module("tiff").choose_level(source, resolution)
    except InputError:
        raise
    except Exception as exc:
        raise UnreadableInputError(path, f"cannot be read as a TIFF ({exc})") from exc
    return _LevelHeader(path, level, tuple(hw), tuple(full))


@dataclass(frozen=True)
class SlideHeader:
    """What a slide input's headers say: the level read for ``resolution`` and the sizes.

    level_hw: (H, W) of the level read; full: level 0's (H, W); size: the resampled image's (H, W);
    canvas: the canvas (H, W) (``size`` padded for ``fit="pad"``); masks: each mask's level.
    """

    item: InputItem
    level: int
    level_hw: tuple[int, int]
    full: tuple[int, int]
    size: tuple[int, int]
    canvas: tuple[int, int]
    masks: tuple[_LevelHeader, ...] = field(default=())

    @property
    def pixels(self) -> int:
        return self.canvas[0] * self.canvas[1]


def read_slide_header(item: InputItem, resolution: int | None, fit: Fit = "square") -> SlideHeader:
    """The headers of a slide input (:func:`is_slide_input`) and of its masks, read once.

    Raises :class:`InputError` for an unreadable header, or a mask that matches neither the slide
    at full resolution nor the level read."""
    if item.problem:
        raise InputError(item.image, item.problem)
    head = _level_header(item.image, resolution)
    size, canvas = canvas_size(head.level_hw[0], head.level_hw[1], resolution, fit)
    masks = []
    for path in item.masks:
        m = _level_header(path, resolution)
        if m.full != head.full and m.level_hw != head.level_hw:
            raise InputError(
                path, f"mask size {m.full} matches neither its slide ({head.full}) nor the level read ({head.level_hw})"
            )
        masks.append(m)
    return SlideHeader(item, head.level, head.level_hw, head.full, size, canvas, tuple(masks))


class SlideSources(_Closing):
    """A slide on its canvas (``image``), its labels (``mask``, or None) and level 0's (H, W)
    (``full``); closing it closes every file it opened."""

    def __init__(
        self, image: RegionSource, mask: RegionSource | None, full: tuple[int, int], stack: contextlib.ExitStack
    ) -> None:
        self.image, self.mask, self.full, self._stack = image, mask, full, stack

    def close(self) -> None:
        self._stack.close()


def open_slide_sources(
    header: SlideHeader, paip_label: PaipLabel = "both", label_map: dict[int, int] | None = None
) -> SlideSources:
    """Open a slide and its labels on the canvas, from its header (:func:`read_slide_header`).

    The same pixels as the in-memory path: the slide level ``tiff.read_level`` picks, each mask read
    at its own level and brought to the slide level's size (nearest), then both resampled to the
    canvas and padded for ``fit="pad"``. A PAIP case's two masks become a
    :class:`PaipLabelSource`; an image's first mask a :class:`LabelSource`; ``label_map`` remaps
    their labels as they are read."""
    item = header.item
    with contextlib.ExitStack() as stack:
        image = stack.enter_context(TiffSource(item.image, header.level, header.size, pad_to=header.canvas))
        masks = [
            stack.enter_context(
                TiffSource(
                    m.path,
                    m.level,
                    header.size,
                    nearest=True,
                    via=header.level_hw,
                    pad_to=header.canvas,
                )
            )
            for m in (header.masks if item.kind == "paip" else header.masks[:1])
        ]
        if item.kind == "paip":
            mask = PaipLabelSource(masks[0], masks[1], paip_label, label_map)
        else:
            mask = LabelSource(masks[0], item.masks[0], label_map) if masks else None
        return SlideSources(image, mask, header.full, stack.pop_all())


def mask_labels(
    mask: RegionSource, band_rows: int = 512, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The sorted labels of a source's whole mask and their pixel counts inside ``size`` (the
    image's (H, W) on the canvas; default the whole source: padding is left out), in one streaming
    pass. A PAIP source lists every label it can hold (count 0 where absent)."""
    h, w = size if size is not None else mask.shape[:2]
    counts: dict[int, int] = {}
    if mask.dtype in (np.uint8, np.uint16):  # a histogram per band (OpenCV: no int64 copy)
        bins = np.iinfo(mask.dtype).max + 1
        hist = np.zeros(bins, np.float64)
        for y in range(0, h, band_rows):
            rows = np.ascontiguousarray(mask.rows(y, min(h, y + band_rows))[:, :w])
            hist += cv2.calcHist([rows], [0], None, [bins], [0, bins]).ravel()
        found = np.flatnonzero(hist)
        counts = dict(zip(found.tolist(), hist[found].astype(np.int64).tolist()))
    else:
        for y in range(0, h, band_rows):
            labels, n = np.unique(mask.rows(y, min(h, y + band_rows))[:, :w], return_counts=True)
            for k, c in zip(labels.tolist(), n.tolist()):
                counts[k] = counts.get(k, 0) + c
    if isinstance(mask, PaipLabelSource):
        counts = {k: counts.get(k, 0) for k in sorted(set(counts) | set(mask.labels()))}
    labels = np.array(sorted(counts), mask.dtype)
    return labels, np.array([counts[k] for k in labels.tolist()], np.int64)
