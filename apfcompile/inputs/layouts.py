"""Dataset layouts: which files are the inputs, which mask goes with which image, what labels mean.

=========  ======================================================================================
layout     inputs
=========  ======================================================================================
folder     every image file under INPUT (any depth, any known suffix); its mask from ``--masks DIR``
           (same relative path and stem, any known suffix), from a sibling folder
           (``.../images/NAME.*`` with ``.../labels/NAME.*`` or ``.../masks/NAME.*``, at any depth;
           key: the path without the ``images`` folder, e.g. ``kidney_1/0000``), or ``NAME_mask.*``
           beside it. Key: path relative to INPUT without suffix. A single image or volume file as
           INPUT is one input (its mask: ``--masks FILE``).
paip       PAIP 2019: ``CASE.svs`` with ``CASE_whole.tif`` and ``CASE_viable.tif`` beside it (any
           depth, e.g. ``Training_phase_1/``). Labels (``--paip-label both``): 0 background,
           1 whole tumour but not viable, 2 viable tumour; ``whole`` / ``viable``: 0/1. Key: CASE.
btcv       ``RawData/Training/img/imgNNNN.nii.gz`` + ``.../label/labelNNNN.nii.gz``, or ``imagesTr/``
           + ``labelsTr/`` (same file names). Each axial slice is one sample, key ``imgNNNN/zKKK``;
           labels 0..13 (the 13 BTCV organs); edges use the HU window -175..250.
nnunet     nnU-Net v2 / Medical Segmentation Decathlon: ``imagesTr/CASE_0000.ext`` (``_0001``... more
           channels, stacked in that order; MSD: ``imagesTr/CASE.ext``, channels in the file) with
           ``labelsTr/CASE.ext``; ``imagesTs/`` compiles unlabelled. ``dataset.json`` gives the class
           names (``labels``: v2 ``{name: id}`` or MSD ``{"id": name}``) and channel names
           (``channel_names`` / ``modality``); all-CT channels use the HU window for edges. A case
           with channel files out of step is a bad input. Key: ``imagesTr/CASE``.
list       a ``.csv`` (header ``image,mask[,key]``) or ``.jsonl`` (objects with ``image``, optional
           ``mask`` and ``key``); relative paths are relative to the list file.
=========  ======================================================================================

Unlabelled means unlabelled: where a layout pairs images with labels and the dataset has any (a
``labels``/``labelsTr`` folder, ``--masks``, a ``NAME_mask`` pair), an image whose label is missing
is a bad input naming where it was looked for (:attr:`InputItem.expected_mask`), unless
``allow_unlabelled``: then it compiles as an unlabelled sample (its mask rows hold the ignore
label). ``imagesTs`` and folders without any mask and list rows with an empty ``mask`` are
unlabelled by layout.

``auto`` picks ``list`` for a .csv/.jsonl file, ``folder`` for any other file, ``nnunet`` when
``imagesTr`` sits beside a ``dataset.json`` or holds ``CASE_0000`` channel files, ``btcv`` when the
BTCV folders are present, ``paip`` when an ``.svs`` has its ``_whole``/``_viable`` masks, else
``folder``. Inputs are sorted by their
path relative to INPUT, which fixes sample ids and shards whatever the worker count.

NumPy inputs (``.npy``/``.npz``, any layout that takes images) may hold N samples on axis 0:
``--image-key``/``--mask-key`` name the arrays (e.g. ``x_train``/``y_train``); without them a 4-D
array is a stack, and an ``.npz`` of one 4-D array and one N x H x W integer array is a stack with
its masks. A stack gives one sample per index, key ``FILE/INDEX``, read memory-mapped where the
file allows (:mod:`apfcompile.inputs.readers.stacks`). 3-D images may keep their channels first or
last (:mod:`apfcompile.inputs.channels`).

INPUT (and ``--masks``) may be a local folder or an fsspec URL (``s3://bucket/paip``): every
layout works on one listing of the files under the root (hidden files and folders left out), so
local and remote inputs are discovered by the same rules and give the same sample order.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import get_args

from formats.storage import Location

from ..choices import Layout, PaipLabel
from ..errors import InputError, InputNotFoundError, ParameterError
from .locations import Place, input_root, is_file, list_files, open_input
from .readers import READERS, VOLUME_SUFFIXES, suffix_of

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
_VOLUME_SUFFIXES = set(VOLUME_SUFFIXES)


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
    channels: tuple[Place, ...] = ()
    """More channel files (nnU-Net ``_0001``...), stacked after ``image``'s channels in order."""
    arrays: tuple[str | None, str | None] | None = None
    """For ``.npy``/``.npz`` inputs (kind ``array``): ``--image-key`` and ``--mask-key``."""
    produce: tuple | None = None
    """Kind ``memory`` (:func:`apfcompile.write_dataset`): ``(function, argument)`` whose call gives
    ``(key, image, mask)``, or ``(None, (key, image, mask))`` for arrays given outright."""
    labelled: bool | None = None
    """Whether the input has a mask, where no mask file says so (kind ``memory``)."""
    expected_mask: str | None = None
    """Where the layout expected this image's label (e.g. ``labelsTr/case_001.*``) when it found
    none there although the dataset is labelled: the image is refused unless unlabelled samples are
    allowed (:func:`discover`). None: it has its mask, or none is expected (``imagesTs``)."""

    @property
    def mask_source(self) -> str | None:
        return None if not self.masks else "+".join(m.name for m in self.masks)


