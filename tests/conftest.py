"""Shared fixtures: real images from the bundled samples and, when present, ../shared/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apfcompile.demo import sample_path
from apfcompile.inputs.readers import read_array

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared(relative: str) -> Path:
    """A file under ../shared/data, or skip the test when the checkout has none beside it."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not present (extra real data; bundled samples cover the rest)")
    return path


@pytest.fixture(scope="session")
def tissue() -> np.ndarray:
    """Real H&E tissue, 1024 x 1024 x 3 uint8 (bundled)."""
    return read_array(sample_path("he_tissue.tif"))


@pytest.fixture(scope="session")
def nuclei() -> tuple[np.ndarray, np.ndarray]:
    """Real fluorescence nuclei, 512 x 512 uint16, and its instance labels (bundled)."""
    return read_array(sample_path("nuclei_image.tif")), read_array(sample_path("nuclei_mask.tif"))


@pytest.fixture(scope="session")
def ct_slice() -> tuple[np.ndarray, np.ndarray]:
    """One real abdominal CT slice (int16 HU, 122 x 101) and its organ labels (bundled)."""
    ct = read_array(sample_path("ct_abdomen.nii.gz"))
    seg = read_array(sample_path("ct_abdomen_seg.nii.gz"))
    z = int(np.argmax((seg > 0).sum(axis=(0, 1))))
    return np.ascontiguousarray(ct[:, :, z]), np.ascontiguousarray(seg[:, :, z])
