"""The decompression-bomb guard: a header that claims more pixels than ``max_pixels`` is refused
before anything is allocated (PIL's ``MAX_IMAGE_PIXELS`` is the same idea).

Readers call :func:`check_pixels` with the shape a header claims, before they decode; the limit
is set per compile by :func:`pixel_limit` (``--max-pixels``). Slides read out of core (in bands)
are never whole in memory and are excepted by design: their route does not call the readers
that check.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["DEFAULT_MAX_PIXELS", "TooManyPixels", "check_pixels", "pixel_limit"]

DEFAULT_MAX_PIXELS = 4_000_000_000
"""4 gigapixels (or voxels): 12 GB as RGB uint8, more than any image a compile holds in memory
on purpose, far less than the terabytes a hostile header can claim."""

_LIMIT: ContextVar[int | None] = ContextVar("max_pixels", default=DEFAULT_MAX_PIXELS)


class TooManyPixels(ValueError):
    """A header claims more pixels than the limit (turned into one InputError naming the file)."""

    def __init__(self, shape: tuple[int, ...], pixels: int, limit: int) -> None:
        self.shape, self.pixels, self.limit = shape, pixels, limit
        super().__init__(f"its header claims {pixels:,} pixels ({' x '.join(map(str, shape))}), over {limit:,}")


def check_pixels(shape: tuple[int, ...]) -> None:
    """Raise TooManyPixels if the pixels (or voxels) of ``shape`` (spatial axes only) exceed the
    current limit; negative sizes are refused the same way (a corrupt header)."""
    limit = _LIMIT.get()
    dims = [int(s) for s in shape]
    if any(d < 0 for d in dims):
        raise ValueError(f"its header claims a negative size ({' x '.join(map(str, dims))})")
    pixels = math.prod(dims)
    if limit is not None and pixels > limit:
        raise TooManyPixels(tuple(dims), pixels, limit)


@contextlib.contextmanager
def pixel_limit(limit: int | None) -> Iterator[None]:
    """Within the block, readers refuse images of more than ``limit`` pixels (None: no limit)."""
    token = _LIMIT.set(limit)
    try:
        yield
    finally:
        _LIMIT.reset(token)
