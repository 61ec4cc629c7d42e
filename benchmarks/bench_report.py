"""The report page's cost on a 10,000-sample dataset (goal: <= 30 s), local and on S3 (moto).

Whole CLI processes, start-up included: ``apfcompile report`` beside the baseline ``apfcompile
inspect`` of the same dataset in the same run (medians of 3), and the page's size.

    python benchmarks/bench_report.py [--samples 10000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import CACHE
from tests import soak


def timed(cmd: list[str], repeat: int = 3) -> float:
    walls = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
    return statistics.median(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000)
    args = parser.parse_args()
    ds = CACHE / f"soak_{args.samples}"
    if not (ds / "apf.json").exists():
        soak.make_dataset(ds, args.samples)
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        report = timed(["apfcompile", "report", str(ds), "-o", str(page)])
        inspect = timed(["apfcompile", "inspect", str(ds)])
        print(
            f"local, {args.samples:,} samples: report {report:.1f} s (page {page.stat().st_size / 1e6:.2f} MB); "
            f"baseline inspect {inspect:.1f} s; ratio {report / inspect:.2f}x"
        )
        s3(ds, Path(tmp), args.samples)


def s3(ds: Path, tmp: Path, samples: int) -> None:
    try:
        import moto  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError:
        print("S3: skipped (pip install 'apfcompile[test]' for moto and s3fs)")
        return
    with soak.moto_s3("report", ds) as endpoint:
        opt = ["--storage-option", f"endpoint_url={endpoint}"]
        report = timed(["apfcompile", "report", "s3://report/ds", "-o", str(tmp / "s3.html"), *opt])
        inspect = timed(["apfcompile", "inspect", "s3://report/ds", *opt])
    print(
        f"S3 (moto, loopback), {samples:,} samples: report {report:.1f} s; baseline inspect {inspect:.1f} s; "
        f"ratio {report / inspect:.2f}x"
    )


if __name__ == "__main__":
    main()
