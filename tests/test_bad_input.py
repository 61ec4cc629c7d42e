"""Every bad input: one clear line naming the file, a non-zero exit, nothing written lost."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner

from apfcompile.cli import main
from apfcompile.demo import sample_path

from . import builders


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def assert_one_line(code, output, *needles):
    assert code != 0, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("apfcompile: error:") or "Error:" in line]
    assert len(errors) == 1, output
    for needle in needles:
        assert str(needle) in errors[0], (needle, output)


def folder_with(tmp_path, name: str, data: bytes | None = None):
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    shutil.copyfile(sample_path("nuclei_image.tif"), src / "good.tif")
    if data is not None:
        (src / name).write_bytes(data)
    return src


def truncated_copy(path, keep=0.5) -> bytes:
    data = path.read_bytes()
    return data[: int(len(data) * keep)]


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("notes.png", lambda p: b"these are my notes, not a picture"),
        ("empty.tif", lambda p: b""),
        ("cut.png", lambda p: truncated_copy(p / "cut_src.png")),
        ("cut.tif", lambda p: truncated_copy(sample_path("nuclei_image.tif"), 0.3)),
        ("cut.nii.gz", lambda p: truncated_copy(sample_path("ct_abdomen.nii.gz"))),
    ],
    ids=["not-an-image", "empty", "truncated-png", "truncated-tiff", "truncated-nifti"],
)
def test_unreadable_files(tmp_path, name, make):
    import cv2

    cv2.imwrite(str(tmp_path / "cut_src.png"), np.random.default_rng(0).integers(0, 255, (256, 256), np.uint8))
    src = folder_with(tmp_path, name, make(tmp_path))
    code, out = run("compile", src, tmp_path / "ds", "-j", 1)
    assert_one_line(code, out, name)
    assert not (tmp_path / "ds" / "apf.json").exists()
    # with --on-error skip the rest compiles and the failure is in the manifest
    code, out = run("compile", src, tmp_path / "ds2", "-j", 1, "--on-error", "skip")
    assert code == 0, out
    manifest = json.loads((tmp_path / "ds2" / "apf.json").read_text())
    assert [f["source"] for f in manifest["failures"]] == [name]
    assert manifest["totals"]["samples"] == 1


def test_mask_size_differs(tmp_path):
    src = folder_with(tmp_path, "x")
    tifffile.imwrite(src / "good_mask.tif", np.zeros((100, 100), np.uint8))
    assert_one_line(*run("compile", src, tmp_path / "ds"), "good_mask.tif", "differs")


def test_mask_with_non_integer_values(tmp_path):
    src = folder_with(tmp_path, "x")
    tifffile.imwrite(src / "good_mask.tif", np.full((512, 512), 0.5, np.float32))
    assert_one_line(*run("compile", src, tmp_path / "ds"), "good_mask.tif", "non-integer")


def test_image_smaller_than_the_patch(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "tiny.tif", np.zeros((4, 50), np.uint8))
    assert_one_line(*run("compile", src, tmp_path / "ds"), "tiny.tif", "smaller than the patch size")


def test_missing_input_and_empty_folder(tmp_path):
    assert_one_line(*run("compile", tmp_path / "nope", tmp_path / "ds"), "nope", "no such file")
    (tmp_path / "empty").mkdir()
    assert_one_line(*run("compile", tmp_path / "empty", tmp_path / "ds"), "empty", "no inputs")


def test_paip_case_missing_a_mask(tmp_path):
    src = builders.paip(tmp_path / "paip", missing="01_01_0085_viable")
    assert_one_line(
        *run("compile", src, tmp_path / "ds", "--layout", "paip", "--resolution", "128", "-L", "64"),
        "01_01_0085",
        "_viable.tif",
    )
    code, out = run(
        "compile", src, tmp_path / "ds2", "--layout", "paip", "--resolution", "128", "-L", "64", "--on-error", "skip"
    )
    assert code == 0 and json.loads((tmp_path / "ds2" / "apf.json").read_text())["totals"]["failures"] == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--length", "0"], "--length"),
        (["--patch-size", "6"], "--patch-size"),
        (["--blur", "4"], "blur"),
        (["--canny", "200", "100"], "canny"),
        (["--view", "5:x:1"], "K:LO:HI"),
        (["--min-size", "4"], "--min-size"),
        (["--workers", "0"], "--workers"),
    ],
    ids=["length0", "patch6", "blur4", "canny", "view", "minsize", "workers"],
)
def test_option_out_of_range(tmp_path, args, needle):
    src = folder_with(tmp_path, "x")
    code, out = run("compile", src, tmp_path / "ds", *args)
    assert code != 0 and needle in out and "Traceback" not in out
    assert not (tmp_path / "ds").exists()


def test_existing_output_is_left_untouched(tmp_path):
    src = folder_with(tmp_path, "x")
    assert run("compile", src, tmp_path / "ds", "-L", "64")[0] == 0
    before = builders.tree_bytes(tmp_path / "ds")
    assert_one_line(*run("compile", src, tmp_path / "ds", "-L", "32"), "--overwrite", "--resume")
    assert builders.tree_bytes(tmp_path / "ds") == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.txt").write_text("precious")
    assert_one_line(*run("compile", src, tmp_path / "other", "--overwrite"), "not an apfcompile dataset")
    assert (tmp_path / "other" / "thesis.txt").read_text() == "precious"
    assert run("compile", src, tmp_path / "ds", "-L", "32", "--overwrite")[0] == 0


@pytest.fixture
def dataset(tmp_path):
    src = folder_with(tmp_path, "x")
    assert run("compile", src, tmp_path / "ds", "-L", "64")[0] == 0
    return tmp_path / "ds"


def edit_manifest(ds, fn):
    path = ds / "apf.json"
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d))


def test_manifest_newer_than_the_reader(dataset):
    edit_manifest(dataset, lambda d: d.update(version=2))
    assert_one_line(*run("inspect", dataset), "version 2", "upgrade")


def test_manifest_not_json(dataset):
    (dataset / "apf.json").write_text("{ not json")
    assert_one_line(*run("inspect", dataset), "apf.json", "not valid JSON")


def test_manifest_path_leaving_the_dataset(dataset):
    edit_manifest(dataset, lambda d: d["shards"][0].update(path="../../etc"))
    assert_one_line(*run("dump", dataset), "../../etc", "outside the dataset")


def test_folder_without_a_dataset(tmp_path):
    assert_one_line(*run("inspect", tmp_path), "apf.json")


def test_verify_names_what_is_broken(dataset):
    assert run("verify", dataset)[0] == 0
    shard = dataset / "shards" / "00000"
    (shard / "nodes.parquet").write_bytes((shard / "nodes.parquet").read_bytes()[:-10] + b"0123456789")
    code, out = run("verify", dataset)
    assert code != 0 and "nodes.parquet" in out and "checksum" in out


def test_unknown_sample(dataset):
    assert_one_line(*run("dump", dataset, "--sample", "nope"), "nope")
