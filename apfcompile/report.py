"""What is inside a dataset: the summary behind ``inspect``, rows for ``dump``, the ``preview``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cv2
import numpy as np

from formats import Dataset

from .canvas import fit_canvas
from .errors import InputError
from .forest import Leaves
from .frames import load_frames
from .inputs import InputPath, as_input_path
from .layouts import discover
from .outputs import STATS_NAME
from .preview import colorize_labels, draw_leaves, side_by_side
from .reconstruct import reconstruct

__all__ = ["dump_rows", "format_rows", "summary", "write_preview"]


def _quantiles(values: np.ndarray) -> str:
    if values.size == 0:
        return "-"
    q = np.percentile(values, [0, 50, 100])
    return f"min {q[0]:.4g} / median {q[1]:.4g} / max {q[2]:.4g}"


def summary(ds: Dataset) -> str:
    """A human-readable summary: parameters, counts, distributions, ceiling Dice, bytes, errors."""
    m = ds.manifest
    t = m.totals
    samples = ds.samples
    lines = [
        f"dataset   {ds.path}",
        f"format    apfcompile v{m.version}; {t['shards']} shard(s), {t['samples']} sample(s), "
        f"{t['nodes']} node(s), {t['bytes'] / 1e6:.2f} MB",
        f"patches   {m.patch_size} x {m.patch_size} x {m.channels} {m.image_dtype}; "
        f"masks {m.mask_dtype or 'none'}" + (f", ignore {m.ignore_index}" if m.ignore_index is not None else ""),
        "views     " + ", ".join(f"blur {v.blur} canny {v.canny_lo:g}/{v.canny_hi:g}" for v in m.views),
        "params    " + ", ".join(f"{k}={v}" for k, v in sorted(m.parameters.items()) if v is not None),
    ]
    if m.classes:
        lines.append("classes   " + ", ".join(f"{c.id}:{c.name}" for c in m.classes))
    if samples.num_rows:
        count = samples["count"].to_numpy()
        gamma = samples["gamma"].to_numpy()
        lines.append(f"length    {_quantiles(count)} leaves per sample")
        lines.append(f"gamma     {_quantiles(gamma)} (uniform p x p patches / leaves)")
        sizes = np.concatenate([ds.nodes(i)["size"].to_numpy() for i in range(len(m.shards))])
        values, counts = np.unique(sizes, return_counts=True)
        lines.append("leaves    " + "  ".join(f"{v}px:{c / sizes.size:.1%}" for v, c in zip(values, counts)))
        dice = samples["ceiling_dice"].to_numpy(zero_copy_only=False)
        dice = dice[~np.isnan(dice.astype(float))] if dice.size else dice
        if dice.size:
            lines.append(f"ceiling   mean foreground Dice {np.mean(dice):.2%} ({_quantiles(dice * 100)} %)")
    stats = _stats(ds)
    if stats:
        worker = stats.get("peak_worker_rss_mib")
        lines.append(f"compile   peak memory {stats['peak_rss_mib']} MiB" + (f" (largest worker {worker} MiB)" if worker else "")
                     + f", {stats['wall_s']} s with {stats['workers']} worker(s)")  # fmt: skip
    lines.append(f"errors    {t['failures']}")
    for f in m.failures:
        lines.append(f"  {f.source}: {f.error}")
    return "\n".join(lines)


def _stats(ds: Dataset) -> dict | None:
    """The compile's run facts (compile-stats.json beside the manifest), if there."""
    try:
        return json.loads(ds.location.read_bytes(STATS_NAME))
    except (OSError, ValueError):
        return None


