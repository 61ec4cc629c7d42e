"""What is inside a dataset: the summary behind ``inspect`` and the rows behind ``dump``."""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from formats import Dataset

from .build.adaptivity import dataset_warnings
from .build.outputs import STATS_NAME
from .inputs.layouts import CT_WINDOW

__all__ = ["dump_rows", "format_rows", "summary"]


def _quantiles(values: np.ndarray) -> str:
    if values.size == 0:
        return "-"
    q = np.percentile(values, [0, 50, 100])
    return f"min {q[0]:.4g} / median {q[1]:.4g} / max {q[2]:.4g}"


def summary(ds: Dataset, leaf_shards: list[int] | None = None) -> str:
    """A human-readable summary: parameters, counts, distributions, ceiling Dice, bytes, errors.
    ``leaf_shards``: the shards whose node tables give the leaf sizes (None: all)."""
    m = ds.manifest
    t = m.totals
    samples = ds.samples
    lines = [
        f"dataset   {ds.path}",
        f"format    apfcompile v{m.version}; {t['shards']} shard(s), {t['samples']} sample(s), "
        f"{t['nodes']} node(s), {t['bytes'] / 1e6:.2f} MB",
        f"patches   {' x '.join([str(m.patch_size)] * m.dims)} x {m.channels} {m.image_dtype}"
        f"{' (volumes: one octree sequence each)' if m.dims == 3 else ''}; "
        f"masks {m.mask_dtype or 'none'}" + (f", ignore {m.ignore_index}" if m.ignore_index is not None else ""),
        "views     " + ", ".join(f"blur {v.blur} canny {v.canny_lo:g}/{v.canny_hi:g}" for v in m.views),
        "params    "
        + ", ".join(f"{k}={v}" for k, v in sorted(m.parameters.items()) if v is not None and k not in DECISIONS),
    ]
    lines += _decisions(m.parameters)
    if m.splits is not None:
        lines.append(_splits_line(m, samples))
    lines += _statistics(m)
    lines += _classes(m)
    lines += _modalities(samples, m.parameters)
    if m.mask_dtype is not None and samples.num_rows:
        unlabelled = int((~samples["labelled"].to_numpy(zero_copy_only=False).astype(bool)).sum())
        if unlabelled:
            lines.append(
                f"labelled  {samples.num_rows - unlabelled} sample(s); {unlabelled} unlabelled "
                f"(mask rows all {m.ignore_index}, items' labelled=False)"
            )
    if samples.num_rows:
        count = samples["count"].to_numpy()
        gamma = samples["gamma"].to_numpy()
        lines.append(f"length    {_quantiles(count)} leaves per sample")
        cell = " x ".join(["p"] * m.dims)
        lines.append(f"gamma     {_quantiles(gamma)} (uniform {cell} patches / leaves)")
        shards = range(len(m.shards)) if leaf_shards is None else leaf_shards
        sizes = np.concatenate([ds.nodes(i)["size"].to_numpy() for i in shards])
        values, counts = np.unique(sizes, return_counts=True)
        part = "" if leaf_shards is None else f"  (of {len(leaf_shards)} of {len(m.shards)} shards)"
        lines.append("leaves    " + "  ".join(f"{v}px:{c / sizes.size:.1%}" for v, c in zip(values, counts)) + part)
        dice = samples["ceiling_dice"].to_numpy(zero_copy_only=False)
        dice = dice[~np.isnan(dice.astype(float))] if dice.size else dice
        if dice.size:
            lines.append(f"ceiling   mean foreground Dice {np.mean(dice):.2%} ({_quantiles(dice * 100)} %)")
    stats = _stats(ds)
    if stats:
        worker = stats.get("peak_worker_rss_mib")
        lines.append(
            f"compile   peak memory {stats['peak_rss_mib']} MiB"
            + (f" (largest worker {worker} MiB)" if worker else "")
            + f", {stats['wall_s']} s with {stats['workers']} worker(s)"
        )
    for line in dataset_warnings(ds):
        lines.append(f"warning   {line}")
    lines.append(f"errors    {t['failures']}")
    for f in m.failures:
        lines.append(f"  {f.source}: {f.error}")
    return "\n".join(lines)


DECISIONS = {
    "channels_first_by_shape": "3-D arrays taken as C x H x W by their shape",
    "arrays_by_default": ".npz arrays picked without --image-key/--mask-key",
    "ct_by_rule": "taken as CT by --modality auto",
    "grey_from_rgb": "grey stored as RGB (R = G = B), kept as one channel",
    "unnamed_labels": "labels with no class name, stored as label_N",
    "orientation_unknown": "volumes whose header names no orientation, sliced as stored",
}
"""Manifest parameters that record what a compile decided without being told, and what each means."""


