"""Reading rows of a shard fast: node columns from Parquet, patch rows straight from Zarr shards.

The patch arrays are standard Zarr v3 (sharding codec, inner chunks of ``bytes`` [+ ``zstd``],
index at the end with crc32c). For local datasets whose arrays have exactly that layout, rows are
read straight from the memory-mapped shard file: the shard index is parsed once, and a sample
costs one slice per inner chunk it touches (plus a zstd decode where the chunk is compressed).
zarr-python's per-call machinery costs more than the read itself at these sizes. On object
storage the same layout is read with ranged requests: the shard index once, then one request per
sample spanning the inner chunks it touches (through the local block cache when ``cache_dir`` is
set). Arrays of any other layout are read through zarr-python. All give identical arrays.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict

import numcodecs
import numpy as np
import pyarrow.parquet as pq

from formats import Dataset
from formats.nodes import NodeTable

from ._ranges import CachedFile, MappedFile, RangeFile, RemoteFile

__all__ = ["ShardReader"]

_NODE_COLUMNS = ("x1", "x2", "y1", "y2", "size", "depth", "edges")
_MISSING = np.uint64(2**64 - 1)
_KEEP_GROUPS = 2


class _DirectArray:
    """Rows of one sharded Zarr v3 array read from its single shard file (see module docstring).

    ``source``: the shard file's bytes (local map, remote ranges, cached ranges), or None when
    zarr wrote no file because every chunk held the fill value.
    """

    def __init__(self, source: MappedFile | RemoteFile | CachedFile | None, meta: dict) -> None:
        codec = meta["codecs"][0]["configuration"]
        self.dtype = np.dtype(meta["data_type"])
        self.shape = tuple(meta["shape"])
        self.chunk_rows = int(codec["chunk_shape"][0])
        self.row_shape = tuple(codec["chunk_shape"][1:])
        self.zstd = any(c["name"] == "zstd" for c in codec["codecs"])
        n_inner = -(-int(meta["chunk_grid"]["configuration"]["chunk_shape"][0]) // self.chunk_rows)
        self.source = source
        self.empty = source is None
        if self.empty:
            return
        index_bytes = 16 * n_inner
        tail = source.read(source.size - index_bytes - 4, index_bytes)
        self.index = np.frombuffer(tail, np.uint64).reshape(n_inner, 2).copy()
        self.codec = numcodecs.Zstd() if self.zstd else None

    def read_into(self, start: int, stop: int, out: np.ndarray, channels_first: bool = False) -> None:
        """Rows [start, stop) into ``out`` (one copy; (n, p, p, C) -> (n, C, p, p) if asked)."""
        if self.empty or stop <= start:
            out[...] = 0
            return
        c = self.chunk_rows
        first, last = start // c, (stop - 1) // c
        entries = self.index[first : last + 1]
        stored = entries[:, 0] != _MISSING
        if stored.any():  # one read spanning the chunks (zarr lays them out in order)
            lo = int(entries[stored, 0].min())
            span = memoryview(self.source.read(lo, int((entries[stored, 0] + entries[stored, 1]).max()) - lo))
        for k in range(first, last + 1):
            offset, nbytes = self.index[k]
            lo_row, hi_row = max(start, k * c), min(stop, (k + 1) * c)
            dst = out[lo_row - start : hi_row - start]
            if offset == _MISSING:
                dst[...] = 0
                continue
            raw = span[int(offset) - lo : int(offset + nbytes) - lo]
            if self.codec is not None:
                raw = self.codec.decode(raw)
            chunk = np.frombuffer(raw, self.dtype).reshape((c,) + self.row_shape)[lo_row - k * c : hi_row - k * c]
            dst[...] = chunk.transpose(0, 3, 1, 2) if channels_first else chunk

    def rows(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start,) + self.row_shape, self.dtype)
        self.read_into(start, stop, out)
        return out


def _direct_ok(meta: dict) -> bool:
    """True when an array's zarr.json has exactly the layout _DirectArray reads."""
    try:
        (codec,) = meta["codecs"]
        conf = codec["configuration"]
        inner = [c["name"] for c in conf["codecs"]]
        endian = conf["codecs"][0].get("configuration", {}).get("endian", "little")
        index = [c["name"] for c in conf["index_codecs"]]
        grid = meta["chunk_grid"]["configuration"]["chunk_shape"]
        return (
            codec["name"] == "sharding_indexed"
            and inner in (["bytes"], ["bytes", "zstd"])
            and endian == "little"
            and index == ["bytes", "crc32c"]
            and conf.get("index_location", "end") == "end"
            and grid[0] >= meta["shape"][0]
            and list(grid[1:]) == list(meta["shape"][1:])
            and meta["chunk_key_encoding"]["name"] == "default"
            and meta["fill_value"] == 0
        )
    except (KeyError, TypeError, ValueError, IndexError):
        return False


