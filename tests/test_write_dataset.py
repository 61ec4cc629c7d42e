"""A writer for data in no layout (issue #13): write_dataset gives the CLI's dataset, in parallel
and deterministically, from tuples or from a function over inputs."""

from __future__ import annotations

import numpy as np
import pytest

from apfcompile import CompileConfig, compile_dataset, read_array, write_dataset
from apfcompile.demo import sample_path
from formats import open_dataset

from . import builders

IMAGE = read_array(sample_path("nuclei_image.tif"))
MASK = read_array(sample_path("nuclei_mask.tif"))


def tile(i: int) -> tuple:
    """Module level, so that worker processes can call it: one real 128 x 128 crop and its labels."""
    y, x = divmod(i, 4)
    crop = (slice(y * 128, (y + 1) * 128), slice(x * 128, (x + 1) * 128))
    return f"tile_{i:02d}", IMAGE[crop], (MASK[crop] > 0).astype(np.uint8)


def test_tuples_give_the_cli_s_dataset(tmp_path):
    """The same images as files compiled by the CLI's list layout: the same patches and nodes."""
    (tmp_path / "in").mkdir()
    import tifffile

    rows = ["image,mask,key"]
    for i in range(4):
        key, image, mask = tile(i)
        tifffile.imwrite(tmp_path / "in" / f"{key}.tif", image)
        tifffile.imwrite(tmp_path / "in" / f"{key}_m.tif", mask)
        rows.append(f"{key}.tif,{key}_m.tif,{key}")
    (tmp_path / "in" / "list.csv").write_text("\n".join(rows) + "\n")
    compile_dataset(CompileConfig.from_options(tmp_path / "in" / "list.csv", tmp_path / "cli", length=64, workers=1))
    manifest = write_dataset((tile(i) for i in range(4)), tmp_path / "mem", length=64)
    assert manifest.totals["samples"] == 4 and manifest.mask_dtype == "uint8"
    a, b = builders.tree_bytes(tmp_path / "cli"), builders.tree_bytes(tmp_path / "mem")
    same = [k for k in a if "patches.zarr" in k or k.endswith("nodes.parquet")]
    assert same and all(a[k] == b[k] for k in same)
    assert open_dataset(tmp_path / "mem").samples["key"].to_pylist() == [f"tile_{i:02d}" for i in range(4)]


def test_a_function_over_inputs_runs_in_workers_with_the_same_bytes(tmp_path):
    one = write_dataset(tile, tmp_path / "one", inputs=range(8), length=64, workers=1, shard_samples=3)
    two = write_dataset(tile, tmp_path / "two", inputs=range(8), length=64, workers=2, shard_samples=3)
    assert one.totals == two.totals and one.totals["samples"] == 8
    assert builders.tree_bytes(tmp_path / "one") == builders.tree_bytes(tmp_path / "two")
    assert one.statistics["all"]["pixels"] == 8 * 128 * 128


def test_unlabelled_samples_bad_items_and_duplicate_keys(tmp_path):
    samples = [tile(0), ("plain", IMAGE[:128, :128], None)]
    manifest = write_dataset(samples, tmp_path / "ds", length=32)
    ds = open_dataset(tmp_path / "ds")
    assert ds.samples["labelled"].to_pylist() == [True, False] and manifest.ignore_index == 255
    with pytest.raises(Exception, match="keys must be unique"):
        write_dataset([tile(0), tile(0)], tmp_path / "dup", length=32)
    with pytest.raises(Exception, match=r"<bad>: .*mask size 3 x 3 differs"):
        write_dataset([("bad", IMAGE[:16, :16], np.zeros((3, 3), np.uint8))], tmp_path / "bad", length=8)
    with pytest.raises(Exception, match="inputs"):
        write_dataset(tile, tmp_path / "none")
