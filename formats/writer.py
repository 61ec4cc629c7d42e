"""Writing datasets: shards built under a temporary name and renamed into place, manifest last.

A shard is written completely into ``shards/.tmp-NNNNN`` (Parquet tables, Zarr v3 arrays and
``shard.json``, the shard's own record with checksums of every file) and only then renamed to
``shards/NNNNN``; the manifest ``apf.json`` is written last, to a temporary name and renamed. A
reader opens only the shards the manifest lists, so an interrupted compile leaves nothing a
reader would open; ``shard.json`` lets ``--resume`` keep the shards that were finished. A compile
replacing a dataset writes its shards to folders the current manifest does not name
(:func:`shard_folder`), so the old dataset stays whole until the new manifest lands. Every byte
goes through :func:`put_file`, the one place a full disk can fail a write.

Everything written is a pure function of the records: no timestamps, host names or absolute
paths, sorted JSON keys, and codec choices made from the shard's own data.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import tempfile
from pathlib import Path

import google_crc32c
import numcodecs
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .nodes import NODE_COLUMNS, NODE_COLUMNS_3D
from .records import SampleRecord
from .spec import (
    MANIFEST_NAME,
    NODE_SCHEMA,
    NODE_SCHEMA_3D,
    NODES_NAME,
    PATCHES_NAME,
    SAMPLE_SCHEMA,
    SAMPLES_NAME,
    SHARD_RECORD_NAME,
    SHARDS_DIR,
    Failure,
    FileRecord,
    Manifest,
    ShardInfo,
    ShardRecord,
    manifest_bytes,
    shard_folder,
    shard_name,
)
from .storage import Location, Place, locate

__all__ = [
    "CHUNK_NODES",
    "NODE_ROW_GROUP",
    "SampleRecord",
    "commit_shard",
    "discard_staged",
    "read_shard_record",
    "put_file",
    "shard_folder",
    "shard_name",
    "stage_shard",
    "write_manifest",
    "write_shard",
]

NODE_ROW_GROUP = 1 << 16
"""Rows per Parquet row group in nodes.parquet: the unit a reader on object storage fetches."""

CHUNK_NODES = 512
"""Nodes per Zarr chunk: a sample reads only the chunks its rows touch (one file per array)."""
IMAGE_CODEC_MAX_RATIO = 0.85
"""Image patches are compressed only if that saves >= 15 % on a probe spread over the shard
(real tissue barely compresses, ~0.97; CT and microscopy often do). Masks are stored raw: zstd
shrinks them ~10x but decodes at ~0.5-1 GB/s, the loader's largest cost per labelled sample
(``benchmarks/bench_codecs.py``). Every inner chunk ends in a crc32c checksum (zarr v3's
``crc32c`` codec), checked on every read by the loader and by zarr-python alike."""
_PROBE_WINDOWS = 8
IMAGE_BLOSC = {"cname": "lz4", "clevel": 5, "shuffle": "bitshuffle", "blocksize": 0}
"""The image codec (zarr v3 ``blosc``, ``typesize`` the dtype's): LZ4 over bit-shuffled values.
On CT patches (int16) it stores 56 % of the raw bytes where zstd level 2 stored 67 %, encodes
5x faster and decodes 2.3x faster (``benchmarks/bench_codecs.py``); datasets written with zstd
images read unchanged."""
_CODEC_PROBE_BYTES = 1 << 22


def put_file(path: Path, data: bytes) -> None:
    """Write ``data`` to the local file ``path`` (created or truncated): every byte the writer
    stores on a local disk goes through here, so a failing disk (``ENOSPC``...) fails here, as an
    ``OSError`` naming ``path``, and nowhere else."""
    with open(path, "wb") as f:
        f.write(data)


def _put_files(folder: Path, files: dict[str, bytes]) -> dict[str, FileRecord]:
    """Write ``files`` (relative POSIX path -> bytes) under ``folder``; their size and SHA-256."""
    out = {}
    for rel in sorted(files):
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        put_file(path, files[rel])
        out[rel] = FileRecord(len(files[rel]), hashlib.sha256(files[rel]).hexdigest())
    return out


def _parquet_bytes(table: pa.Table, **options: object) -> bytes:
    """The Parquet file of ``table``, each page with its CRC (readers verify it)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, write_page_checksum=True, **options)
    return sink.getvalue().to_pybytes()


