"""The compile's processes keep freed memory for their next frame (glibc's malloc thresholds)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from apfcompile.build.allocator import ENVIRONMENT

_PROBE = """
import json, resource, sys
import numpy as np
from apfcompile.build.allocator import keep_freed_memory
took = keep_freed_memory() if sys.argv[1] == "tuned" else False
def faults_of_a_frame():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    arrays = [np.ones(4 << 20, np.uint8) for _ in range(4)]  # a frame's four 4 MB arrays, filled
    del arrays
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_a_frame()
print(json.dumps({"took": took, "faults": min(faults_of_a_frame() for _ in range(3))}))
"""


def _probe(mode: str) -> dict:
    env = {k: v for k, v in __import__("os").environ.items() if k not in ENVIRONMENT}
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_frames_array_is_not_faulted_in_again():
    """Untuned, glibc hands the 16 MB a frame freed back to the kernel (its free heap exceeds twice
    its threshold), so the next frame faults it in again, ~4,000 pages (~3.5 us each on the
    development VM); tuned, the freed memory is reused: next to no faults."""
    untuned, tuned = _probe("untuned"), _probe("tuned")
    if not tuned["took"]:
        pytest.skip("not glibc, or mallopt refused")
    assert untuned["faults"] >= 1000
    assert tuned["faults"] < 100
