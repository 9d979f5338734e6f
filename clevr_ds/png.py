"""PNG files as chunks, read from their bytes without decoding (for byte-stable files and content hashes)."""

from __future__ import annotations

from typing import Iterator

SIGNATURE = b"\x89PNG\r\n\x1a\n"
TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt", b"tIME")  # where Blender stamps dates, render times and the host


def chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, whole chunk: length, type, data and CRC) of each chunk; ValueError if `data` is not a PNG."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(SIGNATURE)
    while pos + 12 <= len(data):
        end = pos + 12 + int.from_bytes(data[pos : pos + 4], "big")
        yield data[pos + 4 : pos + 8], data[pos:end]
        pos = end


def critical_chunks(data: bytes) -> bytes:
    """The critical chunks (IHDR, PLTE, IDAT, IEND: upper-case first letter) joined: the image without metadata."""
    return b"".join(chunk for kind, chunk in chunks(data) if kind[:1].isupper())


def without_text(data: bytes) -> bytes:
    """The PNG less its text and time chunks; the image data is kept byte for byte."""
    return SIGNATURE + b"".join(chunk for kind, chunk in chunks(data) if kind not in TEXT_CHUNKS)