def _splits_line(m, samples) -> str:
    p = m.parameters
    groups: dict[str, set] = {}
    if "split_group" in samples.column_names:
        for g, s in zip(samples["split_group"].to_pylist(), samples["split"].to_pylist()):
            groups.setdefault(s, set()).add(g)
    parts = [f"{name} {n} ({len(groups.get(name, ()))} group(s))" for name, n in m.splits.items()]
    how = (
        f"by {p.get('split_by', 'case')}, seed {p.get('split_seed', 0)}"
        if p.get("split")
        else "from --split-from"
        if p.get("split_from")
        else "from the layout's folders"
    )
    return f"splits    {', '.join(parts)}; {how}"


def _decisions(parameters: dict) -> list[str]:
    out = []
    for key, meaning in DECISIONS.items():
        values = parameters.get(key)
        if not values:
            continue
        shown = ", ".join(map(str, values[:3])) + (f", ... ({len(values)} in all)" if len(values) > 3 else "")
        out.append(f"decided   {meaning}: {shown}")
    return out


def _statistics(m) -> list[str]:
    st = m.statistics or {}
    out = []
    for name, entry in st.items():

        def fmt(values: list[float]) -> str:
            return "/".join(f"{v:.4g}" for v in values)

        line = f"stats     {name}: {entry['samples']} sample(s), mean {fmt(entry['mean'])}, std {fmt(entry['std'])}"
        w = entry.get("windowed")
        if w:
            line += f"; in window {w['window'][0]:g}..{w['window'][1]:g}: mean {fmt(w['mean'])}, std {fmt(w['std'])}"
        cells = entry["classes"]["cells"]
        if cells:
            total = sum(cells.values()) or 1
            top = sorted(cells.items(), key=lambda kv: -kv[1])[:4]
            line += "; token share " + ", ".join(f"{k}:{n / total:.1%}" for k, n in top)
        out.append(line)
    return out


def _classes(m) -> list[str]:
    if not m.classes:
        return []
    if any(c.pixels is None for c in m.classes):
        return ["classes   " + ", ".join(f"{c.id}:{c.name}" for c in m.classes)]
    total = sum(c.pixels for c in m.classes) or 1
    width = max(len(c.name) for c in m.classes)
    out = [f"classes   {len(m.classes)}; pixels of the masks as read (before the canvas; unlabelled samples excluded)"]
    for c in m.classes[:MAX_CLASSES_SHOWN]:
        out.append(f"  {c.id:>5}  {c.name:<{width}}  {c.pixels:>14,}  {c.pixels / total:7.3%}")
    rest = m.classes[MAX_CLASSES_SHOWN:]
    if rest:
        share = sum(c.pixels for c in rest) / total
        out.append(
            f"  ... {len(rest)} more (ids {rest[0].id}..{rest[-1].id}, {share:.3%} of pixels; "
            "all in apf.json's classes)"
        )
    return out


MAX_CLASSES_SHOWN = 32
"""``inspect`` lists this many classes one per line (instance masks can hold hundreds)."""


def _modalities(samples, parameters: dict) -> list[str]:
    if not samples.num_rows or "modality" not in samples.column_names:
        return []
    values = [v for v in samples["modality"].to_pylist() if v is not None]
    if not values:
        return []
    kinds, counts = np.unique(np.array(values), return_counts=True)
    window = parameters.get("window") or CT_WINDOW
    parts = []
    for kind, n in zip(kinds.tolist(), counts.tolist()):
        if kind == "ct":
            parts.append(f"ct {n} (HU window {window[0]:g}..{window[1]:g} for edges, padding -1024)")
        else:
            parts.append(f"{kind} {n}")
    return ["modality  " + ", ".join(parts) + " sample(s)"]


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
        cols = data.nodes.columns()
        return [
            {"sample": data.meta["sample"], "key": data.meta["key"], **{k: _py(v[i]) for k, v in cols.items()}}
            for i in range(len(data.nodes))
        ]
    shards = range(len(ds.manifest.shards)) if shard is None else [shard]
    rows = []
    keys = dict(zip(ds.samples["sample"].to_pylist(), ds.samples["key"].to_pylist()))
    for i in shards:
        table = ds.nodes(i).to_pydict()
        for j in range(len(table["sample"])):
            row = {k: table[k][j] for k in table}
            rows.append(
                {
                    "sample": row["sample"],
                    "key": keys.get(row["sample"]),
                    **{k: v for k, v in row.items() if k != "sample"},
                }
            )
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
    cells = [[f"{v:g}" if isinstance(v, float) else str(v) for v in r.values()] for r in rows]
    width = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, width))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, width)) for row in cells]
    return "\n".join(lines)


