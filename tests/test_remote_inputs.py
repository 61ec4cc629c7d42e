"""INPUT given as an fsspec URL: the same inputs, the same bytes out, only the bytes needed read.

``memory://`` stands in for object storage here (in-process, so ``workers=1``); the S3 tests in
test_object_storage.py compile from a real S3 endpoint with worker processes.
"""

from __future__ import annotations

import fsspec
import numpy as np
import pytest
from click.testing import CliRunner

from apfcompile import CompileConfig, compile_dataset
from apfcompile.cli import main
from apfcompile.inputs import locations as inputs
from apfcompile.inputs.layouts import discover
from apfcompile.inputs.readers import read_array

from . import builders
from .remote_fs import CountingFS, upload


def same_compile(local_src, url_src, tmp_path, **kw) -> dict:
    compile_dataset(CompileConfig.from_options(input=local_src, output=tmp_path / "local", workers=1, **kw))
    compile_dataset(CompileConfig.from_options(input=url_src, output=tmp_path / "remote", workers=1, **kw))
    local, remote = builders.tree_bytes(tmp_path / "local"), builders.tree_bytes(tmp_path / "remote")
    assert remote == local
    return local


@pytest.mark.parametrize("style", ["rawdata", "imagesTr"])
def test_btcv_from_a_url_equals_the_local_compile(tmp_path, style):
    src = builders.btcv(tmp_path / "btcv", cases=2, style=style)
    out = same_compile(src, upload(src), tmp_path, length=48, shard_samples=16)
    assert len([k for k in out if k.endswith("shard.json")]) == 4


@pytest.mark.parametrize("out_of_core", ["never", "always"])
def test_paip_from_a_url_equals_the_local_compile(tmp_path, out_of_core):
    src = builders.paip(tmp_path / "paip")
    same_compile(src, upload(src), tmp_path, resolution=256, length=128, out_of_core=out_of_core, band_rows=64)


def test_folder_with_masks_inside_and_list_from_urls(tmp_path):
    src = builders.nuclei_folder(tmp_path / "in", copies=3)
    masks = src / "masks"
    (masks / "sub").mkdir(parents=True)
    for p in sorted(src.rglob("*_mask.tif")):
        if masks not in p.parents:
            p.rename(masks / p.relative_to(src))
    url = upload(src)
    local_items, _ = discover(src, "folder", masks)
    url_items, _ = discover(url, "folder", url + "/masks")
    assert [(i.key, i.source, i.mask_source) for i in url_items] == [
        (i.key, i.source, i.mask_source) for i in local_items
    ]
    assert [i.key for i in url_items] == ["n0", "n2", "sub/n1"] and all(i.masks for i in url_items)
    compile_dataset(
        CompileConfig.from_options(input=src, output=tmp_path / "f-local", masks=masks, length=200, workers=1)
    )
    compile_dataset(
        CompileConfig.from_options(input=url, output=tmp_path / "f-remote", masks=url + "/masks", length=200, workers=1)
    )
    assert builders.tree_bytes(tmp_path / "f-remote") == builders.tree_bytes(tmp_path / "f-local")

    (src / "list.csv").write_text("image,mask,key\nn0.tif,masks/n0_mask.tif,first\nsub/n1.tif,,second\n")
    url = upload(src)
    same_compile(src / "list.csv", url + "/list.csv", tmp_path / "list", length=100)


def test_readers_take_urls(tmp_path):
    a = np.arange(60, dtype=np.uint16).reshape(6, 10)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "b.npz", image=a)
    url = upload(tmp_path)
    np.testing.assert_array_equal(read_array(url + "/a.npy"), a)
    np.testing.assert_array_equal(read_array(url + "/b.npz"), a)


def test_a_remote_slide_costs_the_bytes_of_the_level_read(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "_BLOCK", 16 << 10)  # small read-ahead, to see what is fetched
    src = builders.paip(tmp_path / "paip", cases=("c1",))
    url = upload(src, "countmem")
    slide = url + "/Training_phase_1/c1.svs"
    size = fsspec.filesystem("countmem").size(slide)
    CountingFS.fetched = 0
    from apfcompile.inputs.frames import load_frames

    items, _ = discover(url)
    CountingFS.fetched = 0
    (frame,) = load_frames(items[0], resolution=256)  # level 2 of 3: 1/16 of the pixels
    assert frame.image.shape == (256, 256, 3)
    fetched_for_slide = CountingFS.fetched
    masks_size = sum(fsspec.filesystem("countmem").size(str(m)) for m in items[0].masks)
    assert fetched_for_slide < 0.3 * (size + masks_size)


