"""Dataset statistics, exact and streaming, computed while compiling.

Per frame (a slice, an image), from the pixels as read (a slide: the pyramid level read; out of
core: the canvas, band by band), padding never included:

- per channel: pixel count, sum and sum of squares, in the input's units (HU for CT). Integer
  images (uint8, uint16, int16) are summed exactly: 16-bit frames whose size and range keep
  OpenCV's sums exact (a CT slice's) by OpenCV, the others through a histogram (Python integers
  in the end); float32 images in float64;
- the same after the edge window, for frames that have a fixed one (CT, ``--window``): values
  clipped to ``[lo, hi]``;
- per mask label: pixels of the mask as read, and *cells* — pixels of the stored mask patches
  (every token's p x p), summed over the sample's views.

A compile folds the frames of every input in frame order, and the inputs in plan order, into one
partial per split (and ``all``): the same additions in the same order whatever ``-j`` or the
scheduler, so float sums are identical too. :func:`summarise` turns partials into the manifest's
``statistics``: mean and population std per channel, and the class counts.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..inputs.labels import count_labels, histogram_u8

__all__ = ["add", "frame_stats", "summarise"]


_OPENCV_SUM_LIMIT = 2**31
"""pixels x max|value| below this: whatever int32 blocks OpenCV sums 16-bit values in stay exact."""
_OPENCV_SQUARES_LIMIT = 2**48
"""pixels x max|value|**2 below this: OpenCV's float64 sum of squares rounds to the exact integer."""


def _opencv_sums(x: np.ndarray, window: tuple[float, float] | None) -> tuple | None:
    """:func:`_int_sums` of a 2-D 16-bit array by OpenCV (~7x the histogram on a CT slice), or
    None where its sums might not be exact (see the limits), or for a window that is not two
    integers within the dtype: the histogram's cases."""
    lo_v, hi_v, _, _ = cv2.minMaxLoc(x)
    bound = max(abs(lo_v), abs(hi_v))
    if window is not None:
        info, (lo, hi) = np.iinfo(x.dtype), window
        if not (float(lo).is_integer() and float(hi).is_integer() and info.min <= lo <= hi <= info.max):
            return None
        bound = max(bound, abs(lo), abs(hi))  # clipped values lie within these
    if x.size * bound >= _OPENCV_SUM_LIMIT or x.size * bound**2 >= _OPENCV_SQUARES_LIMIT:
        return None
    out = [int(x.size), int(cv2.sumElems(x)[0]), round(cv2.norm(x, cv2.NORM_L2SQR))]
    if window is None:
        return (*out, None, None)
    w = np.clip(x, int(window[0]), int(window[1]))
    return (*out, int(cv2.sumElems(w)[0]), round(cv2.norm(w, cv2.NORM_L2SQR)))


def _int_sums(x: np.ndarray, window: tuple[float, float] | None) -> tuple:
    """(n, sum, sumsq, wsum, wsumsq) of one channel of an 8/16-bit integer array, exact."""
    x = np.ascontiguousarray(x)  # (a channel of a multichannel image: copied once, for either path)
    if x.ndim == 2 and x.size and x.dtype in (np.int16, np.uint16):
        out = _opencv_sums(x, window)
        if out is not None:
            return out
    flat = x.ravel()
    if flat.dtype == np.int16:
        h = np.bincount(flat.view(np.uint16) ^ np.uint16(0x8000), minlength=1 << 16)
        v = np.arange(-(1 << 15), 1 << 15, dtype=np.int64)
    else:
        h = histogram_u8(flat) if flat.dtype == np.uint8 else np.bincount(flat, minlength=1 << 16)
        v = np.arange(h.size, dtype=np.int64)
    keep = np.flatnonzero(h)
    h, v = h[keep].astype(np.int64), v[keep]
    out = [int(h.sum()), int((h * v).sum()), int((h * v * v).sum())]
    if window is None:
        return (*out, None, None)
    lo, hi = window
    if float(lo).is_integer() and float(hi).is_integer():
        w = np.clip(v, int(lo), int(hi))
        return (*out, int((h * w).sum()), int((h * w * w).sum()))
    w = np.clip(v.astype(np.float64), lo, hi)
    return (*out, float((h * w).sum()), float((h * w * w).sum()))


