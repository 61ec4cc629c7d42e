"""``--mode volume`` end to end (issue #15): a CT volume compiled into one octree sequence, read
back with zarr/pyarrow directly and through the loaders, rebuilt exactly on the torch side."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import zarr
from click.testing import CliRunner

from apfcompile.cli import main
from apfcompile.core.volume_patches import reconstruct_volume
from apfcompile.demo import sample_path
from apfcompile.inputs.readers import read_array
from formats import open_dataset
from loaders import APFDataset, APFStream, dice, reconstruct

from . import builders


@pytest.fixture(scope="module")
def ct_folder(tmp_path_factory) -> Path:
    """The bundled CT and its organ labels as NAME / NAME_mask NIfTI files."""
    root = tmp_path_factory.mktemp("vol") / "in"
    root.mkdir()
    shutil.copy(sample_path("ct_abdomen.nii.gz"), root / "ct.nii.gz")
    shutil.copy(sample_path("ct_abdomen_seg.nii.gz"), root / "ct_mask.nii.gz")
    return root


@pytest.fixture(scope="module")
def volume_dataset(ct_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vol") / "ds"
    builders.compile_to(ct_folder, out, mode="volume", length=1500, patch_size=4, modality="ct")
    return out


def the_volume(ct_folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(D, H, W) image and labels, slice z = the frame --mode slices makes of slice z."""
    image = np.moveaxis(read_array(ct_folder / "ct.nii.gz"), 2, 0)
    labels = np.moveaxis(read_array(ct_folder / "ct_mask.nii.gz"), 2, 0).astype(np.uint8)
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def test_one_sample_per_volume_readable_without_this_project(volume_dataset):
    manifest = json.loads((volume_dataset / "apf.json").read_text())
    assert manifest["dims"] == 3 and manifest["totals"]["samples"] == 1
    shard = volume_dataset / "shards" / "00000"
    image = zarr.open_array(shard / "patches.zarr" / "image", mode="r")
    mask = zarr.open_array(shard / "patches.zarr" / "mask", mode="r")
    n = manifest["totals"]["nodes"]
    assert image.shape == (n, 4, 4, 4, 1) and mask.shape == (n, 4, 4, 4)
    nodes = pq.read_table(shard / "nodes.parquet")
    assert {"z1", "z2", "cz"} <= set(nodes.column_names)
    z1, z2, size = (nodes[c].to_numpy() for c in ("z1", "z2", "size"))
    assert (z2 - z1 == size).all()
    samples = pq.read_table(shard / "samples.parquet").to_pylist()
    assert (samples[0]["canvas_d"], samples[0]["canvas_h"], samples[0]["canvas_w"]) == (30, 122, 101)


def test_the_loader_rebuilds_the_volume_at_its_stored_ceiling(volume_dataset, ct_folder):
    image, labels = the_volume(ct_folder)
    item = APFDataset(volume_dataset, length=1600)[0]
    n = int(item["valid"].sum())
    assert item["image"].shape == (1600, 1, 4, 4, 4) and item["mask"].shape == (1600, 4, 4, 4)
    assert item["box"].shape == (1600, 6) and item["center"].shape == (1600, 3)
    assert item["canvas"].tolist() == list(image.shape)
    batch = next(iter(APFStream(volume_dataset, length=1600, batch_size=1)))
    full = reconstruct(batch["mask"], batch["box"], batch["valid"], batch["canvas"][0])
    sample = open_dataset(volume_dataset).read_sample(0)
    want = reconstruct_volume(sample.mask, sample.nodes, image.shape)
    assert torch.equal(full[0], torch.from_numpy(want))  # torch == numpy, bit for bit
    classes, scores = dice(full, torch.from_numpy(labels)[None])
    fg = scores[classes != 0].mean().item()
    assert fg == pytest.approx(float(batch["ceiling"][0]), abs=1e-6)
    # scores (B, L, K, p, p, p) rebuild to per-class maps whose argmax is the label map
    k = int(labels.max()) + 1
    onehot = torch.nn.functional.one_hot(batch["mask"].long(), k).permute(0, 1, 5, 2, 3, 4).float()
    maps = reconstruct(onehot, batch["box"], batch["valid"], batch["canvas"][0])
    assert maps.shape == (1, k) + image.shape and torch.equal(maps.argmax(1), full.long())
    assert n == len(sample.nodes)


