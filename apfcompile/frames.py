"""From an input file to frames: the 2-D image/mask pairs that become samples.

An ``image`` input is one frame; a ``volume`` (NIfTI) gives one frame per slice along its last
axis (axial for BTCV), slice ``k`` keyed ``KEY/zKKK``. TIFF/SVS images and ``paip`` slides are
read at the pyramid level closest above the target resolution (level 0 without one, or for a
plain TIFF), masks at their own level brought to it; a PAIP slide's two 0/1 masks are combined
into labels.
Masks are checked here: integer labels (a float mask is accepted only if every value is a whole
number), the same height and width as the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .canvas import canvas_size
from .errors import InputError, InputNotFoundError, UnreadableInputError
from .inputs import InputPath, open_input
from .layouts import InputItem
from .readers import SLIDE_SUFFIXES, nifti, read_array, read_slide_level, suffix_of, tiff
from .resample import resample

__all__ = ["Frame", "count_frames", "load_frames"]

_IMAGE_DTYPES = (np.uint8, np.uint16, np.int16, np.float32)


@dataclass(frozen=True)
class Frame:
    key: str
    image: np.ndarray
    mask: np.ndarray | None
    slice_axis: int | None = None
    slice_index: int | None = None
    original: tuple[int, int] | None = None  # full-resolution (H, W) when read from a lower level


def count_frames(item: InputItem, storage_options: dict | None = None) -> int:
    """How many frames (samples per view) an input gives, from its header only."""
    if item.kind != "volume":
        return 1
    try:
        with open_input(item.image, storage_options) as (source, _):
            shape = nifti.load(source).shape
    except InputNotFoundError:
        return 1  # reported when the frame is loaded
    except InputError:
        raise
    except Exception as exc:  # nibabel raises many kinds for a bad header
        raise UnreadableInputError(item.image, f"cannot be read as NIfTI ({exc})") from exc
    return int(shape[2]) if len(shape) >= 3 else 1


def _as_image(a: np.ndarray, path: InputPath) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] == 4 and a.dtype == np.uint8:
        a = a[:, :, :3]
    if a.ndim not in (2, 3):
        raise InputError(path, f"expected a 2-D image (H x W or H x W x C), found shape {a.shape}")
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype not in _IMAGE_DTYPES:
        if a.dtype.kind in "iu" and a.min() >= np.iinfo(np.int16).min and a.max() <= np.iinfo(np.int16).max:
            a = a.astype(np.int16)
        else:
            a = a.astype(np.float32)
    return np.ascontiguousarray(a)


def as_labels(m: np.ndarray, path: InputPath, shape: tuple[int, int]) -> np.ndarray:
    """Validate a label mask: integer values, 2-D, of the image's height and width."""
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[:, :, 0]
    if m.ndim != 2:
        raise InputError(path, f"a mask must be H x W labels, found shape {m.shape}")
    if m.shape != tuple(shape):
        raise InputError(path, f"mask size {m.shape[0]} x {m.shape[1]} differs from its image's {shape[0]} x {shape[1]}",
                         "masks must match their images pixel for pixel")  # fmt: skip
    if m.dtype == np.bool_:
        return m.astype(np.uint8)
    if m.dtype.kind == "f":
        if not np.all(np.isfinite(m)) or not np.array_equal(m, np.round(m)):
            raise InputError(path, "the mask has non-integer values", "masks hold integer class ids")
        return m.astype(np.int32 if m.min() < 0 or m.max() > 65535 else np.uint16)
    if m.dtype.kind not in "iu":
        raise InputError(path, f"mask dtype {m.dtype} is not integer", "masks hold integer class ids")
    return m


def _choose_level(path: InputPath, resolution: int | None, storage_options: dict | None):
    try:
        with open_input(path, storage_options) as (source, _):
            return tiff.choose_level(source, resolution)
    except InputError:
        raise
    except Exception as exc:
        raise UnreadableInputError(path, f"cannot be read as a TIFF ({exc})") from exc


def _mask_at(path: InputPath, resolution: int | None, full: tuple[int, int], shape: tuple[int, int],
             storage_options: dict | None, first_channel: bool = False) -> np.ndarray:  # fmt: skip
    """A slide's mask: a TIFF read at its own pyramid level (any other file whole), which must
    match the slide at full resolution or at the level read; brought to ``shape`` (the level
    read) by nearest neighbour. ``first_channel``: keep channel 0 of a multi-channel mask."""
    if suffix_of(path) in SLIDE_SUFFIXES:
        m, _ = read_slide_level(path, resolution, storage_options)
    else:
        m = read_array(path, storage_options)
    if m.ndim == 3 and (m.shape[2] == 1 or first_channel):
        m = m[..., 0]
    if m.shape[:2] == shape or full == shape:  # as_labels reports any other mismatch
        return m
    if m.shape[:2] != full:
        raise InputError(path, f"mask size {m.shape[:2]} matches neither its slide ({full}) nor the level read ({shape})")
    return resample(np.ascontiguousarray(m), shape, nearest=True)