@dataclass(frozen=True)
class LayoutInfo:
    """What a layout says about the dataset: its name, class names (index = label id), edge
    window, and channel names (nnU-Net's ``dataset.json``), or None where it says nothing."""

    name: str
    classes: tuple[str, ...] | None = None
    window: tuple[float, float] | None = None
    channel_names: tuple[str, ...] | None = None


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
        """Files of a known suffix; of a DICOM series (``.dcm`` files in one folder), the first
        file only: it stands for the series (see :mod:`.readers.dicom`)."""
        seen: set[str] = set()
        out = []
        for f in self.files:
            if suffix_of(f) not in READERS:
                continue
            if suffix_of(f) == ".dcm":
                folder = posixpath.dirname(f)
                if folder in seen:
                    continue
                seen.add(folder)
            out.append(f)
        return out

    def in_dir(self, folder: str) -> list[str]:
        """Files directly inside ``folder`` (relative)."""
        return [f for f in self.files if posixpath.dirname(f) == folder]


def _strip(name: str) -> str:
    """The key of a file: its path without suffix (a DICOM series: its folder)."""
    if suffix_of(name) == ".dcm" and posixpath.dirname(name):
        return posixpath.dirname(name)
    suffix = suffix_of(name)
    return name[: len(name) - len(suffix)] if suffix else name


_ARRAY_SUFFIXES = {".npy", ".npz", ".h5", ".hdf5"}


def _kind(rel: str) -> str:
    suffix = suffix_of(rel)
    return "volume" if suffix in _VOLUME_SUFFIXES else "array" if suffix in _ARRAY_SUFFIXES else "image"


_LABEL_FOLDERS = ("labels", "masks")


