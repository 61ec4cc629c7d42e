"""Object storage (issue #6 figures): streaming a dataset from S3, and compiling from S3 inputs.

An S3 endpoint on loopback (moto's server, started here: no network latency, but every request
pays HTTP + the server's Python, a few ms). The dataset is bench_loader's: 32 sources of 2048^2
real H&E texture, L = 4,096, p = 8, C = 3. Loader figures are samples/s over full epochs
(batch 8, 0 workers, median of several epochs), each beside its baselines from the same run:

- the same dataset on local disk (memory-mapped): the ceiling;
- one ranged GET of a sample's bytes per sample with s3fs, nothing else: the floor of any reader
  that fetches per sample from this server;
- zarr-python + pyarrow reading the same rows from S3 (FsspecStore): what a user would write;
- APFStream from S3 with ranged requests, no cache (also with ``prefetch`` threads reading
  ahead); with ``cache_dir``: the first (cold) epoch and the following (warm) ones. Bytes and
  requests per sample are counted too.

Compile figures: ``apfcompile compile`` of 8 BTCV-layout CT volumes (the bundled real one) from a
local folder and from S3, same workers; the outputs are compared byte for byte.

``--latency-ms 20`` adds 20 ms to every ranged request (the floor's and the loader's), a model of a
store that is far away rather than a measurement, to show what ``prefetch`` hides.

Usage: python benchmarks/bench_remote.py [--epochs 3] [--latency-ms 0]   (needs apfcompile[s3], moto[server])
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import zarr
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_loader import L, compiled

from apfcompile import CompileConfig, compile_dataset
from formats import open_dataset
from loaders import (
    APFStream,
    _ranges,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import builders


class Counting:
    """Counts ranged requests and bytes of the loader's remote reads."""

    requests = 0
    bytes = 0
    latency = 0.0  # seconds added to every request (--latency-ms): a model of a distant store

    def __init__(self) -> None:
        real = _ranges.RemoteFile.read

        def read(self_, offset, nbytes):
            Counting.requests += 1
            Counting.bytes += nbytes
            time.sleep(Counting.latency)
            return real(self_, offset, nbytes)

        _ranges.RemoteFile.read = read


def epoch_rates(make_iter, n: int, epochs: int) -> list[float]:
    out = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        seen = sum(len(u["id"]) for u in make_iter())
        out.append(n / (time.perf_counter() - t0))
        assert seen == n, (seen, n)
    return out


def zarr_rows(url: str, options: dict):
    """Every sample's image rows read from S3 with zarr-python (FsspecStore) and pyarrow."""
    ds = open_dataset(url, options)
    rows = ds.samples.to_pylist()
    groups = {}
    for r in rows:
        k = r["shard"]
        if k not in groups:
            store = zarr.storage.FsspecStore.from_url(
                f"{url}/{ds.manifest.shards[k].path}/patches.zarr", read_only=True, storage_options=options
            )
            groups[k] = zarr.open_group(store, mode="r")
        ds.nodes(k)  # the node table of the shard, as a user reading the Parquet would
        yield {"id": [r["sample"]], "image": groups[k]["image"][r["offset"] : r["offset"] + r["count"]]}


