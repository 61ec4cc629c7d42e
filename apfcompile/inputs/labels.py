"""What mask labels mean: class names, label maps, and the labels a compile found.

- **Class names** come from ``--classes FILE`` (JSON ``{"1": "liver", ...}`` or CSV ``id,name``),
  else from the layout's own file (nnU-Net's ``dataset.json``): *given* names, trusted for the ids
  they name. A layout's *default* names (BTCV's 13 organs, PAIP's three) apply only when every
  label found is one they name: a whole-body segmentation in the BTCV layout must not have its
  liver called "esophagus". A label no name covers is stored as ``label_N``, with one warning
  line naming the labels and the first file holding them (:func:`name_classes`).
- **Label maps** (``--label-map 255:1``, or a JSON/CSV file of ``from,to``) remap labels before
  anything else reads the mask (:func:`apply_label_map`, vectorised through a lookup table or a
  sorted search).
- **Labels found**: :func:`count_labels` gives each label's pixel count; a compile sums them over
  its samples (:mod:`apfcompile.build.statistics`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, ParameterError

__all__ = [
    "ClassNames",
    "apply_label_map",
    "count_labels",
    "histogram_u8",
    "name_classes",
    "read_class_names",
    "read_label_map",
]


def _read_pairs(path: Path, what: str) -> list[tuple[str, str]]:
    """(key, value) pairs from a JSON object or a two-column CSV (a header row is skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read ({exc})", f"give a JSON or CSV file of {what}") from None
    if Path(path).suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise InputError(path, f"is not valid JSON ({exc})", f"give a JSON object of {what}") from None
        if not isinstance(doc, dict):
            raise InputError(path, "is not a JSON object", f"give a JSON object of {what}")
        return [(str(k), str(v)) for k, v in doc.items()]
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and not rows[0][0].strip().lstrip("-").isdigit():
        rows = rows[1:]  # a header
    if any(len(r) != 2 for r in rows):
        raise InputError(path, "has rows that are not two columns", f"give one {what} pair per row")
    return [(a.strip(), b.strip()) for a, b in rows]


def read_class_names(path: str | Path) -> dict[int, str]:
    """Label id -> class name from a JSON object (``{"1": "liver"}``, or ``{"liver": 1}`` as
    nnU-Net writes it) or a CSV of ``id,name`` rows."""
    pairs = _read_pairs(Path(path), "id,name")
    names: dict[int, str] = {}
    for a, b in pairs:
        key, name = (a, b) if _is_int(a) else (b, a)
        if not _is_int(key):
            raise InputError(path, f"entry {a!r}: {b!r} has no integer label id", "give id,name pairs")
        names[int(key)] = name
    return names


def read_label_map(specs: Sequence[str]) -> dict[int, int]:
    """``FROM:TO`` pairs, or paths of JSON/CSV files of them, as one mapping (later wins)."""
    out: dict[int, int] = {}
    for spec in specs:
        if Path(spec).is_file():
            pairs = _read_pairs(Path(spec), "from,to")
        else:
            a, sep, b = spec.partition(":")
            if not sep:
                raise ParameterError("label_map", "FROM:TO (e.g. 255:1) or a JSON/CSV file", spec)
            pairs = [(a, b)]
        for a, b in pairs:
            if not (_is_int(a) and _is_int(b)):
                raise ParameterError("label_map", "integer labels FROM:TO", f"{a}:{b}")
            out[int(a)] = int(b)
    return out


def _is_int(s: str) -> bool:
    return s.strip().lstrip("-").isdigit()


def apply_label_map(mask: np.ndarray, mapping: Mapping[int, int] | None) -> np.ndarray:
    """``mask`` with each label ``a`` in ``mapping`` replaced by ``mapping[a]`` (others kept). The
    result keeps the mask's dtype when every target fits it, else widens to the smallest that holds
    them (int64 at most)."""
    if not mapping:
        return mask
    src = np.fromiter(mapping.keys(), np.int64)
    dst = np.fromiter(mapping.values(), np.int64)
    info = np.iinfo(mask.dtype) if mask.dtype.kind in "iu" else np.iinfo(np.uint8)
    fits = info.min <= dst.min() and dst.max() <= info.max
    dtype = (
        mask.dtype if fits else np.result_type(mask.dtype, np.min_scalar_type(dst.max()), np.min_scalar_type(dst.min()))
    )
    if mask.dtype in (np.uint8, np.uint16) or mask.dtype == np.bool_:
        flat = mask.view(np.uint8) if mask.dtype == np.bool_ else mask
        lut = np.arange(np.iinfo(flat.dtype).max + 1, dtype=dtype)
        keep = (src >= 0) & (src < lut.size)
        lut[src[keep]] = dst[keep]
        return lut[flat]
    order = np.argsort(src)
    src, dst = src[order], dst[order]
    out = mask.astype(dtype, copy=True)
    pos = np.clip(np.searchsorted(src, mask), 0, src.size - 1)
    hit = src[pos] == mask
    out[hit] = dst[pos[hit]]
    return out


def histogram_u8(a: np.ndarray) -> np.ndarray:
    """Count of each value 0..255 in a uint8 array: (256,) int64. OpenCV's histogram below 2**24
    values (its float32 counts are exact there; 4x NumPy's bincount, which widens every value to
    int64 first), NumPy's above."""
    if a.size >= 1 << 24:
        return np.bincount(a.ravel(), minlength=256)
    import cv2

    counts = cv2.calcHist([np.ascontiguousarray(a).reshape(1, -1)], [0], None, [256], [0, 256])
    return counts.ravel().astype(np.int64)


def count_labels(mask: np.ndarray) -> dict[int, int]:
    """Pixel count per label present in ``mask`` (an integer array)."""
    if mask.size == 0:
        return {}
    if mask.dtype == np.uint8:
        counts = histogram_u8(mask)
        found = np.flatnonzero(counts)
        return dict(zip(found.tolist(), counts[found].tolist()))
    if mask.dtype == np.uint16:
        counts = np.bincount(mask.ravel(), minlength=1)
        found = np.flatnonzero(counts)
        return dict(zip(found.tolist(), counts[found].tolist()))
    labels, counts = np.unique(mask, return_counts=True)
    return dict(zip(labels.tolist(), counts.tolist()))


@dataclass(frozen=True)
class ClassNames:
    """The class list a compile stores: ``(id, name, pixels)`` per label, sorted by id; and the
    labels no name covered (stored as ``label_N``)."""

    classes: tuple[tuple[int, str, int], ...]
    unnamed: tuple[int, ...]
    defaults_dropped: bool = False
    """A layout's default names were not used because some label found is not among them."""


def name_classes(
    found: Mapping[int, int],
    given: Mapping[int, str] | None,
    defaults: Sequence[str] | None,
    ignore: int | None = None,
) -> ClassNames:
    """Names for the labels ``found`` (label -> pixels): ``given`` names are used for the ids they
    name; otherwise the layout's ``defaults`` (index = id) only when they name every label found;
    the rest are ``label_N``. Every named id is listed (0 pixels where absent); ``ignore`` is not
    a class."""
    found = {int(k): int(v) for k, v in found.items() if k != ignore}
    dropped = False
    if given is not None:
        names = dict(given)
    elif defaults is not None:
        names = dict(enumerate(defaults))
        if any(k not in names for k in found):
            names, dropped = {}, True
    else:
        names = {}
    ids = sorted((set(found) | set(names)) - ({ignore} if ignore is not None else set()))
    unnamed = tuple(k for k in ids if k not in names)
    classes = tuple((k, names.get(k, f"label_{k}"), found.get(k, 0)) for k in ids)
    return ClassNames(classes, unnamed, dropped)


def describe_labels(labels: Sequence[int], limit: int = 8) -> str:
    """``1, 2, 3`` or ``14, 15, ... 117 (23 labels)`` for a warning line."""
    labels = list(labels)
    if len(labels) <= limit:
        return ", ".join(map(str, labels))
    return ", ".join(map(str, labels[: limit - 1])) + f", ... {labels[-1]} ({len(labels)} labels)"
