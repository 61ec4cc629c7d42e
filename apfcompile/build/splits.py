"""Splits without leakage: whole groups of samples go to one split, decided before any pixel is read.

A *group* is what must never straddle two splits (``--split-by``):

- ``case`` (default): one input — every slice and view of a volume, every sample of a slide or an
  nnU-Net case; a stack (``.npy``/``.npz``/HDF5 of N samples) is N cases, one per index
  (``FILE/INDEX``), since a stack rarely holds one patient;
- ``folder``: the folder of the input's key (``kidney_1/0000`` -> ``kidney_1``: a whole kidney);
- any other value is a regular expression searched in the key (of the input; of the sample for a
  stack): its first group, or the whole match, names the group (``(case_\\d+)``). A key it does
  not match is an error naming the key.

``--split train=0.8,val=0.1,test=0.1`` assigns the groups: sorted by name, shuffled by
``numpy.random.default_rng(seed)``, then each, in that order, to the split furthest below its
target share of samples (ties to the first named). Every split's count is then within one group of
its target; the assignment depends on the plan only, so it is the same on any machine, for any
``-j`` and scheduler. ``--split-from FILE`` (CSV ``key,split``; keys of inputs, or of stack
samples) gives the split of every group outright. Without either, a layout's own splits are kept:
nnU-Net's ``imagesTr`` -> ``train`` and ``imagesTs`` -> ``test``, and a path folder named
``train``, ``val``/``valid``/``validation`` or ``test``.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError, ParameterError
from ..inputs.layouts import InputItem

__all__ = ["SplitPlan", "layout_split", "parse_split", "plan_splits", "read_split_file"]

_LAYOUT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}

SplitPlan = list[list[tuple[str, str | None]]]
"""Per input, per frame: (group, split)."""


def parse_split(text: str | Sequence[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """``train=0.8,val=0.1,test=0.1`` (or pairs) -> ((name, fraction), ...); fractions sum to 1."""
    if isinstance(text, str):
        pairs = []
        for part in text.split(","):
            name, sep, value = part.partition("=")
            try:
                pairs.append((name.strip(), float(value)))
            except ValueError:
                raise ParameterError(
                    "split", "NAME=FRACTION[,NAME=FRACTION...], e.g. train=0.8,val=0.2", text
                ) from None
            if not sep or not name.strip():
                raise ParameterError("split", "NAME=FRACTION[,NAME=FRACTION...], e.g. train=0.8,val=0.2", text)
    else:
        pairs = [(str(n), float(f)) for n, f in text]
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names) or any(f < 0 for _, f in pairs) or abs(sum(f for _, f in pairs) - 1) > 1e-6:
        raise ParameterError("split", "distinct names with fractions >= 0 that sum to 1", text)
    return tuple(pairs)


def read_split_file(path: str | Path) -> dict[str, str]:
    """key -> split from a CSV of ``key,split`` rows (a header row ``key,split`` is skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read ({exc})", "give a CSV of key,split rows") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and [c.strip() for c in rows[0]] == ["key", "split"]:
        rows = rows[1:]
    if any(len(r) != 2 or not r[1].strip() for r in rows):
        raise InputError(path, "has rows that are not key,split", "give one key,split pair per row")
    return {r[0].strip(): r[1].strip() for r in rows}


def layout_split(item: InputItem) -> str | None:
    """The split a layout gives an input: a folder of its path named train/val/test (nnU-Net's
    ``imagesTr`` / ``imagesTs`` too), or None."""
    for part in reversed(posixpath.dirname(item.source).split("/")):
        if part == "imagesTr":
            return "train"
        if part == "imagesTs":
            return "test"
        if part.lower() in _LAYOUT_NAMES:
            return _LAYOUT_NAMES[part.lower()]
    return None


def _frame_key(item: InputItem, frame: int, frames: int, stacked: bool) -> str:
    return f"{item.key}/{frame}" if stacked else item.key


def _group(key: str, by: str, item_key: str) -> str:
    if by == "case":
        return key
    if by == "folder":
        return posixpath.dirname(item_key) or "."
    m = re.search(by, key)
    if m is None:
        raise ParameterError("split_by", f"a pattern that matches every key (it does not match {key!r})", by)
    return m.group(1) if m.groups() else m.group(0)


def plan_splits(
    items: list[InputItem],
    frames: list[int],
    stacked: list[bool],
    split: tuple[tuple[str, float], ...] | None,
    seed: int,
    by: str,
    split_from: dict[str, str] | None,
) -> SplitPlan | None:
    """(group, split) for every frame of every input (``frames[i]`` frames; ``stacked[i]``: a
    stack, whose frames are cases of their own), or None when the dataset has no splits."""
    if by not in ("case", "folder"):
        try:
            re.compile(by)
        except re.error as exc:
            raise ParameterError("split_by", "case, folder or a regular expression", f"{by} ({exc})") from None
    keys = [[_frame_key(it, f, n, s) for f in range(n)] for it, n, s in zip(items, frames, stacked)]
    groups = [[_group(k, by, it.key) for k in ks] for it, ks in zip(items, keys)]
    if split_from is not None:
        out = []
        for ks, gs in zip(keys, groups):
            row = []
            for k, g in zip(ks, gs):
                name = split_from.get(k, split_from.get(g))
                if name is None:
                    missing = {kk for ks2 in keys for kk in ks2 if kk not in split_from}
                    raise ParameterError("split_from", f"a split for every key ({len(missing)} missing)", k)
                row.append((g, name))
            out.append(row)
        return _checked(out)
    if split is None:
        by_layout = [layout_split(it) for it in items]
        if not any(by_layout):
            return None
        return [[(g, s or "unassigned") for g in gs] for gs, s in zip(groups, by_layout)]
    sizes: dict[str, int] = {}
    for gs in groups:
        for g in gs:
            sizes[g] = sizes.get(g, 0) + 1
    names = sorted(sizes)
    order = np.random.default_rng(seed).permutation(len(names))
    total = sum(sizes.values())
    assigned = {name: 0 for name, _ in split}
    which: dict[str, str] = {}
    for j in order.tolist():
        g = names[j]
        # furthest below its target share; ties to the first named split
        name = max(split, key=lambda nf: (nf[1] * total - assigned[nf[0]], -[n for n, _ in split].index(nf[0])))[0]
        which[g] = name
        assigned[name] += sizes[g]
    return [[(g, which[g]) for g in gs] for gs in groups]


def _checked(plan: SplitPlan) -> SplitPlan:
    """A group given two splits (by ``--split-from``) is an error naming it."""
    seen: dict[str, str] = {}
    for row in plan:
        for g, s in row:
            if seen.setdefault(g, s) != s:
                raise ParameterError("split_from", f"one split per group (group {g!r} has {seen[g]} and {s})", g)
    return plan