def slide_level_read(fs, options: dict, work: Path, repeat: int) -> None:
    """A 16,384^2 PAIP case (bench_gigapixel's) compiled at --resolution 2048 from S3 and locally:
    bytes fetched against the files' sizes, and wall time (one process, so reads can be counted)."""
    import s3fs.core
    from bench_gigapixel import make_case

    case = make_case(16384)
    fs.put(str(case), "bench/paip", recursive=True)
    total = sum(p.stat().st_size for p in case.glob("*.tif*")) + (case / "01_01_0001.svs").stat().st_size
    fetched = [0]
    real = s3fs.core.S3File._fetch_range

    def counting(self, start, end):
        fetched[0] += end - start
        return real(self, start, end)

    s3fs.core.S3File._fetch_range = counting
    times = {}
    for name, inp in (("local", case), ("s3", "s3://bench/paip")):
        ts = []
        for _ in range(repeat):
            fetched[0] = 0
            t0 = time.perf_counter()
            compile_dataset(
                CompileConfig.from_options(
                    input=inp,
                    output=work / f"paip-{name}",
                    resolution=2048,
                    length=4096,
                    workers=1,
                    overwrite=True,
                    storage_options=options,
                )
            )
            ts.append(time.perf_counter() - t0)
        times[name] = statistics.median(ts)
    s3fs.core.S3File._fetch_range = real
    same = builders.tree_bytes(work / "paip-local") == builders.tree_bytes(work / "paip-s3")
    print(
        f"\nPAIP 16,384^2 case (slide + 2 masks, {total / 2**20:.0f} MiB) at --resolution 2048, -j 1: "
        f"{fetched[0] / 2**20:.1f} MiB fetched from S3 ({fetched[0] / total:.1%}); local {times['local']:.2f} s, "
        f"from S3 {times['s3']:.2f} s = {times['s3'] / times['local']:.2f}x; outputs identical: {same}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="add this much to every ranged request (simulated distance; skips the zarr row)",
    )
    args = ap.parse_args()
    Counting.latency = args.latency_ms / 1000
    torch.set_num_threads(1)
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    import s3fs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    options = {"client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"}}
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("bench")
    work = Path(tempfile.mkdtemp(prefix="apf-remote-"))
    try:
        local = compiled(2048, 32)
        fs.put(str(local), "bench/ds", recursive=True)
        url = "s3://bench/ds"
        n = open_dataset(local).manifest.totals["samples"]
        mib = sum(p.stat().st_size for p in local.rglob("*") if p.is_file()) / 2**20
        print(f"dataset: {n} samples, L <= {L}, {mib:.1f} MiB ({local.name}); S3 = moto on 127.0.0.1")
        Counting()

        def stream(path, **kw):
            s = APFStream(path, length=L, batch_size=8, shuffle=True, **kw)
            return lambda: DataLoader(s, batch_size=None, num_workers=0)

        rows = []
        base = statistics.median(epoch_rates(stream(local), n, args.epochs))
        rows.append(("local disk, APFStream", base))
        if not args.latency_ms:
            rows.append(
                (
                    "S3, zarr-python + pyarrow rows",
                    statistics.median(epoch_rates(lambda: zarr_rows(url, options), n, args.epochs)),
                )
            )
        chunk_file = next(p for p in fs.find("bench/ds") if "/image/c/" in p)
        size, each = fs.size(chunk_file), L * 8 * 8 * 3

        def raw_gets():  # the floor: one ranged GET of a sample's bytes per sample, nothing else
            for i in range(n):
                start = (i * each) % max(1, size - each)
                time.sleep(Counting.latency)
                fs.cat_file(chunk_file, start=start, end=start + each)
                yield {"id": [i]}

        gets = statistics.median(epoch_rates(raw_gets, n, args.epochs))
        rows.append(("S3, ranged GET of 768 KiB per sample", gets))
        Counting.requests = Counting.bytes = 0
        uncached = epoch_rates(stream(url, storage_options=options), n, args.epochs)
        per_req, per_bytes = Counting.requests / (n * args.epochs), Counting.bytes / (n * args.epochs)
        rows.append(("S3, APFStream, no cache", statistics.median(uncached)))
        for k in (4, 8):
            rows.append(
                (
                    f"S3, APFStream, no cache, prefetch={k}",
                    statistics.median(epoch_rates(stream(url, storage_options=options, prefetch=k), n, args.epochs)),
                )
            )
        cache = work / "cache"
        warm_make = stream(url, storage_options=options, cache_dir=cache)
        cold = epoch_rates(warm_make, n, 1)[0]
        rows.append(("S3, APFStream, cache_dir, cold epoch", cold))
        Counting.requests = 0
        warm = epoch_rates(warm_make, n, args.epochs)
        rows.append(("S3, APFStream, cache_dir, warm epochs", statistics.median(warm)))
        print(f"{'':<42} {'samples/s':>10} {'vs local':>9} {'vs GET floor':>13}")
        for name, r in rows:
            print(f"{name:<42} {r:>10.1f} {r / base:>8.2f}x {r / gets:>12.2f}x")
        print(
            f"no cache: {per_req:.1f} ranged requests and {per_bytes / 1024:.0f} KiB per sample "
            f"(a sample's patches are {L * 8 * 8 * 3 / 1024:.0f} KiB raw); warm epochs: "
            f"{Counting.requests} shard requests"
        )

        src = builders.btcv(work / "btcv", cases=8)
        fs.put(str(src), "bench/btcv", recursive=True)
        times = {}
        for name, inp in (("local", src), ("s3", "s3://bench/btcv")):
            ts = []
            for _ in range(args.epochs):
                out = work / f"ct-{name}"
                t0 = time.perf_counter()
                compile_dataset(
                    CompileConfig.from_options(
                        input=inp, output=out, length=256, workers=2, overwrite=True, storage_options=options
                    )
                )
                ts.append(time.perf_counter() - t0)
            times[name] = statistics.median(ts)
        same = builders.tree_bytes(work / "ct-local") == builders.tree_bytes(work / "ct-s3")
        print(
            f"\ncompile 8 CT volumes (240 slices, L = 256, -j 2): local {times['local']:.2f} s, "
            f"from S3 {times['s3']:.2f} s = {times['s3'] / times['local']:.2f}x; outputs identical: {same}"
        )
        slide_level_read(fs, options, work, args.epochs)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
