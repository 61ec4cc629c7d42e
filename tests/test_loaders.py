"""The PyTorch loader over datasets compiled from real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from apfcompile import CompileConfig, compile_dataset
from apfcompile import reconstruct as reconstruct_np
from formats import DatasetNotFoundError, open_dataset
from loaders import APFDataset, APFStream, collate, dice, reconstruct

from . import builders, oracle


@pytest.fixture(scope="session")
def ct_dataset(tmp_path_factory) -> Path:
    """60 real CT frames (2 volumes x 30 slices) under 2 views, 15 shards."""
    root = tmp_path_factory.mktemp("loaders")
    src = builders.btcv(root / "btcv", cases=2)
    compile_dataset(
        CompileConfig.from_options(
            input=src, output=root / "ds", length=48, shard_samples=8, views=((3, 100, 200), (5, 50, 150))
        )
    )
    return root / "ds"


def ids_of(loader) -> list[int]:
    out = []
    for unit in loader:
        out += unit["id"].tolist() if isinstance(unit["id"], torch.Tensor) else [unit["id"]]
    return out


def frames_of(ids, n_views=2) -> list[int]:
    return [i // n_views for i in ids]  # sample ids are frame-major, view-minor


@pytest.mark.parametrize("workers", [0, 1, 2])
@pytest.mark.parametrize("batch", [None, 4])
def test_every_frame_once_per_epoch(ct_dataset, workers, batch):
    stream = APFStream(ct_dataset, length=48, batch_size=batch, seed=3)
    loader = DataLoader(stream, batch_size=None, num_workers=workers)
    frames = frames_of(ids_of(loader))
    assert sorted(frames) == list(range(60))
    reference = frames_of(ids_of(DataLoader(stream, batch_size=None, num_workers=0)))
    assert frames == reference  # the worker count does not change the order


def test_a_worker_batch_is_the_in_process_batch_in_one_shared_segment(ct_dataset):
    """Batches made in DataLoader workers equal, field by field (dtype, shape, values), the ones
    made in this process; each arrives as two blocks of shared memory (the per-row fields views of
    one, the per-sample fields of the other: keeping ids keeps no pixels), not one segment per
    field; in this process each field has its own memory."""
    stream = APFStream(ct_dataset, length=40, batch_size=5, seed=1)
    here = list(DataLoader(stream, batch_size=None, num_workers=0))
    there = list(DataLoader(stream, batch_size=None, num_workers=2))
    assert len(here) == len(there) == 12
    for a, b in zip(here, there):
        assert list(a) == list(b) and a["key"] == b["key"]
        tensors = [k for k, v in a.items() if isinstance(v, torch.Tensor)]
        assert {"image", "mask", "box", "canvas", "scale", "ceiling", "labelled"} <= set(tensors)
        for k in tensors:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert (
                torch.equal(a[k].nan_to_num(), b[k].nan_to_num())
                if a[k].is_floating_point()
                else torch.equal(a[k], b[k])
            ), k
        rows = ("image", "mask", "size", "center", "box", "valid")
        assert len({b[k].untyped_storage().data_ptr() for k in rows}) == 1
        assert len({b[k].untyped_storage().data_ptr() for k in tensors if k not in rows}) == 1
        assert b["id"].untyped_storage().nbytes() < 1024  # a sample's own fields: a few bytes each
        assert len({a[k].untyped_storage().data_ptr() for k in tensors}) == len(tensors)


def test_ranks_times_workers_cover_the_dataset_equally(ct_dataset):
    per_rank = []
    for rank in range(2):
        stream = APFStream(ct_dataset, length=48, batch_size=3, rank=rank, world_size=2, seed=1)
        per_rank.append(frames_of(ids_of(DataLoader(stream, batch_size=None, num_workers=2))))
    assert len(per_rank[0]) == len(per_rank[1]) == 30
    assert sorted(per_rank[0] + per_rank[1]) == list(range(60))
    # 4 ranks: 60 frames -> 15 each; 7 ranks: 9 each, the first 3 frames wrap round
    counts = [len(APFStream(ct_dataset, rank=r, world_size=7).rank_frames()) for r in range(7)]
    assert counts == [9] * 7
    union = np.concatenate([APFStream(ct_dataset, rank=r, world_size=7).rank_frames() for r in range(7)])
    assert set(union.tolist()) == set(range(60))
    dropped = [len(APFStream(ct_dataset, rank=r, world_size=7, drop_last=True).rank_frames()) for r in range(7)]
    assert dropped == [8] * 7


def test_order_is_a_function_of_seed_and_epoch(ct_dataset):
    a = APFStream(ct_dataset, seed=5)
    b = APFStream(ct_dataset, seed=5)
    assert np.array_equal(a.epoch_order(), b.epoch_order())
    first = a.epoch_order()
    a.set_epoch(1)
    assert not np.array_equal(first, a.epoch_order()) and sorted(a.epoch_order()) == list(range(60))
    assert np.array_equal(APFStream(ct_dataset, shuffle=False).epoch_order(), np.arange(60))


def test_resume_mid_epoch_in_a_new_process(ct_dataset, tmp_path):
    stream = APFStream(ct_dataset, length=48, batch_size=4, seed=9)
    stream.set_epoch(2)
    loader = DataLoader(stream, batch_size=None, num_workers=2)
    seen, state = [], None
    for i, batch in enumerate(loader):
        seen.append(batch["id"].tolist())
        if i == 5:
            state = stream.state_dict(batch)
            break
    full = [b["id"].tolist() for b in DataLoader(stream, batch_size=None, num_workers=0)]
    assert full[:6] == seen
    (tmp_path / "state.json").write_text(json.dumps(state))
    script = textwrap.dedent(f"""
        import json, sys
        from torch.utils.data import DataLoader
        from loaders import APFStream
        stream = APFStream({str(ct_dataset)!r}, length=48, batch_size=4, seed=9)
        stream.load_state_dict(json.load(open({str(tmp_path / "state.json")!r})))
        rest = [b["id"].tolist() for b in DataLoader(stream, batch_size=None, num_workers=2)]
        json.dump(rest, sys.stdout)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == full[6:]


