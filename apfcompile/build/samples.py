"""One input -> its compiled samples: what a worker does with one task.

An input is compiled on one of two routes, chosen once per input by :func:`choose_route` from its
header alone:

- ``in_memory``: the frames are read whole (:mod:`apfcompile.inputs.frames`), brought to the
  canvas (:mod:`apfcompile.inputs.canvas`) and patchified (:func:`~apfcompile.core.patchify`);
- ``out_of_core``: a slide (PAIP, or a TIFF/SVS image with TIFF masks) is read band by band from
  its region sources (:mod:`apfcompile.inputs.sources`) by
  :func:`~apfcompile.core.out_of_core.patchify_banded`. With ``out_of_core="auto"`` a mask of more
  than :data:`OUT_OF_CORE_LABELS` labels (found in one streaming pass) sends the input back to the
  in-memory route; ``always`` refuses it.

Both routes end in :func:`sample_record`, the one place a :class:`~formats.SampleRecord` of an
image or slice is built, with one canvas-to-original transform (:func:`canvas_transform`). With
``--mode volume`` a volume input takes a third route, :func:`_whole_volume`: read whole, one
octree sample per view, its canvas the volume's (D, H, W).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from formats import SampleRecord

from ..core.out_of_core import patchify_banded
from ..core.patchify import PatchedSample, patchify
from ..core.patchify_volume import patchify_volume
from ..core.resample_volume import isotropic_shape, resample_image, resample_mask
from ..errors import APFError, InputError
from ..inputs.canvas import fit_canvas, pad_fill
from ..inputs.frames import load_frames, load_volume
from ..inputs.labels import apply_label_map
from ..inputs.layouts import CT_WINDOW, InputItem
from ..inputs.locations import Place
from ..inputs.modality import background, decide
from ..inputs.readers.limits import pixel_limit
from ..inputs.sources import SlideHeader, is_slide_input, mask_labels, open_slide_sources, read_slide_header
from .config import DataConfig, RunConfig, View
from .statistics import add, frame_stats

if TYPE_CHECKING:
    from .transfer import Shared

__all__ = ["OUT_OF_CORE_LABELS", "OUT_OF_CORE_PIXELS", "Result", "Route", "Task", "choose_route", "compile_input"]

Route = Literal["in_memory", "out_of_core"]

OUT_OF_CORE_PIXELS = 1 << 28
"""``--out-of-core auto`` compiles slides band by band from 16,384^2 canvas pixels up."""

OUT_OF_CORE_LABELS = 16
"""The most mask labels the out-of-core path takes: its memory and time grow with the labels (a
count per label for every cell of the stored pyramid levels). ``auto`` compiles masks with more
labels in memory; ``always`` refuses them."""


@dataclass
class Task:
    """One input (or some frames of one) to compile: its plan index, the input's first sample id,
    options and the layout's window."""

    index: int
    item: InputItem
    first: int
    data: DataConfig
    run: RunConfig
    window: tuple[float, float] | None
    mask_dtype: str
    frames: range | None = None
    """Only these frames of a volume (work split by frame); None: the whole input."""
    reserved_label: int | None = None
    """The default ignore label that fills unlabelled samples' masks: a real mask holding it is
    refused (it would read as "unlabelled")."""
    splits: list[tuple[str, str | None]] | None = None
    """(group, split) of each of the input's frames (:mod:`.splits`); None: no splits."""
    stage: tuple | None = None
    """``(dataset folder, shards, writer options, shard -> folder name)``: shards whose samples all
    come from this task,
    which the worker stages itself (:func:`formats.writer.stage_shard`); the main process commits
    them once the whole input is done, or discards them if it failed."""
    plain: dict[str, str] | None = None
    """Local ``.nii.gz`` path -> its bytes, decompressed once by the main process for every part
    of the volume (:class:`~apfcompile.inputs.inflate.Inflater`); None: each part reads the ``.gz``."""
    transfer: str | None = None
    """The compile's shared-memory folder, where a pool worker leaves its result's arrays
    (:mod:`.transfer`); None: they travel with the result."""

    def split_of(self, frame: int) -> dict:
        """The record fields ``split`` and ``split_group`` of one frame."""
        if self.splits is None:
            return {}
        group, split = self.splits[frame]
        return {"split": split, "split_group": group}


