"""Compile a dataset: inputs -> samples -> shards -> manifest, in parallel, resumable.

The plan is fixed before any pixel is read: inputs sorted by their path relative to INPUT, each
giving ``frames x views`` samples (a volume's slice count comes from its header), numbered in
that order. Sample ``i`` goes to shard ``i // shard_samples``. Workers compile whole inputs; the
main process receives their samples in plan order and writes each shard as soon as its last input
is done, so the bytes written are the same whatever the worker count. ``--resume`` keeps every
committed shard whose ``shard.json`` carries this compile's fingerprint (a hash of the
parameters and the plan) and compiles only what is missing; the manifest is written last.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from formats import (
    ClassInfo, Failure, Manifest, SampleRecord, ShardInfo, View, read_shard_record, write_manifest, write_shard,
)  # fmt: skip
from formats._storage import locate

from .canvas import Fit, fit_canvas
from .executors import in_order
from .outputs import OutputError, OutputExistsError, prepare_output, remove_stale_shards, write_stats
from .edges import EdgeParams
from .errors import APFError, InputError, ParameterError
from .forest import ForestParams
from .frames import count_frames, load_frames
from .layouts import InputItem, Layout, LayoutInfo, discover
from .pipeline import PatchParams, patchify
from .readers import SLIDE_SUFFIXES, suffix_of

__all__ = ["CompileConfig", "CompileError", "OutputError", "OutputExistsError", "compile_dataset"]

_MASK_DTYPES = ("uint8", "uint16", "int16", "int32")


class CompileError(APFError, RuntimeError):
    """An input failed with ``on_error="fail"``; the shards committed so far are kept."""


@dataclass(frozen=True)
class CompileConfig:
    """Everything ``apfcompile compile`` takes; see ``apfcompile compile --help`` for each option.

    views: (blur, canny_lo, canny_hi) per view; empty = one view from ``blur`` and ``canny``.
    window: fixed intensity window for edges (None: the layout's, e.g. CT's HU window, else a
    percentile stretch). mask_dtype: ``auto`` = uint8 for paip/btcv, uint16 otherwise.
    """

    input: str | Path
    output: str | Path
    layout: Layout = "auto"
    masks: str | Path | None = None
    paip_label: str = "both"
    resolution: int | None = None
    fit: Fit = "square"
    patch_size: int = 8
    length: int = 1024
    policy: str = "greedy"
    split_value: int = 0
    max_depth: int | None = None
    min_size: int | None = None
    tile_size: int | None = None
    blur: int = 3
    canny: tuple[float, float] = (100.0, 200.0)
    views: tuple[tuple[int, float, float], ...] = ()
    window: tuple[float, float] | None = None
    image_resample: str = "area"
    mask_resample: str = "mode"
    ignore_index: int | None = None
    mask_dtype: str = "auto"
    out_of_core: str = "auto"
    band_rows: int = 512
    workers: int = 1
    scheduler: str | None = None
    storage_options: dict | None = None
    input_storage_options: dict | None = None
    shard_samples: int = 256
    resume: bool = False
    overwrite: bool = False
    on_error: str = "fail"
    progress: bool = False

    def __post_init__(self) -> None:
        p = self.patch_size
        if not (isinstance(p, int) and p >= 1 and not p & (p - 1)):
            raise ParameterError("patch_size", "a power of two", p)
        if self.workers < 1:
            raise ParameterError("--workers", "an integer >= 1", self.workers)
        if self.shard_samples < 1:
            raise ParameterError("--shard-samples", "an integer >= 1", self.shard_samples)
        if self.on_error not in ("fail", "skip"):
            raise ParameterError("--on-error", "fail or skip", self.on_error)
        if self.mask_dtype not in ("auto",) + _MASK_DTYPES:
            raise ParameterError("--mask-dtype", f"auto or one of {', '.join(_MASK_DTYPES)}", self.mask_dtype)
        if self.out_of_core not in ("auto", "always", "never"):
            raise ParameterError("--out-of-core", "auto, always or never", self.out_of_core)
        if self.band_rows < 8 or self.band_rows % 8:
            raise ParameterError("--band-rows", "a multiple of 8, at least 8", self.band_rows)
        if self.resume and self.overwrite:
            raise ParameterError("--resume/--overwrite", "at most one of them", "both")
        self.patch_params(self.view_list()[0], None)  # validates every patch parameter now

    @property
    def input_options(self) -> dict | None:
        """fsspec options for INPUT and --masks URLs: their own when given, else OUTPUT's."""
        return self.storage_options if self.input_storage_options is None else self.input_storage_options

    def view_list(self) -> list[tuple[int, float, float]]:
        views = list(self.views) or [(self.blur, self.canny[0], self.canny[1])]
        return [(int(b), float(lo), float(hi)) for b, lo, hi in views]

    def patch_params(self, view: tuple[int, float, float], window: tuple[float, float] | None) -> PatchParams:
        blur, lo, hi = view
        return PatchParams(
            patch_size=self.patch_size,
            edges=EdgeParams(blur=blur, canny=(lo, hi), window=self.window or window),
            forest=ForestParams(policy=self.policy, length=self.length, min_size=self.min_size or self.patch_size,
                                tile_size=self.tile_size, split_value=self.split_value, max_depth=self.max_depth),
            image_method=self.image_resample, mask_method=self.mask_resample, ignore_index=self.ignore_index,
        )  # fmt: skip

    def parameters(self, info: LayoutInfo) -> dict:
        """The parameters that decide the output, as stored in the manifest (no paths, no workers)."""
        skip = {"input", "output", "masks", "workers", "resume", "overwrite", "on_error", "progress", "views",
                "out_of_core", "band_rows", "scheduler", "storage_options", "input_storage_options"}
        d = {k: v for k, v in asdict(self).items() if k not in skip}
        d.update(layout=info.name, canny=list(self.canny), window=list(self.window or info.window or []) or None,
                 min_size=self.min_size or self.patch_size, mask_dtype=self.resolved_mask_dtype(info))  # fmt: skip
        return d

    def resolved_mask_dtype(self, info: LayoutInfo) -> str:
        if self.mask_dtype != "auto":
            return self.mask_dtype
        return "uint8" if info.name in ("paip", "btcv") else "uint16"


