"""Days of reading, compressed: ranks x DataLoader workers stream a dataset for several epochs.

Each rank runs in a process of its own (as under torchrun), with ``APFStream(rank=r,
world_size=R)`` in a ``DataLoader`` of persistent workers, and reports per epoch the keys it
read, its resident memory (itself and its workers, from /proc) and its open file descriptors.
:func:`check` then asserts every sample exactly once per epoch over all ranks, memory flat after
the first epoch (<= 5 % growth) and no growth in open descriptors.

Run a rank: ``python -m tests.soak DATASET --rank R --world W --workers N --epochs E OUT.json``
(with ``--endpoint URL`` for a dataset on S3 behind that endpoint).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def rank_main(argv: list[str] | None = None) -> None:
    import torch

    from loaders import APFStream

    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("out")
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--endpoint")
    args = parser.parse_args(argv)
    options = {"client_kwargs": {"endpoint_url": args.endpoint}} if args.endpoint else None
    stream = APFStream(
        args.dataset,
        length=32,
        batch_size=args.batch,
        seed=7,
        rank=args.rank,
        world_size=args.world,
        storage_options=options,
    )
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=args.workers, persistent_workers=args.workers > 0
    )
    me, epochs = os.getpid(), []
    for epoch in range(args.epochs):
        stream.set_epoch(epoch)
        keys = []
        for batch in loader:
            keys += batch["key"]
        kids = _children(me)
        epochs.append(
            {
                "keys": keys,
                "rss_kib": _rss_kib(me) + sum(_rss_kib(k) for k in kids),
                "fds": _fds(me) + sum(_fds(k) for k in kids),
                "workers": len(kids),
            }
        )
    Path(args.out).write_text(json.dumps(epochs))


def run(dataset: str, ranks: int, workers: int, epochs: int, folder: Path, endpoint: str | None = None) -> list:
    """Run ``ranks`` rank processes at once; their per-epoch reports, by rank."""
    procs = []
    for r in range(ranks):
        cmd = [sys.executable, "-m", "tests.soak", dataset, str(folder / f"rank{r}.json")]
        cmd += ["--rank", str(r), "--world", str(ranks), "--workers", str(workers), "--epochs", str(epochs)]
        if endpoint:
            cmd += ["--endpoint", endpoint]
        procs.append(subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1], stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"a rank failed (exit status {p.returncode}):\n{err[-3000:]}")
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in range(ranks)]


def check(reports: list, all_keys: list[str]) -> dict:
    """Assert exactly once per epoch, flat memory and descriptors; the figures as a dict."""
    epochs = len(reports[0])
    for e in range(epochs):
        seen = [k for rank in reports for k in rank[e]["keys"]]
        assert len(seen) == len(all_keys) and sorted(seen) == sorted(all_keys), f"epoch {e}: not exactly once"
    orders = [tuple(k for rank in reports for k in rank[e]["keys"]) for e in range(epochs)]
    assert len(set(orders)) == epochs, "epochs repeated the same order (set_epoch did not reach the workers)"
    rss = [sum(rank[e]["rss_kib"] for rank in reports) for e in range(epochs)]
    fds = [sum(rank[e]["fds"] for rank in reports) for e in range(epochs)]
    growth = rss[-1] / rss[0] - 1 if epochs > 1 else 0.0
    assert growth <= 0.05, f"resident memory grew {growth:.1%} after the first epoch: {rss}"
    # Open shards stay open (cache_shards of them per process, each with its image and mask file):
    # a worker that first meets a shard in a later epoch opens it then. Beyond that bound, a leak.
    workers = max(rank[0]["workers"] for rank in reports)
    bound = len(reports) * max(workers, 1) * 8 * 2
    assert fds[-1] - fds[0] <= bound, f"open file descriptors grew from {fds[0]} to {fds[-1]}"
    return {"rss_mib": [round(r / 1024) for r in rss], "rss_growth": growth, "fds": fds, "fd_bound": bound}


def make_dataset(out: Path, samples: int, shard_samples: int = 500) -> Path:
    """``samples`` labelled samples, 64 x 64 crops (every offset a new sample) of the bundled
    real nuclei image and its instance mask, p = 8, L = 32: small samples, many of them."""
    from apfcompile import write_dataset
    from apfcompile.demo import sample_path
    from apfcompile.inputs.readers import read_array

    image, mask = read_array(sample_path("nuclei_image.tif")), read_array(sample_path("nuclei_mask.tif"))
    h, w = image.shape[:2]
    offsets = [(y, x) for y in range(0, h - 64, 3) for x in range(0, w - 64, 3)][:samples]
    assert len(offsets) == samples, f"the image has {len(offsets)} offsets"

    def crops():
        for y, x in offsets:
            yield (
                f"y{y:03d}x{x:03d}",
                image[y : y + 64, x : x + 64],
                (mask[y : y + 64, x : x + 64] % 256).astype(np.uint8),
            )

    write_dataset(crops(), out, patch_size=8, length=32, shard_samples=shard_samples, mask_dtype="uint8")
    return out


@contextlib.contextmanager
def moto_s3(bucket: str, upload: Path | None = None, prefix: str = "ds"):
    """A moto S3 server on loopback with ``bucket`` (and ``upload`` copied to ``bucket/prefix``),
    test credentials in the environment; yields its endpoint URL. For the benchmark scripts."""
    import logging

    import s3fs
    from moto.server import ThreadedMotoServer

    from .test_object_storage import free_port

    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
        fs.mkdir(bucket)
        if upload is not None:
            fs.put(str(upload), f"{bucket}/{prefix}", recursive=True)
        yield endpoint
    finally:
        server.stop()


if __name__ == "__main__":
    rank_main()