def test_torchrun_two_ranks_gloo(ct_dataset, tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(
        textwrap.dedent(f"""
        import json, os
        import torch.distributed as dist
        from torch.utils.data import DataLoader
        from loaders import APFStream
        dist.init_process_group("gloo")
        stream = APFStream({str(ct_dataset)!r}, length=48, batch_size=4, seed=2)
        ids = [i for b in DataLoader(stream, batch_size=None, num_workers=1) for i in b["id"].tolist()]
        out = {str(tmp_path)!r} + f"/rank{{dist.get_rank()}}.json"
        json.dump(ids, open(out, "w"))
        dist.barrier()
        dist.destroy_process_group()
    """)
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        str(script),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 30
    assert sorted(frames_of(ranks[0] + ranks[1])) == list(range(60))
    simulated = [
        frames_of(ids_of(APFStream(ct_dataset, length=48, batch_size=4, seed=2, rank=r, world_size=2)))
        for r in range(2)
    ]
    assert [frames_of(r) for r in ranks] == simulated


def test_map_style_items_views_and_errors(ct_dataset, tmp_path):
    ds = APFDataset(ct_dataset, length=64, view="random", seed=0)
    assert len(ds) == 60
    item = ds[7]
    assert item["image"].shape == (64, 1, 8, 8) and item["image"].dtype == torch.int16
    n = int(item["valid"].sum())
    assert item["mask"].dtype == torch.uint8 and 40 < n <= 48 and item["valid"][:n].all()
    assert item["box"].dtype == item["size"].dtype == torch.int32 and item["center"].dtype == torch.float32
    assert (item["size"][n:] == 0).all() and (item["center"][n:] == -1).all() and (item["box"][n:] == 0).all()
    draws = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        draws.add(ds[7]["id"] % 2)
    assert draws == {0, 1}  # both views drawn over epochs
    assert APFDataset(ct_dataset, view=1)[7]["id"] == 15
    short = APFDataset(ct_dataset, length=20, view=0)[7]
    assert short["valid"].all() and len(short["size"]) == 20
    with pytest.raises(DatasetNotFoundError, match="apf.json"):
        APFDataset(tmp_path)
    with pytest.raises(ValueError, match="view"):
        APFDataset(ct_dataset, view=5)


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_map_style_in_worker_processes(ct_dataset, context):
    ds = APFDataset(ct_dataset, length=None, view=0)
    loader = DataLoader(ds, batch_size=5, num_workers=2, collate_fn=collate, multiprocessing_context=context)
    ids = ids_of(loader)
    assert sorted(ids) == list(range(0, 120, 2))


def test_items_match_what_was_compiled(ct_dataset):
    """Loader rows equal the stored rows read through formats (zarr-python), and rebuild the mask."""
    from formats import open_dataset

    fmt = open_dataset(ct_dataset)
    ds = APFDataset(ct_dataset, view=0)
    for frame in (0, 17, 59):
        item = ds[frame]
        stored = fmt.read_sample(item["id"])
        np.testing.assert_array_equal(item["image"].numpy(), stored.image.transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(item["mask"].numpy(), stored.mask)
        canvas = tuple(item["canvas"].tolist())
        want = reconstruct_np(stored.mask, stored.nodes, None, canvas)
        got = reconstruct(item["mask"][None], item["box"][None], item["valid"][None], item["canvas"])[0]
        np.testing.assert_array_equal(got.numpy(), want)
        # the numpy twin takes the loader's arguments, in the same order
        same = reconstruct_np(item["mask"].numpy(), item["box"].numpy(), item["valid"].numpy(), canvas)
        np.testing.assert_array_equal(same, want)


@pytest.mark.parametrize("scores", [False, True])
def test_reconstruct_equals_the_per_leaf_loop(scores):
    rng = np.random.default_rng(0)
    from apfcompile import ForestParams, build_forest, edge_count_grid

    batch, canvases = [], [(70, 90), (64, 33)]
    for h, w in canvases:
        edges = np.where(rng.random((h, w)) < 0.1, 255, 0).astype(np.uint8)
        batch.append(build_forest(edge_count_grid(edges, 4), (h, w), ForestParams(length=40, min_size=4)))
    length = max(len(lv) for lv in batch)
    k = 3
    shape = (2, length, k, 4, 4) if scores else (2, length, 4, 4)
    pred = torch.from_numpy(rng.integers(0, 200, shape).astype(np.float32 if scores else np.uint8))
    box = torch.zeros(2, length, 4, dtype=torch.int64)
    valid = torch.zeros(2, length, dtype=torch.bool)
    for b, lv in enumerate(batch):
        n = len(lv)
        box[b, :n] = torch.from_numpy(np.stack([lv.x1, lv.x2, lv.y1, lv.y2], 1))
        valid[b, :n] = True
    out = reconstruct(pred, box, valid, (70, 90), fill=7)
    for b, lv in enumerate(batch):
        n = len(lv)
        patches = pred[b, :n].numpy()
        if scores:
            patches = patches.transpose(0, 2, 3, 1)  # (n, p, p, K) for the loop
        boxes = list(zip(lv.x1.tolist(), lv.y1.tolist(), lv.size.tolist()))
        want = oracle.reconstruct_loop(patches, boxes, (70, 90), fill=7)
        got = out[b].numpy()
        if scores:
            got = got.transpose(1, 2, 0)
        np.testing.assert_array_equal(got, want)


def test_dice():
    pred = torch.tensor([[0, 1, 1], [2, 2, 255]])
    target = torch.tensor([[0, 1, 0], [2, 2, 255]])
    classes, score = dice(pred, target, ignore_index=255)
    assert classes.tolist() == [0, 1, 2]
    np.testing.assert_allclose(score.numpy(), [2 / 3, 2 / 3, 1.0])


def test_tiny_transformer_learns_on_the_demo_data(ct_dataset):
    """A few transformer layers over patch tokens + size/centre learn to segment real CT patches."""
    torch.manual_seed(0)
    stream = APFStream(ct_dataset, length=48, batch_size=8, seed=0, view=0)
    classes = 128  # labels of this CT segmentation go up to 117

    class Tiny(torch.nn.Module):
        def __init__(self, d=64):
            super().__init__()
            self.embed = torch.nn.Linear(64 + 3, d)
            layer = torch.nn.TransformerEncoderLayer(d, 4, 128, batch_first=True, dropout=0.0)
            self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = torch.nn.Linear(d, classes * 64)

        def forward(self, batch):
            x = (batch["image"].float() + 175.0) / 425.0
            feats = torch.cat([x.flatten(2), batch["size"][..., None] / 64.0, batch["center"] / 128.0], -1)
            h = self.encoder(self.embed(feats), src_key_padding_mask=~batch["valid"])
            b, n = h.shape[:2]
            return self.head(h).view(b, n, classes, 8, 8)

    model = Tiny()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for epoch in range(4):
        stream.set_epoch(epoch)
        for batch in DataLoader(stream, batch_size=None):
            logits = model(batch)
            v = batch["valid"]
            loss = torch.nn.functional.cross_entropy(logits[v], batch["mask"][v].long())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert len(losses) >= 24
    assert np.mean(losses[-4:]) < 0.6 * np.mean(losses[:4])
    with torch.no_grad():
        labels = model(batch).argmax(2)
    h, w = batch["canvas"].max(0).values.tolist()
    full = reconstruct(labels, batch["box"], batch["valid"], (h, w))
    truth = reconstruct(batch["mask"], batch["box"], batch["valid"], (h, w))
    classes_seen, score = dice(full, truth)
    assert score[classes_seen == 0].item() > 0.8  # background at least is learnt


def test_remote_reads_only_needed_row_groups_and_match_local(tmp_path, monkeypatch):
    """The dataset on an fsspec URL (memory://), node tables written in 50-row groups so that
    samples straddle row groups: items equal the local ones."""
    import fsspec

    import formats.writer

    monkeypatch.setattr(formats.writer, "NODE_ROW_GROUP", 50)
    src = builders.btcv(tmp_path / "btcv", cases=1)
    compile_dataset(
        CompileConfig.from_options(
            input=src,
            output=tmp_path / "ds",
            length=48,
            shard_samples=8,
            workers=1,
            views=((3, 100, 200), (5, 50, 150)),
        )
    )
    fs = fsspec.filesystem("memory")
    root = "/apf-remote-test"
    fs.put(str(tmp_path / "ds"), root, recursive=True)
    try:
        local = APFDataset(tmp_path / "ds", length=48, view=1)
        remote = APFDataset(f"memory://{root}", length=48, view=1)
        reader = remote._r._reader(0)
        assert reader.nodes is None and len(reader._group_starts) > 3
        for frame in range(0, 30, 4):
            a, b = local[frame], remote[frame]
            for key in ("image", "mask", "box", "size", "center", "valid"):
                assert torch.equal(a[key], b[key]), key
    finally:
        fs.rm(root, recursive=True)


@pytest.mark.parametrize("workers", [0, 2])
def test_prefetch_changes_nothing_but_timing(ct_dataset, workers):
    def units(**kw):
        stream = APFStream(ct_dataset, length=48, batch_size=4, seed=3, **kw)
        return list(DataLoader(stream, batch_size=None, num_workers=workers))

    plain, ahead = units(), units(prefetch=3)
    assert [u["id"].tolist() for u in plain] == [u["id"].tolist() for u in ahead]
    assert [u["position"] for u in plain] == [u["position"] for u in ahead]
    for a, b in zip(plain, ahead):
        assert all(torch.equal(a[k], b[k]) for k in ("image", "mask", "box", "valid"))


def test_prefetch_stops_cleanly_and_resumes(ct_dataset):
    import threading

    stream = APFStream(ct_dataset, length=48, batch_size=4, seed=1, prefetch=4)
    it = iter(stream)
    first = [next(it) for _ in range(3)]
    it.close()  # a loop that breaks early: no thread is left running
    assert not [t for t in threading.enumerate() if t.name.startswith("apf-prefetch")]
    state = stream.state_dict(first[-1])
    resumed = APFStream(ct_dataset, length=48, batch_size=4, seed=1, prefetch=2)
    resumed.load_state_dict(state)
    rest = [u["id"].tolist() for u in resumed]
    whole = [u["id"].tolist() for u in APFStream(ct_dataset, length=48, batch_size=4, seed=1)]
    assert [u["id"].tolist() for u in first] + rest == whole
    with pytest.raises(ValueError, match="prefetch"):
        APFStream(ct_dataset, prefetch=-1)


@pytest.mark.parametrize("length", [None, 24])
def test_batch_rows_are_the_samples_stored_nodes(ct_dataset, length):
    """size, centre and box of every batch row are the sample's stored node columns, on the
    direct path (whole sequences) and when rows are dropped to ``length`` (the kept rows' own)."""
    stored = open_dataset(ct_dataset)
    stream = APFStream(ct_dataset, length=length, batch_size=5, shuffle=False, drop="priority")
    for batch in stream:
        for b, sample_id in enumerate(batch["id"].tolist()):
            sample = stored.read_sample(sample_id)
            n = int(batch["valid"][b].sum())
            boxes = batch["box"][b, :n].numpy()
            table = {tuple(r) for r in sample.nodes.box.tolist()}
            assert {tuple(r) for r in boxes.tolist()} <= table and (n == len(table) or length == n)
            by_box = {tuple(r): i for i, r in enumerate(sample.nodes.box.tolist())}
            rows = [by_box[tuple(r)] for r in boxes.tolist()]
            np.testing.assert_array_equal(batch["size"][b, :n].numpy(), sample.nodes.size[rows])
            np.testing.assert_array_equal(batch["center"][b, :n].numpy(), sample.nodes.center[rows].astype(np.float32))
