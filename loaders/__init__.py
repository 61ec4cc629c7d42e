"""The PyTorch side of apfcompile: datasets, collate and GPU mask reconstruction.

Depends on torch, numpy and :mod:`formats`; never on cv2 or the compiler.
"""

__all__: list[str] = []
