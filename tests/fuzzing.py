"""Any bytes in: every reader of the tool fed truncations, bit flips and hostile header values.

The rule for every reader, checked here for each mutated file: a correct read (the same data as
the unmutated file where the format carries checksums; any array for image formats, which carry
none that the libraries check) or one clear error of the project's own kinds (an ``APFError`` for
inputs, a ``FormatError`` for datasets) — never another exception, a hang, or a crash of the
interpreter. Image readers run native code (OpenCV, libtiff codecs, ITK), so their cases run in
a child process (``python -m tests.fuzzing``), where a crash is a reported failure, not the end of
the test run.

``benchmarks/fuzz_readers.py`` runs the same cases with a larger budget and prints the counts.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MUTATION = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("flip"), st.floats(0.0, 1.0), st.integers(0, 7)),
    st.tuples(st.just("header-flip"), st.integers(0, 511), st.integers(0, 7)),
    # a size field turned huge, zero or negative: 4 bytes, either byte order, anywhere in the header
    st.tuples(st.just("header-int"), st.integers(0, 508), st.sampled_from([0xFFFFFFFF, 0x7FFFFFFF, 0x00010000, 0])),
)
MUTATIONS = st.lists(MUTATION, min_size=1, max_size=3)


def mutate(data: bytes, mutations: list[tuple]) -> bytes:
    """``data`` with ``mutations`` applied in order (positions as fractions of the length, or
    header offsets clipped to it)."""
    out = bytearray(data)
    for m in mutations:
        if not out:
            break
        if m[0] == "truncate":
            del out[int(m[1] * len(out)) :]
        elif m[0] == "flip":
            out[min(int(m[1] * len(out)), len(out) - 1)] ^= 1 << m[2]
        elif m[0] == "header-flip":
            out[min(m[1], len(out) - 1)] ^= 1 << m[2]
        else:
            at = min(m[1], max(len(out) - 4, 0))
            order = "little" if m[1] % 2 else "big"
            out[at : at + 4] = m[2].to_bytes(4, order)[: len(out) - at]
    return bytes(out)


# -- image readers ---------------------------------------------------------------------------------


def image_seeds() -> dict[str, tuple[str, bytes]]:
    """Reader name -> (file suffix, a small valid file of real pixels)."""
    import cv2
    import nibabel as nib
    import tifffile

    from apfcompile.demo import sample_path
    from apfcompile.inputs.readers import read_array

    tissue = read_array(sample_path("he_tissue.tif"))[:48, :64]
    seeds = {
        "png": (".png", cv2.imencode(".png", tissue)[1].tobytes()),
        "jpeg": (".jpg", cv2.imencode(".jpg", tissue)[1].tobytes()),
        "bmp": (".bmp", cv2.imencode(".bmp", tissue)[1].tobytes()),
    }
    buf = io.BytesIO()
    tifffile.imwrite(buf, tissue, tile=(16, 16), compression="zlib")
    seeds["tiff"] = (".tif", buf.getvalue())
    buf = io.BytesIO()
    tifffile.imwrite(buf, tissue, tile=(16, 16), compression="jpeg", photometric="rgb")
    seeds["svs"] = (".svs", buf.getvalue())
    volume = (np.arange(16 * 12 * 4, dtype=np.int16).reshape(16, 12, 4) * 7) - 1000
    img = nib.Nifti1Image(volume, np.diag([0.8, 0.8, 2.5, 1.0]))
    seeds["nifti"] = (".nii", img.to_bytes())
    seeds["nifti-gz"] = (".nii.gz", gzip.compress(img.to_bytes(), mtime=0))
    buf = io.BytesIO()
    np.save(buf, tissue)
    seeds["npy"] = (".npy", buf.getvalue())
    buf = io.BytesIO()
    np.savez_compressed(buf, image=tissue)
    seeds["npz"] = (".npz", buf.getvalue())
    try:
        import h5py

        buf = io.BytesIO()
        with h5py.File(buf, "w") as f:
            f["image"] = tissue[..., 0]
        seeds["hdf5"] = (".h5", buf.getvalue())
    except ImportError:
        pass
    try:
        import SimpleITK as sitk
    except ImportError:
        return seeds
    with tempfile.TemporaryDirectory() as tmp:
        for name, suffix in (("mha", ".mha"), ("nrrd", ".nrrd")):
            path = Path(tmp) / f"v{suffix}"
            sitk.WriteImage(sitk.GetImageFromArray(volume.transpose(2, 1, 0).copy()), str(path))
            seeds[name] = (suffix, path.read_bytes())
        seeds["dicom"] = (".dcm", *_dicom_series(sitk, volume, Path(tmp) / "series"))
    return seeds


def _dicom_series(sitk, volume: np.ndarray, folder: Path) -> tuple[bytes, dict[str, bytes]]:
    """A 4-slice CT series: the first file's bytes (the one fuzzed) and the others by name."""
    folder.mkdir()
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.transpose(2, 1, 0)))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(image.GetSize()[2]):
        cut = image[:, :, z]
        for tag, value in (
            ("0020|0032", f"0\\0\\{z * 2.5}"),
            ("0020|0013", str(z)),
            ("0008|0060", "CT"),
            ("0020|000e", "1.2.826.0.1.3680043.2.1125.1"),
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
        ):
            cut.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{z:03d}.dcm"))
        writer.Execute(cut)
    files = sorted(folder.iterdir())
    return files[0].read_bytes(), {p.name: p.read_bytes() for p in files[1:]}


