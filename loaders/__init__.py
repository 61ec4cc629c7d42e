"""The PyTorch side of apfcompile: datasets, collate, mask reconstruction and Dice.

Depends on torch, numpy and :mod:`formats`; never on cv2 or the compiler.

- :class:`APFDataset`: map-style, random access by index;
- :class:`APFStream`: an IterableDataset that splits shards over DDP ranks and DataLoader workers,
  shuffles by (seed, epoch) and resumes mid-epoch;
- :func:`collate`: batches of possibly different lengths;
- :func:`reconstruct`: predicted patch sequences -> full-size maps on the prediction's device;
- :func:`dice`: per-class Dice at full resolution, pooled or per sample;
- :func:`to_original`: a canvas-size prediction back to the original image's pixels;
- :func:`normalization`, :func:`class_weights`: from the statistics computed at compile time;
- :mod:`loaders.transforms`: exact flips/rotations in token space, CT window, normalisation.
"""

from .collate import collate
from .datasets import APFDataset, APFStream, SkippedSampleWarning
from .reconstruct import dice, reconstruct, to_original
from .statistics import class_weights, normalization

__all__ = [
    "APFDataset",
    "APFStream",
    "SkippedSampleWarning",
    "class_weights",
    "collate",
    "dice",
    "normalization",
    "reconstruct",
    "to_original",
]
