"""From an input file to frames: the 2-D image/mask pairs that become samples.

The in-memory path (the out-of-core path reads the same pixels through
:mod:`apfcompile.inputs.sources`). An ``image`` input is one frame; a ``volume`` (NIfTI) gives one
frame per slice along its last axis (axial for BTCV), slice ``k`` keyed ``KEY/zKKK``. TIFF/SVS
images and ``paip`` slides are read at the pyramid level closest above the target resolution (level
0 without one, or for a plain TIFF), masks at their own level brought to it; a PAIP slide's two 0/1
masks are combined into labels. Masks are checked here: integer labels (a float mask is accepted
only if every value is a whole number), the same height and width as the image.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..choices import ChannelOrder, PaipLabel
from ..core.resample import resample
from ..errors import APFError, InputError, InputNotFoundError, UnreadableInputError
from .channels import channels_last, first_by_shape
from .layouts import InputItem
from .locations import Place, open_input
from .readers import (
    SLIDE_SUFFIXES,
    read_array,
    read_slide_level,
    read_volume_slices,
    reader_module,
    suffix_of,
    volume_header,
    volume_oriented,
    volume_slice_blocks,
)

__all__ = ["Frame", "Volume", "count_frames", "is_stack", "load_frames", "load_volume", "mask_label_bytes"]

_IMAGE_DTYPES = (np.uint8, np.uint16, np.int16, np.float32)


@dataclass(frozen=True)
class Frame:
    key: str
    image: np.ndarray
    mask: np.ndarray | None
    slice_axis: int | None = None
    slice_index: int | None = None
    original: tuple[int, int] | None = None  # full-resolution (H, W) when read from a lower level
    spacing: tuple[float, float, float] | None = None  # mm per pixel (rows, cols) and slice thickness
    mask_source: str | None = None  # where the mask came from when not a file of its own (FILE:ARRAY)
    notes: tuple[tuple[str, str], ...] = ()  # decisions taken without being told: (kind, warning line)


def count_frames(item: InputItem) -> int:
    """How many frames (samples per view) an input gives, from its header only."""
    if item.kind == "array":
        if item.problem:
            return 1  # reported when the frame is loaded
        layout = array_layout(item)
        return layout.count if layout.stacked else 1
    if item.kind != "volume":
        return 1
    try:
        shape, _ = volume_header(item.image)
    except InputNotFoundError:
        return 1  # reported when the frame is loaded
    return int(shape[2]) if len(shape) >= 3 else 1


def produced(item: InputItem) -> tuple[str, np.ndarray, np.ndarray | None]:
    """``(key, image, mask)`` of a ``memory`` input: its function called on its argument, or the
    arrays it was given. Anything else is a one-line :class:`InputError` naming the input."""
    fn, arg = item.produce
    try:
        out = arg if fn is None else fn(arg)
    except APFError:
        raise
    except Exception as exc:  # the user's function: its failure is this input's bad input
        raise InputError(item.image, f"the function raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, tuple) or len(out) not in (2, 3):
        raise InputError(item.image, f"expected (key, image[, mask]), found {type(out).__name__}")
    key, image, mask = out if len(out) == 3 else (*out, None)
    return str(key), np.asarray(image), None if mask is None else np.asarray(mask)


def memory_frame(item: InputItem, order: ChannelOrder = "auto") -> Frame:
    """The one frame of a ``memory`` input (:func:`produced`)."""
    key, data, mask = produced(item)
    notes: tuple[tuple[str, str], ...] = ()
    if data.ndim == 3:
        hw = None if mask is None else tuple(mask.shape[:2])
        notes = _first_note(item, data.shape, hw, order)
        data = channels_last(data, item.image, hw, order)
    img = _as_image(data, item.image)
    m = None if mask is None else as_labels(mask, item.image, img.shape[:2])
    return Frame(key, img, m, notes=notes, mask_source=None if m is None else f"{item.source}:mask")


def is_stack(item: InputItem) -> bool:
    """Whether the input is a stack of samples on axis 0 (keys ``FILE/INDEX``), from headers."""
    if item.kind != "array" or item.problem:
        return False
    try:
        return array_layout(item).stacked
    except APFError:
        return False


def has_labels(item: InputItem) -> bool:
    """Whether the input comes with labels: a mask file, or (``.npz``) a mask array inside."""
    if item.masks:
        return True
    if item.labelled is not None:
        return item.labelled
    if item.kind != "array" or item.problem:
        return False
    try:
        return array_layout(item).mask is not None
    except APFError:
        return False  # reported when the input is compiled


def mask_label_bytes(item: InputItem) -> int | None:
    """Bytes per label of the input's mask as stored, from its header alone (1 for 8-bit PNG,
    JPEG, TIFF, NIfTI or NumPy masks, and PAIP's labels); None when unknown, unlabelled, or
    unreadable (the compile reports that when it reads the mask)."""
    if item.kind == "paip":
        return 1
    if item.kind == "memory" and item.produce[0] is None:
        mask = item.produce[1][2] if len(item.produce[1]) == 3 else None
        return None if mask is None else _label_bytes(np.asarray(mask).dtype)
    try:
        if not item.masks:
            if item.kind != "array" or not has_labels(item):
                return None
            layout = array_layout(item)
            with open_input(item.image) as (source, _):
                infos = reader_module("stacks").array_infos(source, suffix_of(item.image))
            return _label_bytes(np.dtype(infos[layout.mask][1]))
        sizes = {_stored_label_bytes(m) for m in item.masks}
    except (APFError, OSError, ValueError, KeyError, TypeError):
        return None
    return None if None in sizes else max(sizes)


def _label_bytes(dtype: np.dtype) -> int | None:
    return 1 if dtype == np.bool_ else dtype.itemsize if dtype.kind in "iu" else None


def _stored_label_bytes(path: Place) -> int | None:
    suffix = suffix_of(path)
    if suffix in (".jpg", ".jpeg", ".bmp"):
        return 1
    with open_input(path) as (source, _):
        if suffix == ".png":
            with _opened(source) as f:
                head = f.read(26)
            return None if head[12:16] != b"IHDR" else (2 if head[24] == 16 else 1)
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(source) as tif:
                return _label_bytes(np.dtype(tif.series[0].dtype))
        if suffix in (".nii", ".nii.gz"):
            from .readers import nifti

            return _label_bytes(np.dtype(nifti.load(source).get_data_dtype()))
        if suffix in (".nrrd", ".nhdr", ".mha", ".mhd"):
            dtype = reader_module("itk").pixel_dtype(source)
            return None if dtype is None else _label_bytes(dtype)
        if suffix in (".npy", ".npz", ".h5", ".hdf5"):
            infos = reader_module("stacks").array_infos(source, suffix)
            return max((_label_bytes(np.dtype(d)) or 99) for _, d in infos.values()) if infos else None
    return None


@contextlib.contextmanager
def _opened(source):
    if isinstance(source, Path):
        with open(source, "rb") as f:
            yield f
    else:
        source.seek(0)
        yield source


@dataclass(frozen=True)
class ArrayLayout:
    """Which arrays of a ``.npy``/``.npz`` input are its images and masks, and whether axis 0
    counts samples (``stacked``: ``count`` samples, keys ``KEY/INDEX``)."""

    image: str
    mask: str | None
    stacked: bool
    count: int
    notes: tuple[tuple[str, str], ...] = ()
    """(kind, warning line) when the arrays were picked by the default rule, not by keys."""


def _describe(infos: dict) -> str:
    return ", ".join(
        f"{n or '(the array)'} {' x '.join(map(str, shape))} {dtype}" for n, (shape, dtype) in infos.items()
    )


def array_layout(item: InputItem) -> ArrayLayout:
    """The arrays of an ``array`` input, from its header (see :mod:`apfcompile.inputs.layouts`):
    ``--image-key``/``--mask-key`` when given (axis 0 = samples); else a 4-D array is a stack of
    N images, and an ``.npz`` of exactly one 4-D array and one N x H x W integer array is a stack of
    images with their masks; anything else is one image (the ``image`` member, or the only one)."""
    path = item.image
    suffix = suffix_of(path)
    try:
        with open_input(path) as (source, _):
            infos = reader_module("stacks").array_infos(source, suffix)
    except (InputError, InputNotFoundError):
        raise
    except Exception as exc:
        raise UnreadableInputError(path, f"cannot be read as {suffix} ({exc})") from exc
    image_key, mask_key = item.arrays or (None, None)
    for key, flag in ((image_key, "--image-key"), (mask_key, "--mask-key")):
        if key is not None and key not in infos:
            raise InputError(path, f"holds no array {key!r} ({_describe(infos)})", f"check {flag}")
    if image_key is not None:
        return _checked(path, infos, image_key, mask_key)
    four = [n for n, (shape, _) in infos.items() if len(shape) == 4]
    labels = [n for n, (shape, dtype) in infos.items() if len(shape) == 3 and dtype.kind in "iub"]
    if len(infos) == 1 or "image" in infos or "arr_0" in infos:
        name = next(n for n in ("image", "arr_0", *infos) if n in infos)
        shape = infos[name][0]
        return ArrayLayout(name, mask_key, len(shape) == 4, shape[0] if len(shape) == 4 else 1)
    if len(four) == 1 and len(infos) <= 2 and (len(labels) == 1 or len(infos) == 1):
        mask = mask_key or (labels[0] if labels else None)
        layout = _checked(path, infos, four[0], mask)
        if mask is None or mask_key is not None:
            return layout
        message = (
            f"{path}: took array {four[0]!r} as the images and {mask!r} as their masks (its only 4-D and "
            "N x H x W integer arrays); pass --image-key and --mask-key to say so"
        )
        return replace(layout, notes=(("arrays_by_default", message),))
    raise InputError(
        path,
        f"holds several arrays ({_describe(infos)}) and which are images and masks is not clear",
        "pass --image-key (and --mask-key), e.g. --image-key x_train --mask-key y_train",
    )


def _checked(path: Place, infos: dict, image: str, mask: str | None) -> ArrayLayout:
    n = infos[image][0][0] if infos[image][0] else 0
    if mask is not None and infos[mask][0][:1] != (n,):
        raise InputError(
            path, f"mask array {mask!r} holds {infos[mask][0][0]} samples, image array {image!r} {n}", "check the keys"
        )
    return ArrayLayout(image, mask, True, n)


def _array_frames(item: InputItem, frames: range | None, order: ChannelOrder) -> Iterable[Frame]:
    """The frames of an ``array`` input: every sample of a stack (or ``frames`` of them), or the
    one image; channels first or last by :mod:`apfcompile.inputs.channels`."""
    layout = array_layout(item)
    suffix = suffix_of(item.image)
    with open_input(item.image) as (source, _):
        stacks = reader_module("stacks")
        images = stacks.open_array(source, suffix, layout.image)
        masks = None if layout.mask is None else stacks.open_array(_reopen(source), suffix, layout.mask)
    if masks is None and item.masks:
        masks = read_array(item.masks[0])
    mask_path = item.masks[0] if item.masks and layout.mask is None else item.image
    inside = None if layout.mask is None else f"{item.image.name}:{layout.mask}"
    if not layout.stacked:
        m = None if masks is None else np.asarray(masks)
        raw = np.asarray(images)
        hw = None if m is None else m.shape[-2:]
        img = _as_image(channels_last(raw, item.image, hw, order), item.image)
        labels = None if m is None else as_labels(m, mask_path, img.shape[:2])
        notes = layout.notes + _first_note(item, raw.shape, hw, order)
        return [Frame(item.key, img, labels, mask_source=inside, notes=notes)]
    part = frames if frames is not None else range(layout.count)
    if masks is not None and masks.shape[0] != layout.count:
        raise InputError(mask_path, f"holds {masks.shape[0]} masks for {layout.count} images", "masks pair by index")
    return _stack_frames(item, images, masks, mask_path, part, order, inside, layout.notes)


def _stack_frames(
    item, images, masks, mask_path, part: range, order: ChannelOrder, inside: str | None, picked: tuple = ()
) -> Iterator[Frame]:
    """One frame at a time: a memory-mapped stack is never in memory whole."""
    for i in part:
        m = None if masks is None else np.asarray(masks[i])
        raw = np.asarray(images[i])
        hw = None if m is None else m.shape[-2:]
        img = _as_image(channels_last(raw, item.image, hw, order), item.image)
        labels = None if m is None else as_labels(m, mask_path, img.shape[:2])
        yield Frame(
            f"{item.key}/{i}",
            img,
            labels,
            0,
            i,
            mask_source=inside,
            notes=picked + _first_note(item, raw.shape, hw, order),
        )


def _spacing(path: Place) -> tuple[float, float, float] | None:
    """A volume's voxel size in mm along its RAS+ axes, from its header."""
    return volume_header(path)[1]


