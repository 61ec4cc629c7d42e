"""The ``apfcompile`` command line: a thin layer over the library.

Errors that apfcompile raises on purpose (:class:`~apfcompile.errors.APFError`) are printed as
one line, ``apfcompile: error: ...``, with exit status 1; click's own usage errors exit with 2.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import warnings
from collections.abc import Callable
from functools import wraps
from pathlib import Path

import click

from formats.errors import FormatError

from . import __version__
from .choices import (
    DEFAULT_MAX_PIXELS,
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
from .errors import APFError, APFWarning, ParameterError


def flag_of(name: str, command: click.Command | None) -> str:
    """The flag(s) of the parameter the library calls ``name`` (``patch_size`` -> ``--patch-size``;
    ``resume/overwrite`` -> ``--resume/--overwrite``), from ``command``'s options; ``name`` itself
    when no option of the command takes it (e.g. ``labels``)."""
    options = {p.name: max(p.opts, key=len) for p in (command.params if command else []) if isinstance(p, click.Option)}
    parts = name.split("/")
    if all(part in options for part in parts):
        return "/".join(options[part] for part in parts)
    return name


def _friendly(fn: Callable) -> Callable:
    """Turn APFError / FormatError into one line on stderr and exit status 1 (no traceback);
    a ParameterError names the command's flag instead of the library's parameter."""

    @wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (APFError, FormatError) as exc:
            message = str(exc)
            if isinstance(exc, ParameterError):
                ctx = click.get_current_context(silent=True)
                message = exc.message(flag_of(exc.name, ctx.command if ctx else None))
            click.echo(f"apfcompile: error: {message}", err=True)
            sys.exit(1)

    return run


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="apfcompile")
def main() -> None:
    """Compile high-resolution images into adaptive patch sequences, once.

    Each image is cut by an edge-driven quadtree: small leaves where there is detail, large ones
    where there is none; every leaf becomes one p x p patch, and the leaves in Z-order form a
    token sequence short enough for a transformer's attention.
    """


def console() -> None:
    """The ``apfcompile`` program (and ``python -m apfcompile``): :func:`main`, which exits.

    Before the interpreter exits, every object is moved out of the garbage collector's reach
    (``gc.freeze``): its collections during shutdown otherwise walk the objects of every module
    imported (NumPy, OpenCV, pyarrow...), ~0.2 s of each command. Nothing else changes: finalizers,
    ``atexit`` handlers and the flushing of files run as before. Not done by :func:`main` itself,
    which tests and other programs call many times in one process."""
    try:
        main(prog_name="apfcompile")
    finally:
        gc.freeze()


def _view(ctx, param, values: tuple[str, ...]) -> tuple[tuple[int, float, float], ...]:
    out = []
    for v in values:
        try:
            k, lo, hi = v.split(":")
            out.append((int(k), float(lo), float(hi)))
        except ValueError:
            raise click.BadParameter(f"{v!r}: expected K:LO:HI, e.g. 5:50:150") from None
    return tuple(out)


def _storage_options(ctx, param, values: tuple[str, ...]) -> dict | None:
    """KEY=VALUE pairs as fsspec options. ``PROTOCOL.KEY=VALUE`` addresses one filesystem of a
    chained URL (``filecache.cache_storage=DIR`` with ``filecache::s3://...``); endpoint_url and
    region_name go inside client_kwargs, where s3fs wants them; true/false become booleans."""
    out: dict = {}
    for v in values:
        key, sep, value = v.partition("=")
        *scope, name = key.split(".")
        if not sep or not name or not all(scope):
            raise click.BadParameter(f"{v!r}: expected KEY=VALUE, e.g. endpoint_url=http://127.0.0.1:9000")
        target = out
        for part in scope:
            target = target.setdefault(part, {})
        if name in ("endpoint_url", "region_name"):
            target = target.setdefault("client_kwargs", {})
        target[name] = {"true": True, "false": False}.get(value.lower(), value)
    return out or None


INPUT_STORAGE_OPTION = click.option(
    "--input-storage-option",
    "input_storage_options",
    multiple=True,
    callback=_storage_options,
    metavar="KEY=VALUE",
    help="fsspec option for INPUT and --masks URLs only (repeatable), e.g. anon=true for a public "
    "bucket; when given, --storage-option applies to OUTPUT alone.",
)

STORAGE_OPTION = click.option(
    "--storage-option",
    "storage_options",
    multiple=True,
    callback=_storage_options,
    metavar="KEY=VALUE",
    help="fsspec option for every s3:// / gs:// URL of the command (repeatable), e.g. endpoint_url=..., "
    "anon=true; credentials also come from the usual environment variables.",
)


@main.command(context_settings={"max_content_width": 100})
@click.argument("input")
@click.argument("output")
@click.option(
    "--layout",
    type=click.Choice(choices(Layout)),
    default="auto",
    show_default=True,
    help="How INPUT is organised (see below).",
)
@click.option("--masks", help="folder layout: masks here (folder or URL), paired by relative path and stem.")
@click.option(
    "--paip-label",
    type=click.Choice(choices(PaipLabel)),
    default="both",
    show_default=True,
    help="PAIP labels: both = 0 bg / 1 whole-not-viable / 2 viable; whole or viable = 0/1.",
)
@click.option("--resolution", type=click.IntRange(min=1), help="Canvas side R; default: each image's own size.")
@click.option(
    "--fit",
    type=click.Choice(choices(Fit)),
    default="square",
    show_default=True,
    help="square: resize to R x R (the paper); pad: keep aspect, pad to R x R.",
)
@click.option(
    "--patch-size",
    "-p",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Side of every output patch (a power of two).",
)
@click.option(
    "--length",
    "-L",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="greedy: the most leaves per sample.",
)
@click.option(
    "--policy",
    type=click.Choice(choices(Policy)),
    default="greedy",
    show_default=True,
    help="greedy: split the most-edged leaf until L; threshold: split while edges > v.",
)
@click.option(
    "--split-value",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="threshold: split nodes with more edge pixels than this.",
)
@click.option("--max-depth", type=click.IntRange(min=0), help="threshold: deepest level (root = 0).")
@click.option("--min-size", type=click.IntRange(min=1), help="Smallest leaf side (power of two >= p); default p.")
@click.option("--tile-size", type=click.IntRange(min=1), help="Root tile side (power of two); default one tile.")
@click.option(
    "--blur", type=click.IntRange(min=1), default=3, show_default=True, help="Gaussian kernel K (odd; 1 = none)."
)
@click.option("--canny", type=(float, float), default=(100.0, 200.0), show_default=True, help="Canny thresholds LO HI.")
@click.option(
    "--view",
    "views",
    multiple=True,
    callback=_view,
    metavar="K:LO:HI",
    help="Compile each sample again under these edge settings (repeatable; replaces --blur/--canny).",
)
@click.option("--window", type=(float, float), help="Fixed intensity window LO HI for edges of non-uint8 images.")
@click.option(
    "--image-resample",
    type=click.Choice(choices(ImageMethod)),
    default="area",
    show_default=True,
    help="Leaf -> patch for images: exact box mean, or nearest (published code parity).",
)
@click.option(
    "--mask-resample",
    type=click.Choice(choices(MaskMethod)),
    default="mode",
    show_default=True,
    help="Leaf -> patch for masks: majority label, or nearest.",
)
@click.option(
    "--ignore-index",
    type=int,
    help="Mask label that marks unlabelled pixels; fills unlabelled samples' masks (default then: "
    "the mask dtype's largest value, 255 for uint8).",
)
@click.option(
    "--allow-unlabelled",
    is_flag=True,
    help="An image whose label file is missing compiles as an unlabelled sample (mask rows of the "
    "ignore label, items' labelled=False) instead of being a bad input.",
)
@click.option("--image-key", metavar="KEY", help=".npy/.npz inputs: the array of images, N on axis 0 (e.g. x_train).")
@click.option("--mask-key", metavar="KEY", help=".npz inputs: the array of masks, N on axis 0 (e.g. y_train).")
@click.option(
    "--channels-first",
    "channel_order",
    flag_value="first",
    help="3-D image arrays are C x H x W (default: told by shape and mask, else refused).",
)
@click.option("--channels-last", "channel_order", flag_value="last", help="3-D image arrays are H x W x C.")
@click.option(
    "--mask-dtype",
    type=click.Choice(choices(MaskDtype)),
    default="auto",
    show_default=True,
    help="Stored mask dtype; auto = uint8 for paip/btcv and wherever every mask file holds 8-bit labels, else uint16.",
)
@click.option(
    "--classes",
    "classes_file",
    type=click.Path(exists=True, dir_okay=False),
    help='Class names: JSON {"1": "liver", ...} or CSV id,name. Default: the layout\'s (dataset.json; '
    "BTCV's or PAIP's names only when they name every label found).",
)
@click.option(
    "--label-map",
    "label_map_specs",
    multiple=True,
    metavar="FROM:TO",
    help="Remap a mask label before anything else (repeatable), e.g. 255:1; or a JSON/CSV file of pairs.",
)
@click.option("--strict-labels", is_flag=True, help="A mask label with no class name fails its input.")
@click.option(
    "--modality",
    type=click.Choice(choices(Modality)),
    default="auto",
    show_default=True,
    help="What the pixels are: ct gets the HU window and pads with air; auto: the layout's, else "
    "RGB by channels, CT when >= 1% of a signed frame is below -500, else grey.",
)
@click.option(
    "--pad-value",
    type=float,
    help="--fit pad pads with this (default: -1024 for CT, else the image's background: the median "
    "of its top and bottom rows).",
)
@click.option(
    "--split",
    metavar="NAME=FRAC,...",
    help="Split the samples, e.g. train=0.8,val=0.1,test=0.1: whole groups (--split-by) go to one split. "
    "Default: the layout's (imagesTr/imagesTs; train/, val/, test/ folders), else none.",
)
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the --split assignment.")
@click.option(
    "--split-by",
    default="case",
    show_default=True,
    metavar="case|folder|REGEX",
    help="What stays whole in one split: case (a volume, slide or case; a stack's samples one by one), "
    "folder (the key's folder, e.g. kidney_1), or a regular expression over the key (its first group).",
)
@click.option(
    "--split-from",
    "split_from",
    type=click.Path(exists=True, dir_okay=False),
    help="CSV of key,split rows giving every input's (or stack sample's) split outright.",
)
@click.option(
    "--keep-channels",
    is_flag=True,
    help="Keep three channels for grey images stored as RGB (R = G = B), stored as one by default.",
)
@click.option(
    "--mode",
    type=click.Choice(choices(Mode)),
    default="slices",
    show_default=True,
    help="volume: every volume (NIfTI/NRRD/MHA/DICOM) becomes ONE sample, an octree of cubic leaves "
    "with p x p x p patches (length = leaves per volume); slices: one sample per slice.",
)
@click.option(
    "--volume-edges",
    type=click.Choice(choices(VolumeEdges)),
    default="slices",
    show_default=True,
    help="Edges in --mode volume: slices = Canny per slice, stacked; gradient = 3-D gradient "
    "magnitude marking as many voxels (+0.03 ceiling Dice on a CT, -0.1 on an MR; slower).",
)
@click.option(
    "--spacing",
    metavar="MM|finest",
    help="With --mode volume: resample every volume to isotropic MM voxels first (finest: its finest "
    "axis; images linear, masks nearest), so that cubic leaves are cubes of tissue; default: the "
    "stored voxels, which measured better at equal tokens (docs/compiling.md).",
)
@click.option(
    "--out-of-core",
    type=click.Choice(choices(OutOfCore)),
    default="auto",
    show_default=True,
    help="Slides (PAIP; TIFF/SVS images with TIFF masks, <= 16 labels) band by band in bounded "
    "memory; auto: canvases from 16,384^2 px.",
)
@click.option(
    "--band-rows",
    type=click.IntRange(min=8),
    default=512,
    show_default=True,
    help="Rows per band on the out-of-core path (a multiple of 8).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse an input whose header claims more pixels (voxels) than this, before reading it: a "
    "corrupt or hostile header cannot make the compile allocate terabytes (0: no limit). Slides read "
    "out of core are exempt.",
)
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Follow symbolic links under INPUT that point outside it (default: refuse them, one line each).",
)
@click.option(
    "--workers",
    "-j",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default="all cores",
    help="Worker processes.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Run the work on a Dask cluster: tcp://host:8786, or local:N for N local worker processes "
    "(needs apfcompile[dask]). Output is byte-identical to a local compile.",
)
@click.option("--shard-samples", type=click.IntRange(min=1), default=256, show_default=True, help="Samples per shard.")
@STORAGE_OPTION
@INPUT_STORAGE_OPTION
@click.option("--resume", is_flag=True, help="Finish an interrupted compile into OUTPUT, keeping finished shards.")
@click.option("--overwrite", is_flag=True, help="Replace the dataset already in OUTPUT.")
@click.option(
    "--on-error",
    type=click.Choice(choices(OnError)),
    default="fail",
    show_default=True,
    help="fail: stop at the first bad input; skip: record it in the manifest and go on.",
)
@_friendly
def compile(input: str, output: str, **options: object) -> None:
    """Compile the images under INPUT into a dataset of shards in OUTPUT.

    \b
    Layouts (auto finds them):
      folder  images (any depth; png/jpg/tif/svs/nii/nrrd/mha/npy; a folder of .dcm = one volume);
              masks from --masks DIR, .../images/NAME + .../labels/NAME (or masks/), or
              NAME_mask.*; or one file as INPUT
      paip    CASE.svs + CASE_whole.tif + CASE_viable.tif (PAIP 2019)
      btcv    RawData/Training/img + label (or imagesTr + labelsTr); one sample per axial slice
      nnunet  imagesTr/CASE_0000.ext (+ _0001...) + labelsTr/CASE.ext, imagesTs unlabelled;
              class and channel names from dataset.json (nnU-Net v2 or MSD)
      list    a .csv (image,mask[,key]) or .jsonl file

    INPUT, --masks and OUTPUT are local paths or fsspec URLs (s3://bucket/prefix, gs://...,
    memory://); --storage-option applies to every URL unless --input-storage-option gives the
    inputs their own (e.g. a public bucket in, a private one out). Chained URLs work too:
    INPUT filecache::s3://bucket/raw with --input-storage-option filecache.cache_storage=DIR
    --input-storage-option s3.endpoint_url=... keeps a local copy of every input read, for the
    next compile. Remote slides are read tile by tile:
    only the pyramid level used is fetched.
    """
    from .build.allocator import keep_freed_memory
    from .build.executors import start_workers

    keep_freed_memory()  # this process is the command's own: its frames reuse freed memory
    start_workers(options["workers"], options["scheduler"])  # its imports overlap what follows
    from .build.config import CompileConfig
    from .build.run import compile_dataset
    from .inputs.labels import read_class_names, read_label_map

    options["channel_order"] = options["channel_order"] or "auto"  # neither flag given
    classes_file = options.pop("classes_file")
    options["classes"] = None if classes_file is None else read_class_names(classes_file)
    options["label_map"] = read_label_map(options.pop("label_map_specs"))
    if options["split_from"] is not None:
        from .build.splits import read_split_file

        options["split_from"] = read_split_file(options["split_from"])
    cfg = CompileConfig.from_options(input, output, progress=sys.stderr.isatty(), **options)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", APFWarning)
        manifest = compile_dataset(cfg)
    for w in caught:
        if issubclass(w.category, APFWarning):
            click.echo(f"apfcompile: warning: {w.message}", err=True)
        else:  # not ours: shown as Python would have
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    t = manifest.totals
    click.echo(
        f"{output}: {t['samples']} samples, {t['nodes']} nodes in {t['shards']} shard(s), "
        f"{t['bytes'] / 1e6:.1f} MB; {t['failures']} input(s) failed"
    )
    for f in manifest.failures:
        click.echo(f"  failed: {f.source}: {f.error}", err=True)


@main.command()
@click.argument("dataset")
@STORAGE_OPTION
@_friendly
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON document, for scripts.")
def inspect(dataset: str, storage_options: dict | None, as_json: bool) -> None:
    """Summarise DATASET: parameters, counts, lengths, leaf sizes, gamma, ceiling Dice, bytes, errors."""
    from formats import open_dataset

    from .report import summary, summary_dict

    ds = open_dataset(dataset, storage_options)
    if as_json:
        click.echo(json.dumps(summary_dict(ds), indent=1, sort_keys=True, default=str))
        return
    click.echo(summary(ds))


@main.command(name="ls")
@click.argument("dataset")
@click.option(
    "--sort",
    metavar="FIELD",
    help="Sort by a field (sample, key, shard, view, length, gamma, ceiling, split, labelled, source); "
    "-FIELD for descending, e.g. --sort ceiling to see the worst ceilings first.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "jsonl"]), default="table", show_default=True)
@STORAGE_OPTION
@_friendly
def ls(dataset: str, sort: str | None, fmt: str, storage_options: dict | None) -> None:
    """List the samples of DATASET, one row each: sample id, key, shard, view, length (leaves),
    gamma, ceiling (mean foreground Dice of the mask rebuilt from patches), split, labelled, source."""
    from formats import open_dataset

    from .report import sample_rows

    try:
        rows = sample_rows(open_dataset(dataset, storage_options), sort)
    except ValueError as exc:
        raise click.BadParameter(str(exc).split(": ", 1)[1], param_hint="--sort") from None
    click.echo(format_rows_or_empty(rows, fmt))


def format_rows_or_empty(rows: list[dict], fmt: str) -> str:
    from .report import format_rows

    return format_rows(rows, fmt) if rows else "(no samples)"


@main.command()
@click.argument("dataset")
@click.option("--sample", help="One sample, by id or key.")
@click.option("--shard", type=int, help="One shard, by index.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "jsonl"]), default="table", show_default=True)
@STORAGE_OPTION
@_friendly
def dump(dataset: str, sample: str | None, shard: int | None, fmt: str, storage_options: dict | None) -> None:
    """Print node metadata rows: sample, key, x1, x2, y1, y2, size, cx, cy, depth, edges
    (volumes add z1, z2 and cz)."""
    from formats import open_dataset

    from .report import dump_rows, format_rows

    ds = open_dataset(dataset, storage_options)
    if shard is not None and not 0 <= shard < len(ds.manifest.shards):
        raise click.BadParameter(
            f"{shard}: the dataset has shards 0..{len(ds.manifest.shards) - 1}", param_hint="--shard"
        )
    click.echo(format_rows(dump_rows(ds, sample, shard), fmt))


@main.command()
@click.argument("dataset")
@STORAGE_OPTION
@_friendly
def verify(dataset: str, storage_options: dict | None) -> None:
    """Check every shard's files against the manifest's sizes and checksums, and their structure."""
    from tqdm import tqdm

    from formats import open_dataset

    ds = open_dataset(dataset, storage_options)
    total = sum(f.bytes for shard in ds.manifest.shards for f in shard.files.values())
    with tqdm(
        total=total, unit="B", unit_scale=True, desc="verifying", disable=not sys.stderr.isatty(), leave=False
    ) as bar:
        problems = ds.verify(progress=bar.update)
    if problems:
        for p in problems:
            click.echo(f"apfcompile: broken: {ds.location.display(p)}", err=True)
        sys.exit(1)
    t = ds.manifest.totals
    click.echo(f"{ds.path}: OK ({t['shards']} shards, {t['samples']} samples, {t['nodes']} nodes verified)")


@main.command()
@click.argument("dataset")
@click.option("--sample", required=True, help="The sample, by id or key.")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), default="preview.png", show_default=True)
@click.option(
    "--input",
    "input_root",
    metavar="INPUT",
    help="The compile's INPUT (path or URL), to show the source image and mask (else: rebuilt from patches).",
)
@click.option(
    "--masks",
    "masks_root",
    metavar="DIR",
    help="The compile's --masks folder, for a dataset compiled with one (with --input).",
)
@STORAGE_OPTION
@INPUT_STORAGE_OPTION
@_friendly
def preview(
    dataset: str,
    sample: str,
    out: Path,
    input_root: str | None,
    masks_root: str | None,
    storage_options: dict | None,
    input_storage_options: dict | None,
) -> None:
    """Write a PNG of one sample: titled panels (image with leaf borders, mask, mask rebuilt from
    its patches with its Dice) and a legend of class names; CT/MR slices in the radiological view."""
    from formats import open_dataset

    from .preview import write_preview

    where, masks = _input_places(input_root, masks_root, storage_options, input_storage_options)
    click.echo(write_preview(open_dataset(dataset, storage_options), sample, out, where, masks))


def _input_places(input_root, masks_root, storage_options, input_storage_options):
    """``--input`` and ``--masks`` as Places (None when not given), with the inputs' storage options."""
    from .inputs.locations import Place

    inputs = storage_options if input_storage_options is None else input_storage_options
    if masks_root is not None and input_root is None:
        raise click.BadParameter("goes with --input (the compile's INPUT)", param_hint="--masks")
    where = None if input_root is None else Place.of(input_root, inputs)
    return where, None if masks_root is None else Place.of(masks_root, inputs)


@main.command()
@click.argument("dataset")
@click.option("-o", "--output", "out", type=click.Path(path_type=Path), default="report.html", show_default=True)
@click.option("--gallery", type=click.IntRange(min=0), default=12, show_default=True, help="Samples in the gallery.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the gallery's random choice.")
@click.option(
    "--input",
    "input_root",
    metavar="INPUT",
    help="The compile's INPUT, to show the source pixels and mask in the gallery (else: rebuilt from patches).",
)
@click.option("--masks", "masks_root", metavar="DIR", help="The compile's --masks folder (with --input).")
@STORAGE_OPTION
@INPUT_STORAGE_OPTION
@_friendly
def report(
    dataset: str,
    out: Path,
    gallery: int,
    seed: int,
    input_root: str | None,
    masks_root: str | None,
    storage_options: dict | None,
    input_storage_options: dict | None,
) -> None:
    """Write one self-contained HTML page about DATASET: the summary, plots (lengths, gamma, leaf
    sizes, ceiling Dice per class), a gallery (worst ceilings first, then a random choice) and a
    legend. Open it in any browser, or send it: nothing is fetched from anywhere."""
    from formats import open_dataset

    from .report_page import write_report

    where, masks = _input_places(input_root, masks_root, storage_options, input_storage_options)
    ds = open_dataset(dataset, storage_options)
    path = write_report(ds, out, gallery, seed, where, masks, progress=sys.stderr.isatty())
    click.echo(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")


@main.command()
@click.argument("output", required=False, default="apf-demo", type=click.Path(file_okay=False, path_type=Path))
@_friendly
def demo(output: Path) -> None:
    """Compile the bundled real samples into OUTPUT (./apf-demo), read them back, preview them.

    Three small datasets from real data: abdominal CT with organ labels (BTCV layout, one sample
    per slice), fluorescence nuclei with instance labels and H&E tissue (folder layout). Prints
    each dataset's summary, streams one batch of fixed-length sequences back, writes previews.
    """
    from .demo import run_demo

    run_demo(output, echo=click.echo)


if __name__ == "__main__":  # pragma: no cover
    main()
