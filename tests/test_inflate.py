"""One decompression of a gzipped volume shared by its parts: the same bytes, or the file's own error."""

from __future__ import annotations

import gzip
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from apfcompile.demo import sample_path
from apfcompile.inputs import inflate
from apfcompile.inputs.inflate import Inflater, wait_until
from apfcompile.inputs.readers import nifti


def _gz(tmp_path: Path) -> Path:
    path = tmp_path / "ct.nii.gz"
    shutil.copyfile(sample_path("ct_abdomen.nii.gz"), path)
    return path


def _wait_done(plain: Path) -> None:
    assert wait_until(plain, 1 << 62) is False  # returns once the writer is done (never that long)


def test_inflated_bytes_are_the_gz_contents_and_the_folder_goes(tmp_path, monkeypatch):
    monkeypatch.setattr(inflate, "CHUNK", 4096)  # many chunks
    src = _gz(tmp_path)
    with Inflater([src, src]) as shared:
        assert list(shared.plain) == [str(src)]
        plain = Path(shared.plain[str(src)])
        _wait_done(plain)
        assert plain.read_bytes() == gzip.decompress(src.read_bytes())
        assert plain.with_name(plain.name + ".done").exists()
        folder = shared.folder
    assert not folder.exists()


def test_a_truncated_gz_is_marked_failed_and_its_readers_meet_its_own_error(tmp_path):
    src = _gz(tmp_path)
    src.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    with Inflater([src]) as shared:
        plain = Path(shared.plain[str(src)])
        _wait_done(plain)
        assert plain.with_name(plain.name + ".failed").exists()
        with pytest.raises(Exception) as shared_error:
            list(nifti.slice_blocks(src, None, 4, plain))
    with pytest.raises(Exception) as own_error:
        list(nifti.slice_blocks(src, None, 4))
    assert type(shared_error.value) is type(own_error.value) and str(shared_error.value) == str(own_error.value)


