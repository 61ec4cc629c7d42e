"""Readers: real files in, one clear error per bad file."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from apfcompile import InputNotFoundError, UnreadableInputError
from apfcompile.inputs.readers import read_array, suffix_of

from .conftest import shared


def test_real_svs_slide():
    image = read_array(shared("wsi/cmu_small_region.svs"))
    assert image.shape == (2967, 2220, 3) and image.dtype == np.uint8


def test_real_nifti_and_tiff():
    assert read_array(shared("ct/example_ct_sm.nii.gz")).shape == (122, 101, 30)
    assert read_array(shared("nuclei/mask2d.tif")).dtype == np.uint16


def test_png_is_rgb(tmp_path):
    import cv2

    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 255  # red
    cv2.imwrite(str(tmp_path / "a.png"), rgb[..., ::-1])
    np.testing.assert_array_equal(read_array(tmp_path / "a.png"), rgb)


@pytest.mark.parametrize(
    ("dtype", "channels"),
    [(np.uint8, 1), (np.uint8, 3), (np.uint8, 4), (np.uint16, 1), (np.uint16, 3), (np.uint16, 4)],
    ids=["grey8", "rgb8", "rgba8", "grey16", "rgb16", "rgba16"],
)
def test_png_kinds_read_as_rgb_or_grey_in_their_depth(tmp_path, dtype, channels):
    """8-bit RGB(A) PNGs are decoded straight to RGB; every kind equals OpenCV's general decode
    with the channels swapped (alpha dropped)."""
    import cv2

    rng = np.random.default_rng(channels)
    stored = rng.integers(0, np.iinfo(dtype).max, (37, 29, channels) if channels > 1 else (37, 29), dtype=dtype)
    cv2.imwrite(str(tmp_path / "a.png"), stored)  # stored in OpenCV's B, G, R(, A) order
    want = stored if channels == 1 else stored[..., 2::-1]
    got = read_array(tmp_path / "a.png")
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_npy_and_npz(tmp_path):
    a = np.arange(12, dtype=np.uint16).reshape(3, 4)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "b.npz", image=a, other=a)
    np.testing.assert_array_equal(read_array(tmp_path / "a.npy"), a)
    np.testing.assert_array_equal(read_array(tmp_path / "b.npz"), a)


def test_suffixes():
    assert suffix_of("x/IMG0001.NII.GZ") == ".nii.gz"
    assert suffix_of("slide.svs") == ".svs"


def truncated(path, data: bytes, keep: float = 0.5):
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty",
        "not-an-image",
        "truncated-png",
        "truncated-tiff",
        "truncated-nifti",
        "unknown-suffix",
        "pickled-npy",
    ],
)
def test_bad_files_get_one_clear_error(tmp_path, case, tissue):
    import cv2

    if case == "missing":
        with pytest.raises(InputNotFoundError, match="no such file"):
            read_array(tmp_path / "nope.png")
        return
    if case == "empty":
        path = tmp_path / "empty.png"
        path.write_bytes(b"")
    elif case == "not-an-image":
        path = tmp_path / "notes.png"
        path.write_text("these are my notes, not a picture\n")
    elif case == "truncated-png":
        ok, data = cv2.imencode(".png", tissue[:256, :256])
        path = truncated(tmp_path / "cut.png", data.tobytes())
    elif case == "truncated-tiff":
        tifffile.imwrite(tmp_path / "whole.tif", tissue[:256, :256], tile=(64, 64), compression="zlib")
        path = truncated(tmp_path / "cut.tif", (tmp_path / "whole.tif").read_bytes(), 0.3)
    elif case == "truncated-nifti":
        from apfcompile.demo import sample_path

        path = truncated(tmp_path / "cut.nii.gz", sample_path("ct_abdomen.nii.gz").read_bytes())
    elif case == "unknown-suffix":
        path = tmp_path / "image.xyz"
        path.write_bytes(b"1234")
    else:
        path = tmp_path / "obj.npy"
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UnreadableInputError) as info:
        read_array(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(["uint8", "int8", "uint16", "int16", "int32", "int64", "float32", "float64", "bool"]),
    shape=st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 3)),
    flip=st.sampled_from([None, 0, 1]),
    seed=st.integers(0, 2**16),
)
def test_volume_slices_are_made_contiguous_exactly(dtype, shape, flip, seed):
    """A NIfTI volume's slices (Fortran-ordered, maybe flipped by the orientation) made C-contiguous
    by OpenCV's transpose where it can: always the values NumPy's copy gives."""
    from apfcompile.inputs.frames import _contiguous

    vol = np.asfortranarray((np.random.default_rng(seed).random(shape) * 200 - 100).astype(dtype))
    if flip is not None:
        vol = np.flip(vol, flip)
    for j in range(shape[2]):
        out = _contiguous(vol[:, :, j])
        assert out.flags.c_contiguous and out.dtype == vol.dtype
        np.testing.assert_array_equal(out, vol[:, :, j])


def _saved_volume(folder, axes, flips, gz, dtype="int16", scaled=False):
    import nibabel as nib

    data = np.random.default_rng(0).integers(0, 100, (5, 6, 7)).astype(dtype)
    affine = np.eye(4)
    affine[:3, :3] = 0
    for stored, ras in enumerate(axes):
        affine[ras, stored] = -1.0 if flips[stored] else 1.0
    img = nib.Nifti1Image(data, affine)
    if scaled:
        img.header.set_slope_inter(2.0, 1.0)
    path = folder / ("v.nii.gz" if gz else "v.nii")
    nib.save(img, path)
    return path


def _assert_streamed_as_read(path, z0, z1, block):
    from apfcompile.inputs.readers import nifti

    whole = nifti.read(path, (z0, z1))
    got = list(nifti.slice_blocks(path, (z0, z1), block))
    assert all(1 <= b.shape[2] <= block for b in got)
    assert sum(b.shape[2] for b in got) == whole.shape[2]
    if got:
        streamed = np.concatenate(got, axis=2)
        assert streamed.dtype == whole.dtype
        np.testing.assert_array_equal(streamed, whole)


@pytest.mark.parametrize("flips", [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)])
@pytest.mark.parametrize("axes", [(0, 1, 2), (1, 0, 2), (0, 2, 1), (2, 1, 0), (1, 2, 0), (2, 0, 1)])
def test_streamed_blocks_are_the_slices_read_gives(tmp_path, axes, flips):
    """Blocks of slices read front to back from one stream are exactly :func:`nifti.read`'s slices,
    in every orientation a volume can be saved in; the reader declines (None: ``read`` reads it)
    exactly where the file does not store canonical slices in canonical order."""
    from apfcompile.inputs.readers import nifti

    path = _saved_volume(tmp_path, axes, flips, gz=sum(flips) % 2 == 0)
    streamable = axes[2] == 2 and not flips[2]
    assert (nifti.slice_blocks(path, (1, 6), 2) is not None) == streamable
    (tmp_path / "scaled").mkdir()
    assert nifti.slice_blocks(_saved_volume(tmp_path / "scaled", axes, flips, gz=True, scaled=True), (0, 7), 2) is None
    if streamable:
        _assert_streamed_as_read(path, 1, 6, 2)


@settings(max_examples=40, deadline=None)
@given(
    flips=st.tuples(st.booleans(), st.booleans()),
    transposed=st.booleans(),
    gz=st.booleans(),
    dtype=st.sampled_from(["uint8", "int16", "float32"]),
    cut=st.tuples(st.integers(0, 9), st.integers(0, 9)),
    block=st.integers(1, 8),
)
def test_streamed_blocks_any_range_and_block(tmp_path_factory, flips, transposed, gz, dtype, cut, block):
    """Any range of slices (empty, past the end) in blocks of any size: the slices ``read`` gives."""
    axes = (1, 0, 2) if transposed else (0, 1, 2)
    path = _saved_volume(tmp_path_factory.mktemp("vol"), axes, (*flips, False), gz, dtype)
    z0, z1 = sorted(cut)
    _assert_streamed_as_read(path, z0, z1, block)


def test_streamed_volume_frames_equal_whole_reads(monkeypatch):
    """A labelled CT volume's frames, read a block ahead on a thread, are the frames the whole
    read gives (keys, pixels, labels, spacing), for the whole volume and for a part of it."""
    from apfcompile.demo import sample_path
    from apfcompile.inputs import frames as frames_module
    from apfcompile.inputs.layouts import InputItem
    from apfcompile.inputs.locations import Place

    image, labels = Place.of(sample_path("ct_abdomen.nii.gz")), Place.of(sample_path("ct_abdomen_seg.nii.gz"))
    item = InputItem("ct", "ct_abdomen.nii.gz", image, (labels,), "volume")
    volume, labels_volume = read_array(image), read_array(labels)
    for part in (None, range(7, 23)):
        monkeypatch.setattr(frames_module, "READ_AHEAD_VOXELS", 3 * 122 * 101)  # blocks of 3 slices
        streamed = list(frames_module.load_frames(item, frames=part))
        monkeypatch.setattr(frames_module, "volume_slice_blocks", lambda *a: None)
        whole = list(frames_module.load_frames(item, frames=part))
        monkeypatch.undo()
        zs = range(30) if part is None else part
        assert [f.key for f in streamed] == [f.key for f in whole] == [f"ct/z{z:03d}" for z in zs]
        for z, a, b in zip(zs, streamed, whole):
            np.testing.assert_array_equal(a.image, volume[:, :, z])
            np.testing.assert_array_equal(a.mask, labels_volume[:, :, z])
            np.testing.assert_array_equal(b.image, volume[:, :, z])
            assert a.spacing == b.spacing and a.slice_index == b.slice_index == z
