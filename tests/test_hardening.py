"""Hardening: killed at any moment, a full disk, two writers, readers during a rewrite.

Every case ends the same way: a later ``--resume`` gives the bytes of an uninterrupted compile,
and a reader never opens a half-written or mixed dataset.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from apfcompile.errors import OutputFullError, OutputLockedError
from formats import open_dataset

from . import builders


@pytest.fixture(scope="module")
def btcv(tmp_path_factory):
    """Two real CT cases (BTCV layout) and their uninterrupted compile: 60 samples in 8 shards."""
    root = tmp_path_factory.mktemp("hard")
    src = builders.btcv(root / "btcv", cases=2)
    builders.compile_to(src, root / "whole", length=48, shard_samples=8)
    return src, root


def _all_samples(path) -> dict[str, bytes]:
    ds = open_dataset(path)
    return {k: ds.read_sample(k).image.tobytes() for k in ds.samples["key"].to_pylist()}


# -- two writers -----------------------------------------------------------------------------------


def _lock(out: Path, **fields) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc = {"host": socket.gethostname(), "pid": os.getpid(), "started": "2026-11-30T00:00:00+0000"}
    from apfcompile.build.lock import _process_start

    doc["process_start"] = _process_start(os.getpid())
    doc.update(fields)
    (out / ".apf.lock").write_text(json.dumps(doc))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_second_compile_into_a_held_output_refuses_naming_host_and_pid(btcv, tmp_path):
    src, _ = btcv
    out = tmp_path / "ds"
    _lock(out)  # held by this (running) process
    with pytest.raises(OutputLockedError, match=rf"pid {os.getpid()} on {socket.gethostname()}"):
        builders.compile_to(src, out, length=48, shard_samples=8)
    assert sorted(p.name for p in out.iterdir()) == [".apf.lock"]  # nothing written, lock kept


@pytest.mark.parametrize(
    "fields, stale",
    [
        ({"pid": "dead"}, True),  # this host, no such process
        ({"process_start": -1}, True),  # this host, the pid now belongs to a later process
        ({"host": "another-node"}, False),  # another host: never presumed stale
    ],
)
def test_the_stale_lock_rule(btcv, tmp_path, fields, stale):
    src, root = btcv
    out = tmp_path / "ds"
    if fields.get("pid") == "dead":
        fields = {"pid": _dead_pid(), "process_start": None}
    _lock(out, **fields)
    if not stale:
        with pytest.raises(OutputLockedError, match="another-node.*delete .*apf.lock"):
            builders.compile_to(src, out, length=48, shard_samples=8)
        return
    with pytest.warns(UserWarning, match="removing a stale lock left by pid"):
        builders.compile_to(src, out, length=48, shard_samples=8, resume=True)
    assert not (out / ".apf.lock").exists()
    assert builders.tree_bytes(out) == builders.tree_bytes(root / "whole")


def test_a_lock_that_is_not_a_lock_refuses(btcv, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / ".apf.lock").write_bytes(b"\x00garbage")
    with pytest.raises(OutputLockedError, match="not a lock apfcompile can read; if no compile"):
        builders.compile_to(btcv[0], out, length=48, shard_samples=8)


def test_the_cli_says_locked_in_one_line(btcv, tmp_path):
    out = tmp_path / "ds"
    _lock(out, host="gpu-node-7", pid=4242)
    run = subprocess.run(
        ["apfcompile", "compile", str(btcv[0]), str(out), "--length", "48", "--resume"], capture_output=True, text=True
    )
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("apfcompile: error: ") and "pid 4242 on gpu-node-7" in run.stderr


@pytest.mark.parametrize("how", ["overwrite", "resume"])
def test_readers_see_the_old_dataset_until_the_new_manifest_lands(btcv, tmp_path, monkeypatch, how):
    """Rewriting a dataset with other options (``--overwrite``, or ``--resume`` whose fingerprint
    differs): up to the moment the new manifest lands, the old one opens, verifies and reads the
    same bytes; afterwards the new one does, and the old shards are gone."""
    import formats.writer as writer

    src, root = btcv
    out = tmp_path / "ds"
    shutil.copytree(root / "whole", out)
    before = _all_samples(out)
    real, seen = writer.write_manifest, []

    def check_then_write(dataset, manifest, *a, **kw):
        ds = open_dataset(out)
        assert ds.verify() == [] and _all_samples(out) == before  # the old dataset, whole
        assert {s.path for s in manifest.shards}.isdisjoint(s.path for s in ds.manifest.shards)
        seen.append(True)
        return real(dataset, manifest, *a, **kw)

    monkeypatch.setattr(writer, "write_manifest", check_then_write)
    builders.compile_to(src, out, length=40, shard_samples=8, **{how: True})
    assert seen
    ds = open_dataset(out)
    assert ds.verify() == [] and ds.manifest.parameters["length"] == 40
    assert sorted(p.name for p in (out / "shards").iterdir()) == [f"{k:05d}.1" for k in range(8)]
    # and the next rewrite goes back to the plain names, again beside the live ones
    monkeypatch.setattr(writer, "write_manifest", real)
    builders.compile_to(src, out, length=48, shard_samples=8, overwrite=True)
    assert builders.tree_bytes(out) == builders.tree_bytes(root / "whole")


# -- out of space ----------------------------------------------------------------------------------


class _DiskFull:
    """``formats.writer.put_file`` that raises ENOSPC at its ``n``-th call (counting from 1)."""

    def __init__(self, real, n: int) -> None:
        self.real, self.n, self.calls = real, n, 0

    def __call__(self, path, data):
        self.calls += 1
        if self.calls == self.n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return self.real(path, data)


def test_a_full_disk_at_every_write_of_a_compile(btcv, tmp_path, monkeypatch):
    """ENOSPC at the N-th file written, for every N of a small compile (four shards): one error
    saying so and where; no shard a reader would open is half-written; ``resume`` finishes."""
    import formats.writer as writer

    src = btcv[0]
    opts = dict(length=48, shard_samples=16)
    builders.compile_to(src, tmp_path / "whole", **opts)
    real = writer.put_file
    counter = _DiskFull(real, 0)
    monkeypatch.setattr(writer, "put_file", counter)
    builders.compile_to(src, tmp_path / "count", **opts)
    total = counter.calls
    assert total >= 4 * 8  # seven data files and shard.json per shard, the manifest, the stats
    for n in range(1, total + 1):
        out = tmp_path / f"full{n}"
        monkeypatch.setattr(writer, "put_file", _DiskFull(real, n))
        with pytest.raises(OutputFullError, match=r"no space left on device; free some space .* --resume") as err:
            builders.compile_to(src, out, **opts)
        assert str(out) in str(err.value)
        if (out / "apf.json").exists():  # only the run facts were left to write
            assert open_dataset(out).verify() == []
        else:
            with pytest.raises(Exception, match="no apfcompile dataset"):
                open_dataset(out)
        assert not (out / ".apf.lock").exists()
        monkeypatch.setattr(writer, "put_file", real)
        builders.compile_to(src, out, resume=True, **opts)
        assert builders.tree_bytes(out) == builders.tree_bytes(tmp_path / "whole"), n


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]).returncode == 0


def test_a_real_full_disk_then_room_again(btcv, tmp_path):
    """A real small tmpfs (where this machine lets the test mount one): the CLI says the disk is
    full in one line; with room again, ``--resume`` finishes the same bytes."""
    src, root = btcv
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "400k"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    try:
        out = disk / "ds"
        cmd = ["apfcompile", "compile", str(src), str(out), "--length", "48", "--shard-samples", "8"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
        assert "no space left on device" in run.stderr and str(out) in run.stderr
        assert not (out / "apf.json").exists() and not (out / ".apf.lock").exists()
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        subprocess.run([*cmd, "--resume"], check=True, capture_output=True)
        assert builders.tree_bytes(out) == builders.tree_bytes(root / "whole")
    finally:
        subprocess.run(["umount", "-l", str(disk)])


# -- killed at any moment --------------------------------------------------------------------------


def kill_and_resume(cmd: list[str], delay: float, probe=None) -> bool:
    """Run ``cmd`` (a compile) in its own process group, SIGKILL the whole group after ``delay``
    seconds (if still running), call ``probe()`` (to look at what was left), then run ``cmd``
    again with ``--resume``. True if the resume succeeded (whether the kill landed or not)."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if probe is not None:
        probe()
    return subprocess.run([*cmd, "--resume"], capture_output=True).returncode == 0


