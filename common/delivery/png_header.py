"""A PNG file's size in pixels from its first and last bytes, without decoding it.

Reads 33 bytes at the start (the 8-byte signature and the IHDR chunk: length,
type, width, height, 5 bytes of format, CRC) and 12 at the end (the IEND
chunk, which a complete PNG ends with). That is enough to tell an empty
file, a file that is not a PNG (an HTML error page, a JPEG renamed), a
header cut short or damaged (the IHDR checksum), and a file cut short
anywhere after its header (a partial copy: no IEND at the end), at the cost
of one open and two small reads. Damage inside the image data is only seen
by a decoder (``nia crops`` names such files).

Errors read ``{file}: PNG file: {what}`` (the file, then the check), like the
label errors of :mod:`common.delivery.labels`.
"""
from __future__ import annotations

import os
import struct
import zlib
from typing import NamedTuple

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEAD = 33  # signature (8) + IHDR length (4) + type (4) + data (13) + CRC (4)
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # length 0, type, CRC: the same 12 bytes in every PNG
CHECK = "PNG file"


class PngHeader(NamedTuple):
    """File size and mtime (null if the file cannot be read), size in pixels (null unless the header
    is sound) and the reason it is not ('' when it is)."""

    size: int | None
    mtime_ns: int | None
    width: int | None
    height: int | None
    error: str


_START = PNG_SIGNATURE + b"\x00\x00\x00\x0dIHDR"  # what every PNG's first 16 bytes are
_SIZE = struct.Struct(">II")
_CRC = struct.Struct(">I")


def ihdr_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) from a file's first 33 bytes when they are a PNG signature and a sound IHDR chunk
    (its CRC checked), else None: what a PNG declares, known before anything is decoded."""
    with open(path, "rb") as handle:
        head = handle.read(_HEAD)
    if len(head) == _HEAD and head[:16] == _START and zlib.crc32(head[12:29]) == _CRC.unpack_from(head, 29)[0]:
        return _SIZE.unpack_from(head, 16)
    return None


def header_error(head: bytes, tail: bytes, size: int) -> tuple[int, int, str]:
    """(width, height, '') of a PNG from its first 33 and last 12 bytes, or (0, 0, what is wrong)."""
    if head[:16] == _START and len(head) == _HEAD and tail == _IEND \
            and zlib.crc32(head[12:29]) == _CRC.unpack_from(head, 29)[0]:
        width, height = _SIZE.unpack_from(head, 16)
        if 0 < width < 1 << 31 and 0 < height < 1 << 31:
            return width, height, ""  # the usual case, in one test
    if size == 0:
        return 0, 0, "empty file (0 bytes)"
    if head[:8] != PNG_SIGNATURE and not (len(head) < 8 and PNG_SIGNATURE.startswith(head)):
        return 0, 0, f"not a PNG (starts with {head[:8].hex(' ')})"
    if len(head) < _HEAD:
        return 0, 0, f"truncated header ({size} bytes; the signature and IHDR chunk need {_HEAD})"
    length, kind = struct.unpack(">I4s", head[8:16])
    if kind != b"IHDR":
        return 0, 0, f"first chunk is {kind.decode('latin-1')!r}, not IHDR"
    if length != 13 or zlib.crc32(head[12:29]) != _CRC.unpack_from(head, 29)[0]:
        return 0, 0, "IHDR checksum does not match (damaged header)"
    width, height = _SIZE.unpack_from(head, 16)
    if width == 0 or height == 0 or width >= 1 << 31 or height >= 1 << 31:
        return 0, 0, f"image size {width}x{height}"
    return 0, 0, "truncated (the file does not end with the IEND chunk)"


def read_png_header(path: str, rel: str) -> PngHeader:
    """The header of the PNG at ``path``; ``rel`` (its path relative to the indexed root) names it in errors."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return PngHeader(None, None, None, None, f"{rel}: {CHECK}: cannot open: {exc.strerror}")
    try:
        st = os.fstat(fd)
        size = st.st_size
        head = os.read(fd, _HEAD)
        tail = os.pread(fd, 12, size - 12) if size >= _HEAD + 12 else b""
    except OSError as exc:
        return PngHeader(None, None, None, None, f"{rel}: {CHECK}: cannot read: {exc.strerror}")
    finally:
        os.close(fd)
    width, height, error = header_error(head, tail, size)
    if error:
        return PngHeader(size, st.st_mtime_ns, None, None, f"{rel}: {CHECK}: {error}")
    return PngHeader(size, st.st_mtime_ns, width, height, "")
