"""Forest build and one-image compile on an 8192^2 real-texture image (issue #2 figures).

Figures, each beside its baseline from the same run (medians of several runs):

1. forest build, edge map in hand -> ordered leaves, L = 1,024 / 4,096 / 16,384, p = 8:
   the naive published way (Python list scan + per-child np.sum) vs apfcompile; leaves compared.
   Goal: >= 100x at L = 16,384.
2. one image end to end (read PNG, edges, forest, serialise) vs the floor (decode + grey +
   blur + Canny alone). Goal: <= 1.15x the floor.

Usage: python benchmarks/bench_forest.py [--side 8192] [--repeat 5] [--naive-repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform

import cv2
import numpy as np
from common import texture_png, timeit, timeit_pair
from naive import naive_greedy

from apfcompile import EdgeParams, ForestParams, PatchParams, build_forest, edge_count_grid, edge_map, patchify
from apfcompile.inputs.readers import read_array


def floor(path) -> np.ndarray:
    """Decode + grey + blur + Canny: what any edge-driven patcher must pay."""
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 100, 200)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--naive-repeat", type=int, default=3)
    ap.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    args = ap.parse_args()

    path, origin = texture_png(args.side)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), numpy {np.__version__}"
    )
    print(
        f"image: {args.side}x{args.side} RGB uint8 mirror-tiled from {origin} ({path.stat().st_size / 1e6:.0f} MB PNG)"
    )
    image = read_array(path)
    edges = edge_map(image, EdgeParams())
    print(f"edge pixels: {np.count_nonzero(edges) / edges.size:.2%}\n")

    print("1. forest build (edge map in hand -> leaves in Z-order), p = 8, min leaf 8")
    print(f"{'L':>7} {'naive (published way)':>22} {'apfcompile':>11} {'speed-up':>9}  same leaves")
    for length in args.lengths:
        params = ForestParams(length=length, min_size=8)

        def ours():
            return build_forest(edge_count_grid(edges, 8), edges.shape, params)

        t_ours, leaves = timeit(ours, args.repeat * 3)
        t_naive, ref = timeit(lambda: naive_greedy(edges, length, 8), args.naive_repeat)
        same = ref == list(zip(leaves.x1.tolist(), leaves.y1.tolist(), leaves.size.tolist()))
        print(f"{length:>7} {t_naive * 1e3:>19.0f} ms {t_ours * 1e3:>8.1f} ms {t_naive / t_ours:>8.0f}x  {same}")

    print("\n2. one image end to end (read PNG + edges + forest + area serialise) vs the floor")
    print("   (runs alternate; ratio = median of the per-run ratios)")
    print(f"{'L':>7} {'floor: decode+blur+Canny':>25} {'apfcompile':>11} {'ratio':>7}")
    for length in args.lengths:
        params = PatchParams.make(8, length=length)
        t_floor, t_full, ratio, sample = timeit_pair(
            lambda: floor(path), lambda: patchify(read_array(path), None, params), args.repeat
        )
        print(
            f"{length:>7} {t_floor * 1e3:>22.0f} ms {t_full * 1e3:>8.0f} ms {ratio:>6.2f}x"
            f"   ({len(sample.leaves)} leaves, gamma {sample.gamma:.1f})"
        )


if __name__ == "__main__":
    main()
