"""NumPy ``.npy`` / ``.npz`` files, never unpickled."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np

from .limits import check_pixels


def _check_headers(source: Path | BinaryIO) -> None:
    """The pixel guard on every array in the file, from the ``.npy`` headers alone (an axis of at
    most 4 at the end of a 3-D or larger array counts as channels)."""
    from .stacks import array_infos

    if isinstance(source, Path):
        with open(source, "rb") as f:
            magic = f.read(4)
    else:
        magic = source.read(4)
        source.seek(0)
    suffix = ".npz" if magic.startswith(b"PK") else ".npy"
    for shape, dtype in array_infos(source, suffix).values():
        last_is_channels = len(shape) >= 3 and shape[-1] <= 4
        spatial, channels = (shape[:-1], shape[-1]) if last_is_channels else (shape, 1)
        check_pixels(spatial, dtype.itemsize * channels)
    if not isinstance(source, Path):
        source.seek(0)


def read(source: Path | BinaryIO) -> np.ndarray:
    """The array; for ``.npz`` the member ``image`` (or ``arr_0``, or the only member)."""
    _check_headers(source)
    loaded = np.load(source, allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        names = list(loaded.files)
        for name in ("image", "arr_0"):
            if name in names:
                return loaded[name]
        if len(names) == 1:
            return loaded[names[0]]
        raise ValueError(f"holds {names}; expected a member named 'image' or a single array")