def _foreground_mean(ceiling: tuple[np.ndarray, np.ndarray] | None) -> float | None:
    if ceiling is None:
        return None
    classes, dice = ceiling
    fg = dice[classes != 0]
    return float(fg.mean()) if fg.size else float(dice.mean())


def _samples_table(records: list[SampleRecord], offsets: list[int]) -> pa.Table:
    rows: dict[str, list] = {f.name: [] for f in SAMPLE_SCHEMA}
    for r, offset in zip(records, offsets):
        classes, dice = r.ceiling if r.ceiling is not None else (None, None)
        values = {
            "sample": r.sample,
            "key": r.key,
            "source": r.source,
            "mask_source": r.mask_source,
            "view": r.view,
            "canvas_h": r.canvas[-2],
            "canvas_w": r.canvas[-1],
            "orig_h": r.original[-2],
            "orig_w": r.original[-1],
            "scale_y": r.scale[0],
            "scale_x": r.scale[1],
            "offset_y": r.offset[0],
            "offset_x": r.offset[1],
            "slice_axis": r.slice_axis,
            "slice_index": r.slice_index,
            "offset": offset,
            "count": len(r.image),
            "gamma": r.gamma,
            "ceiling_dice": _foreground_mean(r.ceiling),
            "ceiling_classes": None if classes is None else [int(c) for c in classes],
            "ceiling_per_class": None if dice is None else [float(x) for x in dice],
            "blur": r.blur,
            "canny_lo": r.canny[0],
            "canny_hi": r.canny[1],
            "spacing_y": None if r.spacing is None else float(r.spacing[0]),
            "spacing_x": None if r.spacing is None else float(r.spacing[1]),
            "spacing_z": None if r.spacing is None else float(r.spacing[2]),
            "labelled": r.mask is not None,
            "modality": r.modality,
            "split": r.split,
            "split_group": r.split_group,
            "canvas_d": r.canvas[0] if len(r.canvas) == 3 else None,
            "orig_d": r.original[0] if len(r.original) == 3 else None,
        }
        for k, v in values.items():
            rows[k].append(v)
    return pa.table(rows, schema=SAMPLE_SCHEMA)


