"""PyTorch datasets over apfcompile shards: random access and a resumable DDP-aware stream.

A dataset folder (or fsspec URL) written by ``apfcompile compile``::

    DATASET/apf.json
    DATASET/shards/00000/{nodes.parquet, samples.parquet, patches.zarr/{image,mask}}
    ...

holds *frames* (an image, a slice) compiled under one or more *views* (edge settings). Both
classes index frames; each epoch a frame is read under one of its views (``view="random"``: drawn
from ``(seed, epoch, frame)``; an int: that view).

An item is a dict: ``image`` (L, C, p, p) in the stored dtype, ``mask`` (L, p, p) in the stored
dtype (uint8 for masks of up to 255 labels; uint16 masks come as int32, which torch can index)
and ``labelled`` (bool: False for an unlabelled sample, whose mask rows all hold the manifest's
``ignore_index``) in labelled datasets, ``size`` (L,) int32, ``center`` (L, 2) float32 as (cx, cy),
``box`` (L, 4) int32 as (x1, x2, y1, y2), ``valid`` (L,) bool, ``canvas`` (2,) int64 as (H, W),
``original`` (2,) int64 (the image's size before the canvas) and ``scale`` (2,) float64 (original
pixels per canvas pixel, rows and columns: see :func:`loaders.to_original`), ``ceiling`` (float32:
the sample's stored ceiling Dice, NaN when unlabelled), ``id`` (int, the sample id), ``key`` (str).
A batch carries what is stored and no more (about 1.0x the raw bytes): a loss that wants int64
targets takes ``batch["mask"].long()``, best after the copy to the GPU, where widening is free.
``image`` is a channels-first *view* of the stored channels-last rows (no transpose on the CPU):
``.to(device)`` keeps its strides (channels-last memory, which convolutions take as is), and
``.contiguous()`` makes a packed copy where code needs ``.view``.
Volumes (``compile --mode volume``; the manifest's ``dims`` is 3): ``image`` (L, C, p, p, p),
``mask`` (L, p, p, p), ``box`` (L, 6) as (x1, x2, y1, y2, z1, z2), ``center`` (L, 3) as (cx, cy,
cz), ``canvas`` and ``original`` (3,) as (D, H, W).
With ``length`` set, sequences are padded with invalid rows (zero patches, size 0, centre (-1, -1),
box 0) or dropped to L (``drop="priority"``: lowest (edges, size) first; ``"random"``: seeded by
(seed, epoch, sample)); with ``length=None`` each keeps its own length and :func:`loaders.collate`
pads the batch.

Every chunk a sample reads is checked against the crc32c stored with it (``verify_checksums``);
a mismatch is a :class:`formats.CorruptShardError` naming the shard file, the rows and the sample.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import IterableDataset, get_worker_info

from formats import Dataset, Manifest, open_dataset
from formats.errors import CorruptShardError
from formats.sequence import DROP_RULES, PAD_ROW, ROW_DTYPES, select_rows
from formats.storage import locate

from ._shards import ShardReader, row_fields_of
from .statistics import normalization

__all__ = ["APFDataset", "APFStream", "SkippedSampleWarning"]

_SKIP_SLOTS = 64


class SkippedSampleWarning(UserWarning):
    """``APFStream(on_error="skip")`` left out a sample it could not read (the message names it)."""


class _Frames:
    """The frame -> (view -> sample row) index of a dataset, plus per-row read coordinates."""

    def __init__(self, ds: Dataset, split: str | None = None) -> None:
        t = ds.samples
        self.sample = t["sample"].to_numpy().astype(np.int64)
        self.shard = t["shard"].to_numpy().astype(np.int64)
        self.offset = t["offset"].to_numpy().astype(np.int64)
        self.count = t["count"].to_numpy().astype(np.int64)
        hw = ["canvas_h", "canvas_w"], ["orig_h", "orig_w"]
        if ds.manifest.dims == 3:  # volumes: (D, H, W)
            hw = ["canvas_d", "canvas_h", "canvas_w"], ["orig_d", "orig_h", "orig_w"]
        self.canvas = np.stack([t[c].to_numpy() for c in hw[0]], 1).astype(np.int64)
        self.original = np.stack([t[c].to_numpy() for c in hw[1]], 1).astype(np.int64)
        self.scale = np.stack([t["scale_y"].to_numpy(), t["scale_x"].to_numpy()], 1).astype(np.float64)
        ceiling = t["ceiling_dice"].to_numpy(zero_copy_only=False)
        self.ceiling = np.array([np.nan if v is None else v for v in ceiling], np.float32)
        self.keys = t["key"].to_pylist()
        self.labelled = t["labelled"].to_numpy(zero_copy_only=False).astype(bool)
        views = t["view"].to_numpy().astype(np.int64)
        self.n_views = len(ds.manifest.views)
        first: dict[str, int] = {}
        for k in self.keys:
            first.setdefault(k, len(first))
        self.rows = np.full((len(first), self.n_views), -1, np.int64)  # frame x view -> row
        frame = np.array([first[k] for k in self.keys], np.int64)
        self.rows[frame, views] = np.arange(len(self.keys))
        if split is not None:  # only the frames of one split (a frame's views share its split)
            names = t["split"].to_pylist() if "split" in t.column_names else [None] * len(self.keys)
            known = sorted({n for n in names if n is not None})
            if split not in known:
                raise ValueError(
                    f"split: expected one of {known} (the dataset's splits), found {split!r}"
                    if known
                    else f"split: the dataset has no splits (compile it with --split), found {split!r}"
                )
            ours = np.array([n == split for n in names], bool)
            self.rows = self.rows[ours[self.rows.max(axis=1)]]
        self.frame_shard = self.shard[self.rows.max(axis=1)]

    def __len__(self) -> int:
        return self.rows.shape[0]


class _Reader:
    """Shared machinery: the index, lazily opened shards (per process, bounded), item building."""

    def __init__(
        self,
        path,
        length,
        view,
        drop,
        seed,
        cache_shards,
        storage_options=None,
        cache_dir=None,
        split=None,
        normalize=None,
        transform=None,
        verify_checksums=True,
    ) -> None:
        self.verify_checksums = bool(verify_checksums)
        if transform is not None and not callable(transform):
            raise ValueError(f"transform: expected a callable on an item or batch, found {transform!r}")
        self.transform = transform
        if length is not None and (not isinstance(length, int) or length < 1):
            raise ValueError(f"length: expected None or an integer >= 1, found {length!r}")
        if drop not in DROP_RULES:
            raise ValueError(f"drop: expected one of {DROP_RULES}, found {drop!r}")
        self.dataset = open_dataset(path, storage_options)
        self.storage_options = storage_options
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)
        if self.cache_dir is not None:
            try:
                os.makedirs(self.cache_dir, exist_ok=True)
            except OSError as exc:
                raise ValueError(f"cache_dir: expected a writable folder, found {self.cache_dir!r} ({exc})") from None
            if not os.access(self.cache_dir, os.W_OK):
                raise ValueError(f"cache_dir: expected a writable folder, found {self.cache_dir!r} (not writable)")
        self.frames = _Frames(self.dataset, split)
        self.norm = _normalize(self.dataset, normalize)
        if view != "random" and not (isinstance(view, int) and 0 <= view < self.frames.n_views):
            raise ValueError(f"view: expected 'random' or an int in 0..{self.frames.n_views - 1}, found {view!r}")
        self.length, self.view, self.drop, self.seed = length, view, drop, int(seed)
        self.cache_shards = cache_shards
        self.labelled = self.dataset.manifest.mask_dtype is not None
        self.mask_dtype = item_mask_dtype(self.dataset.manifest.mask_dtype) if self.labelled else None
        self.epoch = 0
        self._readers: OrderedDict[int, ShardReader] = OrderedDict()
        self._pid = os.getpid()
        self._lock = threading.Lock()  # prefetch threads share the open shards

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_readers"] = OrderedDict()  # open files stay in the process that opened them
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _reader(self, shard: int) -> ShardReader:
        with self._lock:
            return self._open_reader(shard)

    def _reader_of(self, row: int) -> ShardReader:
        """The open shard of sample row ``row``; an error opening it names the sample."""
        try:
            return self._reader(int(self.frames.shard[row]))
        except CorruptShardError as exc:
            raise self._named(exc, row) from None

    def _named(self, exc: CorruptShardError, row: int) -> CorruptShardError:
        f = self.frames
        return CorruptShardError(exc.shard, f"sample {f.keys[row]!r} (id {int(f.sample[row])}): {exc.problem}")

    def _open_reader(self, shard: int) -> ShardReader:
        if self._pid != os.getpid():  # a worker process: reopen everything here
            self._readers, self._pid = OrderedDict(), os.getpid()
            if self.dataset.location.local is None:  # object storage clients are per process
                self.dataset.location = locate(self.dataset.location.url, self.storage_options, fresh=True)
        reader = self._readers.get(shard)
        if reader is None:
            reader = ShardReader(self.dataset, shard, self.cache_dir, self.verify_checksums)
            self._readers[shard] = reader
            while len(self._readers) > self.cache_shards:
                self._readers.popitem(last=False)
        else:
            self._readers.move_to_end(shard)
        return reader

    def _row(self, frame: int) -> int:
        views = self.frames.rows[frame]
        if self.view == "random" and self.frames.n_views == 1:
            return int(views[0])
        if self.view == "random":
            choices = views[views >= 0]
            return int(np.random.default_rng((self.seed, self.epoch, frame)).choice(choices))
        row = int(views[self.view])
        if row < 0:
            raise KeyError(f"frame {self.frames.keys[views.max()]!r} has no view {self.view}")
        return row

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.transform, "set_epoch"):
            self.transform.set_epoch(self.epoch)

    def batch(self, frames: list[int], transformed: bool = True) -> dict:
        """Items for ``frames`` assembled in place into batch arrays (one copy of every row), then
        the transform (unless ``transformed`` is False). In a DataLoader worker the arrays are
        allocated in shared memory, so handing the batch to the main process copies nothing."""
        f = self.frames
        rows = [self._row(int(fr)) for fr in frames]
        counts = [int(f.count[r]) for r in rows]
        total = self.length if self.length is not None else max(counts)
        first = self._reader_of(rows[0])
        dims = self.dataset.manifest.dims
        p, c = first.arrays["image"].shape[1], first.arrays["image"].shape[-1]
        cell = (p,) * dims
        b = len(rows)
        shared = get_worker_info() is not None
        row_specs = {
            "image": ((b, total, *cell, c), first.arrays["image"].dtype),
            "size": ((b, total), ROW_DTYPES["size"]),
            "center": ((b, total, dims), ROW_DTYPES["center"]),
            "box": ((b, total, 2 * dims), ROW_DTYPES["box"]),
            "valid": ((b, total), ROW_DTYPES["valid"]),
        }
        sample_specs = {
            "canvas": ((b, *f.canvas.shape[1:]), f.canvas.dtype),
            "original": ((b, *f.original.shape[1:]), f.original.dtype),
            "scale": ((b, *f.scale.shape[1:]), f.scale.dtype),
            "ceiling": ((b,), f.ceiling.dtype),
            "id": ((b,), np.int64),
        }
        if self.labelled:
            row_specs["mask"] = ((b, total, *cell), self.mask_dtype)
            sample_specs["labelled"] = ((b,), f.labelled.dtype)
        # two blocks in a worker: a training loop that keeps a batch's ids or sizes does not keep
        # its pixels alive
        new, per_sample = _Buffers(shared, row_specs), _Buffers(shared, sample_specs)
        image, size, center, box, valid = (new.arrays[k] for k in ("image", "size", "center", "box", "valid"))
        mask = new.arrays.get("mask")
        fields = {"image": image, "mask": mask, "size": size, "center": center, "box": box, "valid": valid}
        ids = per_sample.arrays["id"]
        for i, (row, n) in enumerate(zip(rows, counts)):
            start = int(f.offset[row])
            reader = self._reader_of(row)
            ids[i] = f.sample[row]
            try:
                if n > total:  # drop rows: read them all, keep the chosen ones
                    nodes = reader.node_rows(start, n)
                    keep = select_rows(nodes.edges, nodes.size, total, self.drop, (self.seed, self.epoch, int(ids[i])))
                    per_row = row_fields_of(nodes.take(keep))
                    image[i] = reader.rows("image", start, start + n)[keep]
                    if mask is not None:
                        mask[i] = reader.rows("mask", start, start + n)[keep]
                    n = total
                else:
                    per_row = reader.row_fields(start, n)
                    reader.read_into("image", start, start + n, image[i, :n])
                    if mask is not None:
                        reader.read_into("mask", start, start + n, mask[i, :n])
            except CorruptShardError as exc:
                raise self._named(exc, row) from None
            for name, a in fields.items():  # padding rows (written once: the arrays start empty)
                if a is not None and n < total:
                    a[i, n:] = PAD_ROW[name]
            size[i, :n], center[i, :n], box[i, :n] = per_row
            valid[i, :n] = True
        for name in ("canvas", "original", "scale", "ceiling") + (("labelled",) if mask is not None else ()):
            per_sample.arrays[name][...] = getattr(f, name)[rows]
        t = {**new.tensors, **per_sample.tensors}
        # (B, L, C, p, p [, p]): a view of the channels-last rows, no copy
        image_t = t["image"].permute(0, 1, 2 + dims, *range(2, 2 + dims))
        if self.norm is not None:
            mean, std = (torch.from_numpy(v).reshape((-1,) + (1,) * dims) for v in self.norm)
            image_t = (image_t.float() - mean) / std
            image_t[~t["valid"]] = 0
        out = {"image": image_t}
        out.update(
            (k, t[k]) for k in ("size", "center", "box", "valid", "canvas", "original", "scale", "ceiling", "id")
        )
        out["key"] = [f.keys[r] for r in rows]
        if mask is not None:
            out["mask"] = t["mask"]
            out["labelled"] = t["labelled"]
        return self.transform(out) if transformed and self.transform is not None else out

    def item(self, frame: int) -> dict:
        """One item (the batch of one, unbatched)."""
        batch = self.batch([frame], transformed=False)
        item = {k: v[0] for k, v in batch.items()}
        item["id"] = int(item["id"])
        if "labelled" in item:
            item["labelled"] = bool(item["labelled"])
        return self.transform(item) if self.transform is not None else item


def item_mask_dtype(stored: str) -> np.dtype:
    """The dtype of items' ``mask``: the stored one, except uint16 and uint32 (torch cannot index
    them), which come as int32 and int64. Values are unchanged either way."""
    dtype = np.dtype(stored)
    return {np.dtype(np.uint16): np.dtype(np.int32), np.dtype(np.uint32): np.dtype(np.int64)}.get(dtype, dtype)


class _Buffers:
    """Arrays of a batch (name -> (shape, dtype)), allocated where the batch goes. Inside a
    DataLoader worker: one block of shared memory for all of them, each array a view at its own
    64-byte-aligned offset, so that handing the batch to the main process copies nothing and
    passes one segment rather than one per array (each costs the worker and the main process
    system calls and mappings: 16 vs 10 ms a batch of 12 arrays on the benchmark machine).
    Elsewhere each array is allocated on its own. :attr:`arrays` (numpy) and :attr:`tensors`
    (torch) share memory, uninitialised."""

    def __init__(self, shared: bool, specs: dict[str, tuple[tuple[int, ...], object]]) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.tensors: dict[str, torch.Tensor] = {}
        offsets, end, storage = {}, 0, None
        if shared:
            for name, (shape, dtype) in specs.items():
                end = -(-end // 64) * 64
                offsets[name] = end
                end += math.prod(shape) * np.dtype(dtype).itemsize
            storage = torch.UntypedStorage._new_shared(max(end, 1))
        for name, (shape, dtype) in specs.items():
            dtype = np.dtype(dtype)
            if storage is None:
                t = torch.empty(shape, dtype=_TORCH_DTYPES[dtype])
            else:
                t = torch.empty(0, dtype=_TORCH_DTYPES[dtype]).set_(storage, offsets[name] // dtype.itemsize, shape)
            self.tensors[name] = t
            self.arrays[name] = t.numpy()


_TORCH_DTYPES = {
    np.dtype(n): getattr(torch, t)
    for n, t in (
        ("uint8", "uint8"),
        ("uint16", "uint16"),
        ("int8", "int8"),
        ("int16", "int16"),
        ("int32", "int32"),
        ("int64", "int64"),
        ("float16", "float16"),
        ("float32", "float32"),
        ("float64", "float64"),
        ("bool", "bool"),
    )
}


def _normalize(ds: Dataset, normalize) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, std) per channel as float32, from ``normalize``: None, ``"dataset"`` (the manifest's
    statistics: the train split's where there is one), or an explicit ``(mean, std)``."""
    if normalize is None:
        return None
    if isinstance(normalize, str):
        if normalize != "dataset":
            raise ValueError(f"normalize: expected None, 'dataset' or (mean, std), found {normalize!r}")
        return normalization(ds)
    try:
        mean, std = (np.asarray(v, np.float32).reshape(-1) for v in normalize)
    except (TypeError, ValueError):
        raise ValueError(f"normalize: expected None, 'dataset' or (mean, std), found {normalize!r}") from None
    c = ds.manifest.channels
    if mean.size not in (1, c) or std.size not in (1, c) or not (std > 0).all():
        raise ValueError(f"normalize: expected mean and std of 1 or {c} values, std > 0, found {normalize!r}")
    return np.broadcast_to(mean, (c,)).copy(), np.broadcast_to(std, (c,)).copy()


