"""apfcompile: compile high-resolution images into adaptive patch sequences, once.

The package is in layers (see docs/code.md): :mod:`apfcompile.core` (one canvas -> one
sequence; numpy/OpenCV, no torch), :mod:`apfcompile.inputs` (places, readers, layouts, frames,
region sources) and :mod:`apfcompile.build` (options, plan, workers, output), with the CLI, report,
preview and demo on top. The names below are the public API; each is imported on first use, so
``import apfcompile`` (and ``apfcompile --help``) costs almost nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "APFError": "errors",
    "APFWarning": "errors",
    "CompileError": "errors",
    "InputError": "errors",
    "InputNotFoundError": "errors",
    "OutputError": "errors",
    "OutputExistsError": "errors",
    "ParameterError": "errors",
    "UnreadableInputError": "errors",
    "EdgeParams": "core.edges",
    "edge_count_grid": "core.edges",
    "edge_map": "core.edges",
    "ForestParams": "core.forest",
    "Leaves": "core.forest",
    "build_forest": "core.forest",
    "PatchParams": "core.patchify",
    "PatchedSample": "core.patchify",
    "patchify": "core.patchify",
    "ceiling_dice": "core.reconstruct",
    "dice": "core.reconstruct",
    "dice_per_class": "core.reconstruct",
    "reconstruct": "core.reconstruct",
    "FixedSequence": "core.sequence",
    "fit_length": "core.sequence",
    "select_leaves": "core.sequence",
    "serialise_image": "core.patches",
    "serialise_mask": "core.patches",
    "Place": "inputs.locations",
    "read_array": "inputs.readers",
    "CompileConfig": "build.config",
    "DataConfig": "build.config",
    "RunConfig": "build.config",
    "compile_dataset": "build.run",
    "write_dataset": "build.memory",
    "original_on_canvas": "originals",
    "original_sample": "originals",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'apfcompile' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .build.config import CompileConfig, DataConfig, RunConfig
    from .build.memory import write_dataset
    from .build.run import compile_dataset
    from .core.edges import EdgeParams, edge_count_grid, edge_map
    from .core.forest import ForestParams, Leaves, build_forest
    from .core.patches import serialise_image, serialise_mask
    from .core.patchify import PatchedSample, PatchParams, patchify
    from .core.reconstruct import ceiling_dice, dice, dice_per_class, reconstruct
    from .core.sequence import FixedSequence, fit_length, select_leaves
    from .errors import (
        APFError,
        APFWarning,
        CompileError,
        InputError,
        InputNotFoundError,
        OutputError,
        OutputExistsError,
        ParameterError,
        UnreadableInputError,
    )
    from .inputs.locations import Place
    from .inputs.readers import read_array
    from .originals import original_on_canvas, original_sample
