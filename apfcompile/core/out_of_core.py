"""Out-of-core patchify of one large sample: the canvas is read in bands of rows, never whole.

Pass 1 reads the canvas band by band (each band with a halo of extra rows above and below) and:

- runs grey reduction, blur and Canny on the band, keeps only its rows of the edge-count grid
  (at the minimum leaf size) — the full edge map never exists;
- streams the band into an exact block-sum pyramid of the image (and a per-class count pyramid
  of the mask), keeping in memory only the levels from ``keep_level`` up (level ``k`` = blocks of
  ``2^k`` pixels; level 4 of a 65,536² RGB canvas is 100 MB, level 5 50 MB, the rest less).

The forest is then grown from the count grid. A leaf of side ``s = p f`` needs level ``log2 f``:
leaves at kept levels are cut from the stored levels at once; smaller leaves (finer than the kept
levels) are cut in pass 2, which re-reads only the bands that hold them. Patches are identical to
the in-memory path's for the same leaves (the sums are exact; masks use the same majority rule).

Edges can differ from the whole-image edge map only where Canny's hysteresis would cross a band
border further than the halo reaches; non-uint8 images are stretched with percentiles taken from
a subsample (or a fixed window), as in memory.

Sources are anything with ``shape``, ``dtype`` and ``rows(y0, y1)`` (:class:`RegionSource`); the
kinds that read arrays and files are in :mod:`apfcompile.inputs.sources`. This module holds only
the algorithm: edges come from :func:`~apfcompile.core.edges.edge_map` on each band with the
stretch window fixed for the whole canvas.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

import cv2
import numpy as np

from formats.nodes import NodeTable

from ..errors import ParameterError
from .edges import EdgeParams, edge_count_grid, edge_map, to_grey
from .forest import build_forest
from .patches import gather_cells, mean_from_sums, serialise_image
from .patchify import PatchedSample, PatchParams
from .pyramid import accumulator_dtype, next_level, sum_pyramid

__all__ = ["BandedStats", "RegionSource", "patchify_banded"]


class RegionSource(Protocol):
    """Rows of a canvas, read on demand: what :func:`patchify_banded` reads. The kinds (arrays,
    TIFF levels, label masks) are in :mod:`apfcompile.inputs.sources`."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Canvas rows ``[y0, y1)``: (y1 - y0, W) or (y1 - y0, W, C)."""


class _StreamingPyramid:
    """Block sums of a canvas fed band by band; levels >= ``keep`` are stored whole.

    Rows reach level k + 1 in pairs; an odd row waits for the next band (or, at the end, is
    paired with a zero row), so the stored levels equal :func:`apfcompile.core.pyramid.sum_pyramid`.
    """

    def __init__(self, dtype: np.dtype, keep: int, top: int) -> None:
        self.dtype, self.keep, self.top = np.dtype(dtype), keep, top
        self.carry: list[np.ndarray | None] = [None] * (top + 1)
        self.parts: dict[int, list[np.ndarray]] = {k: [] for k in range(keep, top + 1)}

    def push(self, rows: np.ndarray, level: int = 0) -> None:
        if level >= self.keep:
            self.parts[level].append(rows)
        if level == self.top:
            return
        if self.carry[level] is not None:
            rows = np.concatenate([self.carry[level], rows])
            self.carry[level] = None
        even = rows.shape[0] - rows.shape[0] % 2
        if even < rows.shape[0]:
            self.carry[level] = rows[even:]
        if even:
            self.push(next_level(rows[:even], self.dtype, level + 1), level + 1)

    def finish(self) -> dict[int, np.ndarray]:
        for level in range(self.top):
            pending = self.carry[level]
            if pending is not None:
                self.carry[level] = None
                pair = np.concatenate([pending, np.zeros_like(pending)])
                self.push(next_level(pair, self.dtype, level + 1), level + 1)
        return {k: np.concatenate(v) if v else None for k, v in self.parts.items()}


