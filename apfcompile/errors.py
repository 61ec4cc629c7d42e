"""Every error the compiler raises on purpose, in one module.

Every error subclasses :class:`APFError` *and* the builtin that fits (``ValueError``,
``FileNotFoundError``...), so callers can catch either. Messages say what was wrong, what was
expected, what was found and what to do. Library messages name parameters as the Python API
spells them (``patch_size``); the CLI turns a :class:`ParameterError`'s ``name`` into its flag
(``--patch-size``) in one place, and prints every error as one line, without a traceback.
Errors about reading a compiled dataset are the format's own (:mod:`formats.errors`).
"""

from __future__ import annotations

__all__ = [
    "APFError",
    "APFWarning",
    "CompileError",
    "InputError",
    "InputNotFoundError",
    "OutputError",
    "OutputExistsError",
    "OutputFullError",
    "OutputLockedError",
    "ParameterError",
    "UnreadableInputError",
]


class APFError(Exception):
    """Base of every error apfcompile raises on purpose."""


class APFWarning(UserWarning):
    """A decision apfcompile took on the user's data without being told (the CLI prints each as one
    ``apfcompile: warning:`` line; the dataset records it)."""


class ParameterError(APFError, ValueError):
    """A parameter is out of range or inconsistent with another one.

    ``name``: the parameter as the Python API spells it (``patch_size``; ``resume/overwrite`` for a
    pair); the CLI shows the matching flag instead."""

    def __init__(self, name: str, expected: str, found: object, hint: str = "") -> None:
        self.name, self.expected, self.found, self.hint = name, expected, found, hint
        super().__init__(self.message(name))

    def message(self, name: str) -> str:
        """The message with the parameter called ``name`` (the CLI passes the flag)."""
        msg = f"{name}: expected {self.expected}, found {self.found!r}"
        return f"{msg}; {self.hint}" if self.hint else msg


class InputError(APFError, ValueError):
    """An input file exists but its content cannot be used (bad shape, dtype, values)."""

    def __init__(self, path: object, problem: str, hint: str = "") -> None:
        self.path, self.problem = path, problem
        msg = f"{path}: {problem}"
        super().__init__(f"{msg}; {hint}" if hint else msg)


class UnreadableInputError(InputError):
    """An input file is not an image of a known kind, is empty or is truncated."""


class InputNotFoundError(APFError, FileNotFoundError):
    """An input path does not exist."""

    def __init__(self, path: object, hint: str = "check the path") -> None:
        self.path = path
        super().__init__(f"{path}: no such file or folder; {hint}")


class OutputError(APFError, OSError):
    """The output location cannot be used (missing bucket, no access, not a folder...)."""


class OutputExistsError(OutputError, FileExistsError):
    """The output already holds something and neither overwrite nor resume was asked for."""


class OutputLockedError(OutputError):
    """Another compile holds the output's lock (``.apf.lock``; see :mod:`apfcompile.build.lock`)."""


class OutputFullError(OutputError):
    """Writing the output failed for want of space (``ENOSPC``, ``EDQUOT``); finished shards are kept."""


class CompileError(APFError, RuntimeError):
    """An input failed with ``on_error="fail"``; the shards committed so far are kept."""
