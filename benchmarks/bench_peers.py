"""The same records through the peers a user might pick instead (issue #4 figures).

Records: the 32 samples of the 2048^2 H&E benchmark dataset (image (4096, 8, 8, 3) uint8 + node
metadata). Written once as WebDataset tar shards (``.npy`` members) and as raw ``.npy`` files
(the memory-map floor), then read through a DataLoader with batch 8, warm page cache, median of
several epochs, beside ``APFStream`` in the same run. Also LitData (``optimize`` +
``StreamingDataset``) and Mosaic Streaming (``MDSWriter`` + ``StreamingDataset``) when they import:
both pull torch with CUDA and torchvision, so run this script from a separate environment that
has them (``pip install torch==2.14.1 torchvision==0.29.1 litdata mosaicml-streaming webdataset``
then ``pip install -e .``); each peer missing is reported and skipped.

Needs ``pip install webdataset``. Usage: python benchmarks/bench_peers.py [--epochs 5]
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import torch
from bench_loader import L, compiled, rate
from common import CACHE
from torch.utils.data import DataLoader, Dataset

from formats import open_dataset
from loaders import APFStream


def records(path):
    ds = open_dataset(path)
    for row in ds.samples.to_pylist():
        s = ds.read_sample(row["sample"])
        nodes = np.stack([s.nodes[k].astype(np.float32) for k in ("x1", "x2", "y1", "y2", "size", "cx", "cy")], 1)
        yield row["sample"], s.image, nodes


def _lit_record(stem: str) -> dict:
    """LitData's optimize() calls this per input, in its own worker process: read the .npy pair."""
    return {
        "id": int(stem.rsplit("s", 1)[-1]),
        "image": np.load(stem + ".image.npy"),
        "nodes": np.load(stem + ".nodes.npy"),
    }


def litdata_rows(npy_dir, folder, n, epochs) -> list[tuple[str, float]]:
    try:
        import litdata
    except ImportError as exc:
        return [(f"LitData: not installed ({exc.name})", float("nan"))]
    if not (folder / "index.json").exists():
        stems = sorted(str(p).removesuffix(".image.npy") for p in npy_dir.glob("*.image.npy"))
        litdata.optimize(
            fn=_lit_record, inputs=stems, output_dir=str(folder), chunk_bytes="64MB", num_workers=1, mode="overwrite"
        )
    rows = []
    for workers in (0, 2):

        def make(workers=workers):
            ds = litdata.StreamingDataset(str(folder))
            return litdata.StreamingDataLoader(ds, batch_size=8, num_workers=workers)

        rows.append((f"LitData, {workers} workers", rate(make, n, epochs)))
    return rows


def mosaic_rows(recs, folder, n, epochs) -> list[tuple[str, float]]:
    try:
        from streaming import MDSWriter, StreamingDataset
        from streaming.base.util import clean_stale_shared_memory
    except ImportError as exc:
        return [(f"Mosaic: not installed ({exc.name})", float("nan"))]
    if not (folder / "index.json").exists():
        columns = {"id": "int", "image": "ndarray:uint8", "nodes": "ndarray:float32"}
        with MDSWriter(out=str(folder), columns=columns, size_limit="64mb") as out:
            for sid, image, nodes in recs:
                out.write({"id": int(sid), "image": image, "nodes": nodes})
    rows = []
    for workers in (0, 2):
        clean_stale_shared_memory()

        def make(workers=workers):
            ds = StreamingDataset(local=str(folder), batch_size=8, shuffle=False)
            return DataLoader(ds, batch_size=8, num_workers=workers, persistent_workers=workers > 0)

        rows.append((f"Mosaic MDS, {workers} workers", rate(make, n, epochs)))
    return rows


class NpyFiles(Dataset):
    """Raw .npy per sample, memory-mapped: the floor of reading bytes into tensors."""

    def __init__(self, folder) -> None:
        self.files = sorted(folder.glob("*.image.npy"))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        image = torch.from_numpy(np.load(self.files[i], mmap_mode="r").transpose(0, 3, 1, 2).copy())
        nodes = torch.from_numpy(np.load(str(self.files[i]).replace(".image.", ".nodes.")))
        return {"id": i, "image": image, "nodes": nodes}


def main() -> None:
    import webdataset as wds

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    path = compiled(2048, 32)
    n = open_dataset(path).manifest.totals["samples"]
    peers = CACHE / "peers"
    tar_dir, npy_dir = peers / "wds", peers / "npy"
    if not (tar_dir / "done").exists():
        tar_dir.mkdir(parents=True, exist_ok=True)
        npy_dir.mkdir(parents=True, exist_ok=True)
        with wds.ShardWriter(str(tar_dir / "shard-%05d.tar"), maxcount=16) as sink:
            for sid, image, nodes in records(path):
                buf_i, buf_n = io.BytesIO(), io.BytesIO()
                np.save(buf_i, image)
                np.save(buf_n, nodes)
                sink.write({"__key__": f"s{sid:06d}", "image.npy": buf_i.getvalue(), "nodes.npy": buf_n.getvalue()})
                np.save(npy_dir / f"s{sid:06d}.image.npy", image)
                np.save(npy_dir / f"s{sid:06d}.nodes.npy", nodes)
        (tar_dir / "done").write_text("ok")
    urls = sorted(str(p) for p in tar_dir.glob("*.tar"))

    def to_item(sample):
        image = torch.from_numpy(sample["image.npy"].transpose(0, 3, 1, 2).copy())
        return {"id": sample["__key__"], "image": image, "nodes": torch.from_numpy(sample["nodes.npy"])}

    def webdataset_loader(workers):
        pipeline = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode().map(to_item)
        return DataLoader(pipeline, batch_size=8, num_workers=workers, persistent_workers=workers > 0)

    rows: list[tuple[str, float]] = []
    for workers in (0, 2):
        rows.append(
            (
                f"raw .npy memmap, {workers} workers",
                rate(
                    lambda: DataLoader(
                        NpyFiles(npy_dir), batch_size=8, num_workers=workers, persistent_workers=workers > 0
                    ),
                    n,
                    args.epochs,
                ),
            )
        )
        rows.append(
            (f"WebDataset tar (.npy), {workers} workers", rate(lambda: webdataset_loader(workers), n, args.epochs))
        )
        stream = APFStream(path, length=L, batch_size=8)
        rows.append(
            (
                f"APFStream, {workers} workers",
                rate(
                    lambda: DataLoader(stream, batch_size=None, num_workers=workers, persistent_workers=workers > 0),
                    n,
                    args.epochs,
                ),
            )
        )
    recs = list(records(path))
    rows += litdata_rows(npy_dir, peers / "litdata", n, args.epochs)
    rows += mosaic_rows(recs, peers / "mosaic", n, args.epochs)
    print(f"torch {torch.__version__}; {n} records of image (4096, 8, 8, 3) uint8 + node metadata, batch 8, warm cache")
    print(f"{'':<38} {'samples/s':>10}")
    for name, r in rows:
        print(f"{name:<38} {r:>10.1f}")


if __name__ == "__main__":
    main()
