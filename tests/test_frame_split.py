"""Work split by frame: one large volume's slices spread over the workers, the bytes unchanged."""

from __future__ import annotations

import locale
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

import apfcompile.build.run as run_mod
from apfcompile import CompileConfig, compile_dataset
from apfcompile.demo import sample_path
from apfcompile.inputs.frames import load_frames
from apfcompile.inputs.layouts import discover
from formats import open_dataset

from . import builders


def one_volume(root):
    root.mkdir()
    shutil.copyfile(sample_path("ct_abdomen.nii.gz"), root / "ct.nii.gz")
    shutil.copyfile(sample_path("ct_abdomen_seg.nii.gz"), root / "ct_mask.nii.gz")
    return root


def test_a_volume_part_reads_only_its_slices_and_keeps_their_ids(tmp_path):
    (item,), _ = discover(one_volume(tmp_path / "in"))
    whole = list(load_frames(item))
    part = list(load_frames(item, frames=range(10, 17)))
    assert [f.key for f in part] == [f.key for f in whole[10:17]] and part[0].slice_index == 10
    for a, b in zip(part, whole[10:17]):
        assert (a.image == b.image).all() and (a.mask == b.mask).all()


def test_frame_parts_cover_every_frame_once():
    class Item:
        kind = "volume"

    from apfcompile.build.plan import Plan

    plan = Plan([Item()], [30 * 2], [0, 60], 256, [], "f")
    parts = plan.frame_parts(0, views=2, parts=4)
    assert [list(p) for p in parts] == [list(range(0, 7)), list(range(7, 15)), list(range(15, 22)), list(range(22, 30))]
    assert plan.frame_parts(0, views=2, parts=1) == [None]


@pytest.mark.parametrize("views", [(), ((3, 100.0, 200.0), (5, 50.0, 150.0))], ids=["one-view", "two-views"])
def test_one_volume_on_two_workers_writes_the_bytes_of_one(tmp_path, monkeypatch, views):
    src = one_volume(tmp_path / "in")
    kw = dict(modality="ct", length=48, shard_samples=7, views=views)
    compile_dataset(CompileConfig.from_options(src, tmp_path / "one", workers=1, **kw))
    seen, staged, shared = [], [], []
    real = run_mod.in_order

    def spy(fn, tasks, workers, scheduler=None, pool=None):
        seen.append([t.frames for t in tasks])
        staged.append([t.stage[1] if t.stage else [] for t in tasks])
        shared.extend(sorted(Path(p).name for p in t.plain) for t in tasks)
        return real(fn, tasks, workers, scheduler, pool)

    monkeypatch.setattr(run_mod, "in_order", spy)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    compile_dataset(CompileConfig.from_options(src, tmp_path / "two", workers=2, **kw))
    # every part read the image and labels decompressed once, by this process; nothing of it stays
    assert shared == [["ct.nii.gz", "ct_mask.nii.gz"]] * len(seen[0]) and not list(
        (tmp_path / "tmp").glob("apfcompile-*")
    )
    if views:  # shard boundaries fall between a frame's two views: even parts; the shards wholly
        # inside one part are still written by its worker
        assert seen == [[range(0, 7), range(7, 15), range(15, 22), range(22, 30)]]
        assert staged == [[[0, 1], [2, 3], [5], [7, 8]]]
    else:  # cut at the shard boundaries: each worker writes its whole shards, committed here
        assert seen == [[range(0, 7), range(7, 14), range(14, 21), range(21, 28), range(28, 30)]]
        assert staged == [[[0], [1], [2], [3], [4]]]
    assert builders.tree_bytes(tmp_path / "two") == builders.tree_bytes(tmp_path / "one")


