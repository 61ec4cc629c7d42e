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
import os
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["DEFAULT_MAX_PIXELS", "MemoryNeeded", "TooManyPixels", "check_pixels", "pixel_limit"]

from ...choices import DEFAULT_MAX_PIXELS  # defined where --help reads it without this package

_LIMIT: ContextVar[int | None] = ContextVar("max_pixels", default=DEFAULT_MAX_PIXELS)


class TooManyPixels(ValueError):
    """A header claims more pixels than the limit (turned into one InputError naming the file)."""

    def __init__(self, shape: tuple[int, ...], pixels: int, limit: int) -> None:
        self.shape, self.pixels, self.limit = shape, pixels, limit
        super().__init__(f"its header claims {pixels:,} pixels ({' x '.join(map(str, shape))}), over {limit:,}")


def check_pixels(shape: tuple[int, ...], nbytes_per_pixel: int | None = None) -> None:
    """Raise TooManyPixels if the pixels (or voxels) of ``shape`` (spatial axes only) exceed the
    current limit; negative sizes are refused the same way (a corrupt header). With
    ``nbytes_per_pixel`` (item size x channels), also refuse an array larger than the memory this
    machine has available (MemoryNeeded): reading it would only end in the out-of-memory killer."""
    limit = _LIMIT.get()
    dims = [int(s) for s in shape]
    if any(d < 0 for d in dims):
        raise ValueError(f"its header claims a negative size ({' x '.join(map(str, dims))})")
    pixels = math.prod(dims)
    if limit is not None and pixels > limit:
        raise TooManyPixels(tuple(dims), pixels, limit)
    available = _available_memory()
    if limit is not None and nbytes_per_pixel and available and pixels * nbytes_per_pixel > available:
        raise MemoryNeeded(tuple(dims), pixels * nbytes_per_pixel, available)


class MemoryNeeded(ValueError):
    """A header claims an array larger than the memory available (one InputError naming the file)."""

    def __init__(self, shape: tuple[int, ...], nbytes: int, available: int) -> None:
        self.shape, self.nbytes, self.available = shape, nbytes, available
        super().__init__(
            f"its header claims {' x '.join(map(str, shape))} pixels, {nbytes / 1e9:,.1f} GB in memory, more than "
            f"the {available / 1e9:,.1f} GB this machine has available"
        )


def _available_memory() -> int | None:
    """Bytes of memory available now (Linux: MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@contextlib.contextmanager
def pixel_limit(limit: int | None) -> Iterator[None]:
    """Within the block, readers refuse images of more than ``limit`` pixels (None: no limit)."""
    token = _LIMIT.set(limit)
    try:
        yield
    finally:
        _LIMIT.reset(token)