def _sibling_pairs(tree: _Tree) -> tuple[dict[str, InputItem], set[str]]:
    """Images under an ``images`` folder that has a sibling ``labels`` (or ``masks``) folder, as
    items paired by their path below those folders and their stem; and the label files (which are
    not inputs). The key drops the ``images`` folder: ``kidney_1/images/0000.tif`` -> ``kidney_1/0000``."""
    paired: dict[str, InputItem] = {}
    label_files: set[str] = set()
    for folder in sorted(d for d in tree.dirs if posixpath.basename(d) == "images"):
        parent = posixpath.dirname(folder)
        labels = next(
            (posixpath.join(parent, n) for n in _LABEL_FOLDERS if posixpath.join(parent, n) in tree.dirs), None
        )
        if labels is None:
            continue
        below = {_strip(f[len(labels) + 1 :]): f for f in tree.images() if f.startswith(labels + "/")}
        label_files |= set(below.values())
        for rel in tree.images():
            if not rel.startswith(folder + "/"):
                continue
            name = _strip(rel[len(folder) + 1 :])
            label = below.get(name)
            expected = None if label else f"{labels}/{name}.*"
            key = posixpath.join(parent, name) if parent else name
            masks = (tree.path(label),) if label else ()
            paired[rel] = InputItem(key, rel, tree.path(rel), masks, _kind(rel), expected_mask=expected)
    return paired, label_files


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
            expected = None if mask else f"{masks.root.name}/{key}.* in --masks"
            items.append(InputItem(key, rel, tree.path(rel), mask_paths, _kind(rel), expected_mask=expected))
        return items
    paired, label_files = _sibling_pairs(tree)
    files = [rel for rel in files if rel not in label_files]
    beside = {_strip(rel): rel for rel in files}
    pairs = any(key + "_mask" in beside for key in beside)  # NAME_mask.* pairs: every image expects one
    items = []
    for rel in files:
        if rel in paired:
            items.append(paired[rel])
            continue
        key = _strip(rel)
        if key.endswith("_mask") and key[: -len("_mask")] in beside:
            continue
        mask = beside.get(key + "_mask")
        expected = f"{key}_mask.*" if pairs and not mask else None
        masks = (tree.path(mask),) if mask else ()
        items.append(InputItem(key, rel, tree.path(rel), masks, _kind(rel), expected_mask=expected))
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
        expected = None if label or not labels else f"{candidates[-1]} (or {candidates[0]})"
        masks = (tree.path(label),) if label else ()
        items.append(InputItem(_strip(name), rel, tree.path(rel), masks, "volume", expected_mask=expected))
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


_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
_NNUNET_SPLITS = (("imagesTr", "labelsTr"), ("imagesTs", None))


def _nnunet_root(tree: _Tree) -> str | None:
    """The folder holding ``imagesTr`` (the root itself, or one level down, e.g. ``Dataset001_X``)."""
    for folder in sorted(d for d in tree.dirs | {""} if posixpath.basename(d) == "imagesTr" or d == "imagesTr"):
        return posixpath.dirname(folder)
    return None


def _is_nnunet(tree: _Tree) -> bool:
    root = _nnunet_root(tree)
    if root is None:
        return False
    if posixpath.join(root, "dataset.json") in tree.files:
        return True
    images = [posixpath.basename(_strip(f)) for f in tree.in_dir(posixpath.join(root, "imagesTr"))]
    return bool(images) and all(_CHANNEL.match(name) for name in images)


def _nnunet_cases(files: list[str]) -> dict[str, list[tuple[int, str]]]:
    """Case -> [(channel, file)] for nnU-Net v2 names (``CASE_0000.ext``); a file without a channel
    suffix is its own case, channel 0 (MSD keeps every channel in one file)."""
    cases: dict[str, list[tuple[int, str]]] = {}
    for rel in files:
        if suffix_of(rel) not in READERS:
            continue
        stem = posixpath.basename(_strip(rel))
        m = _CHANNEL.match(stem)
        case, channel = (m["case"], int(m["channel"])) if m else (stem, 0)
        cases.setdefault(case, []).append((channel, rel))
    return {case: sorted(files) for case, files in cases.items()}


