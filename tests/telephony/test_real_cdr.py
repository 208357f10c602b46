"""Asterisk CDR files other people's PBXs wrote (tests/telephony/samples/README.md): every stock
layout told from the rows, a configured one, legs of one call merged by linkedid even across
batches and files, PBX-answered calls missed (with their call-back task), direction from the
dialplan, and `hub inspect cdr` showing the E.164 number the hub matches on."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connectors.asterisk_cdr import STOCK_LAYOUTS, CdrOptions, parse_cdr_file
from hub.cli import main
from hub.identity.resolve import index_contact
from hub.ingest.telephony import sync_cdr_dir
from hub.store.db import session_scope
from hub.store.models import Activity, Contact, Lead, Task
from tests.telephony.conftest import telephony_settings

SAMPLES = Path(__file__).parent / "samples"
MINEEV = SAMPLES / "mineevburyat-Master.csv"
KELY = SAMPLES / "kelysaina-Master.csv"
CUSTOM = SAMPLES / "written-cdr_custom-callid.csv"
CUSTOM_COLUMNS = [*STOCK_LAYOUTS["cdr_custom"], "callid", "rtcpinfo"]
RING_GROUP = "1706372196.12"  # three Local ring-group channels, seven legs, nobody answered
HANGUP_0S = "1706369600.6"  # two ringing legs, then ANSWERED 0 s by Hangup
CALLER = "+79245555937"


def _calls(path: Path, **options: object) -> dict[str, object]:
    batches = list(parse_cdr_file(path, CdrOptions(timezone="Asia/Irkutsk", **options)))  # type: ignore[arg-type]
    assert not [r for b in batches for r in b.rejected]
    return {c.call_id: c for b in batches for c in b.calls}


def test_every_sample_is_listed_with_its_origin() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    assert all(f"`{p.name}`" in readme for p in SAMPLES.glob("*.csv"))


def test_newcdrcolumns_21_columns_legs_by_linkedid_and_pbx_answered_calls_missed() -> None:
    batches = list(parse_cdr_file(MINEEV, CdrOptions(timezone="Asia/Irkutsk")))
    assert {b.layout for b in batches} == {"cdr_csv+uniqueid+userfield newcdrcolumns"}
    calls = {c.call_id: c for b in batches for c in b.calls}
    assert sum(b.rows for b in batches) == 84 and len(calls) == 36
    ring = calls[RING_GROUP]
    assert (ring.direction, ring.disposition, ring.legs, ring.caller) == (
        "inbound",
        "missed",
        7,
        "89245555937",
    )
    hangup = calls[HANGUP_0S]
    assert (hangup.disposition, hangup.talk_s, hangup.legs) == ("missed", 0, 3)
    # The announcement-only calls: ANSWERED for 27 s, but by the PBX's Hangup, with nobody bridged.
    announced = calls["1706368044.0"]
    assert announced.disposition == "missed" and "by the PBX" in announced.provider_status
    # A ring group somebody picked up: the answering leg's talk time and extension.
    answered = calls["1706407446.50"]
    assert (answered.disposition, answered.talk_s, answered.extension, answered.legs) == (
        "answered",
        17,
        "301",
        5,
    )
    assert Counter(c.direction for c in calls.values()) == {"inbound": 36}  # "stadion-pstn" is inbound


def test_stock_cdr_custom_mapping_of_19_columns() -> None:
    batches = list(parse_cdr_file(KELY))
    assert {b.layout for b in batches} == {"cdr_custom"}
    calls = {c.call_id: c for b in batches for c in b.calls}
    assert len(calls) == 14 and {c.direction for c in calls.values()} == {"internal"}
    first = calls["1690325492.2"]
    assert (first.caller, first.callee, first.talk_s, first.duration_s) == ("client1", "6789", 13, 31)


def test_a_layout_no_stock_one_has_is_refused_with_the_setting_to_use_then_read_with_it() -> None:
    refused = list(parse_cdr_file(CUSTOM))
    reasons = [str(r.reason) for b in refused for r in b.rejected]
    assert len(reasons) == 3 and all("CDR column setting" in r for r in reasons)
    calls = _calls(CUSTOM, columns=tuple(CUSTOM_COLUMNS), trunk_peers=("beeline",))
    inbound, outbound, originated = calls["1709629200.1"], calls["1709629800.3"], calls["1709630400.5"]
    assert (inbound.direction, inbound.extension, inbound.talk_s) == ("inbound", "101", 180)
    assert (outbound.direction, outbound.extension, outbound.disposition) == ("outbound", "101", "missed")
    # Originated from the CRM (AMI): no src, the rep's phone is the channel, the client the dst.
    assert (originated.direction, originated.caller, originated.extension) == ("outbound", "", "102")


def test_direction_comes_from_the_dialplan_not_the_number_length(tmp_path: Path) -> None:
    rows = [
        # A short external number (a city number without area code) entering from the trunk.
        '"","214943","211553","from-pstn","","SIP/211553-00000013","SIP/301-00000014","Dial",'
        '"SIP/301,40","2024-01-28 03:20:22","2024-01-28 03:20:27","2024-01-28 03:20:50",28,23,'
        '"ANSWERED","DOCUMENTATION","1706412022.63",""',
        # A rep with a long, named endpoint calling another: internal.
        '"","anna","boris","from-internal","","PJSIP/anna-00000001","PJSIP/boris-00000002","Dial",'
        '"PJSIP/boris,30","2024-01-28 10:00:00","2024-01-28 10:00:03","2024-01-28 10:01:00",60,57,'
        '"ANSWERED","DOCUMENTATION","1706425200.1",""',
        # Out through a named provider peer with a short number.
        '"","anna","0612","from-internal","","PJSIP/anna-00000003","PJSIP/mango-00000004","Dial",'
        '"PJSIP/0612@mango,60","2024-01-28 11:00:00","","2024-01-28 11:00:30",30,0,"NO ANSWER",'
        '"DOCUMENTATION","1706428800.3",""',
    ]
    path = tmp_path / "Master.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    calls = {c.call_id: c for b in parse_cdr_file(path) for c in b.calls}
    assert [calls[k].direction for k in ("1706412022.63", "1706425200.1", "1706428800.3")] == [
        "inbound",
        "internal",
        "outbound",
    ]
    assert calls["1706428800.3"].extension == "anna"


def test_inspect_cdr_shows_the_e164_number_the_hub_matches_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DEFAULT_REGION", "RU")
    result = CliRunner().invoke(main, ["inspect", "cdr", str(MINEEV), "--timezone", "Asia/Irkutsk"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    ring = next(line for line in lines if line.get("call_id") == RING_GROUP)
    assert ring["match_on"]["external_e164"] == CALLER
    assert lines[-1]["summary"]["layout"] == "cdr_csv+uniqueid+userfield newcdrcolumns"
    assert lines[-1]["summary"]["calls"] == 36


def _known_caller(database_url: str) -> int:
    with session_scope(database_url) as session:
        contact = Contact(source_system="crm", source_ref="C-9", name="Клиент", phone_e164=CALLER)
        session.add(contact)
        session.flush()
        index_contact(session, contact)
        return contact.id


def _settled(path: Path) -> None:
    old = time.time() - 3600
    os.utime(path, (old, old))


def test_ring_group_nobody_picked_up_is_a_missed_call_with_its_call_back_task(
    crm_url: str, tmp_path: Path
) -> None:
    contact = _known_caller(crm_url)
    folder = tmp_path / "cdr"
    folder.mkdir()
    (folder / "Master.csv").write_bytes(MINEEV.read_bytes())
    _settled(folder / "Master.csv")
    settings = telephony_settings(asterisk={"cdr_dir": str(folder), "timezone": "Asia/Irkutsk"})
    stats = sync_cdr_dir(crm_url, settings, "RU", "Europe/Moscow")
    assert stats.quarantined == 0 and stats.extra["cdr_layout"] == "cdr_csv+uniqueid+userfield newcdrcolumns"
    with session_scope(crm_url) as session:
        calls = {a.source_ref: a for a in session.scalars(select(Activity))}
        tasks = {t.source_ref for t in session.scalars(select(Task).where(Task.kind == "call_back"))}
        leads = session.scalars(select(Lead)).all()
    assert len(calls) == 36
    ring = calls[RING_GROUP]
    assert (ring.disposition, ring.contact_id, ring.from_addr, ring.details["legs"]) == (
        "missed",
        contact,
        CALLER,
        7,
    )
    for call_id in (RING_GROUP, HANGUP_0S, "1706368044.0"):
        assert f"call:asterisk:{call_id}:call_back" in tasks
    assert all(lead.phone_e164 != CALLER for lead in leads)  # a known client is not a new lead


def test_legs_of_one_call_in_two_files_and_batches_update_it_never_duplicate(
    crm_url: str, tmp_path: Path
) -> None:
    lines = MINEEV.read_bytes().splitlines(keepends=True)  # its CLIDs hold bytes that are no UTF-8
    # The answered ring group 1706407446.50: its Local legs in one file, the leg that talked in the next.
    split = next(i for i, line in enumerate(lines) if b'"SIP/301-00000012","Dial","Local/ch1' in line)
    folder = tmp_path / "cdr"
    folder.mkdir()
    (folder / "Master-1.csv").write_bytes(b"".join(lines[:split]))
    (folder / "Master-2.csv").write_bytes(b"".join(lines[split:]))
    for path in folder.iterdir():
        _settled(path)
    settings = telephony_settings(asterisk={"cdr_dir": str(folder), "timezone": "Asia/Irkutsk"})
    first = sync_cdr_dir(crm_url, settings, "RU", "Europe/Moscow", batch_rows=4)
    again = sync_cdr_dir(crm_url, settings, "RU", "Europe/Moscow", batch_rows=4)
    assert first.extra["calls_updated_by_later_legs"] >= 1 and again.rows_in == 0
    with session_scope(crm_url) as session:
        refs = Counter(session.scalars(select(Activity.source_ref)))
        call = session.scalars(select(Activity).where(Activity.source_ref == "1706407446.50")).one()
    assert len(refs) == 36 and max(refs.values()) == 1
    assert (call.disposition, call.talk_s, call.details["legs"]) == ("answered", 17, 5)
    assert call.details["extension"] == "301"
    # Re-reading everything (a backfill) changes nothing.
    backfill = sync_cdr_dir(
        crm_url, settings, "RU", "Europe/Moscow", since=datetime(2020, 1, 1, tzinfo=UTC), batch_rows=4
    )
    assert backfill.written == 0 and backfill.extra.get("calls_updated_by_later_legs", 0) == 0


@pytest.mark.parametrize("layout", sorted(STOCK_LAYOUTS))
def test_every_stock_layout_is_told_from_its_rows(layout: str, tmp_path: Path) -> None:
    values = {
        "accountcode": "",
        "src": "79161234567",
        "dst": "74951112233",
        "dcontext": "from-trunk",
        "clid": '"Петров" <79161234567>',
        "channel": "SIP/trunk-00000001",
        "dstchannel": "SIP/101-00000002",
        "lastapp": "Dial",
        "lastdata": "SIP/101,30",
        "start": "2026-03-05 12:00:00",
        "answer": "2026-03-05 12:00:05",
        "end": "2026-03-05 12:02:05",
        "duration": "125",
        "billsec": "120",
        "disposition": "ANSWERED",
        "amaflags": "DOCUMENTATION",
        "uniqueid": "1772701200.1",
        "userfield": "rec.wav",
        "peeraccount": "",
        "linkedid": "1772701200.1",
        "sequence": "7",
    }
    path = tmp_path / "Master.csv"
    path.write_text(",".join(f'"{values[c]}"' for c in STOCK_LAYOUTS[layout]) + "\n", encoding="utf-8")
    [batch] = list(parse_cdr_file(path))
    [call] = batch.calls
    assert batch.layout == layout and not batch.rejected
    assert (call.direction, call.talk_s, call.extension, call.caller) == (
        "inbound",
        120,
        "101",
        "79161234567",
    )
