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


def _cells(sides: list[np.ndarray], min_size: int) -> np.ndarray:
    out = np.ones(np.shape(sides[0]), np.int64)
    for side in sides:
        out = out * -(-np.asarray(side, np.int64) // min_size)
    return out


def saturated(
    canvas_h: np.ndarray, canvas_w: np.ndarray, counts: np.ndarray, min_size: int, canvas_d: np.ndarray | None = None
) -> np.ndarray:
    """Per sample: True when every leaf has the minimum size (the leaf count reaches the canvas's
    number of ``min_size`` cells; with ``canvas_d``, a volume's cubic cells)."""
    sides = [canvas_h, canvas_w] + ([] if canvas_d is None else [canvas_d])
    return np.asarray(counts, np.int64) >= _cells(sides, min_size)


def saturation_warnings(
    canvas_h: np.ndarray,
    canvas_w: np.ndarray,
    counts: np.ndarray,
    length: int,
    min_size: int,
    policy: str,
    canvas_d: np.ndarray | None = None,
) -> list[str]:
    """One line when every sample (or most of them) had every leaf at the minimum size, with the
    numbers and what to change; [] otherwise (and for the threshold policy, which has no L).
    ``canvas_d``: the depths of volumes (``--mode volume``), None for images."""
    counts = np.asarray(counts)
    if policy != "greedy" or counts.size == 0:
        return []
    full = saturated(canvas_h, canvas_w, counts, min_size, canvas_d)
    n, total = int(full.sum()), int(counts.size)
    if n == 0 or 2 * n <= total:
        return []
    sides = [int(np.median(canvas_h)), int(np.median(canvas_w))]
    if canvas_d is not None:
        sides = [int(np.median(canvas_d))] + sides
    cells = int(_cells(sides, min_size))
    box = " x ".join([str(min_size)] * len(sides))
    canvas = " x ".join(str(v) for v in sides) + (" volume" if canvas_d is not None else " canvas")
    unit = "voxels" if canvas_d is not None else "px"
    fix = "use a larger --resolution, a smaller -L or a larger --min-size"
    if n == total:
        return [
            f"no adaptive patching happened: -L {length} >= the {cells} cells of {box} {unit} "
            f"on a {canvas} (median), so every leaf is {box} (a uniform grid, "
            f"gamma = 1) in all {total} samples; {fix}"
        ]
    return [
        f"{n} of {total} samples have every leaf at the minimum size {box} (fewer than "
        f"-L {length} leaves: a {canvas}, the median, holds only {cells} cells): it is "
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
        t["canvas_d"].to_numpy(zero_copy_only=False).astype(np.int64) if ds.manifest.dims == 3 else None,
    )
