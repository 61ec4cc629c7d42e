"""Errors raised by the format package (readers and writers of apfcompile datasets).

Each subclasses :class:`FormatError` and the builtin that fits, and carries the path or field it
is about. Messages say what was expected, what was found, and what to do.
"""

from __future__ import annotations

__all__ = [
    "CorruptShardError",
    "DatasetNotFoundError",
    "FormatError",
    "ManifestError",
    "SampleNotFoundError",
    "UnsafePathError",
    "UnsupportedVersionError",
]


class FormatError(Exception):
    """Base of every error the format package raises on purpose."""


class DatasetNotFoundError(FormatError, FileNotFoundError):
    """No dataset at a path: its manifest ``apf.json`` is missing."""

    def __init__(self, path: object) -> None:
        self.path = path
        super().__init__(
            f"{path}: no apfcompile dataset here (missing apf.json); "
            "point at the OUTPUT folder of `apfcompile compile`, or finish an interrupted compile with --resume"
        )


class SampleNotFoundError(FormatError, KeyError):
    """A dataset holds no sample with the id or key asked for."""

    def __init__(self, path: object, sample: object) -> None:
        self.path, self.sample = path, sample
        super().__init__(f"{path}: no sample {sample!r}; `apfcompile dump` lists the keys and ids")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ManifestError(FormatError, ValueError):
    """The manifest is not valid JSON or does not follow the spec."""

    def __init__(self, path: object, problem: str) -> None:
        self.path, self.problem = path, problem
        super().__init__(f"{path}: invalid manifest: {problem}")


class UnsupportedVersionError(ManifestError):
    """The manifest's format version is newer than this reader understands."""

    def __init__(self, path: object, found: object, supported: int) -> None:
        self.found, self.supported = found, supported
        FormatError.__init__(
            self,
            f"{path}: format version {found} is newer than this reader understands "
            f"(supports up to {supported}); upgrade apfcompile",
        )
        self.path, self.problem = path, f"version {found}"


class UnsafePathError(ManifestError):
    """A path in the manifest would lead outside the dataset."""

    def __init__(self, path: object, bad: str) -> None:
        self.bad = bad
        FormatError.__init__(
            self,
            f"{path}: manifest path {bad!r} leads outside the dataset; "
            "paths must be relative and stay inside it (refusing to read)",
        )
        self.path, self.problem = path, f"unsafe path {bad!r}"


class CorruptShardError(FormatError, OSError):
    """A shard's files are missing, truncated or do not match their recorded checksums."""

    def __init__(self, shard: object, problem: str) -> None:
        self.shard, self.problem = shard, problem
        super().__init__(f"{shard}: corrupt shard: {problem}; re-run the compile with --resume after deleting it")


def size_problem(size: int, expected: int) -> str:
    """How a shard file of ``size`` bytes differs from the ``expected`` size its manifest records."""
    what = "truncated" if size < expected else "longer than written"
    return f"{what}: {size} bytes, the manifest says {expected}"
