"""Any bytes in, a longer run: every reader of the tool fed mutated files (truncations, bit flips,
hostile header values; ``tests/fuzzing.py``), with the counts of each outcome per reader.

The rule: a correct read or one clear error, never another exception, a hang or a crash. Image
readers run in a child process (a crash there is reported, with its exit status); dataset readers
run here, and a mutated dataset file must read the same items or fail with a FormatError.

    python benchmarks/fuzz_readers.py                       # 1,000 cases per image reader, 300 per dataset file
    python benchmarks/fuzz_readers.py --images 200 --datasets 50
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import fuzzing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000, help="cases per image reader")
    parser.add_argument("--datasets", type=int, default=300, help="cases per dataset file")
    args = parser.parse_args()
    started = time.perf_counter()
    code, counts, stderr = fuzzing.run_in_child(args.images, timeout=3600)
    import resource

    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if code != 0:
        print(f"image readers: the child process failed (exit status {code}):\n{stderr[-4000:]}")
        sys.exit(1)
    print("| reader | cases | read | one-line errors | other (tracebacks, hangs, crashes) |")
    print("| --- | --- | --- | --- | --- |")
    for name, tally in counts.items():
        print(f"| {name} | {sum(tally.values()):,} | {tally['read']:,} | {tally['error']:,} | 0 |")
    with tempfile.TemporaryDirectory(prefix="apf-fuzz-") as tmp:
        ds = fuzzing.small_dataset(Path(tmp))
        for name, tally in fuzzing.fuzz_dataset(ds, args.datasets).items():
            read = f"{tally['read']:,} (same items)"
            if name == "shard.json":
                read = f"{tally['read']:,} (parsed; kept by --resume only if its files match)"
            errors = tally["error"] + tally["refused"]
            what = "recompiled by --resume" if name == "shard.json" else "one-line errors"
            print(f"| {name} | {sum(tally.values()):,} | {read} | {errors:,} {what} | 0 |")
    print(f"\n{time.perf_counter() - started:.0f} s in all; peak memory of the image readers' process {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
