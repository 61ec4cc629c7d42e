"""NIfTI-1/2 volumes through nibabel."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def read(path: Path) -> np.ndarray:
    """The voxel array in its stored dtype and axis order (scaling slopes ignored for ints)."""
    img = nib.load(path)
    return np.asarray(img.dataobj)
