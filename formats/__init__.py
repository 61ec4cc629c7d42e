"""The apfcompile on-disk format (v1): spec, writer, reader, verification.

Depends on numpy, zarr, pyarrow and fsspec only (never cv2 or torch), so reading compiled data
needs neither OpenCV nor the compiler. The spec is ``formats/FORMAT.md``; :mod:`formats.spec` is the
same spec as code; :mod:`formats.nodes` the node table; :mod:`formats.sequence` which rows a
fixed-length sequence keeps and how it is padded; :mod:`formats.storage` where a dataset lives.
The names below are imported on first use, so ``import formats.errors`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "CorruptShardError": "errors",
    "DatasetNotFoundError": "errors",
    "FormatError": "errors",
    "ManifestError": "errors",
    "SampleNotFoundError": "errors",
    "UnsafePathError": "errors",
    "UnsupportedVersionError": "errors",
    "NODE_COLUMNS": "nodes",
    "NODE_COLUMNS_3D": "nodes",
    "NodeTable": "nodes",
    "Dataset": "reader",
    "SampleData": "reader",
    "open_dataset": "reader",
    "FORMAT_NAME": "spec",
    "FORMAT_VERSION": "spec",
    "MANIFEST_NAME": "spec",
    "NODE_SCHEMA": "spec",
    "NODE_SCHEMA_3D": "spec",
    "SAMPLE_SCHEMA": "spec",
    "ClassInfo": "spec",
    "Failure": "spec",
    "FileRecord": "spec",
    "Manifest": "spec",
    "ShardInfo": "spec",
    "ShardRecord": "spec",
    "View": "spec",
    "parse_manifest": "spec",
    "Location": "storage",
    "Place": "storage",
    "locate": "storage",
    "SampleRecord": "records",
    "read_shard_record": "writer",
    "shard_name": "spec",
    "write_manifest": "writer",
    "write_shard": "writer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'formats' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from .errors import (
        CorruptShardError,
        DatasetNotFoundError,
        FormatError,
        ManifestError,
        SampleNotFoundError,
        UnsafePathError,
        UnsupportedVersionError,
    )
    from .nodes import NODE_COLUMNS, NODE_COLUMNS_3D, NodeTable
    from .reader import Dataset, SampleData, open_dataset
    from .records import SampleRecord
    from .spec import (
        FORMAT_NAME,
        FORMAT_VERSION,
        MANIFEST_NAME,
        NODE_SCHEMA,
        NODE_SCHEMA_3D,
        SAMPLE_SCHEMA,
        ClassInfo,
        Failure,
        FileRecord,
        Manifest,
        ShardInfo,
        ShardRecord,
        View,
        parse_manifest,
        shard_name,
    )
    from .storage import Location, Place, locate
    from .writer import read_shard_record, write_manifest, write_shard