@dataclass
class _Task:
    index: int
    item: InputItem
    first: int
    n_views: int
    config: CompileConfig
    window: tuple[float, float] | None
    mask_dtype: str


@dataclass
class _Result:
    index: int
    records: list[SampleRecord] = field(default_factory=list)
    error: str | None = None


def _compile_input(task: _Task) -> _Result:
    """Worker: every frame x view of one input (runs in a pool process)."""
    try:
        return _Result(task.index, _records(task))
    except APFError as exc:
        return _Result(task.index, error=str(exc))
    except (MemoryError, ValueError, OSError) as exc:  # unexpected, but one input must not stop the rest
        return _Result(task.index, error=f"{task.item.image}: {type(exc).__name__}: {exc}")


OUT_OF_CORE_PIXELS = 1 << 28
"""``--out-of-core auto`` compiles slides band by band from 16,384^2 canvas pixels up."""

OUT_OF_CORE_LABELS = 16
"""The most mask labels the out-of-core path takes: its memory and time grow with the labels (a
count per label for every cell of the stored pyramid levels). ``auto`` compiles masks with more
labels in memory; ``always`` refuses them."""


def _banded_records(task: _Task) -> list[SampleRecord] | None:
    """A PAIP slide or a TIFF/SVS image (with a TIFF mask) compiled band by band, or None when the
    in-memory path should be used."""
    from .banded import patchify_banded
    from .frames import mask_labels, paip_sources, slide_canvas, tiff_sources

    cfg, item = task.config, task.item
    slide = item.kind == "image" and suffix_of(item.image) in SLIDE_SUFFIXES and all(
        suffix_of(m) in SLIDE_SUFFIXES for m in item.masks)  # fmt: skip
    if item.kind != "paip" and not slide or cfg.out_of_core == "never":
        return None
    if cfg.out_of_core == "auto":
        if (cfg.image_resample, cfg.mask_resample) != ("area", "mode"):
            return None
        try:  # the header alone decides; small slides are not opened twice
            h, w = slide_canvas(item, cfg.resolution, cfg.fit, cfg.input_options)
        except InputError:
            return None
        if h * w < OUT_OF_CORE_PIXELS:
            return None
    try:
        if item.kind == "paip":
            image, mask, full, opened = paip_sources(item, cfg.resolution, cfg.paip_label, cfg.fit,
                                                     cfg.input_options)  # fmt: skip
        else:
            image, mask, full, opened = tiff_sources(item, cfg.resolution, cfg.fit, cfg.input_options)
    except InputError:
        if cfg.out_of_core == "always":
            raise
        return None
    h, w = image.shape[:2]
    size = image.size
    out = []
    try:
        if mask is None:
            labels = None
        elif item.kind == "paip":
            labels = [0, 1, 2] if cfg.paip_label == "both" else [0, 1]
        else:
            labels = mask_labels(mask, cfg.band_rows)
            if len(labels) > OUT_OF_CORE_LABELS:
                if cfg.out_of_core == "auto":
                    return None
                raise InputError(item.masks[0], f"the mask holds {len(labels)} labels, the out-of-core path takes "
                                 f"at most {OUT_OF_CORE_LABELS}", "compile it with --out-of-core never")  # fmt: skip
            _check_mask_range(np.asarray(labels), task, item.masks[0])
        for v, view in enumerate(cfg.view_list()):
            sample, _ = patchify_banded(image, mask, cfg.patch_params(view, task.window), labels, cfg.band_rows)
            out.append(SampleRecord(
                sample=task.first + v, key=item.key, source=item.source,
                mask_source=item.mask_source if mask is not None else None, view=v,
                canvas=(h, w), original=full, scale=(full[0] / size[0], full[1] / size[1]), offset=(0.0, 0.0),
                slice_axis=None, slice_index=None, gamma=sample.gamma, ceiling=sample.ceiling, blur=view[0],
                canny=(view[1], view[2]), nodes=dict(sample.leaves.columns()), image=sample.patches,
                mask=None if mask is None else sample.mask.astype(task.mask_dtype),
            ))  # fmt: skip
    finally:
        for source in opened:
            source.close()
    return out