def image_outcome(suffix: str, data: bytes, folder: Path, beside: dict[str, bytes] | None = None) -> str:
    """'read' or 'error' (an APFError) for one file (with the files ``beside`` it: the rest of a
    DICOM series); any other exception propagates."""
    from apfcompile.errors import APFError
    from apfcompile.inputs.readers import read_array

    folder.mkdir(parents=True, exist_ok=True)
    for name, extra in (beside or {}).items():
        (folder / name).write_bytes(extra)
    path = folder / f"{'000' if beside else 'case'}{suffix}"
    path.write_bytes(data)
    try:
        out = read_array(path)
    except APFError as exc:
        return _one_line(exc)
    assert isinstance(out, np.ndarray)
    return "read"


def _cases(examples: int, body: Callable[[list], None]) -> None:
    """``body(mutations)`` for ``examples`` hypothesis-drawn mutation lists (derandomized: the same
    cases every run); a case that raises is shrunk and reported by hypothesis."""

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(MUTATIONS)
    def case(mutations):
        body(mutations)

    case()


def _image_case(suffix: str, data: bytes, folder: Path, beside, tally: dict, mutations: list) -> None:
    tally[image_outcome(suffix, mutate(data, mutations), folder, beside)] += 1


def _one_line(exc: Exception) -> str:
    """'error' for an error of one line (the rule); raise for one of more."""
    if "\n" in str(exc):
        raise AssertionError(f"an error of more than one line: {exc!r}") from None
    return "error"


def fuzz_images(examples: int, only: str | None = None) -> dict[str, dict[str, int]]:
    """Run ``examples`` mutated files through each image reader; counts of outcomes per reader.
    A case breaking the rule raises (hypothesis prints the smallest such mutation)."""
    counts: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="apf-fuzz-") as tmp:
        for name, (suffix, data, *beside) in image_seeds().items():
            if only is not None and name != only:
                continue
            folder = Path(tmp) / name  # a folder per reader: a DICOM series is its folder
            extras = beside[0] if beside else None
            assert image_outcome(suffix, data, folder, extras) == "read", name  # the seed itself reads
            tally = counts.setdefault(name, {"read": 0, "error": 0})
            _cases(examples, functools.partial(_image_case, suffix, data, folder, extras, tally))
    return counts


# -- dataset readers -------------------------------------------------------------------------------