def _slide(item: InputItem, resolution: int | None, storage_options: dict | None) -> tuple[np.ndarray, tuple]:
    image, full = read_slide_level(item.image, resolution, storage_options)
    return _as_image(image, item.image), full


def _paip(item: InputItem, resolution: int | None, label: str, storage_options: dict | None) -> list[Frame]:
    image, full = _slide(item, resolution, storage_options)
    shape = image.shape[:2]
    whole, viable = (_mask_at(p, resolution, full, shape, storage_options, first_channel=True) != 0
                     for p in item.masks)  # fmt: skip
    if whole.shape != shape or viable.shape != shape:
        bad = item.masks[0] if whole.shape != shape else item.masks[1]
        raise InputError(bad, f"mask size {(whole if whole.shape != shape else viable).shape} differs from its "
                              f"slide's {shape}")  # fmt: skip
    if label == "both":
        mask = np.where(viable, 2, np.where(whole, 1, 0)).astype(np.uint8)
    else:
        mask = (whole if label == "whole" else viable).astype(np.uint8)
    return [Frame(item.key, image, mask, original=full)]


def _tiff_image(item: InputItem, resolution: int | None, storage_options: dict | None) -> list[Frame]:
    """A TIFF/SVS image input: read at the pyramid level that serves ``resolution`` (level 0 for a
    plain TIFF or no resolution), its mask brought to that level."""
    image, full = _slide(item, resolution, storage_options)
    shape = image.shape[:2]
    mask = None
    if item.masks:
        mask = as_labels(_mask_at(item.masks[0], resolution, full, shape, storage_options), item.masks[0], shape)
    return [Frame(item.key, image, mask, original=full)]


def load_frames(item: InputItem, resolution: int | None = None, paip_label: str = "both",
                storage_options: dict | None = None) -> list[Frame]:  # fmt: skip
    """Read an input's frames (see the module docstring); errors name the file.

    ``storage_options``: for inputs given as URLs, passed to their fsspec filesystem.
    """
    if item.problem:
        raise InputError(item.image, item.problem)
    if item.kind == "paip":
        return _paip(item, resolution, paip_label, storage_options)
    if item.kind == "image" and suffix_of(item.image) in SLIDE_SUFFIXES:
        return _tiff_image(item, resolution, storage_options)
    data = read_array(item.image, storage_options)
    mask = read_array(item.masks[0], storage_options) if item.masks else None
    if item.kind == "volume":
        if data.ndim < 3:
            data = data[:, :, None]
        if mask is not None and mask.shape[:3] != data.shape[:3]:
            raise InputError(item.masks[0], f"label volume {mask.shape} differs from its image volume {data.shape}")
        frames = []
        for z in range(data.shape[2]):
            img = _as_image(np.ascontiguousarray(data[:, :, z]), item.image)
            m = None if mask is None else as_labels(np.ascontiguousarray(mask[:, :, z]), item.masks[0], img.shape[:2])
            frames.append(Frame(f"{item.key}/z{z:03d}", img, m, 2, z))
        return frames
    img = _as_image(data, item.image)
    m = None if mask is None else as_labels(mask, item.masks[0], img.shape[:2])
    return [Frame(item.key, img, m)]


class _PaipLabels:
    """Band reader combining a PAIP slide's whole/viable 0/1 masks into labels (see layouts)."""

    def __init__(self, whole, viable, label: str) -> None:
        self.whole, self.viable, self.label = whole, viable, label
        self.shape = whole.shape[:2]
        self.dtype = np.dtype(np.uint8)

    def rows(self, y0: int, y1: int) -> np.ndarray:
        whole = self.whole.rows(y0, y1) != 0
        viable = self.viable.rows(y0, y1) != 0
        whole = whole if whole.ndim == 2 else whole[..., 0]
        viable = viable if viable.ndim == 2 else viable[..., 0]
        if self.label == "both":  # viable -> 2, else whole -> 1, else 0; uint8 all the way
            return np.maximum(whole.view(np.uint8), viable.view(np.uint8) << 1)
        return (whole if self.label == "whole" else viable).view(np.uint8)


