"""Slice-wise 2-D against one 3-D octree per volume, at equal tokens (issue #15 figures).

On the real abdominal CT with its organ labels (``../shared/data/ct``: 122 x 101 x 30 voxels of
3 mm, 41 organ ids; else the bundled copy of the same file), p = 4, HU window -175..250, blur 3,
Canny 100/200, for total token budgets T per volume (a fraction of the 2-D uniform grid):

- 2-D: every axial slice compiled alone with L = T / slices (the tool's ``--mode slices``);
- 3-D: the volume as one octree sequence of T leaves of p^3 (edges per slice, stacked), and the
  same with the 3-D gradient edges at equal edge density.

Printed per budget: gamma (each against its own uniform grid: p^2 cells per slice, p^3 cells per
volume) and the mean foreground ceiling Dice over the volume (the organ masks rebuilt from the
patches, Dice per organ over all voxels, averaged over organs present), beside the supplement's
gamma of 4.07 / 12.18 / 27.66 (2-D) against 6.06 / 22.47 / 47.76 (3-D).

Second table, anisotropy (``--spacing``): the same CT made thick-sliced the way scanners make it
(pairs of slices averaged: 3 x 3 x 6 mm voxels, labels from every second slice), compiled as one
octree at its stored voxels and resampled to isotropic 3 mm first, at equal tokens; both ceilings
measured on the stored voxel grid (the resampled rebuild brought back by nearest voxel).

The same tables for any labelled volume: ``--image PATH --labels PATH --modality mr`` (MR takes a
percentile stretch over the volume instead of the HU window), e.g. TotalSegmentator's real MR test
volume and its labels (``pip download --no-deps --no-binary :all: totalsegmentator==2.18.0``, then
``tests/reference_files/example_mr_sm.nii.gz`` and ``example_seg_mr.nii.gz`` inside the sdist).

Usage: python benchmarks/bench_dims.py [--image PATH --labels PATH --modality ct|mr]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from apfcompile import PatchParams, patchify
from apfcompile.core.patchify_volume import patchify_volume
from apfcompile.core.reconstruct import dice, reconstruct
from apfcompile.core.resample_volume import resample_image, resample_mask
from apfcompile.core.volume_patches import reconstruct_volume
from apfcompile.demo import sample_path
from apfcompile.inputs.readers import read_array

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct"
P = 4


def load(image=None, labels=None) -> tuple[np.ndarray, np.ndarray, str]:
    if image is not None:
        image, mask, where = Path(image), Path(labels), str(image)
    elif (SHARED / "example_ct_sm.nii.gz").exists():
        image, mask, where = SHARED / "example_ct_sm.nii.gz", SHARED / "example_seg.nii.gz", "../shared/data/ct"
    else:
        image, mask, where = sample_path("ct_abdomen.nii.gz"), sample_path("ct_abdomen_seg.nii.gz"), "bundled"
    vol = np.ascontiguousarray(read_array(image).transpose(2, 1, 0))  # (z, y, x)
    seg = np.ascontiguousarray(read_array(mask).transpose(2, 1, 0)).astype(np.uint8)
    return vol, seg, where


def foreground(classes: np.ndarray, values: np.ndarray) -> float:
    keep = classes != 0
    return float(values[keep].mean()) if keep.any() else float("nan")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image")
    ap.add_argument("--labels")
    ap.add_argument("--modality", choices=("ct", "mr"), default="ct")
    args = ap.parse_args()
    window = (-175, 250) if args.modality == "ct" else None
    vol, seg, where = load(args.image, args.labels)
    d, h, w = vol.shape
    grid2 = d * -(-h // P) * -(-w // P)
    grid3 = -(-d // P) * -(-h // P) * -(-w // P)
    print(f"{args.modality.upper()} {where}: {d} slices of {h} x {w}, p = {P}")
    print(f"uniform grids: 2-D {grid2} tokens, 3-D {grid3}")
    head = [f"{'2-D gamma':>9} {'ceiling':>8}", f"{'3-D gamma':>9} {'ceiling':>8}", f"{'3-D grad':>9} {'ceiling':>8}"]
    print(f"{'tokens':>7} | " + " | ".join(head))
    for share in (1 / 32, 1 / 16, 1 / 8):
        per_slice = max(1, int(grid2 * share) // d)
        total = per_slice * d
        params2 = PatchParams.make(P, length=per_slice, window=window)
        rebuilt = np.empty_like(seg)
        for z in range(d):
            s = patchify(vol[z], seg[z], params2)
            rebuilt[z] = reconstruct(s.mask, s.leaves, None, (h, w))
        c2 = foreground(*dice(rebuilt, seg))
        row = [f"{total:>7}", f"{grid2 / total:>9.2f}", f"{c2:>8.3f}"]
        params3 = PatchParams.make(P, length=total, window=window)
        for edges in ("slices", "gradient"):
            v = patchify_volume(vol, seg, params3, edges=edges)
            row += [f"{v.gamma:>9.2f}", f"{foreground(*v.ceiling):>8.3f}"]
        print(f"{row[0]} | {row[1]} {row[2]} | {row[3]} {row[4]} | {row[5]} {row[6]}")
    print("supplement: gamma 2-D 4.07 / 12.18 / 27.66, 3-D 6.06 / 22.47 / 47.76 (its own images and L)")
    anisotropy(vol, seg, window)


def anisotropy(vol: np.ndarray, seg: np.ndarray, window) -> None:
    d = vol.shape[0] // 2 * 2
    thick = ((vol[0:d:2].astype(np.int32) + vol[1:d:2]) // 2).astype(vol.dtype)  # 6 mm slices
    labels = np.ascontiguousarray(seg[0:d:2])
    iso_shape = (thick.shape[0] * 2,) + thick.shape[1:]
    iso, iso_labels = resample_image(thick, iso_shape), resample_mask(labels, iso_shape)
    print(f"\nanisotropic: {thick.shape} voxels of 3 x 3 x 6 mm; resampled to {iso_shape} of 3 mm")
    print(f"{'tokens':>7} | {'stored voxels: gamma':>20} {'ceiling':>8} | {'isotropic 3 mm: gamma':>21} {'ceiling':>8}")
    for tokens in (300, 600, 1200):
        params = PatchParams.make(P, length=tokens, window=window)
        native = patchify_volume(thick, labels, params)
        c_native = foreground(*native.ceiling)
        resampled = patchify_volume(iso, iso_labels, params)
        rebuilt = reconstruct_volume(resampled.mask, resampled.leaves, iso_shape)
        back = resample_mask(rebuilt, labels.shape)
        c_iso = foreground(*dice(back, labels))
        print(f"{tokens:>7} | {native.gamma:>20.2f} {c_native:>8.3f} | {resampled.gamma:>21.2f} {c_iso:>8.3f}")


if __name__ == "__main__":
    main()