def test_workers_write_the_same_bytes(ct_folder, tmp_path):
    src = tmp_path / "in"
    shutil.copytree(ct_folder, src)
    for name in ("ct.nii.gz", "ct_mask.nii.gz"):  # a second volume, so that both workers work
        shutil.copy(src / name, src / name.replace("ct", "ct2"))
    for j in (1, 2):
        builders.compile_to(src, tmp_path / f"j{j}", mode="volume", length=800, patch_size=4, workers=j, modality="ct")
    assert open_dataset(tmp_path / "j1").manifest.totals["samples"] == 2
    assert builders.tree_bytes(tmp_path / "j1") == builders.tree_bytes(tmp_path / "j2")


def test_an_image_in_volume_mode_is_one_clear_line(tmp_path):
    src = builders.nuclei_folder(tmp_path / "in", copies=1)
    result = CliRunner().invoke(main, ["compile", str(src), str(tmp_path / "out"), "--mode", "volume"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "is not a volume" in result.output and "--mode volume" in result.output


def test_the_cli_compiles_and_inspects_a_volume(ct_folder, tmp_path):
    out = tmp_path / "ds"
    args = ["compile", str(ct_folder), str(out), "--mode", "volume", "-L", "900", "-p", "4", "--modality", "ct"]
    result = CliRunner().invoke(main, args + ["--volume-edges", "gradient"])
    assert result.exit_code == 0, result.output
    shown = CliRunner().invoke(main, ["inspect", str(out)]).output
    assert "4 x 4 x 4 x 1 int16 (volumes" in shown and "mode=volume" in shown and "volume_edges=gradient" in shown


def test_planes_cut_the_octree_into_a_tiling_and_preview_draws_three(volume_dataset, tmp_path):
    import cv2

    from apfcompile.core.reconstruct import reconstruct as reconstruct_2d
    from apfcompile.preview import plane

    sample = open_dataset(volume_dataset).read_sample(0)
    full = reconstruct_volume(sample.mask, sample.nodes, sample.nodes.canvas)
    for axis in (0, 1, 2):
        for index in (0, 7, sample.nodes.canvas[axis] - 1):
            flat, layer = plane(sample.nodes, sample.mask, axis, index)
            owner = reconstruct_2d(np.arange(len(flat)).reshape(-1, 1, 1), flat, None, flat.canvas, fill=-1)
            assert (owner >= 0).all()  # the cut leaves cover the plane
            want = np.take(full, index, axis=axis)
            np.testing.assert_array_equal(reconstruct_2d(layer, flat, None, flat.canvas), want)
    out = CliRunner().invoke(main, ["preview", str(volume_dataset), "--sample", "0", "-o", str(tmp_path / "v.png")])
    assert out.exit_code == 0, out.output
    assert cv2.imread(str(tmp_path / "v.png")) is not None


def test_statistics_are_those_of_the_slices(volume_dataset, ct_folder, tmp_path):
    """The same pixels, summed per slice either way: the same exact statistics."""
    builders.compile_to(ct_folder, tmp_path / "slices", length=64, patch_size=4, modality="ct")
    vol = open_dataset(volume_dataset).manifest.statistics["all"]
    sl = open_dataset(tmp_path / "slices").manifest.statistics["all"]
    assert vol["mean"] == sl["mean"] and vol["std"] == sl["std"] and vol["pixels"] == sl["pixels"]
    assert vol["classes"]["pixels"] == sl["classes"]["pixels"]


def test_spacing_resamples_to_isotropic_voxels(ct_folder, tmp_path):
    """The bundled CT (3 mm voxels) at 6 mm: half the voxels per axis; the original shape kept."""
    out = tmp_path / "iso"
    builders.compile_to(ct_folder, out, mode="volume", spacing=6.0, length=400, patch_size=4, modality="ct")
    row = open_dataset(out).samples.to_pylist()[0]
    assert (row["canvas_d"], row["canvas_h"], row["canvas_w"]) == (15, 61, 50)  # round(n * 3 / 6)
    assert (row["orig_d"], row["orig_h"], row["orig_w"]) == (30, 122, 101)
    assert row["scale_y"] == pytest.approx(2.0) and row["scale_x"] == pytest.approx(101 / 50)
    result = CliRunner().invoke(main, ["compile", str(ct_folder), str(tmp_path / "x"), "--spacing", "2"])
    assert result.exit_code != 0 and "--mode volume" in result.output and "Traceback" not in result.output


def test_mask_resampling_never_invents_labels():
    from apfcompile.core.resample_volume import resample_image, resample_mask

    rng = np.random.default_rng(0)
    mask = rng.choice(np.array([0, 3, 7], np.uint8), (5, 9, 7))
    assert set(np.unique(resample_mask(mask, (13, 4, 7)))) <= {0, 3, 7}
    image = rng.integers(-1000, 1000, (5, 9, 7)).astype(np.int16)
    same = resample_image(image, (5, 9, 7))
    np.testing.assert_array_equal(same, image)  # the identity grid changes nothing
    up = resample_image(image, (10, 9, 7))
    assert up.dtype == np.int16 and image.min() <= up.min() and up.max() <= image.max()


def test_the_source_volume_found_again_gives_the_stored_ceiling(ct_folder, tmp_path):
    from apfcompile import original_on_canvas

    out = tmp_path / "iso"
    builders.compile_to(ct_folder, out, mode="volume", spacing=4.5, length=500, patch_size=4, modality="ct")
    sample = open_dataset(out).read_sample(0)
    image, mask = original_on_canvas(out, 0, ct_folder)
    assert image.shape == mask.shape == sample.nodes.canvas  # the --spacing grid
    classes, scores = dice(
        torch.from_numpy(reconstruct_volume(sample.mask, sample.nodes, mask.shape))[None], torch.from_numpy(mask)[None]
    )
    assert scores[classes != 0].mean().item() == pytest.approx(sample.meta["ceiling_dice"], abs=1e-9)
    args = ["preview", str(out), "--sample", "0", "--input", str(ct_folder), "-o", str(tmp_path / "p.png")]
    assert CliRunner().invoke(main, args).exit_code == 0


def test_token_space_flips_refuse_volumes_with_one_line(volume_dataset):
    from loaders.transforms import Dihedral

    with pytest.raises(ValueError, match="volume items"):
        APFDataset(volume_dataset, length=1600, transform=Dihedral(0))[0]


def test_every_layout_with_volumes_compiles_them_whole(tmp_path):
    """BTCV and nnU-Net layouts: one sample per case, labels in BTCV's scheme named."""
    for style in ("rawdata", "nnunet"):
        src = builders.btcv(tmp_path / style, cases=2, style=style)
        out = tmp_path / f"{style}-ds"
        builders.compile_to(src, out, mode="volume", length=600, patch_size=4)
        ds = open_dataset(out)
        assert ds.manifest.dims == 3 and ds.manifest.totals["samples"] == 2
        assert {c.name for c in ds.manifest.classes} >= {"spleen", "liver"}


def test_an_nrrd_volume_gives_the_nifti_volumes_patches(tmp_path, ct_folder):
    """The CT written as NRRD through SimpleITK (LPS frame, axes permuted) compiles in volume mode
    to the NIfTI's patches and nodes: both are brought to RAS+ before the octree."""
    sitk = pytest.importorskip("SimpleITK")
    import nibabel as nib

    other = tmp_path / "nrrd"
    other.mkdir()
    for name in ("ct", "ct_mask"):
        data = np.asarray(nib.load(ct_folder / f"{name}.nii.gz").dataobj)  # RAS+, x y z
        perm = np.transpose(data, (1, 0, 2))  # stored as y, x, z
        itk = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(perm, (2, 1, 0))))
        itk.SetSpacing((3.0, 3.0, 3.0))
        itk.SetDirection((0.0, -1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
        sitk.WriteImage(itk, str(other / f"{name}.nrrd"))
    kw = dict(mode="volume", length=700, patch_size=4, modality="ct")
    builders.compile_to(ct_folder, tmp_path / "a", **kw)
    builders.compile_to(other, tmp_path / "b", **kw)
    a, b = builders.tree_bytes(tmp_path / "a"), builders.tree_bytes(tmp_path / "b")
    same = [k for k in a if "patches.zarr" in k or k.endswith("nodes.parquet")]
    assert same and all(a[k] == b[k] for k in same)


def test_shorter_lengths_drop_leaves_and_workers_share_volume_batches(volume_dataset):
    from torch.utils.data import DataLoader

    full = APFDataset(volume_dataset, length=1600)[0]
    n = int(full["valid"].sum())
    short = APFDataset(volume_dataset, length=n // 2, drop="priority")[0]
    assert short["valid"].all() and short["image"].shape == (n // 2, 1, 4, 4, 4)
    kept = {tuple(b) for b in short["box"].tolist()}
    assert kept <= {tuple(b) for b in full["box"][:n].tolist()}  # a subset, in stored order
    order = [full["box"][:n].tolist().index(list(b)) for b in short["box"].tolist()]
    assert order == sorted(order)
    stream = APFStream(volume_dataset, length=1600, batch_size=1, shuffle=False)
    (batch,) = list(DataLoader(stream, batch_size=None, num_workers=1))
    assert torch.equal(batch["mask"][0], full["mask"]) and torch.equal(batch["image"][0], full["image"])


def test_a_dicom_series_compiles_whole_like_its_nifti(tmp_path, ct_folder):
    import nibabel as nib

    from apfcompile.core.patchify import PatchParams
    from apfcompile.core.patchify_volume import patchify_volume
    from apfcompile.inputs.frames import load_volume
    from apfcompile.inputs.layouts import discover

    from .test_frame_split import write_dicom_series

    data = np.asarray(nib.load(ct_folder / "ct.nii.gz").dataobj)
    write_dicom_series(data, 3.0, tmp_path / "dicom" / "case01")
    (item,), _ = discover(tmp_path / "dicom")
    ours = load_volume(item)
    theirs = load_volume(discover(ct_folder)[0][0])
    assert ours.spacing == (3.0, 3.0, 3.0) and ours.image.shape == theirs.image.shape
    np.testing.assert_array_equal(ours.image.astype(np.int32), theirs.image.astype(np.int32))
    params = PatchParams.make(4, length=500, window=(-175, 250))
    a, b = (
        patchify_volume(ours.image, None, params),
        patchify_volume(theirs.image.astype(ours.image.dtype), None, params),
    )
    np.testing.assert_array_equal(a.leaves.box, b.leaves.box)


def test_spacing_finest_and_bad_spacings(ct_folder, tmp_path):
    out = tmp_path / "finest"
    builders.compile_to(ct_folder, out, mode="volume", spacing="finest", length=400, patch_size=4, modality="ct")
    row = open_dataset(out).samples.to_pylist()[0]
    assert (row["canvas_d"], row["canvas_h"], row["canvas_w"]) == (30, 122, 101)  # 3 mm voxels already
    args = ["compile", str(ct_folder), str(tmp_path / "x"), "--mode", "volume", "--spacing", "thin"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and "spacing" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("option", [["--resolution", "256"], ["--fit", "pad"]])
def test_2d_canvas_options_are_refused_in_volume_mode_not_ignored(ct_folder, tmp_path, option):
    args = ["compile", str(ct_folder), str(tmp_path / "x"), "--mode", "volume", *option]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert option[0] in result.output and "--mode volume" in result.output
    assert not (tmp_path / "x" / "apf.json").exists()
