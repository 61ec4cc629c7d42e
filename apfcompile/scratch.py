"""Scratch folders a compile owns: named after its process, removed when it ends, and removed by
a later compile if it was killed first.

A compile keeps two kinds of scratch: decompressed copies of gzipped volumes in the system's
temporary folder (:mod:`apfcompile.inputs.inflate`) and its pool workers' results in shared
memory (:mod:`apfcompile.build.transfer`). Both go when the compile ends, failures included; a
compile killed outright (SIGKILL, the out-of-memory killer) cannot remove them, and what it left
stays taken: on a tmpfs such as ``/dev/shm``, memory, until the machine restarts. So each
folder's name says whose it is, ``PREFIX<namespace>-<pid>-<random>``, and :func:`owned_folder`
first removes this user's folders of the same prefix whose process no longer runs.

``namespace`` is the process-id namespace (Linux: the inode of ``/proc/self/ns/pid``; 0 where
there is none): containers that share ``/tmp`` or ``/dev/shm`` (``docker --ipc=host``, as PyTorch
training containers often run) each number their processes afresh, so a folder is judged only
by a compile that sees the same process ids; the others' are left alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["orphaned", "owned_folder", "owner", "remove_orphans"]


def owner(pid: int | None = None) -> str:
    """``<namespace>-<pid>`` of this process (or of ``pid`` in this process's namespace)."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{namespace}-{os.getpid() if pid is None else pid}"


def owned_folder(parent: str | os.PathLike | None, prefix: str) -> str:
    """A new folder ``PARENT/PREFIX<owner>-<random>`` (``parent`` None: the system's temporary
    folder), made after :func:`remove_orphans`; raises ``OSError`` where it cannot be made."""
    parent = tempfile.gettempdir() if parent is None else os.fspath(parent)
    remove_orphans(parent, prefix)
    return tempfile.mkdtemp(prefix=f"{prefix}{owner()}-", dir=parent)


def orphaned(parent: str | os.PathLike, prefix: str) -> list[Path]:
    """The folders ``PARENT/PREFIX<namespace>-<pid>-*`` of this user and this process-id
    namespace whose process ``pid`` is gone (those of live processes, other users, other
    namespaces and other names are not)."""
    if os.name != "posix":  # os.kill(pid, 0) is a liveness test on POSIX only (on Windows, Ctrl+C)
        return []
    here = owner().split("-")[0]
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    gone = []
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        namespace, _, rest = entry.name[len(prefix) :].partition("-")
        pid = rest.partition("-")[0]
        try:
            if namespace != here or not pid.isdigit() or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:  # its compile is gone
            gone.append(Path(entry.path))
        except OSError:  # alive under another user, or unreadable: not ours to judge
            continue
    return gone


def remove_orphans(parent: str | os.PathLike, prefix: str) -> None:
    """Remove :func:`orphaned` folders, with what is in them."""
    for folder in orphaned(parent, prefix):
        shutil.rmtree(folder, ignore_errors=True)
