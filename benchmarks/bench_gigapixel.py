"""Gigapixel slides out of core (issue #5 figures): peak memory and time of one PAIP-style compile.

Builds a side x side pyramidal, JPEG-tiled TIFF (``CASE.svs``) by mirror-tiling the real CMU-1
H&E region, with matching 0/1 ``_whole`` / ``_viable`` mask TIFFs (zlib), then runs
``apfcompile compile --layout paip --out-of-core always -L 16384 -p 8`` at full resolution under
``/usr/bin/time -v`` and prints its peak RSS and wall time beside the floor from the same run:
reading + grey + blurring + Canny of the same pixels band by band (no forest, no patches).
Goals at 65,536^2: peak RSS <= 2 GiB; wall <= 1.3x the floor.

``--layout folder`` compiles the same slide as ``slide.tif`` in the folder layout with a 5-label
mask ``slide_mask.tif`` (labels by stain darkness) instead: the generic slide path, which finds the
mask's labels in one extra streaming pass over the mask.

Usage: python benchmarks/bench_gigapixel.py [--sides 16384 32768 65536] [--band-rows 512] [--layout paip|folder]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import tifffile
from common import CACHE, real_tissue

from apfcompile.inputs.sources import TiffSource

TILE = 512


def _blocks():
    tissue, origin = real_tissue()
    row = np.concatenate([tissue, tissue[:, ::-1]], axis=1)
    block = np.ascontiguousarray(np.concatenate([row, row[::-1]], axis=0))
    grey = block.mean(axis=2)
    whole = (grey < 200).astype(np.uint8)
    viable = (grey < 140).astype(np.uint8)
    return block, whole, viable, origin


def _labels():
    block, _, _, _ = _blocks()
    return np.digitize(block.mean(axis=2), [100, 140, 180, 220]).astype(np.uint8)


def _tiles(block: np.ndarray, side: int, scale: int):
    """Tiles (row-major) of the mirror-tiled block reduced by ``scale``, for a side/scale canvas."""
    src = (
        block
        if scale == 1
        else cv2.resize(
            block,
            (block.shape[1] // scale, block.shape[0] // scale),
            interpolation=cv2.INTER_AREA if block.ndim == 3 else cv2.INTER_NEAREST,
        )
    )
    n = side // scale
    bh, bw = src.shape[:2]
    for ty in range(0, n, TILE):
        rows = np.arange(ty, ty + TILE) % bh
        band = src[rows]
        for tx in range(0, n, TILE):
            yield band[:, (np.arange(tx, tx + TILE) % bw)]


def _write(path: Path, block: np.ndarray, side: int, levels: int, jpeg: bool) -> None:
    kw = {"tile": (TILE, TILE), "dtype": np.uint8}
    kw.update(
        {"compression": "jpeg", "compressionargs": {"level": 85}, "photometric": "rgb"}
        if jpeg
        else {"compression": "zlib", "photometric": "minisblack"}
    )
    extra = (3,) if block.ndim == 3 else ()
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(_tiles(block, side, 1), shape=(side, side) + extra, subifds=levels - 1, **kw)
        for k in range(1, levels):
            s = side >> k
            tif.write(_tiles(block, side, 1 << k), shape=(s, s) + extra, subfiletype=1, **kw)


def _built(name: str, build) -> Path:
    """CACHE/name, made once by ``build(folder)`` (a ``done`` file marks it complete)."""
    folder = CACHE / name
    if not (folder / "done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        t0 = time.perf_counter()
        build(folder)
        (folder / "done").write_text(f"{time.perf_counter() - t0:.0f} s to build\n")
    return folder


def _levels(side: int) -> int:
    return max(1, (side // 1024).bit_length())


def make_case(side: int) -> Path:
    """A PAIP case: 01_01_0001.svs with its _whole and _viable mask TIFFs."""

    def build(folder: Path) -> None:
        block, whole, viable, _ = _blocks()
        _write(folder / "01_01_0001.svs", block, side, _levels(side), jpeg=True)
        _write(folder / "01_01_0001_whole.tif", whole, side, _levels(side), jpeg=False)
        _write(folder / "01_01_0001_viable.tif", viable, side, _levels(side), jpeg=False)

    return _built(f"paip_{side}", build)


def make_folder_case(side: int) -> Path:
    """The PAIP case's slide (hard-linked) as slide.tif, with a 5-label slide_mask.tif."""
    paip = make_case(side)

    def build(folder: Path) -> None:
        (folder / "slide.tif").hardlink_to(paip / "01_01_0001.svs")
        _write(folder / "slide_mask.tif", _labels(), side, _levels(side), jpeg=False)

    return _built(f"slides_{side}", build)


def floor(folder: Path, band_rows: int) -> float:
    """Read + grey + blur + Canny band by band, the same halo as the compile."""
    slide = folder / "01_01_0001.svs" if (folder / "01_01_0001.svs").exists() else folder / "slide.tif"
    src = TiffSource(slide)
    h = src.shape[0]
    t0 = time.perf_counter()
    for y0 in range(0, h, band_rows):
        a0, a1 = max(0, y0 - 9), min(h, y0 + band_rows + 9)
        grey = cv2.cvtColor(src.rows(a0, a1), cv2.COLOR_RGB2GRAY)
        cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 100, 200)
    src.close()
    return time.perf_counter() - t0


def compile_case(folder: Path, side: int, band_rows: int, layout: str) -> tuple[float, float, dict]:
    out = CACHE / f"{folder.name}_dataset"
    cmd = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "apfcompile",
        "compile",
        str(folder),
        str(out),
        "--layout",
        layout,
        "--out-of-core",
        "always",
        "--band-rows",
        str(band_rows),
        "-L",
        "16384",
        "-p",
        "8",
        "--overwrite",
        "-j",
        "1",
    ]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if run.returncode:
        raise SystemExit(run.stderr[-2000:])
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    manifest = json.loads((out / "apf.json").read_text())
    return wall, peak_kib / 1024, manifest["totals"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sides", type=int, nargs="+", default=[16384, 32768, 65536])
    ap.add_argument("--band-rows", type=int, default=512)
    ap.add_argument("--layout", choices=["paip", "folder"], default="paip")
    args = ap.parse_args()
    print(f"layout {args.layout}")
    print(
        f"{'canvas':>8} {'RGB canvas':>11} {'floor (read+blur+Canny)':>24} {'compile':>9} {'ratio':>6} "
        f"{'peak RSS':>9}  result"
    )
    for side in args.sides:
        folder = make_case(side) if args.layout == "paip" else make_folder_case(side)
        t_floor = floor(folder, args.band_rows)
        wall, peak_mib, totals = compile_case(folder, side, args.band_rows, args.layout)
        raw = side * side * 3 / 2**30
        print(
            f"{side:>8} {raw:>9.1f} GiB {t_floor:>22.1f} s {wall:>7.1f} s {wall / t_floor:>5.2f}x "
            f"{peak_mib:>6.0f} MiB  {totals['nodes']} leaves"
        )
    print(f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB peak)")


if __name__ == "__main__":
    main()