class APFDataset(TorchDataset):
    """Map-style dataset: random access to frames by index, ``len()`` = number of frames.

    Args:
        path_or_url: a dataset folder or fsspec URL (see ``formats/FORMAT.md``).
        length: fixed sequence length L (pad or drop), or None to keep each sample's own.
        view: ``"random"`` (a view per frame per epoch, seeded) or the index of one view.
        drop: ``"priority"`` or ``"random"`` (see the module docstring).
        seed: seeds view draws and random drops together with :meth:`set_epoch`.
        cache_shards: how many shards each process keeps open.
        storage_options: fsspec options for URLs (``s3://``...), e.g. an endpoint or credentials.
        cache_dir: for a dataset on object storage, a local folder that keeps every block fetched
            (1 MiB blocks, keyed by the checksums in the manifest, shareable by the workers and
            processes of one node, never evicted); later epochs then read from local disk.
        split: only the frames of this split (``"train"``...; the dataset's ``splits``), or None
            for all of them.
        normalize: None (images in their stored dtype), ``"dataset"`` (float32, minus the mean and
            over the std per channel computed at compile time: the ``train`` split's where the
            dataset has splits), or an explicit ``(mean, std)``. Padding rows stay 0.
        transform: a callable applied to every item (``__getitem__``) or batch (``__getitems__``,
            ``APFStream`` with ``batch_size``) where it is read: in the DataLoader worker or the
            prefetch thread. Its ``set_epoch``, if any, follows the dataset's
            (:class:`loaders.transforms.Dihedral`: the 8 flips and rotations, exact in token space).
        verify_checksums: check every chunk a sample reads against its stored crc32c (chunks of
            datasets written before checksums carry none; ``formats/FORMAT.md``) and raise
            :class:`formats.CorruptShardError` naming the file and the sample on a mismatch.
            ``False`` skips the check (``benchmarks/bench_peers.py`` measures what it costs).
    """

    def __init__(
        self,
        path_or_url: str | os.PathLike,
        length: int | None = None,
        view: str | int = "random",
        drop: str = "priority",
        seed: int = 0,
        cache_shards: int = 8,
        storage_options: dict | None = None,
        cache_dir: str | os.PathLike | None = None,
        split: str | None = None,
        normalize: str | tuple | None = None,
        transform=None,
        verify_checksums: bool = True,
    ) -> None:
        self._r = _Reader(
            path_or_url,
            length,
            view,
            drop,
            seed,
            cache_shards,
            storage_options,
            cache_dir,
            split,
            normalize,
            transform,
            verify_checksums,
        )

    def __len__(self) -> int:
        return len(self._r.frames)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        return self._r.item(int(index) % len(self))

    def __getitems__(self, indices: list[int]) -> dict:
        """A whole batch assembled in place (DataLoader calls this; :func:`collate` passes it on)."""
        for i in indices:
            if not -len(self) <= i < len(self):
                raise IndexError(f"index {i} out of range for {len(self)} frames")
        return self._r.batch([int(i) % len(self) for i in indices])

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch that seeds view draws, random drops and the transform's draws."""
        self._r.set_epoch(epoch)

    @property
    def manifest(self) -> Manifest:
        return self._r.dataset.manifest


