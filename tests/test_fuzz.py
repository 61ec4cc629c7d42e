"""Any bytes in: every reader fuzzed (small budget here; ``benchmarks/fuzz_readers.py`` runs more),
and headers that claim more pixels than ``--max-pixels`` refused before anything is allocated."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apfcompile.errors import InputError
from apfcompile.inputs.readers import pixel_limit, read_array
from formats import FormatError
from formats.spec import parse_manifest

from . import fuzzing


def test_image_readers_take_any_bytes():
    """Every image reader, 25 mutated files each, in a child process (native code may crash)."""
    code, counts, stderr = fuzzing.run_in_child(examples=25, timeout=600)
    assert code == 0, stderr[-3000:]
    assert {"png", "jpeg", "tiff", "svs", "nifti", "nifti-gz", "npy", "npz", "hdf5", "dicom"} <= set(counts)
    for name, tally in counts.items():
        assert sum(tally.values()) == 25 and tally["error"] > 0, (name, tally)


def test_dataset_readers_take_any_bytes(tmp_path):
    """apf.json, shard.json, both Parquet tables, zarr.json and both chunk files of a real
    dataset: every mutation reads the same items or is one FormatError (never other data)."""
    ds = fuzzing.small_dataset(tmp_path)
    counts = fuzzing.fuzz_dataset(ds, examples=25)
    for name, tally in counts.items():
        assert sum(tally.values()) == 25, (name, tally)
        assert tally["error"] + tally["refused"] > 0, (name, tally)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_the_manifest_parser_takes_any_json(doc):
    try:
        parse_manifest(json.dumps(doc), "apf.json")
    except FormatError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_the_manifest_parser_takes_any_bytes(raw):
    try:
        parse_manifest(raw, "apf.json")
    except FormatError:
        pass


# -- the pixel guard -------------------------------------------------------------------------------


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _hostile_png() -> bytes:
    """A PNG whose (valid, CRC-correct) header claims 100,000 x 100,000 RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _hostile_npy() -> bytes:
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (100000, 100000, 3), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 1000


def _hostile_nifti() -> bytes:
    import nibabel as nib

    head = nib.Nifti1Header()
    head.set_data_shape((30_000, 30_000, 30_000))
    head.set_data_dtype(np.int16)
    return head.binaryblock + b"\0" * 4 + b"\0" * 4096


