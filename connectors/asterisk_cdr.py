"""On-premise Asterisk call records: the CSV files of cdr_csv (`Master.csv`) and cdr_custom, in
any stock layout or one a setting names, read from a byte offset (a file that grows is read from
where it stopped), the legs of a call merged by linkedid (else uniqueid).

The stock layouts (Asterisk's cdr/cdr_csv.c and configs/samples/cdr_custom.conf.sample):
  cdr_csv      accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
               start, answer, end, duration, billsec, disposition, amaflags
               [, uniqueid (loguniqueid)] [, userfield (loguserfield)]
               [, peeraccount, linkedid, sequence (newcdrcolumns)]       16 to 21 columns
  cdr_custom   clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata, start, answer,
               end, duration, billsec, disposition, amaflags, accountcode, uniqueid, userfield,
               sequence                                                      19 columns
No header; quotes inside a field are doubled; times are local (the PBX's zone) unless
`usegmtime`; an unanswered call has an empty `answer`. The layout of each row is told by its
column count and, where two layouts share one, by where the disposition and ids sit.

Direction comes from the dialplan and the channels, never from the numbers' length: the context
a call entered (inbound contexts such as from-trunk / from-pstn), trunk peers (configurable name
patterns), and whether the Dial went out through a peer (`SIP/trunk/8916...`, `PJSIP/8916...@prov`).
An ANSWERED leg nobody talked on — 0 s billsec, or answered by the PBX itself (Hangup, Playback,
an IVR, a queue nobody picked up) — is not a conversation: missed."""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from itertools import accumulate
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from connectors.errors import describe_error
from connectors.pbx import RejectedRecord, merge_legs
from connectors.text import decode_text
from schemas.telephony import CDR_COLUMNS, Call, CdrRow, Direction, Disposition

PROVIDER = "asterisk"
BLOCK_BYTES = 4 * 1024 * 1024
# A last line without its newline is still being written, unless the file has been quiet this long.
SETTLED_AFTER_S = 60.0
RECORDING_SUFFIXES = (".wav", ".mp3", ".gsm", ".ogg", ".wav49", ".WAV")

_CSV_BASE = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
)
_NEW_COLUMNS = ("peeraccount", "linkedid", "sequence")
# Every stock layout, by name; rows of one column count are tried in this order.
STOCK_LAYOUTS: dict[str, tuple[str, ...]] = {
    "cdr_csv": _CSV_BASE,
    "cdr_csv+uniqueid": (*_CSV_BASE, "uniqueid"),
    "cdr_csv+userfield": (*_CSV_BASE, "userfield"),
    "cdr_csv+uniqueid+userfield": (*_CSV_BASE, "uniqueid", "userfield"),
    "cdr_custom": (
        "clid",
        "src",
        "dst",
        "dcontext",
        "channel",
        "dstchannel",
        "lastapp",
        "lastdata",
        "start",
        "answer",
        "end",
        "duration",
        "billsec",
        "disposition",
        "amaflags",
        "accountcode",
        "uniqueid",
        "userfield",
        "sequence",
    ),
    "cdr_csv newcdrcolumns": (*_CSV_BASE, *_NEW_COLUMNS),
    "cdr_csv+uniqueid newcdrcolumns": (*_CSV_BASE, "uniqueid", *_NEW_COLUMNS),
    "cdr_csv+userfield newcdrcolumns": (*_CSV_BASE, "userfield", *_NEW_COLUMNS),
    "cdr_csv+uniqueid+userfield newcdrcolumns": (*_CSV_BASE, "uniqueid", "userfield", *_NEW_COLUMNS),
}
REQUIRED_COLUMNS = ("src", "dst", "start", "end", "duration", "billsec", "disposition")