def _check_mask_range(values: np.ndarray, task: _Task, path) -> None:
    """Labels must fit the dataset's mask dtype."""
    info = np.iinfo(task.mask_dtype)
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise InputError(path, f"labels {values.min()}..{values.max()} do not fit the dataset's mask dtype "
                               f"{task.mask_dtype}", "use --mask-dtype int32")  # fmt: skip


def _records(task: _Task) -> list[SampleRecord]:
    banded = _banded_records(task)
    if banded is not None:
        return banded
    cfg, item = task.config, task.item
    views = cfg.view_list()
    out = []
    for f, frame in enumerate(load_frames(item, cfg.resolution, cfg.paip_label, cfg.input_options)):
        if frame.mask is not None and frame.mask.size:
            _check_mask_range(np.array([frame.mask.min(), frame.mask.max()]), task,
                              item.masks[0] if item.masks else item.image)  # fmt: skip
        canvas = fit_canvas(frame.image, frame.mask, cfg.resolution, cfg.fit)
        # A slide read from a lower pyramid level maps to its full-resolution pixels.
        original = frame.original or canvas.original
        scale = tuple(c * o / r for c, o, r in zip(canvas.scale, original, canvas.original))
        for v, view in enumerate(views):
            params = cfg.patch_params(view, task.window)
            try:
                sample = patchify(canvas.image, canvas.mask, params)
            except InputError as exc:
                raise InputError(item.image, exc.problem, "") from exc
            labelled = sample.mask is not None
            out.append(SampleRecord(
                sample=task.first + f * task.n_views + v, key=frame.key, source=item.source,
                mask_source=item.mask_source if labelled else None, view=v,
                canvas=canvas.image.shape[:2], original=original, scale=scale, offset=canvas.offset,
                slice_axis=frame.slice_axis, slice_index=frame.slice_index, gamma=sample.gamma,
                ceiling=sample.ceiling, blur=view[0], canny=(view[1], view[2]),
                nodes={k: v for k, v in sample.leaves.columns().items()}, image=sample.patches,
                mask=None if not labelled else sample.mask.astype(task.mask_dtype),
            ))  # fmt: skip
    return out


