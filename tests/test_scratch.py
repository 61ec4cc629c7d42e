"""Scratch folders named after their process: a killed compile's are removed by the next one."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from apfcompile.inputs.inflate import Inflater
from apfcompile.scratch import orphaned, owned_folder, owner


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_new_folder_removes_the_orphans_of_its_kind_only(tmp_path):
    """Removed: a folder of a dead process of this namespace. Kept: a live process's, another
    kind's, one without a process id, a plain file, and a dead process id of another process-id
    namespace (another container sharing the folder: not ours to judge)."""
    dead = _dead_pid()
    namespace = owner().split("-")[0]
    orphan = tmp_path / f"apf-x-{owner(dead)}-abc"
    live = tmp_path / f"apf-x-{owner(os.getppid())}-def"
    other_kind = tmp_path / f"apf-y-{owner(dead)}-abc"
    no_pid = tmp_path / "apf-x-nopid"
    other_namespace = tmp_path / f"apf-x-{int(namespace) + 1}-{dead}-abc"
    for folder in (orphan, live, other_kind, no_pid, other_namespace):
        folder.mkdir()
        (folder / "left").write_bytes(b"x" * 100)
    a_file = tmp_path / f"apf-x-{owner(dead)}-file"
    a_file.write_bytes(b"not a folder")
    assert orphaned(tmp_path, "apf-x-") == [orphan]
    made = owned_folder(tmp_path, "apf-x-")
    assert os.path.basename(made).startswith(f"apf-x-{owner()}-") and os.path.isdir(made)
    assert not orphan.exists()
    assert all(p.exists() for p in (live, other_kind, no_pid, other_namespace, a_file))


def test_the_shared_decompression_removes_what_a_killed_compile_left(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    orphan = tmp_path / f"apfcompile-inflate-{owner(_dead_pid())}-abc"
    orphan.mkdir()
    (orphan / "0.raw").write_bytes(b"half a volume")
    with Inflater([]) as shared:
        assert shared.folder.parent == tmp_path and not orphan.exists()
    assert not shared.folder.exists()
