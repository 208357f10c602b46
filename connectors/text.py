"""Text of files from Russian and Polish offices: UTF-8 (with or without BOM) or, from older
tools, Windows-1251. One place decides, for every file reader."""

from __future__ import annotations

import codecs
from pathlib import Path

FALLBACK_ENCODING = "cp1251"


def decode_text(data: bytes) -> str:
    """UTF-8 when the bytes are UTF-8 (a BOM is dropped), else Windows-1251."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode(FALLBACK_ENCODING, errors="replace")


def detect_file_encoding(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The codec to open a file with: "utf-8-sig" when the whole file decodes as UTF-8, else
    Windows-1251. Reads in chunks, so a million-row export is not held in memory."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    with open(path, "rb") as fh:
        try:
            while chunk := fh.read(chunk_size):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return FALLBACK_ENCODING
    return "utf-8-sig"
