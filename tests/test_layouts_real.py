"""Datasets as researchers keep them: nnU-Net/MSD folders, images/labels siblings, one file in.

Each layout is built from the real bundled samples arranged that way; each test failed before
the layout existed (labels silently dropped, or the first command refused)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from apfcompile import CompileConfig, compile_dataset, read_array
from apfcompile.cli import main
from apfcompile.demo import sample_path
from apfcompile.inputs.layouts import discover
from formats import open_dataset

CT, SEG = sample_path("ct_abdomen.nii.gz"), sample_path("ct_abdomen_seg.nii.gz")
N_CLASSES = int(read_array(SEG).max()) + 1


def nnunet(root: Path, cases: int = 2, channels: int = 1, test_cases: int = 1, msd: bool = False) -> Path:
    """``DatasetXXX/imagesTr`` + ``labelsTr`` (+ ``imagesTs``) and a ``dataset.json``, from the real CT."""
    ds = root / ("Task09_Demo" if msd else "Dataset042_Demo")
    for split in ("imagesTr", "labelsTr", "imagesTs"):
        (ds / split).mkdir(parents=True)
    for i in range(cases + test_cases):
        split = "imagesTr" if i < cases else "imagesTs"
        case = f"case_{i:03d}"
        if msd:
            shutil.copyfile(CT, ds / split / f"{case}.nii.gz")
        else:
            for c in range(channels):
                shutil.copyfile(CT, ds / split / f"{case}_{c:04d}.nii.gz")
        if split == "imagesTr":
            shutil.copyfile(SEG, ds / "labelsTr" / f"{case}.nii.gz")
    names = ["background"] + [f"organ {k}" for k in range(1, N_CLASSES)]
    if msd:
        doc = {"labels": {str(k): n for k, n in enumerate(names)}, "modality": {"0": "CT"}}
    else:
        doc = {"labels": {n: k for k, n in enumerate(names)}, "channel_names": {str(c): "CT" for c in range(channels)}}
    (ds / "dataset.json").write_text(json.dumps(doc))
    return ds


def compile_(src, out, **kw):
    return compile_dataset(CompileConfig.from_options(src, out, length=48, workers=1, **kw))


def test_nnunet_v2_pairs_channels_and_labels_and_reads_dataset_json(tmp_path):
    src = nnunet(tmp_path, cases=2, channels=2)
    items, info = discover(src)
    assert info.name == "nnunet" and info.window == (-175.0, 250.0) and info.channel_names == ("CT", "CT")
    train = [it for it in items if it.source.startswith("imagesTr")]
    assert [it.key for it in items] == ["imagesTr/case_000", "imagesTr/case_001", "imagesTs/case_002"]
    assert all(it.masks and len(it.channels) == 1 for it in train)
    manifest = compile_(src, tmp_path / "ds")
    assert manifest.mask_dtype is not None and manifest.channels == 2
    assert [c.name for c in manifest.classes][:2] == ["background", "organ 1"]
    assert manifest.parameters["layout"] == "nnunet" and manifest.parameters["channel_names"] == ["CT", "CT"]
    ds = open_dataset(tmp_path / "ds")
    assert ds.samples.num_rows == 90  # 3 cases x 30 slices
    masks = ds.samples["mask_source"].to_pylist()
    assert masks[:60] == ["case_000.nii.gz"] * 30 + ["case_001.nii.gz"] * 30 and masks[60:] == [None] * 30
    sample = ds.read_sample("imagesTr/case_000/z015")
    assert sample.image.shape[-1] == 2 and np.array_equal(sample.image[..., 0], sample.image[..., 1])


def test_msd_layout_takes_ids_to_names(tmp_path):
    src = nnunet(tmp_path, cases=1, test_cases=0, msd=True)
    manifest = compile_(src, tmp_path / "ds")
    assert manifest.parameters["layout"] == "nnunet" and manifest.mask_dtype is not None
    assert manifest.classes[1].name == "organ 1" and manifest.parameters["window"] == [-175.0, 250.0]


def test_nnunet_training_case_without_its_label_is_a_bad_input(tmp_path):
    src = nnunet(tmp_path, cases=2)
    (src / "labelsTr" / "case_001.nii.gz").unlink()
    out = CliRunner().invoke(main, ["compile", str(src), str(tmp_path / "ds"), "-j", "1", "-L", "32"])
    assert out.exit_code == 1 and "Traceback" not in out.output
    line = out.output.strip().splitlines()[-1]
    assert "case_001_0000.nii.gz" in line and "no label" in line and "labelsTr/case_001" in line
    manifest = compile_(src, tmp_path / "skip", on_error="skip")
    assert [f.source for f in manifest.failures] == ["imagesTr/case_001_0000.nii.gz"]


def test_nnunet_channel_files_out_of_step_are_a_bad_input(tmp_path):
    src = nnunet(tmp_path, cases=1, channels=2, test_cases=0)
    (src / "imagesTr" / "case_000_0001.nii.gz").rename(src / "imagesTr" / "case_000_0002.nii.gz")
    with pytest.raises(Exception, match=r"channel files out of step: found _0000, _0002"):
        compile_(src, tmp_path / "ds")


def test_nnunet_cases_with_different_channel_counts_are_refused(tmp_path):
    src = nnunet(tmp_path, cases=2, channels=2, test_cases=0)
    (src / "imagesTr" / "case_001_0001.nii.gz").unlink()
    with pytest.raises(Exception, match="every case needs the same channels"):
        discover(src)


def test_btcv_imagesTr_without_dataset_json_stays_btcv(tmp_path):
    from . import builders

    src = builders.btcv(tmp_path / "btcv", cases=1, style="imagesTr")
    assert discover(src)[1].name == "btcv"


def kidneys(root: Path, drop_label: str | None = None) -> Path:
    """Kaggle-style ``kidney_N/images/0000.tif`` + ``kidney_N/labels/0000.tif`` slices (real nuclei)."""
    image, mask = read_array(sample_path("nuclei_image.tif")), read_array(sample_path("nuclei_mask.tif"))
    for k in (1, 2):
        for folder in ("images", "labels"):
            (root / f"kidney_{k}" / folder).mkdir(parents=True)
        for s in range(2):
            tifffile.imwrite(root / f"kidney_{k}" / "images" / f"{s:04d}.tif", np.rot90(image, k + s).copy())
            if drop_label != f"kidney_{k}/{s:04d}":
                tifffile.imwrite(root / f"kidney_{k}" / "labels" / f"{s:04d}.tif", np.rot90(mask, k + s).copy())
    return root


def test_images_and_labels_sibling_folders_pair_at_any_depth(tmp_path):
    src = kidneys(tmp_path / "kidneys")
    items, info = discover(src)
    assert info.name == "folder"
    assert [it.key for it in items] == ["kidney_1/0000", "kidney_1/0001", "kidney_2/0000", "kidney_2/0001"]
    assert all(len(it.masks) == 1 and "/labels/" in str(it.masks[0]) for it in items)
    manifest = compile_(src, tmp_path / "ds")
    assert manifest.totals["samples"] == 4 and manifest.mask_dtype is not None
    ds = open_dataset(tmp_path / "ds")
    assert ds.samples["mask_source"].to_pylist() == ["0000.tif", "0001.tif"] * 2


def test_an_image_without_its_sibling_label_is_a_bad_input(tmp_path):
    src = kidneys(tmp_path / "kidneys", drop_label="kidney_2/0001")
    manifest = compile_(src, tmp_path / "ds", on_error="skip")
    assert [f.source for f in manifest.failures] == ["kidney_2/images/0001.tif"]
    assert "looked for kidney_2/labels/0001.*" in manifest.failures[0].error


def test_one_image_file_as_input(tmp_path):
    image, mask = sample_path("nuclei_image.tif"), sample_path("nuclei_mask.tif")
    manifest = compile_(image, tmp_path / "one")
    assert manifest.totals["samples"] == 1 and manifest.mask_dtype is None
    manifest = compile_(image, tmp_path / "labelled", masks=mask)
    assert manifest.mask_dtype is not None
    assert open_dataset(tmp_path / "labelled").samples["key"].to_pylist() == ["nuclei_image"]
    out = CliRunner().invoke(main, ["compile", str(CT), str(tmp_path / "ct"), "-j", "1", "-L", "32"])
    assert out.exit_code == 0, out.output
    assert open_dataset(tmp_path / "ct").manifest.totals["samples"] == 30  # a volume file: one per slice
