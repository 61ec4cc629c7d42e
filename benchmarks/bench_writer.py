"""Shard writes: how many slices a second one writer thread can take, and what a second thread adds.

A compile's main process writes every shard its workers did not write themselves (shards that mix
inputs: many small volumes or images), on one thread by default. The records of the 8 CT volumes
of ``bench_compile.py`` (512^2 x 100 slices, 13-label masks, ``-L 1024``; compiled once, in this
process) are written as their 256-sample shards: one shard at a time on one thread, and the same
shards two at once on two threads (what ``apfcompile.build.run.writer_threads`` gives 12 or more
workers). Medians of several rounds; the ratio is the median of per-round ratios.

Usage: python benchmarks/bench_writer.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_compile import volumes

from apfcompile import CompileConfig, compile_dataset
from apfcompile.build import run
from formats import writer

_KEEP = ("patch_size", "channels", "image_dtype", "mask_dtype", "mask_fill", "dims")


def shard_records() -> list[tuple[list, dict]]:
    """The (records, options) of every shard of one ``-j 1`` compile of the benchmark's volumes."""
    captured = []
    real = run.write_shard

    def keep(*args, **kwargs):
        captured.append((args[2], {k: kwargs[k] for k in _KEEP}))
        return real(*args, **kwargs)

    run.write_shard = keep
    try:
        with tempfile.TemporaryDirectory() as tmp:
            compile_dataset(
                CompileConfig.from_options(volumes(8, 100), f"{tmp}/ds", workers=1, length=1024, layout="btcv")
            )
    finally:
        run.write_shard = real
    return captured


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    shards = [s for s in shard_records() if len(s[0]) == 256]  # the full shards
    print(f"machine: {os.cpu_count()} cores; {len(shards)} shards of 256 CT slices (512^2, L = 1024, 13 labels)")
    one, two, ratios = [], [], []
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as pool:

        def write(i: int, tag: str) -> None:
            records, options = shards[i % len(shards)]
            writer.stage_shard(Path(tmp) / tag, i, records, **options)

        for _ in range(args.repeat):
            t0 = time.perf_counter()
            write(0, "a")
            write(1, "a")
            t1 = time.perf_counter()
            list(pool.map(write, (0, 1), ("b", "b")))
            t2 = time.perf_counter()
            one.append((t1 - t0) / 2)
            two.append(t2 - t1)
            ratios.append((t2 - t1) / (t1 - t0))
    per = statistics.median(one)
    print(f"one shard on one thread: {per:.3f} s = at most {256 / per:.0f} slices/s for a compile's main process")
    print(
        f"two shards: in a row {2 * per:.3f} s, on two threads {statistics.median(two):.3f} s "
        f"({statistics.median(ratios):.2f}x; 0.5x would be a free second thread)"
    )


if __name__ == "__main__":
    main()
