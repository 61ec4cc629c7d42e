"""``apfcompile report``: one self-contained HTML page about a dataset, to look at before training.

The page holds, with nothing fetched from anywhere (styles inline, pictures as ``data:`` PNGs,
plots as inline SVG drawn here, no script but the few lines that mark every picture as decoded):

- plots: sequence lengths, gamma, leaf sizes, ceiling Dice per class across samples;
- a gallery: the samples with the worst ceiling first, then a seeded random choice, each its
  image (rebuilt from the patches, or the source with ``input_root``) with its leaf borders, its
  mask(s) and the mask rebuilt from the patches, with key, length, gamma and per-class ceiling;
- a legend: class ids, names and the colours the pictures use;
- the summary ``inspect`` prints (counts, parameters, splits, statistics, warnings, failures).

Cost is bounded by what the page shows, not by the dataset: the samples table (read on opening),
the node tables of at most ``LEAF_SHARDS`` shards (spread over the dataset) for the leaf sizes,
and the samples of the gallery. A 10,000-sample dataset reports in seconds, from object storage
too.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import cv2
import numpy as np

from formats import Dataset

from .preview import colorize_labels, draw_leaves, radiological, side_by_side

__all__ = ["LEAF_SHARDS", "gallery_samples", "write_report"]

LEAF_SHARDS = 4
"""Node tables read for the leaf-size plot (evenly spread over the shards)."""

THUMB = 224
"""Pixels per side of each gallery panel."""


def gallery_samples(ds: Dataset, count: int, seed: int = 0) -> list[int]:
    """Rows of ``ds.samples`` for the gallery: the ``count // 2`` lowest ceilings (labelled
    samples; all of them when the dataset has no ceiling), then a seeded random choice of the rest."""
    t = ds.samples
    n = t.num_rows
    count = min(count, n)
    ceiling = np.array([np.nan if c is None else c for c in t["ceiling_dice"].to_pylist()], float)
    has = np.flatnonzero(~np.isnan(ceiling))
    worst = has[np.argsort(ceiling[has], kind="stable")][: count // 2].tolist() if has.size else []
    rest = np.setdiff1d(np.arange(n), worst)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(rest, size=min(count - len(worst), rest.size), replace=False) if rest.size else []
    return [int(i) for i in worst] + sorted(int(i) for i in chosen)


def write_report(
    ds: Dataset,
    out: str | Path,
    gallery: int = 12,
    seed: int = 0,
    input_root=None,
    masks=None,
    progress: bool = False,
) -> Path:
    """Write the report page of ``ds`` to ``out`` (see the module docstring); returns its path.
    ``gallery``: samples shown; ``seed``: the random part of their choice; ``input_root`` /
    ``masks``: the compile's INPUT (and ``--masks``), to show the source pixels and mask."""
    from .report import summary

    m = ds.manifest
    names = {c.id: c.name for c in (m.classes or [])}
    rows = gallery_samples(ds, gallery, seed)
    cards, labels_seen = [], set()
    iterator = rows
    if progress:
        from tqdm import tqdm

        iterator = tqdm(rows, desc="report: gallery", unit="sample", leave=False)
    for row in iterator:
        card, labels = _card(ds, row, input_root, masks)
        cards.append(card)
        labels_seen |= labels
    shards = _spread(len(m.shards), LEAF_SHARDS)
    sizes = np.concatenate([ds.nodes(i)["size"].to_numpy() for i in shards]) if shards else np.zeros(0)
    t = ds.samples
    parts = [
        _HEAD.format(title=html.escape(f"apfcompile report: {ds.path}")),
        f"<h1>{html.escape(str(ds.path))}</h1>",
        f"<p class=lead>{_lead(ds)}</p>",
        "<h2>Distributions</h2><div class=plots>",
        _histogram(t["count"].to_numpy(), "sequence length (leaves per sample)", "samples"),
        _histogram(t["gamma"].to_numpy(), "gamma (uniform patches / leaves)", "samples"),
        _bars(
            *np.unique(sizes, return_counts=True),
            f"leaf sizes (px; nodes of {len(shards)} of {len(m.shards)} shard(s))",
            "leaves",
        ),
        _ceiling_plot(ds, names),
        "</div>",
        f"<h2>Gallery</h2><p>{_gallery_note(len(rows), gallery, seed)}</p>",
        _legend(sorted(labels_seen | set(names)), names),
        "<div class=gallery>",
        *cards,
        "</div>",
        "<h2>Summary</h2><details open><summary>what <code>apfcompile inspect</code> prints</summary>",
        f"<pre>{html.escape(summary(ds, leaf_shards=shards))}</pre></details>",
        _SCRIPT,
        "</body></html>",
    ]
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(path)
    return path


