"""The local disk without fsspec: the calls a compile makes answer as fsspec's LocalFileSystem
does, and a local compile (and its workers' imports) never loads fsspec, asyncio or zarr."""

from __future__ import annotations

import copy
import subprocess
import sys
import warnings

import pytest
from fsspec.implementations.local import LocalFileSystem

from apfcompile.demo import sample_path
from formats.storage import _LOCAL_FS, locate


def _tree(root):
    (root / "d" / "e").mkdir(parents=True)
    (root / "d" / "f.bin").write_bytes(b"\x00\x01")
    (root / "g.txt").write_bytes(b"hello")
    return root


def test_local_calls_answer_as_fsspec(tmp_path):
    ours, theirs = _LOCAL_FS, LocalFileSystem()
    root = _tree(tmp_path).as_posix()
    for rel in ("", "d", "d/e", "d/f.bin", "g.txt", "missing"):
        path = f"{root}/{rel}".rstrip("/")
        assert ours.exists(path) == theirs.exists(path), rel
        assert ours.isdir(path) == theirs.isdir(path), rel
        assert ours.isfile(path) == theirs.isfile(path), rel
    assert ours.size(f"{root}/g.txt") == theirs.size(f"{root}/g.txt") == 5
    assert ours.cat_file(f"{root}/d/f.bin") == theirs.cat_file(f"{root}/d/f.bin")
    assert ours.cat_file(f"{root}/g.txt", start=1, end=3) == theirs.cat_file(f"{root}/g.txt", start=1, end=3) == b"el"
    for rel in ("", "d", "g.txt"):
        path = f"{root}/{rel}".rstrip("/")
        assert sorted(ours.ls(path, detail=False)) == sorted(theirs.ls(path, detail=False)), rel
    for fs in (ours, theirs):
        with pytest.raises(FileNotFoundError):
            fs.cat_file(f"{root}/missing")
        with pytest.raises(FileNotFoundError):
            fs.ls(f"{root}/missing", detail=False)
    ours.pipe_file(f"{root}/h.bin", b"abc")
    assert theirs.cat_file(f"{root}/h.bin") == b"abc"
    ours.makedirs(f"{root}/x/y", exist_ok=True)
    ours.makedirs(f"{root}/x/y", exist_ok=True)
    assert theirs.isdir(f"{root}/x/y")
    ours.rm(f"{root}/d", recursive=True)
    ours.rm(f"{root}/h.bin")
    assert not theirs.exists(f"{root}/d") and not theirs.exists(f"{root}/h.bin")
    assert locate(tmp_path).fs.info(f"{root}/g.txt")["size"] == 5  # the rest: fsspec's own
    copied = copy.deepcopy(locate(tmp_path))  # as Dask ships a Location to its workers
    assert copied.fs.isfile(f"{root}/g.txt") and copied.fs.info(f"{root}/g.txt")["size"] == 5


def test_a_local_compile_loads_neither_fsspec_nor_zarr(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name, target in (("ct_abdomen.nii.gz", "ct.nii.gz"), ("ct_abdomen_seg.nii.gz", "ct_mask.nii.gz")):
        (src / target).write_bytes(sample_path(name).read_bytes())
    script = (
        "import sys\n"
        "from apfcompile.build.executors import WORKER_MODULES\n"
        "from apfcompile.cli import main\n"
        "try:\n"
        f"    main(['compile', {str(src)!r}, {str(tmp_path / 'out')!r}, '-j', '1', '-L', '256'])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "for m in WORKER_MODULES:\n"
        "    __import__(m)\n"
        "print(sorted(m for m in ('fsspec', 'asyncio', 'zarr') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, encoding="utf-8")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_parquet_reads_run_on_one_thread(tmp_path, monkeypatch):
    """pyarrow's pool threads used to release a Parquet read's Python buffer after the read had
    returned; one doing so while the interpreter exited aborted the process ("terminate called
    without an active exception", exit -6) in a third to half of small compiles run as a script,
    after the dataset was written (seen with gdb: ``arrow::py::PyBuffer::~PyBuffer`` taking the GIL
    during finalisation). Every Parquet read of the reader and the loader runs on one thread."""
    import pyarrow.parquet as pq

    from apfcompile import CompileConfig, compile_dataset
    from formats import open_dataset
    from loaders import APFDataset

    seen = []
    for name in ("read", "read_row_group"):
        real = getattr(pq.ParquetFile, name)

        def spy(self, *args, _real=real, **kwargs):
            seen.append(kwargs.get("use_threads", True))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(pq.ParquetFile, name, spy)
    src = tmp_path / "in"
    src.mkdir()
    for name, target in (("ct_abdomen.nii.gz", "ct.nii.gz"), ("ct_abdomen_seg.nii.gz", "ct_mask.nii.gz")):
        (src / target).write_bytes(sample_path(name).read_bytes())
    with warnings.catch_warnings():  # CT by rule, no adaptivity at this size: not what is tested
        warnings.simplefilter("ignore")
        compile_dataset(CompileConfig.from_options(src, tmp_path / "out", length=256, workers=1))
    ds = open_dataset(tmp_path / "out")
    ds.read_sample(0)
    APFDataset(tmp_path / "out", length=256)[3]
    assert seen and not any(seen)
