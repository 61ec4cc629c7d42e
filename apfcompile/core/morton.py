"""Morton (Z-order) codes: :mod:`formats.morton`, where the loaders find them too (the leaf order
is part of the format: the forest writes it, a token-space transform restores it)."""

from __future__ import annotations

from formats.morton import morton_decode, morton_encode, morton_encode16

__all__ = ["morton_decode", "morton_encode", "morton_encode16"]