def _hostile_tiff() -> bytes:
    """A classic TIFF of one strip whose tags claim 200,000 x 200,000 grey pixels."""
    entries = [(256, 4, 1, 200_000), (257, 4, 1, 200_000), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1)]
    entries += [(273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, 200_000), (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0" * 4
    return b"II*\0" + struct.pack("<I", 24) + b"\0" * 16 + ifd


HOSTILE = {".png": _hostile_png, ".npy": _hostile_npy, ".nii": _hostile_nifti, ".tif": _hostile_tiff}


@pytest.mark.parametrize("suffix", list(HOSTILE))
def test_a_hostile_header_is_refused_before_any_allocation(tmp_path, suffix):
    path = tmp_path / f"bomb{suffix}"
    path.write_bytes(HOSTILE[suffix]())
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"header claims [\d,]+ pixels .* raise --max-pixels") as err:
            read_array(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert peak < 20e6  # nothing near the 10-30 GB the header claims


@pytest.mark.parametrize(
    "name", ["png", "jpeg", "bmp", "tiff", "svs", "nifti", "nifti-gz", "npy", "npz", "hdf5", "mha", "dicom"]
)
def test_every_reader_applies_the_limit(tmp_path, name):
    seeds = fuzzing.image_seeds()
    if name not in seeds:
        pytest.skip(f"{name}: its reader's extra is not installed")
    suffix, data, *beside = seeds[name]
    for file, extra in (beside[0] if beside else {}).items():
        (tmp_path / file).write_bytes(extra)
    path = tmp_path / f"{'000' if beside else 'seed'}{suffix}"
    path.write_bytes(data)
    assert read_array(path).size  # within the default limit
    with pixel_limit(100), pytest.raises(InputError, match="over 100"):
        read_array(path)


def test_the_cli_refuses_over_max_pixels_in_one_line(tmp_path):
    from . import builders

    src = builders.nuclei_folder(tmp_path / "in", copies=1)
    cmd = ["apfcompile", "compile", str(src), str(tmp_path / "ds"), "--max-pixels", "10000"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.count("\n") == 1, run.stderr
    assert "over 10,000; if the file is genuine, raise --max-pixels" in run.stderr
    ok = subprocess.run(cmd[:-1] + ["0"], capture_output=True, text=True)  # 0: no limit
    assert ok.returncode == 0, ok.stderr


def test_gzip_bombs_are_bounded_too(tmp_path):
    """A .nii.gz whose header claims 27 Tvoxels (the gzip stream itself small): refused."""
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(gzip.compress(_hostile_nifti()))
    with pytest.raises(InputError, match="header claims"):
        read_array(path)


def test_a_tiff_claiming_more_tiles_than_it_lists_is_refused():
    """Found by the fuzzer: 799 bytes whose header claims 16,777,264 x 64 pixels in 4 million
    tiles, listing 12 (tifffile would visit every missing tile, for minutes, under the pixel
    limit). Refused from the header."""
    from pathlib import Path

    path = Path(__file__).parent / "data" / "fuzz-tiff-many-tiles.tif"
    with pytest.raises(InputError, match=r"claims a 16,777,264 x 64 image in 4,194,316 tiles or strips but lists 12"):
        read_array(path)


def test_an_array_larger_than_the_memory_available_is_refused(tmp_path, monkeypatch):
    """Under the pixel limit but over the memory this machine has: refused from the header (the
    fuzzer's float64 MetaImage claiming 3.6 G voxels ended in the out-of-memory killer before)."""
    import apfcompile.inputs.readers.limits as limits

    monkeypatch.setattr(limits, "_available_memory", lambda: 1_000_000)  # 1 MB available
    path = tmp_path / "big.npy"
    np.save(path, np.zeros((1000, 1000), np.float64))  # 8 MB
    with pytest.raises(InputError, match=r"8\.0 GB|0\.0 GB in memory, more than the 0\.0 GB|more than the"):
        read_array(path)
    monkeypatch.setattr(limits, "_available_memory", lambda: None)  # unknown: the pixel limit alone
    assert read_array(path).shape == (1000, 1000)


@pytest.mark.parametrize(
    "how, message",
    [
        ("vr", "has no valid value representation"),
        ("meta", "file meta information does not start with its group length"),
        ("length", r"claims [\d,]+ bytes, and [\d,]+ are left"),
    ],
)
def test_a_dicom_header_gdcm_would_misread_is_refused_first(tmp_path, how, message):
    """Found by the fuzzer: a DICOM file of 1.3 kB with one byte flipped in a value
    representation or in the file meta group made GDCM allocate 0.8-4.8 GB while scanning the
    folder (the out-of-memory killer ended the run). Such headers are refused before GDCM."""
    seeds = fuzzing.image_seeds()
    if "dicom" not in seeds:
        pytest.skip("SimpleITK (the volumes extra) is not installed")
    _, data, beside = seeds["dicom"]
    for name, extra in beside.items():
        (tmp_path / name).write_bytes(extra)
    data = bytearray(data)
    if how == "vr":
        at = data.index(b"SH", 132)
        data[at + 1 : at + 2] = b"h"
    elif how == "meta":
        data[132:134] = b"\x00\x00"
    else:
        at = data.index(b"\xe0\x7f\x10\x00")  # pixel data: its length made larger than the file
        data[at + 4 : at + 8] = (1 << 30).to_bytes(4, "little")  # (implicit VR: tag, then length)
    (tmp_path / "000.dcm").write_bytes(bytes(data))
    with pytest.raises(InputError, match=message):
        read_array(tmp_path / "000.dcm")