@dataclass
class Result:
    """A task's samples in id order, or the one-line error that stopped it."""

    index: int
    records: list[SampleRecord] = field(default_factory=list)
    error: str | None = None
    notes: list[tuple[str, str]] = field(default_factory=list)
    """Decisions taken without being told (one line each; the compile warns and records them)."""
    frames: list[tuple[int, dict]] = field(default_factory=list)
    """(frame, :func:`~.statistics.frame_stats`) of each frame compiled, in frame order."""
    grey: list[int] = field(default_factory=list)
    """Samples whose RGB image had R = G = B everywhere and is stored as one channel."""
    staged: list[tuple] = field(default_factory=list)
    """``(shard, ShardInfo, image dtype, channels, samples)`` of each shard the worker staged."""
    shared: Shared | None = None
    """Where the records' arrays are while the result travels from a pool worker
    (:mod:`.transfer`); None once they are back in the records, or when they never left."""

    @property
    def labels(self) -> dict[int, int]:
        """Pixels per mask label over the frames compiled."""
        out: dict[int, int] = {}
        for _, st in self.frames:
            for k, n in st["labels"].items():
                out[int(k)] = out.get(int(k), 0) + n
        return out


def compile_input(task: Task) -> Result:
    """Worker: every frame x view of one input (runs in a pool process or on a Dask worker)."""
    with pixel_limit(task.run.pixel_limit):
        return _compile_input(task)


def _compile_input(task: Task) -> Result:
    try:
        result = Result(task.index)
        if task.data.mode == "volume":
            result.records = _whole_volume(task, result)
            if task.stage is not None:
                _stage(task, result)
            return result
        route, header = ("in_memory", None) if task.frames is not None else choose_route(task.item, task.data, task.run)
        records = _out_of_core(task, header, result) if route == "out_of_core" else None
        if records is None:
            result.frames.clear()
            records = _in_memory(task, result)
        result.records = records
        if task.stage is not None:
            _stage(task, result)
        return result
    except APFError as exc:
        return Result(task.index, error=str(exc))
    except (MemoryError, ValueError, OSError) as exc:  # unexpected, but one input must not stop the rest
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # the output's disk is full: the whole compile stops (not this input's fault)
        return Result(task.index, error=f"{task.item.image}: {type(exc).__name__}: {exc}")