def _nnunet(tree: _Tree) -> list[InputItem]:
    root = _nnunet_root(tree) or ""
    items = []
    counts: dict[int, str] = {}
    for images_dir, labels_dir in _NNUNET_SPLITS:
        images = posixpath.join(root, images_dir)
        labels = {}
        if labels_dir is not None:
            labels = {posixpath.basename(_strip(f)): f for f in tree.in_dir(posixpath.join(root, labels_dir))}
        for case, files in sorted(_nnunet_cases(tree.in_dir(images)).items()):
            first = files[0][1]
            problem = None
            channels = [c for c, _ in files]
            if channels != list(range(len(channels))):
                problem = (
                    f"channel files out of step: found {', '.join(f'_{c:04d}' for c in channels)}, expected "
                    f"_0000 to _{len(channels) - 1:04d} with none missing or doubled; fix the file names"
                )
            counts.setdefault(len(channels), first)
            label = labels.get(case)
            expected = None
            if labels_dir is not None and label is None:
                expected = f"{posixpath.join(root, labels_dir, case)}.* (or move the case to imagesTs)"
            items.append(
                InputItem(
                    key=posixpath.relpath(posixpath.join(images, case), root or "."),
                    source=first,
                    image=tree.path(first),
                    masks=(tree.path(label),) if label else (),
                    kind=_kind(first),
                    problem=problem,
                    channels=tuple(tree.path(rel) for _, rel in files[1:]),
                    expected_mask=expected,
                )
            )
    if len(counts) > 1:  # cases with different channel counts cannot share one dataset
        (few, path_few), (many, path_many) = sorted(counts.items())[0], sorted(counts.items())[-1]
        raise InputError(
            tree.path(path_few),
            f"has {few} channel file(s) but {path_many} has {many}; every case needs the same channels",
            "add the missing channel files or compile the cases separately",
        )
    return items


def _nnunet_info(tree: _Tree, loc_root: Place) -> LayoutInfo:
    """Class and channel names from ``dataset.json`` (v2 or MSD), when there is one."""
    root = _nnunet_root(tree) or ""
    rel = posixpath.join(root, "dataset.json")
    if rel not in tree.files:
        return LayoutInfo("nnunet")
    path = tree.path(rel)
    try:
        with open_input(path) as (source, _):
            raw = source.read_bytes() if isinstance(source, Path) else source.read()
        doc = json.loads(raw)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot be read as JSON ({exc})", "fix or remove dataset.json") from None
    if not isinstance(doc, dict):
        raise InputError(path, "is not a JSON object", "fix or remove dataset.json")
    classes = _class_names(doc.get("labels"), path)
    names = doc.get("channel_names", doc.get("modality"))
    channel_names = None
    if isinstance(names, dict) and names:
        try:
            channel_names = tuple(str(names[k]) for k in sorted(names, key=int))
        except (TypeError, ValueError):
            raise InputError(path, "channel_names keys must be channel numbers", "fix dataset.json") from None
    window = CT_WINDOW if channel_names and all(n.strip().upper() == "CT" for n in channel_names) else None
    return LayoutInfo("nnunet", classes, window, channel_names)


def _class_names(labels: object, path: Place) -> tuple[str, ...] | None:
    """Names by label id from nnU-Net v2 ``{name: id}`` or MSD ``{"id": name}``; ids must run 0..K-1."""
    if labels is None:
        return None
    if not isinstance(labels, dict) or not labels:
        raise InputError(path, "'labels' must be an object of class names and ids", "fix dataset.json")
    try:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in labels.values()):
            by_id = {int(v): str(k) for k, v in labels.items()}
        else:
            by_id = {int(k): str(v) for k, v in labels.items()}
    except (TypeError, ValueError):
        raise InputError(
            path,
            "'labels' is neither {name: id} (nnU-Net v2) nor {\"id\": name} (MSD); region labels are not supported",
            "give one integer id per class",
        ) from None
    if sorted(by_id) != list(range(len(by_id))):
        raise InputError(path, f"label ids {sorted(by_id)} do not run 0..{len(by_id) - 1}", "fix dataset.json")
    return tuple(by_id[i] for i in range(len(by_id)))


