"""Compile a dataset: inputs -> samples -> shards -> manifest, in parallel, resumable.

The plan (:mod:`.plan`) is fixed before any pixel is read. Workers compile whole inputs
(:mod:`.samples`); the main process receives their samples in plan order (:func:`.executors.in_order`)
and writes each shard as soon as its last input is done, so the bytes written are the same whatever
the worker count. ``resume`` keeps every committed shard whose ``shard.json`` carries this
compile's fingerprint and compiles only what is missing; the manifest is written last.
"""

from __future__ import annotations

import errno
import importlib
import os
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from formats import Failure, Manifest, SampleRecord, ShardInfo, ShardRecord, View
from formats.spec import shard_folder

from ..errors import APFError, APFWarning, CompileError, OutputFullError
from ..inputs.frames import has_labels, is_stack
from ..inputs.inflate import Inflater
from ..inputs.layouts import InputItem, LayoutInfo, discover
from ..inputs.locations import symlink_policy
from ..inputs.readers.limits import pixel_limit
from .adaptivity import dataset_warnings
from .config import CompileConfig
from .executors import in_order, local_pool
from .labels import Naming
from .lock import lock_output
from .outputs import current_shards, prepare_output, remove_stale_shards, write_stats
from .plan import choose_mask_dtype, make_plan
from .samples import Result, Task, compile_input
from .splits import plan_splits
from .statistics import add, summarise
from .transfer import compile_exported, imported, transfer_folder

__all__ = ["compile_dataset", "compile_items"]


def compile_dataset(cfg: CompileConfig) -> Manifest:
    """Compile ``cfg.input`` into the dataset ``cfg.output``; returns the manifest written."""
    started = time.perf_counter()
    _import_in_background(_WRITER_MODULES)
    data = cfg.data
    with pixel_limit(cfg.run.pixel_limit), symlink_policy(cfg.run.follow_symlinks):
        items, info = discover(
            cfg.input, data.layout, cfg.masks, data.paip_label, data.image_key, data.mask_key, data.allow_unlabelled
        )
        return compile_items(items, info, cfg, started)


def compile_items(
    items: list[InputItem], info: LayoutInfo, cfg: CompileConfig, started: float | None = None
) -> Manifest:
    """Compile ``items`` (in this order; ``info``: what their layout says) into ``cfg.output``:
    what :func:`compile_dataset` does once it has found its inputs, and what
    :func:`apfcompile.write_dataset` does with inputs made in memory."""
    started = time.perf_counter() if started is None else started
    run = cfg.run
    with (
        transfer_folder(run.scheduler is None and run.workers > 1) as transfer,
        local_pool(run.workers, run.scheduler) as pool,  # workers start while this one plans
    ):
        return _compile_pooled(items, info, cfg, started, pool, transfer)


def _compile_pooled(
    items: list[InputItem], info: LayoutInfo, cfg: CompileConfig, started: float, pool, transfer: str | None
) -> Manifest:
    """:func:`compile_items` with its local pool (or None) and the folder its workers leave their
    results' arrays in (:mod:`.transfer`; or None)."""
    loc = cfg.output.location()
    prepare_output(loc, cfg.run.resume, cfg.run.overwrite)  # checks only: nothing is removed
    lock = lock_output(loc)
    try:
        with pixel_limit(cfg.run.pixel_limit):
            return _compile_locked(items, info, cfg, started, loc, pool, transfer)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or isinstance(exc, APFError):
            raise
        raise OutputFullError(
            f"{exc.filename or loc.display()}: {os.strerror(exc.errno).lower()}; free some space (or choose "
            "another OUTPUT), then run the same command with --resume: the shards finished so far are kept"
        ) from None
    finally:
        lock.release()


