"""Reading rows of a shard fast: node columns from Parquet, patch rows straight from Zarr shards.

The patch arrays are standard Zarr v3 (sharding codec, inner chunks of ``bytes`` [+ ``blosc``
or ``zstd``] [+ ``crc32c``], index at the end with crc32c). For local datasets whose arrays have exactly that
layout, rows are read straight from the memory-mapped shard file: the shard index is parsed once,
and a sample costs one copy per inner chunk it touches — one copy in all where its chunks are
stored uncompressed back to back — plus a decode where a chunk is compressed, and a crc32c
check where the chunk carries one, as every chunk written since checksums were added does (a
mismatch, or a chunk cut short, is a :class:`~formats.errors.CorruptShardError` naming the file
and the rows).
zarr-python's per-call machinery costs more than the read itself at these sizes. On object
storage the same layout is read with ranged requests: the shard index once, then one request per
sample spanning the inner chunks it touches (through the local block cache when ``cache_dir`` is
set). Arrays of any other layout are read through zarr-python. All give identical arrays.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import OrderedDict

import google_crc32c
import numcodecs
import numpy as np
import pyarrow.parquet as pq

from formats import Dataset
from formats.errors import CorruptShardError, size_problem
from formats.nodes import NodeTable
from formats.reader import check_file_bytes, parquet_table
from formats.sequence import ROW_DTYPES

from ._ranges import CachedFile, MappedFile, RangeFile, RemoteFile

__all__ = ["ShardReader", "row_fields_of"]

_NODE_COLUMNS = ("x1", "x2", "y1", "y2", "size", "depth", "edges")
_MISSING = np.uint64(2**64 - 1)
_KEEP_GROUPS = 2
_DECODERS = {"zstd": numcodecs.Zstd, "blosc": numcodecs.Blosc}
"""The compressors the direct path decodes (each reads its own parameters from the chunk)."""


class _DirectArray:
    """Rows of one sharded Zarr v3 array read from its single shard file (see module docstring).

    ``source``: the shard file's bytes (local map, remote ranges, cached ranges), or None when
    zarr wrote no file because every chunk held the fill value. ``label``: the file as errors name it.
    """

    def __init__(
        self, source: MappedFile | RemoteFile | CachedFile | None, meta: dict, label: str = "", verify: bool = True
    ) -> None:
        codec = meta["codecs"][0]["configuration"]
        names = [c["name"] for c in codec["codecs"]]
        self.dtype = np.dtype(meta["data_type"])
        self.shape = tuple(meta["shape"])
        self.chunk_rows = int(codec["chunk_shape"][0])
        self.row_shape = tuple(codec["chunk_shape"][1:])
        compressor = next((n for n in names if n in _DECODERS), None)
        self.crc = "crc32c" in names
        self.verify = verify
        self.label = label
        n_inner = -(-int(meta["chunk_grid"]["configuration"]["chunk_shape"][0]) // self.chunk_rows)
        self.source = source
        self.empty = source is None
        if self.empty:
            return
        index_bytes = 16 * n_inner
        if source.size < index_bytes + 4:
            raise CorruptShardError(label, f"{source.size} bytes, too short for its shard index ({index_bytes + 4})")
        tail = bytes(source.read(source.size - index_bytes - 4, index_bytes + 4))
        if google_crc32c.value(tail[:-4]) != int.from_bytes(tail[-4:], "little"):
            raise CorruptShardError(label, "its shard index fails its crc32c checksum (truncated or altered)")
        self.index = np.frombuffer(tail[:-4], np.uint64).reshape(n_inner, 2).copy()
        stored = self.index[:, 0] != _MISSING
        if stored.any() and int((self.index[stored, 0] + self.index[stored, 1]).max()) > source.size - index_bytes - 4:
            raise CorruptShardError(label, "its shard index points past the end of the file (truncated)")
        self.codec = _DECODERS[compressor]() if compressor else None
        self.stride = (
            self.chunk_rows * int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize + 4 * self.crc
        )
        """Bytes of one stored inner chunk when it is not compressed (rows [+ crc32c])."""
        self._not_whole, self._not_following = back_to_back_counts(self.index, self.stride, self.codec is None)
        self._offsets = self.index[:, 0].tolist()

    def read_into(self, start: int, stop: int, out: np.ndarray) -> None:
        """Rows [start, stop) into ``out`` (n, *row_shape): one copy, each chunk's crc32c checked."""
        if self.empty or stop <= start:
            out[...] = 0
            return
        c = self.chunk_rows
        first, last = start // c, (stop - 1) // c
        if self._uniform(first, last):  # one read of the chunks, a strided view of it
            span = self.source.read(self._offsets[first], (last + 1 - first) * self.stride)
            self._copy_uniform(np.frombuffer(span, np.uint8), first, start, stop, out)
            return
        entries = self.index[first : last + 1]
        stored = entries[:, 0] != _MISSING
        if stored.any():  # one read spanning the chunks (zarr lays them out in order)
            lo = int(entries[stored, 0].min())
            span = self.source.read(lo, int((entries[stored, 0] + entries[stored, 1]).max()) - lo)
            span = np.frombuffer(span, np.uint8)
        for k in range(first, last + 1):
            offset, nbytes = self.index[k]
            lo_row, hi_row = max(start, k * c), min(stop, (k + 1) * c)
            dst = out[lo_row - start : hi_row - start]
            if offset == _MISSING:
                dst[...] = 0
                continue
            raw = span[int(offset) - lo : int(offset + nbytes) - lo]
            if self.crc:
                raw = self._checked(raw, k) if self.verify else raw[:-4]
            if self.codec is not None:
                raw = self.codec.decode(raw)
            chunk = np.frombuffer(raw, self.dtype).reshape((c,) + self.row_shape)
            dst[...] = chunk[lo_row - k * c : hi_row - k * c]

    def _uniform(self, first: int, last: int) -> bool:
        """Whether chunks ``first..last`` are stored back to back, each the full raw chunk [+ its
        crc32c]: then their bytes are an (n, :attr:`stride`) byte array."""
        return back_to_back(self._not_whole, self._not_following, first, last)

    def _copy_uniform(self, span: np.ndarray, first: int, start: int, stop: int, out: np.ndarray) -> None:
        """:meth:`read_into` for uncompressed chunks stored back to back, every chunk's crc32c
        checked. Rows that start and end on chunk boundaries (a sequence of L rows, L a multiple
        of the chunk's) into a contiguous ``out`` are one copy from a strided view of the span,
        then checked in ``out`` itself (the bytes of a chunk are its rows, and they are still in
        the cache: checking the source first read every byte from memory twice); other reads are
        checked at the source, then copied chunk by chunk. Either way nothing is returned unchecked."""
        c = self.chunk_rows
        block = span.reshape(-1, self.stride)
        payload = block[:, :-4] if self.crc else block
        chunks = payload.view(self.dtype).reshape((len(block), c) + self.row_shape)
        skip, n = start - first * c, stop - start
        check = self.crc and self.verify
        if (
            skip == 0
            and n == len(block) * c
            and out.flags.c_contiguous
            and out.dtype == self.dtype  # (a uint16 mask is read into int32: other bytes)
            and (self.dtype.itemsize == 1 or sys.byteorder == "little")
        ):
            out.reshape(chunks.shape)[...] = chunks
            if check:
                self._verify(out.reshape(len(block), -1).view(np.uint8), block, first)
            return
        if check:
            self._verify(payload, block, first)
        pos = 0
        for i in range(len(chunks)):
            lo, hi = max(skip, i * c), min(skip + n, (i + 1) * c)
            if hi > lo:
                out[pos : pos + hi - lo] = chunks[i, lo - i * c : hi - i * c]
                pos += hi - lo

    def _verify(self, rows: np.ndarray, block: np.ndarray, first: int) -> None:
        """Raise CorruptShardError unless the crc32c of each ``rows[i]`` (chunk ``first + i``'s
        bytes, wherever they now are) matches the one stored after it in ``block[i]``."""
        stored = np.ascontiguousarray(block[:, -4:]).view("<u4").ravel().tolist()
        computed = [google_crc32c.value(rows[i]) for i in range(len(rows))]
        if computed != stored:
            i = next(i for i, (a, b) in enumerate(zip(computed, stored)) if a != b)
            self._checked(block[i], first + i)  # the stored chunk itself fails: raises, naming its rows
            raise CorruptShardError(self.label, f"rows {(first + i) * self.chunk_rows}.. changed while read")

    def _checked(self, raw: np.ndarray, k: int) -> np.ndarray:
        """An inner chunk's bytes without its crc32c trailer, once the trailer matches them."""
        stored = int.from_bytes(raw[-4:].tobytes(), "little") if raw.size >= 4 else None
        computed = google_crc32c.value(raw[:-4]) if raw.size >= 4 else None
        if stored is None or stored != computed:
            c = self.chunk_rows
            raise CorruptShardError(
                self.label,
                f"rows {k * c}..{(k + 1) * c - 1} fail their crc32c checksum "
                f"(stored {stored if stored is None else f'{stored:08x}'}, computed "
                f"{computed if computed is None else f'{computed:08x}'})",
            )
        return raw[:-4]

    def rows(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start,) + self.row_shape, self.dtype)
        self.read_into(start, stop, out)
        return out