def _stage(task: Task, result: Result) -> None:
    """Write the task's whole shards into their staged folders; their records stay here."""
    from formats.writer import stage_shard

    folder, shards, options, names = task.stage
    per = task.data.shard_samples
    for k in shards:
        records = [r for r in result.records if r.sample // per == k]
        if not records:
            continue
        dtype, channels = str(records[0].image.dtype), int(records[0].image.shape[-1])
        info = stage_shard(Path(folder), k, records, image_dtype=dtype, channels=channels, name=names[k], **options)
        result.staged.append((k, info, dtype, channels, len(records)))
    staged = {k for k, *_ in result.staged}
    result.records = [r for r in result.records if r.sample // per not in staged]


def choose_route(item: InputItem, data: DataConfig, run: RunConfig) -> tuple[Route, SlideHeader | None]:
    """The route of one input and, for ``out_of_core``, its slide header (read here, once).

    ``never``, inputs that are not slides and (with ``auto``) nearest resampling go in memory;
    ``always`` takes every slide, raising :class:`InputError` for one it cannot take; ``auto`` takes
    slides whose canvas has at least :data:`OUT_OF_CORE_PIXELS` pixels and whose header reads."""
    mode = run.out_of_core
    if mode == "never" or not is_slide_input(item):
        return "in_memory", None
    if mode == "auto" and (data.image_resample, data.mask_resample) != ("area", "mode"):
        return "in_memory", None
    try:
        header = read_slide_header(item, data.resolution, data.fit)
    except InputError:
        if mode == "always":
            raise
        return "in_memory", None  # the in-memory route reports what is wrong with the file
    if mode == "auto" and header.pixels < OUT_OF_CORE_PIXELS:
        return "in_memory", None
    return "out_of_core", header


def canvas_transform(
    read: tuple[int, int], resampled: tuple[int, int], original: tuple[int, int] | None = None
) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(scale, offset)`` with ``orig = canvas * scale + offset`` per axis (pixel corners).

    read: (H, W) of the pixels read (a slide's pyramid level, or the image); resampled: their size
    on the canvas (before padding); original: level 0's (H, W) (default: ``read``)."""
    original = read if original is None else original
    scale = tuple((r / s) * o / r for r, s, o in zip(read, resampled, original))
    return (float(scale[0]), float(scale[1])), (0.0, 0.0)


def sample_record(
    task: Task,
    sample: int,
    key: str,
    v: int,
    view: View,
    patched: PatchedSample,
    canvas: tuple[int, int],
    original: tuple[int, int],
    transform: tuple[tuple[float, float], tuple[float, float]],
    slice_axis: int | None = None,
    slice_index: int | None = None,
    spacing: tuple[float, float, float] | None = None,
    mask_source: str | None = None,
) -> SampleRecord:
    """The record the writer stores for one sample (view ``v`` of a frame); ``mask_source``: where
    the mask came from when it is not the input's own mask file (an array inside an ``.npz``)."""
    labelled = patched.mask is not None
    scale, offset = transform
    return SampleRecord(
        sample=sample,
        key=key,
        source=task.item.source,
        mask_source=(mask_source or task.item.mask_source) if labelled else None,
        view=v,
        canvas=tuple(int(c) for c in canvas),
        original=tuple(int(o) for o in original),
        scale=scale,
        offset=offset,
        slice_axis=slice_axis,
        slice_index=slice_index,
        gamma=patched.gamma,
        ceiling=patched.ceiling,
        blur=view[0],
        canny=(view[1], view[2]),
        nodes=patched.leaves,
        image=patched.patches,
        mask=patched.mask.astype(task.mask_dtype) if labelled else None,
        spacing=spacing,
    )


def _check_mask_range(values: np.ndarray, task: Task, path: Place, mask: np.ndarray | None = None) -> None:
    """Labels must fit the dataset's mask dtype, and (``mask`` given) not hold the reserved label."""
    info = np.iinfo(task.mask_dtype)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise InputError(
            path,
            f"labels {values.min()}..{values.max()} do not fit the dataset's mask dtype {task.mask_dtype}",
            "use --mask-dtype int32",
        )
    r = task.reserved_label
    if r is not None and values.size and values.min() <= r <= values.max() and (mask is None or (mask == r).any()):
        raise InputError(
            path,
            f"holds label {r}, the ignore label that marks the dataset's unlabelled samples",
            "give --ignore-index with a label no mask uses, or remap it with --label-map",
        )


def _out_of_core(task: Task, header: SlideHeader, result: Result) -> list[SampleRecord] | None:
    """The slide band by band; None when ``auto`` finds more mask labels than the path takes."""
    data, item, strict = task.data, task.item, task.run.out_of_core == "always"
    with open_slide_sources(header, data.paip_label, dict(data.label_map)) as slide:
        labels = None
        if data.fit == "pad":
            slide.image.pad_value = slide_pad_value(slide.image, data.pad_value)
        if slide.mask is not None:
            labels, counts = mask_labels(slide.mask, task.run.band_rows, header.size)
            if len(labels) > OUT_OF_CORE_LABELS:
                if not strict:
                    return None
                raise InputError(
                    item.masks[0],
                    f"the mask holds {len(labels)} labels, the out-of-core path takes at most {OUT_OF_CORE_LABELS}",
                    "compile it with --out-of-core never",
                )
            _check_mask_range(np.asarray(labels), task, item.masks[0], np.asarray(labels))
        transform = canvas_transform(header.level_hw, header.size, header.full)
        out = []
        for v, view in enumerate(data.view_list()):
            params = data.patch_params(view, task.window)
            patched, _ = patchify_banded(slide.image, slide.mask, params, labels, task.run.band_rows)
            rec = sample_record(task, task.first + v, item.key, v, view, patched, header.canvas, header.full, transform)
            out.append(replace(rec, modality="rgb" if slide.image.dtype == np.uint8 else None, **task.split_of(0)))
        stats = _banded_stats(slide.image, header.size, task.run.band_rows, len(out))
        if labels is not None:
            stats["labels"] = {str(k): int(n) for k, n in zip(labels.tolist(), counts.tolist()) if n}
            stats["cells"] = frame_stats(np.zeros((1, 1), np.uint8), None, None, [r.mask for r in out], 0)["cells"]
        result.frames.append((0, stats))
    return out


def _banded_stats(image, size: tuple[int, int], band_rows: int, samples: int) -> dict:
    """A slide's image statistics over its canvas pixels (padding excluded), band by band."""
    h, w = size
    acc = None
    for y in range(0, h, band_rows):
        rows = image.rows(y, min(h, y + band_rows))[:, :w]
        acc = add(acc, frame_stats(rows, None, None, [], 0))
    acc["samples"] = samples
    return acc


def _in_memory(task: Task, result: Result) -> list[SampleRecord]:
    """Every frame x view of the task in memory; ``result`` collects each frame's decisions (once
    each), label counts and grey-as-RGB samples."""
    data, item = task.data, task.item
    views = data.view_list()
    out = []
    offset = 0 if task.frames is None else task.frames.start
    ct_by_rule = 0
    frames = load_frames(item, data.resolution, data.paip_label, task.frames, data.channel_order, task.plain)
    for j, frame in enumerate(frames):
        f = offset + j
        for note in frame.notes:
            if note not in result.notes:
                result.notes.append(note)
        image, mask = frame.image, apply_label_map(frame.mask, dict(data.label_map)) if frame.mask is not None else None
        where = item.masks[0] if item.masks else item.image
        if mask is not None and mask.size:
            _check_mask_range(np.array([mask.min(), mask.max()]), task, where, mask)
        grey = not data.keep_channels and is_grey_rgb(image)
        if grey:
            image = np.ascontiguousarray(image[..., 0])
        intensity = decide(image, data.modality, data.window, task.window, data.pad_value, CT_WINDOW)
        ct_by_rule += intensity.by_rule
        canvas = fit_canvas(image, mask, data.resolution, data.fit, intensity.pad_value)
        read = image.shape[:2]
        cells = []
        transform = canvas_transform(read, canvas.size, frame.original)
        for v, view in enumerate(views):
            try:
                patched = patchify(canvas.image, canvas.mask, data.patch_params(view, intensity.window))
            except InputError as exc:
                raise InputError(item.image, exc.problem, "") from exc
            sample = task.first + f * len(views) + v
            if patched.mask is not None:
                cells.append(patched.mask)
            if grey:
                result.grey.append(sample)
            rec = sample_record(
                task,
                sample,
                frame.key,
                v,
                view,
                patched,
                canvas.image.shape[:2],
                frame.original or read,
                transform,
                frame.slice_axis,
                frame.slice_index,
                frame.spacing,
                frame.mask_source,
            )
            out.append(replace(rec, modality=intensity.modality, **task.split_of(f)))
        window = intensity.window if image.dtype != np.uint8 else None
        result.frames.append((f, frame_stats(image, mask, window, cells, len(views))))
    # Taken as CT by the rule: worth a word where it decided something the options did not.
    if ct_by_rule and (data.window is None or (data.fit == "pad" and data.pad_value is None)):
        result.notes.append(_ct_note(item, data.window or task.window or CT_WINDOW, ", padding -1024"))
    if result.grey:
        result.notes.append(
            (
                "grey_from_rgb",
                f"{item.image}: an RGB image with R = G = B everywhere is stored as one channel; "
                "--keep-channels keeps three",
            )
        )
    return out


def _whole_volume(task: Task, result: Result) -> list[SampleRecord]:
    """``--mode volume``: the input as one sample per view, an octree over (D, H, W) with p^3
    patches (:func:`~apfcompile.core.patchify_volume.patchify_volume`), at its stored voxels or,
    with ``--spacing``, resampled to isotropic ones (the canvas; ``original`` keeps the stored
    shape). ``--resolution`` and ``--fit`` apply to 2-D canvases only."""
    data, item = task.data, task.item
    vol = load_volume(item)
    for note in vol.notes:
        result.notes.append(note)
    mask = apply_label_map(vol.mask, dict(data.label_map)) if vol.mask is not None else None
    where = item.masks[0] if item.masks else item.image
    if mask is not None and mask.size:
        _check_mask_range(np.array([mask.min(), mask.max()]), task, where, mask)
        mask = mask.astype(task.mask_dtype, copy=False)  # the labels fit (checked): uint8 needs no lookup
    image = vol.image
    original = tuple(int(n) for n in image.shape[:3])
    if data.spacing is not None:
        if vol.spacing is None:
            raise InputError(item.image, "its header gives no voxel size", "compile it without --spacing")
        sx, sy, sz = vol.spacing  # RAS+ axes of the stored array, which is (Z, X, Y) here
        mm = min(sx, sy, sz) if data.spacing == "finest" else float(data.spacing)
        target = isotropic_shape(original, (sz, sx, sy), mm)
        image = resample_image(image, target)
        mask = None if mask is None else resample_mask(mask, target)
    flat = image.reshape((-1,) + image.shape[2:])  # (D * H, W [, C]): the modality rule's view
    intensity = decide(flat, data.modality, data.window, task.window, data.pad_value, CT_WINDOW)
    if intensity.by_rule and data.window is None:
        result.notes.append(_ct_note(item, task.window or CT_WINDOW, ""))
    shape = tuple(int(n) for n in image.shape[:3])
    out = []
    cells = []
    for v, view in enumerate(data.view_list()):
        params = data.patch_params(view, intensity.window)
        try:
            patched = patchify_volume(image, mask, params, edges=data.volume_edges)
        except InputError as exc:
            raise InputError(item.image, exc.problem, "") from exc
        if patched.mask is not None:
            cells.append(patched.mask)
        scale = (original[1] / shape[1], original[2] / shape[2])
        rec = sample_record(task, task.first + v, vol.key, v, view, patched, shape, original, (scale, (0.0, 0.0)))
        out.append(replace(rec, spacing=vol.spacing, modality=intensity.modality, **task.split_of(0)))
    window = intensity.window if image.dtype != np.uint8 else None
    stats = None  # slice by slice: the histograms stay slice-sized, the sums are the same
    for z in range(shape[0]):
        stats = add(stats, frame_stats(image[z], None if mask is None else mask[z], window, [], 0))
    stats["cells"] = frame_stats(np.zeros((1, 1), np.uint8), None, None, cells, 0)["cells"]
    stats["samples"] = len(out)
    result.frames.append((0, stats))
    return out


def _ct_note(item: InputItem, window: tuple[float, float], padding: str) -> tuple[str, str]:
    """The warning for an input the modality rule took for CT."""
    return (
        "ct_by_rule",
        f"{item.image}: taken as CT by --modality auto (a signed image with at least 1% of its "
        f"pixels below -500): HU window {window[0]:g}..{window[1]:g} for edges{padding}; "
        "say --modality to decide",
    )


def is_grey_rgb(image: np.ndarray) -> bool:
    """True for an H x W x 3 image whose three channels are equal everywhere."""
    if image.ndim != 3 or image.shape[2] != 3:
        return False
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


def slide_pad_value(image, pad_value: float | None):
    """What a slide read band by band pads with: ``pad_value``, else its background (the median of
    the resampled image's top and bottom rows, as :func:`~apfcompile.inputs.modality.background`)."""
    if pad_value is not None:
        return pad_fill(pad_value, image.dtype)
    h, w = image.size
    rows = np.concatenate([image.rows(0, 1)[:, :w], image.rows(h - 1, h)[:, :w]], axis=0)
    return background(rows)
