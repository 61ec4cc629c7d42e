"""Datasets on object storage read through the local block cache (``cache_dir``)."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from apfcompile import CompileConfig, compile_dataset
from loaders import APFDataset, APFStream, _ranges
from loaders._ranges import CachedFile, RangeFile, RemoteFile

from . import builders
from .remote_fs import CountingFS, upload

KEYS = ("image", "mask", "box", "size", "center", "valid")


@pytest.fixture(scope="module")
def ct(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    src = builders.btcv(root / "btcv", cases=1)
    compile_dataset(CompileConfig.from_options(input=src, output=root / "ds", length=48, shard_samples=8, workers=1))
    return src, root / "ds"


def test_second_epoch_reads_nothing_remote_and_items_match_local(ct, tmp_path):
    _, local_ds = ct
    url = upload(local_ds, "countmem")
    local = APFDataset(local_ds, length=48)
    CountingFS.fetched = 0
    first = APFDataset(url, length=48, cache_dir=tmp_path / "cache")
    for frame in range(len(local)):
        a, b = local[frame], first[frame]
        assert all(torch.equal(a[k], b[k]) for k in KEYS)
    fetched_first = CountingFS.fetched
    assert fetched_first > 0 and any((tmp_path / "cache").rglob("0*"))

    CountingFS.fetched = 0
    again = APFDataset(url, length=48, cache_dir=tmp_path / "cache")  # a new process would do the same
    manifest_bytes = CountingFS.fetched  # apf.json and samples.parquet are read on open
    for frame in range(len(local)):
        a, b = local[frame], again[frame]
        assert all(torch.equal(a[k], b[k]) for k in KEYS)
    assert CountingFS.fetched == manifest_bytes  # every shard byte came from the cache


def test_two_dataloader_workers_share_one_cache_folder(ct, tmp_path):
    _, local_ds = ct
    url = upload(local_ds)
    for _ in range(2):  # cold, then warm
        stream = APFStream(url, length=48, batch_size=4, cache_dir=tmp_path / "cache")
        ids = [i for b in DataLoader(stream, batch_size=None, num_workers=2) for i in b["id"].tolist()]
        assert sorted(ids) == list(range(30))
    leftovers = [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers


def test_a_recompiled_dataset_is_never_served_stale_blocks(ct, tmp_path):
    src, _ = ct
    url = f"memory://recompiled-{uuid.uuid4().hex[:8]}"
    cache = tmp_path / "cache"
    for blur, length in ((3, 48), (5, 32)):
        compile_dataset(
            CompileConfig.from_options(
                input=src, output=url, length=length, shard_samples=8, workers=1, blur=blur, overwrite=True
            )
        )
        compile_dataset(
            CompileConfig.from_options(
                input=src, output=tmp_path / f"local{blur}", length=length, shard_samples=8, workers=1, blur=blur
            )
        )
        remote, local = APFDataset(url, cache_dir=cache), APFDataset(tmp_path / f"local{blur}")
        for frame in (0, 11, 29):
            a, b = local[frame], remote[frame]
            assert all(torch.equal(a[k], b[k]) for k in KEYS)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=5000),
    reads=st.lists(st.tuples(st.integers(0, 5200), st.integers(0, 3000)), min_size=1, max_size=8),
)
def test_cached_ranges_equal_the_file(tmp_path_factory, data, reads):
    import fsspec

    old = _ranges.CACHE_BLOCK
    _ranges.CACHE_BLOCK = 512  # many blocks per file
    try:
        fs = fsspec.filesystem("memory")
        digest = hashlib.sha256(data).hexdigest()
        fs.pipe_file(f"/cache-prop/{digest}", data)
        cache = tmp_path_factory.mktemp("blocks")
        for _ in range(2):  # cold, then from the cache
            f = CachedFile(RemoteFile(fs, f"/cache-prop/{digest}", len(data)), cache, digest)
            for offset, n in reads:
                n = max(0, min(n, len(data) - offset))
                assert f.read(offset, n) == data[offset : offset + n]
            r = RangeFile(f)
            r.seek(min(reads[0][0], len(data)))
            assert r.read() == data[min(reads[0][0], len(data)) :]
    finally:
        _ranges.CACHE_BLOCK = old


@pytest.mark.parametrize("cached", [False, True])
def test_prefetch_threads_on_object_storage(ct, tmp_path, cached):
    _, local_ds = ct
    url = upload(local_ds)
    kw = dict(length=48, batch_size=2, seed=5)
    want = list(APFStream(local_ds, **kw))
    got = list(APFStream(url, prefetch=4, cache_dir=tmp_path / "c" if cached else None, **kw))
    assert [u["id"].tolist() for u in got] == [u["id"].tolist() for u in want]
    for a, b in zip(want, got):
        assert all(torch.equal(a[k], b[k]) for k in KEYS)


def test_an_unusable_cache_dir_is_refused_at_once(ct, tmp_path):
    _, local_ds = ct
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ValueError, match="cache_dir"):
        APFStream(upload(local_ds), cache_dir=tmp_path / "file" / "sub")
