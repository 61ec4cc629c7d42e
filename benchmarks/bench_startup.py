"""Whole CLI processes, start-up included, against a process that only does the floor's work.

Figures, each beside its baseline from the same run (runs alternate; medians of the per-pair
ratios):

1. ``apfcompile compile`` of 4 real-texture 8192^2 PNGs (the mirror-tiled H&E region, rotated
   0/90/180/270 degrees so no two files are alike), ``--workers 1``, ``-L 16384``, as a fresh
   process, vs a fresh Python process that reads, converts to grey, blurs and runs Canny on the
   same files (what any edge-driven patcher must pay). Goal: <= 1.15x.
2. ``apfcompile --help`` as a fresh process, vs ``python -c pass``. Goal: <= 0.3 s.

Usage: python benchmarks/bench_startup.py [--side 8192] [--files 4] [--repeat 3]
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
from common import CACHE, texture_png, timed_process

FLOOR = """
import sys, cv2
for path in sys.argv[1:]:
    bgr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 100, 200)
"""


def inputs(side: int, n: int) -> Path:
    """A folder of ``n`` rotated copies of the cached real-texture PNG (made once)."""
    folder = CACHE / f"startup_{side}_{n}"
    if folder.exists() and len(list(folder.glob("*.png"))) == n:
        return folder
    base, _ = texture_png(side)
    image = cv2.imread(str(base), cv2.IMREAD_UNCHANGED)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        cv2.imwrite(str(folder / f"tissue_{k}.png"), cv2.rotate(image, (None, 0, 1, 2)[k % 4]) if k % 4 else image)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=8192)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--length", type=int, default=16384)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    folder = inputs(args.side, args.files)
    files = sorted(str(p) for p in folder.glob("*.png"))
    exe = shutil.which("apfcompile") or "apfcompile"
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, OpenCV {cv2.__version__}")
    print(f"inputs: {len(files)} x {args.side}^2 RGB PNG in {folder}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ds"
        compile_cmd = [exe, "compile", str(folder), str(out), "--workers", "1", "-L", str(args.length), "--overwrite"]
        floor_cmd = [sys.executable, "-c", FLOOR, *files]
        timed_process(floor_cmd), timed_process(compile_cmd)  # warm the page cache and the import caches
        floors, compiles = [], []
        for _ in range(args.repeat):
            floors.append(timed_process(floor_cmd))
            compiles.append(timed_process(compile_cmd))
    ratio = statistics.median(c / f for f, c in zip(floors, compiles))
    print("\n1. compile as a CLI process vs a process that reads + grey + blur + Canny the same files")
    print(
        f"   floor {statistics.median(floors):.2f} s   apfcompile {statistics.median(compiles):.2f} s   "
        f"ratio {ratio:.2f}x (goal <= 1.15x; runs: {', '.join(f'{c / f:.2f}' for f, c in zip(floors, compiles))})"
    )

    pys, helps = [], []
    for _ in range(args.repeat * 3):
        pys.append(timed_process([sys.executable, "-c", "pass"]))
        helps.append(timed_process([exe, "--help"]))
    print("\n2. `apfcompile --help` as a process vs `python -c pass`")
    print(
        f"   python {statistics.median(pys) * 1e3:.0f} ms   apfcompile --help {statistics.median(helps) * 1e3:.0f} ms "
        "(goal <= 300 ms)"
    )
    for sub in ("compile", "inspect"):
        t = statistics.median(timed_process([exe, sub, "--help"]) for _ in range(args.repeat * 2))
        print(f"   apfcompile {sub} --help {t * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
