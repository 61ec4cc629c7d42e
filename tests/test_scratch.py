"""Scratch folders named after their process: a killed compile's are removed by the next one."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from apfcompile.inputs.inflate import Inflater
from apfcompile.scratch import owned_folder


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_new_folder_removes_the_orphans_of_its_kind_only(tmp_path):
    dead = _dead_pid()
    orphan = tmp_path / f"apf-x-{dead}-abc"
    live = tmp_path / f"apf-x-{os.getppid()}-def"
    other_kind = tmp_path / f"apf-y-{dead}-abc"
    no_pid = tmp_path / "apf-x-nopid"
    for folder in (orphan, live, other_kind, no_pid):
        folder.mkdir()
        (folder / "left").write_bytes(b"x" * 100)
    a_file = tmp_path / f"apf-x-{dead}-file"
    a_file.write_bytes(b"not a folder")
    made = owned_folder(tmp_path, "apf-x-")
    assert os.path.basename(made).startswith(f"apf-x-{os.getpid()}-") and os.path.isdir(made)
    assert not orphan.exists()
    assert live.exists() and other_kind.exists() and no_pid.exists() and a_file.exists()


def test_the_shared_decompression_removes_what_a_killed_compile_left(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    orphan = tmp_path / f"apfcompile-inflate-{_dead_pid()}-abc"
    orphan.mkdir()
    (orphan / "0.raw").write_bytes(b"half a volume")
    with Inflater([]) as shared:
        assert shared.folder.parent == tmp_path and not orphan.exists()
    assert not shared.folder.exists()
