"""Codec measurements behind the shard format's per-array choices (issue #3).

For real data — the H&E region (2967 x 2220 from ../shared, else the bundled crop; L = 4,096), the
bundled CT volume (30 slices, L = 64, with organ labels) and the nuclei image (L = 512, with
instance labels) — prints the zstd-compressed size of each array as a share of its raw bytes, and
zstd's decode speed; then, for masks as the loader reads them (chunks of 512 rows), the size and
decode speed of zstd-1/3/9, lz4 and no codec (a copy); then, for images in the same chunks, the
size, encode and decode speed of zstd-2 (the image codec before) and blosc (LZ4 over bit-shuffled
values, the writer's). That is what the writer's rule rests on: compress images only where it
saves >= 15 %, with blosc; store masks raw (every codec here decodes masks slower than the
loader's whole budget per sample allows), compress the node metadata (Parquet).
Usage: python benchmarks/bench_codecs.py
"""

from __future__ import annotations

import io
import time

import cv2
import numcodecs
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from common import real_tissue

from apfcompile import PatchParams, patchify
from apfcompile.demo import sample_path
from apfcompile.inputs.readers import read_array


def ratio(data: np.ndarray, level: int) -> tuple[float, float]:
    raw = np.ascontiguousarray(data).tobytes()
    codec = numcodecs.Zstd(level=level)
    packed = codec.encode(raw)
    t0 = time.perf_counter()
    for _ in range(5):
        codec.decode(packed)
    speed = 5 * len(raw) / (time.perf_counter() - t0) / 1e9
    return len(packed) / len(raw), speed


def chunked(arr: np.ndarray, codec, rows: int = 512) -> tuple[float, float, float]:
    """(compressed / raw, encode GB/s, decode GB/s) of ``arr`` cut into chunks of ``rows`` rows, as
    the loader reads them, kept as typed arrays (blosc shuffles by the element size); ``codec``
    None is a plain copy. Medians of 5 passes."""
    chunks = [np.ascontiguousarray(arr[i : i + rows]) for i in range(0, len(arr), rows)]
    raw = sum(c.nbytes for c in chunks)
    enc, dec = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        packed = [c.tobytes() if codec is None else codec.encode(c) for c in chunks]
        t1 = time.perf_counter()
        for c in packed:
            np.frombuffer(c, np.uint8).copy() if codec is None else codec.decode(c)
        enc.append(t1 - t0)
        dec.append(time.perf_counter() - t1)
    return sum(len(c) for c in packed) / raw, raw / sorted(enc)[2] / 1e9, raw / sorted(dec)[2] / 1e9


def parquet_ratio(columns: dict[str, np.ndarray]) -> float:
    table = pa.table(columns)
    raw = sum(c.nbytes for c in columns.values())
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return len(buf.getvalue()) / raw


def main() -> None:
    cases = []
    # Not the mirror-tiled 8 K image: its repeats would flatter zstd. The real region as it is.
    tissue, origin = real_tissue()
    s = patchify(tissue, None, PatchParams.make(8, length=4096))
    cases.append(("H&E region, L=4096", s.patches, None, s.leaves.columns()))
    print(f"H&E region: {origin}, {tissue.shape[0]} x {tissue.shape[1]}")
    ct, seg = read_array(sample_path("ct_abdomen.nii.gz")), read_array(sample_path("ct_abdomen_seg.nii.gz"))
    parts = [
        patchify(
            np.ascontiguousarray(ct[:, :, z]),
            np.ascontiguousarray(seg[:, :, z]),
            PatchParams.make(8, length=64, window=(-175, 250)),
        )
        for z in range(ct.shape[2])
    ]
    cases.append(
        (
            "CT 30 slices, L=64",
            np.concatenate([p.patches for p in parts]),
            np.concatenate([p.mask for p in parts]),
            {k: np.concatenate([p.leaves.columns()[k] for p in parts]) for k in parts[0].leaves.columns()},
        )
    )
    grey = cv2.medianBlur(cv2.cvtColor(tissue, cv2.COLOR_RGB2GRAY), 9)
    classes = np.where(grey > 200, 0, np.where(grey < 120, 2, 1)).astype(np.uint8)  # as bench_peers' masks
    he_mask = patchify(tissue, classes, PatchParams.make(8, length=4096)).mask
    nuc, nuc_mask = read_array(sample_path("nuclei_image.tif")), read_array(sample_path("nuclei_mask.tif"))
    s = patchify(nuc, nuc_mask, PatchParams.make(8, length=512))
    cases.append(("nuclei, L=512", s.patches, s.mask, s.leaves.columns()))
    print(f"{'data':<22} {'array':<8} {'raw MB':>8} {'zstd-1':>7} {'zstd-3':>7} {'decode GB/s':>12}")
    for name, image, mask, nodes in cases:
        for label, arr in (("image", image), ("mask", mask)):
            if arr is None:
                continue
            r1, _ = ratio(arr, 1)
            r3, speed = ratio(arr, 3)
            print(f"{name:<22} {label:<8} {arr.nbytes / 1e6:>8.2f} {r1:>7.3f} {r3:>7.3f} {speed:>12.2f}")
        print(
            f"{name:<22} {'nodes':<8} {sum(v.nbytes for v in nodes.values()) / 1e6:>8.2f} "
            f"{'':>7} {parquet_ratio(nodes):>7.3f}   (parquet, zstd)"
        )
    codecs = {
        "none": None,
        "zstd-1": numcodecs.Zstd(level=1),
        "zstd-3": numcodecs.Zstd(level=3),
        "zstd-9": numcodecs.Zstd(level=9),
        "lz4": numcodecs.LZ4(),
    }
    ct_1024 = np.concatenate(
        [
            patchify(
                np.ascontiguousarray(ct[:, :, z]), None, PatchParams.make(8, length=1024, window=(-175, 250))
            ).patches
            for z in range(ct.shape[2])
        ]
    )
    images = [(n, i) for n, i, _, _ in cases] + [("CT 30 slices, L=1024", ct_1024)]
    blosc = numcodecs.Blosc("lz4", 5, numcodecs.Blosc.BITSHUFFLE)
    print("\nimages in 512-row chunks (size / raw, encode GB/s, decode GB/s):")
    print(f"{'data':<22} {'zstd-2 (before)':>28} {'blosc lz4 bitshuffle (now)':>30}")
    for name, image in images:
        cells = [chunked(image, c) for c in (numcodecs.Zstd(level=2), blosc)]
        print(f"{name:<22} " + " ".join(f"{r:>8.3f} {e:>6.2f} {d:>6.2f}GB/s  " for r, e, d in cells))
    masks = [("H&E 3 classes, L=4096", he_mask)] + [(n, m) for n, _, m, _ in cases if m is not None]
    print("\nmasks in 512-row chunks (size / raw, decode GB/s):")
    print(f"{'data':<22} " + " ".join(f"{k:>15}" for k in codecs))
    for name, mask in masks:
        cells = [chunked(mask.astype(np.uint8) if mask.max() < 256 else mask, c) for c in codecs.values()]
        print(f"{name:<22} " + " ".join(f"{r:>6.3f} {g:>5.2f}GB/s" for r, _, g in cells))


if __name__ == "__main__":
    main()