SAMPLE_FIELDS = ("sample", "key", "shard", "view", "length", "gamma", "ceiling", "split", "labelled", "source")
"""The fields of ``ls`` rows, in order (the same names in every ``--format``)."""


def sample_rows(ds: Dataset, sort: str | None = None) -> list[dict]:
    """One row per sample (``SAMPLE_FIELDS``): its id, key, shard, view, length (leaves), gamma,
    ceiling (mean foreground Dice of the mask rebuilt from its patches; None unlabelled), split,
    labelled, source. ``sort``: a field name, ``-`` in front for descending (None values last)."""
    t = ds.samples
    n = t.num_rows
    cols = {
        "sample": t["sample"].to_pylist(),
        "key": t["key"].to_pylist(),
        "shard": t["shard"].to_pylist(),
        "view": t["view"].to_pylist(),
        "length": t["count"].to_pylist(),
        "gamma": [None if g is None else round(float(g), 4) for g in t["gamma"].to_pylist()],
        "ceiling": [None if c is None or c != c else round(float(c), 4) for c in t["ceiling_dice"].to_pylist()],
        "split": t["split"].to_pylist() if "split" in t.column_names else [None] * n,
        "labelled": t["labelled"].to_pylist(),
        "source": t["source"].to_pylist(),
    }
    rows = [{f: cols[f][i] for f in SAMPLE_FIELDS} for i in range(n)]
    if sort:
        field = sort.lstrip("-")
        if field not in SAMPLE_FIELDS:
            raise ValueError(
                f"sort: expected one of {', '.join(SAMPLE_FIELDS)} (- in front: descending), found {sort!r}"
            )
        present = [r for r in rows if r[field] is not None]
        present.sort(key=lambda r: r[field], reverse=sort.startswith("-"))
        rows = present + [r for r in rows if r[field] is None]
    return rows


def summary_dict(ds: Dataset) -> dict:
    """What ``inspect`` prints, as one JSON-ready document (``inspect --json``): the manifest's
    facts, the distributions over samples and leaves, the compile's run facts and the warnings."""
    m = ds.manifest
    samples = ds.samples
    doc: dict = {
        "dataset": str(ds.path),
        "format_version": m.version,
        "totals": dict(m.totals),
        "patch_size": m.patch_size,
        "dims": m.dims,
        "channels": m.channels,
        "image_dtype": m.image_dtype,
        "mask_dtype": m.mask_dtype,
        "ignore_index": m.ignore_index,
        "views": [{"blur": v.blur, "canny_lo": v.canny_lo, "canny_hi": v.canny_hi} for v in m.views],
        "parameters": {k: v for k, v in m.parameters.items() if k not in DECISIONS},
        "decisions": {DECISIONS[k]: m.parameters[k] for k in DECISIONS if m.parameters.get(k)},
        "classes": [{"id": c.id, "name": c.name, "pixels": c.pixels} for c in (m.classes or [])],
        "splits": m.splits,
        "statistics": m.statistics,
        "failures": [{"source": f.source, "error": f.error} for f in m.failures],
        "warnings": list(dataset_warnings(ds)),
        "compile": _stats(ds),
    }
    if samples.num_rows:

        def dist(values) -> dict:
            v = np.asarray(values, float)
            v = v[~np.isnan(v)]
            if not v.size:
                return {}
            q = np.percentile(v, [0, 50, 100])
            return {"min": float(q[0]), "median": float(q[1]), "max": float(q[2]), "mean": float(v.mean())}

        sizes = np.concatenate([ds.nodes(i)["size"].to_numpy() for i in range(len(m.shards))])
        values, counts = np.unique(sizes, return_counts=True)
        dice = samples["ceiling_dice"].to_numpy(zero_copy_only=False)
        doc["length"] = dist(samples["count"].to_numpy())
        doc["gamma"] = dist(samples["gamma"].to_numpy())
        doc["leaf_sizes"] = {str(int(v)): int(c) for v, c in zip(values, counts)}
        doc["ceiling_dice"] = dist([np.nan if d is None else d for d in dice.tolist()])
    return doc
