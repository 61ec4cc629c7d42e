"""What the loader hands a training loop (dtypes, bytes) and that every chunk it reads is checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from formats import CorruptShardError, open_dataset
from formats.writer import IMAGE_BLOSC, image_codec
from loaders import APFDataset, APFStream

from . import builders


@pytest.fixture(scope="module")
def nuclei_dataset(tmp_path_factory) -> Path:
    """3 real nuclei images with their instance masks (125 labels, stored as uint8), L = 64."""
    root = tmp_path_factory.mktemp("checks")
    builders.compile_to(builders.nuclei_folder(root / "in"), root / "ds", length=64, mask_dtype="uint8")
    return root / "ds"


def _image_file(ds: Path) -> Path:
    return next((ds / "shards").glob("*/patches.zarr/image/c/0/0/0/0"))


def test_arrays_carry_crc32c_and_masks_are_stored_raw(nuclei_dataset):
    for name, inner in (("image", None), ("mask", ["bytes", "crc32c"])):
        meta = json.loads(next((nuclei_dataset / "shards").glob(f"*/patches.zarr/{name}/zarr.json")).read_text())
        names = [c["name"] for c in meta["codecs"][0]["configuration"]["codecs"]]
        assert names[-1] == "crc32c", names
        if inner is not None:
            assert names == inner


def test_items_carry_the_stored_dtypes_and_no_more_bytes(nuclei_dataset):
    ds = open_dataset(nuclei_dataset)
    stream = APFStream(nuclei_dataset, length=64, batch_size=3, shuffle=False)
    batch = next(iter(stream))
    assert batch["mask"].dtype == torch.uint8 and batch["image"].dtype == torch.uint16
    assert batch["box"].dtype == batch["size"].dtype == torch.int32 and batch["center"].dtype == torch.float32
    assert batch["image"].shape == (3, 64, 1, 8, 8)  # the documented (B, L, C, p, p), a view of channels-last rows
    sample = ds.read_sample(int(batch["id"][0]))
    n = len(sample.image)
    assert torch.equal(batch["image"][0, :n], torch.from_numpy(sample.image).permute(0, 3, 1, 2))
    assert torch.equal(batch["mask"][0, :n], torch.from_numpy(sample.mask))
    carried = sum(v.untyped_storage().nbytes() for v in batch.values() if isinstance(v, torch.Tensor))
    per_row = 8 * 8 * 2 + 8 * 8 + 4 * 4 + 4 + 2 * 4  # image uint16, mask uint8, box, size, centre as stored
    assert carried <= 1.1 * 3 * 64 * per_row


@pytest.mark.parametrize("shard_samples", [256, 1])  # 1: each sample is one whole chunk (the in-place path)
def test_uint16_masks_come_as_int32_with_their_values(tmp_path, shard_samples):
    builders.compile_to(
        builders.nuclei_folder(tmp_path / "in"), tmp_path / "ds", length=64, shard_samples=shard_samples
    )  # uint16 TIFFs
    ds = open_dataset(tmp_path / "ds")
    item = APFDataset(tmp_path / "ds", length=64)[0]
    stored = ds.read_sample(item["id"]).mask
    assert stored.dtype == np.uint16 and item["mask"].dtype == torch.int32
    assert torch.equal(item["mask"][: len(stored)], torch.from_numpy(stored.astype(np.int32)))


def test_a_flipped_byte_is_an_error_naming_the_file_and_the_sample(nuclei_dataset, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(nuclei_dataset, broken)
    path = _image_file(broken)
    data = bytearray(path.read_bytes())
    meta = json.loads((path.parents[4] / "zarr.json").read_text())
    chunks = -(-meta["shape"][0] // meta["codecs"][0]["configuration"]["chunk_shape"][0])
    index = np.frombuffer(bytes(data[-(16 * chunks + 4) : -4]), np.uint64).reshape(-1, 2)  # where each chunk is
    data[int(index[0, 0]) + 100] ^= 0x01
    path.write_bytes(bytes(data))
    first = open_dataset(broken).samples.to_pylist()[0]
    for read in (
        lambda: APFDataset(broken, length=64)[0],
        lambda: next(iter(APFStream(broken, length=64, batch_size=2, shuffle=False))),
        lambda: open_dataset(broken).read_sample(first["sample"]),
    ):
        with pytest.raises(CorruptShardError) as err:
            read()
        message = str(err.value)
        assert "patches.zarr" in message and repr(first["key"]) in message and "checksum" in message
    with pytest.raises(ValueError, match="checksum"):  # zarr-python checks the same crc32c
        zarr.open_array(path.parents[4], mode="r")[:64]
    unchecked = APFDataset(broken, length=64, verify_checksums=False)[0]["image"]
    assert not torch.equal(unchecked, APFDataset(nuclei_dataset, length=64)[0]["image"])  # silent without it
    assert any("checksum" in p for p in open_dataset(broken).verify())


def test_images_compress_only_where_the_whole_shard_does():
    rng = np.random.default_rng(0)
    head = np.zeros((20_000, 8, 8, 3), np.uint8)  # 3.8 MB that compresses to nothing, then noise
    image = np.concatenate([head, rng.integers(0, 256, (200_000, 8, 8, 3), np.uint8)])
    assert image_codec(image) is None
    codec = image_codec(np.zeros_like(image))
    assert codec == {"name": "blosc", "configuration": {"typesize": 1, **IMAGE_BLOSC}}
    assert image_codec(np.zeros((5000, 8, 8, 1), np.int16))["configuration"]["typesize"] == 2


@pytest.mark.parametrize(
    "dtype, compressor, shape",
    [
        (np.uint8, None, (1300, 4, 4, 3)),
        (np.int16, "blosc", (1300, 4, 4, 3)),
        (np.int16, "zstd", (1300, 4, 4, 3)),
        (np.float32, None, (1300, 4, 4, 3)),
        (np.float32, "blosc", (1300, 4, 4, 3)),
        (np.uint16, None, (1300, 4, 4)),
        (np.uint8, "zstd", (300, 2, 2, 2, 1)),
        (np.uint8, "blosc", (300, 2, 2, 2, 1)),
        (np.uint8, None, (0, 4, 4, 3)),
    ],
)
def test_shard_files_are_the_bytes_zarr_python_writes(tmp_path, dtype, compressor, shape):
    """The writer makes zarr.json and shard files without zarr-python: zarr-python, given the same
    array, writes the same chunk bytes and the same metadata (compared as zarr-python reads it,
    so that a later zarr-python's formatting cannot fail this), and reads ours back."""
    from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec

    from formats.writer import CHUNK_NODES, GROUP_JSON, _array_files, _put_files

    rng = np.random.default_rng(1)
    data = (rng.integers(0, 9, shape) * (rng.random((shape[0],) + (1,) * (len(shape) - 1)) < 0.5)).astype(dtype)
    blosc = {"typesize": np.dtype(dtype).itemsize, **IMAGE_BLOSC}
    entry = {
        None: None,
        "zstd": {"name": "zstd", "configuration": {"level": 2, "checksum": False}},
        "blosc": {"name": "blosc", "configuration": blosc},
    }[compressor]
    files = {"zarr.json": GROUP_JSON, **_array_files("a", data, entry)}
    _put_files(tmp_path / "ours", files)
    first = {None: [], "zstd": [ZstdCodec(level=2)], "blosc": [BloscCodec(**blosc)]}[compressor]
    codecs = [*first, Crc32cCodec()]
    theirs = zarr.open_group(zarr.storage.LocalStore(tmp_path / "theirs"), mode="w", zarr_format=3)
    chunk = min(CHUNK_NODES, max(shape[0], 1))
    per_file = -(-max(shape[0], 1) // chunk) * chunk
    array = theirs.create_array(
        "a", shape=shape, dtype=dtype, chunks=(chunk, *shape[1:]), shards=(per_file, *shape[1:]), compressors=codecs
    )
    array[...] = data
    chunk_file = "a/c/" + "/".join("0" for _ in shape)
    if data.size:
        assert (tmp_path / "ours" / chunk_file).read_bytes() == (tmp_path / "theirs" / chunk_file).read_bytes()
    ours = zarr.open_array(tmp_path / "ours" / "a", mode="r")
    assert ours.metadata == array.metadata
    assert zarr.open_group(tmp_path / "ours", mode="r").metadata == theirs.metadata
    np.testing.assert_array_equal(ours[...], data)


def test_whole_chunk_reads_are_exact_and_checked_in_place(tmp_path):
    """A sample that is whole chunks (here one sample per shard: its rows are the shard's one
    chunk) is copied in one strided copy and checked in the destination. The rows equal
    zarr-python's; a flipped byte in the mask or the image of sample 1 fails sample 1 alone,
    naming the file and the sample."""
    ds_path = tmp_path / "ds"
    builders.compile_to(
        builders.nuclei_folder(tmp_path / "in"), ds_path, length=64, mask_dtype="uint8", shard_samples=1
    )
    ds = open_dataset(ds_path)
    rows = ds.samples.to_pylist()
    for i, row in enumerate(rows):
        folder = ds_path / ds.manifest.shards[i].path / "patches.zarr"
        item = APFDataset(ds_path, length=64)[i]
        n = row["count"]
        np.testing.assert_array_equal(item["mask"][:n].numpy(), zarr.open_array(folder / "mask", mode="r")[:])
        image = zarr.open_array(folder / "image", mode="r")
        assert image.metadata.codecs[0].chunk_shape[0] == n == image.shape[0]  # one whole chunk
        np.testing.assert_array_equal(item["image"][:n].permute(0, 2, 3, 1).numpy(), image[:])
    for name in ("mask", "image"):
        broken = tmp_path / f"broken-{name}"
        shutil.copytree(ds_path, broken)
        folder = broken / ds.manifest.shards[1].path / "patches.zarr" / name
        path = next(p for p in (folder / "c").rglob("*") if p.is_file())
        data = bytearray(path.read_bytes())
        data[7] ^= 0x10  # inside sample 1's one chunk
        path.write_bytes(bytes(data))
        APFDataset(broken, length=64)[0]  # sample 0: another shard, whole
        for read in (
            lambda broken=broken: APFDataset(broken, length=64)[1],
            lambda broken=broken: list(APFStream(broken, length=64, batch_size=3, shuffle=False)),
        ):
            with pytest.raises(CorruptShardError) as err:
                read()
            assert f"patches.zarr/{name}" in str(err.value) and repr(rows[1]["key"]) in str(err.value)


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.sampled_from(["whole", "missing", "short", "gap"]), min_size=1, max_size=12),
    raw=st.booleans(),
    data=st.data(),
)
def test_back_to_back_runs_match_a_scan_of_the_index(chunks, raw, data):
    """The O(1) test of whether chunks first..last lie whole, back to back (the loader's one-copy
    path) agrees with a scan of the index rows, for shard indexes with missing, short and moved chunks."""
    from loaders._shards import _MISSING, back_to_back, back_to_back_counts

    stride, offset, rows = 100, 0, []
    for kind in chunks:
        if kind == "missing":
            rows.append((int(_MISSING), int(_MISSING)))
            continue
        offset += 7 if kind == "gap" else 0
        size = stride - 3 if kind == "short" else stride
        rows.append((offset, size))
        offset += size
    index = np.array(rows, np.uint64)
    not_whole, not_following = back_to_back_counts(index, stride, raw)
    first = data.draw(st.integers(0, len(rows) - 1))
    last = data.draw(st.integers(first, len(rows) - 1))
    part = index[first : last + 1]
    scan = raw and all(int(n) == stride and int(o) != int(_MISSING) for o, n in part)
    scan = scan and all(int(b) == int(a) + stride for a, b in zip(part[:-1, 0], part[1:, 0]))
    assert back_to_back(not_whole, not_following, first, last) == scan
