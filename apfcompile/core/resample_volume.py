"""Volumes to isotropic voxels (``compile --mode volume --spacing MM``, issue #15).

CT is often stored with thick slices (0.8 x 0.8 x 2.5 mm): a cube of voxels is then a slab of
tissue, and the octree's cubic leaves would be flat boxes. Resampling first makes every leaf a
cube of tissue. Images are resampled linearly along each axis (in the plane with OpenCV, per
slice; across slices by blending the two nearest slices), rounded back to their dtype; masks by
nearest voxel, so no label is ever invented. Each axis of ``n`` voxels of ``s`` mm becomes
``max(1, round(n * s / MM))`` voxels; voxel centres map as ``(i + 1/2) * n / n' - 1/2``.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import ParameterError

__all__ = ["isotropic_shape", "resample_image", "resample_mask"]


def isotropic_shape(shape: tuple[int, int, int], spacing: tuple[float, float, float], mm: float) -> tuple[int, ...]:
    """The (D, H, W) of a volume of ``shape`` with voxels of ``spacing`` (mm per axis) at ``mm``."""
    if not mm > 0:
        raise ParameterError("spacing", "a voxel size in mm > 0", mm)
    return tuple(max(1, round(n * s / mm)) for n, s in zip(shape, spacing))


def _positions(n: int, m: int) -> np.ndarray:
    """Source coordinates (float) of the ``m`` output voxel centres along an axis of ``n``."""
    return np.clip((np.arange(m) + 0.5) * (n / m) - 0.5, 0, n - 1)


def resample_image(volume: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``volume`` (D, H, W [, C]) linearly resampled to ``shape`` (D', H', W'), in its dtype."""
    d, h, w = volume.shape[:3]
    d2, h2, w2 = shape
    planes = []
    for s in volume:
        if (h2, w2) == (h, w):
            planes.append(s)
            continue
        method = cv2.INTER_AREA if h2 <= h and w2 <= w else cv2.INTER_LINEAR
        planes.append(cv2.resize(s.astype(np.float32), (w2, h2), interpolation=method))
    z = _positions(d, d2)
    lo = np.floor(z).astype(np.int64)
    hi = np.minimum(lo + 1, d - 1)
    t = (z - lo).astype(np.float32)
    out = np.empty((d2, h2, w2) + volume.shape[3:], volume.dtype)
    for i in range(d2):
        blend = (1 - t[i]) * np.asarray(planes[lo[i]], np.float32) + t[i] * np.asarray(planes[hi[i]], np.float32)
        out[i] = np.round(blend) if volume.dtype.kind in "iu" else blend
    return out


def resample_mask(mask: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """``mask`` (D, H, W) resampled to ``shape`` by nearest voxel (labels are never mixed)."""
    idx = [np.round(_positions(n, m)).astype(np.int64) for n, m in zip(mask.shape, shape)]
    return mask[idx[0][:, None, None], idx[1][None, :, None], idx[2][None, None, :]]
