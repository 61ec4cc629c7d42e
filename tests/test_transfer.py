"""A pool worker's samples through shared memory: the same arrays back, or the pipe as before."""

from __future__ import annotations

import errno
import os
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apfcompile.build import transfer
from apfcompile.build.samples import Result
from apfcompile.build.transfer import exported, imported, transfer_folder
from apfcompile.demo import sample_path
from apfcompile.errors import CompileError
from apfcompile.scratch import owner
from formats import SampleRecord
from formats.nodes import NodeTable


def _record(i: int, n: int, rng: np.random.Generator, *, dims: int, labelled: bool, dtype: str) -> SampleRecord:
    cell = (4,) * dims
    ints = {k: rng.integers(0, 1000, n).astype(np.int32) for k in ("x1", "x2", "y1", "y2", "size", "depth", "tile")}
    z = {k: rng.integers(0, 100, n).astype(np.int32) for k in ("z1", "z2")} if dims == 3 else {}
    nodes = NodeTable(**ints, edges=rng.integers(0, 1 << 40, n), canvas=(64,) * dims, **z)
    return SampleRecord(
        sample=i,
        key=f"k{i}",
        source="a.nii.gz",
        mask_source="a_mask.nii.gz" if labelled else None,
        view=0,
        canvas=(64,) * dims,
        original=(64,) * dims,
        scale=(1.0, 1.0),
        offset=(0.0, 0.0),
        slice_axis=2,
        slice_index=i,
        gamma=1.0,
        ceiling=(np.array([0, 1]), np.array([1.0, 0.5])) if labelled else None,
        blur=3,
        canny=(100.0, 200.0),
        nodes=nodes,
        image=rng.integers(-1000, 1000, (n, *cell, 2)).astype(dtype),
        mask=rng.integers(0, 14, (n, *cell)).astype(np.uint8) if labelled else None,
    )


def _assert_same(got: Result, want: Result) -> None:
    assert got.shared is None and len(got.records) == len(want.records)
    for g, w in zip(got.records, want.records):
        assert (g.key, g.sample, g.canvas, g.nodes.canvas, g.mask_source) == (
            w.key,
            w.sample,
            w.canvas,
            w.nodes.canvas,
            w.mask_source,
        )
        for name in ("image", "mask"):
            a, b = getattr(g, name), getattr(w, name)
            assert (a is None) == (b is None)
            if a is not None:
                assert a.dtype == b.dtype and a.shape == b.shape
                np.testing.assert_array_equal(a, b)
        for name in ("x1", "x2", "y1", "y2", "size", "depth", "tile", "edges", "z1", "z2"):
            a, b = getattr(g.nodes, name), getattr(w.nodes, name)
            assert (a is None) == (b is None)
            if a is not None:
                assert a.dtype == b.dtype
                np.testing.assert_array_equal(a, b)


@settings(max_examples=25, deadline=None)
@given(
    counts=st.lists(st.integers(0, 300), min_size=1, max_size=6),
    dims=st.sampled_from([2, 3]),
    labelled=st.lists(st.booleans(), min_size=6, max_size=6),
    dtype=st.sampled_from(["uint8", "int16", ">i2", "float32"]),
    seed=st.integers(0, 2**16),
)
def test_arrays_come_back_equal_as_views_of_one_file_that_goes(counts, dims, labelled, dtype, seed):
    rng = np.random.default_rng(seed)
    records = [_record(i, n, rng, dims=dims, labelled=labelled[i], dtype=dtype) for i, n in enumerate(counts)]
    want = Result(3, records=records, notes=[("kind", "note")])
    with transfer_folder(True) as folder, pytest.MonkeyPatch.context() as mp:
        mp.setattr(transfer, "MIN_BYTES", 0)
        sent = exported(want, folder)
        if not any(counts):  # no bytes to move: the result goes as it is
            assert sent is want
            return
        # what travels through the pipe: no arrays, just where they are
        assert sent.shared is not None and os.path.dirname(sent.shared.path) == folder
        assert all(r.image is None and r.mask is None and r.nodes.x1 is None for r in sent.records)
        got = imported(sent)
        assert os.listdir(folder) == []  # the name goes at once; the mapping stays
    _assert_same(got, want)
    assert got.notes == want.notes and got.index == 3
    for r in got.records:
        assert r.image.base is not None and r.image.flags.writeable  # a view, copy-on-write


def test_the_folder_goes_with_what_is_left_in_it():
    with transfer_folder(True) as folder:
        open(os.path.join(folder, "left"), "wb").close()
    assert folder is not None and not os.path.exists(folder)
    with transfer_folder(False) as none:
        assert none is None


