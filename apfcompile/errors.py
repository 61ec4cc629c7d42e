"""Errors raised by the compiler.

Every error subclasses :class:`APFError` *and* the builtin that fits (``ValueError``,
``FileNotFoundError``...), so callers can catch either. Messages say what was wrong, what was
expected, what was found and what to do; the CLI prints them as one line, without a traceback.
"""

from __future__ import annotations

__all__ = ["APFError", "InputError", "InputNotFoundError", "ParameterError", "UnreadableInputError"]


class APFError(Exception):
    """Base of every error apfcompile raises on purpose."""


class ParameterError(APFError, ValueError):
    """A parameter is out of range or inconsistent with another one."""

    def __init__(self, name: str, expected: str, found: object, hint: str = "") -> None:
        self.name, self.expected, self.found = name, expected, found
        msg = f"{name}: expected {expected}, found {found!r}"
        super().__init__(f"{msg}; {hint}" if hint else msg)


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
