"""The demo: the core on the bundled real samples, summarised, with pictures.

:func:`run_demo` patchifies a tissue crop (H&E, RGB uint8), a fluorescence nuclei image with its
instance labels (uint16) and one abdominal CT slice with organ labels (int16 HU, HU window for
edges), prints one row per sample and writes a preview PNG per sample: leaf borders over the
image, the mask, and the mask rebuilt from its own patches.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from .pipeline import PatchParams, patchify
from .preview import colorize_labels, draw_leaves, side_by_side
from .readers import read_array
from .reconstruct import reconstruct

__all__ = ["DemoRow", "bundled_samples", "run_demo", "sample_path"]

CT_WINDOW = (-175.0, 250.0)


def sample_path(name: str) -> Path:
    """Path of a bundled sample file (see ``apfcompile/samples/README.md``)."""
    return Path(str(resources.files("apfcompile") / "samples" / name))


def bundled_samples() -> list[tuple[str, np.ndarray, np.ndarray | None, PatchParams]]:
    """(key, image, mask or None, parameters) for each bundled sample."""
    tissue = read_array(sample_path("he_tissue.tif"))
    nuclei = read_array(sample_path("nuclei_image.tif"))
    nuclei_mask = read_array(sample_path("nuclei_mask.tif"))
    ct = read_array(sample_path("ct_abdomen.nii.gz"))
    seg = read_array(sample_path("ct_abdomen_seg.nii.gz"))
    z = int(np.argmax((seg > 0).sum(axis=(0, 1))))  # the slice with the most labelled voxels
    ct_slice = np.ascontiguousarray(np.rot90(ct[:, :, z]))  # RAS voxel axes -> radiological view
    seg_slice = np.ascontiguousarray(np.rot90(seg[:, :, z]))
    return [
        ("he_tissue", tissue, None, PatchParams.make(8, length=1024)),
        ("nuclei", nuclei, nuclei_mask, PatchParams.make(8, length=512)),
        (f"ct_abdomen/z{z:03d}", ct_slice, seg_slice, PatchParams.make(8, length=64, window=CT_WINDOW)),
    ]


@dataclass(frozen=True)
class DemoRow:
    key: str
    shape: tuple[int, ...]
    dtype: str
    leaves: int
    sizes: dict[int, int]
    gamma: float
    ceiling: float | None
    preview: Path


def run_demo(output: str | Path = "apf-demo") -> list[DemoRow]:
    """Patchify the bundled samples, write ``OUTPUT/<key>.png`` previews, return a row each."""
    out_dir = Path(output)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for key, image, mask, params in bundled_samples():
        sample = patchify(image, mask, params)
        pictures = [draw_leaves(image, sample.leaves)]
        ceiling = None
        if mask is not None and sample.mask is not None and sample.ceiling is not None:
            rebuilt = reconstruct(sample.mask, sample.leaves, mask.shape)
            pictures += [colorize_labels(mask), colorize_labels(rebuilt)]
            classes, dice = sample.ceiling
            foreground = dice[classes != 0]
            ceiling = float(foreground.mean()) if foreground.size else float(dice.mean())
        path = out_dir / (key.replace("/", "_") + ".png")
        cv2.imwrite(str(path), side_by_side(*pictures)[:, :, ::-1])
        sizes, counts = np.unique(sample.leaves.size, return_counts=True)
        rows.append(DemoRow(key, image.shape, str(image.dtype), len(sample.leaves),
                            dict(zip(sizes.tolist(), counts.tolist())), sample.gamma, ceiling, path))  # fmt: skip
    return rows