def _fingerprint(parameters: dict, plan: list[tuple[InputItem, int]]) -> str:
    doc = {"parameters": parameters, "plan": [[it.source, it.mask_source, n] for it, n in plan]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def compile_dataset(cfg: CompileConfig) -> Manifest:
    """Compile ``cfg.input`` into the dataset ``cfg.output``; returns the manifest written."""
    started = time.perf_counter()
    items, info = discover(cfg.input, cfg.layout, cfg.masks, cfg.paip_label, cfg.input_options)
    loc = locate(cfg.output, cfg.storage_options)
    prepare_output(loc, cfg.resume, cfg.overwrite)
    views = cfg.view_list()
    parameters = cfg.parameters(info)
    mask_dtype = cfg.resolved_mask_dtype(info)
    labelled = any(it.masks for it in items)

    # The plan: samples per input, from headers only. An input whose header is unreadable plans
    # zero samples (and fails now, or is recorded).
    plan, early = [], []
    for it in items:
        try:
            plan.append((it, count_frames(it, cfg.input_options) * len(views)))
        except APFError as exc:
            if cfg.on_error == "fail":
                raise
            plan.append((it, 0))
            early.append(Failure(it.source, str(exc)))
    firsts = np.cumsum([0] + [n for _, n in plan]).tolist()
    total = firsts[-1]
    per = cfg.shard_samples
    n_shards = -(-total // per)
    fingerprint = _fingerprint(parameters, plan)

    # Which inputs feed each shard, and which shards are already done (resume).
    last_input = {}
    for i, (_, n) in enumerate(plan):
        for k in range(firsts[i] // per, -(-(firsts[i] + n) // per)):
            last_input[k] = i
    done: dict[int, dict] = {}
    if cfg.resume:
        for k in range(n_shards):
            rec = read_shard_record(cfg.output, k, cfg.storage_options)
            if rec is not None and rec.get("fingerprint") == fingerprint:
                done[k] = rec
    todo = [i for i, (_, n) in enumerate(plan) if n and any(
        k not in done for k in range(firsts[i] // per, -(-(firsts[i] + n) // per)))]  # fmt: skip
    tasks = [_Task(i, plan[i][0], firsts[i], len(views), cfg, info.window, mask_dtype) for i in todo]

    dtype_info = next((r["dataset"] for r in done.values() if r.get("dataset")), None)
    buffers: dict[int, list[SampleRecord]] = {}
    failures: dict[int, list[Failure]] = {}
    written: dict[int, ShardInfo] = {k: ShardInfo.from_dict(r["shard"], "shard.json") for k, r in done.items()}
    shard_failures = {k: [Failure(**f) for f in r.get("failures", [])] for k, r in done.items()}

    progress = _progress(total - sum(ShardInfo.from_dict(r["shard"], "-").samples for r in done.values()), cfg.progress)
    try:
        for result in in_order(_compile_input, tasks, cfg.workers, cfg.scheduler):
            item = plan[result.index][0]
            first_shard = firsts[result.index] // per
            if result.error is not None:
                if cfg.on_error == "fail":
                    raise CompileError(f"{result.error} (shards finished so far are kept: fix or remove the input, "
                                       "then re-run with --resume; or use --on-error skip)")  # fmt: skip
                failures.setdefault(first_shard, []).append(Failure(item.source, result.error))
            for rec in result.records:
                if dtype_info is None:
                    dtype_info = {"image_dtype": str(rec.image.dtype), "channels": int(rec.image.shape[3])}
                found = {"image_dtype": str(rec.image.dtype), "channels": int(rec.image.shape[3])}
                if found != dtype_info:
                    problem = (f"{item.image}: image is {found['channels']} x {found['image_dtype']}, the dataset's "
                               f"first image {dtype_info['channels']} x {dtype_info['image_dtype']}; compile them "
                               "separately")  # fmt: skip
                    if cfg.on_error == "fail":
                        raise CompileError(problem)
                    failures.setdefault(first_shard, []).append(Failure(item.source, problem))
                    break
                k = rec.sample // per
                if k not in done:
                    buffers.setdefault(k, []).append(rec)
            progress.update(plan[result.index][1])
            for k in sorted(k for k, last in last_input.items() if last == result.index and k not in done):
                recs = buffers.pop(k, [])
                written[k] = write_shard(
                    cfg.output, k, recs, patch_size=cfg.patch_size,
                    channels=(dtype_info or {}).get("channels", 1),
                    image_dtype=(dtype_info or {}).get("image_dtype", "uint8"),
                    mask_dtype=mask_dtype if labelled else None, fingerprint=fingerprint,
                    failures=failures.get(k, []), dataset_info=dtype_info,
                    mask_fill=0 if cfg.ignore_index is None else cfg.ignore_index,
                    storage_options=cfg.storage_options,
                )  # fmt: skip
                shard_failures[k] = failures.pop(k, [])
    finally:
        progress.close()
    remove_stale_shards(loc, set(written))

    dtype_info = dtype_info or {"image_dtype": "uint8", "channels": 1}
    classes = None if info.classes is None else tuple(ClassInfo(i, n) for i, n in enumerate(info.classes))
    manifest = Manifest(
        patch_size=cfg.patch_size, channels=dtype_info["channels"], image_dtype=dtype_info["image_dtype"],
        mask_dtype=mask_dtype if labelled else None, classes=classes, ignore_index=cfg.ignore_index,
        views=tuple(View(b, lo, hi) for b, lo, hi in views), parameters=parameters,
        shards=tuple(written[k] for k in sorted(written)),
        failures=tuple(early + [f for k in sorted(shard_failures) for f in shard_failures[k]]),
    )  # fmt: skip
    write_manifest(cfg.output, manifest, cfg.storage_options)
    write_stats(loc, time.perf_counter() - started, cfg.workers)
    return manifest


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", desc="compiling", disable=not enabled, dynamic_ncols=True)