def _spread(n: int, k: int) -> list[int]:
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, min(n, k))}) if n else []


def _lead(ds: Dataset) -> str:
    m, t = ds.manifest, ds.manifest.totals
    cell = " x ".join([str(m.patch_size)] * m.dims)
    kind = "volumes" if m.dims == 3 else "images"
    masks = f", masks {m.mask_dtype}" if m.mask_dtype else ", no masks"
    return html.escape(
        f"{t['samples']:,} samples ({kind}), {t['nodes']:,} leaves in {t['shards']} shard(s), "
        f"{t['bytes'] / 1e6:,.1f} MB; patches {cell} x {m.channels} {m.image_dtype}{masks}; "
        f"{t['failures']} input(s) failed"
    )


def _gallery_note(shown: int, asked: int, seed: int) -> str:
    return html.escape(
        f"{shown} sample(s): the {asked // 2} with the lowest ceiling Dice first (where the dataset has "
        f"masks), then a random choice (seed {seed}). Each: the image with its leaf borders, the mask, "
        "and the mask rebuilt from the patches."
    )


def _card(ds: Dataset, row: int, input_root, masks) -> tuple[str, set[int]]:
    """One gallery card (HTML) and the labels its pictures show."""
    from .core.reconstruct import reconstruct
    from .preview import _display, _radiological

    meta = {k: v[0] for k, v in ds.samples.slice(row, 1).to_pydict().items()}
    if ds.manifest.dims == 3:
        return _volume_card(ds, meta)
    data = ds.read_sample(int(meta["sample"]))
    leaves = data.nodes
    canvas = (int(meta["canvas_h"]), int(meta["canvas_w"]))
    window = ds.manifest.parameters.get("window") if meta.get("modality") == "ct" else None
    labels: set[int] = set()
    if input_root is not None:
        from .inputs.locations import Place
        from .originals import original_on_canvas

        image, source_mask = original_on_canvas(ds, int(meta["sample"]), Place.of(input_root), masks)
    else:
        image, source_mask = reconstruct(data.image, leaves, None, canvas), None
    panels = [draw_leaves(_display(image, window), leaves)]
    if source_mask is not None:
        panels.append(colorize_labels(source_mask))
        labels |= set(np.unique(source_mask).tolist())
    if data.mask is not None and meta.get("mask_source"):
        rebuilt = reconstruct(data.mask, leaves, None, canvas)
        panels.append(colorize_labels(rebuilt))
        labels |= set(np.unique(rebuilt).tolist())
    if _radiological(meta):
        panels = [radiological(p) for p in panels]
    picture = side_by_side(*[_thumb(p) for p in panels], gap=4)
    return _card_html(meta, picture, ds), {int(v) for v in labels}


