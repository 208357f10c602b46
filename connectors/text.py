"""Text of files from Russian and Polish offices and the tools they export from: UTF-8 (with or
without BOM), UTF-16 with BOM (Meta lead downloads, Excel "Unicode text"), or the legacy code page
a file declares (Windows-1251, DOS cp866). One place decides, by content, for every file reader."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

FALLBACK_ENCODING = "cp1251"
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# What a file may call its legacy code page (the 1C exchange format, CSV tools, mail headers).
CODEC_NAMES = {
    "windows": "cp1251",
    "windows-1251": "cp1251",
    "win1251": "cp1251",
    "cp1251": "cp1251",
    "1251": "cp1251",
    "dos": "cp866",
    "cp866": "cp866",
    "866": "cp866",
    "ibm866": "cp866",
    "utf-8": "utf-8",
    "utf8": "utf-8",
}
_NON_ASCII_LINE = re.compile(rb"[^\r\n]*[\x80-\xff][^\r\n]*")


@dataclass(frozen=True)
class DecodedText:
    """A file's text, the codec it was read with and, when that is not what the file claimed or
    parts of it were in another encoding, a sentence saying so."""

    text: str
    encoding: str
    note: str = ""


def bom_encoding(data: bytes) -> str | None:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec
    return None


def codec_of(declared: str | None) -> str | None:
    """The Python codec a declared encoding name means, or None when it names none we know."""
    if not declared:
        return None
    return CODEC_NAMES.get(declared.strip().lower())


def decode_text(data: bytes) -> str:
    """UTF-8 (or UTF-16 with a BOM) when the bytes are that, else Windows-1251. (Called per line
    by the CDR reader: the common case is one attempt.)"""
    if data[:1] not in (b"\xef", b"\xff", b"\xfe"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode(FALLBACK_ENCODING, errors="replace")
    return decode_bytes(data).text


def decode_bytes(
    data: bytes, declared: str | None = None, markers: Iterable[str] = (), repair_lines: bool = False
) -> DecodedText:
    """Decide the encoding by content, never by the file's own claim alone: a BOM; else UTF-8 when
    the bytes are valid UTF-8 (files saved by a web service or an editor are UTF-8 whatever their
    header says); else the declared legacy code page, unless `markers` (words every such file
    contains) read only in the other one. With `repair_lines`, lines of a legacy-encoded file that
    are themselves valid UTF-8 (a file pasted together by two tools) are read as UTF-8."""
    codec = bom_encoding(data)
    if codec is not None:
        return DecodedText(data.decode(codec, errors="replace"), codec)
    claimed = codec_of(declared)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        note = ""
        if claimed and claimed != "utf-8" and any(ord(ch) > 127 for ch in text[:65536]):
            note = f"declared {declared!r} but the content is UTF-8: read as UTF-8"
        return DecodedText(text, "utf-8", note)
    wanted = [m for m in markers if m]
    order = [c for c in (claimed, FALLBACK_ENCODING, "cp866") if c and c != "utf-8"]
    order = list(dict.fromkeys(order))
    codec = order[0]
    note = ""
    if claimed == "utf-8":
        note = f"declared {declared!r} but the content is not valid UTF-8"
    if wanted:
        head = data[: 1 << 16]
        for candidate in order:
            sample = head.decode(candidate, errors="replace")
            if all(marker in sample for marker in wanted):
                if candidate != order[0]:
                    note = f"declared {declared!r} but the content reads as {candidate}"
                codec = candidate
                break
    if declared and claimed is None:
        note = note or f"declared encoding {declared!r} is unknown: read as {codec} by content"
    if not repair_lines:
        return DecodedText(data.decode(codec, errors="replace"), codec, note)
    return _decode_mixed(data, codec, note)


def _decode_mixed(data: bytes, codec: str, note: str) -> DecodedText:
    repaired = 0
    parts: list[str] = []
    position = 0
    for match in _NON_ASCII_LINE.finditer(data):
        parts.append(data[position : match.start()].decode("ascii", errors="replace"))
        line = match.group()
        try:
            parts.append(line.decode("utf-8"))
            repaired += 1
        except UnicodeDecodeError:
            parts.append(line.decode(codec, errors="replace"))
        position = match.end()
    parts.append(data[position:].decode("ascii", errors="replace"))
    if repaired:
        mixed = f"{repaired} line(s) in UTF-8 inside a {codec} file"
        note = f"{note}; {mixed}" if note else mixed
    return DecodedText("".join(parts), codec, note)


def detect_file_encoding(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The codec to open a file with: its BOM's; "utf-8-sig" when the whole file decodes as UTF-8;
    else Windows-1251. Reads in chunks, so a million-row export is not held in memory."""
    with open(path, "rb") as fh:
        head = fh.read(4)
        codec = bom_encoding(head)
        if codec is not None:
            return codec
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        try:
            while chunk := fh.read(chunk_size):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return FALLBACK_ENCODING
    return "utf-8-sig"
