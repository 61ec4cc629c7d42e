"""Dataset statistics computed at compile time (issue #13): equal to numpy's on the original arrays
(float64 reference; exact for integer data and counts), per split, identical for any -j."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from apfcompile.build import statistics
from apfcompile.build.statistics import add, frame_stats, summarise
from apfcompile.demo import sample_path
from apfcompile.inputs.readers import read_array
from formats import open_dataset
from loaders import APFDataset, class_weights, normalization

from . import builders

CT = read_array(sample_path("ct_abdomen.nii.gz")).astype(np.float64)


compile_ = builders.compile_to


@pytest.fixture(scope="module")
def btcv3(tmp_path_factory):
    return builders.btcv(tmp_path_factory.mktemp("stats") / "btcv", cases=3)


def test_statistics_equal_numpys_on_the_original_volumes(btcv3, tmp_path):
    manifest = compile_(btcv3, tmp_path / "ds", split="train=0.67,val=0.33")
    seg = read_array(btcv3 / "RawData/Training/label/label0001.nii.gz")
    for name, volumes in (("all", 3), ("train", 2), ("val", 1)):
        s = manifest.statistics[name]
        data = np.concatenate([CT.ravel()] * volumes)
        assert s["samples"] == 30 * volumes and s["pixels"] == data.size
        assert s["mean"][0] == pytest.approx(data.mean(), rel=1e-12)
        assert s["std"][0] == pytest.approx(data.std(), rel=1e-12)  # population std
        w = np.clip(data, -175, 250)
        assert s["windowed"]["window"] == [-175.0, 250.0]
        assert s["windowed"]["mean"][0] == pytest.approx(w.mean(), rel=1e-12)
        assert s["windowed"]["std"][0] == pytest.approx(w.std(), rel=1e-12)
        labels, counts = np.unique(seg, return_counts=True)
        assert s["classes"]["pixels"] == {str(k): int(n) * volumes for k, n in zip(labels, counts)}
    ds = open_dataset(tmp_path / "ds")
    cells: dict[str, int] = {}
    for key in ds.samples["key"].to_pylist():
        for k, n in zip(*np.unique(ds.read_sample(key).mask, return_counts=True)):
            cells[str(k)] = cells.get(str(k), 0) + int(n)
    assert manifest.statistics["all"]["classes"]["cells"] == cells  # token level: the stored mask patches
    assert {c.id: c.pixels for c in manifest.classes if c.pixels} == {
        int(k): n for k, n in manifest.statistics["all"]["classes"]["pixels"].items()
    }


def test_statistics_are_identical_for_any_worker_count(btcv3, tmp_path):
    a = compile_(btcv3, tmp_path / "a", workers=1, split="train=0.5,val=0.5")
    b = compile_(btcv3, tmp_path / "b", workers=2, split="train=0.5,val=0.5")
    assert a.statistics == b.statistics
    assert builders.tree_bytes(tmp_path / "a") == builders.tree_bytes(tmp_path / "b")


def test_statistics_survive_a_resume(btcv3, tmp_path, monkeypatch):
    import apfcompile.build.run as run_mod

    whole = compile_(btcv3, tmp_path / "whole", shard_samples=16)
    real = run_mod.write_shard

    def crash(dataset, index, *a, **kw):
        if index == 3:
            raise KeyboardInterrupt
        return real(dataset, index, *a, **kw)

    monkeypatch.setattr(run_mod, "write_shard", crash)
    with pytest.raises(KeyboardInterrupt):
        compile_(btcv3, tmp_path / "cut", shard_samples=16)
    monkeypatch.setattr(run_mod, "write_shard", real)
    resumed = compile_(btcv3, tmp_path / "cut", shard_samples=16, resume=True)
    assert resumed.statistics == whole.statistics and resumed.classes == whole.classes


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(["uint8", "uint16", "int16", "float32"]),
    shapes=st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9)), min_size=1, max_size=4),
    channels=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**31),
)
def test_streamed_sums_equal_numpy(dtype, shapes, channels, seed):
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if dtype != "float32" else None
    frames = []
    for h, w in shapes:
        shape = (h, w) if channels == 1 else (h, w, channels)
        if info is None:
            a = (rng.normal(0, 500, shape)).astype(np.float32)
        else:
            a = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
        frames.append(a)
    acc = None
    for a in frames:
        acc = add(acc, frame_stats(a, None, (-100.0, 200.0), [], 1))
    s = summarise({"all": acc})["all"]
    data = np.concatenate([a.reshape(-1, channels).astype(np.float64) for a in frames])
    np.testing.assert_allclose(s["mean"], data.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(s["std"], data.std(0), rtol=1e-7, atol=1e-6)
    w = np.clip(data, -100, 200)
    np.testing.assert_allclose(s["windowed"]["mean"], w.mean(0), rtol=1e-9, atol=1e-9)
    if info is not None:  # exact integers before the one division
        assert acc["sum"] == [int(v) for v in data.sum(0).astype(np.int64)]


def test_loader_normalises_with_the_train_statistics_and_weights_classes(btcv3, tmp_path):
    manifest = compile_(btcv3, tmp_path / "ds", split="train=0.67,val=0.33", length=64)
    mean, std = normalization(tmp_path / "ds")
    assert mean[0] == pytest.approx(manifest.statistics["train"]["mean"][0])
    raw = APFDataset(tmp_path / "ds", length=64, view=0)[0]
    norm = APFDataset(tmp_path / "ds", length=64, view=0, normalize="dataset")[0]
    assert norm["image"].dtype == torch.float32
    valid = raw["valid"]
    expect = (raw["image"][valid].double() - float(mean[0])) / float(std[0])
    assert torch.allclose(norm["image"][valid].double(), expect, atol=1e-4)
    assert (norm["image"][~valid] == 0).all()
    explicit = APFDataset(tmp_path / "ds", length=64, view=0, normalize=(-1000.0, 500.0))[0]
    assert torch.allclose(explicit["image"][valid], (raw["image"][valid].float() + 1000) / 500)
    with pytest.raises(ValueError, match="normalize"):
        APFDataset(tmp_path / "ds", normalize="imagenet")

    w = class_weights(tmp_path / "ds")
    cells = {int(k): n for k, n in manifest.statistics["train"]["classes"]["cells"].items()}
    total, k = sum(cells.values()), len(cells)
    assert w[0].item() == pytest.approx(total / (k * cells[0]))
    assert w[0] < w[6] and w[6] > 0  # background is the commonest class
    med = class_weights(tmp_path / "ds", method="median", level="pixels")
    pixels = {int(k): n for k, n in manifest.statistics["train"]["classes"]["pixels"].items()}
    rarest = min(pixels, key=pixels.get)
    assert med[0] < 1 < med[rarest]  # background is above the median frequency, the rarest far below


@settings(max_examples=80, deadline=None)
@given(
    dtype=st.sampled_from(["uint8", "uint16", "int32"]),
    shape=st.sampled_from([(1,), (7, 5), (64, 64), (3, 8, 8), (2, 4, 4, 4)]),
    top=st.integers(1, 300),
    seed=st.integers(0, 2**16),
)
def test_label_counts_equal_numpy_unique(dtype, shape, top, seed):
    """Pixels per label, by whichever histogram the dtype gets (OpenCV's for uint8), equal
    ``np.unique``'s counts exactly, for any shape and for non-contiguous views."""
    from apfcompile.inputs.labels import count_labels

    hi = min(top, np.iinfo(dtype).max)
    mask = np.random.default_rng(seed).integers(0, hi + 1, shape).astype(dtype)
    for view in (mask, mask[..., ::-1], mask.T):
        labels, counts = np.unique(view, return_counts=True)
        assert count_labels(view) == dict(zip(labels.tolist(), counts.tolist()))


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(["uint8", "uint16", "int16"]),
    n=st.integers(1, 3000),
    window=st.sampled_from([None, (-175.0, 250.0), (0.0, 60000.0), (-0.5, 99.5), (70000.0, 80000.0)]),
    seed=st.integers(0, 2**31),
)
def test_integer_sums_are_exact(dtype, n, window, seed):
    """Integer images' sums are exact Python integers, extremes included."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    x = rng.integers(info.min, info.max, n, endpoint=True).astype(dtype)
    x[: n // 3] = rng.choice([info.min, info.max], n // 3)
    values = [int(v) for v in x]
    got = statistics._int_sums(x, window)
    assert got[:3] == (n, sum(values), sum(v * v for v in values))
    if window is None:
        assert got[3:] == (None, None)
    elif all(float(b).is_integer() for b in window):
        clipped = [min(max(v, int(window[0])), int(window[1])) for v in values]
        assert got[3:] == (sum(clipped), sum(v * v for v in clipped))
        assert all(isinstance(t, int) for t in got)
    else:
        clipped = np.clip(np.array(values, np.float64), *window)
        np.testing.assert_allclose(got[3:], (clipped.sum(), (clipped**2).sum()), rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(["uint16", "int16"]),
    shape=st.sampled_from([(1, 1), (3, 7), (64, 48), (512, 512), (2048, 2047), (3000, 3000)]),
    extreme=st.sampled_from(["random", "min", "max", "both", "ct", "ct-edge"]),
    window=st.sampled_from([None, (-100.0, 200.0), (-32768.0, 32767.0), (0.5, 99.5), (-1e6, 1e6)]),
    seed=st.integers(0, 2**31),
)
def test_sixteen_bit_sums_are_exact(dtype, shape, extreme, window, seed):
    """16-bit frames' sums and sums of squares equal numpy's int64 sums, on either path (OpenCV
    within its limits, a histogram beyond): at the dtype's extremes, over CT's range, at the edge of
    OpenCV's limits, on frames of up to 9 M pixels, with windows inside, across and beyond the
    dtype's range."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    a = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    if extreme.startswith("ct"):  # Hounsfield units; or the largest range OpenCV's sums may take
        edge = int(min(2**31 / a.size, (2**48 / a.size) ** 0.5)) - 1 if extreme == "ct-edge" else 3071
        edge = min(edge, info.max)
        a = rng.integers(max(-edge, info.min), edge, shape, endpoint=True).astype(dtype)
        a.flat[0] = max(-edge, info.min) if dtype == "int16" else edge
    if extreme in ("min", "both"):
        a.flat[:: 2 if extreme == "both" else 1] = info.min
    if extreme in ("max", "both"):
        a.flat[1::2] = info.max
    n, s, q, ws, wq = statistics._int_sums(a, window)
    wide = a.astype(np.int64)
    assert (n, s, q) == (a.size, int(wide.sum()), int((wide * wide).sum()))
    if window is not None:
        w = np.clip(wide.astype(np.float64), *window)
        assert ws == pytest.approx(w.sum(), rel=1e-12, abs=1e-6)
        assert wq == pytest.approx((w * w).sum(), rel=1e-12, abs=1e-6)
        if float(window[0]).is_integer():
            wi = np.clip(wide, int(window[0]), int(window[1]))
            assert (ws, wq) == (int(wi.sum()), int((wi * wi).sum()))


def test_a_ct_slice_is_summed_by_opencv_and_extremes_by_the_histogram(monkeypatch):
    """The fast path is the one a CT slice takes (so the test above exercises it), and a frame
    at int16's extremes falls back to the histogram."""
    taken = []
    real = statistics._opencv_sums
    monkeypatch.setattr(statistics, "_opencv_sums", lambda x, w: taken.append(real(x, w)) or taken[-1])
    slice_ = np.random.default_rng(0).integers(-1024, 3072, (512, 512)).astype(np.int16)
    statistics._int_sums(slice_, (-175.0, 250.0))
    statistics._int_sums(np.full((512, 512), -32768, np.int16), None)
    assert taken[0] is not None and taken[1] is None
