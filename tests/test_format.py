"""The format: spec as code, golden fixtures that later versions must still read, interop."""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st

from formats import (
    FORMAT_VERSION,
    ClassInfo,
    Dataset,
    DatasetNotFoundError,
    FileRecord,
    Manifest,
    ManifestError,
    ShardInfo,
    UnsafePathError,
    UnsupportedVersionError,
    View,
    open_dataset,
    parse_manifest,
)
from formats.spec import manifest_bytes

GOLDEN = Path(__file__).parent / "golden"


def test_golden_v1_dataset_still_reads():
    expected = json.loads((GOLDEN / "v1-expected.json").read_text())
    ds = open_dataset(GOLDEN / "v1")
    assert ds.manifest.totals == expected["totals"]
    assert ds.samples["key"].to_pylist() == expected["keys"]
    assert ds.samples["count"].to_pylist() == expected["counts"]
    sample = ds.read_sample(0)
    assert {k: v.tolist() for k, v in sample.nodes.columns().items()} == expected["sample0"]["nodes"]
    assert int(sample.image.astype(np.int64).sum()) == expected["sample0"]["image_sum"]
    assert int(sample.mask.astype(np.int64).sum()) == expected["sample0"]["mask_sum"]
    assert ds.verify() == []


@pytest.mark.parametrize("name", sorted(json.loads((GOLDEN / "manifests" / "cases.json").read_text())))
def test_golden_manifests(name):
    expected = json.loads((GOLDEN / "manifests" / "cases.json").read_text())[name]
    raw = (GOLDEN / "manifests" / name).read_bytes()
    if expected is None:
        manifest = parse_manifest(raw, name)
        assert manifest_bytes(manifest) == raw  # canonical form round-trips byte for byte
    else:
        with pytest.raises(ManifestError) as info:
            parse_manifest(raw, name)
        assert expected in str(info.value) and name in str(info.value)


def test_paths_must_be_normalised():
    raw = json.loads((GOLDEN / "manifests" / "valid-v1.json").read_text())
    raw["shards"][0]["path"] = "shards/./00000"
    with pytest.raises(ManifestError, match="normal form"):
        parse_manifest(json.dumps(raw), "x")


def test_error_types():
    raw = (GOLDEN / "manifests" / "invalid-newer-version.json").read_bytes()
    with pytest.raises(UnsupportedVersionError, match="upgrade"):
        parse_manifest(raw, "x")
    raw = (GOLDEN / "manifests" / "invalid-path-escapes.json").read_bytes()
    with pytest.raises(UnsafePathError):
        parse_manifest(raw, "x")
    with pytest.raises(DatasetNotFoundError, match="apf.json"):
        Dataset(GOLDEN)
    assert issubclass(DatasetNotFoundError, FileNotFoundError) and issubclass(ManifestError, ValueError)


names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=12)
paths = st.from_regex(r"[a-z0-9_]{1,8}(/[a-z0-9_.]{1,8}){0,2}", fullmatch=True).filter(
    lambda p: posixpath.normpath(p) == p
)


@given(
    shards=st.lists(
        st.tuples(
            st.integers(0, 10**6), st.integers(0, 10**9), st.dictionaries(paths, st.integers(0, 10**9), max_size=3)
        ),
        max_size=4,
    ),
    classes=st.one_of(st.none(), st.lists(names, max_size=5)),
    views=st.lists(
        st.tuples(st.integers(1, 9), st.floats(0, 500, allow_nan=False), st.floats(0, 500, allow_nan=False)),
        min_size=1,
        max_size=3,
    ),
    params=st.dictionaries(names, st.one_of(st.none(), st.integers(), st.text(max_size=5), st.booleans()), max_size=5),
)
def test_manifest_round_trip(shards, classes, views, params):
    manifest = Manifest(
        patch_size=8,
        channels=3,
        image_dtype="uint8",
        mask_dtype=None if classes is None else "uint8",
        classes=None if classes is None else tuple(ClassInfo(i, n) for i, n in enumerate(classes)),
        ignore_index=None,
        views=tuple(View(*v) for v in views),
        parameters=params,
        shards=tuple(
            ShardInfo(f"shards/{i:05d}", n, m, sum(f.values()), {k: FileRecord(v, "0" * 64) for k, v in f.items()})
            for i, (n, m, f) in enumerate(shards)
        ),
    )
    raw = manifest_bytes(manifest)
    again = parse_manifest(raw, "x")
    assert again == manifest and manifest_bytes(again) == raw
    assert again.version == FORMAT_VERSION


def test_interop_reads_with_zarr_and_pyarrow_directly():
    manifest = json.loads((GOLDEN / "v1" / "apf.json").read_text())
    for shard in manifest["shards"]:
        folder = GOLDEN / "v1" / shard["path"]
        samples = pq.read_table(folder / "samples.parquet")
        nodes = pq.read_table(folder / "nodes.parquet")
        group = zarr.open_group(str(folder / "patches.zarr"), mode="r")
        assert nodes.num_rows == group["image"].shape[0] == group["mask"].shape[0] == shard["nodes"]
        assert samples.num_rows == shard["samples"]
        assert group["image"].dtype == np.dtype(manifest["image_dtype"])
        sizes = nodes["size"].to_numpy()
        assert np.array_equal(nodes["x2"].to_numpy() - nodes["x1"].to_numpy(), sizes)


def test_writer_and_reader_take_fsspec_urls(nuclei):
    """The same shard written to memory:// and to a local folder: same files, same reads."""
    import fsspec

    from apfcompile import PatchParams, patchify
    from formats import SampleRecord, write_manifest, write_shard

    image, mask = nuclei
    sample = patchify(image[:128, :128], mask[:128, :128], PatchParams.make(8, length=64))
    record = SampleRecord(
        sample=0,
        key="n",
        source="n.tif",
        mask_source="n_mask.tif",
        view=0,
        canvas=(128, 128),
        original=(128, 128),
        scale=(1.0, 1.0),
        offset=(0.0, 0.0),
        slice_axis=None,
        slice_index=None,
        gamma=sample.gamma,
        ceiling=sample.ceiling,
        blur=3,
        canny=(100.0, 200.0),
        nodes=sample.leaves.columns(),
        image=sample.patches,
        mask=sample.mask,
    )
    kw = dict(patch_size=8, channels=1, image_dtype="uint16", mask_dtype="uint16", fingerprint="f")
    url = "memory://apf-test/ds"
    info = write_shard(url, 0, [record], **kw)
    manifest = Manifest(8, 1, "uint16", "uint16", None, None, (View(3, 100.0, 200.0),), {}, (info,))
    write_manifest(url, manifest)
    ds = open_dataset(url)
    assert ds.verify() == []
    got = ds.read_sample("n")
    np.testing.assert_array_equal(got.image, sample.patches)
    np.testing.assert_array_equal(got.nodes["x1"], sample.leaves.x1)
    fs = fsspec.filesystem("memory")
    assert fs.exists("/apf-test/ds/shards/00000/shard.json")
    fs.rm("/apf-test/ds", recursive=True)
