"""What a compile is asked to do, in two parts that cannot be confused.

- :class:`DataConfig`: every option that decides the bytes of the samples. All of its fields
  are stored in the manifest (``parameters``, or ``views``) and hashed into the resume
  fingerprint, by construction (:meth:`DataConfig.parameters`, :func:`fingerprint`): adding a
  field here is enough for both.
- :class:`RunConfig`: how the run goes (workers, scheduler, storage options, progress, resume,
  memory strategy). Nothing here reaches the manifest or the fingerprint, so a new run option can
  never change either. The out-of-core path gives the in-memory path's patches for the same leaves
  (edges may differ only where Canny's hysteresis crosses a band border further than the halo;
  docs/limits.md), so ``out_of_core`` and ``band_rows`` are run options.

Option choices are the ``Literal`` types of :mod:`apfcompile.choices`, which the CLI's
``click.Choice`` lists are built from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import get_args

import numpy as np

from ..choices import (
    ChannelOrder,
    Fit,
    ImageMethod,
    Layout,
    MaskDtype,
    MaskMethod,
    Modality,
    Mode,
    OnError,
    OutOfCore,
    PaipLabel,
    Policy,
    VolumeEdges,
    choices,
)
from ..core.edges import EdgeParams
from ..core.forest import ForestParams
from ..core.patchify import PatchParams
from ..errors import ParameterError
from ..inputs.layouts import LayoutInfo
from ..inputs.locations import Place
from ..inputs.readers.limits import DEFAULT_MAX_PIXELS
from .splits import parse_split

__all__ = [
    "CompileConfig",
    "DataConfig",
    "RunConfig",
    "View",
    "fingerprint",
]

View = tuple[int, float, float]
"""One view: (blur kernel, Canny lo, Canny hi)."""


def _check_choice(name: str, value: object, literal: object) -> None:
    if value not in get_args(literal):
        raise ParameterError(name, " or ".join(choices(literal)), value)


@dataclass(frozen=True)
class DataConfig:
    """The options that decide the data (see ``apfcompile compile --help`` for each).

    views: (blur, canny_lo, canny_hi) per view; empty = one view from ``blur`` and ``canny``.
    window: fixed intensity window for edges (None: the layout's, e.g. CT's HU window, else a
    percentile stretch). mask_dtype: ``auto`` = the narrowest that holds the masks' labels
    (:func:`~apfcompile.build.plan.choose_mask_dtype`).
    shard_samples: samples per shard (decides which bytes go in which shard).
    image_key, mask_key: the arrays of ``.npy``/``.npz`` inputs that hold images and masks;
    channel_order: where 3-D image arrays keep their channels (``auto``: the documented rule).
    allow_unlabelled: an image whose expected label is missing compiles as an unlabelled sample
    (mask rows of the ignore label) instead of being a bad input.
    classes: ``(id, name)`` pairs (``--classes``; a dict is taken too), trusted over the layout's;
    label_map: ``(from, to)`` pairs applied to every mask first; strict_labels: a label no name
    covers fails its input instead of a warning. modality: ``auto`` decides per frame
    (:mod:`apfcompile.inputs.modality`); pad_value: what ``fit="pad"`` pads with (None: the
    modality's background); keep_channels: grey images stored as RGB keep their three channels.
    split (``train=0.8,...`` or pairs), split_seed, split_by, split_from (``(key, split)`` pairs,
    or a dict): see :mod:`apfcompile.build.splits`. mode: ``volume`` compiles each volume into one
    sample of octree leaves (p^3 patches; :mod:`apfcompile.core.octree`), with ``volume_edges``
    deciding its edges (:mod:`apfcompile.core.patchify_volume`) and ``spacing`` (mm, or ``finest``:
    each volume's finest axis) resampling it to isotropic voxels first
    (:mod:`apfcompile.core.resample_volume`; None: the stored voxels).
    These fields were added after v1's first datasets: they enter the manifest and the fingerprint
    only when set, so datasets compiled without them keep their bytes.
    """

    layout: Layout = "auto"
    paip_label: PaipLabel = "both"
    resolution: int | None = None
    fit: Fit = "square"
    patch_size: int = 8
    length: int = 1024
    policy: Policy = "greedy"
    split_value: int = 0
    max_depth: int | None = None
    min_size: int | None = None
    tile_size: int | None = None
    blur: int = 3
    canny: tuple[float, float] = (100.0, 200.0)
    views: tuple[View, ...] = ()
    window: tuple[float, float] | None = None
    image_resample: ImageMethod = "area"
    mask_resample: MaskMethod = "mode"
    ignore_index: int | None = None
    mask_dtype: MaskDtype = "auto"
    shard_samples: int = 256
    image_key: str | None = None
    mask_key: str | None = None
    channel_order: ChannelOrder = "auto"
    allow_unlabelled: bool = False
    classes: tuple[tuple[int, str], ...] | None = None
    label_map: tuple[tuple[int, int], ...] = ()
    strict_labels: bool = False
    modality: Modality = "auto"
    pad_value: float | None = None
    keep_channels: bool = False
    split: tuple[tuple[str, float], ...] | None = None
    split_seed: int = 0
    split_by: str = "case"
    split_from: tuple[tuple[str, str], ...] | None = None
    mode: Mode = "slices"
    volume_edges: VolumeEdges = "slices"
    spacing: float | str | None = None

    def __post_init__(self) -> None:
        if self.split is not None:
            object.__setattr__(self, "split", parse_split(self.split))
        if isinstance(self.split_from, dict):
            object.__setattr__(self, "split_from", tuple(sorted(self.split_from.items())))
        if isinstance(self.classes, dict):  # {id: name}, as a library user would write it
            object.__setattr__(self, "classes", tuple(sorted((int(k), str(v)) for k, v in self.classes.items())))
        if isinstance(self.label_map, dict):
            object.__setattr__(self, "label_map", tuple(sorted((int(k), int(v)) for k, v in self.label_map.items())))
        p = self.patch_size
        if not (isinstance(p, int) and p >= 1 and not p & (p - 1)):
            raise ParameterError("patch_size", "a power of two", p)
        for name, literal in (
            ("layout", Layout),
            ("paip_label", PaipLabel),
            ("fit", Fit),
            ("policy", Policy),
            ("image_resample", ImageMethod),
            ("mask_resample", MaskMethod),
            ("mask_dtype", MaskDtype),
            ("channel_order", ChannelOrder),
            ("modality", Modality),
            ("mode", Mode),
            ("volume_edges", VolumeEdges),
        ):
            _check_choice(name, getattr(self, name), literal)
        if self.shard_samples < 1:
            raise ParameterError("shard_samples", "an integer >= 1", self.shard_samples)
        if isinstance(self.spacing, str) and self.spacing != "finest":
            try:
                object.__setattr__(self, "spacing", float(self.spacing))
            except ValueError:
                raise ParameterError("spacing", "a voxel size in mm > 0 or 'finest'", self.spacing) from None
        if self.spacing is not None and (
            self.mode != "volume" or (self.spacing != "finest" and not float(self.spacing) > 0)
        ):
            raise ParameterError("spacing", "a voxel size in mm > 0 or 'finest', with --mode volume", self.spacing)
        if self.mode == "volume" and (self.resolution is not None or self.fit != "square"):
            name, value = ("resolution", self.resolution) if self.resolution is not None else ("fit", self.fit)
            raise ParameterError(
                name,
                "unset with --mode volume (volumes compile at their stored voxels; --spacing resamples them)",
                value,
            )
        if self.resolution is not None and self.resolution < 1:
            raise ParameterError("resolution", "an integer >= 1", self.resolution)
        self.patch_params(self.view_list()[0], None)  # validates every patch parameter now

    def view_list(self) -> list[View]:
        """The views compiled, in order: ``views``, or the one from ``blur`` and ``canny``."""
        views = list(self.views) or [(self.blur, self.canny[0], self.canny[1])]
        return [(int(b), float(lo), float(hi)) for b, lo, hi in views]

    def patch_params(self, view: View, window: tuple[float, float] | None) -> PatchParams:
        """The core's parameters for one view; ``window``: the layout's, used when none is set."""
        blur, lo, hi = view
        forest = ForestParams(
            policy=self.policy,
            length=self.length,
            min_size=self.min_size or self.patch_size,
            tile_size=self.tile_size,
            split_value=self.split_value,
            max_depth=self.max_depth,
        )
        return PatchParams(
            patch_size=self.patch_size,
            edges=EdgeParams(blur=blur, canny=(lo, hi), window=self.window or window),
            forest=forest,
            image_method=self.image_resample,
            mask_method=self.mask_resample,
            ignore_index=self.ignore_index,
        )

    def unlabelled_fill(self, mask_dtype: str) -> int:
        """The label that fills the mask rows of an unlabelled sample in a labelled dataset:
        ``ignore_index``, by default the mask dtype's largest value (255 for uint8)."""
        if self.ignore_index is not None:
            return self.ignore_index
        return int(np.iinfo(mask_dtype).max)

    def resolved_mask_dtype(self, info: LayoutInfo) -> str:
        if self.mask_dtype != "auto":
            return self.mask_dtype
        return "uint8" if info.name in ("paip", "btcv") else "uint16"

    def parameters(self, info: LayoutInfo, mask_dtype: str | None = None) -> dict:
        """Every field but ``views`` (stored as the manifest's ``views``), with what the layout
        resolved: the manifest's ``parameters``. ``mask_dtype``: the dtype the compile chose
        (:func:`~apfcompile.build.plan.choose_mask_dtype`; default: the layout's)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "views"}
        for name, default in _ADDED.items():
            if d[name] == default:
                del d[name]
        d.update(
            layout=info.name,
            canny=list(self.canny),
            window=list(self.window or info.window or []) or None,
            min_size=self.min_size or self.patch_size,
            mask_dtype=mask_dtype or self.resolved_mask_dtype(info),
        )
        for name in ("classes", "label_map", "split"):  # pairs, as JSON lists
            if name in d and d[name] is not None:
                d[name] = [list(pair) for pair in d[name]]
        if d.get("split_from") is not None:  # the file's pairs by digest: the samples carry their split
            pairs = json.dumps([list(p) for p in self.split_from]).encode()
            d["split_from"] = {"keys": len(self.split_from), "sha256": hashlib.sha256(pairs).hexdigest()}
        if info.channel_names is not None:  # what the layout says each channel is (nnU-Net)
            d["channel_names"] = list(info.channel_names)
        return d


_ADDED = {
    "mode": "slices",
    "volume_edges": "slices",
    "spacing": None,
    "image_key": None,
    "mask_key": None,
    "channel_order": "auto",
    "allow_unlabelled": False,
    "classes": None,
    "label_map": (),
    "strict_labels": False,
    "modality": "auto",
    "pad_value": None,
    "keep_channels": False,
    "split": None,
    "split_seed": 0,
    "split_by": "case",
    "split_from": None,
}
"""Data options added after the first v1 datasets, stored only when not at their default."""


def fingerprint(
    data: DataConfig, info: LayoutInfo, plan: list[tuple[str, str | None, int]], mask_dtype: str | None = None
) -> str:
    """SHA-256 of the data options and the plan ((source, mask source, samples) per input): what
    ``--resume`` matches a committed shard against. Views enter only when given (``--view``), so
    that compiles without them keep the fingerprints of earlier versions."""
    doc: dict = {"parameters": data.parameters(info, mask_dtype), "plan": [list(p) for p in plan]}
    if data.views:
        doc["views"] = [list(v) for v in data.view_list()]
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RunConfig:
    """How the run goes: nothing here changes the data.

    workers: local worker processes; scheduler: a Dask address or ``local:N`` (then ``workers``
    is unused); on_error: ``fail`` stops at the first bad input, ``skip`` records it; resume /
    overwrite: what to do with a dataset already in OUTPUT; out_of_core / band_rows: the memory
    strategy for large slides; progress: show a progress bar; max_pixels: inputs whose header claims
    more pixels are refused before they are read (None or 0: no limit; :mod:`..inputs.readers.limits`);
    follow_symlinks: follow links under the input that point outside it.
    """

    workers: int = 1
    scheduler: str | None = None
    on_error: OnError = "fail"
    resume: bool = False
    overwrite: bool = False
    out_of_core: OutOfCore = "auto"
    band_rows: int = 512
    progress: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    follow_symlinks: bool = False

    @property
    def pixel_limit(self) -> int | None:
        """The readers' pixel limit (:func:`~..inputs.readers.limits.pixel_limit`): None for none."""
        return self.max_pixels or None

    def __post_init__(self) -> None:
        _check_choice("on_error", self.on_error, OnError)
        _check_choice("out_of_core", self.out_of_core, OutOfCore)
        if self.workers < 1:
            raise ParameterError("workers", "an integer >= 1", self.workers)
        if self.max_pixels is not None and self.max_pixels < 0:
            raise ParameterError("max_pixels", "None or an integer >= 0 (0: no limit)", self.max_pixels)
        if self.band_rows < 8 or self.band_rows % 8:
            raise ParameterError("band_rows", "a multiple of 8, at least 8", self.band_rows)
        if self.resume and self.overwrite:
            raise ParameterError("resume/overwrite", "at most one of them", "both")


@dataclass(frozen=True)
class CompileConfig:
    """One compile: where from (``input``, ``masks``), where to (``output``), what (``data``) and
    how (``run``). Places carry their own storage options (:class:`~apfcompile.inputs.locations.Place`).

    :meth:`from_options` takes the CLI's flat options (``length=``, ``workers=``, ...).
    """

    input: Place
    output: Place
    masks: Place | None = None
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @classmethod
    def from_options(
        cls,
        input: object,
        output: object,
        masks: object = None,
        storage_options: dict | None = None,
        input_storage_options: dict | None = None,
        **options: object,
    ) -> CompileConfig:
        """A config from flat options: each goes to :class:`DataConfig` or :class:`RunConfig` by
        name. INPUT and ``masks`` use ``input_storage_options`` when given, else
        ``storage_options``; OUTPUT uses ``storage_options``."""
        data_names = {f.name for f in fields(DataConfig)}
        run_names = {f.name for f in fields(RunConfig)}
        unknown = sorted(set(options) - data_names - run_names)
        if unknown:
            raise TypeError(f"CompileConfig.from_options: unknown option(s) {', '.join(unknown)}")
        ins = storage_options if input_storage_options is None else input_storage_options
        return cls(
            input=Place.of(input, ins),
            output=Place.of(output, storage_options),
            masks=None if masks is None else Place.of(masks, ins),
            data=DataConfig(**{k: v for k, v in options.items() if k in data_names}),
            run=RunConfig(**{k: v for k, v in options.items() if k in run_names}),
        )

    def manifest_keys(self) -> set[str]:
        """The fields of :class:`DataConfig`, as a check that they all reach the manifest."""
        return set(asdict(self.data))
