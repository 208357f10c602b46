"""On-premise Asterisk call records: cdr_csv's `Master.csv` read from a byte offset (a file that
grows is read from where it stopped), rows grouped into calls by uniqueid.

Master.csv has no header; each row is accountcode, src, dst, dcontext, clid, channel,
dstchannel, lastapp, lastdata, start, answer, end, duration, billsec, disposition, amaflags
[, uniqueid [, userfield]] (uniqueid/userfield only with loguniqueid/loguserfield). Quotes
inside a field are doubled; times are local (the PBX's zone) unless `usegmtime`; an
unanswered call has an empty `answer`. Without uniqueid the rows of one call are those with
the same caller channel and start."""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from connectors.pbx import RejectedRecord, is_extension, merge_legs
from connectors.text import decode_text
from schemas.telephony import CDR_FIELDS, CDR_REQUIRED_FIELDS, Call, CdrRow, Disposition

PROVIDER = "asterisk"
BLOCK_BYTES = 4 * 1024 * 1024
# A last line without its newline is still being written, unless the file has been quiet this long.
SETTLED_AFTER_S = 60.0
RECORDING_SUFFIXES = (".wav", ".mp3", ".gsm", ".ogg", ".wav49", ".WAV")

DISPOSITIONS: dict[str, Disposition] = {
    "ANSWERED": "answered",
    "NO ANSWER": "missed",
    "BUSY": "busy",
    "FAILED": "failed",
    "CONGESTION": "failed",
}
# "SIP/101-0000002a", "PJSIP/101-00000003", "Local/101@from-queue-0000;1" -> "101"
_CHANNEL_PEER = re.compile(r"^[A-Za-z0-9_]+/([^-@/;]+)")
_CLID_NUMBER = re.compile(r"<([^>]*)>")


@dataclass
class CdrOptions:
    timezone: str = "Europe/Moscow"
    extension_max_digits: int = 5
    recording_base_url: str = ""


@dataclass
class CdrBatch:
    """Calls of consecutive rows of a CDR file, and where the next read starts."""

    calls: list[Call] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    rows: int = 0
    skipped_legs: int = 0
    end_offset: int = 0
    end_line: int = 0


@dataclass
class _Row:
    line: int
    end_offset: int
    fields: list[str]


def channel_peer(channel: str) -> str | None:
    match = _CHANNEL_PEER.match(channel or "")
    return match.group(1) if match else None


def row_to_leg(fields: list[str], options: CdrOptions, zone: ZoneInfo) -> Call:
    """One CDR row as a leg of a call; ValueError/ValidationError say what is wrong with it."""
    if not CDR_REQUIRED_FIELDS <= len(fields) <= len(CDR_FIELDS):
        raise ValueError(
            f"row has {len(fields)} fields; Master.csv rows have {CDR_REQUIRED_FIELDS} "
            f"(up to {len(CDR_FIELDS)} with uniqueid and userfield)"
        )
    row = CdrRow.model_validate(dict(zip(CDR_FIELDS, fields, strict=False)))
    started = row.start.replace(tzinfo=zone)
    caller = row.src or _clid_number(row.clid)
    caller_internal = is_extension(caller, options.extension_max_digits)
    callee_internal = is_extension(row.dst, options.extension_max_digits)
    if caller_internal and callee_internal:
        direction = "internal"
    elif caller_internal:
        direction = "outbound"
    else:
        direction = "inbound"
    disposition = DISPOSITIONS[row.disposition]
    if direction == "outbound":
        extension = caller
    else:
        peer = channel_peer(row.dstchannel)
        extension = peer if is_extension(peer, options.extension_max_digits) else None
        if extension is None and callee_internal:
            extension = row.dst
    recording = None
    if options.recording_base_url and row.userfield.strip().endswith(RECORDING_SUFFIXES):
        recording = options.recording_base_url.rstrip("/") + "/" + row.userfield.strip().lstrip("/")
    return Call(
        provider=PROVIDER,
        call_id=row.uniqueid.strip() or f"{row.channel}@{row.start.isoformat()}",
        direction=direction,
        caller=caller,
        callee=row.dst,
        started_at=started,
        duration_s=row.duration,
        talk_s=row.billsec if disposition == "answered" else 0,
        disposition=disposition,
        provider_status=row.disposition,
        recording_url=recording,
        extension=extension,
        dialled_number=row.dst if direction == "inbound" and not callee_internal and row.dst else None,
    )