def _volume_card(ds: Dataset, meta: dict) -> tuple[str, set[int]]:
    """A volume's card: its axial plane through the centre (rebuilt image with the leaves that
    plane cuts, rebuilt mask)."""
    from .core.edges import to_grey, to_uint8
    from .core.reconstruct import reconstruct
    from .preview import plane

    data = ds.read_sample(int(meta["sample"]))
    d = data.nodes.canvas[0]
    flat, layer = plane(data.nodes, data.image, 0, d // 2)
    picture = reconstruct(layer, flat, None, flat.canvas)
    window = ds.manifest.parameters.get("window")
    if window is not None and picture.dtype != np.uint8:
        picture = to_uint8(to_grey(picture), tuple(window))
    panels, labels = [draw_leaves(picture, flat)], set()
    if data.mask is not None and meta.get("mask_source"):
        _, mask_layer = plane(data.nodes, data.mask, 0, d // 2)
        rebuilt = reconstruct(mask_layer, flat, None, flat.canvas)
        panels.append(colorize_labels(rebuilt))
        labels = set(np.unique(rebuilt).tolist())
    return _card_html(meta, side_by_side(*[_thumb(p) for p in panels], gap=4), ds), {int(v) for v in labels}


def _thumb(picture: np.ndarray) -> np.ndarray:
    h, w = picture.shape[:2]
    scale = THUMB / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(picture, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST)


def _png(picture: np.ndarray) -> str:
    ok, data = cv2.imencode(".png", picture[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB array
        raise ValueError("could not encode a gallery picture")
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode("ascii")


def _card_html(meta: dict, picture: np.ndarray, ds: Dataset) -> str:
    names = {c.id: c.name for c in (ds.manifest.classes or [])}
    facts = [f"L = {meta['count']}"]
    if meta.get("gamma") is not None:
        facts.append(f"gamma = {meta['gamma']:.2f}")
    ceiling = meta.get("ceiling_dice")
    if ceiling is not None and ceiling == ceiling:
        facts.append(f"ceiling Dice {ceiling:.3f}")
    per_class = ""
    classes, dice = meta.get("ceiling_classes"), meta.get("ceiling_per_class")
    if classes and dice:
        pairs = sorted(((d, c) for c, d in zip(classes, dice) if c != 0), key=lambda p: p[0])
        per_class = ", ".join(f"{html.escape(names.get(c, f'label_{c}'))} {d:.2f}" for d, c in pairs[:6])
        if len(pairs) > 6:
            per_class += f", ... ({len(pairs)} classes)"
    split = f" · {html.escape(str(meta['split']))}" if meta.get("split") else ""
    return (
        f"<figure><img src='{_png(picture)}' width={picture.shape[1]} height={picture.shape[0]} "
        f"alt='{html.escape(str(meta['key']))}'><figcaption><b>{html.escape(str(meta['key']))}</b>{split}<br>"
        f"{' · '.join(facts)}"
        + (f"<br><small>per class: {per_class}</small>" if per_class else "")
        + "</figcaption></figure>"
    )


def _legend(labels: list[int], names: dict[int, str], limit: int = 64) -> str:
    if not labels:
        return ""
    items = []
    for v in labels[:limit]:
        r, g, b = (int(x) for x in colorize_labels(np.array([[v]]))[0, 0])
        name = html.escape(names.get(v, f"label_{v}"))
        items.append(f"<span class=key><i style='background:rgb({r},{g},{b})'></i>{v} {name}</span>")
    more = f"<span class=key>+{len(labels) - limit} more</span>" if len(labels) > limit else ""
    return f"<div class=legend>{''.join(items)}{more}</div>"


# -- plots: inline SVG -----------------------------------------------------------------------------

_W, _H, _PAD = 420, 210, 36


def _svg(title: str, body: str, ylabel: str) -> str:
    return (
        f"<figure class=plot><svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {_W} {_H}' width={_W} "
        f"height={_H} role=img aria-label='{html.escape(title)}'>"
        f"<text x={_W / 2} y=14 text-anchor=middle class=t>{html.escape(title)}</text>"
        f"<text x=10 y={_H / 2} transform='rotate(-90 10 {_H / 2})' text-anchor=middle class=a>"
        f"{html.escape(ylabel)}</text>{body}</svg></figure>"
    )


def _bars(values, counts, title: str, ylabel: str, labels: list[str] | None = None) -> str:
    values, counts = list(values), [float(c) for c in counts]
    if not values:
        return _svg(title, f"<text x={_W / 2} y={_H / 2} text-anchor=middle class=a>no data</text>", ylabel)
    top = max(counts) or 1.0
    n = len(values)
    width = (_W - _PAD - 8) / n
    body = []
    for i, (v, c) in enumerate(zip(values, counts)):
        h = (_H - _PAD - 24) * c / top
        x = _PAD + i * width
        y = _H - _PAD - h
        label = labels[i] if labels else (f"{v:g}" if isinstance(v, float) else str(v))
        body.append(
            f"<rect x={x + 1:.1f} y={y:.1f} width={max(width - 2, 1):.1f} height={h:.1f} class=b>"
            f"<title>{html.escape(label)}: {c:g}</title></rect>"
        )
        if n <= 16 or i % math.ceil(n / 12) == 0:
            tick = html.escape(label[:10])
            body.append(f"<text x={x + width / 2:.1f} y={_H - _PAD + 12} text-anchor=middle class=a>{tick}</text>")
    body.append(f"<text x={_PAD - 4} y={28} text-anchor=end class=a>{_tick(top)}</text>")
    body.append(f"<line x1={_PAD} y1={_H - _PAD} x2={_W - 8} y2={_H - _PAD} class=l />")
    return _svg(title, "".join(body), ylabel)


def _tick(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"


def _histogram(values: np.ndarray, title: str, ylabel: str, bins: int = 24) -> str:
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]
    if not v.size:
        return _bars([], [], title, ylabel)
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return _bars([lo], [v.size], title, ylabel, [f"{lo:g}"])
    counts, edges = np.histogram(v, bins=min(bins, max(1, np.unique(v).size)))
    labels = [f"{(a + b) / 2:.3g}" for a, b in zip(edges[:-1], edges[1:])]
    return _bars(labels, counts, title, ylabel, labels)


def _ceiling_plot(ds: Dataset, names: dict[int, str]) -> str:
    """Mean ceiling Dice per class across the samples that hold the class (foreground classes)."""
    t = ds.samples
    if "ceiling_classes" not in t.column_names:
        return ""
    sums: dict[int, list[float]] = {}
    for classes, dice in zip(t["ceiling_classes"].to_pylist(), t["ceiling_per_class"].to_pylist()):
        for c, d in zip(classes or [], dice or []):
            if c != 0:
                sums.setdefault(int(c), []).append(float(d))
    if not sums:
        return ""
    ids = sorted(sums)[:40]
    means = [float(np.mean(sums[c])) for c in ids]
    labels = [names.get(c, f"label_{c}") for c in ids]
    more = f", first 40 of {len(sums)}" if len(sums) > 40 else ""
    return _bars(labels, means, f"ceiling Dice per class (mean over samples{more})", "Dice", labels)


_HEAD = """<!doctype html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1240px;
padding:0 16px;color:#222}}
h1{{font-size:20px;word-break:break-all}} h2{{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}}
.lead{{color:#444}} pre{{background:#f6f6f6;padding:10px;overflow-x:auto;font-size:12px}}
.plots{{display:flex;flex-wrap:wrap;gap:12px}} .plot{{margin:0;border:1px solid #eee}}
svg .b{{fill:#3b7dd8}} svg .t{{font-size:12px;font-weight:600}} svg .a{{font-size:9px;fill:#555}} svg .l{{stroke:#999}}
.gallery{{display:flex;flex-wrap:wrap;gap:14px}} figure{{margin:0}} .gallery figure{{width:min-content}}
figcaption{{font-size:12px}}
.legend{{display:flex;flex-wrap:wrap;gap:4px 12px;margin:8px 0 14px;font-size:12px}}
.key i{{display:inline-block;width:12px;height:12px;margin-right:4px;border:1px solid #777;vertical-align:-2px}}
</style></head><body>"""

_SCRIPT = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.images = ok + "/" + imgs.length;
});
</script>"""
