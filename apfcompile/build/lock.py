"""One compile at a time per OUTPUT: the lock file ``.apf.lock``.

A compile takes the lock before it touches OUTPUT and drops it when it ends, however it ends
(a killed one cannot: see the stale rule). The lock is a small JSON document, ``{"host", "pid",
"started", "process_start"}``, created atomically: written to a private temporary file, then
hard-linked to ``.apf.lock``, which fails when the name exists, so two compiles racing for an
empty OUTPUT cannot both win and nobody ever reads a half-written lock.

**The stale rule.** A lock found in OUTPUT is *stale*, and is removed with one warning, when it
was taken on this host (the same ``socket.gethostname()``) by a process that is no longer
running: no process has its pid, or the process with that pid started at another moment (a pid
reused after a reboot or wrap-round; Linux's ``/proc/PID/stat`` start time). A lock taken on
another host is never presumed stale, since this host cannot see that host's processes: the
error names the host and pid, and the lock file to delete once the user knows that compile is
gone. A lock file that is not a lock (unreadable JSON) is treated as another host's.

On object storage there is no exclusive create: the lock is written when absent and checked the
same way, which keeps out a second compile started by mistake but is not a mutex under a race.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
import warnings

from formats.storage import Location

from ..errors import APFWarning, OutputLockedError

__all__ = ["LOCK_NAME", "OutputLock", "lock_output"]

LOCK_NAME = ".apf.lock"


def _process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or None if unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields restart after the last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def _running(pid: int, start: int | None) -> bool:
    """Whether the process that took a lock (``pid``, started at ``start``) still runs here."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    now = _process_start(pid)
    return start is None or now is None or now == start


def _holder() -> dict:
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "process_start": _process_start(pid),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


class OutputLock:
    """The lock of one OUTPUT, held by this process until :meth:`release` (a context manager)."""

    def __init__(self, loc: Location) -> None:
        self.loc = loc
        self.me = _holder()
        self.held = False

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> OutputLock:
        """Take the lock, removing a stale one (one warning); raise OutputLockedError if held."""
        for _ in range(3):  # a stale lock removed, then a race lost to a third compile: give up
            if self._create():
                self.held = True
                return self
            found = self._read()
            if found == {}:  # gone between our try and our read: try again
                continue
            if not self._stale(found):
                raise self._locked(found)
            warnings.warn(
                f"{self.loc.display(LOCK_NAME)}: removing a stale lock left by pid {found['pid']} on this host "
                f"(taken {found.get('started', '?')}, that process is no longer running)",
                APFWarning,
                stacklevel=3,
            )
            self._remove()
        raise self._locked(self._read())

    def release(self) -> None:
        """Drop the lock if this process holds it (a no-op otherwise)."""
        if self.held and self._read() == self.me:
            self._remove()
        self.held = False

    def _create(self) -> bool:
        data = json.dumps(self.me, sort_keys=True).encode()
        if self.loc.local is None:
            fs, path = self.loc.fs, self.loc.sub(LOCK_NAME)
            if fs.exists(path):
                return False
            fs.pipe_file(path, data)
            return True
        self.loc.local.mkdir(parents=True, exist_ok=True)
        tmp = self.loc.local / f".apf.lock.{uuid.uuid4().hex}"
        tmp.write_bytes(data)
        try:
            os.link(tmp, self.loc.local / LOCK_NAME)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink()

    def _read(self) -> dict | None:
        try:
            found = json.loads(self.loc.read_bytes(LOCK_NAME))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def _stale(self, found: dict | None) -> bool:
        if found is None or found.get("host") != self.me["host"] or not isinstance(found.get("pid"), int):
            return False
        return not _running(found["pid"], found.get("process_start"))

    def _remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.loc.fs.rm(self.loc.sub(LOCK_NAME))

    def _locked(self, found: dict | None) -> OutputLockedError:
        where = self.loc.display(LOCK_NAME)
        if not found:
            return OutputLockedError(
                f"{self.loc.display()}: locked by {where}, which is not a lock apfcompile can read; "
                "if no compile is writing this OUTPUT, delete that file and run again"
            )
        return OutputLockedError(
            f"{self.loc.display()}: another compile (pid {found.get('pid')} on {found.get('host')}, "
            f"since {found.get('started', '?')}) is writing this dataset; wait for it to end, or, "
            f"if it is gone, delete {where} and run again with --resume"
        )


def lock_output(loc: Location) -> OutputLock:
    """Take ``loc``'s lock (see the module docstring); use as ``with lock_output(loc): ...``."""
    return OutputLock(loc).acquire()