def test_remote_input_errors_are_one_line(tmp_path):
    src = builders.nuclei_folder(tmp_path / "in", copies=1)
    url = upload(src)
    for args in (
        [url + "-missing", tmp_path / "a"],
        [url, tmp_path / "b", "--masks", url + "/nope"],
        ["memory://in-x/list.csv", tmp_path / "c"],
    ):
        result = CliRunner().invoke(main, ["compile", *map(str, args), "-j", "1"])
        errors = [line for line in result.output.splitlines() if line.startswith("apfcompile: error:")]
        assert result.exit_code != 0 and "Traceback" not in result.output and len(errors) == 1, result.output
        assert "no such file or folder" in errors[0]
    fs = fsspec.filesystem("memory")
    fs.pipe(url.split("://")[1] + "/broken.tif", b"not a tiff at all")
    result = CliRunner().invoke(main, ["compile", url, str(tmp_path / "d"), "-j", "1"])
    assert result.exit_code != 0 and "broken.tif" in result.output and "Traceback" not in result.output


def test_file_urls_and_preview_from_a_url(tmp_path):
    src = builders.btcv(tmp_path / "btcv", cases=1)
    url = upload(src)
    runner = CliRunner()
    result = runner.invoke(main, ["compile", f"file://{src}", str(tmp_path / "ds"), "-L", "48", "-j", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main,
        ["preview", str(tmp_path / "ds"), "--sample", "img0001/z010", "-o", str(tmp_path / "p.png"), "--input", url],
    )
    assert result.exit_code == 0, result.output
    local = runner.invoke(
        main,
        [
            "preview",
            str(tmp_path / "ds"),
            "--sample",
            "img0001/z010",
            "-o",
            str(tmp_path / "q.png"),
            "--input",
            str(src),
        ],
    )
    assert local.exit_code == 0 and (tmp_path / "p.png").read_bytes() == (tmp_path / "q.png").read_bytes()


def test_a_url_whose_filesystem_is_not_installed_is_one_line(tmp_path):
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401

        pytest.skip("gcsfs is installed here")
    except ImportError:
        pass
    src = builders.nuclei_folder(tmp_path / "in", copies=1)
    for args in (
        ["compile", "gs://bucket/in", str(tmp_path / "o")],
        ["compile", str(src), "gs://b/o"],
        ["inspect", "gs://bucket/ds"],
    ):
        result = CliRunner().invoke(main, args)
        errors = [line for line in result.output.splitlines() if line.startswith("apfcompile: error:")]
        assert result.exit_code != 0 and len(errors) == 1 and "gcsfs" in errors[0], result.output


def test_chained_urls_keep_a_local_copy_of_the_inputs(tmp_path):
    src = builders.btcv(tmp_path / "btcv", cases=1)
    url = upload(src)
    cache = tmp_path / "input-cache"
    result = CliRunner().invoke(
        main,
        [
            "compile",
            f"filecache::{url}",
            str(tmp_path / "ds"),
            "-L",
            "48",
            "-j",
            "1",
            "--input-storage-option",
            f"filecache.cache_storage={cache}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len([p for p in cache.iterdir() if p.name != "cache"]) == 2  # the volume and its labels
    compile_dataset(CompileConfig.from_options(input=src, output=tmp_path / "local", length=48, workers=1))
    assert builders.tree_bytes(tmp_path / "ds") == builders.tree_bytes(tmp_path / "local")


def test_storage_option_parsing():
    from apfcompile.cli import _storage_options

    parsed = _storage_options(
        None,
        None,
        (
            "endpoint_url=http://e",
            "anon=true",
            "s3.region_name=eu",
            "filecache.cache_storage=/c",
            "s3.requester_pays=false",
        ),
    )
    assert parsed == {
        "client_kwargs": {"endpoint_url": "http://e"},
        "anon": True,
        "s3": {"client_kwargs": {"region_name": "eu"}, "requester_pays": False},
        "filecache": {"cache_storage": "/c"},
    }
    import click

    for bad in ("novalue", "=x", "s3.=x", ".a=b"):
        with pytest.raises(click.BadParameter):
            _storage_options(None, None, (bad,))