def _clid_number(clid: str) -> str:
    match = _CLID_NUMBER.search(clid or "")
    return match.group(1).strip() if match else ""


def read_cdr(
    path: str | Path,
    offset: int = 0,
    line: int = 0,
    options: CdrOptions | None = None,
    batch_rows: int = 5000,
    to_end: bool | None = None,
) -> Iterator[CdrBatch]:
    """Batches of calls from `offset` (byte) / `line` (rows already read) on. Rows of one call
    are never split between batches. A last line without newline is read only when `to_end`
    (default: when the file has not changed for a minute)."""
    options = options or CdrOptions()
    zone = ZoneInfo(options.timezone)
    path = Path(path)
    if to_end is None:
        to_end = time.time() - path.stat().st_mtime > SETTLED_AFTER_S
    pending: list[_Row] = []
    with path.open("rb") as fh:
        fh.seek(offset)
        position = offset
        carry = b""
        while True:
            block = fh.read(BLOCK_BYTES)
            at_eof = not block
            data = carry + block
            cut = len(data) if at_eof and to_end else data.rfind(b"\n") + 1
            complete, carry = data[:cut], data[cut:]
            rows = _split_rows(complete, position, line)
            position += len(complete)
            if rows:
                line = rows[-1].line
            pending.extend(rows)
            # Keep the rows of the last call back until the next block shows it has ended.
            hold = 0 if at_eof else _trailing_group(pending, options, zone)
            ready, pending = pending[: len(pending) - hold], pending[len(pending) - hold :]
            for start in range(0, len(ready), batch_rows):
                yield _batch(ready[start : start + batch_rows], options, zone)
            if at_eof:
                return


def _split_rows(data: bytes, offset: int, line: int) -> list[_Row]:
    if not data:
        return []
    byte_lines = data.splitlines(keepends=True)
    # Byte end of each line, so that a batch can be resumed exactly after its last row.
    ends = list(accumulate((len(b) for b in byte_lines), initial=offset))[1:]
    reader = csv.reader(decode_text(b) for b in byte_lines)
    rows = []
    for fields in reader:
        if not fields or fields == [""]:
            continue
        rows.append(_Row(line + reader.line_num, ends[reader.line_num - 1], fields))
    return rows


def _call_key(row: _Row) -> str:
    fields = row.fields
    if len(fields) > 16 and fields[16].strip():
        return fields[16].strip()
    return f"{fields[5] if len(fields) > 5 else ''}@{fields[9] if len(fields) > 9 else ''}"


def _trailing_group(rows: list[_Row], options: CdrOptions, zone: ZoneInfo) -> int:
    if not rows:
        return 0
    last = _call_key(rows[-1])
    count = 0
    for row in reversed(rows):
        if _call_key(row) != last:
            break
        count += 1
    # One call larger than everything read is not held back forever.
    return count if count < len(rows) else 0


def _batch(rows: list[_Row], options: CdrOptions, zone: ZoneInfo) -> CdrBatch:
    batch = CdrBatch(rows=len(rows), end_offset=rows[-1].end_offset, end_line=rows[-1].line)
    groups: dict[str, list[Call]] = {}
    for row in rows:
        try:
            leg = row_to_leg(row.fields, options, zone)
        except (ValidationError, ValueError) as exc:
            batch.rejected.append(RejectedRecord(row.fields, exc, f"line {row.line}"))
            continue
        groups.setdefault(leg.call_id, []).append(leg)
    for legs in groups.values():
        batch.calls.append(merge_legs(legs))
        batch.skipped_legs += len(legs) - 1
    return batch


def parse_cdr_file(path: str | Path, options: CdrOptions | None = None) -> Iterator[CdrBatch]:
    """The whole file at once (the inspect command): every row, the last line too."""
    return read_cdr(path, options=options, to_end=True)