DISPOSITIONS: dict[str, Disposition] = {
    "ANSWERED": "answered",
    "NO ANSWER": "missed",
    "BUSY": "busy",
    "FAILED": "failed",
    "CONGESTION": "failed",
}
# Contexts calls from the outside world enter (FreePBX, Asterisk samples, common naming).
DEFAULT_INBOUND_CONTEXTS = (
    "from-trunk*",
    "from-pstn*",
    "from-external*",
    "from-did*",
    "ext-did*",
    "from-sip-external",
    "from-zaptel",
    "from-dahdi",
    "incoming*",
    "inbound*",
    "*-pstn",
    "*-trunk",
    "*-incoming",
    "*-inbound",
)
DEFAULT_TRUNK_PEERS = ("*trunk*",)
# Applications with which the PBX itself answers: a caller who heard only them talked to nobody.
DEFAULT_PBX_APPS = (
    "Hangup",
    "Playback",
    "BackGround",
    "IVR",
    "Read",
    "WaitExten",
    "Wait",
    "VoiceMail",
    "VoiceMailMain",
    "Answer",
    "Congestion",
    "Busy",
    "MusicOnHold",
    "Echo",
    "Record",
    "SayDigits",
    "SayNumber",
    "Queue",
    "AGI",
)
# "SIP/101-0000002a", "PJSIP/101-00000003", "Local/101@from-queue-0000;1" -> "101"
_CHANNEL_PEER = re.compile(r"^[A-Za-z0-9_]+/([^-@/;]+)")
_CLID_NUMBER = re.compile(r"<([^>]*)>")
_DATETIME = re.compile(r"^\s*\d{4}-\d\d-\d\d[ T]\d\d:\d\d")
# "1706368044.0", "mainserverdss-1706420300.0": Asterisk's uniqueid and linkedid.
_UNIQUEID = re.compile(r"^(?:[\w.-]+-)?\d{9,10}\.\d+$")