def test_shards_a_worker_wrote_are_discarded_when_another_part_fails(tmp_path, monkeypatch):
    """The volume's last slices are cut off: the parts before them write their whole shards, the
    last part fails, the input fails whole: nothing of it is committed, no staged folder stays."""
    src = one_volume(tmp_path / "in")
    raw = (src / "ct.nii.gz").read_bytes()
    (src / "ct.nii.gz").write_bytes(raw[: int(len(raw) * 0.6)])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    kw = dict(modality="ct", length=48, shard_samples=7, workers=2, on_error="skip")
    manifest = compile_dataset(CompileConfig.from_options(src, tmp_path / "ds", **kw))
    assert manifest.totals["samples"] == 0 and [f.source for f in manifest.failures] == ["ct.nii.gz"]
    assert not [p.name for p in (tmp_path / "ds" / "shards").iterdir() if p.name.startswith(".tmp")]
    with pytest.raises(Exception, match="ct.nii.gz"):
        compile_dataset(CompileConfig.from_options(src, tmp_path / "fail", **{**kw, "on_error": "fail"}))
    assert not list((tmp_path / "fail" / "shards").glob("*/shard.json"))
    assert not list((tmp_path / "tmp").glob("apfcompile-*"))  # the shared decompression's files are gone too


def test_a_failing_part_fails_the_whole_input():
    from apfcompile.build.samples import Result

    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    bar = Bar()
    parts = [Result(0, ["a", "b"]), Result(0, error="ct.nii.gz: broken slice"), Result(1, ["c"])]
    merged = list(run_mod._whole_inputs(iter(parts), {0: 2, 1: 1}, [4, 1], bar))
    assert [(r.index, r.records, r.error) for r in merged] == [(0, [], "ct.nii.gz: broken slice"), (1, ["c"], None)]
    assert bar.n == 5  # the bar reaches the planned total, failures included