@pytest.mark.parametrize("workers", ["-j2", "--scheduler=local:2"])
def test_killed_at_random_moments_then_resumed_gives_the_same_bytes(btcv, tmp_path, workers):
    """SIGKILL to the whole process group (workers included) at seeded random moments of a CLI
    compile (reading, writing a shard, writing the manifest), then ``--resume``: byte-identical to
    the uninterrupted compile every time. ``benchmarks/bench_kills.py`` runs fifty."""
    if workers.startswith("--scheduler"):
        pytest.importorskip("distributed")
    src, root = btcv
    out = tmp_path / "ds"
    cmd = ["apfcompile", "compile", str(src), str(out), "--length", "48", "--shard-samples", "8", workers]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    whole = time.perf_counter() - started
    assert builders.tree_bytes(out) == builders.tree_bytes(root / "whole")
    rng = np.random.default_rng(16)
    for delay in rng.uniform(0.3, whole, 2):
        shutil.rmtree(out)
        assert kill_and_resume(cmd, float(delay)), delay
        assert builders.tree_bytes(out) == builders.tree_bytes(root / "whole"), delay
        assert not (out / ".apf.lock").exists()
        assert _orphaned_result_folders() == [], delay  # the killed compile's, removed by the resume


def _orphaned_result_folders() -> list[str]:
    """The shared-memory result folders (:mod:`apfcompile.build.transfer`) of compiles whose
    process is gone."""
    from apfcompile.build import transfer
    from apfcompile.scratch import orphaned

    return [p.name for p in orphaned(transfer.SHARED_MEMORY, "apf-results-")]