def _labels_index(mask_rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(labels, mask_rows)
    idx = np.minimum(idx, len(labels) - 1)
    if not np.array_equal(labels[idx], mask_rows):
        bad = np.setdiff1d(np.unique(mask_rows), labels)
        raise ParameterError("labels", f"every mask value among {labels.tolist()}", bad[:5].tolist())
    return idx


def _one_hot(mask_rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = np.empty(mask_rows.shape + (len(labels),), np.uint8)
    for j, label in enumerate(labels.tolist()):
        np.equal(mask_rows, label, out=out[..., j].view(bool))
    if mask_rows.dtype in (np.uint8, np.uint16) and labels.min() >= 0:
        known = np.zeros(max(int(labels.max()), int(np.iinfo(mask_rows.dtype).max)) + 1, bool)
        known[labels] = True
        ok = bool(known[mask_rows].all())
    else:
        ok = bool(np.isin(mask_rows, labels).all())
    if not ok:
        _labels_index(mask_rows, labels)  # raises, naming the values outside the labels
    return out


_CV_MASK_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.int32)


def _class_counts_4x4(mask_rows: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Level 2 of the one-hot count pyramid straight from mask rows: (ceil(h/4), ceil(w/4), K)
    uint8, the number of pixels of each label in every 4 x 4 block (0..16; rows and columns past
    the edge count as nothing). Equal to ``sum_pyramid(_one_hot(...), 2)[2]`` without ever
    building the full-size one-hot: per label, OpenCV compares (0/255), keeps 0/16 and averages
    4 x 4 blocks, which on values of 0/16 is exactly the count."""
    h, w = mask_rows.shape
    if h * w < 64:  # OpenCV takes arrays of up to 4 values for scalars
        return sum_pyramid(_one_hot(mask_rows, labels), 2)[2].astype(np.uint8)
    hp, wp = -(-h // 4) * 4, -(-w // 4) * 4
    plane = np.zeros((hp, wp), np.uint8)
    out = np.empty((hp // 4, wp // 4, len(labels)), np.uint8)
    reduced = np.empty((hp // 4, wp // 4), np.uint8)
    rows = np.ascontiguousarray(mask_rows)
    for j, label in enumerate(labels.tolist()):
        cv2.compare(rows, label, cv2.CMP_EQ, dst=plane[:h, :w])
        cv2.bitwise_and(plane, 16, dst=plane)
        cv2.resize(plane, (wp // 4, hp // 4), dst=reduced, interpolation=cv2.INTER_AREA)
        out[..., j] = reduced
    return out


def _values_outside(mask: RegionSource, labels: np.ndarray, band_rows: int) -> list:
    """Mask values not among ``labels`` (the first few), found by re-reading the mask."""
    h = mask.shape[0]
    for y in range(0, h, band_rows):
        bad = np.setdiff1d(np.unique(mask.rows(y, min(h, y + band_rows))), labels)
        if bad.size:
            return bad[:5].tolist()
    return []


@dataclass(frozen=True)
class BandedStats:
    """What the banded path did: band height, halo, kept level, bands read in each pass."""

    band_rows: int
    halo: int
    keep_level: int
    pass1_bands: int
    pass2_bands: int


def _stretch_window(source: RegionSource, params: EdgeParams) -> tuple[float, float] | None:
    if params.window is not None or source.dtype == np.uint8:
        return params.window
    overview = source.overview() if hasattr(source, "overview") else None
    if overview is not None:  # a coarse pyramid level: decoding 64 rows would cost 64 tile rows
        sample = to_grey(overview, params.channel).reshape(-1)
    else:
        h = source.shape[0]
        step = max(1, h // 64)
        sample = np.concatenate([to_grey(source.rows(y, y + 1), params.channel).reshape(-1) for y in range(0, h, step)])
    lo, hi = np.percentile(sample, params.percentiles)
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def patchify_banded(
    image: RegionSource,
    mask: RegionSource | None = None,
    params: PatchParams = PatchParams(),
    labels: np.ndarray | None = None,
    band_rows: int = 512,
    keep_level: int | None = None,
    budget_mib: int = 512,
) -> tuple[PatchedSample, BandedStats]:
    """Patchify a canvas too large for memory (see the module docstring).

    labels: the mask's possible values (sorted), needed with a mask (e.g. PAIP: 0, 1, 2).
    band_rows: rows per band, a multiple of the minimum leaf size.
    keep_level: the finest pyramid level kept in memory after pass 1; default: the finest whose
        stored levels (image sums and mask class counts) fit ``budget_mib``.
    """
    h, w = image.shape[:2]
    m, p = params.forest.min_size, params.patch_size
    if params.image_method != "area" or params.mask_method != "mode":
        raise ParameterError(
            "resample",
            "area images and mode masks on the out-of-core path",
            f"{params.image_method}/{params.mask_method}",
            "use --out-of-core never",
        )
    if band_rows % m or band_rows < m:
        raise ParameterError("band_rows", f"a positive multiple of the minimum leaf size {m}", band_rows)
    if mask is not None and labels is None:
        raise ParameterError("labels", "the mask's label values, sorted", None)
    labels = None if labels is None else np.asarray(sorted(labels))
    e = params.edges
    halo = e.blur // 2 + 8
    band_edges = replace(e, window=_stretch_window(image, e))  # one stretch for every band
    channels = 1 if len(image.shape) == 2 else image.shape[2]
    if keep_level is None:
        keep_level = _keep_level(h, w, channels, image.dtype, 0 if labels is None else len(labels), budget_mib)
    top = max(keep_level, (max(h, w) // p).bit_length())
    img_pyr = _StreamingPyramid(image.dtype, keep_level, top)
    msk_pyr = _StreamingPyramid(np.dtype(np.uint8), keep_level, top) if mask is not None else None
    # With levels 0 and 1 not kept and bands of a multiple of 4 rows, the mask enters its pyramid
    # at level 2 as per-label 4 x 4 counts; the values are then checked once, from the totals.
    counts_4x4 = (
        mask is not None
        and keep_level >= 2
        and band_rows % 4 == 0
        and mask.dtype in _CV_MASK_DTYPES
        and labels.min() >= np.iinfo(mask.dtype).min
        and labels.max() <= np.iinfo(mask.dtype).max
    )
    grid_rows, n1 = [], 0

    def read(y0: int):
        y1 = min(h, y0 + band_rows)
        a0, a1 = max(0, y0 - halo), min(h, y1 + halo)
        return y0, y1, a0, image.rows(a0, a1), None if mask is None else mask.rows(y0, y1)

    # The next band is read (decoded) on a second thread while this one is processed.
    starts = list(range(0, h, band_rows))
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read, starts[0])
        for i in range(len(starts)):
            y0, y1, a0, block, mask_rows = pending.result()
            if i + 1 < len(starts):
                pending = reader.submit(read, starts[i + 1])
            edges = edge_map(block, band_edges)[y0 - a0 : y1 - a0]
            grid_rows.append(edge_count_grid(edges, m))
            own = block[y0 - a0 : y1 - a0]
            img_pyr.push(own if own.ndim == 3 else own[:, :, None])
            if msk_pyr is not None:
                if counts_4x4:
                    msk_pyr.push(_class_counts_4x4(mask_rows, labels), level=2)
                else:
                    msk_pyr.push(_one_hot(mask_rows, labels))
            n1 += 1
    counts = np.concatenate(grid_rows)
    leaves = build_forest(counts, (h, w), params.forest)
    stored = img_pyr.finish()
    stored_mask = msk_pyr.finish() if msk_pyr is not None else None
    if counts_4x4 and int(stored_mask[top].sum(dtype=np.int64)) != h * w:
        raise ParameterError(
            "labels", f"every mask value among {labels.tolist()}", _values_outside(mask, labels, band_rows)
        )

    factors = leaves.size // p
    level_of = np.log2(factors).astype(int)
    patches = np.zeros((len(leaves), p, p, channels), image.dtype)
    mask_patches = None if mask is None else np.zeros((len(leaves), p, p), mask.dtype)
    score = None if mask is None else _Ceiling(labels, params.ignore_index)
    for k in np.unique(level_of[level_of >= keep_level]):
        sel = np.flatnonzero(level_of == k)
        f = 1 << int(k)
        y, x = leaves.y1[sel] // f, leaves.x1[sel] // f
        patches[sel] = mean_from_sums(gather_cells(stored[k], y, x, p), f * f, image.dtype)
        if mask is not None:
            mask_patches[sel] = score.add(gather_cells(stored_mask[k], y, x, p)).astype(mask.dtype)
    fine = np.flatnonzero(level_of < keep_level)
    n2 = _second_pass(image, mask, leaves, fine, patches, mask_patches, params, band_rows, labels, score)
    gamma = (-(-h // p)) * (-(-w // p)) / max(len(leaves), 1)
    ceiling = None
    if score is not None:
        top_counts = stored_mask[top].reshape(-1, len(labels)).sum(axis=0, dtype=np.int64)
        ceiling = score.result(top_counts)
    sample = PatchedSample(leaves, patches, mask_patches, float(gamma), ceiling)
    return sample, BandedStats(band_rows, halo, keep_level, n1, n2)


def _keep_level(h: int, w: int, channels: int, dtype: np.dtype, classes: int, budget_mib: int) -> int:
    """The finest level k whose stored levels k, k + 1, ... fit the memory budget."""
    k = 0
    while True:
        total = 0
        for j in range(k, 40):
            cells = (-(-h // (1 << j))) * (-(-w // (1 << j)))
            total += cells * (
                channels * accumulator_dtype(dtype, j).itemsize + classes * accumulator_dtype(np.uint8, j).itemsize
            )
            if cells == 1:
                break
        if total <= budget_mib * 2**20:
            return k
        k += 1


class _Ceiling:
    """Majority labels from per-class cell counts, and the reconstruction-ceiling Dice from them.

    A cell's rebuilt pixels all take its majority label, and its counts say how many of its
    pixels truly hold each class, so intersections and sizes need no full-size mask.
    """

    def __init__(self, labels: np.ndarray, ignore: int | None) -> None:
        self.labels = labels
        self.fill = 0 if ignore is None else ignore
        self.ignore = (
            int(np.flatnonzero(labels == ignore)[0]) if ignore is not None and np.any(labels == ignore) else None
        )
        self.inter = np.zeros(len(labels), np.int64)
        self.rebuilt = np.zeros(len(labels), np.int64)

    def add(self, counts: np.ndarray) -> np.ndarray:
        """Labels (n, p, p) for cells with class counts (n, p, p, K); ties to the smallest label."""
        counts = counts.astype(np.int64)
        voting = counts.copy()
        if self.ignore is not None:
            alone = voting.sum(axis=-1) == voting[..., self.ignore]
            voting[..., self.ignore] = np.where(alone, voting[..., self.ignore], 0)
        best = voting.argmax(axis=-1)
        empty = voting.max(axis=-1) == 0
        scored = counts.sum(axis=-1) - (counts[..., self.ignore] if self.ignore is not None else 0)
        picked = np.take_along_axis(counts, best[..., None], axis=-1)[..., 0]
        live = ~empty
        np.add.at(self.inter, best[live], picked[live])
        np.add.at(self.rebuilt, best[live], scored[live])
        return np.where(empty, self.fill, self.labels[best])

    def result(self, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = (self.rebuilt + truth) > 0
        if self.ignore is not None:
            keep[self.ignore] = False
        inter, total = self.inter[keep], self.rebuilt[keep] + truth[keep]
        return self.labels[keep].astype(np.int64), 2 * inter / total


def _second_pass(
    image, mask, leaves: NodeTable, fine: np.ndarray, patches, mask_patches, params, band_rows, labels, score
) -> int:
    """Cut the leaves finer than the kept levels from re-read bands; returns bands read."""
    if fine.size == 0:
        return 0
    p = params.patch_size
    h = image.shape[0]
    big = int(leaves.size[fine].max())
    band = max(band_rows, big) // big * big  # leaves of these sizes never straddle a band
    top = (big // p).bit_length() - 1
    n = 0
    for y0 in range(0, h, band):
        sel = fine[(leaves.y1[fine] >= y0) & (leaves.y1[fine] < y0 + band)]
        if sel.size == 0:
            continue
        y1 = min(h, y0 + band)
        shifted = leaves.take(sel).shifted(y0, 0, (y1 - y0, image.shape[1]))
        patches[sel] = serialise_image(image.rows(y0, y1), shifted, p, params.image_method).reshape(patches[sel].shape)
        if mask is not None:
            pyramid = sum_pyramid(_one_hot(mask.rows(y0, y1), labels), top)
            factors = shifted.size // p
            for f in np.unique(factors).tolist():
                k = f.bit_length() - 1
                idx = np.flatnonzero(factors == f)
                cells = gather_cells(pyramid[k], shifted.y1[idx] // f, shifted.x1[idx] // f, p)
                mask_patches[sel[idx]] = score.add(cells).astype(mask_patches.dtype)
        n += 1
    return n
