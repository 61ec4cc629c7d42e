"""The out-of-core (banded) path against the in-memory path, on small canvases with tiny bands."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apfcompile import PatchParams, ceiling_dice, edge_map, patchify, serialise_image, serialise_mask
from apfcompile.core.out_of_core import patchify_banded
from apfcompile.inputs.sources import ArraySource, TiffSource

from . import builders


def check_exact(image, mask, sample, labels=None, ignore=None):
    """Patches equal the in-memory serialisation of the same leaves; so does the ceiling."""
    np.testing.assert_array_equal(sample.patches, serialise_image(image, sample.leaves, 8))
    if mask is not None:
        want = serialise_mask(mask, sample.leaves, 8, ignore_index=ignore)
        np.testing.assert_array_equal(sample.mask, want)
        classes, dice = ceiling_dice(mask, want, sample.leaves, ignore_index=ignore)
        np.testing.assert_array_equal(sample.ceiling[0], classes)
        np.testing.assert_allclose(sample.ceiling[1], dice)


@pytest.mark.parametrize("keep", [1, 2, 5])
@pytest.mark.parametrize("band", [8, 48, 256])
def test_real_tissue_with_labels(tissue, keep, band):
    image = tissue[:600, :900]
    grey = image.mean(axis=2)
    mask = np.where(grey < 140, 2, np.where(grey < 200, 1, 0)).astype(np.uint8)
    params = PatchParams.make(8, length=700)
    sample, stats = patchify_banded(ArraySource(image), ArraySource(mask), params, [0, 1, 2], band, keep)
    assert stats.pass1_bands == -(-600 // band)
    check_exact(image, mask, sample)
    ref = patchify(image, mask, params)
    assert len(sample.leaves) == len(ref.leaves)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    h=st.integers(8, 130),
    w=st.integers(8, 130),
    band_log=st.integers(3, 6),
    keep=st.integers(0, 4),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
    ignore=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_random_canvases(h, w, band_log, keep, dtype, ignore, seed):
    rng = np.random.default_rng(seed)
    image = (rng.random((h, w)) * 250).astype(dtype)
    image[h // 3 : h // 2] += dtype(5) if np.dtype(dtype).kind != "f" else 5.0
    mask = rng.integers(0, 3, (h, w)).astype(np.uint8)
    labels = [0, 1, 2]
    ignore_index = None
    if ignore:
        mask[rng.random((h, w)) < 0.3] = 255
        labels, ignore_index = [0, 1, 2, 255], 255
    params = PatchParams.make(8, length=40, window=(0, 255), ignore_index=ignore_index)
    sample, _ = patchify_banded(ArraySource(image), ArraySource(mask), params, labels, 1 << band_log, keep)
    check_exact(image, mask, sample, ignore=ignore_index)


def test_edges_differ_only_near_band_borders(tissue):
    """Banded Canny vs whole-image Canny: report-sized difference, and the same forest here."""
    image = tissue
    params = PatchParams.make(8, length=1024)
    sample, _ = patchify_banded(ArraySource(image), None, params, band_rows=128)
    ref = patchify(image, None, params)
    same = np.mean(sample.leaves.x1[: len(ref.leaves)] == ref.leaves.x1[: len(sample.leaves)])
    assert same > 0.95
    assert (
        abs(int(sample.leaves.edges.sum()) - int(np.count_nonzero(edge_map(image)))) <= 0.01 * sample.leaves.edges.sum()
    )


def test_tiff_source_reads_a_pyramid_level(tmp_path, tissue):
    path = tmp_path / "slide.tif"
    builders.write_pyramid(path, tissue, levels=3, jpeg=False)
    level1 = TiffSource(path, level=1)
    assert level1.shape == (512, 512, 3)
    np.testing.assert_array_equal(level1.rows(10, 20), tissue[::2, ::2][10:20])
    from apfcompile.core.resample import resample

    for size in ((256, 256), (300, 220)):  # a whole factor, and not
        reduced = TiffSource(path, level=0, size=size)
        whole = np.concatenate([reduced.rows(y, min(size[0], y + 40)) for y in range(0, size[0], 40)])
        np.testing.assert_array_equal(whole, resample(tissue, size))
        reduced.close()
    padded = TiffSource(path, level=1, size=(300, 220), pad_to=(320, 320))
    rows = padded.rows(280, 320)
    assert rows.shape == (40, 320, 3) and not rows[20:].any() and not rows[:, 220:].any()
    sample, stats = patchify_banded(padded, None, PatchParams.make(8, length=256), band_rows=64)
    assert stats.pass1_bands == 5 and len(sample.leaves) <= 256
    level1.close()
    padded.close()


@pytest.mark.parametrize("keep", [None, 2, 5])
def test_mask_values_outside_the_labels_are_refused(tissue, keep):
    mask = np.zeros(tissue.shape[:2], np.uint8)
    mask[500, 5] = 9
    with pytest.raises(ValueError, match=r"labels.*\[9\]"):
        patchify_banded(ArraySource(tissue), ArraySource(mask), PatchParams.make(8, length=64), [0, 1], 256, keep)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    k=st.integers(1, 6),
    seed=st.integers(0, 2**31),
    dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.int16, np.int32]),
)
def test_4x4_class_counts_equal_the_one_hot_pyramid(h, w, k, seed, dtype):
    from apfcompile.core.out_of_core import _class_counts_4x4, _one_hot
    from apfcompile.core.pyramid import sum_pyramid

    rng = np.random.default_rng(seed)
    labels = np.sort(rng.choice(np.arange(-3, 120), k, replace=False)).astype(dtype)
    mask = rng.choice(labels, (h, w)).astype(dtype)
    np.testing.assert_array_equal(_class_counts_4x4(mask, labels), sum_pyramid(_one_hot(mask, labels), 2)[2])


def test_compile_paip_out_of_core_matches_in_memory(tmp_path):
    """--out-of-core always vs never on PAIP slides: same leaves, patches and masks."""
    from apfcompile import CompileConfig, compile_dataset
    from formats import open_dataset

    src = builders.paip(tmp_path / "paip")
    for mode in ("never", "always"):
        compile_dataset(
            CompileConfig.from_options(src, tmp_path / mode, resolution=512, length=256, out_of_core=mode, band_rows=64)
        )
    a, b = open_dataset(tmp_path / "never"), open_dataset(tmp_path / "always")
    for key in ("01_01_0083", "01_01_0085"):
        x, y = a.read_sample(key), b.read_sample(key)
        for col in ("x1", "y1", "size"):
            np.testing.assert_array_equal(x.nodes[col], y.nodes[col])
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.mask, y.mask)
        assert x.meta["ceiling_dice"] == pytest.approx(y.meta["ceiling_dice"])
        assert np.abs(x.nodes["edges"] - y.nodes["edges"]).sum() <= 0.01 * x.nodes["edges"].sum()


@pytest.mark.parametrize("fit", ["square", "pad"])
def test_out_of_core_any_resolution_matches_in_memory(tmp_path, fit):
    """A canvas that no pyramid level reaches by a whole factor: resampled band by band, the same."""
    from apfcompile import CompileConfig, compile_dataset
    from formats import open_dataset

    src = builders.paip(tmp_path / "paip")
    for mode in ("never", "always"):
        compile_dataset(
            CompileConfig.from_options(
                src, tmp_path / mode, resolution=300, fit=fit, length=128, out_of_core=mode, band_rows=48
            )
        )
    a, b = open_dataset(tmp_path / "never"), open_dataset(tmp_path / "always")
    ra, rb = a.samples.to_pylist(), b.samples.to_pylist()
    for key in ("canvas_h", "canvas_w", "orig_h", "orig_w", "scale_y", "scale_x"):
        assert [r[key] for r in ra] == [r[key] for r in rb]
    for key in ("01_01_0083", "01_01_0085"):
        x, y = a.read_sample(key), b.read_sample(key)
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.mask, y.mask)
        np.testing.assert_array_equal(x.nodes["size"], y.nodes["size"])


def slide_folder(root, tissue, mask_levels: int = 3):
    """A folder of two TIFF slides (pyramids of the real tissue) with multi-label TIFF masks
    (0..4 by stain darkness, 255 where unlabelled), one mask pyramidal and one plain."""
    root.mkdir(parents=True)
    grey = tissue.mean(axis=2)
    for i in range(2):
        image = np.ascontiguousarray(np.rot90(tissue, i))
        g = np.rot90(grey, i)
        labels = np.digitize(g, [90, 130, 170, 210]).astype(np.uint8)
        labels[:40, :40] = 255
        builders.write_pyramid(root / f"s{i}.tif", image)
        builders.write_pyramid(root / f"s{i}_mask.tif", labels, levels=mask_levels if i == 0 else 1, jpeg=False)
    return root


@pytest.mark.parametrize("resolution,fit", [(512, "square"), (300, "pad"), (None, "square")])
def test_folder_slides_out_of_core_match_in_memory(tmp_path, tissue, resolution, fit):
    """TIFF images with multi-label TIFF masks in the folder layout: --out-of-core always equals
    never (leaves, patches, masks, ceiling), with an ignore label."""
    from apfcompile import CompileConfig, compile_dataset
    from formats import open_dataset

    src = slide_folder(tmp_path / "slides", tissue)
    for mode in ("never", "always"):
        compile_dataset(
            CompileConfig.from_options(
                src,
                tmp_path / mode,
                resolution=resolution,
                fit=fit,
                length=200,
                out_of_core=mode,
                band_rows=128,
                ignore_index=255,
                workers=1,
            )
        )
    a, b = open_dataset(tmp_path / "never"), open_dataset(tmp_path / "always")
    ra, rb = a.samples.to_pylist(), b.samples.to_pylist()
    for key in ("canvas_h", "canvas_w", "orig_h", "orig_w", "scale_y", "scale_x", "mask_source"):
        assert [r[key] for r in ra] == [r[key] for r in rb]
    for key in ("s0", "s1"):
        x, y = a.read_sample(key), b.read_sample(key)
        np.testing.assert_array_equal(x.nodes["size"], y.nodes["size"])
        np.testing.assert_array_equal(x.image, y.image)
        np.testing.assert_array_equal(x.mask, y.mask)
        assert set(np.unique(x.mask).tolist()) <= {0, 1, 2, 3, 4, 255}
        assert x.meta["ceiling_dice"] == pytest.approx(y.meta["ceiling_dice"])
    if resolution is None:  # the level read is the canvas: statistics, exact on both paths, agree
        assert a.manifest.statistics == b.manifest.statistics
        assert a.manifest.classes == b.manifest.classes


def test_out_of_core_refuses_masks_with_many_labels(tmp_path, tissue):
    from click.testing import CliRunner

    from apfcompile.cli import main

    root = tmp_path / "many"
    root.mkdir()
    builders.write_pyramid(root / "s.tif", tissue)
    labels = (np.arange(tissue.shape[0] * tissue.shape[1]) % 40).reshape(tissue.shape[:2]).astype(np.uint16)
    builders.write_pyramid(root / "s_mask.tif", labels, levels=1, jpeg=False)
    run = CliRunner().invoke
    result = run(main, ["compile", str(root), str(tmp_path / "a"), "--out-of-core", "always", "-L", "64", "-j", "1"])
    errors = [line for line in result.output.splitlines() if line.startswith("apfcompile: error:")]
    assert result.exit_code != 0 and len(errors) == 1 and "40 labels" in errors[0], result.output
    result = run(main, ["compile", str(root), str(tmp_path / "b"), "--out-of-core", "auto", "-L", "64", "-j", "1"])
    assert result.exit_code == 0, result.output  # small canvas: in memory


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 90),
    w=st.integers(1, 90),
    band=st.integers(1, 40),
    seed=st.integers(0, 2**31),
    dtype=st.sampled_from([np.uint8, np.uint16, np.int16, np.int32]),
)
def test_mask_labels_are_the_unique_values(h, w, band, seed, dtype):
    from apfcompile.inputs.sources import mask_labels

    rng = np.random.default_rng(seed)
    pool = rng.choice(np.arange(0, 3000 if dtype != np.uint8 else 255), 5, replace=False)
    mask = rng.choice(pool, (h, w)).astype(dtype)
    np.testing.assert_array_equal(mask_labels(ArraySource(mask), band)[0], np.unique(mask))


def test_uint16_slides_take_their_stretch_from_a_coarse_level(tmp_path):
    """A 16-bit slide: the percentile window comes from a coarse pyramid level (no band reads),
    close to the full image's; a TIFF without levels falls back to sampled rows."""
    from apfcompile.core.edges import EdgeParams
    from apfcompile.core.out_of_core import _stretch_window

    rng = np.random.default_rng(0)
    image = (rng.gamma(2.0, 3000.0, (2048, 2048))).clip(0, 65535).astype(np.uint16)
    builders.write_pyramid(tmp_path / "s.tif", image, levels=3, jpeg=False)
    builders.write_pyramid(tmp_path / "flat.tif", image, levels=1, jpeg=False)
    exact = np.percentile(image, (1.0, 99.0))
    for name, has_overview in (("s.tif", True), ("flat.tif", False)):
        source = TiffSource(tmp_path / name)
        assert (source.overview() is not None) == has_overview
        lo, hi = _stretch_window(source, EdgeParams())
        assert abs(lo - exact[0]) < 0.1 * exact[1] and abs(hi - exact[1]) < 0.1 * exact[1]
        source.close()
