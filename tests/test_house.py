"""The house plan's contracts: data options vs run options, one node table and one padding row,
typed shard records, region sources that close, one route per input, errors that name flags."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from apfcompile import CompileConfig, DataConfig, RunConfig, compile_dataset, fit_length
from apfcompile.build.config import fingerprint
from apfcompile.build.samples import choose_route
from apfcompile.cli import flag_of, main
from apfcompile.inputs.layouts import LayoutInfo, discover
from apfcompile.inputs.sources import ArraySource, TiffSource, open_slide_sources, read_slide_header
from formats import SampleNotFoundError, ShardRecord, open_dataset
from formats.errors import FormatError
from formats.sequence import PAD_ROW, ROW_DTYPES
from loaders import APFDataset, collate

from . import builders

GOLDEN = Path(__file__).parent / "golden" / "v1"
PLAN = [("a.png", None, 1), ("b.png", "b_mask.png", 1)]
INFO = LayoutInfo("folder")

# One value for every DataConfig field that differs from its default (and stays valid).
OTHER_DATA = {
    "layout": "list",
    "paip_label": "whole",
    "resolution": 512,
    "fit": "pad",
    "patch_size": 16,
    "length": 77,
    "policy": "threshold",
    "split_value": 3,
    "max_depth": 5,
    "min_size": 32,
    "tile_size": 64,
    "blur": 5,
    "canny": (50.0, 150.0),
    "views": ((5, 50.0, 150.0), (3, 10.0, 20.0)),
    "window": (-100.0, 200.0),
    "image_resample": "nearest",
    "mask_resample": "nearest",
    "ignore_index": 255,
    "mask_dtype": "int32",
    "shard_samples": 9,
    "image_key": "x_train",
    "mask_key": "y_train",
    "channel_order": "first",
    "allow_unlabelled": True,
    "classes": ((1, "liver"), (2, "spleen")),
    "label_map": ((255, 1),),
    "strict_labels": True,
    "modality": "ct",
    "pad_value": -1000.0,
    "keep_channels": True,
    "split": (("train", 0.75), ("val", 0.25)),
    "split_seed": 7,
    "split_by": "folder",
    "split_from": (("a", "train"),),
    "mode": "volume",
    "volume_edges": "gradient",
    "spacing": 1.5,
}
OTHER_RUN = {
    "workers": 3,
    "scheduler": "local:2",
    "on_error": "skip",
    "resume": True,
    "overwrite": True,
    "out_of_core": "never",
    "band_rows": 64,
    "progress": True,
    "max_pixels": 1000,
    "follow_symlinks": True,
}


def test_every_data_option_is_listed_here_and_every_run_option_too():
    assert set(OTHER_DATA) == {f.name for f in dataclasses.fields(DataConfig)}
    assert set(OTHER_RUN) == {f.name for f in dataclasses.fields(RunConfig)}


@pytest.mark.parametrize("name", sorted(OTHER_DATA))
def test_every_data_option_changes_the_fingerprint_and_reaches_the_manifest(name):
    needs = {"spacing": {"mode": "volume"}}.get(name, {})  # an option that only goes with another
    base = DataConfig(**needs)
    other = DataConfig(**needs, **{name: OTHER_DATA[name]})
    if name == "layout":  # the layout asked for decides nothing; the one found does
        assert fingerprint(base, INFO, PLAN) == fingerprint(other, INFO, PLAN)
        assert fingerprint(base, INFO, PLAN) != fingerprint(base, LayoutInfo("list"), PLAN)
    else:
        assert fingerprint(base, INFO, PLAN) != fingerprint(other, INFO, PLAN)
    stored = other.parameters(INFO)
    assert name in stored or name == "views"  # views are stored as the manifest's own `views`
    if name == "split_from":  # stored by digest: each sample carries its split
        assert stored[name]["keys"] == 1 and len(stored[name]["sha256"]) == 64
    elif name not in ("layout", "views"):  # the layout stored is the one resolved
        value = OTHER_DATA[name]
        as_json = json.loads(json.dumps(value))
        assert stored[name] == as_json


@pytest.mark.parametrize("name", sorted(OTHER_RUN))
def test_no_run_option_changes_the_fingerprint_or_the_manifest(name):
    data = DataConfig()
    a = CompileConfig.from_options("in", "out")
    b = CompileConfig.from_options("in", "out", **{name: OTHER_RUN[name]})
    assert a.data == b.data and a.run != b.run
    assert fingerprint(a.data, INFO, PLAN) == fingerprint(b.data, INFO, PLAN) == fingerprint(data, INFO, PLAN)
    assert name not in a.data.parameters(INFO)


def test_from_options_refuses_an_unknown_option():
    with pytest.raises(TypeError, match="workerz"):
        CompileConfig.from_options("in", "out", workerz=2)


def test_parameter_errors_name_the_library_parameter_and_the_cli_the_flag(tmp_path):
    from apfcompile import ParameterError

    with pytest.raises(ParameterError, match=r"^band_rows: expected a multiple of 8"):
        RunConfig(band_rows=12)
    with pytest.raises(ParameterError, match=r"^resume/overwrite"):
        RunConfig(resume=True, overwrite=True)
    assert flag_of("band_rows", main.commands["compile"]) == "--band-rows"
    assert flag_of("resume/overwrite", main.commands["compile"]) == "--resume/--overwrite"
    assert flag_of("labels", main.commands["compile"]) == "labels"  # not an option: left as it is
    from click.testing import CliRunner

    src = builders.nuclei_folder(tmp_path / "in", copies=1)
    out = CliRunner().invoke(main, ["compile", str(src), str(tmp_path / "ds"), "--resume", "--overwrite"])
    assert out.exit_code == 1 and "apfcompile: error: --resume/--overwrite: expected at most one" in out.output


def test_a_missing_sample_has_its_own_error(tmp_path):
    ds = open_dataset(GOLDEN)
    with pytest.raises(SampleNotFoundError, match="no sample 'nope'") as caught:
        ds.read_sample("nope")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, FormatError)
    assert str(caught.value).startswith(str(ds.path))  # one plain line, not a quoted KeyError


def test_golden_shard_records_parse_and_write_back_byte_for_byte():
    for path in sorted(GOLDEN.glob("shards/*/shard.json")):
        raw = path.read_bytes()
        record = ShardRecord.from_dict(json.loads(raw), path)
        assert record.to_bytes() == raw
        assert len(record.fingerprint) == 64 and record.shard.path == f"shards/{path.parent.name}"


def test_shard_record_refuses_unknown_fields():
    raw = json.loads(next(GOLDEN.glob("shards/*/shard.json")).read_bytes())
    with pytest.raises(FormatError, match="unknown field"):
        ShardRecord.from_dict({**raw, "extra": 1}, "shard.json")


def test_fit_length_pads_exactly_as_the_loader_does(tmp_path):
    src = builders.nuclei_folder(tmp_path / "in", copies=2)
    compile_dataset(CompileConfig.from_options(src, tmp_path / "ds", length=300, workers=1))
    stored = open_dataset(tmp_path / "ds").read_sample(0)
    length = len(stored.nodes) + 37
    seq = fit_length(stored.image, stored.nodes, length, mask=stored.mask)
    item = APFDataset(tmp_path / "ds", length=length, view=0)[0]
    for name, ours in (("size", seq.size), ("center", seq.center), ("box", seq.box), ("valid", seq.valid)):
        assert ours.dtype == ROW_DTYPES[name], name
        np.testing.assert_array_equal(ours, item[name].numpy(), err_msg=name)
    assert (seq.center[~seq.valid] == PAD_ROW["center"]).all() and (seq.index[~seq.valid] == PAD_ROW["index"]).all()
    np.testing.assert_array_equal(seq.patches.transpose(0, 3, 1, 2), item["image"].numpy())
    # collate pads a shorter item with the same row
    short = APFDataset(tmp_path / "ds", length=None, view=0)[0]
    batch = collate([short, item])
    np.testing.assert_array_equal(batch["center"][0].numpy(), item["center"].numpy())
    assert batch["valid"].dtype == torch.bool


def test_region_sources_close_what_they_open(tmp_path):
    src = builders.paip(tmp_path / "paip", cases=("c1",))
    (item,), _ = discover(src)
    header = read_slide_header(item, 256)
    with open_slide_sources(header, "both") as slide:
        tif = slide.image._tif
        assert slide.image.rows(0, 8).shape[:2] == (8, header.canvas[1])
        assert sorted(np.unique(slide.mask.rows(0, header.canvas[0])).tolist()) <= [0, 1, 2]
    assert tif.filehandle.closed
    with TiffSource(item.image) as source:
        tif = source._tif
    assert tif.filehandle.closed
    with ArraySource(np.zeros((4, 4), np.uint8)) as source:
        assert source.rows(1, 3).shape == (2, 4)


def test_one_route_per_input_from_its_header(tmp_path):
    src = builders.paip(tmp_path / "paip", cases=("c1",))
    (item,), _ = discover(src)
    data = DataConfig(resolution=256)
    assert choose_route(item, data, RunConfig(out_of_core="never")) == ("in_memory", None)
    assert choose_route(item, data, RunConfig(out_of_core="auto"))[0] == "in_memory"  # a small canvas
    route, header = choose_route(item, data, RunConfig(out_of_core="always"))
    assert route == "out_of_core" and header.canvas == (256, 256)
    nearest = DataConfig(resolution=256, image_resample="nearest")
    assert choose_route(item, nearest, RunConfig(out_of_core="auto"))[0] == "in_memory"
    import cv2

    (tmp_path / "png").mkdir()
    cv2.imwrite(str(tmp_path / "png" / "a.png"), np.zeros((64, 64, 3), np.uint8))
    (plain,), _ = discover(tmp_path / "png")
    assert choose_route(plain, data, RunConfig(out_of_core="always")) == ("in_memory", None)


def test_resume_under_other_views_recompiles(tmp_path):
    """The fingerprint covers --view: shards made under other views are not kept."""
    src = builders.nuclei_folder(tmp_path / "in", copies=2)
    out = tmp_path / "ds"
    compile_dataset(CompileConfig.from_options(src, out, length=100, views=((3, 100.0, 200.0),), workers=1))
    first = open_dataset(out).samples["canny_lo"].to_pylist()
    compile_dataset(CompileConfig.from_options(src, out, length=100, views=((3, 10.0, 20.0),), workers=1, resume=True))
    again = open_dataset(out).samples["canny_lo"].to_pylist()
    assert set(first) == {100.0} and set(again) == {10.0}
