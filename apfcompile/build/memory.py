"""A writer for data in no layout: arrays made in Python, compiled like any INPUT.

:func:`write_dataset` is apfcompile's analogue of LitData's ``optimize`` and Mosaic's
``MDSWriter``: give it ``(key, image, mask)`` tuples — or a function and the inputs to call it on,
which then runs in the worker processes — and the compile options under the CLI's names. It goes
through the same plan, workers and writer as ``apfcompile compile`` (:func:`.run.compile_items`):
the samples, decisions and warnings are the CLI's, and the bytes are the same for any ``workers``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from formats import Manifest

from ..errors import ParameterError
from ..inputs.layouts import InputItem, LayoutInfo
from ..inputs.locations import Place
from .config import CompileConfig
from .run import compile_items

__all__ = ["write_dataset"]


def _item(name: str, produce: tuple, labelled: bool) -> InputItem:
    return InputItem(
        key=name,
        source=name,
        image=Place.of(f"<{name}>"),
        kind="memory",
        produce=produce,
        labelled=labelled,
    )


def write_dataset(
    source: Iterable[tuple] | Callable[[object], tuple],
    output: str | os.PathLike,
    inputs: Sequence[object] | None = None,
    **options: object,
) -> Manifest:
    """Compile samples made in Python into the dataset ``output``; returns its manifest.

    ``source``: an iterable of ``(key, image)`` or ``(key, image, mask)`` (images H x W or
    H x W x C, or C x H x W by the documented rule; masks H x W integer labels or None), compiled
    in order in this process; or a function of one argument returning such a tuple, called once
    per element of ``inputs`` in the worker processes (``workers=N``; the function must be
    importable by them: defined at module level). ``options``: the CLI's options under their Python
    names (``patch_size=8, length=1024, resolution=512, workers=4, split="train=0.8,val=0.2",
    overwrite=True`` ...). Keys must be unique; a sample whose mask is None in a labelled dataset is
    stored unlabelled (mask rows of the ignore label)."""
    if callable(source):
        if inputs is None:
            raise ParameterError("inputs", "the inputs to call the function on", None)
        inputs = list(inputs)
        if not inputs:
            raise ParameterError("inputs", "at least one input", "none")
        first = _probe(source, inputs[0])
        labelled = first[2] is not None
        items = [_item(str(arg), (source, arg), labelled) for arg in inputs]
        if labelled and options.get("mask_dtype", "auto") == "auto":
            options["mask_dtype"] = "uint8" if np.asarray(first[2]).dtype.itemsize == 1 else "uint16"
    else:
        given = []
        for i, t in enumerate(source):
            if not isinstance(t, tuple) or len(t) not in (2, 3):
                raise ParameterError("source", "(key, image[, mask]) tuples", f"element {i}: {type(t).__name__}")
            given.append((str(t[0]), t[1], t[2] if len(t) == 3 else None))
        if not given:
            raise ParameterError("source", "at least one sample", "none")
        labelled = any(m is not None for _, _, m in given)
        items = [_item(t[0], (None, t), labelled and t[2] is not None) for t in given]
        options.setdefault("workers", 1)  # the arrays are here already: no pool to ship them to
    options.setdefault("workers", os.cpu_count() or 1)
    options.setdefault("layout", "list")
    cfg = CompileConfig.from_options(Place.of("<memory>"), output, **options)
    return compile_items(items, LayoutInfo("memory"), cfg)


def _probe(fn: Callable[[object], tuple], arg: object) -> tuple:
    from ..inputs.frames import produced

    return produced(_item(str(arg), (fn, arg), True))