@dataclass(frozen=True)
class CdrLayout:
    """The columns of a CDR file, by name; `name` is the stock layout's or "configured"."""

    name: str
    columns: tuple[str, ...]
    # Positions of the columns the hub reads (a custom mapping may carry others).
    known: tuple[tuple[int, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.known:
            known = tuple((i, c) for i, c in enumerate(self.columns) if c in CDR_COLUMNS)
            object.__setattr__(self, "known", known)

    def record(self, fields: list[str]) -> dict[str, str]:
        """The row's known columns by name."""
        if len(self.known) == len(self.columns):
            return dict(zip(self.columns, fields, strict=False))
        return {c: fields[i] for i, c in self.known}

    @classmethod
    def configured(cls, columns: Sequence[str]) -> CdrLayout:
        """A layout a setting names (any cdr_custom mapping); names the hub does not use are read
        and ignored. ValueError names what is missing."""
        names = tuple(c.strip().lower() for c in columns)
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            raise ValueError(
                f"the CDR column list {list(names)} has no {', '.join(missing)}: name the columns in the "
                f"order cdr_custom.conf writes them (known names: {', '.join(sorted(CDR_COLUMNS))})"
            )
        return cls("configured", names)

    def index(self, column: str) -> int | None:
        return self.columns.index(column) if column in self.columns else None


_STOCK = [CdrLayout(name, columns) for name, columns in STOCK_LAYOUTS.items()]
_BY_COUNT: dict[int, list[CdrLayout]] = {}
for _layout in _STOCK:
    _BY_COUNT.setdefault(len(_layout.columns), []).append(_layout)


def _fits(layout: CdrLayout, fields: list[str]) -> bool:
    """Whether a row reads sensibly in a layout: its disposition and start where they should be,
    and its ids (when the layout has them) shaped like Asterisk's."""
    disposition = fields[layout.columns.index("disposition")].strip()
    if disposition not in DISPOSITIONS or not _DATETIME.match(fields[layout.columns.index("start")]):
        return False
    for column in ("uniqueid", "linkedid"):
        position = layout.index(column)
        if (
            position is not None
            and fields[position].strip()
            and not _UNIQUEID.match(fields[position].strip())
        ):
            return False
    return True


class LayoutGuess:
    """The layout of a file's rows, decided from the rows (or given by a setting) and kept for the
    file: the first row of each column count that fits a stock layout decides that count."""

    def __init__(self, configured: CdrLayout | None = None) -> None:
        self.configured = configured
        self.decided: dict[int, CdrLayout] = {}
        self.seen: set[str] = set()

    def layout_of(self, fields: list[str]) -> tuple[CdrLayout | None, bool]:
        """The row's layout and whether the row fits it (a row that fits none is read in the first
        layout of its column count, so that its error says what is wrong)."""
        if self.configured is not None:
            return (self.configured, True) if len(fields) == len(self.configured.columns) else (None, False)
        count = len(fields)
        if count in self.decided:
            return self.decided[count], True
        candidates = _BY_COUNT.get(count)
        if not candidates:
            return None, False
        for layout in candidates:
            if _fits(layout, fields):
                # A row with empty ids fits layouts it may not be in: it decides nothing for the file.
                ids = [
                    fields[i] for i in (layout.index("uniqueid"), layout.index("linkedid")) if i is not None
                ]
                if len(candidates) == 1 or (ids and all(v.strip() for v in ids)):
                    self.decided[count] = layout
                self.seen.add(layout.name)
                return layout, True
        return candidates[0], False

    def describe(self) -> str:
        if self.configured is not None:
            return "configured columns"
        return ", ".join(sorted(self.seen)) or "none seen"


@dataclass
class CdrOptions:
    timezone: str = "Europe/Moscow"
    extension_max_digits: int = 5
    recording_base_url: str = ""
    # Column names of a custom layout; empty: tell the stock layouts from the rows.
    columns: tuple[str, ...] = ()
    inbound_contexts: tuple[str, ...] = DEFAULT_INBOUND_CONTEXTS
    trunk_peers: tuple[str, ...] = DEFAULT_TRUNK_PEERS
    pbx_apps: tuple[str, ...] = DEFAULT_PBX_APPS

    def __post_init__(self) -> None:
        self._pbx_apps = frozenset(app.lower() for app in self.pbx_apps)
        # A PBX has a handful of contexts and peers: each is matched against the patterns once.
        self._inbound: dict[str, bool] = {}
        self._trunk: dict[str, bool] = {}

    def layout_guess(self) -> LayoutGuess:
        return LayoutGuess(CdrLayout.configured(self.columns) if self.columns else None)

    def is_inbound_context(self, context: str) -> bool:
        known = self._inbound.get(context)
        if known is None:
            lowered = context.lower()
            known = self._inbound[context] = any(
                fnmatchcase(lowered, p.lower()) for p in self.inbound_contexts
            )
        return known

    def is_trunk(self, peer: str | None) -> bool:
        if not peer:
            return False
        known = self._trunk.get(peer)
        if known is None:
            lowered = peer.lower()
            known = self._trunk[peer] = any(fnmatchcase(lowered, p.lower()) for p in self.trunk_peers)
        return known

    def is_pbx_app(self, app: str) -> bool:
        return app.strip().lower() in self._pbx_apps


@dataclass
class CdrBatch:
    """Calls of consecutive rows of a CDR file, and where the next read starts."""

    calls: list[Call] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    rows: int = 0
    skipped_legs: int = 0
    end_offset: int = 0
    end_line: int = 0
    layout: str = ""


@dataclass
class _Row:
    line: int
    end_offset: int
    fields: list[str]
    layout: CdrLayout | None
    fits: bool = True


def channel_peer(channel: str) -> str | None:
    match = _CHANNEL_PEER.match(channel or "")
    return match.group(1) if match else None


def _dials_out(lastdata: str) -> bool:
    """Whether a Dial went out through a peer: "SIP/trunk/8916...", "PJSIP/8916...@provider",
    "DAHDI/g0/8916...", "IAX2/prov/8916..." (a local phone is dialled "SIP/101" or "PJSIP/anna")."""
    targets = (lastdata or "").split(",", 1)[0]
    for target in targets.split("&"):
        tech, _, rest = target.strip().partition("/")
        if not rest or tech.lower() == "local":
            continue
        if "/" in rest or "@" in rest:
            return True
    return False


def leg_direction(
    row: CdrRow, options: CdrOptions, caller_peer: str | None, callee_peer: str | None
) -> Direction:
    """Inbound when the call entered an inbound context or came from a trunk peer; outbound when
    it left through a trunk peer or a Dial through a peer; else internal."""
    if options.is_inbound_context(row.dcontext) or options.is_trunk(caller_peer):
        return "inbound"
    if options.is_trunk(callee_peer) or _dials_out(row.lastdata):
        return "outbound"
    return "internal"


def _phone_peer(channel: str, peer: str | None) -> str | None:
    """The phone behind a channel, unless it is a Local channel."""
    if not peer or channel[:6].lower() == "local/":
        return None
    return peer


def row_to_leg(fields: list[str], layout: CdrLayout | None, options: CdrOptions, zone: ZoneInfo) -> Call:
    """One CDR row as a leg of a call; ValueError/ValidationError say what is wrong with it."""
    if layout is None:
        raise ValueError(
            f"row has {len(fields)} fields; "
            + (
                f"the configured CDR column list names {len(options.columns)}"
                if options.columns
                else "Asterisk's stock layouts have 16 to 21 (cdr_csv) or 19 (cdr_custom); "
                "name the columns of another layout in the CDR column setting"
            )
        )
    row = CdrRow.model_validate(layout.record(fields))
    started = row.start.replace(tzinfo=zone)
    caller_peer, callee_peer = channel_peer(row.channel), channel_peer(row.dstchannel)
    direction = leg_direction(row, options, caller_peer, callee_peer)
    caller = row.src or _clid_number(row.clid)
    disposition = DISPOSITIONS[row.disposition]
    status = row.disposition
    if disposition == "answered" and (
        row.billsec == 0 or (not row.dstchannel and options.is_pbx_app(row.lastapp))
    ):
        # Answered by the PBX (an announcement, an IVR, a queue) or not talked on: nobody spoke.
        disposition = "missed"
        status = f"ANSWERED by the PBX ({row.lastapp})"[:50] if not row.dstchannel else "ANSWERED, 0 s"
    if direction == "outbound":
        extension = _phone_peer(row.channel, caller_peer) or (caller or None)
    else:
        extension = _phone_peer(row.dstchannel, callee_peer)
        if options.is_trunk(extension):
            extension = None
    recording = None
    if options.recording_base_url and row.userfield.strip().endswith(RECORDING_SUFFIXES):
        recording = options.recording_base_url.rstrip("/") + "/" + row.userfield.strip().lstrip("/")
    uniqueid = row.uniqueid.strip()
    call_id = row.linkedid.strip() or uniqueid or f"{row.channel}@{row.start.isoformat()}"
    start_text = fields[layout.columns.index("start")].strip()
    leg_ref = f"{uniqueid or row.channel}:{row.sequence if row.sequence is not None else start_text}"
    return Call(
        provider=PROVIDER,
        call_id=call_id,
        direction=direction,
        caller=caller,
        callee=row.dst,
        started_at=started,
        duration_s=row.duration,
        talk_s=row.billsec if disposition == "answered" else 0,
        disposition=disposition,
        provider_status=status,
        recording_url=recording,
        extension=extension,
        dialled_number=row.dst if direction == "inbound" and row.dst else None,
        leg_refs=[f"{leg_ref}:{row.dstchannel}" if not row.linkedid else leg_ref],
    )


def _clid_number(clid: str) -> str:
    match = _CLID_NUMBER.search(clid or "")
    return match.group(1).strip() if match else ""


def is_root_leg(call_id: str, leg_ref: str) -> bool:
    """The leg of the channel that started the call (its uniqueid is the call's linkedid)."""
    return leg_ref.split(":", 1)[0] == call_id


_OUTWARD = {"inbound": 0, "outbound": 1, "internal": 2}


def merge_call_legs(legs: list[Call]) -> Call:
    """One call from its legs: who called whom and which way from the leg that started it (the
    channel whose uniqueid is the linkedid), else from the most outward leg (a ring group's Local
    legs look internal); talk time, rep and recording from the leg that answered."""
    merged = merge_legs(legs)
    if len(legs) == 1:
        return merged
    roots = [leg for leg in legs if any(is_root_leg(leg.call_id, ref) for ref in leg.leg_refs)]
    base = min(roots or legs, key=lambda leg: (_OUTWARD[leg.direction], leg.started_at))
    return merged.model_copy(
        update={
            "direction": base.direction,
            "caller": base.caller,
            "callee": base.callee,
            "dialled_number": base.dialled_number,
            "extension": merged.extension if merged.talk_s or base.direction == "inbound" else base.extension,
        }
    )


def read_cdr(
    path: str | Path,
    offset: int = 0,
    line: int = 0,
    options: CdrOptions | None = None,
    batch_rows: int = 5000,
    to_end: bool | None = None,
) -> Iterator[CdrBatch]:
    """Batches of calls from `offset` (byte) / `line` (rows already read) on. Rows of one call
    that follow each other are never split between batches (legs of a call written apart are
    merged by the store). A last line without newline is read only when `to_end` (default: when
    the file has not changed for a minute)."""
    options = options or CdrOptions()
    guess = options.layout_guess()
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
            rows = _split_rows(complete, position, line, guess)
            position += len(complete)
            if rows:
                line = rows[-1].line
            pending.extend(rows)
            # Keep the rows of the last call back until the next block shows it has ended.
            hold = 0 if at_eof else _trailing_group(pending)
            ready, pending = pending[: len(pending) - hold], pending[len(pending) - hold :]
            for start in range(0, len(ready), batch_rows):
                batch = _batch(ready[start : start + batch_rows], options, zone)
                batch.layout = guess.describe()
                yield batch
            if at_eof:
                return


def _split_rows(data: bytes, offset: int, line: int, guess: LayoutGuess) -> list[_Row]:
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
        layout, fits = guess.layout_of(fields)
        rows.append(_Row(line + reader.line_num, ends[reader.line_num - 1], fields, layout, fits))
    return rows


def _call_key(row: _Row) -> str:
    fields, layout = row.fields, row.layout
    if layout is not None:
        for column in ("linkedid", "uniqueid"):
            position = layout.index(column)
            if position is not None and fields[position].strip():
                return fields[position].strip()
        channel, start = layout.index("channel"), layout.index("start")
        if channel is not None and start is not None:
            return f"{fields[channel]}@{fields[start]}"
    return f"line {row.line}"


def _trailing_group(rows: list[_Row]) -> int:
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
            leg = row_to_leg(row.fields, row.layout, options, zone)
        except (ValidationError, ValueError) as exc:
            reason: str | Exception = exc
            if row.layout is not None and not row.fits:
                reason = (
                    f"{describe_error(exc)}; the row reads in no stock layout of {len(row.fields)} columns "
                    "(cdr_csv, cdr_custom): if the PBX writes another cdr_custom mapping, name its columns "
                    "in the CDR column setting"
                )
            batch.rejected.append(RejectedRecord(row.fields, reason, f"line {row.line}"))
            continue
        groups.setdefault(leg.call_id, []).append(leg)
    for legs in groups.values():
        batch.calls.append(merge_call_legs(legs))
        batch.skipped_legs += len(legs) - 1
    return batch


def parse_cdr_file(path: str | Path, options: CdrOptions | None = None) -> Iterator[CdrBatch]:
    """The whole file at once (the inspect command): every row, the last line too."""
    return read_cdr(path, options=options, to_end=True)
