"""Scratch folders a compile owns: named after its process, removed when it ends, and removed by
a later compile if it was killed first.

A compile keeps two kinds of scratch: decompressed copies of gzipped volumes in the system's
temporary folder (:mod:`apfcompile.inputs.inflate`) and its pool workers' results in shared
memory (:mod:`apfcompile.build.transfer`). Both go when the compile ends, failures included; a
compile killed outright (SIGKILL, the out-of-memory killer) cannot remove them, and what it left
stays taken: on a tmpfs such as ``/dev/shm``, memory, until the machine restarts. So each
folder's name carries its process id (``PREFIX<pid>-<random>``), and :func:`owned_folder`
first removes this user's folders of the same prefix whose process no longer runs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["owned_folder", "remove_orphans"]


def owned_folder(parent: str | os.PathLike | None, prefix: str) -> str:
    """A new folder ``PARENT/PREFIX<this pid>-<random>`` (``parent`` None: the system's temporary
    folder), made after :func:`remove_orphans`; raises ``OSError`` where it cannot be made."""
    parent = tempfile.gettempdir() if parent is None else os.fspath(parent)
    remove_orphans(parent, prefix)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent)


def remove_orphans(parent: str | os.PathLike, prefix: str) -> None:
    """Remove the folders ``PARENT/PREFIX<pid>-*`` of this user whose process ``pid`` is gone;
    those of live processes, of other users and of other names are left alone."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        pid = entry.name[len(prefix) :].split("-", 1)[0]
        try:
            if not pid.isdigit() or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:  # its compile is gone
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(Path(entry.path), ignore_errors=True)
        except OSError:  # alive under another user, or unreadable: not ours to judge
            continue
