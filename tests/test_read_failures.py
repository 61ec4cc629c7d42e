"""Nothing silent when reading: a broken shard is one error naming the file and the sample, from
``APFDataset``, ``APFStream``, ``Dataset.read_sample`` and ``verify`` alike, or, with
``APFStream(on_error="skip")``, a warning, a skipped sample and a count in ``state_dict``."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import torch

from formats import CorruptShardError, open_dataset
from loaders import APFDataset, APFStream, SkippedSampleWarning

from . import builders


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Four copies of the real nuclei image (with its mask), one sample per shard."""
    root = tmp_path_factory.mktemp("failures")
    builders.compile_to(builders.nuclei_folder(root / "in", copies=4), root / "ds", length=64, shard_samples=1)
    return root / "ds"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _image(ds: Path, shard: int = 1) -> Path:
    return ds / "shards" / f"{shard:05d}" / "patches.zarr/image/c/0/0/0/0"


BREAKS = {
    "truncated image file": (lambda ds: _truncate(_image(ds)), "truncated"),
    "truncated node table": (lambda ds: _truncate(ds / "shards/00001/nodes.parquet"), "truncated"),
    "missing mask file": (lambda ds: (ds / "shards/00001/patches.zarr/mask/c/0/0/0").unlink(), "missing"),
    "missing shard folder": (lambda ds: shutil.rmtree(ds / "shards/00001"), "missing"),
    "index cut to the same size": (  # the file keeps its size but its shard index is altered
        lambda ds: _image(ds).write_bytes(_image(ds).read_bytes()[:-8] + b"\0" * 8),
        "crc32c",
    ),
}


@pytest.mark.parametrize("case", list(BREAKS))
def test_a_broken_shard_is_one_error_naming_file_and_sample(dataset, tmp_path, case):
    broken = tmp_path / "ds"
    shutil.copytree(dataset, broken)
    key = open_dataset(broken).samples["key"].to_pylist()[1]  # kept before the break: samples.parquet may go
    breaker, word = BREAKS[case]
    breaker(broken)
    reads = {
        "APFDataset": lambda: APFDataset(broken, length=64)[1],
        "APFStream": lambda: list(APFStream(broken, length=64, shuffle=False)),
        "APFStream batches": lambda: list(APFStream(broken, length=64, batch_size=2, shuffle=False)),
    }
    if case != "missing shard folder":  # (the folder held the key's samples.parquet row)
        reads["read_sample"] = lambda: open_dataset(broken).read_sample(key)
    for name, read in reads.items():
        with pytest.raises(CorruptShardError) as err:
            read()
        message = str(err.value)
        assert "shards/00001" in message, (name, message)
        if case == "missing shard folder":  # the sample's key was in the missing folder: its count
            assert "the shard holds 1 sample(s)" in message, (name, message)
        else:
            assert repr(key) in message, (name, message)
        if "index" not in case or name != "read_sample":  # zarr-python says it its own way
            assert word in message, (name, message)
        assert "\n" not in message
    problems = open_dataset(broken).verify()
    assert problems and all("shards/00001" in p for p in problems)
    if case != "missing shard folder":
        assert all(repr(key) in p for p in problems), problems
    run = subprocess.run(["apfcompile", "verify", str(broken)], capture_output=True, text=True)
    assert run.returncode == 1 and "shards/00001" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("batch_size", [None, 3])
@pytest.mark.parametrize("workers", [0, 2])
def test_a_stream_skips_broken_samples_when_asked(dataset, tmp_path, batch_size, workers):
    broken = tmp_path / "ds"
    shutil.copytree(dataset, broken)
    keys = open_dataset(broken).samples["key"].to_pylist()
    _truncate(_image(broken, 2))
    stream = APFStream(broken, length=64, batch_size=batch_size, shuffle=True, seed=3, on_error="skip")
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=workers)
    seen, last = [], None
    expect = pytest.warns(SkippedSampleWarning, match=rf"skipped: .*shards/00002.*{keys[2]!r}")
    with expect if workers == 0 else _printed():
        for unit in loader:
            seen += [unit["key"]] if batch_size is None else unit["key"]
            last = unit
    assert sorted(seen) == sorted(k for k in keys if k != keys[2])  # every other sample, once
    state = stream.state_dict(last)
    assert state["skipped"] == 1 and state["position"] == int(last["position"])
    with pytest.raises(CorruptShardError):
        list(APFStream(broken, length=64, batch_size=batch_size))  # the default still raises


@contextlib.contextmanager
def _printed():
    """Warnings in DataLoader worker processes go to their stderr (pytest.warns cannot see them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("default", SkippedSampleWarning)
        yield