# -- nobody where they don't belong ----------------------------------------------------------------


def test_symlinks_out_of_input_are_not_followed_unless_asked(tmp_path):
    """A link under INPUT to a file or a folder outside it is left out with one warning (and a
    broken link too); ``follow_symlinks`` compiles what they point to; links inside INPUT are fine."""
    src = builders.nuclei_folder(tmp_path / "in", copies=1)
    outside = builders.nuclei_folder(tmp_path / "elsewhere", copies=2)
    (src / "linked-file.tif").symlink_to(outside / "n0.tif")
    (src / "linked-file_mask.tif").symlink_to(outside / "n0_mask.tif")
    (src / "linked-folder").symlink_to(outside, target_is_directory=True)
    (src / "broken.tif").symlink_to(tmp_path / "gone.tif")
    (src / "alias-inside.tif").symlink_to(src / "n0.tif")
    (src / "alias-inside_mask.tif").symlink_to(src / "n0_mask.tif")
    with pytest.warns(UserWarning) as caught:
        plain = builders.compile_to(src, tmp_path / "plain", length=48)
    said = [str(w.message) for w in caught]
    assert any("left out 3 symbolic link(s) pointing outside INPUT" in m and "--follow-symlinks" in m for m in said)
    assert any("left out 1 broken symbolic link(s)" in m for m in said), said
    with pytest.warns(UserWarning, match="broken symbolic link"):
        followed = builders.compile_to(src, tmp_path / "followed", length=48, follow_symlinks=True)
    sources = open_dataset(tmp_path / "plain").samples["source"].to_pylist()
    assert not any("linked" in s for s in sources) and any("alias-inside" in s for s in sources)
    more = open_dataset(tmp_path / "followed").samples["source"].to_pylist()
    assert any("linked-file" in s for s in more) and any("linked-folder" in s for s in more)
    assert followed.totals["samples"] > plain.totals["samples"]