def back_to_back_counts(index: np.ndarray, stride: int, raw: bool) -> tuple[list[int], list[int]]:
    """Prefix counts over a shard index (n, 2) of (offset, nbytes) rows: chunks not stored whole
    (missing, compressed — every chunk when not ``raw`` — or not ``stride`` bytes), and chunks not
    starting where the one before ends. :func:`back_to_back` reads them in O(1)."""
    whole = (index[:, 1] == stride) & (index[:, 0] != _MISSING) & raw
    follows = np.zeros(len(index), bool)
    follows[1:] = index[1:, 0] == index[:-1, 0] + np.uint64(stride)
    return np.concatenate([[0], np.cumsum(~whole)]).tolist(), np.concatenate([[0], np.cumsum(~follows)]).tolist()


def back_to_back(not_whole: list[int], not_following: list[int], first: int, last: int) -> bool:
    """Whether chunks ``first..last`` are each stored whole, one right after the other."""
    return not_whole[last + 1] == not_whole[first] and not_following[last + 1] == not_following[first + 1]


def row_fields_of(nodes: NodeTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``size``, ``center``, ``box`` of ``nodes`` in the batch's dtypes (see ``row_fields``)."""
    return (
        nodes.size.astype(ROW_DTYPES["size"], copy=False),
        nodes.center.astype(ROW_DTYPES["center"]),
        nodes.box.astype(ROW_DTYPES["box"], copy=False),
    )


def _check_size(path, expected: int) -> None:
    """Raise CorruptShardError unless the local file ``path`` exists with ``expected`` bytes."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise CorruptShardError(path, f"missing (the manifest lists it, {expected} bytes)") from None
    if size != expected:
        raise CorruptShardError(path, size_problem(size, expected))


def _plain_inner(names: list[str]) -> bool:
    """``bytes``, then at most one compressor the direct path decodes, then optionally ``crc32c``."""
    rest = names[1:-1] if names[-1:] == ["crc32c"] else names[1:]
    return names[:1] == ["bytes"] and len(rest) <= 1 and all(n in _DECODERS for n in rest)


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
            and _plain_inner(inner)
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
    (:mod:`loaders._ranges`); ignored for local datasets. ``verify_checksums``: check each chunk's
    crc32c where it has one (arrays read through zarr-python always check).
    """

    def __init__(
        self, dataset: Dataset, shard: int, cache_dir: str | os.PathLike | None = None, verify_checksums: bool = True
    ) -> None:
        info = dataset.manifest.shards[shard]
        loc = dataset.location
        try:
            self._open(dataset, info, loc, cache_dir, verify_checksums)
        except CorruptShardError:
            raise
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:  # pyarrow's and json's errors included
            text = str(exc).splitlines()[0] if str(exc) else ""
            raise CorruptShardError(loc.display(info.path), f"cannot be read ({type(exc).__name__}: {text})") from None
        self.pid = os.getpid()

    def _open(self, dataset: Dataset, info, loc, cache_dir, verify_checksums: bool) -> None:
        def source(rel: str) -> MappedFile | RemoteFile | CachedFile | None:
            """The shard file ``rel``, or None when the shard has no such file (zarr writes no
            chunk file for an array of fill values); a file the manifest lists must be there,
            whole: a local one is checked against the manifest's size here (a remote one's reads
            are checked against the sizes and checksums they carry)."""
            record = info.files.get(rel)
            if loc.local is not None:
                path = loc.local / info.path / rel
                if record is None:
                    return MappedFile(path) if path.exists() else None
                _check_size(path, record.bytes)
                return MappedFile(path)
            if record is None:
                return None
            remote = RemoteFile(loc.fs, loc.sub(f"{info.path}/{rel}"), record.bytes)
            return remote if cache_dir is None else CachedFile(remote, cache_dir, record.sha256)

        self.columns = _NODE_COLUMNS + (("z1", "z2") if dataset.manifest.dims == 3 else ())
        self.nodes: dict[str, np.ndarray] | None = None
        self._fields: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        if loc.local is not None:  # local: the shard's node table once (checked whole), then slices of it
            record = info.files.get("nodes.parquet")
            path = loc.local / info.path / "nodes.parquet"
            if record is not None:
                _check_size(path, record.bytes)
            data = path.read_bytes()
            if verify_checksums:
                check_file_bytes(path, data, record)
            table = parquet_table(data, path, list(self.columns))
            self.nodes = {name: table[name].to_numpy() for name in self.columns}
            self._fields = row_fields_of(NodeTable.from_columns(self.nodes))
            box = self._fields[2]  # the node columns become views of it: only the centres cost memory
            for j, name in enumerate(("x1", "x2", "y1", "y2", "z1", "z2")[: box.shape[1]]):
                self.nodes[name] = box[:, j]
        else:  # object storage: only the row groups a sample needs
            parquet = source("nodes.parquet")
            if parquet is None:  # not in the manifest's file list: ask the store for its size
                parquet = RemoteFile(loc.fs, loc.sub(f"{info.path}/nodes.parquet"), 0)
                parquet.size = loc.size(f"{info.path}/nodes.parquet")
            # pre_buffer: one request for a row group's column chunks instead of one per column
            self._nodes_label = loc.display(f"{info.path}/nodes.parquet")
            self._parquet = pq.ParquetFile(RangeFile(parquet), pre_buffer=True, page_checksum_verification=True)
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
            if verify_checksums:  # a few hundred bytes that say how to read all the others
                check_file_bytes(loc.display(f"{info.path}/{meta_rel}"), bytes(raw), info.files.get(meta_rel))
            meta = json.loads(bytes(raw))
            if _direct_ok(meta):
                chunk = "/".join("0" for _ in meta["shape"])
                rel = f"patches.zarr/{name}/c/{chunk}"
                self.arrays[name] = _DirectArray(source(rel), meta, loc.display(f"{info.path}/{rel}"), verify_checksums)
            else:
                self.arrays[name] = loc.zarr_group(group_rel)[name]

    def node_rows(self, start: int, count: int) -> NodeTable:
        """The node table of rows [start, start + count) (centres derived from the boxes)."""
        return NodeTable.from_columns(self._node_columns(start, count))

    def row_fields(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``size`` (n,), ``center`` (n, dims) and ``box`` (n, 2 * dims) of rows [start, start +
        count) in the batch's dtypes (:data:`formats.sequence.ROW_DTYPES`). A local shard's are
        made for all its rows when it opens, so a sample costs three slices."""
        if self._fields is not None:
            return tuple(a[start : start + count] for a in self._fields)
        return row_fields_of(self.node_rows(start, count))

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
            for name in self.columns
        }

    def _group(self, g: int) -> dict[str, np.ndarray]:
        """Row group ``g``'s node columns; neighbouring samples usually share a group, so the last
        ``_KEEP_GROUPS`` stay decoded."""
        with self._groups_lock:
            cols = self._groups.get(g)
            if cols is None:
                try:
                    # one thread, as formats.reader.parquet_table (the file is a Python object)
                    table = self._parquet.read_row_group(g, columns=list(self.columns), use_threads=False)
                except (OSError, ValueError) as exc:  # pyarrow's: a page failing its CRC, bad metadata
                    raise CorruptShardError(self._nodes_label, f"row group {g}: {str(exc).splitlines()[0]}") from None
                cols = {name: table[name].to_numpy() for name in self.columns}
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
        return self._zarr_rows(name, start, stop)

    def read_into(self, name: str, start: int, stop: int, out: np.ndarray) -> None:
        """Rows [start, stop) of ``name`` written into ``out`` (n, *row_shape)."""
        array = self.arrays[name]
        if isinstance(array, _DirectArray):
            array.read_into(start, stop, out)
        else:
            out[...] = self._zarr_rows(name, start, stop)

    def _zarr_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        try:
            return np.asarray(self.arrays[name][start:stop])
        except ValueError as exc:  # zarr's crc32c codec: "Stored and computed checksum do not match"
            raise CorruptShardError(self.arrays[name].store_path, f"rows {start}..{stop - 1}: {exc}") from None
