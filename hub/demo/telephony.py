"""Demo data of the telephony source: a recorded Twilio Calls answer and two Asterisk CDR files of
yesterday — the default cdr_csv layout (answered and missed calls, known clients and unknown
numbers, calls to tracking numbers, a queue call of two legs, an internal call, a broken row) and
a second PBX writing newcdrcolumns (21 columns) with a ring group over Local channels, one ring
group nobody picked up and a caller who heard only the IVR."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.demo import people
from hub.store.models import Contact, Rep, TrackingNumber
from hub.store.upsert import upsert

ACCOUNT_SID = "ACdemo0000000000000000000000000000"
OFFICE_LINE = "+74952223344"
PBX_ZONE = ZoneInfo("Europe/Moscow")
# One number per ad channel; the first two in the store, the third in settings.
TRACKING_NUMBERS = [
    ("+74951110001", "yandex / cpc", "brand"),
    ("+74951110002", "google / cpc", "stroymaterialy"),
]
SETTINGS_TRACKING = {"+74951110003": "vk / social"}
STATUS_MIX = ["completed"] * 6 + ["no-answer", "busy", "canceled"]


def _twilio_call(
    sid: str, start: datetime, frm: str, to: str, status: str, direction: str, duration: int
) -> dict[str, Any]:
    return {
        "sid": sid,
        "account_sid": ACCOUNT_SID,
        "parent_call_sid": None,
        "from": frm,
        "to": to,
        "status": status,
        "direction": direction,
        "start_time": format_datetime(start, usegmt=True),
        "duration": str(duration if status == "completed" else 0),
        "subresource_uris": {"recordings": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}/Recordings.json"},
    }


def twilio_snapshot(rng: random.Random, day: date, clients: list[str], reps: list[Rep]) -> dict[str, Any]:
    start = datetime.combine(day, time(6, 0), UTC)  # 09:00 in Moscow
    calls: list[dict[str, Any]] = []
    dialled = [OFFICE_LINE, *(n for n, _, _ in TRACKING_NUMBERS), *SETTINGS_TRACKING]
    for n in range(1, 25):
        at = start + timedelta(minutes=23 * n)
        status = rng.choice(STATUS_MIX)
        duration = rng.randint(25, 600)
        if n % 5 == 0:  # a rep calls a client back
            rep = reps[n % len(reps)]
            calls.append(
                _twilio_call(
                    f"CAdemo{n:026d}",
                    at,
                    rep.phone_e164 or OFFICE_LINE,
                    rng.choice(clients),
                    "completed",
                    "outbound-api",
                    duration,
                )
            )
            continue
        caller = rng.choice(clients) if rng.random() < 0.4 else people.ru_mobile(rng)
        calls.append(
            _twilio_call(f"CAdemo{n:026d}", at, caller, rng.choice(dialled), status, "inbound", duration)
        )
    # An inbound call forwarded to a rep's mobile: its child leg names who answered.
    parent = _twilio_call(
        "CAdemoforwarded",
        start + timedelta(hours=9),
        people.ru_mobile(rng),
        OFFICE_LINE,
        "completed",
        "inbound",
        140,
    )
    child = dict(
        _twilio_call(
            "CAdemoforwardleg",
            start + timedelta(hours=9, seconds=4),
            OFFICE_LINE,
            reps[0].phone_e164 or "",
            "completed",
            "outbound-dial",
            132,
        ),
        parent_call_sid="CAdemoforwarded",
    )
    # A call still ringing (not written until it ends) and a record with a broken date.
    ringing = dict(
        _twilio_call(
            "CAdemoringing",
            start + timedelta(hours=10),
            people.ru_mobile(rng),
            OFFICE_LINE,
            "ringing",
            "inbound",
            0,
        ),
        duration=None,
    )
    broken = dict(calls[0], sid="CAdemobroken", start_time="вчера в 15:00")
    calls += [parent, child, ringing, broken]
    calls.sort(key=_sort_key, reverse=True)
    pages = [
        {"calls": calls[i : i + 10], "page": i // 10, "page_size": 10, "next_page_uri": None}
        for i in range(0, len(calls), 10)
    ]
    recordings = {
        c["sid"]: {
            "recordings": [
                {
                    "sid": "RE" + c["sid"][2:],
                    "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE{c['sid'][2:]}.json",
                }
            ]
        }
        for c in calls
        if c["status"] == "completed"
    }
    return {"pages": pages, "recordings": recordings}


def _sort_key(call: dict[str, Any]) -> float:
    # Newest first, as Twilio lists them; the broken record sorts last.
    try:
        return parsedate_to_datetime(call["start_time"]).timestamp()
    except (TypeError, ValueError):
        return 0.0


def cdr_rows(rng: random.Random, day: date, clients: list[str]) -> list[list[Any]]:
    """Rows of Master.csv (with uniqueid and userfield) for a day at the office PBX."""
    rows: list[list[Any]] = []
    base = datetime.combine(day, time(9, 0))
    extensions = ["101", "102", "103", "104"]

    def row(
        n: int,
        src: str,
        dst: str,
        context: str,
        dstchannel: str,
        start: datetime,
        ring: int,
        talk: int,
        disposition: str,
        uniqueid: str,
        clid: str = "",
        recording: str = "",
    ) -> list[Any]:
        answer = start + timedelta(seconds=ring) if disposition == "ANSWERED" else None
        end = start + timedelta(seconds=ring + talk)
        channel = f"SIP/trunk-{n:08x}" if context == "from-trunk" else f"SIP/{src}-{n:08x}"
        fmt = "%Y-%m-%d %H:%M:%S"
        return [
            "",
            src,
            dst,
            context,
            clid,
            channel,
            dstchannel,
            "Dial",
            f"{dstchannel.split('-')[0]},30,tT",
            start.strftime(fmt),
            answer.strftime(fmt) if answer else "",
            end.strftime(fmt),
            ring + talk,
            talk,
            disposition,
            "DOCUMENTATION",
            uniqueid,
            recording,
        ]

    for n in range(1, 19):
        start = base + timedelta(minutes=29 * n)
        uid = f"{int(datetime.combine(day, time()).timestamp())}.{n}"
        ext = rng.choice(extensions)
        if n % 4 == 0:  # outbound from a rep's extension; the number typed with the trunk prefix 8
            client = rng.choice(clients)
            rows.append(
                row(
                    n,
                    ext,
                    "8" + client[2:],
                    "from-internal",
                    f"SIP/trunk-{n + 100:08x}",
                    start,
                    8,
                    rng.randint(30, 400),
                    "ANSWERED",
                    uid,
                    f'"{ext}" <{ext}>',
                    f"out-{uid}.wav",
                )
            )
            continue
        caller = rng.choice(clients) if rng.random() < 0.4 else people.ru_mobile(rng)
        did = rng.choice([OFFICE_LINE, TRACKING_NUMBERS[0][0], TRACKING_NUMBERS[1][0]])[1:]
        disposition = rng.choice(["ANSWERED", "ANSWERED", "ANSWERED", "NO ANSWER", "BUSY"])
        talk = rng.randint(20, 500) if disposition == "ANSWERED" else 0
        clid = f'"Клиент {n}, ООО" <{caller[1:]}>'  # quotes and a comma inside the field
        if n % 6 == 1:  # the queue: the first rep did not answer, the second did
            rows.append(
                row(
                    n,
                    caller[1:],
                    did,
                    "from-trunk",
                    f"SIP/{ext}-{n + 200:08x}",
                    start,
                    15,
                    0,
                    "NO ANSWER",
                    uid,
                    clid,
                )
            )
            ext = "102" if ext != "102" else "103"
        rows.append(
            row(
                n,
                caller[1:],
                did,
                "from-trunk",
                f"SIP/{ext}-{n + 300:08x}",
                start,
                18,
                talk,
                disposition,
                uid,
                clid,
                f"in-{uid}.wav" if talk else "",
            )
        )
    internal_start = base + timedelta(hours=5)
    rows.append(
        row(
            99,
            "101",
            "102",
            "from-internal",
            "SIP/102-00000999",
            internal_start,
            3,
            60,
            "ANSWERED",
            "internal.99",
        )
    )
    return rows


def ring_group_rows(day: date, clients: list[str]) -> list[list[Any]]:
    """Rows of the branch office PBX (cdr_csv with loguniqueid, loguserfield and newcdrcolumns: 21
    columns) as Asterisk writes a ring group: the trunk channel dials three Local channels, each
    rings a phone; every leg shares the call's linkedid. One group answered by ext 103, one nobody
    answered (then the dialplan's Hangup answers, 0 s), one caller who heard only the IVR."""
    fmt = "%Y-%m-%d %H:%M:%S"
    base = datetime.combine(day, time(16, 0))
    rows: list[list[Any]] = []
    sequence = 0

    def leg(
        linkedid: str,
        uniqueid: str,
        src: str,
        dst: str,
        context: str,
        channel: str,
        dstchannel: str,
        app: str,
        data: str,
        start: datetime,
        ring: int,
        talk: int,
        disposition: str,
        recording: str = "",
    ) -> list[Any]:
        nonlocal sequence
        sequence += 1
        answer = (start + timedelta(seconds=ring)).strftime(fmt) if disposition == "ANSWERED" else ""
        end = start + timedelta(seconds=ring + talk)
        return [
            "",
            src,
            dst,
            context,
            f'"{src}" <{src}>',
            channel,
            dstchannel,
            app,
            data,
            start.strftime(fmt),
            answer,
            end.strftime(fmt),
            ring + talk,
            talk,
            disposition,
            "DOCUMENTATION",
            uniqueid,
            recording,
            "",
            linkedid,
            sequence,
        ]

    group = "Local/g1@ring-group&Local/g2@ring-group&Local/g3@ring-group,40"
    did = OFFICE_LINE[2:]
    for n, (caller, answered_by) in enumerate(((clients[0], "103"), (clients[1 % len(clients)], None))):
        start = base + timedelta(minutes=40 * n)
        root = f"{int(start.replace(tzinfo=UTC).timestamp())}.{100 + n * 10}"
        number = "8" + caller[2:]
        for k, phone in enumerate(("101", "102", "103"), start=1):
            local = f"Local/g{k}@ring-group-{n:04x}{k:04x}"
            picked = phone == answered_by
            rows.append(
                leg(
                    root,
                    f"{root}{k}",
                    number,
                    f"g{k}",
                    "ring-group",
                    f"{local};2",
                    f"SIP/{phone}-{n:04x}{k:04x}",
                    "Dial",
                    f"SIP/{phone},30",
                    start,
                    12 if picked else 40,
                    0,
                    "ANSWERED" if picked else "NO ANSWER",
                )
            )
            rows.append(
                leg(
                    root,
                    root,
                    number,
                    did,
                    "from-pstn",
                    f"SIP/trunk-{n:08x}",
                    f"{local};1",
                    "Dial",
                    group,
                    start,
                    12 if picked else 40,
                    0,
                    "ANSWERED" if picked else "NO ANSWER",
                )
            )
        if answered_by:
            rows.append(
                leg(
                    root,
                    root,
                    number,
                    did,
                    "from-pstn",
                    f"SIP/trunk-{n:08x}",
                    f"SIP/{answered_by}-{n:04x}0003",
                    "Dial",
                    group,
                    start + timedelta(seconds=12),
                    0,
                    185,
                    "ANSWERED",
                    f"ring-{root}.wav",
                )
            )
        else:
            # Nobody picked up; the dialplan's Hangup "answers" the channel for 0 s.
            end = start + timedelta(seconds=40)
            rows.append(
                leg(
                    root,
                    root,
                    number,
                    did,
                    "from-pstn",
                    f"SIP/trunk-{n:08x}",
                    "",
                    "Hangup",
                    "",
                    end,
                    0,
                    0,
                    "ANSWERED",
                )
            )
    # An unknown caller who listened to the IVR greeting for 20 s and hung up: missed, a phone lead.
    start = base + timedelta(minutes=90)
    root = f"{int(start.replace(tzinfo=UTC).timestamp())}.300"
    rows.append(
        leg(
            root,
            root,
            "89035550123",
            did,
            "from-pstn",
            "SIP/trunk-000000ff",
            "",
            "BackGround",
            "custom/greeting",
            start,
            0,
            20,
            "ANSWERED",
        )
    )
    return rows


def generate_telephony_demo(
    session: Session, demo_dir: Path, today: date, database_url: str, seed: int = 11
) -> dict[str, Any]:
    rng = random.Random(seed)
    day = today - timedelta(days=1)
    clients = [
        c.phone_e164
        for c in session.scalars(select(Contact).where(Contact.source_system == "crm").order_by(Contact.id))
        if c.phone_e164 and c.phone_e164.startswith("+7")
    ]
    reps = list(session.scalars(select(Rep).where(Rep.active.is_(True)).order_by(Rep.id)))
    upsert(
        session,
        TrackingNumber,
        [{"number_e164": n, "channel": ch, "campaign": camp} for n, ch, camp in TRACKING_NUMBERS],
        key=["number_e164"],
    )
    folder = demo_dir / "telephony"
    cdr_dir = folder / "cdr"
    cdr_dir.mkdir(parents=True, exist_ok=True)
    snapshot = folder / "twilio_calls.json"
    _write_if_changed(
        snapshot, json.dumps(twilio_snapshot(rng, day, clients, reps), ensure_ascii=False, indent=1)
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerows(cdr_rows(rng, day, clients))
    # A row cut short by a disk-full PBX: quarantined with its line number.
    buffer.write('"","79031234567","74952223344","from-trunk","","SIP/trunk-0000ffff"\n')
    # Daily rotated logs, as logrotate leaves them: a new day is a new file.
    _write_if_changed(cdr_dir / f"Master-{day:%Y%m%d}.csv", buffer.getvalue())
    ring = io.StringIO()
    csv.writer(ring, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerows(
        ring_group_rows(day, clients)
    )
    _write_if_changed(cdr_dir / f"branch-Master-{day:%Y%m%d}.csv", ring.getvalue())
    return {
        "telephony": {
            "twilio": {"snapshot_file": str(snapshot)},
            "asterisk": {
                "cdr_dir": str(cdr_dir),
                "timezone": str(PBX_ZONE),
                "recording_base_url": "https://pbx.example.ru/monitor/",
            },
            "tracking_numbers": SETTINGS_TRACKING,
        }
    }


def _write_if_changed(path: Path, text: str) -> None:
    # Rewriting an unchanged file would make a CDR folder sensor see it as new.
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