def test_a_reader_waits_for_its_bytes_and_falls_back_where_the_writer_stopped(tmp_path):
    """Blocks read from a file still being written (a writer thread appending slowly) are the
    slices ``read`` gives; where the writer stops half way and says so, the rest comes from the .gz."""
    src = _gz(tmp_path)
    data = gzip.decompress(src.read_bytes())
    expected = nifti.read(src, (3, 27))
    for stop_at in (None, len(data) // 2):
        plain = tmp_path / f"plain-{stop_at}.raw"
        plain.write_bytes(b"")

        def writer(plain=plain, stop_at=stop_at):
            end = len(data) if stop_at is None else stop_at
            with open(plain, "ab", buffering=0) as out:
                for a in range(0, end, 50_000):
                    out.write(data[a : min(a + 50_000, end)])
                    time.sleep(0.002)
            plain.with_name(plain.name + (".done" if stop_at is None else ".failed")).touch()

        thread = threading.Thread(target=writer)
        thread.start()
        got = np.concatenate(list(nifti.slice_blocks(src, (3, 27), 5, plain)), axis=2)
        thread.join()
        np.testing.assert_array_equal(got, expected)


def test_a_copy_not_started_yet_is_not_waited_for_the_gz_is_read(tmp_path):
    """A part whose volume the shared decompression has not reached (it takes its files in
    order, a few at a time, and more volumes are in work) reads the .gz itself at once: no error,
    no wait. Failed before the fix: FileNotFoundError for the copy (seen with -j 8 on 8 volumes)."""
    src = _gz(tmp_path)
    got = np.concatenate(list(nifti.slice_blocks(src, (3, 27), 5, tmp_path / "not-yet.raw")), axis=2)
    np.testing.assert_array_equal(got, nifti.read(src, (3, 27)))


def test_wait_until_answers_for_done_short_and_failed_files(tmp_path):
    plain = tmp_path / "x.raw"
    plain.write_bytes(b"abc")
    assert wait_until(plain, 3)
    (tmp_path / "x.raw.done").touch()
    assert not wait_until(plain, 4)  # finished short: never
    other = tmp_path / "y.raw"
    other.write_bytes(b"a")
    (tmp_path / "y.raw.failed").touch()
    assert not wait_until(other, 2)


def test_without_a_writable_temporary_folder_the_parts_read_the_gz_themselves(tmp_path, monkeypatch):
    """No temporary folder to decompress into: the compile neither fails nor changes a byte."""
    from apfcompile import CompileConfig, compile_dataset

    from . import builders

    src = tmp_path / "in"
    src.mkdir()
    shutil.copyfile(sample_path("ct_abdomen.nii.gz"), src / "ct.nii.gz")
    shutil.copyfile(sample_path("ct_abdomen_seg.nii.gz"), src / "ct_mask.nii.gz")
    kw = dict(modality="ct", length=48, shard_samples=7)
    compile_dataset(CompileConfig.from_options(src, tmp_path / "one", workers=1, **kw))

    def no_folder(parent, prefix):  # the compile's scratch folders only (the pool needs tempfile)
        raise PermissionError(13, "Permission denied", "/tmp")

    monkeypatch.setattr(inflate, "owned_folder", no_folder)
    compile_dataset(CompileConfig.from_options(src, tmp_path / "two", workers=2, **kw))
    assert builders.tree_bytes(tmp_path / "two") == builders.tree_bytes(tmp_path / "one")


def test_a_released_copy_is_gone_and_the_others_stay(tmp_path):
    a = _gz(tmp_path)
    b = tmp_path / "labels.nii.gz"
    shutil.copyfile(sample_path("ct_abdomen_seg.nii.gz"), b)
    with Inflater([a, b]) as shared:
        pa, pb = Path(shared.plain[str(a)]), Path(shared.plain[str(b)])
        _wait_done(pa)
        _wait_done(pb)
        shared.release([a])
        assert not pa.exists() and not pa.with_name(pa.name + ".done").exists()
        assert pb.read_bytes() == gzip.decompress(b.read_bytes())


def test_volumes_waiting_for_their_shared_copy_compile_the_bytes_of_one_process(tmp_path, monkeypatch):
    """Four volumes cut into parts for four workers, the shared decompression held back until the
    parts have started (as when it is busy with the volumes before): every part reads its .gz
    itself and the dataset is the one -j 1 writes."""
    from apfcompile import CompileConfig, compile_dataset

    from . import builders

    src = tmp_path / "in"
    src.mkdir()
    for name in "abcd":
        shutil.copyfile(sample_path("ct_abdomen.nii.gz"), src / f"{name}.nii.gz")
        shutil.copyfile(sample_path("ct_abdomen_seg.nii.gz"), src / f"{name}_mask.nii.gz")
    kw = dict(modality="ct", length=48, shard_samples=7)
    compile_dataset(CompileConfig.from_options(src, tmp_path / "one", workers=1, **kw))
    started = []
    monkeypatch.setattr(Inflater, "start", lambda self: started.append(self))  # never decompresses
    compile_dataset(CompileConfig.from_options(src, tmp_path / "four", workers=4, **kw))
    assert started  # the volumes were cut into parts and given copies that never came
    assert builders.tree_bytes(tmp_path / "four") == builders.tree_bytes(tmp_path / "one")


def test_a_compile_releases_each_volumes_copies_once_its_parts_are_done(tmp_path, monkeypatch):
    """Two volumes cut into parts: each one's copies are released when its last part is in (the
    temporary folder holds only the volumes in work), before the compile ends."""
    from apfcompile import CompileConfig, compile_dataset

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        shutil.copyfile(sample_path("ct_abdomen.nii.gz"), src / f"{name}.nii.gz")
        shutil.copyfile(sample_path("ct_abdomen_seg.nii.gz"), src / f"{name}_mask.nii.gz")
    released = []
    real = Inflater.release

    def spy(self, sources):
        released.append(sorted(p.name for p in sources))
        assert self.folder.exists()
        real(self, sources)

    monkeypatch.setattr(Inflater, "release", spy)
    compile_dataset(CompileConfig.from_options(src, tmp_path / "ds", workers=2, modality="ct", length=48))
    assert released == [["a.nii.gz", "a_mask.nii.gz"], ["b.nii.gz", "b_mask.nii.gz"]]