class ShardReader:
    """Node columns and patch rows of one shard, opened in the process that uses it.

    ``cache_dir``: for datasets on object storage, a local folder that keeps the blocks fetched
    (:mod:`loaders._ranges`); ignored for local datasets.
    """

    def __init__(self, dataset: Dataset, shard: int, cache_dir: str | os.PathLike | None = None) -> None:
        info = dataset.manifest.shards[shard]
        loc = dataset.location

        def source(rel: str) -> MappedFile | RemoteFile | CachedFile | None:
            """The shard file ``rel``, or None when the shard has no such file."""
            if loc.local is not None:
                path = loc.local / info.path / rel
                return MappedFile(path) if path.exists() else None
            record = info.files.get(rel)
            if record is None:
                return None
            remote = RemoteFile(loc.fs, loc.sub(f"{info.path}/{rel}"), record.bytes)
            return remote if cache_dir is None else CachedFile(remote, cache_dir, record.sha256)

        self.nodes: dict[str, np.ndarray] | None = None
        if loc.local is not None:  # local: the shard's node table once, then slices of it
            path, _ = loc.parquet_args(f"{info.path}/nodes.parquet")
            table = pq.read_table(path, columns=list(_NODE_COLUMNS))
            self.nodes = {name: table[name].to_numpy() for name in _NODE_COLUMNS}
        else:  # object storage: only the row groups a sample needs
            parquet = source("nodes.parquet")
            if parquet is None:  # not in the manifest's file list: ask the store for its size
                parquet = RemoteFile(loc.fs, loc.sub(f"{info.path}/nodes.parquet"), 0)
                parquet.size = loc.size(f"{info.path}/nodes.parquet")
            # pre_buffer: one request for a row group's column chunks instead of one per column
            self._parquet = pq.ParquetFile(RangeFile(parquet), pre_buffer=True)
            meta = self._parquet.metadata
            self._group_starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
            self._groups: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()  # the last few decoded
            self._groups_lock = threading.Lock()  # the Parquet file object has one position
        self.arrays: dict[str, object] = {}
        group_rel = f"{info.path}/patches.zarr"
        names = ["image", "mask"] if dataset.manifest.mask_dtype else ["image"]
        for name in names:
            meta_rel = f"patches.zarr/{name}/zarr.json"
            cached = source(meta_rel) if cache_dir is not None and loc.local is None else None
            raw = cached.read(0, cached.size) if cached is not None else loc.read_bytes(f"{info.path}/{meta_rel}")
            meta = json.loads(bytes(raw))
            if _direct_ok(meta):
                chunk = "/".join("0" for _ in meta["shape"])
                self.arrays[name] = _DirectArray(source(f"patches.zarr/{name}/c/{chunk}"), meta)
            else:
                self.arrays[name] = loc.zarr_group(group_rel)[name]
        self.pid = os.getpid()

    def node_rows(self, start: int, count: int) -> NodeTable:
        """The node table of rows [start, start + count) (centres derived from the boxes)."""
        return NodeTable.from_columns(self._node_columns(start, count))

    def _node_columns(self, start: int, count: int) -> dict[str, np.ndarray]:
        if self.nodes is not None:
            return {k: v[start : start + count] for k, v in self.nodes.items()}
        starts = self._group_starts
        first = int(np.searchsorted(starts, start, side="right")) - 1
        last = int(np.searchsorted(starts, start + max(count, 1) - 1, side="right")) - 1
        parts = [self._group(g) for g in range(first, last + 1)]
        skip = start - int(starts[first])
        return {
            name: np.concatenate([p[name] for p in parts])[skip : skip + count]
            if len(parts) > 1
            else parts[0][name][skip : skip + count]
            for name in _NODE_COLUMNS
        }

    def _group(self, g: int) -> dict[str, np.ndarray]:
        """Row group ``g``'s node columns; neighbouring samples usually share a group, so the last
        ``_KEEP_GROUPS`` stay decoded."""
        with self._groups_lock:
            cols = self._groups.get(g)
            if cols is None:
                table = self._parquet.read_row_group(g, columns=list(_NODE_COLUMNS))
                cols = {name: table[name].to_numpy() for name in _NODE_COLUMNS}
                self._groups[g] = cols
                while len(self._groups) > _KEEP_GROUPS:
                    self._groups.popitem(last=False)
            else:
                self._groups.move_to_end(g)
            return cols

    def rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of array ``name`` as stored."""
        array = self.arrays[name]
        if isinstance(array, _DirectArray):
            return array.rows(start, stop)
        return np.asarray(array[start:stop])

    def read_into(self, name: str, start: int, stop: int, out: np.ndarray, channels_first: bool = False) -> None:
        """Rows [start, stop) of ``name`` written into ``out``, channels moved first if asked."""
        array = self.arrays[name]
        if isinstance(array, _DirectArray):
            array.read_into(start, stop, out, channels_first)
        else:
            rows = np.asarray(array[start:stop])
            out[...] = rows.transpose(0, 3, 1, 2) if channels_first else rows