def _float_sums(x: np.ndarray, window: tuple[float, float] | None) -> tuple:
    # einsum, not np.dot: BLAS's own threads would spin beside the compile's workers
    flat = np.ascontiguousarray(x, np.float64).ravel()
    out = [int(flat.size), float(flat.sum()), float(np.einsum("i,i->", flat, flat))]
    if window is None:
        return (*out, None, None)
    w = np.clip(flat, window[0], window[1])
    return (*out, float(w.sum()), float(np.einsum("i,i->", w, w)))


def _counts(labels: np.ndarray | None) -> dict[str, int]:
    """Pixels per label, keyed by the label as text (JSON)."""
    if labels is None:
        return {}
    return {str(k): n for k, n in count_labels(labels).items()}


def frame_stats(
    image: np.ndarray,
    mask: np.ndarray | None,
    window: tuple[float, float] | None,
    cells: list[np.ndarray],
    samples: int,
) -> dict:
    """One frame's partial: ``image`` (H x W [x C]) as read, ``mask`` (H x W) or None, the fixed
    edge window or None, the stored mask patches of each of its views, and how many samples it
    gave. JSON-able (label keys as strings)."""
    chans = image[..., None] if image.ndim == 2 else image
    sums = _int_sums if chans.dtype in (np.uint8, np.uint16, np.int16) else _float_sums
    per = [sums(chans[..., c], window) for c in range(chans.shape[-1])]
    out: dict = {
        "samples": samples,
        "pixels": per[0][0],
        "sum": [p[1] for p in per],
        "sumsq": [p[2] for p in per],
        "labels": _counts(mask),
        "cells": {},
    }
    for patches in cells:
        for k, n in _counts(patches).items():
            out["cells"][k] = out["cells"].get(k, 0) + n
    if window is not None:
        out["window"] = [float(window[0]), float(window[1])]
        out["window_pixels"] = per[0][0]
        out["window_sum"] = [p[3] for p in per]
        out["window_sumsq"] = [p[4] for p in per]
    return out


def add(acc: dict | None, part: dict) -> dict:
    """``acc`` + ``part`` (a new dict; sums elementwise, counts by label; a window is kept only
    while every frame added had the same one)."""
    if acc is None:
        return {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in part.items()}
    out = dict(acc)
    out["samples"] = acc["samples"] + part["samples"]
    out["pixels"] = acc["pixels"] + part["pixels"]
    for key in ("sum", "sumsq"):
        out[key] = [a + b for a, b in zip(acc[key], part[key])]
    for key in ("labels", "cells"):
        merged = dict(acc[key])
        for k, n in part[key].items():
            merged[k] = merged.get(k, 0) + n
        out[key] = merged
    if "window" in part or "window" in acc:
        if acc.get("window") is not None and acc.get("window") == part.get("window"):
            out["window_pixels"] = acc["window_pixels"] + part["window_pixels"]
            out["window_sum"] = [a + b for a, b in zip(acc["window_sum"], part["window_sum"])]
            out["window_sumsq"] = [a + b for a, b in zip(acc["window_sumsq"], part["window_sumsq"])]
        else:  # frames with and without (or with another) window: no windowed statistics
            out["window"] = None
            for key in ("window_pixels", "window_sum", "window_sumsq"):
                out.pop(key, None)
    return out


def _moments(n: int, s: list, ss: list) -> tuple[list[float], list[float]]:
    mean, std = [], []
    for a, b in zip(s, ss):
        if isinstance(a, int) and isinstance(b, int):  # exact: n * sumsq - sum^2 in integers
            var = (n * b - a * a) / (n * n)
        else:
            m = a / n
            var = max(b / n - m * m, 0.0)
        mean.append(a / n)
        std.append(float(np.sqrt(var)))
    return mean, std


def summarise(partials: dict[str, dict]) -> dict:
    """The manifest's ``statistics`` from the folded partials (``all`` and one per split)."""
    out = {}
    for name, p in partials.items():
        if p is None or not p["pixels"]:
            continue
        mean, std = _moments(p["pixels"], p["sum"], p["sumsq"])
        entry = {"samples": p["samples"], "pixels": p["pixels"], "mean": mean, "std": std}
        if p.get("window") is not None:
            wm, ws = _moments(p["window_pixels"], p["window_sum"], p["window_sumsq"])
            entry["windowed"] = {"window": p["window"], "mean": wm, "std": ws}
        entry["classes"] = {
            "pixels": dict(sorted(p["labels"].items(), key=lambda kv: int(kv[0]))),
            "cells": dict(sorted(p["cells"].items(), key=lambda kv: int(kv[0]))),
        }
        out[name] = entry
    return out