def _auto(tree: _Tree) -> str:
    if _is_nnunet(tree):
        return "nnunet"
    if _btcv_dirs(tree) is not None:
        return "btcv"
    if any(any(_paip_masks(tree, slide)) for slide in _paip_slides(tree)):
        return "paip"
    return "folder"


def discover(
    root: Place,
    layout: Layout = "auto",
    masks: Place | None = None,
    paip_label: PaipLabel = "both",
    image_key: str | None = None,
    mask_key: str | None = None,
    allow_unlabelled: bool = False,
) -> tuple[list[InputItem], LayoutInfo]:
    """The inputs under ``root`` (a local path or an fsspec URL) for ``layout``, sorted, and what
    the layout says about labels. ``masks``: the folder layout's ``--masks`` folder; ``image_key``
    / ``mask_key``: which arrays of ``.npy``/``.npz`` inputs are images and masks;
    ``allow_unlabelled``: an image whose expected label is missing compiles unlabelled instead of
    being a bad input (see the module docstring)."""
    items, info = _discover(root, layout, masks, paip_label)
    if image_key is not None or mask_key is not None:
        items = [replace(it, arrays=(image_key, mask_key)) if it.kind == "array" else it for it in items]
    if not allow_unlabelled:
        items = [_refuse_unlabelled(it) if it.expected_mask and not it.problem else it for it in items]
    return items, info


def _refuse_unlabelled(item: InputItem) -> InputItem:
    return replace(
        item,
        problem=f"no label found for this image (looked for {item.expected_mask}); add it, or compile with "
        "--allow-unlabelled (its mask rows then hold the ignore label), or --on-error skip",
    )


def _discover(
    root: Place, layout: Layout, masks: Place | None, paip_label: PaipLabel
) -> tuple[list[InputItem], LayoutInfo]:
    root = Place.of(root).absolute()  # Dask workers on other hosts resolve no relative path
    if paip_label not in PAIP_CLASSES:
        raise ParameterError("paip_label", "whole, viable or both", paip_label)
    if layout not in get_args(Layout):
        raise ParameterError("layout", " or ".join(get_args(Layout)), layout)
    loc = input_root(root)
    single = is_file(loc)
    is_list = root.name.lower().endswith((".csv", ".jsonl"))
    if layout == "list" or (layout == "auto" and single and is_list):
        if not single or not is_list:
            raise InputError(root, "the list layout needs a .csv or .jsonl file")
        items, info = _list(root, loc), LayoutInfo("list")
    elif single and layout in ("auto", "folder"):
        items, info = [_one_file(root, masks)], LayoutInfo("folder")
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
        elif name == "nnunet":
            if _nnunet_root(tree) is None:
                raise InputError(root, "no imagesTr folder found", "point INPUT at the nnU-Net dataset folder")
            items, info = _nnunet(tree), _nnunet_info(tree, root)
        else:
            items, info = _btcv(tree), LayoutInfo("btcv", BTCV_CLASSES, CT_WINDOW)
    if not items:
        known = " ".join(sorted(READERS))
        raise InputError(
            root, f"no inputs found for the {info.name} layout", f"check the path (image suffixes: {known})"
        )
    return items, info


def _one_file(path: Place, masks: Place | None) -> InputItem:
    """INPUT that is one image or volume file; ``--masks`` may name its mask file."""
    if suffix_of(path) not in READERS:
        known = " ".join(sorted(READERS))
        raise InputError(
            path, f"is a file of no known image kind ({suffix_of(path) or 'no suffix'})", f"use one of: {known}"
        )
    mask = ()
    if masks is not None:
        masks = Place.of(masks).absolute()
        mloc = input_root(masks)
        if not is_file(mloc):
            raise InputError(masks, "--masks must be a file when INPUT is one file")
        mask = (masks,)
    return InputItem(_strip(path.name), path.name, path, mask, _kind(path.name))


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
