"""Loader throughput (issue #4 figures): samples/s into a training loop, L = 4,096, p = 8, C = 3.

Datasets compiled from real H&E texture (the CMU-1 region mirror-tiled): 32 sources of 2048^2
(crops and flips of the 8 K texture) and 4 of 8192^2. Figures, each beside its baselines from
the same run (warm page cache, batch 8, median of several epochs):

- the published way: a Dataset that decodes the PNG, blurs, runs Canny, builds the naive tree and
  resizes leaves one by one in ``__getitem__`` (2 DataLoader workers);
- raw Zarr read + decompress of the same rows with zarr-python (no tensors, one process);
- apfcompile: ``APFStream(batch_size=8)`` and ``APFDataset`` + ``collate`` through a DataLoader
  with 0 and 2 workers.
Goals: >= 100x the published way; >= 0.7x raw Zarr read.

``--step-ms S`` adds a table: the same streams feeding a training loop whose step takes S ms
(simulated by a sleep, as a loop waiting on the GPU), to show what ``prefetch`` threads and
DataLoader workers overlap: samples/s against the step-only bound.

Usage: python benchmarks/bench_loader.py [--epochs 5] [--step-ms 0]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import zarr
from common import CACHE, texture_png
from naive import naive_greedy, naive_patches
from torch.utils.data import DataLoader, Dataset

from apfcompile import CompileConfig, compile_dataset
from formats import open_dataset
from loaders import APFDataset, APFStream, collate

L, P = 4096, 8


def sources(side: int, count: int) -> Path:
    """``count`` distinct PNGs of ``side``^2 cut and flipped from the 8 K texture (cached)."""
    folder = CACHE / f"sources_{side}_{count}"
    if folder.exists() and len(list(folder.glob("*.png"))) == count:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    big = cv2.imread(str(texture_png(8192)[0]))
    per_row = 8192 // side
    for i in range(count):
        k = i % (per_row * per_row)
        y, x = (k // per_row) * side, (k % per_row) * side
        crop = big[y : y + side, x : x + side]
        flip = (i // (per_row * per_row)) % 4
        crop = crop if flip == 0 else (crop[::-1] if flip == 1 else (crop[:, ::-1] if flip == 2 else crop[::-1, ::-1]))
        cv2.imwrite(str(folder / f"img{i:03d}.png"), np.ascontiguousarray(crop))
    return folder


def compiled(side: int, count: int) -> Path:
    src = sources(side, count)
    out = CACHE / f"dataset_{side}_{count}"
    if not (out / "apf.json").exists():
        compile_dataset(
            CompileConfig.from_options(input=src, output=out, length=L, patch_size=P, overwrite=True, workers=2)
        )
    return out


class PublishedWay(Dataset):
    """What the published code does per item, every epoch."""

    def __init__(self, folder: Path) -> None:
        self.files = sorted(folder.glob("*.png"))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        rgb = cv2.cvtColor(cv2.imread(str(self.files[i])), cv2.COLOR_BGR2RGB)
        edges = cv2.Canny(cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (3, 3), 0), 100, 200)
        leaves = naive_greedy(edges, L, P)
        patches = naive_patches(rgb, leaves, P)
        return torch.from_numpy(patches)


def rate(make_loader, samples_per_epoch: int, epochs: int) -> float:
    """Median samples/s over ``epochs`` full passes of one loader (after one warm-up pass)."""
    loader = make_loader()
    for _ in loader:
        pass
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        n = 0
        for unit in loader:
            n += len(unit["id"]) if isinstance(unit, dict) else len(unit)
        times.append(time.perf_counter() - t0)
        assert n == samples_per_epoch, (n, samples_per_epoch)
    return samples_per_epoch / statistics.median(times)


class RawZarr:
    """Every sample's image rows read with zarr-python, nothing else (re-iterable)."""

    def __init__(self, path: Path) -> None:
        ds = open_dataset(path)
        self.rows = ds.samples.to_pylist()
        self.groups = {
            i: zarr.open_group(str(path / info.path / "patches.zarr"), mode="r")
            for i, info in enumerate(ds.manifest.shards)
        }

    def __iter__(self):
        for r in self.rows:
            a = self.groups[r["shard"]]["image"][r["offset"] : r["offset"] + r["count"]]
            yield {"id": [r["sample"]], "image": a}


def with_training_step(step: float, epochs: int) -> None:
    """Samples/s when every batch is followed by ``step`` seconds of (simulated) training."""
    path = compiled(2048, 32)
    n = open_dataset(path).manifest.totals["samples"]

    class Training:
        """Iterating it is one epoch of the loop: every batch, then the step."""

        def __init__(self, loader) -> None:
            self.loader = loader

        def __iter__(self):
            for unit in self.loader:
                time.sleep(step)
                yield unit

    def loop(make):
        return lambda: Training(make())

    bound = 2 / step
    print(f"{n} samples of 2048^2, batch 2, a {step * 1000:.0f} ms step per batch: at most {bound:.0f} samples/s")
    print(f"{'':<36} {'samples/s':>10} {'vs bound':>9}")
    for name, kw, workers in (
        ("APFStream, 0 workers", {}, 0),
        ("APFStream, 0 workers, prefetch=2", {"prefetch": 2}, 0),
        ("APFStream, 2 workers", {}, 2),
    ):
        stream = APFStream(path, length=L, batch_size=2, **kw)
        r = rate(
            loop(lambda: DataLoader(stream, batch_size=None, num_workers=workers, persistent_workers=workers > 0)),
            n,
            epochs,
        )
        print(f"{name:<36} {r:>10.1f} {r / bound:>8.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--step-ms", type=float, default=0.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.step_ms:
        return with_training_step(args.step_ms / 1000, args.epochs)
    for side, count in ((2048, 32), (8192, 8)):
        path = compiled(side, count)
        n = open_dataset(path).manifest.totals["samples"]
        print(f"\n{count} sources of {side}^2 -> {n} samples of L <= {L}, p = {P}, C = 3 ({path.name})")
        published = PublishedWay(sources(side, count))
        t0 = time.perf_counter()
        for _ in DataLoader(published, batch_size=8, num_workers=2):
            pass
        base = count / (time.perf_counter() - t0)
        raw = rate(lambda: RawZarr(path), n, args.epochs)
        rows = [("published way (2 workers)", base), ("raw zarr read+decompress (1 proc)", raw)]
        stream = APFStream(path, length=L, batch_size=8, shuffle=True)
        mapped = APFDataset(path, length=L)
        for workers in (0, 2):
            rows.append(
                (
                    f"APFStream, {workers} workers",
                    rate(
                        lambda: DataLoader(
                            stream, batch_size=None, num_workers=workers, persistent_workers=workers > 0
                        ),
                        n,
                        args.epochs,
                    ),
                )
            )
            rows.append(
                (
                    f"APFDataset + collate, {workers} workers",
                    rate(
                        lambda: DataLoader(
                            mapped,
                            batch_size=8,
                            shuffle=True,
                            num_workers=workers,
                            collate_fn=collate,
                            persistent_workers=workers > 0,
                        ),
                        n,
                        args.epochs,
                    ),
                )
            )
        print(f"{'':<38} {'samples/s':>10} {'vs published':>13} {'vs raw zarr':>12}")
        for name, r in rows:
            print(f"{name:<38} {r:>10.1f} {r / base:>12.0f}x {r / raw:>11.2f}x")


if __name__ == "__main__":
    main()
