"""Mask reconstruction: 8 masks of 8192^2 from L = 16,384 patches of 8 x 8 (issue #4 figures).

Baselines from the same run:
- the published way: a Python loop over leaves, ``cv2.resize(..., INTER_CUBIC)`` of each patch
  into its box (timed on one mask, x 8);
- the floor: writing the output bytes once (``torch.full`` of (8, 8192, 8192) uint8).
Goal: >= 20x faster than the loop, <= 2x the floor, bit-exact against a per-leaf nearest loop.
On a machine with CUDA the same is timed on the GPU.

Usage: python benchmarks/bench_reconstruct.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch
from common import texture_png, timeit

from apfcompile import EdgeParams, ForestParams, build_forest, edge_count_grid, edge_map
from apfcompile.inputs.readers import read_array
from loaders import reconstruct


def published_loop(patches: np.ndarray, boxes, shape, interp=cv2.INTER_CUBIC) -> np.ndarray:
    out = np.zeros(shape, np.float32)
    for patch, (x1, y1, s) in zip(patches, boxes):
        out[y1 : y1 + s, x1 : x1 + s] = cv2.resize(patch.astype(np.float32), (s, s), interpolation=interp)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    path, origin = texture_png(8192)
    image = read_array(path)
    leaves = build_forest(
        edge_count_grid(edge_map(image, EdgeParams()), 8), image.shape[:2], ForestParams(length=16384)
    )
    n, b, side = len(leaves), args.batch, 8192
    print(f"{b} masks of {side}^2 from {n} leaves (forest of the 8 K H&E texture from {origin}), p = 8, uint8 labels")
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 14, (b, n, 8, 8)).astype(np.uint8))
    box = torch.from_numpy(np.stack([leaves.x1, leaves.x2, leaves.y1, leaves.y2], 1).astype(np.int64))[None].expand(
        b, n, 4
    )
    valid = torch.ones(b, n, dtype=torch.bool)
    boxes = list(zip(leaves.x1.tolist(), leaves.y1.tolist(), leaves.size.tolist()))

    t0 = time.perf_counter()
    published_loop(labels[0].numpy(), boxes, (side, side))
    t_loop = (time.perf_counter() - t0) * b
    exact = np.array_equal(
        reconstruct(labels[:1], box[:1], valid[:1], (side, side))[0].numpy(),
        published_loop(labels[0].numpy(), boxes, (side, side), cv2.INTER_NEAREST).astype(np.uint8),
    )
    t_ours, _ = timeit(lambda: reconstruct(labels, box, valid, (side, side)), args.repeat)
    t_fill, _ = timeit(lambda: torch.full((b, side, side), 0, dtype=torch.uint8), args.repeat)
    print(f"{'':<34} {'time':>9} {'per mask':>9}")
    print(f"{'published per-leaf cubic loop':<34} {t_loop:>8.2f}s {t_loop / b * 1e3:>7.0f}ms")
    print(f"{'floor: write the output once':<34} {t_fill:>8.3f}s {t_fill / b * 1e3:>7.1f}ms")
    print(f"{'loaders.reconstruct (CPU)':<34} {t_ours:>8.3f}s {t_ours / b * 1e3:>7.1f}ms")
    print(
        f"speed-up vs loop {t_loop / t_ours:.0f}x; vs floor {t_ours / t_fill:.2f}x; bit-exact vs nearest loop: {exact}"
    )
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        lg, bg, vg = labels.to(dev), box.to(dev), valid.to(dev)

        def gpu(fn):
            def run():
                out = fn()
                torch.cuda.synchronize()
                return out

            return run

        t_gpu, _ = timeit(gpu(lambda: reconstruct(lg, bg, vg, (side, side))), args.repeat)
        t_gfill, _ = timeit(gpu(lambda: torch.full((b, side, side), 0, dtype=torch.uint8, device=dev)), args.repeat)
        print(
            f"GPU ({torch.cuda.get_device_name()}): {t_gpu * 1e3:.1f} ms vs fill floor {t_gfill * 1e3:.1f} ms "
            f"({t_gpu / t_gfill:.2f}x)"
        )
    else:
        print("GPU: none on this machine")


if __name__ == "__main__":
    main()