@pytest.mark.parametrize("codes", [("L", "P", "S"), ("A", "R", "I"), ("S", "R", "A")], ids=["LPS", "ARI", "SRA"])
def test_a_volume_saved_in_another_orientation_gives_the_same_slices(tmp_path, codes):
    """The same anatomy stored with flipped or permuted axes (and the affine that says so) compiles
    to the same bytes: volumes are brought to RAS+ before slicing."""
    import nibabel as nib
    from nibabel import orientations as nio

    ras = one_volume(tmp_path / "ras")
    other = tmp_path / "other"
    other.mkdir()
    for name in ("ct.nii.gz", "ct_mask.nii.gz"):
        img = nib.load(ras / name)
        img = nib.Nifti1Image(np.asarray(img.dataobj), np.diag([0.8, 0.7, 2.5, 1.0]))  # anisotropic, RAS+
        nib.save(img, ras / name)
        to = nio.ornt_transform(nio.io_orientation(img.affine), nio.axcodes2ornt(codes))
        moved = img.as_reoriented(to)
        assert nib.aff2axcodes(moved.affine) == codes
        nib.save(moved, other / name)
    kw = dict(modality="ct", length=48, workers=2, shard_samples=16)
    compile_dataset(CompileConfig.from_options(ras, tmp_path / "a", **kw))
    compile_dataset(CompileConfig.from_options(other, tmp_path / "b", **kw))
    assert builders.tree_bytes(tmp_path / "a") == builders.tree_bytes(tmp_path / "b")
    samples = open_dataset(tmp_path / "b").samples  # spacing of the RAS+ rows, columns and slices
    assert {(r["spacing_y"], r["spacing_x"]) for r in samples.to_pylist()} == {(0.800000011920929, 0.699999988079071)}
    assert set(samples["spacing_z"].to_pylist()) == {2.5}


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_nrrd_and_metaimage_volumes_slice_like_nifti(tmp_path, suffix):
    """The bundled CT written as NRRD / MHA through SimpleITK (its LPS frame, axes permuted)
    compiles to the NIfTI's patches and nodes, with the same spacing."""
    sitk = pytest.importorskip("SimpleITK")
    import nibabel as nib

    ras = one_volume(tmp_path / "ras")
    other = tmp_path / "other"
    other.mkdir()
    for name in ("ct", "ct_mask"):
        img = nib.load(ras / f"{name}.nii.gz")
        data = np.asarray(img.dataobj)  # RAS+, x y z, spacing 3 mm
        perm = np.transpose(data, (1, 0, 2))  # stored as y, x, z
        itk = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(perm, (2, 1, 0))))  # ITK wants z, y, x
        itk.SetSpacing((3.0, 3.0, 3.0))
        # index axis i (RAS y) points to -P = A in LPS terms...: columns are LPS directions of the index axes
        itk.SetDirection((0.0, -1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
        sitk.WriteImage(itk, str(other / f"{name}{suffix}"))
    kw = dict(modality="ct", length=48, workers=1)
    compile_dataset(CompileConfig.from_options(ras, tmp_path / "a", **kw))
    compile_dataset(CompileConfig.from_options(other, tmp_path / "b", **kw))
    a, b = builders.tree_bytes(tmp_path / "a"), builders.tree_bytes(tmp_path / "b")
    same = [k for k in a if "patches.zarr" in k or k.endswith("nodes.parquet")]
    assert same and all(a[k] == b[k] for k in same)
    samples = open_dataset(tmp_path / "b").samples
    assert samples.num_rows == 30 and set(samples["spacing_z"].to_pylist()) == {3.0}
    assert samples["mask_source"].to_pylist()[0] == f"ct_mask{suffix}"


def write_dicom_series(volume: np.ndarray, spacing: float, folder, uid: str = "1.2.826.0.1.3680043.2.1125.1") -> None:
    """``volume`` (RAS+, x y z) as a DICOM CT series, one file per slice (LPS patient frame)."""
    sitk = pytest.importorskip("SimpleITK")
    folder.mkdir(parents=True)
    lps = volume[::-1, ::-1, :]  # RAS -> LPS: flip x and y; DICOM rows run along y, columns along x
    # GDCM's writer sets the C locale for the whole process (the reader does not): restored after,
    # or every later test in this process reads text as ASCII
    before = locale.setlocale(locale.LC_CTYPE)
    try:
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        for k in range(lps.shape[2]):
            sl = sitk.GetImageFromArray(np.ascontiguousarray(lps[:, :, k].T))  # (rows=y, cols=x)
            sl.SetSpacing((spacing, spacing))
            for tag, value in (
                ("0008|0060", "CT"),
                ("0020|000d", uid + ".1"),
                ("0020|000e", uid + ".2"),
                ("0008|0018", f"{uid}.3.{k}"),
                ("0020|0013", str(k + 1)),
                ("0020|0032", f"0\\0\\{k * spacing}"),
                ("0020|0037", "1\\0\\0\\0\\1\\0"),
                ("0028|0030", f"{spacing}\\{spacing}"),
                ("0018|0050", str(spacing)),
            ):
                sl.SetMetaData(tag, value)
            writer.SetFileName(str(folder / f"IM{k:04d}.dcm"))
            writer.Execute(sl)
    finally:
        locale.setlocale(locale.LC_CTYPE, before)


def test_a_dicom_series_folder_is_one_volume_like_its_nifti(tmp_path):
    import nibabel as nib

    ras = one_volume(tmp_path / "ras")
    data = np.asarray(nib.load(ras / "ct.nii.gz").dataobj)
    write_dicom_series(data, 3.0, tmp_path / "dicom" / "case01")
    (item,), info = discover(tmp_path / "dicom")
    assert item.key == "case01" and item.kind == "volume"
    frames = list(load_frames(item))
    reference = list(load_frames(discover(ras)[0][0]))
    assert len(frames) == 30 and frames[4].spacing == (3.0, 3.0, 3.0)
    for ours, theirs in zip(frames, reference):
        np.testing.assert_array_equal(ours.image.astype(np.int32), theirs.image.astype(np.int32))
    write_dicom_series(data[:, :, :5], 3.0, tmp_path / "two" / "mixed", uid="1.2.3.9")
    for f in sorted((tmp_path / "dicom" / "case01").glob("*.dcm"))[:3]:
        shutil.copy(f, tmp_path / "two" / "mixed" / f"other_{f.name}")
    (item,), _ = discover(tmp_path / "two")
    with pytest.raises(Exception, match=r"two/mixed: a DICOM folder must hold exactly one series, found 2 .*own"):
        list(load_frames(item))
