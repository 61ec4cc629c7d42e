"""Octree build on a 512^3 CT volume (issue #15 figure): apfcompile against a naive version.

The volume: the bundled real abdominal CT (30 slices of 122 x 101, 3 mm) resampled to side^3
(each slice linearly to side^2, slices repeated along z), windowed to the abdomen (-175..250 HU),
blurred and Canny'd slice by slice, stacked: the edge volume a per-slice-Canny octree starts from.
Timed, edge volume in hand -> ordered leaves at L = 32,768, minimum leaf 8:

- naive: the published code's way lifted to 3-D (a Python list of leaves, the best found by
  scanning it, every new child's edges summed with ``np.count_nonzero`` over the edge volume),
  with the project's exact rule, so the leaves can be compared one for one;
- apfcompile: ``edge_count_volume`` + ``build_octree`` (median of several runs).

Goal: >= 100x. Usage: python benchmarks/bench_octree.py [--side 512] [--length 32768] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from common import timeit

from apfcompile.core.forest import ForestParams
from apfcompile.core.octree import build_octree, edge_count_volume
from apfcompile.demo import sample_path
from apfcompile.inputs.readers import read_array


def edge_volume(side: int) -> np.ndarray:
    ct = read_array(sample_path("ct_abdomen.nii.gz")).transpose(2, 1, 0)  # (z, y, x)
    out = np.empty((side, side, side), np.uint8)
    for z in range(side):
        s = cv2.resize(ct[z * ct.shape[0] // side].astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
        grey = np.clip((s + 175) * (255 / 425), 0, 255).astype(np.uint8)
        out[z] = cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 100, 200)
    return out


def naive_octree(edges: np.ndarray, length: int, min_size: int) -> list[tuple[int, int, int, int]]:
    """Leaves (x1, y1, z1, side) in Z-order of a cubic power-of-two edge volume (nonzero = edge)."""
    side = edges.shape[0]
    nodes = [[0, 0, 0, side, int(np.count_nonzero(edges))]]
    while True:
        splittable = [n for n in nodes if n[3] > min_size]
        if not splittable:
            break
        best = max(splittable, key=lambda n: (n[4], n[3]))  # the first maximum: first in Z-order
        if len(nodes) + 7 > length:
            break
        idx = nodes.index(best)
        x1, y1, z1, s, _ = best
        h = s // 2
        kids = [
            [x, y, z, h, int(np.count_nonzero(edges[z : z + h, y : y + h, x : x + h]))]
            for z in (z1, z1 + h)
            for y in (y1, y1 + h)
            for x in (x1, x1 + h)
        ]
        nodes = nodes[:idx] + kids + nodes[idx + 1 :]
    return [(x, y, z, s) for x, y, z, s, _ in nodes]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--length", type=int, default=32768)
    ap.add_argument("--min-size", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    edges = edge_volume(args.side)
    params = ForestParams(length=args.length, min_size=args.min_size)

    def ours():
        return build_octree(edge_count_volume(edges, args.min_size), edges.shape, params)

    t_ours, leaves = timeit(ours, args.repeat)
    t0 = time.perf_counter()
    naive = naive_octree(edges, args.length, args.min_size)
    t_naive = time.perf_counter() - t0
    same = naive == list(zip(leaves.x1.tolist(), leaves.y1.tolist(), leaves.z1.tolist(), leaves.size.tolist()))
    print(f"edge volume {args.side}^3 from the bundled CT ({np.count_nonzero(edges):,} edge voxels)")
    print(f"L = {args.length:,}, min leaf {args.min_size}: {len(leaves):,} leaves, identical to naive: {same}")
    print(f"naive (list scan + per-child count, 1 run): {t_naive:.2f} s")
    print(f"apfcompile (count grid + octree, median of {args.repeat}): {t_ours * 1000:.0f} ms")
    print(f"speed-up: {t_naive / t_ours:.0f}x (goal >= 100x)")


if __name__ == "__main__":
    main()
