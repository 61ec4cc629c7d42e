"""Compiling on a Dask cluster: the same bytes as a local compile, even when a worker dies."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import pytest

from apfcompile import CompileConfig, compile_dataset
from apfcompile.errors import ParameterError

from . import builders

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def btcv(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask")
    src = builders.btcv(root / "btcv", cases=6)
    compile_dataset(CompileConfig.from_options(src, root / "local", length=48, shard_samples=16))
    return src, root


def test_local_cluster_equals_local_compile(btcv):
    src, root = btcv
    compile_dataset(CompileConfig.from_options(src, root / "local2", length=48, shard_samples=16, scheduler="local:2"))
    assert builders.tree_bytes(root / "local") == builders.tree_bytes(root / "local2")


@pytest.mark.parametrize("kind", ["ct", "wsi"])
def test_local_cluster_compiles_the_shared_data_like_a_local_compile(tmp_path, kind):
    """../shared's real CT volume (BTCV layout) and real Aperio slide (PAIP layout, masks drawn
    from its stain), each as two cases, on a 2-worker loopback cluster."""
    import shutil

    import numpy as np
    import tifffile

    from apfcompile.inputs.readers import read_array

    from .conftest import shared

    src = tmp_path / "src"
    if kind == "ct":
        ct, seg = shared("ct/example_ct_sm.nii.gz"), shared("ct/example_seg.nii.gz")
        for folder in ("img", "label"):
            (src / "RawData/Training" / folder).mkdir(parents=True)
        for i in (1, 2):
            shutil.copyfile(ct, src / f"RawData/Training/img/img{i:04d}.nii.gz")
            shutil.copyfile(seg, src / f"RawData/Training/label/label{i:04d}.nii.gz")
        opts = dict(length=48, shard_samples=16, mask_dtype="uint8")
    else:
        svs = shared("wsi/cmu_small_region.svs")
        grey = read_array(svs).mean(axis=2)
        src.mkdir()
        for case in ("01_01_0101", "01_01_0102"):
            shutil.copyfile(svs, src / f"{case}.svs")
            tifffile.imwrite(src / f"{case}_whole.tif", (grey < 200).astype(np.uint8), compression="zlib")
            tifffile.imwrite(src / f"{case}_viable.tif", (grey < 140).astype(np.uint8), compression="zlib")
        opts = dict(length=256, resolution=512)
    # The shared label map holds TotalSegmentator ids, not BTCV's: the compile says so (and, the
    # same way, on Dask).
    said = pytest.warns(Warning, match="not among the btcv layout") if kind == "ct" else contextlib.nullcontext()
    with said:
        compile_dataset(CompileConfig.from_options(src, tmp_path / "local", workers=1, **opts))
    with said if kind != "ct" else pytest.warns(Warning, match="not among the btcv layout"):
        compile_dataset(CompileConfig.from_options(src, tmp_path / "dask", scheduler="local:2", **opts))
    assert builders.tree_bytes(tmp_path / "local") == builders.tree_bytes(tmp_path / "dask")


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(btcv):
    src, root = btcv
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            pids = list(client.run(os.getpid).values())
        errors = []

        def run():
            try:
                compile_dataset(
                    CompileConfig.from_options(
                        src, root / "killed", length=48, shard_samples=16, scheduler=cluster.scheduler_address
                    )
                )
            except Exception as exc:  # surfaced below
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.time() + 60
        while not (root / "killed" / "shards" / "00000").exists() and time.time() < deadline:
            time.sleep(0.02)
        os.kill(pids[0], signal.SIGKILL)
        thread.join(timeout=300)
    assert not errors, errors
    assert builders.tree_bytes(root / "local") == builders.tree_bytes(root / "killed")


def test_unreachable_scheduler_is_one_clear_error(tmp_path, btcv):
    src, _ = btcv
    with pytest.raises(ParameterError, match="reachable Dask scheduler"):
        compile_dataset(CompileConfig.from_options(src, tmp_path / "ds", length=48, scheduler="tcp://127.0.0.1:9"))
    with pytest.raises(ParameterError, match="local:N"):
        compile_dataset(CompileConfig.from_options(src, tmp_path / "ds2", length=48, scheduler="local:many"))
