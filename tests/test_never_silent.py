"""Never silently wrong (issue #12): where the tool has to guess, it refuses or warns in one line,
and the dataset records what it decided. Every test here failed before the fix, on real samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch.utils.data import DataLoader

from apfcompile.cli import main
from formats import open_dataset
from loaders import APFDataset, collate, dice

from . import builders


def compile_(src, out, **kw):
    return builders.compile_to(src, out, **{"length": 48, **kw})


@pytest.fixture(scope="module")
def btcv_gap(tmp_path_factory):
    """A labelled BTCV folder (real CT) where the second image has no label file."""
    root = builders.btcv(tmp_path_factory.mktemp("btcv_gap") / "btcv", cases=2)
    (root / "RawData/Training/label/label0002.nii.gz").unlink()
    return root


# 1. Unlabelled means unlabelled ------------------------------------------------------------------


def test_image_without_its_label_in_a_labelled_layout_is_an_error(btcv_gap, tmp_path):
    out = CliRunner().invoke(main, ["compile", str(btcv_gap), str(tmp_path / "ds"), "-j", "1", "-L", "32"])
    assert out.exit_code == 1 and "Traceback" not in out.output
    line = out.output.strip().splitlines()[-1]
    assert "img0002.nii.gz" in line and "no label found" in line and "--allow-unlabelled" in line
    manifest = compile_(btcv_gap, tmp_path / "skip", on_error="skip")
    assert [f.source for f in manifest.failures] == ["RawData/Training/img/img0002.nii.gz"]
    assert manifest.totals["samples"] == 30


def test_allow_unlabelled_stores_the_ignore_label_and_says_so(btcv_gap, tmp_path):
    manifest = compile_(btcv_gap, tmp_path / "ds", allow_unlabelled=True)
    assert manifest.mask_dtype == "uint8" and manifest.ignore_index == 255
    assert manifest.parameters["allow_unlabelled"] is True
    ds = open_dataset(tmp_path / "ds")
    labelled = ds.samples["labelled"].to_pylist()
    assert labelled == [True] * 30 + [False] * 30
    gap = ds.read_sample(ds.samples["key"][30].as_py())
    assert gap.meta["ceiling_dice"] is None and (gap.mask == 255).all()
    ok = ds.read_sample(ds.samples["key"][0].as_py())
    assert (ok.mask != 255).all()

    data = APFDataset(tmp_path / "ds", length=48)
    assert data[0]["labelled"] is True and data[30]["labelled"] is False
    assert (data[30]["mask"][data[30]["valid"]] == 255).all()
    loader = DataLoader(data, batch_size=8, num_workers=2, collate_fn=collate)
    flags = torch.cat([b["labelled"] for b in loader])
    assert flags.tolist() == labelled

    batch = collate([data[0], data[30]])
    pred = torch.zeros_like(batch["mask"])
    with_gap = dice(pred, batch["mask"])
    without = dice(pred, batch["mask"], labelled=batch["labelled"])
    assert 255 not in without[0].tolist() and 255 in with_gap[0].tolist()
    assert torch.equal(without[1], dice(pred[:1], batch["mask"][:1])[1])


def test_a_real_label_equal_to_the_default_ignore_label_is_refused(tmp_path):
    import tifffile

    from apfcompile.demo import sample_path
    from apfcompile.inputs.readers import read_array

    image, mask = read_array(sample_path("nuclei_image.tif")), read_array(sample_path("nuclei_mask.tif"))
    root = tmp_path / "k"
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True)
    for s in range(2):
        tifffile.imwrite(root / "images" / f"{s:04d}.tif", image)
    tifffile.imwrite(root / "labels" / "0000.tif", (mask > 0).astype(np.uint8) * 255)  # vessel-style 0/255
    with pytest.raises(Exception, match="holds label 255, the ignore label"):
        compile_(root, tmp_path / "ds", allow_unlabelled=True, mask_dtype="uint8")
    manifest = compile_(root, tmp_path / "ok", allow_unlabelled=True, mask_dtype="uint8", ignore_index=7)
    assert manifest.ignore_index == 7


# 2. Class names you can trust --------------------------------------------------------------------


def test_btcv_names_apply_only_when_they_name_every_label(tmp_path):
    btcv = builders.btcv(tmp_path / "btcv", cases=1)  # BTCV's own label ids
    manifest = compile_(btcv, tmp_path / "ds")
    assert [c.name for c in manifest.classes][:7] == [
        "background",
        "spleen",
        "right kidney",
        "left kidney",
        "gallbladder",
        "esophagus",
        "liver",
    ]
    assert manifest.classes[6].pixels > manifest.classes[1].pixels > 0  # the liver is the larger organ
    assert "unnamed_labels" not in manifest.parameters

    whole = builders.btcv(tmp_path / "whole", cases=1, whole_body=True)  # TotalSegmentator ids up to 117
    with pytest.warns(
        Warning, match=r"labels 14, 18, .* 117 \(29 labels\) are not among the btcv layout's .*label0001"
    ):
        manifest = compile_(whole, tmp_path / "whole_ds")
    names = {c.id: c.name for c in manifest.classes}
    assert names[5] == "label_5" and names[117] == "label_117" and "esophagus" not in names.values()
    assert 117 in manifest.parameters["unnamed_labels"]
    with pytest.raises(Exception, match=r"label0001.nii.gz: labels 14, 18, .* have no class name .*--strict-labels"):
        compile_(whole, tmp_path / "strict", strict_labels=True)


def test_classes_file_names_labels_and_inspect_lists_pixel_counts(tmp_path):
    whole = builders.btcv(tmp_path / "whole", cases=1, whole_body=True)
    names = tmp_path / "classes.csv"
    names.write_text("id,name\n0,background\n5,liver\n1,spleen\n")
    out = CliRunner().invoke(
        main, ["compile", str(whole), str(tmp_path / "ds"), "-j", "1", "-L", "32", "--classes", str(names)]
    )
    assert out.exit_code == 0, out.output
    warnings = [line for line in out.output.splitlines() if line.startswith("apfcompile: warning:")]
    assert len(warnings) == 1 and "have no class name in --classes" in warnings[0]
    manifest = open_dataset(tmp_path / "ds").manifest
    by_id = {c.id: c for c in manifest.classes}
    assert by_id[5].name == "liver" and by_id[1].name == "spleen" and by_id[2].name == "label_2"
    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "ds")]).output
    liver = next(line for line in shown.splitlines() if " liver " in line)
    assert f"{by_id[5].pixels:,}" in liver


# 3. Label maps and the narrowest mask dtype ------------------------------------------------------


def vessels(root, grey_rgb: bool = False, n: int = 2):
    """Kaggle kidney-style slices: ``images/NNNN.tif`` with 0/255 ``labels/NNNN.tif`` (real nuclei
    image and mask; ``grey_rgb``: the image stored as RGB with R = G = B, as in the vascular report)."""
    import tifffile

    from apfcompile.demo import sample_path
    from apfcompile.inputs.readers import read_array

    image, mask = read_array(sample_path("nuclei_image.tif")), read_array(sample_path("nuclei_mask.tif"))
    grey = (image / image.max() * 255).astype(np.uint8)
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for s in range(n):
        img = np.rot90(grey, s).copy()
        tifffile.imwrite(root / "images" / f"{s:04d}.tif", np.stack([img] * 3, -1) if grey_rgb else img)
        tifffile.imwrite(root / "labels" / f"{s:04d}.tif", (np.rot90(mask, s) > 0).astype(np.uint8) * 255)
    return root


def test_0_255_masks_are_uint8_and_a_label_map_makes_them_0_1(tmp_path):
    src = vessels(tmp_path / "kidney_1")
    manifest = compile_(src, tmp_path / "raw")
    assert manifest.mask_dtype == "uint8" and [c.id for c in manifest.classes] == [0, 255]
    manifest = compile_(src, tmp_path / "mapped", label_map={255: 1})
    assert manifest.mask_dtype == "uint8" and [c.id for c in manifest.classes] == [0, 1]
    assert manifest.parameters["label_map"] == [[255, 1]]
    sample = open_dataset(tmp_path / "mapped").read_sample(0)
    assert set(np.unique(sample.mask).tolist()) == {0, 1}
    out = CliRunner().invoke(
        main, ["compile", str(src), str(tmp_path / "cli"), "-j", "1", "-L", "32", "--label-map", "255:1"]
    )
    assert out.exit_code == 0 and open_dataset(tmp_path / "cli").manifest.classes[1].id == 1


def test_a_label_map_file(tmp_path):
    from apfcompile.inputs.labels import apply_label_map, read_label_map

    f = tmp_path / "map.json"
    f.write_text('{"255": 1, "7": 300}')
    mapping = read_label_map([str(f), "3:4"])
    assert mapping == {255: 1, 7: 300, 3: 4}
    m = np.array([[0, 255, 7, 3]], np.uint8)
    out = apply_label_map(m, mapping)
    assert out.tolist() == [[0, 1, 300, 4]] and out.dtype == np.uint16
    m32 = np.array([[70000, 255, -1]], np.int32)
    assert apply_label_map(m32, {70000: 2, -1: 0}).tolist() == [[2, 255, 0]]


# 4. Modality-aware intensities -------------------------------------------------------------------


def test_ct_in_the_folder_layout_gets_the_hu_window_with_one_warning(tmp_path):
    import shutil

    from apfcompile.demo import sample_path

    btcv = builders.btcv(tmp_path / "btcv", cases=1)
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copyfile(sample_path("ct_abdomen.nii.gz"), folder / "ct.nii.gz")
    shutil.copyfile(btcv / "RawData/Training/label/label0001.nii.gz", folder / "ct_mask.nii.gz")
    compile_(btcv, tmp_path / "a", length=128)
    out = CliRunner().invoke(main, ["compile", str(folder), str(tmp_path / "b"), "-j", "2", "-L", "128"])
    assert out.exit_code == 0, out.output
    warnings = [line for line in out.output.splitlines() if line.startswith("apfcompile: warning:")]
    assert len(warnings) == 1 and "ct.nii.gz: taken as CT by --modality auto" in warnings[0]
    a, b = open_dataset(tmp_path / "a"), open_dataset(tmp_path / "b")
    assert a.samples["ceiling_dice"].to_pylist() == b.samples["ceiling_dice"].to_pylist()
    assert set(b.samples["modality"].to_pylist()) == {"ct"}
    assert b.manifest.parameters["ct_by_rule"] == ["ct.nii.gz"]
    assert "modality  ct 30 (HU window -175..250" in CliRunner().invoke(main, ["inspect", str(tmp_path / "b")]).output
    grey = compile_(folder, tmp_path / "grey", length=128, modality="grey")  # told: no warning, no window
    assert "ct_by_rule" not in grey.parameters
    g = open_dataset(tmp_path / "grey")
    assert np.mean(g.samples["ceiling_dice"].to_numpy()) < np.mean(b.samples["ceiling_dice"].to_numpy())


# 5. Padding that adds no edge --------------------------------------------------------------------


def _pad_edges(image, window, pad_value):
    from apfcompile.core.edges import EdgeParams, edge_map
    from apfcompile.inputs.canvas import fit_canvas

    canvas = fit_canvas(image, None, 256, "pad", pad_value)
    edges = edge_map(canvas.image, EdgeParams(window=window))
    h, w = canvas.size
    return int(np.count_nonzero(edges[:, w - 1 :])) + int(np.count_nonzero(edges[h - 1 :, :]) if h < 256 else 0)


def test_fit_pad_pads_with_the_modalitys_background_and_adds_no_edge():
    from apfcompile.demo import sample_path
    from apfcompile.inputs.modality import AIR_HU
    from apfcompile.inputs.readers import read_array

    ct = read_array(sample_path("ct_abdomen.nii.gz"))[:, :, 15]  # 122 x 101: padded on the right
    assert _pad_edges(ct, (-175.0, 250.0), AIR_HU) == 0
    assert _pad_edges(ct, (-175.0, 250.0), 0) > 0  # water: the old pad made a seam of edges
    nuclei = read_array(sample_path("nuclei_image.tif"))[:, :506]  # grey, dark background at the right
    assert _pad_edges(nuclei, None, None) == 0
    assert _pad_edges(nuclei, None, 0) > 0


def test_fit_pad_on_an_rgb_slide_pads_with_its_glass():
    from pathlib import Path

    from apfcompile.inputs.readers import read_array

    wsi = Path(__file__).parents[2] / "shared" / "data" / "wsi" / "cmu_small_region.svs"
    if not wsi.exists():
        pytest.skip("../shared/data is not beside this clone")
    slide = read_array(wsi)  # 2967 x 2220 x 3, white glass at its right border
    assert _pad_edges(slide, None, None) == 0
    assert _pad_edges(slide, None, 0) > 0


def test_compiled_ct_with_fit_pad_spends_no_leaves_on_the_pad(tmp_path):
    btcv = builders.btcv(tmp_path / "btcv", cases=1)
    smallest = {}
    for name, pad in (("air", None), ("water", 0.0)):  # water: what --fit pad gave before
        compile_(btcv, tmp_path / name, resolution=128, fit="pad", length=128, pad_value=pad)
        nodes = open_dataset(tmp_path / name).read_sample(15).nodes
        seam = nodes.x2 > 104  # the image fills 128 x 106 of the 128 x 128 canvas
        smallest[name] = int(nodes.size[seam].min())
    assert smallest["air"] == 32 and smallest["water"] == 16  # no column of small leaves on the seam


# 6. Grey stored as RGB ---------------------------------------------------------------------------


def test_grey_stored_as_rgb_is_stored_as_one_channel(tmp_path):
    src = vessels(tmp_path / "kidney_1", grey_rgb=True)
    with pytest.warns(Warning, match=r"R = G = B everywhere is stored as one channel"):
        manifest = compile_(src, tmp_path / "ds")
    assert manifest.channels == 1 and manifest.parameters["grey_from_rgb"] == ["images/0000.tif", "images/0001.tif"]
    compile_(vessels(tmp_path / "plain"), tmp_path / "plain_ds")
    a, b = open_dataset(tmp_path / "ds"), open_dataset(tmp_path / "plain_ds")
    assert np.array_equal(a.read_sample(0).image, b.read_sample(0).image)
    kept = compile_(src, tmp_path / "kept", keep_channels=True)
    assert kept.channels == 3 and "grey_from_rgb" not in kept.parameters
    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "ds")]).output
    assert "decided   grey stored as RGB (R = G = B), kept as one channel: images/0000.tif" in shown


# 7. Say when nothing adaptive happened -----------------------------------------------------------


def test_a_compile_where_every_leaf_is_minimum_size_says_so(tmp_path):
    src = vessels(tmp_path / "kidney_1")
    out = CliRunner().invoke(
        main,
        ["compile", str(src), str(tmp_path / "ds"), "-j", "1", "-L", "4096", "-p", "16", "--resolution", "512"],
    )
    assert out.exit_code == 0, out.output
    warnings = [line for line in out.output.splitlines() if line.startswith("apfcompile: warning:")]
    assert len(warnings) == 1
    assert "no adaptive patching happened: -L 4096 >= the 1024 cells of 16 x 16 px on a 512 x 512 canvas" in warnings[0]
    shown = CliRunner().invoke(main, ["inspect", str(tmp_path / "ds")]).output
    assert "warning   no adaptive patching happened" in shown
    fine = CliRunner().invoke(main, ["compile", str(src), str(tmp_path / "ok"), "-j", "1", "-L", "512", "-p", "16"])
    assert "apfcompile: warning:" not in fine.output


# Orientation: a volume whose header names none --------------------------------------------------


def test_a_volume_without_an_orientation_is_sliced_as_stored_and_says_so(tmp_path):
    import nibabel as nib

    from apfcompile.demo import sample_path

    (tmp_path / "in").mkdir()
    ct = nib.load(sample_path("ct_abdomen.nii.gz"))
    img = nib.Nifti1Image(np.asarray(ct.dataobj), None)
    img.header.set_sform(np.zeros((4, 4)), code=1)  # a zero affine: no orientation
    img.header.set_qform(None, code=0)
    nib.save(img, tmp_path / "in" / "ct.nii.gz")
    with pytest.warns(
        Warning, match=r"ct.nii.gz: its affine names no orientation .* sliced along its stored third axis"
    ):
        manifest = compile_(tmp_path / "in", tmp_path / "ds", modality="ct")
    assert manifest.parameters["orientation_unknown"] == ["ct.nii.gz"]
    assert manifest.totals["samples"] == 30
    compile_(builders.btcv(tmp_path / "btcv", cases=1), tmp_path / "ok")  # oriented: no warning


def test_names_files_are_utf8_whatever_the_locale_a_reader_library_left(tmp_path):
    """Some reader libraries set the C locale (ASCII) in-process while reading a volume; a classes
    file and a split file read after that are still UTF-8 (they were read in the locale's encoding,
    so non-ASCII class names failed, or worse, decoded wrongly)."""
    import locale

    from apfcompile.build.splits import read_split_file
    from apfcompile.inputs.labels import read_class_names

    names = tmp_path / "classes.json"
    names.write_text('{"0": "Hintergrund", "1": "Bauchspeicheldrüse"}', encoding="utf-8")
    splits = tmp_path / "splits.csv"
    splits.write_text("key,split\nfall_ä,train\n", encoding="utf-8")
    before = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, "C")
        got = read_class_names(names)
        split = read_split_file(splits)
    finally:
        locale.setlocale(locale.LC_CTYPE, before)
    assert "Bauchspeicheldrüse" in str(got) and split == {"fall_ä": "train"}
