"""NumPy inputs as researchers keep them: channel-first images, stacks of N samples with their
masks in one .npz, and .npy files larger than the memory a compile may use."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from apfcompile import CompileConfig, InputError, compile_dataset, read_array
from apfcompile.cli import main
from apfcompile.demo import sample_path
from apfcompile.inputs.channels import channel_axis, channels_last
from formats import open_dataset

NUCLEI = read_array(sample_path("nuclei_image.tif"))  # real fluorescence, uint16
NUCLEI_MASK = read_array(sample_path("nuclei_mask.tif"))


@pytest.mark.parametrize(
    ("shape", "mask", "axis"),
    [
        ((16, 256, 256), None, 0),
        ((3, 64, 48), None, 0),
        ((256, 256, 3), None, 2),
        ((64, 48, 16), None, 2),
        ((4, 500, 3), None, 2),  # a 4-row RGB image
        ((5, 3, 3), (3, 3), 0),  # only the mask can tell
        ((3, 3, 5), (3, 3), 2),
        ((3, 3, 3), None, None),
        ((8, 8, 8), None, None),
        ((100, 200, 300), None, None),
    ],
)
def test_the_channel_rule(shape, mask, axis):
    assert channel_axis(shape, mask) == axis
    assert channel_axis(shape, mask, "first") == 0 and channel_axis(shape, mask, "last") == 2


def test_an_ambiguous_image_is_refused_with_the_flags_to_use():
    with pytest.raises(InputError, match=r"cube.npy: cannot tell .* 3 x 3 x 3 .* --channels-first or --channels-last"):
        channels_last(np.zeros((3, 3, 3)), "cube.npy")
    assert channels_last(np.zeros((3, 3, 3)), "cube.npy", order="first").shape == (3, 3, 3)
    a = np.arange(2 * 4 * 5).reshape(2, 4, 5)
    np.testing.assert_array_equal(channels_last(a, "x", order="first"), np.moveaxis(a, 0, 2))


def test_a_channel_first_npy_is_one_image_of_its_channels(tmp_path):
    """Before: a 16 x H x W .npy was read as a 16-row image ("mask size differs")."""
    h, w = NUCLEI.shape
    stack = np.stack([np.roll(NUCLEI, k, axis=1) for k in range(16)])  # 16 x H x W, real texture
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "cells.npy", stack)
    np.save(tmp_path / "in" / "cells_mask.npy", NUCLEI_MASK.astype(np.uint16))
    manifest = compile_dataset(CompileConfig.from_options(tmp_path / "in", tmp_path / "ds", length=64, workers=1))
    assert manifest.channels == 16 and manifest.mask_dtype is not None
    sample = open_dataset(tmp_path / "ds").read_sample("cells")
    assert sample.meta["canvas_h"] == h and sample.meta["canvas_w"] == w
    # --channels-last says the opposite and is obeyed: the image is then 16 x H with W channels
    out = CliRunner().invoke(main, ["compile", str(tmp_path / "in"), str(tmp_path / "x"), "-j", "1", "--channels-last"])
    assert out.exit_code == 1 and "differs from its image's 16 x" in out.output


def blood(root, n=6):
    """Blood-report shaped: N x 16 x 64 x 64 images, N x 64 x 64 labels with 255 = unlabelled, in
    splits of one .npz (crops of the real fluorescence image, one per channel)."""
    rng = np.random.default_rng(0)
    root.mkdir()
    arrays = {}
    for split, count in (("train", n), ("val", 2)):
        ys, xs = rng.integers(0, NUCLEI.shape[0] - 64, count), rng.integers(0, NUCLEI.shape[1] - 64, count)
        arrays[f"x_{split}"] = np.stack([np.stack([NUCLEI[y : y + 64, x : x + 64]] * 16) for y, x in zip(ys, xs)])
        labels = np.stack([(NUCLEI_MASK[y : y + 64, x : x + 64] > 0).astype(np.uint8) for y, x in zip(ys, xs)])
        labels[:, :8] = 255
        arrays[f"y_{split}"] = labels
    np.savez(root / "blood.npz", **arrays)
    return root, arrays


def test_a_stack_in_an_npz_needs_keys_when_it_holds_several_splits(tmp_path):
    src, arrays = blood(tmp_path / "in")
    out = CliRunner().invoke(main, ["compile", str(src), str(tmp_path / "ds"), "-j", "1"])
    assert out.exit_code == 1 and "Traceback" not in out.output
    line = out.output.strip().splitlines()[-1]
    assert "blood.npz" in line and "x_train 6 x 16 x 64 x 64" in line and "--image-key" in line
    out = CliRunner().invoke(main, ["compile", str(src), str(tmp_path / "ds"), "-j", "1", "--image-key", "x_tran"])
    assert out.exit_code == 1 and "holds no array 'x_tran'" in out.output


def test_a_stack_compiles_one_sample_per_index_with_its_masks(tmp_path):
    src, arrays = blood(tmp_path / "in")
    cfg = CompileConfig.from_options(
        src, tmp_path / "ds", length=32, workers=1, image_key="x_train", mask_key="y_train", ignore_index=255
    )
    manifest = compile_dataset(cfg)
    assert manifest.totals["samples"] == 6 and manifest.channels == 16 and manifest.ignore_index == 255
    assert manifest.parameters["image_key"] == "x_train" and manifest.parameters["mask_key"] == "y_train"
    ds = open_dataset(tmp_path / "ds")
    assert ds.samples["key"].to_pylist() == [f"blood/{i}" for i in range(6)]
    assert ds.samples["slice_index"].to_pylist() == list(range(6))
    assert set(ds.samples["mask_source"].to_pylist()) == {"blood.npz:y_train"}
    sample = ds.read_sample("blood/3")
    assert set(np.unique(sample.mask).tolist()) <= {0, 1, 255}


def test_a_single_pair_of_arrays_needs_no_keys(tmp_path):
    (tmp_path / "in").mkdir()

    def three(a):  # three different channels, not grey stored as RGB
        return np.stack([a, a // 2, a // 3])

    x = np.stack([three(NUCLEI[:64, :64]), three(NUCLEI[64:128, :64])])
    y = (np.stack([NUCLEI_MASK[:64, :64], NUCLEI_MASK[64:128, :64]]) > 0).astype(np.uint8)
    np.savez(tmp_path / "in" / "pair.npz", x=x, y=y)
    from apfcompile import APFWarning

    with pytest.warns(APFWarning, match=r"pair.npz: took array 'x' as the images and 'y' as their masks"):
        manifest = compile_dataset(CompileConfig.from_options(tmp_path / "in", tmp_path / "ds", length=32, workers=1))
    assert manifest.totals["samples"] == 2 and manifest.channels == 3 and manifest.mask_dtype is not None
    assert manifest.parameters["arrays_by_default"] == ["pair.npz"]
    told = CompileConfig.from_options(
        tmp_path / "in", tmp_path / "told", length=32, workers=1, image_key="x", mask_key="y"
    )
    assert "arrays_by_default" not in compile_dataset(told).parameters  # no warning: filterwarnings = error


def test_a_stacked_npy_larger_than_the_memory_limit_compiles(tmp_path):
    """A 4-D .npy bigger than what the compile may allocate (RLIMIT_DATA) is memory-mapped, one
    sample at a time; reading it whole under the same limit fails."""
    n, c, side = 40, 16, 512
    path = tmp_path / "in" / "big.npy"
    path.parent.mkdir()
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(n, c, side, side))
    tile = np.ascontiguousarray(NUCLEI[:side, :side]) if min(NUCLEI.shape) >= side else np.resize(NUCLEI, (side, side))
    for i in range(n):
        big[i] = np.roll(tile, i, axis=0)[None]
    big.flush()
    del big
    size_mib = path.stat().st_size >> 20  # 320 MiB
    code = textwrap.dedent(f"""
        import resource, sys
        import numpy as np
        from apfcompile import CompileConfig, compile_dataset
        import apfcompile.build.samples, apfcompile.inputs.readers.stacks, zarr, pyarrow.parquet, cv2, numcodecs
        data = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmData")) >> 10
        limit = (data + {size_mib // 2}) << 20
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        try:
            np.load({str(path)!r})
            sys.exit("reading it whole should not fit")
        except MemoryError:
            pass
        cfg = CompileConfig.from_options({str(path.parent)!r}, {str(tmp_path / "ds")!r}, length=64, workers=1)
        m = compile_dataset(cfg)
        print(m.totals["samples"], m.channels)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == [str(n), str(c)]


def test_an_hdf5_stack_is_read_one_sample_at_a_time(tmp_path):
    h5py = pytest.importorskip("h5py")
    src, arrays = blood(tmp_path / "in")
    (src / "blood.npz").unlink()
    with h5py.File(src / "blood.h5", "w") as f:
        f.create_dataset("train/images", data=arrays["x_train"], chunks=(1, 16, 64, 64))
        f.create_dataset("train/labels", data=arrays["y_train"])
    cfg = CompileConfig.from_options(
        src, tmp_path / "ds", length=32, workers=1, image_key="train/images", mask_key="train/labels"
    )
    manifest = compile_dataset(cfg)
    assert manifest.totals["samples"] == 6 and manifest.channels == 16 and manifest.mask_dtype is not None
    ds = open_dataset(tmp_path / "ds")
    assert ds.samples["key"].to_pylist()[:2] == ["blood/0", "blood/1"]
    assert set(ds.samples["mask_source"].to_pylist()) == {"blood.h5:train/labels"}
    # the same samples as the .npz holding the same arrays
    np.savez(tmp_path / "npz.npz", x_train=arrays["x_train"], y_train=arrays["y_train"])
    (tmp_path / "npz").mkdir()
    (tmp_path / "npz.npz").rename(tmp_path / "npz" / "blood.npz")
    cfg = CompileConfig.from_options(
        tmp_path / "npz", tmp_path / "ds2", length=32, workers=1, image_key="x_train", mask_key="y_train"
    )
    compile_dataset(cfg)
    a, b = open_dataset(tmp_path / "ds"), open_dataset(tmp_path / "ds2")
    for k in range(6):
        np.testing.assert_array_equal(a.read_sample(k).image, b.read_sample(k).image)
        np.testing.assert_array_equal(a.read_sample(k).mask, b.read_sample(k).mask)


def test_channels_first_taken_from_the_shape_alone_is_a_warning_and_recorded(tmp_path):
    """No mask and no flag: a 16 x H x W array is taken as channels-first by the rule — said in one
    `apfcompile: warning:` line and recorded in the manifest; a flag silences it."""
    from apfcompile import APFWarning

    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "cells.npy", np.stack([np.roll(NUCLEI, k, axis=1) for k in range(16)]))
    with pytest.warns(APFWarning, match=r"cells.npy: took 16 x \d+ x \d+ arrays as channels first"):
        manifest = compile_dataset(CompileConfig.from_options(tmp_path / "in", tmp_path / "ds", length=64, workers=1))
    assert manifest.channels == 16 and manifest.parameters["channels_first_by_shape"] == ["cells.npy"]
    out = CliRunner().invoke(main, ["compile", str(tmp_path / "in"), str(tmp_path / "cli"), "-j", "1", "-L", "64"])
    assert out.exit_code == 0
    warned = [line for line in out.output.splitlines() if line.startswith("apfcompile: warning:")]
    assert len(warned) == 1 and "--channels-first or --channels-last" in warned[0]
    out = CliRunner().invoke(
        main, ["compile", str(tmp_path / "in"), str(tmp_path / "told"), "-j", "1", "-L", "64", "--channels-first"]
    )
    assert out.exit_code == 0 and "warning" not in out.output
    told = open_dataset(tmp_path / "told").manifest.parameters
    assert told["channel_order"] == "first" and "channels_first_by_shape" not in told
