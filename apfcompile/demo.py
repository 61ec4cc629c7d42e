"""The demo: compile the bundled real samples, read them back, preview them.

:func:`run_demo` lays the bundled files out as three small input folders under
``OUTPUT/inputs`` and compiles each into a dataset under ``OUTPUT``:

- ``ct``: an abdominal CT volume (int16 HU) and its organ label volume, one sample per axial
  slice, edges on the HU window -175..250, L = 64;
- ``nuclei``: a fluorescence image (uint16) with its instance labels, L = 512;
- ``tissue``: an H&E crop (RGB uint8), unlabelled, L = 1,024.

It prints each dataset's summary, reads a batch of samples back padded to a fixed length, and
writes one preview per dataset.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np

from formats import open_dataset

from .build.config import CompileConfig
from .build.run import compile_dataset
from .core.sequence import fit_length
from .inputs.layouts import CT_WINDOW
from .preview import write_preview
from .report import summary

__all__ = ["DEMO_DATASETS", "run_demo", "sample_path"]

DEMO_DATASETS = {
    "ct": (
        {"ct_abdomen.nii.gz": "ct_abdomen.nii.gz", "ct_abdomen_seg.nii.gz": "ct_abdomen_mask.nii.gz"},
        {"length": 64, "window": CT_WINDOW, "modality": "ct"},
    ),
    "nuclei": ({"nuclei_image.tif": "nuclei.tif", "nuclei_mask.tif": "nuclei_mask.tif"}, {"length": 512}),
    "tissue": ({"he_tissue.tif": "he_tissue.tif"}, {"length": 1024}),
}
"""dataset name -> (bundled file -> name in the input folder, compile options)."""


def sample_path(name: str) -> Path:
    """Path of a bundled sample file (see ``apfcompile/samples/README.md``)."""
    return Path(str(resources.files("apfcompile") / "samples" / name))


def run_demo(output: str | Path = "apf-demo", echo: Callable[[str], None] = print) -> dict[str, Path]:
    """Compile, read back and preview the bundled samples; returns dataset name -> dataset path."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, (files, options) in DEMO_DATASETS.items():
        inputs = out / "inputs" / name
        inputs.mkdir(parents=True, exist_ok=True)
        for src, dst in files.items():
            shutil.copyfile(sample_path(src), inputs / dst)
        target = out / name
        cfg = CompileConfig.from_options(
            inputs, target, layout="folder", overwrite=True, workers=os.cpu_count() or 1, **options
        )
        compile_dataset(cfg)
        ds = open_dataset(target)
        echo(summary(ds))
        # Stream a batch back: the first samples, padded or dropped to the compiled length.
        batch = [ds.read_sample(int(s)) for s in ds.samples["sample"].to_pylist()[:4]]
        length = options["length"]
        seqs = [fit_length(b.image, b.nodes, length, mask=b.mask) for b in batch]
        images = np.stack([s.patches for s in seqs])
        valid = np.stack([s.valid for s in seqs])
        echo(
            f"batch     {images.shape[0]} x {images.shape[1]} patches of {images.shape[2:]} {images.dtype}, "
            f"{int(valid.sum())} valid rows"
        )
        key = batch[len(batch) // 2].meta["key"]
        picture = write_preview(ds, key, out / f"{name}_preview.png", input_root=inputs)
        echo(f"preview   {picture} ({key})\n")
        made[name] = target
    return made
