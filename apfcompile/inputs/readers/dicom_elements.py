"""A bounds check of DICOM data elements, before GDCM parses a file.

GDCM allocates each element's value as its length field says, before reading it: a corrupt or
hostile length (up to 4 GB) makes it allocate that much for a file of a few hundred bytes (the
fuzzer found it). :func:`check_elements` walks a file's elements (tag, VR, length) without
reading their values and refuses any defined length that runs past the end of the file; values
of sequences and items are walked into, not skipped; an element whose value representation is
not one of DICOM's is refused too (GDCM would read its length from the wrong bytes).
Little-endian transfer syntaxes only (explicit or implicit VR; the preamble is optional);
big-endian and deflated files are left to GDCM.
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["check_elements"]

_LONG = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_VRS = _LONG | {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
}  # fmt: skip
"""Every value representation of DICOM PS3.5 (an element with another one is a corrupt header:
GDCM would read a length from the wrong bytes)."""
_UNDEFINED = 0xFFFFFFFF
_IMPLICIT = "1.2.840.10008.1.2"
_UNCHECKED = ("1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")  # big endian, deflated


def check_elements(path: Path) -> None:
    """Raise ValueError naming the first element whose length runs past the end of ``path``."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(min(size, 1 << 20))  # the elements before the pixel data, as a rule

        def at(pos: int, n: int) -> bytes:
            if pos + n <= len(head):
                return head[pos : pos + n]
            f.seek(pos)
            return f.read(n)

        pos = 132 if head[128:132] == b"DICM" else 0
        explicit, in_meta, meta_end = True, True, None
        if pos:  # Part 10: the file meta group starts with its own length, (0002,0000) UL
            first = at(pos, 12)
            if len(first) < 12 or first[:8] != b"\x02\x00\x00\x00UL\x04\x00":
                raise ValueError("its file meta information does not start with its group length (a corrupt header)")
            meta_end = pos + 12 + struct.unpack_from("<I", first, 8)[0]
        while pos + 8 <= size:
            tag = at(pos, 12)
            group, element = struct.unpack_from("<HH", tag)
            if in_meta and group != 0x0002:  # the file meta group is over
                in_meta = False
                if meta_end is not None and pos != meta_end:
                    raise ValueError("its file meta information is not as long as it says (a corrupt header)")
                if explicit != (tag[4:6] in _VRS):
                    raise ValueError(
                        "its transfer syntax and its first element disagree on the encoding (a corrupt header)"
                    )
            if group == 0xFFFE:  # item or delimiter: an 8-byte header; walk into the item
                length = struct.unpack_from("<I", tag, 4)[0]
                if element == 0xE000 and length != _UNDEFINED and length > size - pos - 8:
                    raise _too_long(group, element, length, size - pos - 8)
                pos += 8
                continue
            vr = tag[4:6] if group == 0x0002 or explicit else b""
            if vr and vr not in _VRS:
                raise ValueError(
                    f"its element ({group:04X},{element:04X}) has no valid value representation ({vr!r}) "
                    "(a corrupt header)"
                )
            if vr in _LONG:
                length, header = struct.unpack_from("<I", tag, 8)[0] if len(tag) >= 12 else _UNDEFINED, 12
            elif vr:
                length, header = struct.unpack_from("<H", tag, 6)[0], 8
            else:
                length, header = struct.unpack_from("<I", tag, 4)[0], 8
            start = pos + header
            if group == 0x0002 and element == 0x0010:  # the transfer syntax UID
                uid = at(start, min(length, 64)).rstrip(b"\0 ").decode("ascii", "replace")
                if uid in _UNCHECKED:
                    return
                explicit = uid != _IMPLICIT
            if length == _UNDEFINED:  # a sequence (or encapsulated pixel data): walk its items
                pos = start
                continue
            if length > size - start:
                raise _too_long(group, element, length, size - start)
            pos = start if vr == b"SQ" else start + length


def _too_long(group: int, element: int, length: int, left: int) -> ValueError:
    return ValueError(
        f"its element ({group:04X},{element:04X}) claims {length:,} bytes, and {left:,} are left in the file "
        "(a corrupt header)"
    )
