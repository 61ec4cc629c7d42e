"""Say when nothing adaptive happened.

A greedy forest on an ``H x W`` canvas with minimum leaf side ``m`` has at most
``ceil(H / m) * ceil(W / m)`` leaves. When ``-L`` reaches that count, every leaf is ``m x m``: the
"adaptive" sequence is a uniform grid (gamma = 1, ceiling Dice near 100 %), which looks like success
and is not what the user asked for. :func:`saturation_warnings` finds such samples from what every
dataset stores (canvas size and leaf count per sample, ``-L`` and the minimum size), so that compile
and ``inspect`` print the same line.
"""

from __future__ import annotations

import numpy as np

__all__ = ["dataset_warnings", "saturated", "saturation_warnings"]


def saturated(canvas_h: np.ndarray, canvas_w: np.ndarray, counts: np.ndarray, min_size: int) -> np.ndarray:
    """Per sample: True when every leaf has the minimum size (the leaf count reaches the canvas's
    number of ``min_size`` cells)."""
    cells = -(-np.asarray(canvas_h, np.int64) // min_size) * -(-np.asarray(canvas_w, np.int64) // min_size)
    return np.asarray(counts, np.int64) >= cells


def saturation_warnings(
    canvas_h: np.ndarray, canvas_w: np.ndarray, counts: np.ndarray, length: int, min_size: int, policy: str
) -> list[str]:
    """One line when every sample (or most of them) had every leaf at the minimum size, with the
    numbers and what to change; [] otherwise (and for the threshold policy, which has no L)."""
    counts = np.asarray(counts)
    if policy != "greedy" or counts.size == 0:
        return []
    full = saturated(canvas_h, canvas_w, counts, min_size)
    n, total = int(full.sum()), int(counts.size)
    if n == 0 or 2 * n <= total:
        return []
    h, w = int(np.median(canvas_h)), int(np.median(canvas_w))
    cells = (-(-h // min_size)) * (-(-w // min_size))
    fix = "use a larger --resolution, a smaller -L or a larger --min-size"
    if n == total:
        return [
            f"no adaptive patching happened: -L {length} >= the {cells} cells of {min_size} x {min_size} px "
            f"on a {h} x {w} canvas (median), so every leaf is {min_size} x {min_size} (a uniform grid, "
            f"gamma = 1) in all {total} samples; {fix}"
        ]
    return [
        f"{n} of {total} samples have every leaf at the minimum size {min_size} x {min_size} (fewer than "
        f"-L {length} leaves: a {h} x {w} canvas, the median, holds only {cells} cells): their canvas is "
        f"too small for L; {fix}"
    ]


def dataset_warnings(dataset: object) -> list[str]:
    """:func:`saturation_warnings` of a written dataset (a path, URL, Place or open
    :class:`formats.Dataset`), from its manifest and ``samples.parquet`` tables."""
    from formats import Dataset, open_dataset

    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    p = ds.manifest.parameters
    t = ds.samples
    if t.num_rows == 0 or "count" not in t.column_names:
        return []
    return saturation_warnings(
        t["canvas_h"].to_numpy(),
        t["canvas_w"].to_numpy(),
        t["count"].to_numpy(),
        int(p.get("length", 0)),
        int(p.get("min_size") or ds.manifest.patch_size),
        str(p.get("policy", "greedy")),
    )
