"""Killed at any moment: SIGKILL a CLI compile (its whole process group) at random moments, then
``--resume``; every resumed dataset must be byte-identical to an uninterrupted compile.

Prints kills survived / tried per worker mode, with how many kills landed before the first shard,
among the shards and after the manifest (where in the run each kill fell), and the baseline: the
uninterrupted compile's wall time in the same run. A kill counts as survived when the resume
exits 0, leaves no lock and its files equal the uninterrupted compile's byte for byte.

    python benchmarks/bench_kills.py --kills 50            # -j 2 and --scheduler local:2
    python benchmarks/bench_kills.py --kills 10 --mode -j2
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import builders
from tests.test_hardening import kill_and_resume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=50, help="kills per mode (default 50)")
    parser.add_argument("--mode", action="append", help="worker flags, e.g. -j2 (default: -j2 and --scheduler=local:2)")
    parser.add_argument("--cases", type=int, default=3, help="CT cases of the input (30 slices each)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    modes = args.mode or ["-j2", "--scheduler=local:2"]
    with tempfile.TemporaryDirectory(prefix="apf-kills-") as tmp:
        root = Path(tmp)
        src = builders.btcv(root / "btcv", cases=args.cases)
        print(f"input: {args.cases} real CT cases (bundled sample), {30 * args.cases} slices, L = 48, 8 per shard")
        for mode in modes:
            out = root / "ds"
            cmd = ["apfcompile", "compile", str(src), str(out), "--length", "48", "--shard-samples", "8", mode]
            walls = []
            for _ in range(3):
                shutil.rmtree(out, ignore_errors=True)
                t = time.perf_counter()
                builders_run(cmd)
                walls.append(time.perf_counter() - t)
            whole = float(np.median(walls))
            reference = builders.tree_bytes(out)
            rng = np.random.default_rng(args.seed)
            survived, phases = (
                0,
                {"before the first shard": 0, "among the shards": 0, "after the manifest (or done)": 0},
            )
            for delay in rng.uniform(0.0, whole, args.kills):
                shutil.rmtree(out, ignore_errors=True)
                ok = kill_and_resume(cmd, float(delay), probe=lambda: phases_of(out, phases))
                ok = ok and builders.tree_bytes(out) == reference and not (out / ".apf.lock").exists()
                survived += ok
            where = ", ".join(f"{n} {k}" for k, n in phases.items())
            print(f"{mode:>22}: {survived}/{args.kills} kills survived (byte-identical after --resume); {where}")
            print(f"{'':>22}  baseline: uninterrupted compile {whole:.2f} s (median of 3, CLI start-up included)")


def builders_run(cmd: list[str]) -> None:
    import subprocess

    subprocess.run(cmd, check=True, capture_output=True)


def phases_of(out: Path, phases: dict) -> None:
    """Where the run was when it was killed: counted from what it had left in ``out``."""
    shards = out / "shards"
    if (out / "apf.json").exists():
        phases["after the manifest (or done)"] += 1
    elif shards.is_dir() and any(p.name[0].isdigit() for p in shards.iterdir()):
        phases["among the shards"] += 1
    else:
        phases["before the first shard"] += 1


if __name__ == "__main__":
    main()