class APFStream(IterableDataset):
    """A streaming dataset for DDP training: every rank the same number of samples, resumable.

    Each epoch, frames are ordered by a pure function of ``(seed, epoch)``: shards shuffled, then
    frames within each shard (``shuffle=False``: stored order). The order is cut into ``world_size``
    contiguous blocks of equal size (the last block wraps round to the start of the order, so a
    few frames repeat, unless ``drop_last``), one per rank. A rank's block is cut into units (one
    frame, or ``batch_size`` frames collated into a batch) and unit ``j`` goes to DataLoader worker
    ``j % num_workers``, which is the order a DataLoader yields them in: the stream is the same for
    any worker count, and every sample is seen once per epoch.

    Use ``DataLoader(stream, batch_size=None, num_workers=W)`` when ``batch_size`` is set here.
    Every unit carries ``position`` (units of this rank's epoch consumed up to and including it);
    ``state_dict(last)`` after consuming ``last`` and ``load_state_dict`` resume mid-epoch exactly.

    Args:
        path_or_url, length, view, drop, seed, cache_shards, storage_options, cache_dir, split,
            normalize, transform, verify_checksums: as :class:`APFDataset`.
        batch_size: frames per yielded batch (collated), or None for single items.
        shuffle: shuffle shards and frames each epoch.
        drop_last: drop the order's tail instead of wrapping so ranks get equal counts.
        rank, world_size: override ``torch.distributed`` (e.g. for tests); default from it, or 0/1.
        prefetch: units each process reads ahead on that many background threads (0: none).
            Worth it on object storage, where a read waits on the network: the stream's order and
            ``state_dict`` are unchanged.
        on_error: ``"raise"`` (default): a sample whose shard is missing, truncated or fails its
            checksums stops the stream with :class:`formats.CorruptShardError` naming the file and
            the sample. ``"skip"``: the sample is left out (a batch comes one item shorter; a unit
            with no good sample is not yielded) with one :class:`SkippedSampleWarning` naming
            it, and counted in ``state_dict()["skipped"]`` (the samples skipped this epoch by
            this rank's readers so far, those reading ahead in DataLoader workers included).
    """

    def __init__(
        self,
        path_or_url: str | os.PathLike,
        length: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        batch_size: int | None = None,
        view: str | int = "random",
        drop: str = "priority",
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        cache_shards: int = 8,
        storage_options: dict | None = None,
        cache_dir: str | os.PathLike | None = None,
        prefetch: int = 0,
        split: str | None = None,
        normalize: str | tuple | None = None,
        transform=None,
        verify_checksums: bool = True,
        on_error: str = "raise",
    ) -> None:
        super().__init__()
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error: expected 'raise' or 'skip', found {on_error!r}")
        self.on_error = on_error
        # samples skipped this epoch, one slot per DataLoader worker (slot 0: this process), in
        # shared memory so that the process calling state_dict() sees the workers' counts
        self._skips = torch.zeros(_SKIP_SLOTS + 1, dtype=torch.int64).share_memory_()
        # the epoch, in shared memory too: persistent DataLoader workers keep the copy of this
        # object they were given, and must still see set_epoch() (else every epoch repeats the first)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size: expected None or an integer >= 1, found {batch_size!r}")
        if not isinstance(prefetch, int) or prefetch < 0:
            raise ValueError(f"prefetch: expected an integer >= 0, found {prefetch!r}")
        self.prefetch = prefetch
        self._r = _Reader(
            path_or_url,
            length,
            view,
            drop,
            seed,
            cache_shards,
            storage_options,
            cache_dir,
            split,
            normalize,
            transform,
            verify_checksums,
        )
        self.shuffle, self.batch_size, self.drop_last = shuffle, batch_size, drop_last
        self._rank, self._world = rank, world_size
        self._resume: tuple[int, int] | None = None  # (epoch, units already consumed)
        self._position = 0

    @property
    def epoch(self) -> int:
        return self._r.epoch

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch (reshuffles); call before iterating, as with DistributedSampler. Reaches
        DataLoader workers too, persistent ones included."""
        self._r.set_epoch(epoch)
        self._epoch[0] = int(epoch)
        self._position = 0
        self._skips.zero_()

    def _dist(self) -> tuple[int, int]:
        if self._rank is not None or self._world is not None:
            return int(self._rank or 0), int(self._world or 1)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def epoch_order(self) -> np.ndarray:
        """All frames in this epoch's order (before the split over ranks)."""
        f = self._r.frames
        n = len(f)
        if not self.shuffle:
            return np.arange(n)
        rng = np.random.default_rng((self._r.seed, self._r.epoch))
        shards = rng.permutation(np.unique(f.frame_shard))
        parts = [rng.permutation(np.flatnonzero(f.frame_shard == s)) for s in shards]
        return np.concatenate(parts) if parts else np.arange(0)

    def rank_frames(self, rank: int | None = None, world_size: int | None = None) -> np.ndarray:
        """The frames rank ``rank`` reads this epoch, in order."""
        r, w = self._dist()
        r = r if rank is None else rank
        w = w if world_size is None else world_size
        order = self.epoch_order()
        n = len(order)
        per = n // w if self.drop_last else -(-n // w)
        if per * w > n:
            order = np.resize(order, per * w)  # wrap round: the first frames again
        return order[r * per : (r + 1) * per]

    def __len__(self) -> int:
        """Units (items or batches) this rank yields per epoch."""
        n = len(self.rank_frames())
        return n if self.batch_size is None else -(-n // self.batch_size)

    def __iter__(self):
        if int(self._epoch[0]) != self._r.epoch:  # a persistent worker's copy, told by set_epoch()
            self._r.set_epoch(int(self._epoch[0]))
        frames = self.rank_frames()
        b = self.batch_size or 1
        units = [frames[i : i + b] for i in range(0, len(frames), b)]
        info = get_worker_info()
        wid, workers = (0, 1) if info is None else (info.id, info.num_workers)
        start = self._resume[1] if self._resume is not None and self._resume[0] == self._r.epoch else 0
        mine = [j for j in range(start, len(units)) if j % workers == wid]

        slot = 0 if info is None else 1 + wid % _SKIP_SLOTS

        def read(j: int) -> dict | None:
            try:
                return self._r.item(int(units[j][0])) if self.batch_size is None else self._r.batch(list(units[j]))
            except CorruptShardError as exc:
                if self.on_error == "raise":
                    raise
                return self._skipping(units[j], exc, slot)

        for j, unit in zip(mine, self._ahead(read, mine)):
            if unit is None:
                continue
            unit["position"] = j + 1
            if info is None:
                self._position = j + 1
            yield unit

    def _skipping(self, frames: np.ndarray, first: CorruptShardError, slot: int) -> dict | None:
        """The unit of ``frames`` without its unreadable samples (None if none is left), each one
        skipped with a warning and counted; ``first``: the error the whole unit raised."""
        good, bad = [], [first] if len(frames) == 1 else []
        if len(frames) > 1:  # find the bad samples of the batch, one at a time (a rare path)
            for fr in frames:
                try:
                    self._r.batch([int(fr)], transformed=False)
                    good.append(int(fr))
                except CorruptShardError as exc:
                    bad.append(exc)
        for exc in bad:
            warnings.warn(f"skipped: {exc}", SkippedSampleWarning, stacklevel=2)
            self._skips[slot] += 1
        return self._r.batch(good) if good else None

    def _ahead(self, read, indices: list[int]):
        """``read(j)`` for each j in order, up to ``prefetch`` of them running ahead on threads."""
        if self.prefetch == 0:
            yield from map(read, indices)
            return
        pool = ThreadPoolExecutor(self.prefetch, thread_name_prefix="apf-prefetch")
        pending: deque = deque()
        todo = iter(indices)
        try:
            for j in todo:
                pending.append(pool.submit(read, j))
                if len(pending) > self.prefetch:
                    break
            while pending:
                unit = pending.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(read, nxt))
                yield unit
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def state_dict(self, last: dict | None = None) -> dict:
        """Where this rank is: ``{"epoch", "seed", "position"}``; O(1) to save and restore.

        ``last``: the last unit the training loop consumed (needed with DataLoader workers; with
        ``num_workers=0`` the stream tracks it itself).
        """
        position = int(last["position"]) if last is not None else self._position
        skipped = int(self._skips.sum())
        return {"epoch": self._r.epoch, "seed": self._r.seed, "position": position, "skipped": skipped}

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next iteration of ``state["epoch"]`` starts after ``state["position"]`` units."""
        if int(state["seed"]) != self._r.seed:
            raise ValueError(f"state was saved with seed {state['seed']}, this stream has seed {self._r.seed}")
        self._r.set_epoch(int(state["epoch"]))
        self._epoch[0] = int(state["epoch"])
        self._resume = (int(state["epoch"]), int(state["position"]))
        self._position = int(state["position"])
        self._skips.zero_()
        self._skips[0] = int(state.get("skipped", 0))
