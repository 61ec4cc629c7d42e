"""Compiling many small frames against their floor (issue #14, "compile at dataset scale").

Eight CT volumes of 512 x 512 x 100 with 13-label masks, in the BTCV layout (made from the bundled
real CT and its labels remapped to BTCV's ids, each slice resized to 512^2, the 30 slices repeated
with flips; cached as .nii.gz), compiled with ``-L 1024`` by whole ``apfcompile compile`` processes
with ``-j 1`` and ``-j 2``, against a fresh Python process that only reads the same NIfTI files,
windows, blurs and runs Canny on every slice (the floor: what any edge-driven patcher pays). Runs
alternate; medians of several runs, and the median of the per-run ratios.

Goals (issue #14): ``-j 1`` <= 1.5x the floor; ``-j 2`` <= 0.6x ``-j 1``.

Usage: python benchmarks/bench_compile.py [--volumes 8] [--slices 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
from common import CACHE, cores_busy, timed_busy, timed_process

from apfcompile.demo import sample_path

TS_TO_BTCV = {1: 1, 2: 2, 3: 3, 4: 4, 15: 5, 5: 6, 6: 7, 52: 8, 63: 9, 64: 10, 7: 11, 8: 12, 9: 13}

FLOOR = """
import sys, cv2, numpy as np, nibabel as nib
from pathlib import Path
for path in sorted(Path(sys.argv[1]).glob("img/*.nii.gz")):
    vol = np.asarray(nib.load(path).dataobj)
    for z in range(vol.shape[2]):
        grey = np.clip((vol[:, :, z].astype(np.float32) + 175) * (255 / 425), 0, 255).astype(np.uint8)
        cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 100, 200)
"""


def volumes(n: int, slices: int, side: int = 512) -> Path:
    root = CACHE / f"btcv_{n}x{slices}_{side}"
    if (root / "label" / f"label{n:04d}.nii.gz").exists():
        return root
    for sub in ("img", "label"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ct, seg = nib.load(sample_path("ct_abdomen.nii.gz")), nib.load(sample_path("ct_abdomen_seg.nii.gz"))
    image, labels = np.asarray(ct.dataobj), np.asarray(seg.dataobj)
    lut = np.zeros(256, np.uint8)
    for ts, ours in TS_TO_BTCV.items():
        lut[ts] = ours
    labels = lut[labels]
    big_i = np.empty((side, side, slices), image.dtype)
    big_m = np.empty((side, side, slices), np.uint8)
    for z in range(slices):
        k, flip = z % image.shape[2], (z // image.shape[2]) % 2
        a = cv2.resize(image[:, :, k].astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
        m = cv2.resize(labels[:, :, k], (side, side), interpolation=cv2.INTER_NEAREST)
        if flip:
            a, m = a[:, ::-1], m[:, ::-1]
        big_i[:, :, z], big_m[:, :, z] = np.round(a).astype(image.dtype), m
    for i in range(1, n + 1):  # each volume rolled along the slices, so no two files are alike
        nib.save(nib.Nifti1Image(np.roll(big_i, i, axis=2), ct.affine), root / "img" / f"img{i:04d}.nii.gz")
        nib.save(nib.Nifti1Image(np.roll(big_m, i, axis=2), seg.affine), root / "label" / f"label{i:04d}.nii.gz")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volumes", type=int, default=8)
    ap.add_argument("--slices", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    src = volumes(args.volumes, args.slices)
    exe = shutil.which("apfcompile") or "apfcompile"
    frames = args.volumes * args.slices
    print(
        f"machine: {os.cpu_count()} cores; input: {args.volumes} CT volumes 512 x 512 x {args.slices} + labels ({src})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        cmds = {
            "floor": [sys.executable, "-c", FLOOR, str(src)],
            **{
                f"j{j}": [
                    exe,
                    "compile",
                    str(src),
                    f"{tmp}/j{j}",
                    "-j",
                    str(j),
                    "-L",
                    "1024",
                    "--layout",
                    "btcv",
                    "--overwrite",
                ]
                for j in (1, 2)
            },
        }
        timed_process(cmds["floor"])  # warm the page cache
        runs: dict[str, list[tuple[float, float | None]]] = {k: [] for k in cmds}
        for _ in range(args.repeat):
            for k, cmd in cmds.items():
                runs[k].append(timed_busy(cmd))
    times = {k: [wall for wall, _ in v] for k, v in runs.items()}
    med = {k: statistics.median(v) for k, v in times.items()}
    r1 = statistics.median(a / b for a, b in zip(times["j1"], times["floor"]))
    r2 = statistics.median(a / b for a, b in zip(times["j2"], times["j1"]))
    print(
        f"floor (read + window + blur + Canny, one process): {med['floor']:.1f} s "
        f"({frames / med['floor']:.0f} slices/s)"
    )
    print(f"compile -j 1: {med['j1']:.1f} s ({frames / med['j1']:.0f} slices/s) = {r1:.2f}x the floor (goal <= 1.5x)")
    print(f"compile -j 2: {med['j2']:.1f} s = {r2:.2f}x -j 1 (goal <= 0.6x)")
    busy = {k: cores_busy(v) for k, v in runs.items()}
    if None not in busy.values():
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(
            f"cores kept busy (machine CPU seconds / wall): floor {busy['floor']:.2f}, -j 1 {busy['j1']:.2f}, "
            f"-j 2 {busy['j2']:.2f} of {cores}; -j 2 doing -j 1's work on {min(cores, 2)} cores "
            f"is at best {busy['j1'] / min(cores, 2):.2f}x -j 1"
        )


if __name__ == "__main__":
    main()
