"""One large volume over several workers (issue #11, work split by frame).

A 500-slice 512^2 int16 CT volume with its label volume, made from the bundled real abdominal CT
(each slice resized to 512^2, the 30 slices repeated with flips to 500; cached as .nii.gz), is
compiled by whole ``apfcompile compile`` processes with ``-j 1`` and ``-j 2`` (runs alternate;
medians, and the median of the per-pair ratios). Goal: -j 2 >= 1.7x faster than -j 1. The two
outputs are checked to be byte-identical. ``--jobs 1 2 4 8 16`` times more worker counts the same
way (each against ``-j 1``), for how one volume scales on a machine with more cores.

Usage: python benchmarks/bench_volume.py [--slices 500] [--side 512] [--repeat 3] [--jobs 1 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
from common import CACHE, cores_busy, timed_busy, timed_process

from apfcompile.demo import sample_path


def volume(slices: int, side: int) -> Path:
    folder = CACHE / f"volume_{slices}_{side}"
    if (folder / "ct_mask.nii.gz").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    ct = nib.load(sample_path("ct_abdomen.nii.gz"))
    seg = nib.load(sample_path("ct_abdomen_seg.nii.gz"))
    image, mask = np.asarray(ct.dataobj), np.asarray(seg.dataobj)
    big_i = np.empty((side, side, slices), image.dtype)
    big_m = np.empty((side, side, slices), mask.dtype)
    for z in range(slices):
        k = z % image.shape[2]
        flip = (z // image.shape[2]) % 4
        a = cv2.resize(image[:, :, k].astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
        m = cv2.resize(mask[:, :, k], (side, side), interpolation=cv2.INTER_NEAREST)
        a, m = (
            (a, m)
            if flip == 0
            else (np.flip(a, flip - 1 if flip < 3 else (0, 1)), np.flip(m, flip - 1 if flip < 3 else (0, 1)))
        )
        big_i[:, :, z], big_m[:, :, z] = np.round(a).astype(image.dtype), m
    nib.save(nib.Nifti1Image(big_i, ct.affine), folder / "ct.nii.gz")
    nib.save(nib.Nifti1Image(big_m, seg.affine), folder / "ct_mask.nii.gz")
    return folder


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "compile-stats.json":
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=500)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="worker counts (-j 1 is always run)")
    args = ap.parse_args()
    jobs = sorted({1, *args.jobs})
    src = volume(args.slices, args.side)
    exe = shutil.which("apfcompile") or "apfcompile"
    print(
        f"machine: {os.cpu_count()} cores; input: one {args.slices}-slice {args.side}^2 int16 volume + labels ({src})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        outs = {j: Path(tmp) / f"j{j}" for j in jobs}
        cmds = {j: [exe, "compile", str(src), str(outs[j]), "-j", str(j), "-L", str(args.length)] for j in jobs}
        timed_process(cmds[1])  # warm the page cache
        runs: dict[int, list[tuple[float, float | None]]] = {j: [] for j in jobs}
        for _ in range(args.repeat):
            for j in jobs:
                # a fresh OUTPUT each run (not --overwrite: replacing a dataset writes its shards
                # beside the old ones, under other folder names, so the bytes would not compare)
                shutil.rmtree(outs[j], ignore_errors=True)
                runs[j].append(timed_busy(cmds[j]))
        same = len({digest(outs[j]) for j in jobs}) == 1
    times = {j: [wall for wall, _ in v] for j, v in runs.items()}
    busy = {j: cores_busy(v) for j, v in runs.items()}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    t1 = statistics.median(times[1])
    print(f"-j 1: {t1:.1f} s ({args.slices / t1:.0f} slices/s)")
    for j in jobs[1:]:
        ratio = statistics.median(a / b for a, b in zip(times[1], times[j]))
        tj = statistics.median(times[j])
        goal = " (goal >= 1.7x)" if j == 2 else ""
        pairs = ", ".join(f"{a / b:.2f}" for a, b in zip(times[1], times[j]))
        print(f"-j {j}: {tj:.1f} s ({args.slices / tj:.0f} slices/s), speed-up {ratio:.2f}x{goal}; runs {pairs}")
    if None not in busy.values():
        kept = ", ".join(f"-j {j} {busy[j]:.2f}" for j in jobs)
        print(
            f"cores kept busy (machine CPU seconds / wall): {kept} of {cores}; the most -j 2 can gain "
            f"on {min(cores, 2)} cores doing -j 1's work: {min(cores, 2) / busy[1]:.2f}x"
        )
    print(f"outputs byte-identical: {same}")


if __name__ == "__main__":
    main()