def dataset_targets(ds: Path) -> dict[str, Path]:
    """Reader name -> the file of dataset ``ds`` it reads."""
    shard = ds / "shards" / "00000"
    return {
        "apf.json": ds / "apf.json",
        "shard.json": shard / "shard.json",
        "samples.parquet": shard / "samples.parquet",
        "nodes.parquet": shard / "nodes.parquet",
        "zarr.json": shard / "patches.zarr" / "image" / "zarr.json",
        "patch chunks": shard / "patches.zarr" / "image" / "c" / "0" / "0" / "0" / "0",
        "mask chunks": shard / "patches.zarr" / "mask" / "c" / "0" / "0" / "0",
    }


def read_everything(ds: Path) -> dict[str, bytes]:
    """Every item of ``ds`` through APFDataset (all fields as bytes), as a trainer reads it."""
    from loaders import APFDataset

    data = APFDataset(ds, length=64)
    out = {}
    for i in range(len(data)):
        item = data[i]
        out[item["key"]] = b"".join(v.numpy().tobytes() for k, v in sorted(item.items()) if hasattr(v, "numpy"))
    return out


def dataset_outcome(name: str, ds: Path, truth: dict[str, bytes]) -> str:
    """'read' (the same items as before the mutation), 'error' (a FormatError) or 'refused'
    (shard.json: a resume that compiles the shard again); anything else raises."""
    from formats import FormatError
    from formats.writer import read_shard_record

    if name == "shard.json":
        record = read_shard_record(ds, 0)
        return "read" if record is not None else "refused"
    try:
        got = read_everything(ds)
    except FormatError as exc:
        return _one_line(exc)
    if got != truth:
        raise AssertionError(f"{name}: a mutated file read without an error, with other data")
    return "read"


def _dataset_case(name: str, path: Path, original: bytes, ds: Path, truth: dict, tally: dict, mutations: list) -> None:
    path.write_bytes(mutate(original, mutations))
    try:
        tally[dataset_outcome(name, ds, truth)] += 1
    finally:
        path.write_bytes(original)


def fuzz_dataset(ds: Path, examples: int) -> dict[str, dict[str, int]]:
    """Mutate each file kind of dataset ``ds`` (restored after each case); counts per reader."""
    truth = read_everything(ds)
    counts: dict[str, dict[str, int]] = {}
    for name, path in dataset_targets(ds).items():
        original = path.read_bytes()
        tally = counts.setdefault(name, {"read": 0, "error": 0, "refused": 0})
        _cases(examples, functools.partial(_dataset_case, name, path, original, ds, truth, tally))
    return counts


def small_dataset(root: Path) -> Path:
    """One shard of two real nuclei samples with masks (L = 64): the dataset the fuzzing mutates."""
    from . import builders

    src = builders.nuclei_folder(root / "in", copies=2)
    builders.compile_to(src, root / "ds", length=64)
    return root / "ds"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz the image readers in this process (see module docstring).")
    parser.add_argument("--examples", type=int, default=30)
    parser.add_argument("--only")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    counts = fuzz_images(args.examples, only=args.only)
    if args.json:
        print(json.dumps(counts))
    else:
        for name, tally in counts.items():
            print(f"{name:>10}: {sum(tally.values())} cases, {tally['read']} read, {tally['error']} one-line errors")
        print(f"{time.perf_counter() - started:.1f} s")
    return 0


def run_in_child(examples: int, timeout: float, only: str | None = None) -> tuple[int, dict | None, str]:
    """``python -m tests.fuzzing`` in a child process: (exit status, counts or None, stderr)."""
    import subprocess

    cmd = [sys.executable, "-m", "tests.fuzzing", "--examples", str(examples), "--json"]
    if only:
        cmd += ["--only", only]
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=root)
    counts = json.loads(run.stdout.strip().splitlines()[-1]) if run.returncode == 0 and run.stdout.strip() else None
    return run.returncode, counts, run.stderr


if __name__ == "__main__":
    sys.exit(main())
