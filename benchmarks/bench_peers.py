"""Labelled records through every loader a user might pick (issue #14 figures).

Records: 512 samples of L = 4,096, p = 8 — image (4096, 8, 8, 3) uint8, mask (4096, 8, 8) uint8,
node metadata box (4096, 4) int32 + size (4096,) int32 + centre (4096, 2) float32: 1.18 MB raw a
sample. They come from one compiled dataset (512 crops of 1024^2 of the real H&E texture, each
with a 3-class mask thresholded from it, ``images/`` + ``labels/`` folders; cached), and every
system reads exactly those bytes: raw ``.npy`` files memory-mapped (the floor), WebDataset (tar of
``.npy``), LitData and Mosaic Streaming (MDS, zstd, as their docs suggest), plain zarr-python on
the dataset's own arrays, and ``APFStream``. Every system yields the same item (image as an
(L, C, p, p) view of channels-last bytes, mask, box, size, centre), shuffled, batch 8, warm page
cache, at 0 and 2 DataLoader workers; each figure is the median of several epochs after a warm-up,
printed beside the floor and the best peer from the same run.

Goals (issue #14): APFStream >= 2,500 samples/s with 0 workers and ahead of every peer at 0 and 2
workers; checksums (every chunk read checked) cost <= 5 % (``verify_checksums=False`` beside it).

Peers need their packages: ``pip install webdataset litdata mosaicml-streaming`` in an environment
with CPU torch (their wheels pull CUDA torch and torchvision otherwise; Mosaic imports torchvision
only for its vision datasets, which this script stubs out so a broken torchvision cannot stop it).
A missing peer is reported and skipped.

Usage: python benchmarks/bench_peers.py [--epochs 5] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import io
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import torch
from bench_loader import rate
from common import CACHE, texture_png
from torch.utils.data import DataLoader, Dataset

from apfcompile import CompileConfig, compile_dataset
from formats import open_dataset
from loaders import APFStream

N, SIDE, L, P, BATCH = 512, 1024, 4096, 8, 8


def labelled_sources() -> Path:
    """512 PNG crops of 1024^2 of the real H&E texture (64 places x 8 flips/transposes), each with
    a mask: 0 background (bright), 1 stroma, 2 nuclei (dark), from the median-blurred grey level."""
    folder = CACHE / f"labelled_{SIDE}_{N}"
    if (folder / "done").exists():
        return folder
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    big = cv2.imread(str(texture_png(8192)[0]))
    per = 8192 // SIDE
    for i in range(N):
        k, d = i % (per * per), i // (per * per)
        y, x = (k // per) * SIDE, (k % per) * SIDE
        crop = big[y : y + SIDE, x : x + SIDE]
        crop = crop[::-1] if d & 1 else crop
        crop = crop[:, ::-1] if d & 2 else crop
        crop = np.ascontiguousarray(crop.transpose(1, 0, 2) if d & 4 else crop)
        grey = cv2.medianBlur(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), 9)
        mask = np.where(grey > 200, 0, np.where(grey < 120, 2, 1)).astype(np.uint8)
        cv2.imwrite(str(folder / "images" / f"tile{i:03d}.png"), crop)
        cv2.imwrite(str(folder / "labels" / f"tile{i:03d}.png"), mask)
    (folder / "done").write_text("ok")
    return folder


def labelled_dataset() -> Path:
    """The compiled dataset (cached; recompiled when the format's codecs change)."""
    out = CACHE / "labelled_dataset"
    if not (out / "apf.json").exists():
        compile_dataset(
            CompileConfig.from_options(
                input=labelled_sources(), output=out, length=L, patch_size=P, overwrite=True, workers=2
            )
        )
    return out


def records(path: Path):
    """(id, fields) of every sample, the bytes every system stores."""
    ds = open_dataset(path)
    for row in ds.samples.to_pylist():
        s = ds.read_sample(row["sample"])
        n = s.nodes
        yield (
            row["sample"],
            {
                "image": s.image,
                "mask": s.mask,
                "box": np.stack([n.x1, n.x2, n.y1, n.y2], 1).astype(np.int32),
                "size": n.size.astype(np.int32),
                "center": np.stack([n.cx, n.cy], 1).astype(np.float32),
            },
        )


FIELDS = ("image", "mask", "box", "size", "center")


def to_item(sid, fields: dict) -> dict:
    """The item every peer yields: APFStream's contract (image an (L, C, p, p) view, no copy)."""
    out = {k: torch.from_numpy(np.asarray(fields[k])) for k in FIELDS}
    out["image"] = out["image"].permute(0, 3, 1, 2)
    out["id"] = int(sid)
    return out


class NpyFiles(Dataset):
    """Raw .npy per field and sample, memory-mapped: the floor of reading bytes into tensors."""

    def __init__(self, folder: Path) -> None:
        self.stems = sorted(str(p).removesuffix(".image.npy") for p in folder.glob("*.image.npy"))

    def __len__(self) -> int:
        return len(self.stems)

    def __getitem__(self, i: int) -> dict:
        return to_item(i, {k: np.load(f"{self.stems[i]}.{k}.npy", mmap_mode="r") for k in FIELDS})


def npy_rows(recs, folder: Path, n: int, epochs: int, workers: int) -> list[tuple[str, float]]:
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for sid, fields in recs():
            for k in FIELDS:
                np.save(folder / f"s{sid:06d}.{k}.npy", fields[k])
        (folder / "done").write_text("ok")

    def make():
        return DataLoader(
            NpyFiles(folder), batch_size=BATCH, shuffle=True, num_workers=workers, persistent_workers=workers > 0
        )

    return [(f"raw .npy memmap (floor), {workers} workers", rate(make, n, epochs))]


def webdataset_rows(recs, folder: Path, n: int, epochs: int, workers: int) -> list[tuple[str, float]]:
    try:
        import webdataset as wds
    except ImportError as exc:
        return [(f"WebDataset: not installed ({exc.name})", float("nan"))]
    if not (folder / "done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        with wds.ShardWriter(str(folder / "shard-%05d.tar"), maxcount=64) as sink:
            for sid, fields in recs():
                sample = {"__key__": f"s{sid:06d}"}
                for k in FIELDS:
                    buf = io.BytesIO()
                    np.save(buf, fields[k])
                    sample[f"{k}.npy"] = buf.getvalue()
                sink.write(sample)
        (folder / "done").write_text("ok")
    urls = sorted(str(p) for p in folder.glob("*.tar"))

    def make():
        pipeline = (
            wds.WebDataset(urls, shardshuffle=len(urls), empty_check=False, seed=0)
            .shuffle(64)
            .decode()
            .map(_wds_item)
            .batched(BATCH, collation_fn=torch.utils.data.default_collate)
        )
        return DataLoader(pipeline, batch_size=None, num_workers=workers, persistent_workers=workers > 0)

    return [(f"WebDataset (tar of .npy), {workers} workers", rate(make, n, epochs))]


def _wds_item(sample: dict) -> dict:
    return to_item(int(sample["__key__"][1:]), {k: sample[f"{k}.npy"] for k in FIELDS})


class MapItems(torch.utils.data.IterableDataset):
    """A peer's iterable dataset, each record turned into the common item."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __iter__(self):
        for fields in self.inner:
            yield to_item(fields["id"], fields)


def _lit_record(path_and_id: tuple[str, int]) -> dict:
    """LitData's optimize() calls this per input in its own process: one sample's .npy files."""
    stem, sid = path_and_id
    out = {k: np.load(f"{stem}.{k}.npy") for k in FIELDS}
    out["id"] = sid
    return out


def litdata_rows(npy_dir: Path, folder: Path, n: int, epochs: int, workers: int) -> list[tuple[str, float]]:
    try:
        import litdata
    except ImportError as exc:
        return [(f"LitData: not installed ({exc.name})", float("nan"))]
    if not (folder / "index.json").exists():
        stems = sorted(str(p).removesuffix(".image.npy") for p in npy_dir.glob("*.image.npy"))
        inputs = [(s, int(Path(s).name[1:])) for s in stems]
        litdata.optimize(
            fn=_lit_record,
            inputs=inputs,
            output_dir=str(folder),
            chunk_bytes="64MB",
            compression="zstd",
            num_workers=1,
            mode="overwrite",
        )

    def make():
        data = MapItems(litdata.StreamingDataset(str(folder), shuffle=True))
        return DataLoader(data, batch_size=BATCH, num_workers=workers, persistent_workers=workers > 0)

    return [(f"LitData (zstd), {workers} workers", rate(make, n, epochs))]


# Mosaic Streaming without its vision datasets (they import torchvision, unused here), set at
# import so that DataLoader worker processes, which re-import this module, get it too.
sys.modules.setdefault("streaming.vision", types.ModuleType("streaming.vision"))


def _import_streaming():
    from streaming import MDSWriter, StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    return MDSWriter, StreamingDataset, clean_stale_shared_memory


def mosaic_rows(recs, folder: Path, n: int, epochs: int, workers: int) -> list[tuple[str, float]]:
    try:
        MDSWriter, StreamingDataset, clean = _import_streaming()
    except Exception as exc:  # an ImportError, or a broken torchvision's RuntimeError
        return [(f"Mosaic: cannot import ({type(exc).__name__})", float("nan"))]
    if not (folder / "index.json").exists():
        columns = {
            "id": "int",
            **{
                k: f"ndarray:{'float32' if k == 'center' else 'int32' if k in ('box', 'size') else 'uint8'}"
                for k in FIELDS
            },
        }
        with MDSWriter(out=str(folder), columns=columns, size_limit="64mb", compression="zstd") as out:
            for sid, fields in recs():
                out.write({"id": int(sid), **{k: np.ascontiguousarray(fields[k]) for k in FIELDS}})

    clean()

    def make():
        data = MapItems(StreamingDataset(local=str(folder), batch_size=BATCH, shuffle=True, shuffle_seed=0))
        return DataLoader(data, batch_size=BATCH, num_workers=workers, persistent_workers=workers > 0)

    return [(f"Mosaic Streaming (MDS, zstd), {workers} workers", rate(make, n, epochs))]


class ZarrRecords(Dataset):
    """Plain zarr-python on the dataset's own arrays, with the node table from Parquet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = open_dataset(path).samples.to_pylist()
        self.groups = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        import pyarrow.parquet as pq
        import zarr

        if self.groups is None:  # opened in the process that reads (DataLoader workers)
            ds = open_dataset(self.path)
            self.groups = [
                zarr.open_group(str(self.path / s.path / "patches.zarr"), mode="r") for s in ds.manifest.shards
            ]
            self.nodes = [pq.read_table(self.path / s.path / "nodes.parquet") for s in ds.manifest.shards]
        r = self.rows[i]
        g, lo, hi = self.groups[r["shard"]], r["offset"], r["offset"] + r["count"]
        t = self.nodes[r["shard"]].slice(lo, r["count"])
        col = {k: t[k].to_numpy() for k in ("x1", "x2", "y1", "y2", "size")}
        fields = {
            "image": g["image"][lo:hi],
            "mask": g["mask"][lo:hi],
            "box": np.stack([col[k] for k in ("x1", "x2", "y1", "y2")], 1).astype(np.int32),
            "size": col["size"].astype(np.int32),
            "center": np.stack([(col["x1"] + col["x2"]) / 2, (col["y1"] + col["y2"]) / 2], 1).astype(np.float32),
        }
        return to_item(r["sample"], fields)


def zarr_rows(path: Path, n: int, epochs: int, workers: int) -> list[tuple[str, float]]:
    def make():
        return DataLoader(
            ZarrRecords(path), batch_size=BATCH, shuffle=True, num_workers=workers, persistent_workers=workers > 0
        )

    return [(f"plain zarr-python, {workers} workers", rate(make, n, epochs))]


def apf_rows(path: Path, n: int, epochs: int, workers: int) -> list[tuple[str, float]]:
    rows = []
    for verify in (True, False):
        stream = APFStream(path, length=L, batch_size=BATCH, shuffle=True, verify_checksums=verify)

        def make(stream=stream):
            return DataLoader(stream, batch_size=None, num_workers=workers, persistent_workers=workers > 0)

        name = "APFStream" if verify else "APFStream, checksums off"
        rows.append((f"{name}, {workers} workers", rate(make, n, epochs)))
    return rows


def batch_bytes(path: Path) -> tuple[int, int]:
    """(bytes of one APFStream batch's tensors, raw stored bytes of its samples)."""
    stream = APFStream(path, length=L, batch_size=BATCH, shuffle=False)
    batch = next(iter(stream))
    carried = sum(v.untyped_storage().nbytes() for v in batch.values() if isinstance(v, torch.Tensor))
    per_row = P * P * 3 + P * P + 4 * 4 + 4 + 2 * 4  # image, mask, box, size, centre as stored
    return carried, BATCH * L * per_row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--only", nargs="*", default=None, help="systems to run: npy wds litdata mosaic zarr apf")
    args = ap.parse_args()
    torch.set_num_threads(1)
    path = labelled_dataset()
    n = open_dataset(path).manifest.totals["samples"]
    peers = CACHE / "peers_labelled"
    npy_dir = peers / "npy"

    def recs():
        return records(path)

    systems = {
        "npy": lambda w: npy_rows(recs, npy_dir, n, args.epochs, w),
        "wds": lambda w: webdataset_rows(recs, peers / "wds", n, args.epochs, w),
        "litdata": lambda w: litdata_rows(npy_dir, peers / f"litdata_{w}", n, args.epochs, w),
        "mosaic": lambda w: mosaic_rows(recs, peers / "mosaic", n, args.epochs, w),
        "zarr": lambda w: zarr_rows(path, n, args.epochs, w),
        "apf": lambda w: apf_rows(path, n, args.epochs, w),
    }
    if args.only:
        systems = {k: v for k, v in systems.items() if k in args.only}
    npy_rows(recs, npy_dir, n, 1, 0) if "litdata" in systems and not (npy_dir / "done").exists() else None
    table: dict[int, list[tuple[str, float]]] = {}
    for workers in (0, 2):
        table[workers] = []
        for run in systems.values():
            for row in run(workers):
                print(f"  {row[0]}: {row[1]:.0f}/s", flush=True)
                table[workers].append(row)
    carried, raw = batch_bytes(path)
    print(f"torch {torch.__version__}; {n} labelled records (image (4096, 8, 8, 3) uint8 + mask uint8 + nodes),")
    print(f"shuffled, batch {BATCH}, warm page cache, median of {args.epochs} epochs")
    print(f"APFStream batch carries {carried / 1e6:.2f} MB for {raw / 1e6:.2f} MB raw stored: {carried / raw:.2f}x")
    for workers, rows in table.items():
        floor = next((r for name, r in rows if name.startswith("raw .npy")), float("nan"))
        best_peer = max(
            (r for name, r in rows if not name.startswith(("APFStream", "raw .npy")) and r == r), default=float("nan")
        )
        print(f"\n{workers} workers{'':<33} {'samples/s':>10} {'vs floor':>9} {'vs best peer':>13}")
        for name, r in rows:
            print(f"{name:<43} {r:>10.0f} {r / floor:>8.2f}x {r / best_peer:>12.2f}x")


if __name__ == "__main__":
    main()
