"""The output location of a compile: checked before, tidied and annotated after.

Works for local folders and fsspec URLs alike (:mod:`formats.storage`).
"""

from __future__ import annotations

import json
import os

from formats.spec import MANIFEST_NAME, SHARDS_DIR
from formats.storage import Location

from ..errors import OutputError, OutputExistsError

__all__ = ["STATS_NAME", "current_shards", "prepare_output", "remove_stale_shards", "write_stats"]


STATS_NAME = "compile-stats.json"
"""Run facts (peak memory, wall time) beside the dataset: informative, outside the manifest and
its checksums, and the one file that differs between two compiles of the same inputs."""


def write_stats(loc: Location, wall: float, workers: int) -> None:
    """Write STATS_NAME: this process's peak RSS (and its workers'), wall seconds, worker count."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    stats = {
        "peak_rss_mib": round(own),
        "peak_worker_rss_mib": round(kids) if workers > 1 else None,
        "wall_s": round(wall, 1),
        "workers": workers,
    }
    data = (json.dumps(stats, indent=1, sort_keys=True) + "\n").encode()
    if loc.local is None:
        loc.fs.pipe_file(loc.sub(STATS_NAME), data)
        return
    from formats.writer import put_file  # the writer's imports are heavy; inspect does not need them

    tmp = loc.local / f".{STATS_NAME}.tmp"
    put_file(tmp, data)
    os.replace(tmp, loc.local / STATS_NAME)


def current_shards(loc: Location) -> dict[int, str]:
    """Shard index -> path of every shard the manifest now in ``loc`` names (empty when there is
    no readable manifest): the folders a compile replacing that dataset must not write into."""
    from formats.spec import parse_manifest

    try:
        manifest = parse_manifest(loc.read_bytes(MANIFEST_NAME), loc.display(MANIFEST_NAME))
    except (OSError, ValueError):
        return {}
    out = {}
    for shard in manifest.shards:
        name = shard.path.rsplit("/", 1)[-1]
        if name.split(".")[0].isdigit():
            out[int(name.split(".")[0])] = shard.path
    return out


def remove_stale_shards(loc: Location, keep: set[str]) -> None:
    """Delete the shard folders not named in ``keep`` (an older dataset's, or unfinished ones):
    called once the new manifest has landed."""
    folder = loc.sub(SHARDS_DIR)
    if not loc.fs.isdir(folder):
        return
    for child in loc.fs.ls(folder, detail=False):
        name = child.rstrip("/").rsplit("/", 1)[-1]
        if name not in keep and (name.split(".")[0].isdigit() or name.startswith(".tmp-")):
            loc.fs.rm(child, recursive=True)


def _missing(fs, path: str) -> bool:
    """After ``exists`` said no (clients answer no for any failure): True when the path is truly
    missing; raises the client's own error (credentials, endpoint) otherwise."""
    try:
        fs.info(path)
    except FileNotFoundError:
        return True
    return False


def prepare_output(loc: Location, resume: bool, overwrite: bool) -> None:
    """Make ``loc`` ready for a compile, or raise without touching it (see the error messages)."""
    out = loc.display()
    fs = loc.fs
    try:
        bucket = loc.path.split("/", 1)[0]
        if loc.local is None and not fs.exists(bucket) and _missing(fs, bucket):
            raise OutputError(
                f"{out}: bucket {bucket!r} does not exist or is not visible with these credentials; "
                "create it first (apfcompile does not create buckets)"
            )
        exists = fs.exists(loc.path)
        if exists and not fs.isdir(loc.path):
            raise OutputExistsError(f"{out}: exists and is not a folder; choose another OUTPUT")
        entries = fs.ls(loc.path, detail=False) if exists else []
        # this compile's own lock (taken before this check) does not make OUTPUT "not empty"
        entries = [e for e in entries if not e.rstrip("/").rsplit("/", 1)[-1].startswith(".apf.lock")]
    except Exception as exc:  # object storage clients raise their own kinds (credentials, endpoint)
        if isinstance(exc, OutputError) or (loc.local is not None and not isinstance(exc, OSError)):
            raise
        raise OutputError(
            f"{out}: cannot be used as OUTPUT ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); check the path, bucket, "
            "credentials and endpoint"
        ) from None
    if not entries:
        if loc.local is not None:
            loc.local.mkdir(parents=True, exist_ok=True)
        return
    ours = fs.exists(loc.sub(MANIFEST_NAME)) or fs.isdir(loc.sub(SHARDS_DIR))
    if resume and ours:
        return
    if overwrite and ours:  # nothing is removed now: the old dataset stays readable until the new manifest lands
        return
    if not ours:
        raise OutputExistsError(
            f"{out}: exists, is not empty and is not an apfcompile dataset; "
            "choose an empty or new OUTPUT (nothing was changed)"
        )
    raise OutputExistsError(
        f"{out}: a dataset is already there (left untouched); "
        "pass --overwrite to replace it or --resume to finish an interrupted compile"
    )
