"""The apfcompile on-disk format (v1): spec, writer, reader, verification.

Depends on numpy, zarr and pyarrow only (never cv2 or torch), so reading compiled data needs
neither OpenCV nor the compiler. The spec is ``formats/FORMAT.md``; :mod:`formats.spec` is the
same spec as code.
"""

from .errors import (
    CorruptShardError, DatasetNotFoundError, FormatError, ManifestError, UnsafePathError, UnsupportedVersionError,
)  # fmt: skip
from .reader import Dataset, SampleData, open_dataset
from .spec import (
    FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, NODE_SCHEMA, SAMPLE_SCHEMA, ClassInfo, Failure, FileRecord,
    Manifest, ShardInfo, View, parse_manifest,
)  # fmt: skip
from .writer import SampleRecord, read_shard_record, shard_name, write_manifest, write_shard

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "MANIFEST_NAME", "NODE_SCHEMA", "SAMPLE_SCHEMA", "ClassInfo",
    "CorruptShardError", "Dataset", "DatasetNotFoundError", "Failure", "FileRecord", "FormatError",
    "Manifest", "ManifestError", "SampleData", "SampleRecord", "ShardInfo", "UnsafePathError",
    "UnsupportedVersionError", "View", "open_dataset", "parse_manifest", "read_shard_record",
    "shard_name", "write_manifest", "write_shard",
]  # fmt: skip