def dump_rows(ds: Dataset, sample: int | str | None = None, shard: int | None = None) -> list[dict]:
    """Node metadata rows (sample, key, x1, x2, y1, y2, size, cx, cy, depth, edges)."""
    if sample is not None:
        data = ds.read_sample(sample)
        n = len(data.nodes["x1"])
        return [{"sample": data.meta["sample"], "key": data.meta["key"],
                 **{k: _py(v[i]) for k, v in data.nodes.items()}} for i in range(n)]  # fmt: skip
    shards = range(len(ds.manifest.shards)) if shard is None else [shard]
    rows = []
    keys = dict(zip(ds.samples["sample"].to_pylist(), ds.samples["key"].to_pylist()))
    for i in shards:
        table = ds.nodes(i).to_pydict()
        for j in range(len(table["sample"])):
            row = {k: table[k][j] for k in table}
            rows.append({"sample": row["sample"], "key": keys.get(row["sample"]), **{k: v for k, v in row.items() if k != "sample"}})
    return rows


def _py(v):
    return v.item() if hasattr(v, "item") else v


def format_rows(rows: list[dict], fmt: str) -> str:
    """Rows as an aligned table, CSV or JSON lines."""
    if not rows:
        return ""
    cols = list(rows[0])
    if fmt == "jsonl":
        return "\n".join(json.dumps(r) for r in rows)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, cols, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    cells = [[("%g" % v) if isinstance(v, float) else str(v) for v in r.values()] for r in rows]
    width = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, width))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, width)) for row in cells]
    return "\n".join(lines)


def _original(ds: Dataset, meta: dict, input_root: InputPath,
              storage_options: dict | None) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """The sample's source image (and mask) on its canvas, re-read from ``input_root``: the
    inputs are found again by the dataset's layout, so masks come from where that layout keeps
    them (a folder compiled with ``--masks`` shows no mask here)."""
    params = ds.manifest.parameters
    paip_label = params.get("paip_label", "both")
    items, _ = discover(input_root, params.get("layout", "auto"), paip_label=paip_label,
                        storage_options=storage_options)  # fmt: skip
    item = next((it for it in items if it.source == meta["source"]), None)
    if item is None:
        raise InputError(input_root, f"holds no input {meta['source']!r} (the sample's source)",
                         "pass the INPUT the dataset was compiled from")  # fmt: skip
    frames = load_frames(item, params.get("resolution"), paip_label, storage_options)
    frame = next(f for f in frames if f.key == meta["key"])
    canvas = fit_canvas(frame.image, frame.mask, params.get("resolution"), params.get("fit", "square"))
    return canvas.image, canvas.mask


def write_preview(ds: Dataset, sample: int | str, out: str | Path, input_root: str | Path | None = None,
                  storage_options: dict | None = None) -> Path:
    """PNG of one sample, panels side by side.

    With ``input_root`` (the compile's INPUT): the source image on its canvas with the leaf borders,
    the mask, and the mask rebuilt from its patches. Without: the image rebuilt from its patches
    with the leaf borders, and the rebuilt mask (the dataset holds no full-size pixels).
    """
    data = ds.read_sample(sample)
    canvas = (int(data.meta["canvas_h"]), int(data.meta["canvas_w"]))
    leaves = Leaves.from_columns(data.nodes, canvas)
    labelled = data.mask is not None and data.meta.get("mask_source")
    if input_root is not None:
        image, mask = _original(ds, data.meta, as_input_path(input_root), storage_options)
        panels = [draw_leaves(image, leaves)]
        if mask is not None:
            panels.append(colorize_labels(mask))
    else:
        panels = [draw_leaves(reconstruct(data.image, leaves, canvas), leaves)]
    if labelled:
        panels.append(colorize_labels(reconstruct(data.mask, leaves, canvas)))
    picture = side_by_side(*panels)
    zoom = max(1, 384 // max(canvas))  # small canvases (a CT slice) are enlarged to be seen
    if zoom > 1:
        picture = np.repeat(np.repeat(picture, zoom, axis=0), zoom, axis=1)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture[:, :, ::-1]):
        raise OSError(f"{path}: could not write the preview (use a .png name in a writable folder)")
    return path