def _nodes_table(records: list[SampleRecord], dims: int = 2) -> pa.Table:
    schema, names = (NODE_SCHEMA, NODE_COLUMNS) if dims == 2 else (NODE_SCHEMA_3D, NODE_COLUMNS_3D)
    if not records:
        return schema.empty_table()
    cols = {"sample": np.concatenate([np.full(len(r.image), r.sample, np.int64) for r in records])}
    for name in names:
        cols[name] = np.concatenate([np.asarray(r.nodes[name]) for r in records])
    arrays = [pa.array(cols[f.name].astype(f.type.to_pandas_dtype(), copy=False)) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def image_codec(image: np.ndarray) -> dict | None:
    """The image array's compression codec as its ``zarr.json`` entry (then crc32c), or None
    (crc32c alone): :data:`IMAGE_BLOSC` where a probe of ``_PROBE_WINDOWS`` windows spread evenly
    over the array (4 MiB in all) compresses to <= :data:`IMAGE_CODEC_MAX_RATIO`."""
    flat = np.ascontiguousarray(image).reshape(-1)
    if flat.size == 0:
        return None
    entry = {"name": "blosc", "configuration": {"typesize": flat.dtype.itemsize, **IMAGE_BLOSC}}
    window = min(flat.size, _CODEC_PROBE_BYTES // _PROBE_WINDOWS // flat.dtype.itemsize)
    starts = np.linspace(0, flat.size - window, _PROBE_WINDOWS).astype(np.int64)
    probe = [flat[s : s + window] for s in np.unique(starts)]
    codec = _encoder(entry)
    ratio = sum(len(codec.encode(b)) for b in probe) / sum(b.nbytes for b in probe)
    return entry if ratio <= IMAGE_CODEC_MAX_RATIO else None


def _encoder(entry: dict | None) -> numcodecs.abc.Codec | None:
    """The numcodecs codec of a ``zarr.json`` compression entry (``blosc`` or ``zstd``), or None."""
    if entry is None:
        return None
    conf = entry["configuration"]
    if entry["name"] == "zstd":
        return numcodecs.Zstd(level=conf["level"])
    shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[conf["shuffle"]]  # numcodecs.Blosc's
    return numcodecs.Blosc(conf["cname"], conf["clevel"], shuffle, conf["blocksize"])


def _array_files(name: str, data: np.ndarray, codec: dict | None) -> dict[str, bytes]:
    """Array ``name`` of the patches group: its ``zarr.json`` (:func:`_array_json`) and its one shard
    file (:func:`_shard_bytes`), as relative path -> bytes: the bytes zarr-python writes for the
    same array, without zarr-python (its import alone is ~0.2 s of every compile process, and its
    per-chunk machinery cost more than the encoding itself)."""
    n = max(int(data.shape[0]), 1)
    chunk = min(CHUNK_NODES, n)
    per_file = -(-n // chunk) * chunk  # one storage file per array: the sharding codec's shard
    files = {f"{name}/zarr.json": _array_json(data.shape, data.dtype, chunk, per_file, codec)}
    if data.size:
        files[f"{name}/c/" + "/".join("0" for _ in data.shape)] = _shard_bytes(data, chunk, codec)
    return files


def _json_bytes(meta: dict) -> bytes:
    """A ``zarr.json`` document as zarr-python writes it: 2-space indent, no final newline."""
    return json.dumps(meta, indent=2).encode()


GROUP_JSON = _json_bytes({"attributes": {}, "zarr_format": 3, "node_type": "group"})
"""The patches group's ``zarr.json``."""


def _array_json(shape: tuple[int, ...], dtype: np.dtype, chunk: int, per_file: int, codec: dict | None) -> bytes:
    """Zarr v3 metadata of a patch array of ``shape`` in one shard of ``per_file`` rows, inner
    chunks of ``chunk`` rows: little-endian bytes [-> ``codec``] -> crc32c per chunk, the shard
    index last with its crc32c, fill value 0. Keys, their order and the 2-space indent are
    zarr-python's (3.1), so a dataset's bytes do not depend on which zarr-python is installed."""
    dtype = np.dtype(dtype)
    rest = [int(d) for d in shape[1:]]
    little = {"name": "bytes", "configuration": {"endian": "little"}}
    raw = {"name": "bytes"} if dtype.itemsize == 1 else little  # zarr omits the endianness of bytes
    inner = [raw] + ([codec] if codec is not None else [])
    meta = {
        "shape": [int(d) for d in shape],
        "data_type": dtype.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [per_file, *rest]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0.0 if dtype.kind == "f" else 0,
        "codecs": [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": [chunk, *rest],
                    "codecs": [*inner, {"name": "crc32c"}],
                    "index_codecs": [little, {"name": "crc32c"}],
                    "index_location": "end",
                },
            }
        ],
        "attributes": {},
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }
    return _json_bytes(meta)


def _shard_bytes(data: np.ndarray, chunk: int, codec: dict | None) -> bytes:
    """Zarr v3 ``sharding_indexed`` bytes of ``data`` (rows along axis 0) in inner chunks of
    ``chunk`` rows: each chunk (the last one padded with the fill value 0 to full size, as zarr
    stores edge chunks) as little-endian bytes [-> ``codec``] -> its crc32c appended; then the
    index, (offset, nbytes) uint64 little-endian per chunk, and the index's crc32c (index at the
    end, every chunk stored)."""
    rows = np.ascontiguousarray(data, data.dtype.newbyteorder("<"))
    encoder = _encoder(codec)
    n_inner = -(-len(rows) // chunk)
    parts, index, offset = [], np.empty((n_inner, 2), "<u8"), 0
    for k in range(n_inner):
        block = rows[k * chunk : (k + 1) * chunk]
        if len(block) < chunk:
            block = np.concatenate([block, np.zeros((chunk - len(block),) + block.shape[1:], block.dtype)])
        raw = encoder.encode(block) if encoder is not None else block.tobytes()
        raw = bytes(raw) + google_crc32c.value(raw).to_bytes(4, "little")
        index[k] = offset, len(raw)
        offset += len(raw)
        parts.append(raw)
    tail = index.tobytes()
    parts.append(tail + google_crc32c.value(tail).to_bytes(4, "little"))
    return b"".join(parts)


def write_shard(
    dataset: Place | str | os.PathLike,
    index: int,
    records: list[SampleRecord],
    *,
    patch_size: int,
    channels: int | None,
    image_dtype: str | None,
    mask_dtype: str | None,
    fingerprint: str,
    failures: list[Failure] = (),
    mask_fill: int = 0,
    storage_options: dict | None = None,
    statistics: dict[str, dict[str, dict]] | None = None,
    dims: int = 2,
    name: str | None = None,
) -> ShardInfo:
    """Write shard ``index`` of ``dataset`` from ``records`` (in order) and commit it by rename.

    ``fingerprint`` identifies the compile's data options and plan; it is stored in ``shard.json``
    (a :class:`~formats.spec.ShardRecord`, with the shard's failures and its patches' dtype and
    channels) so that a resumed compile keeps only shards made with the same options. Unlabelled
    samples in a labelled dataset get mask rows of ``mask_fill``. ``statistics``: the partial
    statistics of the inputs that end in this shard, kept in ``shard.json`` for a resumed compile.
    ``image_dtype`` and ``channels`` are the dataset's; None while no sample of the compile has
    given them (the shard's record then says null, and its empty image array is uint8 x 1).
    ``dims``: 3 for volumes (patches p x p x p, node tables with z columns). ``name``: the shard's
    folder under ``shards/`` (default :func:`shard_name`; a compile replacing a dataset writes
    beside the shards the old manifest names, see :func:`shard_folder`). Returns the shard's info.
    """
    loc = locate(dataset, storage_options)
    name = name or shard_name(index)
    if loc.local is None:  # object storage: build locally, then upload (shard.json last)
        with tempfile.TemporaryDirectory(prefix="apf-shard-") as staging:
            info = write_shard(
                staging,
                index,
                records,
                patch_size=patch_size,
                channels=channels,
                image_dtype=image_dtype,
                mask_dtype=mask_dtype,
                fingerprint=fingerprint,
                failures=failures,
                mask_fill=mask_fill,
                statistics=statistics,
                dims=dims,
                name=name,
            )
            _upload(Path(staging) / SHARDS_DIR / name, loc, f"{SHARDS_DIR}/{name}")
        return info
    info = stage_shard(
        loc.local,
        index,
        records,
        patch_size=patch_size,
        channels=channels,
        image_dtype=image_dtype,
        mask_dtype=mask_dtype,
        mask_fill=mask_fill,
        dims=dims,
        name=name,
    )
    commit_shard(
        loc.local,
        index,
        info,
        fingerprint=fingerprint,
        failures=failures,
        image_dtype=image_dtype,
        channels=channels,
        statistics=statistics,
        name=name,
    )
    return info


def _tmp_of(dataset: Path, name: str) -> Path:
    return dataset / SHARDS_DIR / f".tmp-{name}"


def stage_shard(
    dataset: Path,
    index: int,
    records: list[SampleRecord],
    *,
    patch_size: int,
    channels: int | None,
    image_dtype: str | None,
    mask_dtype: str | None,
    mask_fill: int = 0,
    dims: int = 2,
    name: str | None = None,
) -> ShardInfo:
    """The first half of :func:`write_shard` on a local dataset: every data file of shard
    ``index`` written into its temporary folder (``shards/.tmp-NAME``), nothing committed; a
    reader sees nothing until :func:`commit_shard`. Any earlier temporary folder of the shard is
    removed first. A worker can stage a shard while others compute. Returns the shard's info."""
    name = name or shard_name(index)
    shards = Path(dataset) / SHARDS_DIR
    shards.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_of(Path(dataset), name)
    if tmp.exists():
        shutil.rmtree(tmp)  # left by an interrupted run
    tmp.mkdir()
    offsets = list(np.cumsum([0] + [len(r.image) for r in records[:-1]]).tolist()) if records else []
    files = {
        NODES_NAME: _parquet_bytes(_nodes_table(records, dims), compression="zstd", row_group_size=NODE_ROW_GROUP),
        SAMPLES_NAME: _parquet_bytes(_samples_table(records, offsets), compression="zstd"),
    }
    cell = (patch_size,) * dims  # a patch: p x p, or p x p x p for volumes
    empty_image = np.zeros((0, *cell, channels or 1), image_dtype or "uint8")
    image = np.concatenate([r.image for r in records]) if records else empty_image
    arrays = {"zarr.json": GROUP_JSON, **_array_files("image", image, image_codec(image))}
    if mask_dtype is not None:
        empty_mask = np.zeros((0, *cell), mask_dtype)
        # An unlabelled sample in a labelled dataset gets mask rows of `mask_fill` (its
        # samples.parquet row has no mask_source).
        masks = [r.mask if r.mask is not None else np.full(r.image.shape[:-1], mask_fill, mask_dtype) for r in records]
        mask = np.concatenate(masks) if records else empty_mask
        arrays.update(_array_files("mask", mask.astype(mask_dtype, copy=False), None))
    files.update((f"{PATCHES_NAME}/{rel}", data) for rel, data in arrays.items())
    records_ = _put_files(tmp, files)
    return ShardInfo(
        path=f"{SHARDS_DIR}/{name}",
        samples=len(records),
        nodes=int(image.shape[0]),
        bytes=sum(f.bytes for f in records_.values()),
        files=records_,
    )


def commit_shard(
    dataset: Path,
    index: int,
    info: ShardInfo,
    *,
    fingerprint: str,
    failures: list[Failure] = (),
    image_dtype: str | None,
    channels: int | None,
    statistics: dict[str, dict[str, dict]] | None = None,
    name: str | None = None,
) -> None:
    """The second half of :func:`write_shard`: the shard's ``shard.json`` into its staged folder,
    then the rename that commits it (replacing a committed shard of the same name, which no
    manifest names: see :func:`shard_folder`)."""
    name = name or shard_name(index)
    tmp = _tmp_of(Path(dataset), name)
    final = Path(dataset) / SHARDS_DIR / name
    record = ShardRecord(
        fingerprint, info, tuple(failures), image_dtype, channels if image_dtype else None, dict(statistics or {})
    )
    put_file(tmp / SHARD_RECORD_NAME, record.to_bytes())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def discard_staged(dataset: Path, index: int, name: str | None = None) -> None:
    """Remove shard ``index``'s staged folder, if any (its input failed after all)."""
    shutil.rmtree(_tmp_of(Path(dataset), name or shard_name(index)), ignore_errors=True)


def _upload(folder: Path, loc: Location, rel: str) -> None:
    """Copy a finished local shard folder to ``loc``/``rel``; its shard.json goes last."""
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.name == SHARD_RECORD_NAME)
    for path in files:
        target = loc.sub(f"{rel}/{path.relative_to(folder).as_posix()}")
        loc.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        loc.fs.put_file(str(path), target)


def read_shard_record(
    dataset: Place | str | os.PathLike, index: int, storage_options: dict | None = None, name: str | None = None
) -> ShardRecord | None:
    """Shard ``index``'s ``shard.json`` (in folder ``name``, default :func:`shard_name`), or None
    if absent or unreadable (a shard to compile again)."""
    loc = locate(dataset, storage_options)
    rel = f"{SHARDS_DIR}/{name or shard_name(index)}/{SHARD_RECORD_NAME}"
    try:
        return ShardRecord.from_dict(json.loads(loc.read_bytes(rel)), loc.display(rel))
    except (OSError, ValueError):
        return None


def write_manifest(dataset: Place | str | os.PathLike, manifest: Manifest, storage_options: dict | None = None) -> str:
    """Write ``apf.json`` atomically (temporary name then rename; one PUT on object storage)."""
    loc = locate(dataset, storage_options)
    data = manifest_bytes(manifest)
    if loc.local is None:
        loc.fs.pipe_file(loc.sub(MANIFEST_NAME), data)
        return loc.display(MANIFEST_NAME)
    tmp = loc.local / ".apf.json.tmp"
    put_file(tmp, data)
    os.replace(tmp, loc.local / MANIFEST_NAME)
    return str(loc.local / MANIFEST_NAME)
