"""patchify on real images, every supported dtype and channel count; clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from apfcompile import InputError, ParameterError, PatchParams, patchify, reconstruct
from apfcompile.inputs.readers import read_array

from .conftest import shared


def test_real_slide_region():
    image = read_array(shared("wsi/cmu_small_region.svs"))
    sample = patchify(image, None, PatchParams.make(8, length=2048))
    assert len(sample.leaves) <= 2048 and sample.patches.shape == (len(sample.leaves), 8, 8, 3)
    assert sample.gamma == pytest.approx(np.ceil(2967 / 8) * np.ceil(2220 / 8) / len(sample.leaves))


def test_real_nuclei_with_labels(nuclei):
    image, mask = nuclei
    sample = patchify(image, mask, PatchParams.make(8, length=1024))
    assert sample.patches.dtype == np.uint16 and sample.mask.dtype == np.uint16
    classes, dice = sample.ceiling
    assert 0 in classes.tolist() and dice.min() >= 0 and dice[classes == 0][0] > 0.9
    rebuilt = reconstruct(sample.mask, sample.leaves, None, mask.shape)
    assert rebuilt.shape == mask.shape


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("c", [None, 1, 3, 16])
def test_every_dtype_and_channel_count(tissue, dtype, c):
    grey = tissue[:200, :300, 1].astype(np.float32)
    image = grey if c is None else np.repeat(grey[:, :, None], c, axis=2)
    image = (image * (3 if dtype != np.uint8 else 1)).astype(dtype)
    sample = patchify(image, None, PatchParams.make(8, length=300))
    assert sample.patches.dtype == dtype
    assert sample.patches.shape[1:] == (8, 8, 1 if c is None else c)


def test_bad_inputs():
    with pytest.raises(InputError, match="smaller than the patch size"):
        patchify(np.zeros((4, 100), np.uint8))
    with pytest.raises(InputError, match="differs"):
        patchify(np.zeros((16, 16), np.uint8), np.zeros((16, 8), np.uint8))
    with pytest.raises(InputError, match="float64"):
        patchify(np.zeros((16, 16), np.float64))
    with pytest.raises(InputError, match="integer class ids"):
        patchify(np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.float32))
    with pytest.raises(ParameterError, match="min_size"):
        PatchParams.make(16, min_size=8)
