"""compile: layouts, determinism across workers, resume, views, canvases; read back without us."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr

from apfcompile import CompileConfig, compile_dataset
from formats import open_dataset

from . import builders


def compile_(src, out, **kw):
    return compile_dataset(CompileConfig.from_options(input=src, output=out, **kw))


@pytest.mark.parametrize("style", ["rawdata", "imagesTr"])
def test_btcv_layout(tmp_path, style):
    src = builders.btcv(tmp_path / "btcv", cases=2, style=style)
    manifest = compile_(src, tmp_path / "ds", length=64, shard_samples=16)
    assert manifest.parameters["layout"] == "btcv"
    assert manifest.totals["samples"] == 60 and len(manifest.shards) == 4
    assert [c.name for c in manifest.classes][:3] == ["background", "spleen", "right kidney"]
    assert manifest.parameters["window"] == [-175.0, 250.0] and manifest.mask_dtype == "uint8"
    ds = open_dataset(tmp_path / "ds")
    keys = ds.samples["key"].to_pylist()
    assert keys[:2] == ["img0001/z000", "img0001/z001"] and keys[-1] == "img0002/z029"
    sample = ds.read_sample("img0002/z015")
    assert sample.meta["slice_index"] == 15 and sample.image.shape == (64, 8, 8, 1)


def test_folder_layout_reads_back_with_zarr_and_pyarrow_alone(tmp_path):
    src = builders.nuclei_folder(tmp_path / "in", copies=3)
    compile_(src, tmp_path / "ds", length=300, shard_samples=2)
    manifest = json.loads((tmp_path / "ds" / "apf.json").read_text())
    assert manifest["format"] == "apfcompile" and manifest["version"] == 1
    assert [s["samples"] for s in manifest["shards"]] == [2, 1]
    shard = tmp_path / "ds" / manifest["shards"][0]["path"]
    samples = pq.read_table(shard / "samples.parquet").to_pydict()
    nodes = pq.read_table(shard / "nodes.parquet").to_pydict()
    group = zarr.open_group(str(shard / "patches.zarr"), mode="r")
    assert samples["key"] == ["n0", "n2"]  # sorted by path: n0.tif, n2.tif, sub/n1.tif
    n = samples["count"][0]
    assert group["image"].shape == (len(nodes["x1"]), 8, 8, 1) and group["mask"].dtype == np.uint16
    # rebuild the first sample's mask from the stored rows alone and score it
    mask = np.zeros((samples["canvas_h"][0], samples["canvas_w"][0]), np.uint16)
    patches = group["mask"][:n]
    for i in range(n):
        x1, y1, s = nodes["x1"][i], nodes["y1"][i], nodes["size"][i]
        f = s // 8
        mask[y1 : y1 + s, x1 : x1 + s] = np.repeat(np.repeat(patches[i], f, 0), f, 1)[
            : mask.shape[0] - y1, : mask.shape[1] - x1
        ]
    from apfcompile.inputs.readers import read_array

    original = read_array(src / "n0_mask.tif")
    assert (mask == original).mean() > 0.9
    assert samples["ceiling_dice"][0] > 0.5


def test_paip_layout_reads_the_right_pyramid_level(tmp_path):
    src = builders.paip(tmp_path / "paip")
    manifest = compile_(src, tmp_path / "ds", resolution=256, length=256)
    assert manifest.parameters["layout"] == "paip"
    assert [c.name for c in manifest.classes] == ["background", "whole tumour, not viable", "viable tumour"]
    ds = open_dataset(tmp_path / "ds")
    row = ds.samples.to_pylist()[0]
    assert (row["orig_h"], row["orig_w"], row["canvas_h"]) == (1024, 1024, 256)
    assert row["scale_y"] == pytest.approx(4.0)
    labels = np.unique(ds.read_sample("01_01_0083").mask)
    assert set(labels.tolist()) <= {0, 1, 2} and len(labels) == 3


def test_list_layout(tmp_path):
    src = builders.nuclei_folder(tmp_path / "in", copies=2)
    (src / "list.csv").write_text("image,mask,key\nn0.tif,n0_mask.tif,first\nsub/n1.tif,,second\n")
    compile_(src / "list.csv", tmp_path / "ds", length=100)
    ds = open_dataset(tmp_path / "ds")
    assert ds.samples["key"].to_pylist() == ["first", "second"]
    assert ds.samples["mask_source"].to_pylist() == ["n0_mask.tif", None]


def test_same_bytes_whatever_the_worker_count(tmp_path):
    src = builders.btcv(tmp_path / "btcv", cases=3)
    compile_(src, tmp_path / "one", length=48, shard_samples=7, workers=1)
    compile_(src, tmp_path / "two", length=48, shard_samples=7, workers=2)
    assert builders.tree_bytes(tmp_path / "one") == builders.tree_bytes(tmp_path / "two")


def test_shards_written_several_at_once_are_the_bytes_of_one_at_a_time(tmp_path, monkeypatch):
    """Three writer threads (what many workers get): the same dataset, byte for byte; a full disk
    in the middle of the writes is the one error it always is, and --resume finishes the same."""
    import errno
    import os
    import threading
    import time

    import formats.writer as writer
    from apfcompile.build import run
    from apfcompile.errors import OutputFullError

    src = builders.btcv(tmp_path / "btcv", cases=3)
    opts = dict(length=48, shard_samples=7, workers=1)
    compile_(src, tmp_path / "one", **opts)
    monkeypatch.setattr(run, "writer_threads", lambda workers: 3)
    real_write, lock, now, most = run.write_shard, threading.Lock(), [0], [0]

    def slow_write(*args, **kwargs):  # slow enough that the compile runs ahead of its writes
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.3)
        try:
            return real_write(*args, **kwargs)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(run, "write_shard", slow_write)
    compile_(src, tmp_path / "three", **opts)
    assert most[0] == 3  # three writes at once, never more
    assert builders.tree_bytes(tmp_path / "three") == builders.tree_bytes(tmp_path / "one")
    monkeypatch.setattr(run, "write_shard", real_write)
    real, calls = writer.put_file, []

    def full_at_the_20th(path, data):
        calls.append(path)
        if len(calls) == 20:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(writer, "put_file", full_at_the_20th)
    with pytest.raises(OutputFullError, match="no space left on device"):
        compile_(src, tmp_path / "full", **opts)
    monkeypatch.setattr(writer, "put_file", real)
    compile_(src, tmp_path / "full", resume=True, **opts)
    assert builders.tree_bytes(tmp_path / "full") == builders.tree_bytes(tmp_path / "one")


def test_writer_threads_grow_with_many_workers_only():
    from apfcompile.build.run import writer_threads

    assert [writer_threads(j) for j in (1, 2, 8, 11, 12, 16, 24, 64)] == [1, 1, 1, 1, 2, 2, 4, 4]


def test_resume_after_a_crash_equals_an_uninterrupted_compile(tmp_path, monkeypatch):
    import apfcompile.build.run as compile_mod

    src = builders.btcv(tmp_path / "btcv", cases=2)
    compile_(src, tmp_path / "whole", length=48, shard_samples=8)
    real = compile_mod.write_shard

    def crash_at_shard_4(dataset, index, *a, **kw):
        if index == 4:
            raise KeyboardInterrupt  # the process dies here
        return real(dataset, index, *a, **kw)

    monkeypatch.setattr(compile_mod, "write_shard", crash_at_shard_4)
    with pytest.raises(KeyboardInterrupt):
        compile_(src, tmp_path / "broken", length=48, shard_samples=8)
    monkeypatch.setattr(compile_mod, "write_shard", real)
    broken = tmp_path / "broken"
    assert not (broken / "apf.json").exists()
    (broken / "shards" / ".tmp-00004").mkdir()  # as if killed mid-write
    with pytest.raises(Exception, match="no apfcompile dataset"):
        open_dataset(broken)
    written = []
    monkeypatch.setattr(compile_mod, "write_shard", lambda d, i, *a, **kw: written.append(i) or real(d, i, *a, **kw))
    compile_(src, broken, length=48, shard_samples=8, resume=True)
    assert written == [4, 5, 6, 7]  # finished shards were kept
    assert builders.tree_bytes(tmp_path / "whole") == builders.tree_bytes(broken)


def test_views_and_canvas(tmp_path):
    src = builders.nuclei_folder(tmp_path / "in", copies=1)
    compile_(src, tmp_path / "ds", length=200, views=((3, 100, 200), (5, 20, 60)), resolution=300, fit="pad")
    ds = open_dataset(tmp_path / "ds")
    rows = ds.samples.to_pylist()
    assert [r["view"] for r in rows] == [0, 1] and rows[1]["blur"] == 5
    assert (rows[0]["canvas_h"], rows[0]["canvas_w"]) == (300, 300)
    assert rows[0]["scale_y"] == pytest.approx(512 / 300)
    first, second = ds.read_sample(rows[0]["sample"]), ds.read_sample(rows[1]["sample"])
    assert not np.array_equal(first.nodes["x1"], second.nodes["x1"])  # other edges, other leaves
    assert ds.verify() == []
    stats = json.loads((tmp_path / "ds" / "compile-stats.json").read_text())
    assert stats["peak_rss_mib"] > 0 and stats["workers"] == 1
    from apfcompile.report import summary

    assert "peak memory" in summary(ds)


def test_threshold_policy_lengths_vary(tmp_path):
    src = builders.nuclei_folder(tmp_path / "in", copies=1)
    compile_(src, tmp_path / "ds", policy="threshold", split_value=40, views=((3, 100, 200), (3, 20, 40)))
    counts = open_dataset(tmp_path / "ds").samples["count"].to_pylist()
    assert len(set(counts)) == 2 and min(counts) > 1  # more edges (lower thresholds), more leaves


@pytest.mark.shared
def test_paip_layout_on_the_real_aperio_slide(tmp_path):
    """The real SVS from ../shared as a PAIP case, with 0/1 masks drawn from its stain."""
    import shutil

    import tifffile

    from apfcompile.inputs.readers import read_array

    from .conftest import shared

    svs = shared("wsi/cmu_small_region.svs")
    case = tmp_path / "paip" / "Training_phase_2" / "01_01_0101"
    case.parent.mkdir(parents=True)
    shutil.copyfile(svs, case.with_suffix(".svs"))
    grey = read_array(svs).mean(axis=2)
    tifffile.imwrite(f"{case}_whole.tif", (grey < 200).astype(np.uint8), compression="zlib")
    tifffile.imwrite(f"{case}_viable.tif", (grey < 140).astype(np.uint8), compression="zlib")
    manifest = compile_(tmp_path / "paip", tmp_path / "ds", resolution=1024, fit="pad", length=1024)
    assert manifest.parameters["layout"] == "paip" and manifest.totals["samples"] == 1
    ds = open_dataset(tmp_path / "ds")
    row = ds.samples.to_pylist()[0]
    assert (row["orig_h"], row["orig_w"]) == (2967, 2220) and row["canvas_h"] == row["canvas_w"] == 1024
    assert row["scale_y"] == pytest.approx(2967 / 1024) and 0.5 < row["ceiling_dice"] <= 1.0
    assert set(np.unique(ds.read_sample("01_01_0101").mask).tolist()) == {0, 1, 2}