def test_folders_of_compiles_that_are_gone_are_removed_and_live_ones_kept(tmp_path, monkeypatch):
    """A compile killed outright leaves its folder (shared memory stays taken until it is removed):
    the next pooled compile removes it, and leaves a running compile's folder alone."""
    import subprocess
    import sys

    monkeypatch.setattr(transfer, "SHARED_MEMORY", tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = tmp_path / f"apf-results-{owner(int(dead.stdout))}-abc"
    live = tmp_path / f"apf-results-{owner(os.getppid())}-def"
    other = tmp_path / "apf-results-notapid"
    for folder in (orphan, live, other):
        folder.mkdir()
        (folder / "0-x").write_bytes(b"left")
    with transfer_folder(True) as folder:
        assert os.path.basename(folder).startswith(f"apf-results-{owner()}-")
        assert not orphan.exists() and live.exists() and other.exists()


def _result(n: int = 4096) -> Result:
    rng = np.random.default_rng(0)
    return Result(0, records=[_record(i, n, rng, dims=2, labelled=True, dtype="int16") for i in range(2)])


def test_without_a_folder_or_with_little_to_move_the_result_stays_as_it_is(tmp_path):
    result = _result()
    assert exported(result, None) is result
    small = _result(n=10)  # ~1 kB of arrays
    assert exported(small, str(tmp_path)) is small
    failed = Result(0, error="bad input")
    assert exported(failed, str(tmp_path)) is failed
    assert os.listdir(tmp_path) == []


def test_shared_memory_with_little_room_is_left_to_others(tmp_path, monkeypatch):
    """A small or nearly full /dev/shm (Docker's default is 64 MB; a training job beside the
    compile needs it for its DataLoader): the result takes the pipe and nothing is written."""
    result = _result()
    real = os.statvfs(tmp_path)

    def small(path, total=64 << 20, free=60 << 20):
        return os.statvfs_result((real.f_bsize, 4096, total // 4096, free // 4096, free // 4096, 0, 0, 0, 0, 255))

    monkeypatch.setattr(transfer.os, "statvfs", small)
    assert exported(result, str(tmp_path)) is result
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(transfer.os, "statvfs", lambda p: small(p, total=64 << 30, free=40 << 30))
    assert exported(result, str(tmp_path)).shared is not None  # plenty of room: the file


@pytest.mark.parametrize("failure", ["full", "folder gone"])
def test_a_write_that_fails_sends_the_result_through_the_pipe_and_leaves_no_file(tmp_path, monkeypatch, failure):
    monkeypatch.setattr(transfer, "_room_for", lambda folder, nbytes: True)  # tmp_path: a disk
    result = _result()
    folder = tmp_path / "results"
    folder.mkdir()
    if failure == "full":

        def full(fd, data, offset):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(transfer.os, "pwrite", full)
    else:
        shutil.rmtree(folder)
    assert exported(result, str(folder)) is result
    assert not folder.exists() or os.listdir(folder) == []


def test_a_file_removed_under_the_compile_is_one_line_that_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "_room_for", lambda folder, nbytes: True)  # tmp_path: a disk
    sent = exported(_result(), str(tmp_path))
    os.unlink(sent.shared.path)
    with pytest.raises(CompileError, match=r"shared memory are gone .*--resume") as info:
        imported(sent)
    assert "\n" not in str(info.value)


def test_a_pooled_compile_brings_its_samples_through_shared_memory_with_the_bytes_of_one_process(tmp_path, monkeypatch):
    """Two CT volumes with -j 2: the workers' samples come back as files in /dev/shm (not through
    the pipe), the dataset is byte for byte the one -j 1 writes, and the folder is gone afterwards."""
    from apfcompile import CompileConfig, compile_dataset
    from apfcompile.build import run

    from . import builders

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        shutil.copyfile(sample_path("ct_abdomen.nii.gz"), src / f"{name}.nii.gz")
        shutil.copyfile(sample_path("ct_abdomen_seg.nii.gz"), src / f"{name}_mask.nii.gz")
    ours = f"apf-results-{owner()}-"
    with transfer_folder(True) as probe:  # the real shared memory: the workers judge its room
        if probe is None or not transfer._room_for(probe, 64 << 20):
            pytest.skip("no shared memory with room on this machine: results take the pipe")
    came = []

    def spy(result):
        came.append(result.shared is not None)
        return imported(result)

    monkeypatch.setattr(run, "imported", spy)
    kw = dict(modality="ct", length=48)
    compile_dataset(CompileConfig.from_options(src, tmp_path / "one", workers=1, **kw))
    assert not any(came)  # in one process nothing travels
    came.clear()
    compile_dataset(CompileConfig.from_options(src, tmp_path / "two", workers=2, **kw))
    assert came and all(came)
    assert builders.tree_bytes(tmp_path / "two") == builders.tree_bytes(tmp_path / "one")
    assert not [n for n in os.listdir(transfer.SHARED_MEMORY) if n.startswith(ours)]