def _compile_locked(
    items: list[InputItem],
    info: LayoutInfo,
    cfg: CompileConfig,
    started: float,
    loc,
    pool=None,
    transfer: str | None = None,
) -> Manifest:
    """:func:`compile_items` once this process holds OUTPUT's lock."""
    data, run, out = cfg.data, cfg.run, cfg.output
    views = data.view_list()
    labelled = any(has_labels(it) for it in items)
    mask_dtype = choose_mask_dtype(data, info, items) if labelled else data.resolved_mask_dtype(info)
    # Unlabelled samples of a labelled dataset: mask rows of the ignore label, never 0 (background).
    unlabelled = labelled and any(not it.problem and not has_labels(it) for it in items)
    fill = data.unlabelled_fill(mask_dtype) if labelled else 0
    reserved = fill if unlabelled and data.ignore_index is None else None
    ignore = fill if unlabelled else data.ignore_index
    names = Naming(data, info, ignore)
    plan = make_plan(items, info, data, run.on_error, mask_dtype)
    per = data.shard_samples
    frames = [n // len(views) for n in plan.counts]
    split_plan = plan_splits(
        items,
        frames,
        [is_stack(it) for it in items],
        data.split,
        data.split_seed,
        data.split_by,
        None if data.split_from is None else dict(data.split_from),
    )

    # Shards go to folders the dataset now in OUTPUT (if any) does not name, so that it stays
    # whole for its readers until the new manifest lands (formats.writer.shard_folder).
    current = current_shards(loc)
    taken = set(current.values())
    folders = {k: shard_folder(k, taken) for k in range(plan.n_shards)}
    done = {}  # shard -> its ShardRecord, for shards kept by --resume
    if run.resume:
        for k in range(plan.n_shards):
            for name in dict.fromkeys([current.get(k, folders[k]).rsplit("/", 1)[-1], folders[k]]):
                rec = read_shard_record(out, k, name=name)
                if rec is not None and rec.fingerprint == plan.fingerprint and _files_whole(loc, rec):
                    done[k], folders[k] = rec, name
                    break
    last_input = plan.last_input()
    todo = [i for i, n in enumerate(plan.counts) if n and any(k not in done for k in plan.shards_of(i))]
    # Few inputs and many workers: a volume's frames are split over the workers (bytes unchanged),
    # in twice as many parts as workers, so that a slow part does not hold the others back; or, on
    # a local pool writing a local dataset, at the shard boundaries inside the volume, so that each
    # worker writes its whole shards itself while the others compute (committed by this process
    # once the whole input is done).
    parts = -(-2 * run.workers // max(len(todo), 1)) if run.workers > 1 else 1
    can_stage = run.scheduler is None and run.workers > 1 and loc.local is not None
    dims = 3 if data.mode == "volume" else 2
    writer_options = {
        "patch_size": data.patch_size,
        "mask_dtype": mask_dtype if labelled else None,
        "mask_fill": fill,
        "dims": dims,
    }
    cuts_of = {}
    for i in todo:
        cuts = plan.shard_parts(i, len(views)) if can_stage and parts > 1 else None
        if cuts is None or len(cuts) < run.workers:  # too few shards to keep every worker busy
            cuts = plan.frame_parts(i, len(views), parts)
        cuts_of[i] = cuts
    cut = [items[i] for i in todo if len(cuts_of[i]) > 1]
    shared = _shared_decompression(cut, run.workers) if run.scheduler is None and data.mode != "volume" else None
    last_use = {str(p.local): i for i in todo for p in (items[i].image, *items[i].masks[:1]) if p.local is not None}
    tasks = []
    for i in todo:
        cuts = cuts_of[i]
        for part in cuts:
            whole = [] if part is None or not can_stage else plan.whole_shards(i, part, len(views))
            whole = [k for k in whole if k not in done]
            tasks.append(
                Task(
                    i,
                    items[i],
                    plan.firsts[i],
                    data,
                    run,
                    info.window,
                    mask_dtype,
                    part,
                    reserved,
                    None if split_plan is None else split_plan[i],
                    (str(loc.local), whole, writer_options, {k: folders[k] for k in whole}) if whole else None,
                    shared.plain if shared is not None and len(cuts) > 1 else None,
                    transfer,
                )
            )
    n_parts = {i: sum(t.index == i for t in tasks) for i in todo}

    dtype = next(((r.image_dtype, r.channels) for r in done.values() if r.image_dtype), None)
    grey_dataset = False  # the dataset's one channel came from grey images stored as RGB
    buffers: dict[int, list[SampleRecord]] = {}
    failures: dict[int, list[Failure]] = {}
    written: dict[int, ShardInfo] = {k: r.shard for k, r in done.items()}
    shard_failures = {k: list(r.failures) for k, r in done.items()}
    # shard -> input -> split -> partial statistics (of the inputs that end in the shard)
    stats: dict[int, dict[str, dict[str, dict]]] = {k: dict(r.statistics) for k, r in done.items()}

    decided: dict[str, list[tuple[str, str]]] = {}  # decision kind -> (input, message), in input order
    keys: set[str] = set()  # every sample key: two samples may not share one
    unlabelled_seen = False
    progress = _progress(plan.total - sum(r.shard.samples for r in done.values()), run.progress, len(views))
    # Each shard is written on a thread while the next results come in (one write at a time, so at
    # most one finished shard waits in memory; a few at once for many workers): with worker
    # processes this one mostly waits, and with none, compressing and writing (which release the
    # GIL) overlap the next input's work.
    writer = _ShardWriter(written, writer_threads(run.workers))
    try:
        if shared is not None:
            shared.start()  # decompressing while the first parts start
        work = compile_exported if transfer is not None and len(tasks) > 1 else compile_input  # > 1: pooled
        results = (imported(r) for r in in_order(work, tasks, run.workers, run.scheduler, pool))
        for result in _whole_inputs(results, n_parts, plan.counts, progress):
            item = items[result.index]
            if shared is not None:  # every part of the input is done: copies no later input reads can go
                files = (item.image, *item.masks[:1])
                shared.release([p.local for p in files if last_use.get(str(p.local)) == result.index])
            first_shard = plan.firsts[result.index] // per
            error = result.error or names.refused(result.labels, item)
            staged = {k: (info_k, (dt, ch)) for k, info_k, dt, ch, _ in result.staged}
            if error is None and staged:
                found = next(iter(staged.values()))[1]
                dtype = dtype or found
                if any(f != dtype for _, f in staged.values()):
                    error = (
                        f"{item.image}: image is {found[1]} x {found[0]}, the dataset's first image "
                        f"{dtype[1]} x {dtype[0]}; compile them separately"
                    )
                unlabelled_seen |= labelled and not has_labels(item)
            if error is not None:
                for k in staged:
                    discard_staged(loc.local, k, folders[k])
                staged = {}
            if error is None:
                for kind, message in result.notes:
                    decided.setdefault(kind, []).append((item.source, message))
            if error is not None:
                if run.on_error == "fail":
                    raise CompileError(
                        f"{error} (shards finished so far are kept: fix or remove the input, "
                        "then re-run with --resume; or use --on-error skip)"
                    )
                failures.setdefault(first_shard, []).append(Failure(item.source, error))
            else:
                grey = set(result.grey)
                for rec in result.records:
                    found = (str(rec.image.dtype), int(rec.image.shape[-1]))
                    if dtype is None:
                        dtype, grey_dataset = found, rec.sample in grey
                    if found != dtype and rec.sample in grey and found[0] == dtype[0] and dtype[1] == 3:
                        rec.image, found = np.repeat(rec.image, 3, axis=3), dtype  # R = G = B, as stored before
                    if found != dtype:
                        hint = "compile them separately"
                        if grey_dataset:
                            hint = "(grey stored as RGB, kept as one channel); compile with --keep-channels"
                        problem = (
                            f"{item.image}: image is {found[1]} x {found[0]}, the dataset's first image "
                            f"{dtype[1]} x {dtype[0]}; {hint}"
                        )
                        if run.on_error == "fail":
                            raise CompileError(problem)
                        failures.setdefault(first_shard, []).append(Failure(item.source, problem))
                        break
                    if rec.view == 0:
                        if rec.key in keys:
                            raise CompileError(
                                f"{item.image}: sample key {rec.key!r} is already taken; keys must be unique"
                            )
                        keys.add(rec.key)
                    unlabelled_seen |= labelled and rec.mask is None
                    k = rec.sample // per
                    if k not in done:
                        buffers.setdefault(k, []).append(rec)
                else:
                    folded = _fold(result.frames, None if split_plan is None else split_plan[result.index])
                    if folded:
                        stats.setdefault(plan.shards_of(result.index)[-1], {})[item.source] = folded
            for k in sorted(k for k, last in last_input.items() if last == result.index and k not in done):
                if k in staged:  # written by the worker: this process only commits it
                    commit_shard(
                        loc.local,
                        k,
                        staged[k][0],
                        fingerprint=plan.fingerprint,
                        failures=failures.get(k, []),
                        image_dtype=dtype[0],
                        channels=dtype[1],
                        statistics=stats.get(k),
                        name=folders[k],
                    )
                    written[k] = staged[k][0]
                    shard_failures[k] = failures.pop(k, [])
                    continue
                writer.write(
                    k,
                    out,
                    k,
                    buffers.pop(k, []),
                    patch_size=data.patch_size,
                    image_dtype=dtype[0] if dtype else None,
                    channels=dtype[1] if dtype else None,
                    mask_dtype=mask_dtype if labelled else None,
                    fingerprint=plan.fingerprint,
                    failures=failures.get(k, []),
                    mask_fill=fill,
                    statistics=stats.get(k),
                    dims=dims,
                    name=folders[k],
                )
                shard_failures[k] = failures.pop(k, [])
        writer.finish()
    finally:
        writer.close()
        progress.close()
        if shared is not None:
            shared.close()

    per_input: dict[str, dict[str, dict]] = {}
    for k in sorted(written):
        per_input.update(stats.get(k, {}))
    per_input = {it.source: per_input[it.source] for it in items if it.source in per_input}  # plan order
    label_counts = {
        source: {int(k): n for partial in splits.values() for k, n in partial["labels"].items()}
        for source, splits in per_input.items()
    }
    classes, label_warning, unnamed = names.classes(label_counts, items) if labelled else (None, None, [])
    parameters = _with_decisions(data.parameters(info, mask_dtype), decided)
    if unnamed:
        parameters["unnamed_labels"] = unnamed
    image_dtype, channels = dtype or ("uint8", 1)
    all_failures = tuple(plan.early + [f for k in sorted(shard_failures) for f in shard_failures[k]])
    manifest = Manifest(
        patch_size=data.patch_size,
        channels=channels,
        image_dtype=image_dtype,
        mask_dtype=mask_dtype if labelled else None,
        classes=classes,
        ignore_index=fill if unlabelled_seen and ignore is None else ignore,
        views=tuple(View(b, lo, hi) for b, lo, hi in views),
        parameters=parameters,
        shards=tuple(written[k] for k in sorted(written)),
        failures=all_failures,
        splits=_split_counts(split_plan, items, len(views), {f.source for f in all_failures}),
        statistics=_dataset_statistics(per_input, split_plan is not None),
        dims=dims,
    )
    write_manifest(out, manifest)
    remove_stale_shards(loc, {folders[k] for k in written})
    write_stats(loc, time.perf_counter() - started, run.workers)
    for taken in decided.values():
        more = f" ({len(taken) - 1} more input(s) alike)" if len(taken) > 1 else ""
        warnings.warn(taken[0][1] + more, APFWarning, stacklevel=2)
    if label_warning is not None:
        warnings.warn(label_warning, APFWarning, stacklevel=2)
    for line in dataset_warnings(out):
        warnings.warn(line, APFWarning, stacklevel=2)
    return manifest


def _shared_decompression(cut: list[InputItem], workers: int) -> Inflater | None:
    """One decompression, started now, of the local ``.nii.gz`` files of the volumes cut into parts
    for a local pool, which every part reads (:mod:`apfcompile.inputs.inflate`), on a thread a file
    up to one a worker; None if none."""
    from ..inputs.readers import nifti

    sources = []
    for item in cut:
        if item.kind != "volume" or item.channels or item.problem:
            continue
        for place in (item.image, *item.masks[:1]):
            path = place.local
            if path is None or not path.name.lower().endswith(".nii.gz"):
                continue
            try:
                if nifti.streamable(path):
                    sources.append(path)
            except Exception:  # an unreadable header: the part that reads it reports it
                continue
    if not sources:
        return None
    try:
        # a thread a file up to one a worker: the parts of as many volumes as are in work find
        # their copies started (a part whose copy has not started reads its .gz itself)
        return Inflater(sources, max(2, min(len(set(sources)), workers)))
    except OSError:  # no writable temporary folder: each part reads the .gz itself, as before
        return None


def _files_whole(loc, rec: ShardRecord) -> bool:
    """Whether every file a committed shard's record lists is there with its size (a shard kept by
    ``resume`` goes into the manifest as its record says; a cheap check, not a hash)."""
    for rel, file in rec.shard.files.items():
        try:
            if loc.size(f"{rec.shard.path}/{rel}") != file.bytes:
                return False
        except (OSError, ValueError):
            return False
    return True


class _ShardWriter:
    """:func:`write_shard` calls, each result stored in ``written[k]``: on up to ``threads``
    threads (a call returns once fewer than ``threads`` writes are in flight, so at most that many
    finished shards wait in memory). The bytes are those of writes in line: a shard's write
    depends on its records alone, and the manifest is written after the last."""

    def __init__(self, written: dict[int, ShardInfo], threads: int = 1) -> None:
        self.written = written
        self.threads = max(1, threads)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="apf-writer")
        self.pending: list[tuple[int, Future]] = []

    def write(self, k: int, *args: object, **kwargs: object) -> None:
        while len(self.pending) >= self.threads:
            self._wait_oldest()
        self.pending.append((k, self.pool.submit(write_shard, *args, **kwargs)))

    def finish(self) -> None:
        """Wait for the writes in flight; the first error, if any, is raised here."""
        while self.pending:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        k, future = self.pending.pop(0)
        self.written[k] = future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def writer_threads(workers: int) -> int:
    """Threads that write shards for a compile with ``workers`` pool workers: one up to 11
    workers, then one per 6, at most 4. A 256-sample CT shard takes one thread 0.23-0.30 s on the
    2-core development machine (compression, checksums, Parquet: ``benchmarks/bench_writer.py``),
    i.e. at most ~850-1,100 slices/s, which ten or so workers outrun; two writes at once take
    0.55x the time of two in a row there (the work releases the GIL). Each thread can hold one
    finished shard's records in memory."""
    return max(1, min(4, workers // 6))


_WRITER_MODULES = ("numcodecs", "pyarrow.parquet")
"""What writing shards needs and nothing before it does, imported on a thread while the first
inputs are decoded (OpenCV releases the GIL). Not zarr: the writer makes its files itself."""


def _whole_inputs(results: Iterator[Result], n_parts: dict[int, int], counts: list[int], progress) -> Iterator[Result]:
    """One result per input from the results of its parts (in order): their records, notes, label
    counts and grey samples joined, or the first error (an input is compiled whole or not at all).
    The progress bar moves per part, in samples, and by the input's planned count in all once it
    is done."""
    pending: list[Result] = []
    for result in results:
        progress.update(len(result.records) + sum(s[4] for s in result.staged))
        pending.append(result)
        if len(pending) < n_parts[result.index]:
            continue
        error = next((r.error for r in pending if r.error is not None), None)
        records = [rec for r in pending for rec in r.records]
        notes = list(dict.fromkeys(n for r in pending for n in r.notes))
        frames = [fs for r in pending for fs in r.frames]
        grey = [s for r in pending for s in r.grey]
        staged = [s for r in pending for s in r.staged]
        progress.update(counts[result.index] - len(records) - sum(s[4] for s in staged))
        pending = []
        yield Result(result.index, [] if error is not None else records, error, notes, frames, grey, staged)


def read_shard_record(*args: object, **kwargs: object) -> ShardRecord | None:
    """:func:`formats.writer.read_shard_record` (the writer is imported on first use)."""
    from formats import writer

    return writer.read_shard_record(*args, **kwargs)


def write_shard(*args: object, **kwargs: object) -> ShardInfo:
    """:func:`formats.writer.write_shard` (the writer is imported on first use)."""
    from formats import writer

    return writer.write_shard(*args, **kwargs)


def commit_shard(*args: object, **kwargs: object) -> None:
    """:func:`formats.writer.commit_shard` (the writer is imported on first use)."""
    from formats import writer

    writer.commit_shard(*args, **kwargs)


def discard_staged(*args: object, **kwargs: object) -> None:
    """:func:`formats.writer.discard_staged` (the writer is imported on first use)."""
    from formats import writer

    writer.discard_staged(*args, **kwargs)


def write_manifest(*args: object, **kwargs: object) -> str:
    """:func:`formats.writer.write_manifest` (the writer is imported on first use)."""
    from formats import writer

    return writer.write_manifest(*args, **kwargs)


def _import_in_background(names: tuple[str, ...]) -> None:
    def work() -> None:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # the main thread's own import reports it, where it is needed
                return

    threading.Thread(target=work, name="apf-imports", daemon=True).start()


def _with_decisions(parameters: dict, decided: dict[str, list[tuple[str, str]]]) -> dict:
    """The manifest's parameters, plus what the compile decided without being told, by kind (only
    when it did, so that other datasets keep their bytes): ``channels_first_by_shape``, the inputs
    whose 3-D arrays were taken as C x H x W by their shape; ``arrays_by_default``, the ``.npz``
    inputs whose image and mask arrays were picked without ``--image-key``/``--mask-key``;
    ``ct_by_rule``, inputs with frames taken as CT by ``--modality auto``; ``grey_from_rgb``, inputs
    whose R = G = B images are stored as one channel; ``orientation_unknown``, volumes sliced as
    stored because their header names no orientation; (and, set by the caller, ``unnamed_labels``: the
    labels stored as ``label_N`` where names were expected)."""
    return {
        **parameters,
        **{kind: sorted({source for source, _ in taken}) for kind, taken in sorted(decided.items())},
    }


def _fold(frames: list[tuple[int, dict]], splits: list | None) -> dict[str, dict]:
    """One input's frame statistics folded in frame order, by split (``all`` without splits)."""
    out: dict[str, dict] = {}
    for f, st in sorted(frames, key=lambda fs: fs[0]):
        name = "all" if splits is None else splits[f][1]
        out[name] = add(out.get(name), st)
    return out


def _dataset_statistics(per_input: dict[str, dict[str, dict]], with_splits: bool) -> dict | None:
    """The manifest's ``statistics``: inputs folded in plan order, for ``all`` and each split."""
    if not per_input:
        return None
    totals: dict[str, dict] = {}
    for splits in per_input.values():
        for name, partial in splits.items():
            totals["all"] = add(totals.get("all"), partial)
            if with_splits:
                totals[name] = add(totals.get(name), partial)
    return summarise({"all": totals.pop("all"), **dict(sorted(totals.items()))})


def _split_counts(split_plan, items: list, views: int, failed: set[str]) -> dict[str, int] | None:
    """Samples per split over the inputs that compiled (the manifest's ``splits``)."""
    if split_plan is None:
        return None
    counts: dict[str, int] = {}
    for item, row in zip(items, split_plan):
        if item.source in failed:
            continue
        for _, split in row:
            counts[split] = counts.get(split, 0) + views
    return dict(sorted(counts.items()))


def _progress(total: int, enabled: bool, views: int = 1):
    """The compile's bar: frames (samples, with several views) done of the planned total, their
    rate and the time left, e.g. ``compiling:  45%|####   | 450/1000 [00:10<00:12, 44.2 frame/s]``."""
    from tqdm import tqdm

    unit = "frame" if views == 1 else "sample"
    return tqdm(total=total, unit=unit, desc="compiling", disable=not enabled, dynamic_ncols=True, smoothing=0.1)
