"""Reading datasets: the manifest, per-shard tables, one sample's rows, and verification."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import CorruptShardError, DatasetNotFoundError, FormatError, SampleNotFoundError, size_problem
from .nodes import NodeTable
from .spec import MANIFEST_NAME, NODES_NAME, PATCHES_NAME, SAMPLES_NAME, Manifest, ShardInfo, parse_manifest
from .storage import Location, Place, locate

__all__ = ["Dataset", "SampleData", "check_file_bytes", "open_dataset", "parquet_table"]


@dataclass(frozen=True)
class SampleData:
    """One sample read back: its samples.parquet row (``meta``), its node table (on its canvas)
    and its patch arrays: image (N, p, p, C), mask (N, p, p) or None (volumes: (N, p, p, p, C),
    (N, p, p, p), a (D, H, W) canvas)."""

    meta: dict
    nodes: NodeTable
    image: np.ndarray
    mask: np.ndarray | None


class Dataset:
    """An apfcompile dataset opened for reading (see ``formats/FORMAT.md``)."""

    def __init__(self, path: Place | str | os.PathLike, storage_options: dict | None = None) -> None:
        self.location: Location = locate(path, storage_options)
        self.path = self.location.local if self.location.local is not None else self.location.url
        try:
            raw = self.location.read_bytes(MANIFEST_NAME)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise DatasetNotFoundError(self.location.display()) from None
        except Exception as exc:  # object storage clients raise their own kinds (credentials, endpoint)
            if self.location.local is not None and not isinstance(exc, (OSError, ValueError)):
                raise
            raise FormatError(
                f"{self.location.display()}: cannot read the dataset "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "check the URL, credentials and endpoint"
            ) from None
        self.manifest: Manifest = parse_manifest(raw, self.location.display(MANIFEST_NAME))

    @cached_property
    def samples(self) -> pa.Table:
        """All samples.parquet rows, in shard order, with a ``shard`` column (the shard's index).
        ``labelled`` is always there: for shards written before it existed, whether the row has a
        ``mask_source``."""
        tables = []
        for i, info in enumerate(self.manifest.shards):
            t = self._read_table(info, SAMPLES_NAME)
            tables.append(t.append_column("shard", pa.array(np.full(t.num_rows, i, np.int32))))
        if not tables:
            return pa.table({"sample": pa.array([], pa.int64()), "shard": pa.array([], pa.int32())})
        table = pa.concat_tables(tables, promote_options="default")  # older shards lack newer columns
        return _with_labelled(table)

    def nodes(self, shard: int) -> pa.Table:
        """The nodes.parquet table of shard ``shard``."""
        return self._read_table(self.manifest.shards[shard], NODES_NAME)

    def _read_table(self, info: ShardInfo, name: str) -> pa.Table:
        """Table ``name`` of a shard, its bytes checked first against the size and SHA-256 the
        manifest records (and each page against its CRC, in files written with page checksums)."""
        rel = f"{info.path}/{name}"
        try:
            data = self.location.read_bytes(rel)
        except FileNotFoundError:
            raise CorruptShardError(
                self.location.display(rel),
                f"missing (the manifest lists it; the shard holds {info.samples} sample(s))",
            ) from None
        except OSError as exc:
            raise CorruptShardError(self.location.display(rel), f"cannot read {name} ({exc})") from None
        check_file_bytes(self.location.display(rel), data, info.files.get(name))
        return parquet_table(data, self.location.display(rel))

    def find(self, sample: int | str) -> int:
        """Row index in :attr:`samples` of a sample id (int) or key (str; its first view)."""
        table = self.samples
        if isinstance(sample, str) and not sample.lstrip("-").isdigit():
            hits = np.flatnonzero(table["key"].to_numpy(zero_copy_only=False) == sample)
        else:
            hits = np.flatnonzero(table["sample"].to_numpy() == int(sample))
        if hits.size == 0:
            raise SampleNotFoundError(self.path, sample)
        return int(hits[0])

    def read_sample(self, sample: int | str) -> SampleData:
        """One sample's metadata, nodes and patches, by id or key."""
        row = self.find(sample)
        meta = {k: v[0] for k, v in self.samples.slice(row, 1).to_pydict().items()}
        info = self.manifest.shards[meta["shard"]]
        start, count = int(meta["offset"]), int(meta["count"])
        self._check_present(info, meta["key"])
        nodes = self.nodes(meta["shard"]).slice(start, count)
        group = self.location.zarr_group(f"{info.path}/{PATCHES_NAME}")
        try:
            image = group["image"][start : start + count]
            mask = group["mask"][start : start + count] if "mask" in group else None
        except ValueError as exc:  # zarr's crc32c codec: "Stored and computed checksum do not match"
            raise CorruptShardError(
                self.location.display(f"{info.path}/{PATCHES_NAME}"), f"sample {meta['key']!r}: {exc}"
            ) from None
        cols = {name: nodes[name].to_numpy() for name in nodes.column_names if name != "sample"}
        canvas = (meta["canvas_h"], meta["canvas_w"])
        if meta.get("canvas_d") is not None:
            canvas = (meta["canvas_d"],) + canvas
        table = NodeTable.from_columns(cols, canvas)
        return SampleData(meta, table, image, mask)

    def verify(self, progress=None) -> list[str]:
        """Every problem found (missing, extra-size or altered files; inconsistent counts): [] if
        whole. ``progress``: called with the bytes of each file once it is checked (for a bar)."""
        problems = []
        loc = self.location
        for info in self.manifest.shards:
            broken = []
            for rel, record in sorted(info.files.items()):
                name = f"{info.path}/{rel}"
                if not loc.isfile(name):
                    broken.append(f"{name}: missing")
                    continue
                size = loc.size(name)
                if size != record.bytes:
                    broken.append(f"{name}: {size_problem(size, record.bytes)}")
                    continue
                digest = _sha256(loc, name)
                if progress is not None:
                    progress(record.bytes)
                if digest != record.sha256:
                    broken.append(
                        f"{info.path}/{rel}: checksum mismatch (stored {record.sha256[:12]}..., "
                        f"computed {digest[:12]}...)"
                    )
            if broken:
                held = self._held_samples(info)
                problems += [f"{line}; {held}" for line in broken]
                continue
            try:
                samples = self._read_table(info, SAMPLES_NAME)
                nodes = self._read_table(info, NODES_NAME)
                n_image = loc.zarr_group(f"{info.path}/{PATCHES_NAME}")["image"].shape[0]
            except (FormatError, OSError, ValueError, KeyError) as exc:
                problems.append(f"{info.path}: unreadable ({exc})")
                continue
            if samples.num_rows != info.samples or nodes.num_rows != info.nodes or n_image != info.nodes:
                problems.append(
                    f"{info.path}: counts disagree (manifest {info.samples} samples / {info.nodes} "
                    f"nodes; files {samples.num_rows} / {nodes.num_rows} / {n_image})"
                )
        if not problems:
            problems += self._split_problems()
        return problems

    def _check_present(self, info: ShardInfo, key: str) -> None:
        """Raise CorruptShardError naming ``key`` unless every file the manifest lists for the
        shard is there with its size (zarr-python would read a missing chunk file as zeros)."""
        loc = self.location
        for rel, record in sorted(info.files.items()):
            name = f"{info.path}/{rel}"
            try:
                size = loc.size(name)
            except FileNotFoundError:
                raise CorruptShardError(loc.display(name), f"sample {key!r}: missing (the manifest lists it)") from None
            if size != record.bytes:
                raise CorruptShardError(loc.display(name), f"sample {key!r}: {size_problem(size, record.bytes)}")

    def _held_samples(self, info: ShardInfo) -> str:
        """Which samples a broken shard holds, for its error lines."""
        try:
            keys = self._read_table(info, SAMPLES_NAME).column("key").to_pylist()
        except (FormatError, OSError, ValueError, KeyError):
            return f"the shard holds {info.samples} sample(s), whose keys are in its unreadable {SAMPLES_NAME}"
        if len(keys) == 1:
            return f"the shard holds sample {keys[0]!r}"
        return f"the shard holds samples {keys[0]!r} .. {keys[-1]!r} ({len(keys)})" if keys else "no samples"

    def _split_problems(self) -> list[str]:
        """A split group found in two splits (a leak), and split counts that disagree with the manifest."""
        t = self.samples
        if "split" not in t.column_names or self.manifest.splits is None:
            return []
        out = []
        splits, groups = t["split"].to_pylist(), t["split_group"].to_pylist()
        seen: dict[str, str] = {}
        for g, s in zip(groups, splits):
            if seen.setdefault(g, s) != s:
                out.append(f"split group {g!r} is in two splits ({seen[g]} and {s}): samples leak between them")
                seen[g] = s
        counts: dict[str, int] = {}
        for s in splits:
            counts[s] = counts.get(s, 0) + 1
        if counts != self.manifest.splits:
            out.append(f"split counts disagree (manifest {self.manifest.splits}; samples {counts})")
        return out


def _sha256(loc: Location, rel: str) -> str:
    digest = hashlib.sha256()
    with loc.open(rel) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_dataset(path: Place | str | os.PathLike, storage_options: dict | None = None) -> Dataset:
    """Open a dataset folder or URL; raises :class:`DatasetNotFoundError` or :class:`ManifestError`."""
    return Dataset(path, storage_options)


def _with_labelled(table: pa.Table) -> pa.Table:
    """``labelled`` per sample: as stored, else (older datasets, or a null) whether it has a
    ``mask_source`` (numpy, not pyarrow.compute: that import alone is ~0.1 s of every reader)."""
    has_mask = table["mask_source"].to_numpy(zero_copy_only=False) != None  # noqa: E711 (elementwise)
    if "labelled" not in table.column_names:
        return table.append_column("labelled", pa.array(has_mask, pa.bool_()))
    stored = table["labelled"].to_numpy(zero_copy_only=False)
    labelled = np.where(stored == None, has_mask, stored).astype(bool)  # noqa: E711
    return table.set_column(table.column_names.index("labelled"), "labelled", pa.array(labelled, pa.bool_()))


def check_file_bytes(label: object, data: bytes, record) -> None:
    """Raise CorruptShardError unless ``data`` has the size and SHA-256 of ``record`` (a
    :class:`~formats.spec.FileRecord`; None: nothing recorded, nothing to check)."""
    if record is None:
        return
    if len(data) != record.bytes:
        raise CorruptShardError(label, size_problem(len(data), record.bytes))
    digest = hashlib.sha256(data).hexdigest()
    if digest != record.sha256:
        raise CorruptShardError(
            label, f"checksum mismatch (stored {record.sha256[:12]}..., computed {digest[:12]}...): altered on disk"
        )


def parquet_table(data: bytes, label: object, columns: list[str] | None = None) -> pa.Table:
    """A Parquet file's table from its bytes, page CRCs verified where written; a file pyarrow
    cannot read is a CorruptShardError naming ``label``."""
    try:
        # ParquetFile, not read_table: the latter imports pyarrow.dataset (~0.1 s of every reader).
        # One thread: pyarrow's pool threads release `data` (a Python buffer, GIL needed) after the
        # read returns, and one doing so while the interpreter exits aborts the process.
        file = pq.ParquetFile(pa.BufferReader(data), page_checksum_verification=True)
        return file.read(columns=columns, use_threads=False)
    except (OSError, pa.ArrowException, ValueError, KeyError, IndexError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CorruptShardError(label, f"not a readable Parquet file ({text})") from None
