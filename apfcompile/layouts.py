"""Dataset layouts: which files are the inputs, which mask goes with which image, what labels mean.

=========  ======================================================================================
layout     inputs
=========  ======================================================================================
folder     every image file under INPUT (any depth, any known suffix); its mask from ``--masks DIR``
           (same relative path and stem, any known suffix) or ``NAME_mask.*`` beside it; images
           without a mask are allowed (unlabelled). Key: path relative to INPUT without suffix.
paip       PAIP 2019: ``CASE.svs`` with ``CASE_whole.tif`` and ``CASE_viable.tif`` beside it (any
           depth, e.g. ``Training_phase_1/``). Labels (``--paip-label both``): 0 background,
           1 whole tumour but not viable, 2 viable tumour; ``whole`` / ``viable``: 0/1. Key: CASE.
btcv       ``RawData/Training/img/imgNNNN.nii.gz`` + ``.../label/labelNNNN.nii.gz``, or ``imagesTr/``
           + ``labelsTr/`` (same file names). Each axial slice is one sample, key ``imgNNNN/zKKK``;
           labels 0..13 (the 13 BTCV organs); edges use the HU window -175..250.
list       a ``.csv`` (header ``image,mask[,key]``) or ``.jsonl`` (objects with ``image``, optional
           ``mask`` and ``key``); relative paths are relative to the list file.
=========  ======================================================================================

``auto`` picks ``list`` for a .csv/.jsonl file, ``btcv`` when the BTCV folders are present, ``paip``
when an ``.svs`` has its ``_whole``/``_viable`` masks, else ``folder``. Inputs are sorted by their
path relative to INPUT, which fixes sample ids and shards whatever the worker count.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import InputError, InputNotFoundError, ParameterError
from .readers import READERS, suffix_of

__all__ = ["BTCV_CLASSES", "InputItem", "LayoutInfo", "discover"]

Layout = Literal["auto", "folder", "paip", "btcv", "list"]

BTCV_CLASSES = (
    "background", "spleen", "right kidney", "left kidney", "gallbladder", "esophagus", "liver",
    "stomach", "aorta", "inferior vena cava", "portal and splenic veins", "pancreas",
    "right adrenal gland", "left adrenal gland",
)  # fmt: skip
PAIP_CLASSES = {
    "both": ("background", "whole tumour, not viable", "viable tumour"),
    "whole": ("background", "whole tumour"),
    "viable": ("background", "viable tumour"),
}
CT_WINDOW = (-175.0, 250.0)
_VOLUME_SUFFIXES = {".nii", ".nii.gz"}


@dataclass(frozen=True)
class InputItem:
    """One input file (and its masks), before it is read.

    kind: ``image`` (one sample), ``volume`` (one sample per slice along the last axis), or
    ``paip`` (a slide whose two masks combine into labels). ``problem``: set when the layout
    already knows the input is unusable (e.g. a PAIP case missing a mask).
    """

    key: str
    source: str
    image: Path
    masks: tuple[Path, ...] = ()
    kind: str = "image"
    problem: str | None = None

    @property
    def mask_source(self) -> str | None:
        return None if not self.masks else "+".join(m.name for m in self.masks)


@dataclass(frozen=True)
class LayoutInfo:
    """What a layout says about the dataset: its name, class names, edge window."""

    name: str
    classes: tuple[str, ...] | None = None
    window: tuple[float, float] | None = None


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _strip(name: str) -> str:
    suffix = suffix_of(name)
    return name[: len(name) - len(suffix)] if suffix else name


def _image_files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*") if p.is_file() and suffix_of(p) in READERS
                   and not p.name.startswith(".")), key=lambda p: _rel(p, root))  # fmt: skip


def _kind(path: Path) -> str:
    return "volume" if suffix_of(path) in _VOLUME_SUFFIXES else "image"


def _folder(root: Path, masks_dir: Path | None) -> list[InputItem]:
    files = _image_files(root)
    if masks_dir is not None:
        masks_dir = masks_dir.resolve()
        by_stem = {_strip(_rel(p, masks_dir)): p for p in _image_files(masks_dir)}
        items = []
        for p in files:
            if masks_dir in p.resolve().parents:
                continue
            key = _strip(_rel(p, root))
            mask = by_stem.get(key) or by_stem.get(key + "_mask")
            items.append(InputItem(key, _rel(p, root), p, (mask,) if mask else (), _kind(p)))
        return items
    beside = {_strip(_rel(p, root)): p for p in files}
    items = []
    for p in files:
        key = _strip(_rel(p, root))
        if key.endswith("_mask") and key[: -len("_mask")] in beside:
            continue
        mask = beside.get(key + "_mask")
        items.append(InputItem(key, _rel(p, root), p, (mask,) if mask else (), _kind(p)))
    return items


def _paip(root: Path) -> list[InputItem]:
    items = []
    slides = sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".svs"),
                    key=lambda p: _rel(p, root))  # fmt: skip
    for slide in slides:
        case = slide.stem
        found = {p.name.lower(): p for p in slide.parent.iterdir()}
        whole = found.get(f"{case}_whole.tif".lower())
        viable = found.get(f"{case}_viable.tif".lower())
        missing = [n for n, p in (("_whole.tif", whole), ("_viable.tif", viable)) if p is None]
        problem = None
        if missing:
            problem = (f"PAIP case {case}: missing {' and '.join(case + m for m in missing)} beside the slide; "
                       "add it, or compile with --on-error skip")  # fmt: skip
        masks = tuple(p for p in (whole, viable) if p is not None)
        items.append(InputItem(case, _rel(slide, root), slide, masks, "paip", problem))
    return items


def _btcv_dirs(root: Path) -> tuple[Path, Path] | None:
    for img, lab in (("RawData/Training/img", "RawData/Training/label"), ("Training/img", "Training/label"),
                     ("img", "label"), ("imagesTr", "labelsTr")):  # fmt: skip
        if (root / img).is_dir():
            return root / img, root / lab
    return None


def _btcv(root: Path) -> list[InputItem]:
    dirs = _btcv_dirs(root)
    if dirs is None:
        raise InputError(root, "no BTCV folders (RawData/Training/img or imagesTr) found",
                         "point INPUT at the BTCV root or use --layout folder")  # fmt: skip
    img_dir, lab_dir = dirs
    items = []
    for p in sorted(img_dir.iterdir()):
        if not p.is_file() or suffix_of(p) not in _VOLUME_SUFFIXES:
            continue
        candidates = [lab_dir / p.name, lab_dir / p.name.replace("img", "label", 1)]
        label = next((c for c in candidates if c.exists()), None)
        key = _strip(p.name)
        items.append(InputItem(key, _rel(p, root), p, (label,) if label else (), "volume"))
    return items


def _list(path: Path) -> list[InputItem]:
    base = path.parent
    rows: list[dict] = []
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read as a list of inputs ({exc})") from exc
    items = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not row.get("image"):
            raise InputError(path, f"row {i + 1} has no 'image' column", "give image[,mask[,key]] per row")
        image = base / row["image"]
        mask = base / row["mask"] if row.get("mask") else None
        key = row.get("key") or _strip(Path(row["image"]).as_posix())
        items.append(InputItem(key, Path(row["image"]).as_posix(), image, (mask,) if mask else (), _kind(image)))
    return sorted(items, key=lambda it: it.source)


def _auto(root: Path) -> str:
    if root.is_file():
        return "list"
    if _btcv_dirs(root) is not None:
        return "btcv"
    for slide in root.rglob("*.svs"):
        if (slide.parent / f"{slide.stem}_whole.tif").exists() or (slide.parent / f"{slide.stem}_viable.tif").exists():
            return "paip"
    return "folder"


def discover(
    root: str | Path, layout: Layout = "auto", masks_dir: str | Path | None = None, paip_label: str = "both"
) -> tuple[list[InputItem], LayoutInfo]:
    """The inputs under ``root`` for ``layout``, sorted, and what the layout says about labels."""
    root = Path(root)
    if not root.exists():
        raise InputNotFoundError(root, "check the INPUT path")
    if paip_label not in PAIP_CLASSES:
        raise ParameterError("--paip-label", "whole, viable or both", paip_label)
    name = _auto(root) if layout == "auto" else layout
    if name == "list":
        if not root.is_file() or root.suffix.lower() not in (".csv", ".jsonl"):
            raise InputError(root, "the list layout needs a .csv or .jsonl file")
        items, info = _list(root), LayoutInfo("list")
    elif root.is_file():
        raise InputError(root, "is a file; the folder, paip and btcv layouts need a folder",
                         "pass the folder, or a .csv/.jsonl list with --layout list")  # fmt: skip
    elif name == "folder":
        if masks_dir is not None and not Path(masks_dir).is_dir():
            raise InputNotFoundError(masks_dir, "check --masks")
        items, info = _folder(root, None if masks_dir is None else Path(masks_dir)), LayoutInfo("folder")
    elif name == "paip":
        items, info = _paip(root), LayoutInfo("paip", PAIP_CLASSES[paip_label])
    elif name == "btcv":
        items, info = _btcv(root), LayoutInfo("btcv", BTCV_CLASSES, CT_WINDOW)
    else:
        raise ParameterError("--layout", "auto, folder, paip, btcv or list", layout)
    if not items:
        known = " ".join(sorted(READERS))
        raise InputError(root, f"no inputs found for the {name} layout",
                         f"check the path (image suffixes: {known})")  # fmt: skip
    return items, info
