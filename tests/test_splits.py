"""Splits without leakage (issue #13): whole groups to one split, decided from the plan alone."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from apfcompile.build.splits import parse_split, plan_splits
from apfcompile.cli import main
from apfcompile.inputs.layouts import InputItem
from formats import open_dataset
from loaders import APFDataset, APFStream

from . import builders
from .test_never_silent import vessels

compile_ = builders.compile_to


@pytest.fixture(scope="module")
def btcv5(tmp_path_factory):
    return builders.btcv(tmp_path_factory.mktemp("split") / "btcv", cases=5)


def test_split_by_case_keeps_every_volume_whole(btcv5, tmp_path):
    manifest = compile_(btcv5, tmp_path / "ds", split="train=0.6,val=0.2,test=0.2", split_seed=3)
    ds = open_dataset(tmp_path / "ds")
    t = ds.samples
    by_case: dict[str, set] = {}
    for key, split in zip(t["key"].to_pylist(), t["split"].to_pylist()):
        by_case.setdefault(key.split("/")[0], set()).add(split)
    assert all(len(s) == 1 for s in by_case.values())  # no volume straddles two splits
    assert manifest.splits == {"test": 30, "train": 90, "val": 30}  # 5 volumes of 30: 3 / 1 / 1
    assert ds.verify() == []
    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "ds")]).output
    assert "splits    test 30 (1 group(s)), train 90 (3 group(s)), val 30 (1 group(s)); by case, seed 3" in shown
    val = APFDataset(tmp_path / "ds", split="val", length=32)
    assert len(val) == 30 and {val[i]["key"].split("/")[0] for i in range(len(val))} == {
        k for k, s in by_case.items() if s == {"val"}
    }
    stream = APFStream(tmp_path / "ds", split="train", length=32, rank=0, world_size=1)
    assert sum(1 for _ in stream) == 90
    with pytest.raises(ValueError, match=r"split: expected one of \['test', 'train', 'val'\]"):
        APFDataset(tmp_path / "ds", split="holdout")


def test_same_split_for_any_worker_count_and_seed_changes_it(btcv5, tmp_path):
    a = compile_(btcv5, tmp_path / "a", split="train=0.6,val=0.4", workers=1)
    b = compile_(btcv5, tmp_path / "b", split="train=0.6,val=0.4", workers=2)
    assert builders.tree_bytes(tmp_path / "a") == builders.tree_bytes(tmp_path / "b")
    assert a.splits == b.splits
    splits = {}
    for seed in range(4):
        compile_(btcv5, tmp_path / f"s{seed}", split="train=0.6,val=0.4", split_seed=seed)
        splits[seed] = open_dataset(tmp_path / f"s{seed}").samples["split"].to_pylist()
    assert len({tuple(v) for v in splits.values()}) > 1


def test_fractions_hold_within_one_group():
    items = [InputItem(f"case{i:02d}", f"case{i:02d}.nii.gz", None) for i in range(40)]
    frames = [10 + (i % 7) for i in range(40)]
    plan = plan_splits(items, frames, [False] * 40, parse_split("train=0.7,val=0.2,test=0.1"), 0, "case", None)
    total = sum(frames)
    got = {}
    for row in plan:
        for _, s in row:
            got[s] = got.get(s, 0) + 1
    for name, frac in (("train", 0.7), ("val", 0.2), ("test", 0.1)):
        assert abs(got[name] - frac * total) <= max(frames)


def test_split_by_folder_keeps_each_kidney_whole(tmp_path):
    root = tmp_path / "kidneys"
    for k in (1, 2, 3, 4):
        vessels(root / f"kidney_{k}", n=2)
    compile_(root, tmp_path / "ds", split="train=0.5,test=0.5", split_by="folder", label_map={255: 1})
    t = open_dataset(tmp_path / "ds").samples
    kidney = [key.split("/")[0] for key in t["key"].to_pylist()]
    pairs = set(zip(kidney, t["split"].to_pylist()))
    assert len(pairs) == 4 and set(t["split_group"].to_pylist()) == {f"kidney_{k}" for k in (1, 2, 3, 4)}


def test_split_from_a_file_and_from_the_layout(tmp_path):
    from .test_layouts_real import nnunet

    src = nnunet(tmp_path, cases=2, test_cases=1)
    manifest = compile_(src, tmp_path / "layout", modality="ct")
    assert manifest.splits == {"test": 30, "train": 60}  # imagesTr / imagesTs
    f = tmp_path / "splits.csv"
    f.write_text("key,split\nimagesTr/case_000,train\nimagesTr/case_001,val\nimagesTs/case_002,test\n")
    out = CliRunner().invoke(
        main,
        [
            "compile",
            str(src),
            str(tmp_path / "file"),
            "-j",
            "1",
            "-L",
            "32",
            "--modality",
            "ct",
            "--split-from",
            str(f),
        ],
    )
    assert out.exit_code == 0, out.output
    assert open_dataset(tmp_path / "file").manifest.splits == {"test": 30, "train": 30, "val": 30}
    f.write_text("key,split\nimagesTr/case_000,train\n")
    out = CliRunner().invoke(
        main, ["compile", str(src), str(tmp_path / "gap"), "-j", "1", "--modality", "ct", "--split-from", str(f)]
    )
    assert out.exit_code != 0 and "--split-from" in out.output and "imagesTr/case_001" in out.output


def test_a_stack_splits_sample_by_sample(tmp_path):
    from apfcompile.demo import sample_path
    from apfcompile.inputs.readers import read_array

    nuclei = read_array(sample_path("nuclei_image.tif"))
    x = np.stack([nuclei[i * 32 : i * 32 + 64, :64, None] for i in range(10)])  # N x H x W x 1
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "blood.npy", x)
    manifest = compile_(tmp_path / "in", tmp_path / "ds", split="train=0.8,test=0.2", length=16)
    assert manifest.splits == {"test": 2, "train": 8}
    groups = open_dataset(tmp_path / "ds").samples["split_group"].to_pylist()
    assert groups == [f"blood/{i}" for i in range(10)]


def test_a_leak_is_what_verify_reports(btcv5, tmp_path):
    import pyarrow.parquet as pq

    compile_(btcv5, tmp_path / "ds", split="train=0.6,val=0.4")
    path = next((tmp_path / "ds" / "shards").glob("*/samples.parquet"))
    t = pq.read_table(path)
    splits = t["split"].to_pylist()
    splits[0] = "val" if splits[0] == "train" else "train"  # one slice of a volume moved: a leak
    t = t.set_column(t.column_names.index("split"), "split", __import__("pyarrow").array(splits))
    ds = open_dataset(tmp_path / "ds")
    ds.__dict__["samples"] = t.append_column("shard", __import__("pyarrow").array([0] * t.num_rows, "int32"))
    problems = ds._split_problems()
    assert any("is in two splits" in p for p in problems)
