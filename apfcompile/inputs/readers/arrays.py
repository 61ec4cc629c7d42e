"""NumPy ``.npy`` / ``.npz`` files, never unpickled."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np


def read(source: Path | BinaryIO) -> np.ndarray:
    """The array; for ``.npz`` the member ``image`` (or ``arr_0``, or the only member)."""
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