def slide_canvas(item: InputItem, resolution: int | None, fit: str = "square",
                 storage_options: dict | None = None) -> tuple[int, int]:  # fmt: skip
    """The canvas (H, W) a TIFF/SVS input compiles to, from its header alone."""
    _, hw, _ = _choose_level(item.image, resolution, storage_options)
    return canvas_size(hw[0], hw[1], resolution, fit)[1]


def _open_sources(item: InputItem, masks: tuple, resolution: int | None, fit: str,
                  storage_options: dict | None):  # fmt: skip
    """TiffSources of a slide on its canvas and of each of ``masks`` (nearest, through the slide
    level's size), plus the slide's full-resolution (H, W)."""
    from .banded import TiffSource

    if item.problem:
        raise InputError(item.image, item.problem)
    level, hw, full = _choose_level(item.image, resolution, storage_options)
    size, canvas = canvas_size(hw[0], hw[1], resolution, fit)
    opened = [TiffSource(item.image, level, size, pad_to=canvas, storage_options=storage_options)]
    try:
        for path in masks:
            m_level, m_hw, m_full = _choose_level(path, resolution, storage_options)
            if m_full != full and m_hw != hw:
                raise InputError(path, f"mask size {m_full} matches neither its slide ({full}) nor the level read ({hw})")
            opened.append(TiffSource(path, m_level, size, nearest=True, via=hw, pad_to=canvas,
                                     storage_options=storage_options))  # fmt: skip
    except BaseException:
        for source in opened:
            source.close()
        raise
    return opened, full


def paip_sources(item: InputItem, resolution: int | None, label: str, fit: str = "square",
                 storage_options: dict | None = None):  # fmt: skip
    """Band readers for a PAIP slide and its labels on the canvas, the full-resolution size and
    every source to close.

    The same pixels as the in-memory path: the slide level ``tiff.read_level`` picks, each mask
    read at its own level and brought to the slide level's size (nearest), then both resampled to
    the canvas (:mod:`apfcompile.resample`) and padded for ``fit="pad"``.
    """
    opened, full = _open_sources(item, item.masks, resolution, fit, storage_options)
    return opened[0], _PaipLabels(opened[1], opened[2], label), full, opened


class _Labels:
    """Band reader of a single-channel label mask (a trailing channel of 1 dropped, bool as 0/1)."""

    def __init__(self, source) -> None:
        self.source = source
        self.shape = source.shape[:2]
        self.dtype = np.dtype(np.uint8) if source.dtype == np.bool_ else source.dtype

    def rows(self, y0: int, y1: int) -> np.ndarray:
        rows = self.source.rows(y0, y1)
        rows = rows[..., 0] if rows.ndim == 3 else rows
        return rows.view(np.uint8) if rows.dtype == np.bool_ else rows


def tiff_sources(item: InputItem, resolution: int | None, fit: str = "square",
                 storage_options: dict | None = None):  # fmt: skip
    """Band readers for a TIFF/SVS image input and its TIFF mask (or None) on the canvas, the
    full-resolution size and every source to close; the same pixels as :func:`load_frames`.
    Raises InputError for a mask that is not one channel of integer labels."""
    opened, full = _open_sources(item, item.masks[:1], resolution, fit, storage_options)
    mask = None
    if len(opened) > 1:
        m = opened[1]
        if len(m.shape) == 3 and m.shape[2] != 1:
            for source in opened:
                source.close()
            raise InputError(item.masks[0], f"a mask must be H x W labels, found {m.shape[2]} channels")
        if m.dtype.kind not in "uib":
            for source in opened:
                source.close()
            raise InputError(item.masks[0], f"mask dtype {m.dtype} is not integer", "masks hold integer class ids")
        mask = _Labels(m)
    return opened[0], mask, full, opened


def mask_labels(mask, band_rows: int = 512) -> np.ndarray:
    """The sorted label values of a band reader's whole mask (one streaming pass)."""
    h = mask.shape[0]
    if mask.dtype in (np.uint8, np.uint16):  # a histogram per band (OpenCV: no int64 copy)
        bins = np.iinfo(mask.dtype).max + 1
        seen = np.zeros(bins, bool)
        for y in range(0, h, band_rows):
            rows = np.ascontiguousarray(mask.rows(y, min(h, y + band_rows)))
            seen |= cv2.calcHist([rows], [0], None, [bins], [0, bins]).ravel() > 0
        return np.flatnonzero(seen).astype(mask.dtype)
    found = np.zeros(0, mask.dtype)
    for y in range(0, h, band_rows):
        found = np.union1d(found, np.unique(mask.rows(y, min(h, y + band_rows))))
    return found
