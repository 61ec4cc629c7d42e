"""Shared helpers for the benchmark scripts: real test images and honest timing."""

from __future__ import annotations

import functools
import gc
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from apfcompile.demo import sample_path
from apfcompile.inputs.readers import read_array

ROOT = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
SHARED_SVS = ROOT.parents[1] / "shared" / "data" / "wsi" / "cmu_small_region.svs"


def real_tissue() -> tuple[np.ndarray, str]:
    """The real H&E region: ../shared's SVS (2967 x 2220) if present, else the bundled crop."""
    if SHARED_SVS.exists():
        return read_array(SHARED_SVS), "shared/data/wsi/cmu_small_region.svs"
    return read_array(sample_path("he_tissue.tif")), "apfcompile/samples/he_tissue.tif"


def mirror_tile(image: np.ndarray, side: int) -> np.ndarray:
    """A side x side real-texture image: the image and its mirror images tiled (no seams)."""
    row = np.concatenate([image, image[:, ::-1]], axis=1)
    block = np.concatenate([row, row[::-1]], axis=0)
    reps = (-(-side // block.shape[0]), -(-side // block.shape[1]), 1)
    return np.ascontiguousarray(np.tile(block, reps)[:side, :side])


def texture_png(side: int = 8192) -> tuple[Path, str]:
    """A cached PNG of the mirror-tiled real tissue at side x side (made once, ~75 MB at 8 K)."""
    tissue, origin = real_tissue()
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"tissue_{side}.png"
    if not path.exists():
        tmp = path.with_suffix(".tmp.png")
        cv2.imwrite(str(tmp), mirror_tile(tissue, side)[:, :, ::-1])
        tmp.rename(path)
    return path, origin


def timeit(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time over ``repeat`` runs (after one untimed warm-up) and the last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def timeit_pair(a: Callable[[], object], b: Callable[[], object], repeat: int) -> tuple[float, float, float, object]:
    """Run ``a`` and ``b`` alternately ``repeat`` times (so drift hits both alike).

    Returns the median time of each, the median of the per-pair ratios b/a, and b's last result.
    """
    a()
    result = b()
    ta, tb = [], []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        result = b()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    ratio = statistics.median(y / x for x, y in zip(ta, tb))
    return statistics.median(ta), statistics.median(tb), ratio, result


@functools.cache
def bytecode_cached() -> None:
    """Compile this checkout's modules to bytecode (``__pycache__``), as ``pip install`` does for
    an installed package: an editable install under ``PYTHONDONTWRITEBYTECODE=1`` (as on some CI
    machines) would otherwise compile every module from source in every timed process."""
    import compileall

    for package in ("apfcompile", "formats", "loaders"):
        compileall.compile_dir(ROOT.parent / package, quiet=1)


def timed_process(cmd: list[str]) -> float:
    """Wall seconds of one whole process (start-up included), its output discarded; the modules'
    bytecode is cached first (:func:`bytecode_cached`)."""
    return timed_busy(cmd)[0]


def machine_busy_s() -> float | None:
    """CPU seconds this machine's cores have been busy since boot, all processes (Linux's
    ``/proc/stat``: user + nice + system + irq + softirq + steal); None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:9]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields)
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def timed_busy(cmd: list[str]) -> tuple[float, float | None]:
    """(wall seconds, CPU seconds the whole machine was busy meanwhile) of one whole process: the
    second counts its pool workers too (a fork server's children are not this process's), and
    anything else running, so take it on an otherwise idle machine. None where unknown."""
    bytecode_cached()
    b0, t0 = machine_busy_s(), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, b1 = time.perf_counter() - t0, machine_busy_s()
    return wall, None if b0 is None or b1 is None else b1 - b0


def cores_busy(runs: list[tuple[float, float | None]]) -> float | None:
    """Median cores kept busy (busy CPU seconds / wall seconds) over :func:`timed_busy` runs."""
    if any(cpu is None for _, cpu in runs):
        return None
    return statistics.median(cpu / wall for wall, cpu in runs)
