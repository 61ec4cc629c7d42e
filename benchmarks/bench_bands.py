"""How much band-wise Canny differs from whole-image Canny (issue #5 figure).

On the 8192^2 real-texture image, runs edges band by band exactly as the out-of-core path does
(band height B, halo of blur // 2 + 8 rows) and compares with the whole-image edge map: the share
of edge pixels that differ, and how many of the L = 16,384 greedy leaves change.

Usage: python benchmarks/bench_bands.py [--bands 256 512 1024]
"""

from __future__ import annotations

import argparse

import numpy as np
from common import texture_png

from apfcompile import ForestParams, PatchParams, build_forest, edge_count_grid, edge_map
from apfcompile.core.out_of_core import patchify_banded
from apfcompile.inputs.readers import read_array
from apfcompile.inputs.sources import ArraySource


def banded_edges(image: np.ndarray, band: int, halo: int) -> np.ndarray:
    h = image.shape[0]
    out = np.empty(image.shape[:2], np.uint8)
    for y0 in range(0, h, band):
        y1 = min(h, y0 + band)
        a0, a1 = max(0, y0 - halo), min(h, y1 + halo)
        out[y0:y1] = edge_map(image[a0:a1])[y0 - a0 : y1 - a0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bands", type=int, nargs="+", default=[256, 512, 1024])
    args = ap.parse_args()
    path, origin = texture_png(8192)
    image = read_array(path)
    whole = edge_map(image)
    params = ForestParams(length=16384)
    ref = build_forest(edge_count_grid(whole, 8), whole.shape, params)
    ref_set = set(zip(ref.x1.tolist(), ref.y1.tolist(), ref.size.tolist()))
    print(f"8192^2 texture from {origin}: {np.count_nonzero(whole)} edge pixels, {len(ref)} leaves (whole image)")
    print(f"{'band':>6} {'edge px differing':>18} {'share':>9} {'leaves changed':>15}")
    for band in args.bands:
        edges = banded_edges(image, band, 3 // 2 + 8)
        diff = int(np.count_nonzero(edges != whole))
        leaves = build_forest(edge_count_grid(edges, 8), whole.shape, params)
        changed = len(ref_set - set(zip(leaves.x1.tolist(), leaves.y1.tolist(), leaves.size.tolist())))
        print(f"{band:>6} {diff:>18} {diff / max(np.count_nonzero(whole), 1):>8.4%} {changed:>9} / {len(ref)}")
    sample, _ = patchify_banded(ArraySource(image), None, PatchParams.make(8, length=16384), band_rows=512)
    same = set(zip(sample.leaves.x1.tolist(), sample.leaves.y1.tolist(), sample.leaves.size.tolist())) == ref_set
    print(f"patchify_banded (band 512) leaves identical to the in-memory forest: {same}")


if __name__ == "__main__":
    main()
