"""Labelled records into a GPU training step (the loader's transfer figures; needs CUDA).

The records of ``bench_peers.py`` (512 samples of L = 4,096, p = 8: image 3 x uint8, mask uint8,
box/size/centre; shuffled, batch 8, warm page cache) go through what a segmentation step does
first: the batch to the GPU (pinned, ``non_blocking``), the mask widened there (``.long()``, as a
loss wants it) and rebuilt at full size (``loaders.reconstruct`` into 1024^2). Each figure is the
median samples/s of several epochs, beside its baselines from the same run:

- the floor: raw ``.npy`` memory-mapped through the same DataLoader and the same GPU step;
- the bus: one pinned batch of the same bytes copied host-to-device again and again (no reading);
- int64 masks over the bus (what v1 sent): the mask widened on the CPU before the copy;
- reconstruction alone on the GPU against writing its output once (``torch.full``).

Usage: python benchmarks/bench_gpu.py [--epochs 3] [--workers 0 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_peers import BATCH, CACHE, FIELDS, SIDE, NpyFiles, labelled_dataset, npy_rows, records
from torch.utils.data import DataLoader

from formats import open_dataset
from loaders import APFStream, reconstruct

L = 4096


def gpu_step(batch: dict, dev: torch.device, widen_on_cpu: bool = False) -> torch.Tensor:
    """What a step does before its model: tensors to the GPU, the mask widened and rebuilt."""
    mask = batch["mask"].long() if widen_on_cpu else batch["mask"]
    image = batch["image"].to(dev, non_blocking=True)
    mask = mask.to(dev, non_blocking=True).long()
    box = batch["box"].to(dev, non_blocking=True)
    valid = batch["valid"].to(dev, non_blocking=True) if "valid" in batch else None
    if valid is None:
        valid = torch.ones(box.shape[:2], dtype=torch.bool, device=dev)
    full = reconstruct(mask, box, valid, (SIDE, SIDE))
    return image.float().mean() + full.float().mean()


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def rate(make, n: int, epochs: int, dev: torch.device, widen_on_cpu: bool = False) -> float:
    loader = make()
    for batch in loader:
        gpu_step(batch, dev, widen_on_cpu)
    sync(dev)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        seen = 0
        for batch in loader:
            gpu_step(batch, dev, widen_on_cpu)
            seen += len(batch["id"])
        sync(dev)
        times.append(time.perf_counter() - t0)
        assert seen == n, (seen, n)
    return n / statistics.median(times)


def median_ms(fn, dev: torch.device, repeat: int = 20) -> float:
    fn()
    sync(dev)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="*", default=[0, 4])
    ap.add_argument("--device", default="cuda", help="cpu only to try this script where there is no GPU")
    args = ap.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return
    torch.set_num_threads(1)
    path = labelled_dataset()
    n = open_dataset(path).manifest.totals["samples"]
    npy_dir = CACHE / "peers_labelled" / "npy"
    npy_rows(lambda: records(path), npy_dir, n, 1, 0) if not (npy_dir / "done").exists() else None
    name = torch.cuda.get_device_name() if dev.type == "cuda" else "CPU (trial run)"
    print(f"{name}, torch {torch.__version__}; {n} labelled records, L = {L}, batch {BATCH}")
    rows = []
    for w in args.workers:
        kw = dict(num_workers=w, persistent_workers=w > 0, pin_memory=dev.type == "cuda")

        def apf(verify=True, kw=kw):
            stream = APFStream(path, length=L, batch_size=BATCH, shuffle=True, verify_checksums=verify)
            return DataLoader(stream, batch_size=None, **kw)

        def npy(kw=kw):
            return DataLoader(NpyFiles(npy_dir), batch_size=BATCH, shuffle=True, **kw)

        floor = rate(npy, n, args.epochs, dev)
        rows.append((f"raw .npy memmap (floor), {w} workers", floor, floor))
        rows.append((f"APFStream, {w} workers", rate(apf, n, args.epochs, dev), floor))
        rows.append((f"APFStream, int64 mask over the bus, {w} w.", rate(apf, n, args.epochs, dev, True), floor))
    print(f"\n{'into the GPU step (samples/s)':<44} {'samples/s':>10} {'vs floor':>9}")
    for name, r, floor in rows:
        print(f"{name:<44} {r:>10.0f} {r / floor:>8.2f}x")

    batch = next(iter(APFStream(path, length=L, batch_size=BATCH, shuffle=False)))
    pin = (lambda t: t.pin_memory()) if dev.type == "cuda" else (lambda t: t)
    tensors = {k: pin(batch[k]) for k in FIELDS}
    nbytes = sum(t.untyped_storage().nbytes() for t in tensors.values())
    t_copy = median_ms(lambda: [t.to(dev, non_blocking=True) for t in tensors.values()], dev)
    wide = pin(tensors["mask"].long())
    t_wide = median_ms(lambda: wide.to(dev, non_blocking=True), dev)
    print(f"\nthe bus: one batch ({nbytes / 1e6:.2f} MB pinned) host-to-device {t_copy:.3f} ms")
    print(f"  = {nbytes / t_copy / 1e6:.1f} GB/s, {BATCH / t_copy * 1e3:.0f} samples/s if nothing else ran")
    print(f"  its mask alone as int64 ({wide.numel() * 8 / 1e6:.1f} MB): {t_wide:.3f} ms")
    mask, box = tensors["mask"].to(dev), tensors["box"].to(dev)
    valid = batch["valid"].to(dev)
    t_rec = median_ms(lambda: reconstruct(mask, box, valid, (SIDE, SIDE)), dev)
    t_fill = median_ms(lambda: torch.full((BATCH, SIDE, SIDE), 0, dtype=torch.uint8, device=dev), dev)
    print(f"reconstruct {BATCH} masks of {SIDE}^2 on the GPU: {t_rec:.3f} ms vs fill floor {t_fill:.3f} ms")


if __name__ == "__main__":
    main()
