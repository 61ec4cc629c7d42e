"""The node table: a sample's leaves, one row per node, in stored (Morton Z-) order.

This one numpy-only type is what the forest returns, what the writer stores as ``nodes.parquet``
rows, what :class:`~formats.SampleData` and the loader's shard reader give back, and what the
report, previews, the demo and both ``reconstruct`` functions read. Contract:

- every column has shape (N,); row i <-> patch i of the sample;
- boxes are half-open canvas pixels ``[x1, x2) x [y1, y2)``, square: ``size == x2 - x1 == y2 - y1``
  (int32); ``depth`` (int32) counts from the root tile (0); ``tile`` (int32) is the root tile's
  row-major index (not stored on disk: 0 when read back); ``edges`` (int64) the edge pixels in the
  box; the centre ``(cx, cy)`` is derived, ``((x1 + x2) / 2, (y1 + y2) / 2)`` (float64);
- ``canvas`` is the (H, W) the boxes live on.

Volumes (3-D datasets, octree leaves) add ``z1``, ``z2`` (int32, half-open, ``z2 - z1 == size``;
None in 2-D tables) and the derived ``cz``; their ``canvas`` is (D, H, W), their ``box`` has six
columns (x1, x2, y1, y2, z1, z2) and their ``center`` three (cx, cy, cz).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from .sequence import priority_order

__all__ = ["NODE_COLUMNS", "NODE_COLUMNS_3D", "NodeTable"]

NODE_COLUMNS = ("x1", "x2", "y1", "y2", "size", "cx", "cy", "depth", "edges")
"""The per-node columns stored in ``nodes.parquet`` (after ``sample``), in order."""

NODE_COLUMNS_3D = ("x1", "x2", "y1", "y2", "z1", "z2", "size", "cx", "cy", "cz", "depth", "edges")
"""The same for volumes (3-D datasets)."""

_FIELDS = ("x1", "x2", "y1", "y2", "size", "depth", "tile", "edges")


@dataclass(frozen=True)
class NodeTable:
    """A sample's nodes (see the module docstring); ``table["x1"]`` reads a column by name."""

    x1: np.ndarray
    x2: np.ndarray
    y1: np.ndarray
    y2: np.ndarray
    size: np.ndarray
    depth: np.ndarray
    tile: np.ndarray
    edges: np.ndarray
    canvas: tuple[int, ...] = field(default=(0, 0))
    z1: np.ndarray | None = None
    z2: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x1.shape[0])

    @property
    def dims(self) -> int:
        """2 for image leaves, 3 for volume leaves."""
        return 2 if self.z1 is None else 3

    @property
    def column_names(self) -> tuple[str, ...]:
        return NODE_COLUMNS if self.z1 is None else NODE_COLUMNS_3D

    def __contains__(self, name: object) -> bool:
        return name in self.column_names or name == "tile"

    def __getitem__(self, name: str) -> np.ndarray:
        """A column by name: any of :data:`NODE_COLUMNS` (:data:`NODE_COLUMNS_3D`) or ``tile``."""
        if name not in self:
            raise KeyError(f"no node column {name!r}; columns: {', '.join(self.column_names)}, tile")
        return getattr(self, name)

    @property
    def cx(self) -> np.ndarray:
        """Box centre x (float64): ``(x1 + x2) / 2``."""
        return (self.x1 + self.x2) / 2.0

    @property
    def cy(self) -> np.ndarray:
        """Box centre y (float64): ``(y1 + y2) / 2``."""
        return (self.y1 + self.y2) / 2.0

    @property
    def cz(self) -> np.ndarray:
        """Box centre z (float64), volumes only: ``(z1 + z2) / 2``."""
        if self.z1 is None:
            raise KeyError("no node column 'cz' in a 2-D table")
        return (self.z1 + self.z2) / 2.0

    @property
    def box(self) -> np.ndarray:
        """(N, 4) int32 boxes as (x1, x2, y1, y2) -- (N, 6) with (z1, z2) for volumes: the layout
        both ``reconstruct`` functions take."""
        cols = [self.x1, self.x2, self.y1, self.y2] + ([] if self.z1 is None else [self.z1, self.z2])
        return np.stack(cols, axis=1).astype(np.int32, copy=False)

    @property
    def center(self) -> np.ndarray:
        """(N, 2) float64 centres as (cx, cy) -- (N, 3) with cz for volumes."""
        return np.stack([self.cx, self.cy] + ([] if self.z1 is None else [self.cz]), axis=1)

    @classmethod
    def from_columns(cls, cols: Mapping[str, np.ndarray], canvas: tuple[int, ...] = (0, 0)) -> NodeTable:
        """A table from stored columns (x1, x2, y1, y2, size, depth, edges; z1, z2 for volumes; tile
        optional; centres ignored, since they are derived), or another table (given ``canvas``)."""
        canvas = tuple(int(c) for c in canvas)
        if isinstance(cols, NodeTable):
            return replace(cols, canvas=canvas)
        n = len(cols["x1"])
        ints = {k: np.asarray(cols[k]).astype(np.int32, copy=False) for k in ("x1", "x2", "y1", "y2", "size", "depth")}
        tile = np.asarray(cols["tile"] if "tile" in cols else np.zeros(n, np.int32), np.int32)
        edges = np.asarray(cols["edges"]).astype(np.int64, copy=False)
        z = {}
        if "z1" in cols and cols["z1"] is not None:
            z = {k: np.asarray(cols[k]).astype(np.int32, copy=False) for k in ("z1", "z2")}
        return cls(**ints, tile=tile, edges=edges, canvas=canvas, **z)

    def take(self, index: np.ndarray) -> NodeTable:
        """The rows at ``index`` (an integer or boolean array), in that order."""
        z = {} if self.z1 is None else {"z1": self.z1[index], "z2": self.z2[index]}
        return NodeTable(**{k: getattr(self, k)[index] for k in _FIELDS}, canvas=self.canvas, **z)

    def shifted(self, dy: int, dx: int = 0, canvas: tuple[int, int] | None = None) -> NodeTable:
        """The same nodes with boxes moved by (-dy, -dx): coordinates inside a band or crop."""
        return replace(
            self,
            x1=self.x1 - dx,
            x2=self.x2 - dx,
            y1=self.y1 - dy,
            y2=self.y2 - dy,
            canvas=self.canvas if canvas is None else canvas,
        )

    def columns(self) -> dict[str, np.ndarray]:
        """The stored columns by name, in :data:`NODE_COLUMNS` (:data:`NODE_COLUMNS_3D`) order."""
        return {name: getattr(self, name) for name in self.column_names}

    def priority_order(self) -> np.ndarray:
        """Row indices from highest to lowest priority: (edges, size) descending, ties in Z-order."""
        return priority_order(self.edges, self.size)
