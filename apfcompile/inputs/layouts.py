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

INPUT (and ``--masks``) may be a local folder or an fsspec URL (``s3://bucket/paip``): every
layout works on one listing of the files under the root (hidden files and folders left out), so
local and remote inputs are discovered by the same rules and give the same sample order.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import get_args

from formats.storage import Location

from ..choices import Layout, PaipLabel
from ..errors import InputError, InputNotFoundError, ParameterError
from .locations import Place, input_root, is_file, list_files
from .readers import READERS, suffix_of

__all__ = ["BTCV_CLASSES", "CT_WINDOW", "PAIP_CLASSES", "InputItem", "Layout", "LayoutInfo", "PaipLabel", "discover"]


BTCV_CLASSES = (
    "background",
    "spleen",
    "right kidney",
    "left kidney",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "aorta",
    "inferior vena cava",
    "portal and splenic veins",
    "pancreas",
    "right adrenal gland",
    "left adrenal gland",
)
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

    image, masks: :class:`~apfcompile.inputs.locations.Place` (path or URL with its storage
    options). kind: ``image``
    (one sample), ``volume`` (one sample per slice along the last axis), or ``paip`` (a slide
    whose two masks combine into labels). ``problem``: set when the layout already knows the
    input is unusable (e.g. a PAIP case missing a mask).
    """

    key: str
    source: str
    image: Place
    masks: tuple[Place, ...] = ()
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


class _Tree:
    """The files under a root (local folder or URL) as sorted relative POSIX paths."""

    def __init__(self, root: Place, loc: Location) -> None:
        self.root = root
        self.files = list_files(loc)
        self.dirs = {posixpath.dirname(f) for f in self.files}
        self.dirs |= {d.rsplit("/", i)[0] for d in list(self.dirs) for i in range(1, d.count("/") + 1)}

    def path(self, rel: str) -> Place:
        return self.root.join(rel)

    def images(self) -> list[str]:
        return [f for f in self.files if suffix_of(f) in READERS]

    def in_dir(self, folder: str) -> list[str]:
        """Files directly inside ``folder`` (relative)."""
        return [f for f in self.files if posixpath.dirname(f) == folder]


def _strip(name: str) -> str:
    suffix = suffix_of(name)
    return name[: len(name) - len(suffix)] if suffix else name


def _kind(rel: str) -> str:
    return "volume" if suffix_of(rel) in _VOLUME_SUFFIXES else "image"


def _folder(tree: _Tree, masks: _Tree | None, masks_inside: str | None) -> list[InputItem]:
    files = tree.images()
    if masks is not None:
        by_stem = {_strip(rel): rel for rel in masks.images()}
        items = []
        for rel in files:
            if masks_inside is not None and (rel + "/").startswith(masks_inside + "/"):
                continue
            key = _strip(rel)
            mask = by_stem.get(key) or by_stem.get(key + "_mask")
            mask_paths = (masks.path(mask),) if mask else ()
            items.append(InputItem(key, rel, tree.path(rel), mask_paths, _kind(rel)))
        return items
    beside = {_strip(rel): rel for rel in files}
    items = []
    for rel in files:
        key = _strip(rel)
        if key.endswith("_mask") and key[: -len("_mask")] in beside:
            continue
        mask = beside.get(key + "_mask")
        items.append(InputItem(key, rel, tree.path(rel), (tree.path(mask),) if mask else (), _kind(rel)))
    return items


def _paip_slides(tree: _Tree) -> list[str]:
    return [f for f in tree.files if f.lower().endswith(".svs")]


def _paip_masks(tree: _Tree, slide: str) -> tuple[str | None, str | None]:
    folder = posixpath.dirname(slide)
    case = posixpath.basename(slide)[: -len(".svs")]
    found = {posixpath.basename(f).lower(): f for f in tree.in_dir(folder)}
    return found.get(f"{case}_whole.tif".lower()), found.get(f"{case}_viable.tif".lower())


def _paip(tree: _Tree) -> list[InputItem]:
    items = []
    for slide in _paip_slides(tree):
        case = posixpath.basename(slide)[: -len(".svs")]
        whole, viable = _paip_masks(tree, slide)
        missing = [n for n, p in (("_whole.tif", whole), ("_viable.tif", viable)) if p is None]
        problem = None
        if missing:
            problem = (
                f"PAIP case {case}: missing {' and '.join(case + m for m in missing)} beside the slide; "
                "add it, or compile with --on-error skip"
            )
        masks = tuple(tree.path(p) for p in (whole, viable) if p is not None)
        items.append(InputItem(case, slide, tree.path(slide), masks, "paip", problem))
    return items


def _btcv_dirs(tree: _Tree) -> tuple[str, str] | None:
    for img, lab in (
        ("RawData/Training/img", "RawData/Training/label"),
        ("Training/img", "Training/label"),
        ("img", "label"),
        ("imagesTr", "labelsTr"),
    ):
        if img in tree.dirs:
            return img, lab
    return None


def _btcv(tree: _Tree) -> list[InputItem]:
    dirs = _btcv_dirs(tree)
    if dirs is None:
        raise InputError(
            tree.root,
            "no BTCV folders (RawData/Training/img or imagesTr) found",
            "point INPUT at the BTCV root or use --layout folder",
        )
    img_dir, lab_dir = dirs
    labels = set(tree.in_dir(lab_dir))
    items = []
    for rel in tree.in_dir(img_dir):
        if suffix_of(rel) not in _VOLUME_SUFFIXES:
            continue
        name = posixpath.basename(rel)
        candidates = [f"{lab_dir}/{name}", f"{lab_dir}/{name.replace('img', 'label', 1)}"]
        label = next((c for c in candidates if c in labels), None)
        items.append(InputItem(_strip(name), rel, tree.path(rel), (tree.path(label),) if label else (), "volume"))
    return items


def _list(path: Place, loc: Location) -> list[InputItem]:
    base = path.parent
    rows: list[dict] = []
    try:
        text = loc.fs.cat_file(loc.path).decode()
        if path.name.lower().endswith(".csv"):
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read as a list of inputs ({exc})") from exc
    items = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not row.get("image"):
            raise InputError(path, f"row {i + 1} has no 'image' column", "give image[,mask[,key]] per row")
        image = base.join(row["image"])
        mask = base.join(row["mask"]) if row.get("mask") else None
        source = PurePosixPath(row["image"]).as_posix() if "://" not in row["image"] else row["image"]
        key = row.get("key") or _strip(source)
        items.append(InputItem(key, source, image, (mask,) if mask else (), _kind(source)))
    return sorted(items, key=lambda it: it.source)


def _auto(tree: _Tree) -> str:
    if _btcv_dirs(tree) is not None:
        return "btcv"
    if any(any(_paip_masks(tree, slide)) for slide in _paip_slides(tree)):
        return "paip"
    return "folder"


def discover(
    root: Place, layout: Layout = "auto", masks: Place | None = None, paip_label: PaipLabel = "both"
) -> tuple[list[InputItem], LayoutInfo]:
    """The inputs under ``root`` (a local path or an fsspec URL) for ``layout``, sorted, and what
    the layout says about labels. ``masks``: the folder layout's ``--masks`` folder."""
    root = Place.of(root).absolute()  # Dask workers on other hosts resolve no relative path
    if paip_label not in PAIP_CLASSES:
        raise ParameterError("paip_label", "whole, viable or both", paip_label)
    if layout not in get_args(Layout):
        raise ParameterError("layout", " or ".join(get_args(Layout)), layout)
    loc = input_root(root)
    single = is_file(loc)
    if layout == "list" or (layout == "auto" and single):
        if not single or not root.name.lower().endswith((".csv", ".jsonl")):
            raise InputError(root, "the list layout needs a .csv or .jsonl file")
        items, info = _list(root, loc), LayoutInfo("list")
    elif single:
        raise InputError(
            root,
            "is a file; the folder, paip and btcv layouts need a folder",
            "pass the folder, or a .csv/.jsonl list with --layout list",
        )
    else:
        tree = _Tree(root, loc)
        name = _auto(tree) if layout == "auto" else layout
        if name == "folder":
            items, info = _folder(tree, *_masks_tree(loc, masks)), LayoutInfo("folder")
        elif name == "paip":
            items, info = _paip(tree), LayoutInfo("paip", PAIP_CLASSES[paip_label])
        else:
            items, info = _btcv(tree), LayoutInfo("btcv", BTCV_CLASSES, CT_WINDOW)
    if not items:
        known = " ".join(sorted(READERS))
        raise InputError(
            root, f"no inputs found for the {info.name} layout", f"check the path (image suffixes: {known})"
        )
    return items, info


def _masks_tree(loc: Location, masks: Place | None) -> tuple[_Tree | None, str | None]:
    """The ``--masks`` tree, and its path relative to INPUT when it lies inside INPUT."""
    if masks is None:
        return None, None
    masks = Place.of(masks).absolute()
    try:
        mloc = input_root(masks)
    except InputNotFoundError:
        raise InputNotFoundError(masks, "check --masks") from None
    if is_file(mloc):
        raise InputError(masks, "--masks must be a folder")
    inside = None
    if type(mloc.fs) is type(loc.fs):
        a, b = (mloc.local.resolve().as_posix(), loc.local.resolve().as_posix()) if loc.local else (mloc.path, loc.path)
        if a.startswith(b.rstrip("/") + "/"):
            inside = a[len(b.rstrip("/")) + 1 :]
    return _Tree(masks, mloc), inside