def _volume_frames(
    item: InputItem,
    blocks: Iterable[tuple[np.ndarray, np.ndarray | None]],
    first: int,
    spacing: tuple | None,
) -> Iterator[Frame]:
    """One slice at a time (each made contiguous only when its turn comes) from blocks of
    consecutive slices (X x Y x k image, X x Y x k mask or None) starting at slice ``first``. A
    volume whose header names no orientation is sliced as stored, with a note saying so."""
    notes = _orientation_notes(item)
    z = first
    for data, mask in blocks:
        for j in range(data.shape[2]):
            img = _as_image(_contiguous(data[:, :, j]), item.image)
            m = None if mask is None else as_labels(_contiguous(mask[:, :, j]), item.masks[0], img.shape[:2])
            yield Frame(f"{item.key}/z{z:03d}", img, m, 2, z, spacing=spacing, notes=notes)
            z += 1


READ_AHEAD_VOXELS = 1 << 21
"""Voxels of one block of slices read ahead (8 slices of 512^2): small enough that the first
frame starts at once and that two blocks in memory cost little, large enough that handing blocks
between threads costs nothing beside the frames' work."""


def _streamed_volume(item: InputItem, part: range | None, plain: dict[str, str]) -> Iterator[Frame] | None:
    """The frames of a NIfTI volume (and its label volume) on a local disk, read a block of slices
    ahead on a thread while the frames of the block before are worked on (gzip decompression runs
    outside the GIL); None where either file cannot be read so (:func:`volume_slice_blocks`).
    ``plain``: local ``.gz`` path -> its shared decompression (:mod:`apfcompile.inputs.inflate`)."""
    shape = volume_header(item.image)[0]
    if len(shape) != 3:
        return None
    z0, z1 = (0, shape[2]) if part is None else (max(0, part.start), min(part.stop, shape[2]))
    block = max(1, READ_AHEAD_VOXELS // max(1, shape[0] * shape[1]))
    images = volume_slice_blocks(item.image, z0, z1, block, plain.get(str(item.image.local)))
    if images is None:
        return None
    masks = None
    if item.masks:
        labels = volume_header(item.masks[0])[0]
        if len(labels) != 3:
            return None
        if labels != shape:
            have = (*labels[:2], max(0, min(z1, labels[2]) - z0))
            raise InputError(
                item.masks[0], f"label volume {have} differs from its image volume {(*shape[:2], z1 - z0)}"
            )
        masks = volume_slice_blocks(item.masks[0], z0, z1, block, plain.get(str(item.masks[0].local)))
        if masks is None:
            return None
    pairs = zip(images, masks) if masks is not None else ((b, None) for b in images)
    return _volume_frames(item, _read_ahead(pairs), z0, _spacing(item.image))


def _read_ahead(items: Iterator):
    """``items``, each next one made on a thread while the caller works on the one before."""
    from concurrent.futures import ThreadPoolExecutor

    done = object()
    with ThreadPoolExecutor(1, thread_name_prefix="apf-read-ahead") as pool:
        pending = pool.submit(next, items, done)
        while (item := pending.result()) is not done:
            pending = pool.submit(next, items, done)
            yield item


_TRANSPOSABLE = {np.dtype(t) for t in ("uint8", "int8", "uint16", "int16", "int32", "float32", "float64")}


def _contiguous(a: np.ndarray) -> np.ndarray:
    """``np.ascontiguousarray(a)``, by OpenCV's transpose where ``a`` is the transpose of a
    contiguous 2-D array (a slice of a NIfTI volume, stored Fortran-ordered): the same values,
    3-5x faster than NumPy's strided copy (0.14 vs 0.50 ms for 512^2 int16)."""
    if a.ndim == 2 and a.T.flags.c_contiguous and not a.flags.c_contiguous and a.dtype in _TRANSPOSABLE and a.size:
        import cv2

        return cv2.transpose(a.T)
    return np.ascontiguousarray(a)


def _orientation_notes(item: InputItem) -> tuple[tuple[str, str], ...]:
    """The note for a volume whose header names no orientation (it is used as stored)."""
    if volume_oriented(item.image):
        return ()
    return (
        (
            "orientation_unknown",
            f"{item.image}: its affine names no orientation (a zero or degenerate matrix), so it is "
            "sliced along its stored third axis as stored, not in RAS; fix the header's qform/sform "
            "to get the same slices as other volumes",
        ),
    )


def _first_note(item: InputItem, shape: tuple, mask_hw, order: ChannelOrder) -> tuple[tuple[str, str], ...]:
    """The note for a channels-first decision taken by shape alone (none otherwise)."""
    if not first_by_shape(tuple(shape), None if mask_hw is None else tuple(mask_hw), order):
        return ()
    message = (
        f"{item.image}: took {' x '.join(map(str, shape))} arrays as channels first (C x H x W), by their shape; "
        "pass --channels-first or --channels-last to say so"
    )
    return (("channels_first_by_shape", message),)


def _reopen(source):
    """The same file again from its start (a stream is rewound)."""
    if hasattr(source, "seek"):
        source.seek(0)
    return source


def _as_image(a: np.ndarray, path: Place) -> np.ndarray:
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


def as_labels(m: np.ndarray, path: Place, shape: tuple[int, int]) -> np.ndarray:
    """Validate a label mask: integer values, 2-D, of the image's height and width."""
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[:, :, 0]
    if m.ndim != 2:
        raise InputError(path, f"a mask must be H x W labels, found shape {m.shape}")
    if m.shape != tuple(shape):
        raise InputError(
            path,
            f"mask size {m.shape[0]} x {m.shape[1]} differs from its image's {shape[0]} x {shape[1]}",
            "masks must match their images pixel for pixel",
        )
    if m.dtype == np.bool_:
        return m.astype(np.uint8)
    if m.dtype.kind == "f":
        if not np.all(np.isfinite(m)) or not np.array_equal(m, np.round(m)):
            raise InputError(path, "the mask has non-integer values", "masks hold integer class ids")
        return m.astype(np.int32 if m.min() < 0 or m.max() > 65535 else np.uint16)
    if m.dtype.kind not in "iu":
        raise InputError(path, f"mask dtype {m.dtype} is not integer", "masks hold integer class ids")
    return m


def _mask_at(
    path: Place, resolution: int | None, full: tuple[int, int], shape: tuple[int, int], first_channel: bool = False
) -> np.ndarray:
    """A slide's mask: a TIFF read at its own pyramid level (any other file whole), which must
    match the slide at full resolution or at the level read; brought to ``shape`` (the level
    read) by nearest neighbour. ``first_channel``: keep channel 0 of a multi-channel mask."""
    if suffix_of(path) in SLIDE_SUFFIXES:
        m, _ = read_slide_level(path, resolution)
    else:
        m = read_array(path)
    if m.ndim == 3 and (m.shape[2] == 1 or first_channel):
        m = m[..., 0]
    if m.shape[:2] == shape or full == shape:  # as_labels reports any other mismatch
        return m
    if m.shape[:2] != full:
        raise InputError(
            path, f"mask size {m.shape[:2]} matches neither its slide ({full}) nor the level read ({shape})"
        )
    return resample(np.ascontiguousarray(m), shape, nearest=True)


def _slide(item: InputItem, resolution: int | None) -> tuple[np.ndarray, tuple]:
    image, full = read_slide_level(item.image, resolution)
    return _as_image(image, item.image), full


def _paip(item: InputItem, resolution: int | None, label: PaipLabel) -> list[Frame]:
    image, full = _slide(item, resolution)
    shape = image.shape[:2]
    whole, viable = (_mask_at(p, resolution, full, shape, first_channel=True) != 0 for p in item.masks)
    if whole.shape != shape or viable.shape != shape:
        bad = item.masks[0] if whole.shape != shape else item.masks[1]
        raise InputError(
            bad, f"mask size {(whole if whole.shape != shape else viable).shape} differs from its slide's {shape}"
        )
    if label == "both":
        mask = np.where(viable, 2, np.where(whole, 1, 0)).astype(np.uint8)
    else:
        mask = (whole if label == "whole" else viable).astype(np.uint8)
    return [Frame(item.key, image, mask, original=full)]


def _tiff_image(item: InputItem, resolution: int | None) -> list[Frame]:
    """A TIFF/SVS image input: read at the pyramid level that serves ``resolution`` (level 0 for a
    plain TIFF or no resolution), its mask brought to that level."""
    image, full = _slide(item, resolution)
    shape = image.shape[:2]
    mask = None
    if item.masks:
        mask = as_labels(_mask_at(item.masks[0], resolution, full, shape), item.masks[0], shape)
    return [Frame(item.key, image, mask, original=full)]


def _read(path: Place, frames: range | None) -> np.ndarray:
    """A whole file, or slices ``frames`` of a volume."""
    return read_array(path) if frames is None else read_volume_slices(path, frames.start, frames.stop)


def _stacked(item: InputItem, frames: range | None = None) -> np.ndarray:
    """The input's image, with its extra channel files (nnU-Net ``_0001``...) stacked after its own
    channels on a new last axis; every channel file must have the first one's shape."""
    data = _read(item.image, frames)
    if not item.channels:
        return data
    planes = [data]
    for path in item.channels:
        plane = _read(path, frames)
        if plane.shape != data.shape:
            raise InputError(
                path,
                f"channel file of shape {plane.shape} differs from {item.image.name}'s {data.shape}",
                "every channel of a case must have the same size",
            )
        planes.append(plane)
    return np.stack(planes, axis=-1)


@dataclass(frozen=True)
class Volume:
    """A whole volume as ``--mode volume`` compiles it: image (D, H, W [, C]) with ``image[z]``
    the frame ``--mode slices`` makes of slice z (same orientation), mask (D, H, W) or None."""

    key: str
    image: np.ndarray
    mask: np.ndarray | None
    spacing: tuple[float, float, float] | None
    notes: tuple[tuple[str, str], ...] = ()


def load_volume(item: InputItem) -> Volume:
    """Read a volume input whole (see :class:`Volume`); errors name the file."""
    if item.problem:
        raise InputError(item.image, item.problem)
    if item.kind != "volume":
        raise InputError(item.image, "is not a volume", "compile images without --mode volume")
    data = _stacked(item)
    if data.ndim < 3:
        data = data[:, :, None]
    shape = data.shape
    notes = _orientation_notes(item)
    image = np.ascontiguousarray(np.moveaxis(data, 2, 0))  # the one copy: (Z, X, Y [, C])
    del data
    d, h, w = image.shape[:3]
    flat = _as_image(image.reshape((d * h, w) + image.shape[3:]), item.image)  # dtype rules; a view if none apply
    image = flat.reshape((d, h, w) + flat.shape[2:])
    mask = None
    if item.masks:
        raw = _read(item.masks[0], None)
        if raw.ndim == 4 and raw.shape[3] == 1:
            raw = raw[..., 0]
        if raw.ndim != 3 or raw.shape != shape[:3]:
            raise InputError(item.masks[0], f"label volume {raw.shape} differs from its image volume {shape}")
        mask = np.ascontiguousarray(np.moveaxis(raw, 2, 0))
        del raw
        mask = as_labels(mask.reshape(d * h, w), item.masks[0], (d * h, w)).reshape(d, h, w)
    return Volume(item.key, image, mask, _spacing(item.image), notes)


def load_frames(
    item: InputItem,
    resolution: int | None = None,
    paip_label: PaipLabel = "both",
    frames: range | None = None,
    channel_order: ChannelOrder = "auto",
    plain: dict[str, str] | None = None,
) -> Iterable[Frame]:
    """Read an input's frames (see the module docstring), one at a time for volumes and stacks;
    errors name the file.

    ``frames``: only these frames of a volume or a stack (a contiguous range of slice or sample
    indices; reading only them), for work split by frame; None: every frame. ``channel_order``:
    where 3-D image arrays keep their channels (:mod:`apfcompile.inputs.channels`). ``plain``:
    local ``.nii.gz`` path -> the same bytes being decompressed once for every part of a volume
    (:class:`apfcompile.inputs.inflate.Inflater`), read from instead where given."""
    if item.problem:
        raise InputError(item.image, item.problem)
    if item.kind == "memory":
        return [memory_frame(item, channel_order)]
    if item.kind == "array":
        return _array_frames(item, frames, channel_order)
    if item.kind == "paip":
        return _paip(item, resolution, paip_label)
    if item.kind == "image" and not item.channels and suffix_of(item.image) in SLIDE_SUFFIXES:
        return _tiff_image(item, resolution)
    part = frames if item.kind == "volume" else None
    if item.kind == "volume" and not item.channels:
        streamed = _streamed_volume(item, part, plain or {})
        if streamed is not None:
            return streamed
    data = _stacked(item, part)
    mask = _read(item.masks[0], part) if item.masks else None
    if item.kind == "volume":
        if data.ndim < 3:
            data = data[:, :, None]
        if mask is not None and mask.shape[:3] != data.shape[:3]:
            raise InputError(item.masks[0], f"label volume {mask.shape} differs from its image volume {data.shape}")
        return _volume_frames(item, [(data, mask)], 0 if part is None else part.start, _spacing(item.image))
    notes: tuple[tuple[str, str], ...] = ()
    if data.ndim == 3:  # H x W x C or C x H x W: the rule of apfcompile.inputs.channels
        hw = None if mask is None else tuple(mask.shape[:2])
        notes = _first_note(item, data.shape, hw, channel_order)
        data = channels_last(data, item.image, hw, channel_order)
    img = _as_image(data, item.image)
    m = None if mask is None else as_labels(mask, item.masks[0], img.shape[:2])
    return [Frame(item.key, img, m, notes=notes)]
