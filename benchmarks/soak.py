"""Days of reading, compressed: a 10,000-sample labelled dataset streamed for 3 epochs by 2 ranks
x 2 persistent DataLoader workers (each rank a process of its own, as under torchrun), then one
epoch from an S3 test server (moto) behind a proxy that fails 5 % of GETs (half ``503 SlowDown``,
half cut off mid-body) and holds back another 5 % by 50-300 ms.

Prints, per run: every sample exactly once per epoch (checked), resident memory of the ranks and
their workers at the end of each epoch (growth after the first epoch; goal <= 5 %), open file
descriptors at the end of each epoch, and for S3 what the proxy did. ``tests/soak.py`` has the
ranks' code and the checks; ``tests/test_soak.py`` runs a small version in the test suite.

    python benchmarks/soak.py [--samples 10000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import CACHE
from formats import open_dataset
from tests import soak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--s3-samples", type=int, default=2_000, help="samples of the S3 run (0: skip it)")
    args = parser.parse_args()
    ds = CACHE / f"soak_{args.samples}"
    if not (ds / "apf.json").exists():
        print(f"making {ds} ...")
        soak.make_dataset(ds, args.samples)
    keys = open_dataset(ds).samples["key"].to_pylist()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        reports = soak.run(str(ds), args.ranks, args.workers, args.epochs, Path(tmp))
        wall = time.perf_counter() - t
        fig = soak.check(reports, keys)
    rate = len(keys) * args.epochs / wall
    print(f"local: {len(keys):,} samples x {args.epochs} epochs, {args.ranks} ranks x {args.workers} workers")
    print(f"  every sample exactly once per epoch; epochs in distinct orders ({wall:.0f} s, {rate:,.0f} samples/s)")
    print(f"  resident memory (ranks + workers, MiB) per epoch: {fig['rss_mib']}; growth {fig['rss_growth']:+.1%}")
    print(f"  open file descriptors per epoch: {fig['fds']} (bound from open shards: +{fig['fd_bound']})")
    if args.s3_samples:
        s3_run(args)


def s3_run(args) -> None:
    try:
        import moto  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError:
        print("S3: skipped (pip install 'apfcompile[test]' for moto and s3fs)")
        return
    from tests.flaky_proxy import FlakyProxy

    ds = CACHE / f"soak_{args.s3_samples}"
    if not (ds / "apf.json").exists():
        soak.make_dataset(ds, args.s3_samples)
    keys = open_dataset(ds).samples["key"].to_pylist()
    with soak.moto_s3("soak", ds) as endpoint, FlakyProxy(endpoint, fail=0.05, slow=0.05) as proxy:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            reports = soak.run("s3://soak/ds", args.ranks, args.workers, 1, Path(tmp), endpoint=proxy.url)
            wall = time.perf_counter() - t
        seen = [k for rank in reports for k in rank[0]["keys"]]
        assert sorted(seen) == sorted(keys), "S3: a sample was lost or repeated"
        st = proxy.stats
    print(
        f"S3 (moto behind a flaky proxy): {len(keys):,} samples, 1 epoch, {args.ranks} ranks x {args.workers} workers"
    )
    print(f"  every sample exactly once ({wall:.0f} s); the proxy answered {st['requests']:,} requests:")
    print(f"  {st['failed']} with 503 SlowDown, {st['cut']} cut off mid-body, {st['slowed']} held back 50-300 ms")


if __name__ == "__main__":
    main()
