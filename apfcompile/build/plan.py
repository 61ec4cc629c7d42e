"""The plan of a compile, fixed before any pixel is read.

Inputs are sorted by their path relative to INPUT; each gives ``frames x views`` samples (a
volume's slice count comes from its header; with ``--mode volume`` a volume is one frame),
numbered in that order. Sample ``i`` goes to shard
``i // shard_samples``. An input whose header is unreadable plans zero samples (and fails now, or
is recorded with ``on_error="skip"``). The plan and the data options give the fingerprint that
``--resume`` matches committed shards against.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from formats import Failure

from ..errors import APFError, InputError
from ..inputs.frames import count_frames, has_labels, mask_label_bytes
from ..inputs.layouts import InputItem, LayoutInfo
from .config import DataConfig, OnError, fingerprint

__all__ = ["Plan", "choose_mask_dtype", "make_plan"]


@dataclass(frozen=True)
class Plan:
    """Inputs, their sample counts and first sample ids, and the shards they feed.

    items[i] gives ``counts[i]`` samples with ids ``firsts[i] ..< firsts[i + 1]``; ``early``: the
    inputs that failed while planning; ``fingerprint``: see :func:`~.config.fingerprint`."""

    items: list[InputItem]
    counts: list[int]
    firsts: list[int]
    shard_samples: int
    early: list[Failure]
    fingerprint: str
    mode: str = "slices"
    """``volume``: each volume is one sample per view, never cut into parts."""

    @property
    def total(self) -> int:
        return self.firsts[-1]

    @property
    def n_shards(self) -> int:
        return -(-self.total // self.shard_samples)

    def shards_of(self, i: int) -> range:
        """The shards input ``i``'s samples go to (empty for an input of no samples)."""
        per = self.shard_samples
        return range(self.firsts[i] // per, -(-(self.firsts[i] + self.counts[i]) // per))

    def frame_parts(self, i: int, views: int, parts: int) -> list[range | None]:
        """Input ``i``'s frames cut into at most ``parts`` contiguous ranges (``[None]``: one task
        for the whole input). Where the cuts fall never changes a byte written: samples keep their
        ids and are written in id order."""
        frames = self.counts[i] // max(views, 1)
        parts = min(parts, frames)
        if parts <= 1 or self.items[i].kind not in ("volume", "array") or self.mode == "volume":
            return [None]
        cuts = [frames * k // parts for k in range(parts + 1)]
        return [range(a, b) for a, b in zip(cuts[:-1], cuts[1:])]

    def shard_parts(self, i: int, views: int) -> list[range] | None:
        """Input ``i``'s frames cut at the shard boundaries that fall inside it (one part per
        shard it touches), or None where a boundary falls between the views of one frame."""
        first, n, per = self.firsts[i], self.counts[i], self.shard_samples
        if n == 0 or self.items[i].kind != "volume" or self.mode == "volume":
            return None
        cuts = [0]
        for k in list(self.shards_of(i))[1:]:
            offset = k * per - first
            if offset % views:
                return None
            cuts.append(offset // views)
        cuts.append(n // views)
        return [range(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]

    def whole_shards(self, i: int, part: range, views: int) -> list[int]:
        """The shards all of whose samples come from ``part`` of input ``i`` (a worker can write
        them itself)."""
        lo, hi = self.firsts[i] + part.start * views, self.firsts[i] + part.stop * views
        per = self.shard_samples
        return [k for k in self.shards_of(i) if k * per >= lo and min((k + 1) * per, self.total) <= hi]

    def last_input(self) -> dict[int, int]:
        """shard -> the last input feeding it: the shard is written when that input is done."""
        out: dict[int, int] = {}
        for i in range(len(self.items)):
            for k in self.shards_of(i):
                out[k] = i
        return out


def make_plan(
    items: list[InputItem], info: LayoutInfo, data: DataConfig, on_error: OnError, mask_dtype: str | None = None
) -> Plan:
    """The plan of ``items`` (headers only); raises the first header error with ``on_error="fail"``.
    ``mask_dtype``: the one :func:`choose_mask_dtype` chose (part of the fingerprint)."""
    views = len(data.view_list())
    counts, early = [], []
    for it in items:
        try:
            if data.mode == "volume":
                if it.kind != "volume" and not it.problem:
                    raise InputError(
                        it.image,
                        "is not a volume; --mode volume compiles volumes (NIfTI, NRRD, MHA/MHD, DICOM series)",
                        "compile images without --mode volume",
                    )
                counts.append((count_frames(it) > 0) * views)  # one sample per view: the whole volume
                continue
            counts.append(count_frames(it) * views)
        except APFError as exc:
            if on_error == "fail":
                raise
            counts.append(0)
            early.append(Failure(it.source, str(exc)))
    firsts = np.cumsum([0] + counts).tolist()
    plan = [(it.source, it.mask_source, n) for it, n in zip(items, counts)]
    return Plan(items, counts, firsts, data.shard_samples, early, fingerprint(data, info, plan, mask_dtype), data.mode)


def choose_mask_dtype(data: DataConfig, info: LayoutInfo, items: list[InputItem]) -> str:
    """The stored mask dtype: ``--mask-dtype``, or for ``auto`` the narrowest that holds every
    label: uint8 for the paip and btcv layouts (their labels are small by definition) and wherever
    every mask is stored with 8-bit labels (PNG, JPEG, 8-bit TIFF/NIfTI/NumPy; read from headers
    alone, in parallel) and ``--label-map`` maps nothing above 255; uint16 otherwise. A label that
    does not fit is refused with a hint (never wrapped)."""
    if data.mask_dtype != "auto":
        return data.mask_dtype
    if info.name in ("paip", "btcv"):
        return "uint8"
    targets = [b for _, b in data.label_map]
    if targets and (max(targets) > 255 or min(targets) < 0):
        return "uint16"
    labelled = [it for it in items if not it.problem and has_labels(it)]
    if not labelled:
        return "uint16"
    with ThreadPoolExecutor(max_workers=min(16, len(labelled))) as pool:  # header reads: I/O, not CPU
        sizes = set(pool.map(mask_label_bytes, labelled))
    return "uint8" if sizes == {1} else "uint16"
