"""The apfcompile dataset format, version 1, as typed code.

The prose spec is ``formats/FORMAT.md``; this module says the same thing in code: names, the
manifest's fields (frozen dataclasses with ``from_dict`` / ``to_dict``; unknown keys rejected),
the Parquet schemas, and the rule that every path in a manifest is relative and stays inside the
dataset.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from .errors import ManifestError, UnsafePathError, UnsupportedVersionError

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "NODE_SCHEMA",
    "NODE_SCHEMA_3D",
    "SAMPLE_SCHEMA",
    "SHARD_RECORD_NAME",
    "ClassInfo",
    "Failure",
    "FileRecord",
    "Manifest",
    "ShardInfo",
    "ShardRecord",
    "View",
    "check_relative_path",
    "manifest_bytes",
    "parse_manifest",
    "shard_folder",
    "shard_name",
]

FORMAT_NAME = "apfcompile"
FORMAT_VERSION = 1
MANIFEST_NAME = "apf.json"
SHARD_RECORD_NAME = "shard.json"
SHARDS_DIR = "shards"
PATCHES_NAME = "patches.zarr"
NODES_NAME = "nodes.parquet"
SAMPLES_NAME = "samples.parquet"


def shard_name(index: int) -> str:
    """The folder name of shard ``index``: five digits, zero-padded."""
    return f"{index:05d}"


def shard_folder(index: int, taken: set[str] = frozenset()) -> str:
    """The folder name for shard ``index`` that no path in ``taken`` (the ``shards/...`` paths an
    existing manifest names) uses: ``NNNNN``, or ``NNNNN.1`` when ``NNNNN`` is taken. A compile
    that replaces a dataset (``overwrite``, or ``resume`` with other options) thus writes beside
    the old shards, and the old dataset stays whole and readable until the new manifest lands;
    the same old manifest gives the same names, so a resumed replacement finds its own shards."""
    name = shard_name(index)
    return f"{name}.1" if f"{SHARDS_DIR}/{name}" in taken else name


def _schemas() -> dict:
    """The Parquet schemas, built on first use (so that reading the spec needs no pyarrow import):

    - ``NODE_SCHEMA``: one row per node (leaf); row i of a shard's nodes.parquet <-> row i of its
      Zarr arrays;
    - ``SAMPLE_SCHEMA``: one row per sample, the (input, slice, view) triple compiled into one
      sequence.
    """
    import pyarrow as pa

    NODE_SCHEMA = pa.schema(
        [
            ("sample", pa.int64()),
            ("x1", pa.int32()),
            ("x2", pa.int32()),
            ("y1", pa.int32()),
            ("y2", pa.int32()),
            ("size", pa.int32()),
            ("cx", pa.float32()),
            ("cy", pa.float32()),
            ("depth", pa.int16()),
            ("edges", pa.int64()),
        ]
    )
    NODE_SCHEMA_3D = pa.schema(
        [
            ("sample", pa.int64()),
            ("x1", pa.int32()),
            ("x2", pa.int32()),
            ("y1", pa.int32()),
            ("y2", pa.int32()),
            ("z1", pa.int32()),
            ("z2", pa.int32()),
            ("size", pa.int32()),
            ("cx", pa.float32()),
            ("cy", pa.float32()),
            ("cz", pa.float32()),
            ("depth", pa.int16()),
            ("edges", pa.int64()),
        ]
    )
    SAMPLE_SCHEMA = pa.schema(
        [
            ("sample", pa.int64()),
            ("key", pa.string()),
            ("source", pa.string()),
            ("mask_source", pa.string()),
            ("view", pa.int16()),
            ("canvas_h", pa.int32()),
            ("canvas_w", pa.int32()),
            ("orig_h", pa.int32()),
            ("orig_w", pa.int32()),
            ("scale_y", pa.float64()),
            ("scale_x", pa.float64()),
            ("offset_y", pa.float64()),
            ("offset_x", pa.float64()),
            ("slice_axis", pa.int8()),
            ("slice_index", pa.int32()),
            ("offset", pa.int64()),
            ("count", pa.int32()),
            ("gamma", pa.float64()),
            ("ceiling_dice", pa.float64()),
            ("ceiling_classes", pa.list_(pa.int64())),
            ("ceiling_per_class", pa.list_(pa.float64())),
            ("blur", pa.int16()),
            ("canny_lo", pa.float32()),
            ("canny_hi", pa.float32()),
            ("spacing_y", pa.float64()),
            ("spacing_x", pa.float64()),
            ("spacing_z", pa.float64()),
            ("labelled", pa.bool_()),
            ("modality", pa.string()),
            ("split", pa.string()),
            ("split_group", pa.string()),
            ("canvas_d", pa.int32()),
            ("orig_d", pa.int32()),
        ]
    )
    return {"NODE_SCHEMA": NODE_SCHEMA, "NODE_SCHEMA_3D": NODE_SCHEMA_3D, "SAMPLE_SCHEMA": SAMPLE_SCHEMA}


def __getattr__(name: str) -> object:
    if name in ("NODE_SCHEMA", "NODE_SCHEMA_3D", "SAMPLE_SCHEMA"):
        globals().update(_schemas())
        return globals()[name]
    raise AttributeError(f"module 'formats.spec' has no attribute {name!r}")


def _fail(path: object, problem: str) -> ManifestError:
    return ManifestError(path, problem)


def _expect(d: dict, key: str, kind: type | tuple[type, ...], path: object, where: str = "") -> Any:
    if key not in d:
        raise _fail(path, f"missing field {where}{key!r}")
    value = d[key]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise _fail(path, f"field {where}{key!r}: expected {kind}, found a boolean")
    if not isinstance(value, kind):
        raise _fail(
            path, f"field {where}{key!r}: expected {getattr(kind, '__name__', kind)}, found {type(value).__name__}"
        )
    return value


def _only(d: dict, allowed: set[str], path: object, where: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise _fail(path, f"unknown field(s) {extra} in {where or 'manifest'}")


def check_relative_path(value: str, path: object) -> str:
    """``value`` if it is a normalised relative POSIX path inside the dataset, else raise."""
    if not isinstance(value, str) or not value:
        raise UnsafePathError(path, str(value))
    norm = posixpath.normpath(value)
    if (
        value.startswith(("/", "\\"))
        or "\\" in value
        or ":" in value
        or norm == ".."
        or norm.startswith("../")
        or norm == "."
    ):
        raise UnsafePathError(path, value)
    if norm != value:
        raise _fail(path, f"path {value!r} is not in normal form (expected {norm!r})")
    return value


@dataclass(frozen=True)
class FileRecord:
    """Size in bytes and SHA-256 (hex) of one file."""

    bytes: int
    sha256: str

    def to_dict(self) -> dict:
        return {"bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: Any, path: object, where: str) -> FileRecord:
        if not isinstance(d, dict):
            raise _fail(path, f"{where}: expected an object")
        _only(d, {"bytes", "sha256"}, path, where)
        return cls(_expect(d, "bytes", int, path, where + "."), _expect(d, "sha256", str, path, where + "."))


@dataclass(frozen=True)
class ShardInfo:
    """One shard: its folder (relative to the dataset), counts, byte total and every file."""

    path: str
    samples: int
    nodes: int
    bytes: int
    files: dict[str, FileRecord] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "samples": self.samples,
            "nodes": self.nodes,
            "bytes": self.bytes,
            "files": {k: v.to_dict() for k, v in sorted(self.files.items())},
        }

    @classmethod
    def from_dict(cls, d: Any, path: object, where: str = "shard") -> ShardInfo:
        if not isinstance(d, dict):
            raise _fail(path, f"{where}: expected an object")
        _only(d, {"path", "samples", "nodes", "bytes", "files"}, path, where)
        files = _expect(d, "files", dict, path, where + ".")
        return cls(
            path=check_relative_path(_expect(d, "path", str, path, where + "."), path),
            samples=_expect(d, "samples", int, path, where + "."),
            nodes=_expect(d, "nodes", int, path, where + "."),
            bytes=_expect(d, "bytes", int, path, where + "."),
            files={
                check_relative_path(k, path): FileRecord.from_dict(v, path, f"{where}.files[{k!r}]")
                for k, v in files.items()
            },
        )


@dataclass(frozen=True)
class Failure:
    """An input that could not be compiled, and why (one line)."""

    source: str
    error: str

    def to_dict(self) -> dict:
        return {"source": self.source, "error": self.error}

    @classmethod
    def from_dict(cls, d: Any, path: object) -> Failure:
        if not isinstance(d, dict):
            raise _fail(path, "failures: expected objects")
        _only(d, {"source", "error"}, path, "failure")
        return cls(_expect(d, "source", str, path), _expect(d, "error", str, path))


@dataclass(frozen=True)
class ClassInfo:
    """A label id, its name, and (datasets compiled since it was added) its pixel count in the
    masks as read (FORMAT.md, ``classes``)."""

    id: int
    name: str
    pixels: int | None = None

    def to_dict(self) -> dict:
        d: dict = {"id": self.id, "name": self.name}
        if self.pixels is not None:
            d["pixels"] = self.pixels
        return d

    @classmethod
    def from_dict(cls, d: Any, path: object) -> ClassInfo:
        if not isinstance(d, dict):
            raise _fail(path, "classes: expected objects")
        _only(d, {"id", "name", "pixels"}, path, "class")
        pixels = _expect(d, "pixels", int, path) if "pixels" in d else None
        return cls(_expect(d, "id", int, path), _expect(d, "name", str, path), pixels)


@dataclass(frozen=True)
class View:
    """Edge settings a sample was compiled under: Gaussian kernel and Canny thresholds."""

    blur: int
    canny_lo: float
    canny_hi: float

    def to_dict(self) -> dict:
        return {"blur": int(self.blur), "canny_lo": float(self.canny_lo), "canny_hi": float(self.canny_hi)}

    @classmethod
    def from_dict(cls, d: Any, path: object) -> View:
        if not isinstance(d, dict):
            raise _fail(path, "views: expected objects")
        _only(d, {"blur", "canny_lo", "canny_hi"}, path, "view")
        return cls(
            _expect(d, "blur", int, path),
            float(_expect(d, "canny_lo", (int, float), path)),
            float(_expect(d, "canny_hi", (int, float), path)),
        )


@dataclass(frozen=True)
class ShardRecord:
    """A shard's own record, ``shards/NNNNN/shard.json``: what ``--resume`` needs to keep a
    committed shard (FORMAT.md, "shard.json"). Readers of the data never need it.

    fingerprint: SHA-256 (hex) of the compile's data options and plan; shard: the shard's
    :class:`ShardInfo` as the manifest will list it; failures: inputs that failed in this shard;
    image_dtype / channels: the dataset's patch dtype and channel count as this shard found them
    (None for a shard of no samples); statistics: the partial statistics of each input whose last
    samples are in this shard (input source -> split -> partial sums, FORMAT.md), so that a
    resumed compile totals classes and statistics without reading the inputs it keeps (added
    within v1; empty before).
    """

    fingerprint: str
    shard: ShardInfo
    failures: tuple[Failure, ...] = ()
    image_dtype: str | None = None
    channels: int | None = None
    statistics: dict[str, dict[str, dict]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        dataset = None if self.image_dtype is None else {"image_dtype": self.image_dtype, "channels": self.channels}
        return {
            "fingerprint": self.fingerprint,
            "shard": self.shard.to_dict(),
            "failures": [f.to_dict() for f in self.failures],
            "dataset": dataset,
        } | ({"statistics": self.statistics} if self.statistics else {})

    def to_bytes(self) -> bytes:
        """The file's bytes: sorted keys, one-space indent, a final newline."""
        return (json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_dict(cls, d: Any, path: object) -> ShardRecord:
        if not isinstance(d, dict):
            raise _fail(path, "expected an object")
        _only(d, {"fingerprint", "shard", "failures", "dataset", "statistics"}, path, "shard.json")
        dataset = d.get("dataset")
        if dataset is not None:
            if not isinstance(dataset, dict):
                raise _fail(path, "field 'dataset': expected an object or null")
            _only(dataset, {"image_dtype", "channels"}, path, "dataset")
        return cls(
            fingerprint=_expect(d, "fingerprint", str, path),
            shard=ShardInfo.from_dict(_expect(d, "shard", dict, path), path),
            failures=tuple(Failure.from_dict(f, path) for f in _list(d.get("failures", []), "failures", path)),
            image_dtype=None if dataset is None else _expect(dataset, "image_dtype", str, path, "dataset."),
            channels=None if dataset is None else _expect(dataset, "channels", int, path, "dataset."),
            statistics=_statistics_in(d.get("statistics", {}), path),
        )


def _statistics_in(d: Any, path: object) -> dict[str, dict[str, dict]]:
    if not isinstance(d, dict) or not all(
        isinstance(v, dict) and all(isinstance(p, dict) for p in v.values()) for v in d.values()
    ):
        raise _fail(path, "field 'statistics': expected source -> split -> partial sums")
    return d


_MANIFEST_KEYS = {
    "dims",
    "splits",
    "statistics",
    "format",
    "version",
    "patch_size",
    "channels",
    "image_dtype",
    "mask_dtype",
    "classes",
    "ignore_index",
    "views",
    "parameters",
    "totals",
    "shards",
    "failures",
}
_DTYPES = {"uint8", "uint16", "int16", "float32"}
_MASK_DTYPES = {"uint8", "uint16", "int16", "int32", "int64", "uint32"}


@dataclass(frozen=True)
class Manifest:
    """The dataset's ``apf.json``: what was compiled, how, and where every shard is.

    ``totals`` is derived (samples, nodes, bytes, shards, failures) and checked on reading.
    ``splits`` (samples per split) and ``statistics`` (see FORMAT.md) were added within v1: they
    are written only when a compile has them, so other datasets keep their bytes.
    """

    patch_size: int
    channels: int
    image_dtype: str
    mask_dtype: str | None
    classes: tuple[ClassInfo, ...] | None
    ignore_index: int | None
    views: tuple[View, ...]
    parameters: dict[str, Any]
    shards: tuple[ShardInfo, ...]
    failures: tuple[Failure, ...] = ()
    version: int = FORMAT_VERSION
    splits: dict[str, int] | None = None
    statistics: dict[str, Any] | None = None
    dims: int = 2
    """2: samples are images or slices (patches p x p); 3: volumes (patches p x p x p, octree
    leaves). Written only when 3, so 2-D datasets keep their bytes."""

    @property
    def totals(self) -> dict[str, int]:
        return {
            "samples": sum(s.samples for s in self.shards),
            "nodes": sum(s.nodes for s in self.shards),
            "bytes": sum(s.bytes for s in self.shards),
            "shards": len(self.shards),
            "failures": len(self.failures),
        }

    def to_dict(self) -> dict:
        return (
            {
                "format": FORMAT_NAME,
                "version": self.version,
                "patch_size": self.patch_size,
                "channels": self.channels,
                "image_dtype": self.image_dtype,
                "mask_dtype": self.mask_dtype,
                "classes": None if self.classes is None else [c.to_dict() for c in self.classes],
                "ignore_index": self.ignore_index,
                "views": [v.to_dict() for v in self.views],
                "parameters": self.parameters,
                "totals": self.totals,
                "shards": [s.to_dict() for s in self.shards],
                "failures": [f.to_dict() for f in self.failures],
            }
            | ({} if self.splits is None else {"splits": dict(self.splits)})
            | ({} if self.statistics is None else {"statistics": self.statistics})
            | ({} if self.dims == 2 else {"dims": self.dims})
        )


def parse_manifest(raw: bytes | str, path: object) -> Manifest:
    """Parse and validate ``apf.json`` content; raise :class:`ManifestError` naming ``path``."""
    try:
        d = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _fail(path, f"not valid JSON ({exc})") from exc
    if not isinstance(d, dict):
        raise _fail(path, "expected a JSON object at the top")
    if d.get("format") != FORMAT_NAME:
        raise _fail(path, f"field 'format': expected {FORMAT_NAME!r}, found {d.get('format')!r}")
    version = _expect(d, "version", int, path)
    if version > FORMAT_VERSION:
        raise UnsupportedVersionError(path, version, FORMAT_VERSION)
    if version < 1:
        raise _fail(path, f"field 'version': expected >= 1, found {version}")
    _only(d, _MANIFEST_KEYS, path, "")
    image_dtype = _expect(d, "image_dtype", str, path)
    if image_dtype not in _DTYPES:
        raise _fail(path, f"field 'image_dtype': expected one of {sorted(_DTYPES)}, found {image_dtype!r}")
    mask_dtype = d.get("mask_dtype")
    if mask_dtype is not None and mask_dtype not in _MASK_DTYPES:
        raise _fail(path, f"field 'mask_dtype': expected one of {sorted(_MASK_DTYPES)} or null, found {mask_dtype!r}")
    classes = d.get("classes")
    ignore = d.get("ignore_index")
    if ignore is not None and (isinstance(ignore, bool) or not isinstance(ignore, int)):
        raise _fail(path, f"field 'ignore_index': expected an integer or null, found {ignore!r}")
    manifest = Manifest(
        version=version,
        patch_size=_expect(d, "patch_size", int, path),
        channels=_expect(d, "channels", int, path),
        image_dtype=image_dtype,
        mask_dtype=mask_dtype,
        classes=None
        if classes is None
        else tuple(ClassInfo.from_dict(c, path) for c in _list(classes, "classes", path)),
        ignore_index=ignore,
        views=tuple(View.from_dict(v, path) for v in _list(_expect(d, "views", list, path), "views", path)),
        parameters=_expect(d, "parameters", dict, path),
        shards=tuple(
            ShardInfo.from_dict(s, path, f"shards[{i}]") for i, s in enumerate(_expect(d, "shards", list, path))
        ),
        failures=tuple(Failure.from_dict(f, path) for f in _expect(d, "failures", list, path)),
        splits=_splits(d.get("splits"), path),
        statistics=_expect(d, "statistics", dict, path) if "statistics" in d else None,
        dims=_dims(d.get("dims", 2), path),
    )
    totals = d.get("totals")
    if totals != manifest.totals:
        raise _fail(path, f"field 'totals': {totals} does not match the shard list ({manifest.totals})")
    return manifest


def _dims(value: Any, path: object) -> int:
    if value not in (2, 3) or isinstance(value, bool):
        raise _fail(path, f"field 'dims': expected 2 or 3, found {value!r}")
    return int(value)


def _splits(value: Any, path: object) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in value.items()
    ):
        raise _fail(path, "field 'splits': expected an object of split name -> sample count")
    return dict(value)


def _list(value: Any, name: str, path: object) -> list:
    if not isinstance(value, list):
        raise _fail(path, f"field {name!r}: expected a list")
    return value


def manifest_bytes(manifest: Manifest) -> bytes:
    """The canonical serialisation: sorted keys, one-space indent, trailing newline, UTF-8."""
    return (json.dumps(manifest.to_dict(), indent=1, sort_keys=True) + "\n").encode("utf-8")
