"""Fake PAIP / BTCV / folder datasets built from the real bundled samples (and ../shared)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import tifffile

from apfcompile.demo import sample_path
from apfcompile.inputs.readers import read_array

TS_TO_BTCV = {1: 1, 2: 2, 3: 3, 4: 4, 15: 5, 5: 6, 6: 7, 52: 8, 63: 9, 64: 10, 7: 11, 8: 12, 9: 13}
"""TotalSegmentator's ids of BTCV's 13 organs -> BTCV's ids; every other label becomes background."""


def btcv_labels(path: Path) -> Path:
    """The bundled TotalSegmentator label volume with BTCV's label ids (real labels, BTCV's scheme)."""
    import nibabel as nib

    seg = nib.load(sample_path("ct_abdomen_seg.nii.gz"))
    labels = np.asarray(seg.dataobj)
    lut = np.zeros(256, np.uint8)
    for ts, ours in TS_TO_BTCV.items():
        lut[ts] = ours
    nib.save(nib.Nifti1Image(lut[labels], seg.affine, seg.header), path)
    return path


def btcv(root: Path, cases: int = 2, style: str = "rawdata", whole_body: bool = False) -> Path:
    """``RawData/Training/{img,label}/`` (or ``imagesTr``/``labelsTr``) with real CT volumes and
    their labels in BTCV's scheme (``whole_body``: the bundled whole-body label ids, up to 117)."""
    img_dir, lab_dir = (
        ("RawData/Training/img", "RawData/Training/label") if style == "rawdata" else ("imagesTr", "labelsTr")
    )
    (root / img_dir).mkdir(parents=True)
    (root / lab_dir).mkdir(parents=True)
    for i in range(1, cases + 1):
        name = f"img{i:04d}.nii.gz"
        shutil.copyfile(sample_path("ct_abdomen.nii.gz"), root / img_dir / name)
        label = name.replace("img", "label") if style == "rawdata" else name
        if whole_body:
            shutil.copyfile(sample_path("ct_abdomen_seg.nii.gz"), root / lab_dir / label)
        else:
            btcv_labels(root / lab_dir / label)
    return root


def write_pyramid(path: Path, image: np.ndarray, levels: int = 3, jpeg: bool = True) -> None:
    """A tiled pyramidal TIFF (levels as SubIFDs), JPEG tiles for RGB."""
    kw = {"tile": (128, 128), "compression": "jpeg" if jpeg else "zlib"}
    if image.ndim == 3:
        kw["photometric"] = "rgb"
    with tifffile.TiffWriter(path) as tif:
        tif.write(image, subifds=levels - 1, **kw)
        for k in range(1, levels):
            tif.write(np.ascontiguousarray(image[:: 2**k, :: 2**k]), subfiletype=1, **kw)


def paip(root: Path, cases: tuple[str, ...] = ("01_01_0083", "01_01_0085"), missing: str | None = None) -> Path:
    """PAIP-shaped cases from the real H&E crop; whole/viable 0/1 masks drawn from its stain."""
    tissue = read_array(sample_path("he_tissue.tif"))
    grey = tissue.mean(axis=2)
    folder = root / "Training_phase_1"
    folder.mkdir(parents=True)
    for i, case in enumerate(cases):
        image = np.ascontiguousarray(np.rot90(tissue, i))
        g = np.rot90(grey, i)
        write_pyramid(folder / f"{case}.svs", image)
        whole = (g < 200).astype(np.uint8)
        viable = (g < 150).astype(np.uint8)
        if missing != f"{case}_whole":
            write_pyramid(folder / f"{case}_whole.tif", whole, jpeg=False)
        if missing != f"{case}_viable":
            write_pyramid(folder / f"{case}_viable.tif", viable, jpeg=False)
    return root


def nuclei_folder(root: Path, copies: int = 3) -> Path:
    """Real nuclei images with ``NAME_mask.tif`` beside them (rotated copies)."""
    image = read_array(sample_path("nuclei_image.tif"))
    mask = read_array(sample_path("nuclei_mask.tif"))
    (root / "sub").mkdir(parents=True)
    for i in range(copies):
        where = root / ("sub" if i % 2 else "")
        tifffile.imwrite(where / f"n{i}.tif", np.ascontiguousarray(np.rot90(image, i)))
        tifffile.imwrite(where / f"n{i}_mask.tif", np.ascontiguousarray(np.rot90(mask, i)))
    return root


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path (to compare datasets byte for byte), less the
    run facts in compile-stats.json (peak memory and wall time differ from run to run)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "compile-stats.json"
    }


def compile_to(src, out, **options):
    """``compile_dataset`` of ``src`` into ``out`` with the CLI's options by name; tests default to
    one worker and L = 32."""
    from apfcompile import CompileConfig, compile_dataset

    options.setdefault("length", 32)
    options.setdefault("workers", 1)
    return compile_dataset(CompileConfig.from_options(src, out, **options))
