"""Asterisk cdr_csv files: quoting edge cases, legs grouped into calls, local time, bad rows
quarantined with their line, a growing file read from where it stopped, and the CLI."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from connectors.asterisk_cdr import CdrOptions, parse_cdr_file
from connectors.errors import PermanentSourceError
from hub.cli import main
from hub.ingest.telephony import cursor_name, sync_cdr_dir
from hub.store.cursors import load_cursor
from hub.store.db import session_scope
from hub.store.models import Activity, Lead, QuarantineRecord, Task
from tests.telephony.conftest import KNOWN_CLIENT, TRACKING_YANDEX, contact_id, telephony_settings

# Master.csv as cdr_csv writes it: every field quoted except the numbers, quotes doubled.
ROWS = [
    # 1. Known client on the Yandex tracking number, answered by ext 101; caller name has quotes.
    '"","79161234567","74951112233","from-trunk","""Петров, Иван"" <79161234567>","SIP/trunk-00000001",'
    '"SIP/101-00000002","Dial","SIP/101,30,tT","2026-03-05 12:00:00","2026-03-05 12:00:05",'
    '"2026-03-05 12:02:05",125,120,"ANSWERED","DOCUMENTATION","1772701200.1","rec/1772701200.1.wav"',
    # 2-3. A queue call: ext 101 did not answer, ext 102 did; one call of two legs.
    '"","79035550101","74950000000","from-trunk","""Unknown"" <79035550101>","SIP/trunk-00000003",'
    '"SIP/101-00000004","Queue","sales,t","2026-03-05 12:10:00","","2026-03-05 12:10:20",20,0,'
    '"NO ANSWER","DOCUMENTATION","1772701800.3",""',
    '"","79035550101","74950000000","from-trunk","""Unknown"" <79035550101>","SIP/trunk-00000003",'
    '"SIP/102-00000005","Queue","sales,t","2026-03-05 12:10:00","2026-03-05 12:10:22",'
    '"2026-03-05 12:14:22",262,240,"ANSWERED","DOCUMENTATION","1772701800.3",""',
    # 4. An unknown caller nobody answered: empty `answer`.
    '"","+7 (926) 555-01-02","74951112233","from-trunk","","SIP/trunk-00000006","SIP/101-00000007",'
    '"Dial","SIP/101,30","2026-03-05 13:00:00","","2026-03-05 13:00:30",30,0,"NO ANSWER",'
    '"DOCUMENTATION","1772705200.6",""',
    # 5. Outbound by ext 101 to the known client, dialled with the Russian trunk prefix 8.
    '"","101","89161234567","from-internal","""Анна"" <101>","SIP/101-00000008","SIP/trunk-00000009",'
    '"Dial","SIP/trunk/89161234567,60,tT","2026-03-05 14:00:00","2026-03-05 14:00:10",'
    '"2026-03-05 14:05:10",310,300,"ANSWERED","DOCUMENTATION","1772708800.8",""',
    # 6. Internal call between reps: not a client's call.
    '"","101","102","from-internal","","SIP/101-0000000a","SIP/102-0000000b","Dial","SIP/102",'
    '"2026-03-05 14:30:00","2026-03-05 14:30:02","2026-03-05 14:31:00",60,58,"ANSWERED",'
    '"DOCUMENTATION","1772710600.10",""',
    # 7. A known client's missed call on a PBX without loguniqueid (16 fields): call-back task.
    '"","79161234567","74950000000","from-trunk","","SIP/trunk-0000000c","SIP/102-0000000d","Dial",'
    '"SIP/102,20","2026-03-05 15:00:00","","2026-03-05 15:00:20",20,0,"BUSY","DOCUMENTATION"',
]
BAD_ROWS = [
    '"","79035550199","74950000000","from-trunk","","SIP/trunk-0000000e"',  # cut short
    '"","79035550198","74950000000","from-trunk","","SIP/trunk-0000000f","","Dial","","5 марта",'
    '"","2026-03-05 16:00:20",20,0,"NO ANSWER","DOCUMENTATION","1772712000.15",""',
    '"","79035550197","74950000000","from-trunk","","SIP/trunk-00000010","","Dial","",'
    '"2026-03-05 16:10:00","","2026-03-05 16:10:20",20,45,"NO ANSWER","DOCUMENTATION","1772712600.16",""',
]


def write_cdr(path: Path, rows: list[str], mode: str = "w", settled: bool = True) -> None:
    with path.open(mode, encoding="utf-8", newline="") as fh:
        fh.write("".join(row + "\n" for row in rows))
    if settled:  # the PBX has not written for a while
        old = time.time() - 3600
        os.utime(path, (old, old))


def cdr_settings(folder: Path, **overrides: object):  # type: ignore[no-untyped-def]
    return telephony_settings(
        asterisk={"cdr_dir": str(folder), "recording_base_url": "https://pbx.example.ru/"}, **overrides
    )


def test_parse_quoting_legs_time_zone_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    write_cdr(path, ROWS + BAD_ROWS)
    batches = list(
        parse_cdr_file(path, CdrOptions(timezone="Europe/Moscow", recording_base_url="https://pbx/"))
    )
    calls = {c.call_id: c for b in batches for c in b.calls}
    rejected = [r for b in batches for r in b.rejected]
    assert len(calls) == 6 and sum(b.rows for b in batches) == 10
    first = calls["1772701200.1"]
    assert first.started_at == datetime(2026, 3, 5, 9, 0, tzinfo=UTC)  # 12:00 Moscow
    assert (first.direction, first.extension, first.disposition, first.talk_s) == (
        "inbound",
        "101",
        "answered",
        120,
    )
    assert first.recording_url == "https://pbx/rec/1772701200.1.wav"
    assert first.dialled_number == "74951112233"
    queue = calls["1772701800.3"]
    assert (queue.disposition, queue.extension, queue.legs, queue.talk_s) == ("answered", "102", 2, 240)
    assert (
        calls["1772705200.6"].caller == "+7 (926) 555-01-02" and calls["1772705200.6"].disposition == "missed"
    )
    assert calls["1772708800.8"].direction == "outbound" and calls["1772708800.8"].extension == "101"
    assert calls["1772710600.10"].direction == "internal"
    no_uniqueid = calls["SIP/trunk-0000000c@2026-03-05T15:00:00"]
    assert no_uniqueid.disposition == "busy"
    reasons = {r.ref: str(r.reason) for r in rejected}
    assert set(reasons) == {"line 8", "line 9", "line 10"}
    assert "6 fields" in reasons["line 8"]
    assert "start" in reasons["line 9"]
    assert "billsec 45 is larger than duration 20" in reasons["line 10"]


def test_calls_reach_the_crm_once_from_a_growing_file(crm_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "cdr"
    folder.mkdir()
    path = folder / "Master.csv"
    settings = cdr_settings(folder)
    # The PBX is writing: the last row is not finished yet.
    write_cdr(path, ROWS[:3], settled=False)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(ROWS[3][:40])
    first = sync_cdr_dir(crm_url, settings, "RU", "Europe/Moscow")
    assert first.written == 2 and first.extra["cdr_rows"] == 3
    with path.open("a", encoding="utf-8") as fh:
        fh.write(ROWS[3][40:] + "\n")
    write_cdr(path, ROWS[4:] + BAD_ROWS, mode="a")
    second = sync_cdr_dir(crm_url, settings, "RU", "Europe/Moscow")
    third = sync_cdr_dir(crm_url, settings, "RU", "Europe/Moscow")
    assert second.written == 3 and second.quarantined == 3 and second.extra["internal_calls_skipped"] == 1
    assert third.written == 0 and third.rows_in == 0
    with session_scope(crm_url) as session:
        cursor = load_cursor(session, cursor_name("asterisk"))
        calls = {a.source_ref: a for a in session.scalars(select(Activity))}
        leads = session.scalars(select(Lead).order_by(Lead.submitted_at)).all()
        tasks = session.scalars(select(Task)).all()
        quarantined = session.scalar(select(func.count()).select_from(QuarantineRecord))
    assert cursor["Master.csv"]["offset"] == path.stat().st_size
    assert len(calls) == 5 and quarantined == 3
    known = contact_id(crm_url)
    assert calls["1772701200.1"].contact_id == known and calls["1772701200.1"].rep_id == 1
    assert calls["1772701200.1"].channel == "yandex / cpc"
    assert calls["1772701200.1"].recording_url == "https://pbx.example.ru/rec/1772701200.1.wav"
    assert calls["1772701800.3"].rep_id == 2 and calls["1772701800.3"].details["legs"] == 2
    assert calls["1772708800.8"].to_addr == KNOWN_CLIENT and calls["1772708800.8"].contact_id == known
    assert [(lead.phone_e164, lead.channel) for lead in leads] == [
        ("+79035550101", "phone"),
        ("+79265550102", "yandex / cpc"),
    ]
    assert [(t.kind, t.contact_id) for t in tasks] == [("call_back", known)]
    assert calls["1772701200.1"].to_addr == TRACKING_YANDEX


def test_inspect_prints_calls_and_reasons(tmp_path: Path) -> None:
    path = tmp_path / "Master.csv"
    write_cdr(path, ROWS[:3] + BAD_ROWS[:1])
    result = CliRunner().invoke(main, ["inspect", "cdr", str(path), "--timezone", "Europe/Moscow"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line.get("call_id") for line in lines[:2]] == ["1772701200.1", "1772701800.3"]
    assert lines[0]["started_at"] == "2026-03-05T09:00:00Z" and lines[1]["legs"] == 2
    assert lines[2]["where"] == "line 4" and "6 fields" in lines[2]["quarantine"]


def test_backfill_rereads_a_range_without_duplicates(crm_sqlite: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "cdr"
    folder.mkdir()
    write_cdr(folder / "Master.csv", ROWS)
    monkeypatch.setenv("HUB_DATABASE_URL", crm_sqlite)
    monkeypatch.setenv("HUB_TELEPHONY__ASTERISK__CDR_DIR", str(folder))
    sync_cdr_dir(crm_sqlite, cdr_settings(folder), "RU", "Europe/Moscow")
    runner = CliRunner()
    result = runner.invoke(main, ["backfill", "telephony", "--since", "2026-03-05", "--until", "2026-03-05"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.splitlines()[0])
    assert out["provider"] == "asterisk" and out["written"] == 0 and out["unchanged"] == 5
    # A day without calls writes nothing and leaves the incremental cursor where it was.
    with session_scope(crm_sqlite) as session:
        before = load_cursor(session, cursor_name("asterisk"))
        session.execute(Activity.__table__.delete())
    result = runner.invoke(main, ["backfill", "telephony", "--since", "2026-03-06"])
    assert json.loads(result.output.splitlines()[0])["written"] == 0
    result = runner.invoke(main, ["backfill", "telephony", "--since", "2026-03-05", "--until", "2026-03-05"])
    assert json.loads(result.output.splitlines()[0])["written"] == 5
    with session_scope(crm_sqlite) as session:
        assert load_cursor(session, cursor_name("asterisk")) == before
        assert session.scalar(select(func.count()).select_from(Activity)) == 5


def test_a_rotated_file_is_read_from_its_start(crm_sqlite: str, tmp_path: Path) -> None:
    folder = tmp_path / "cdr"
    folder.mkdir()
    settings = cdr_settings(folder)
    write_cdr(folder / "Master.csv", ROWS)
    assert sync_cdr_dir(crm_sqlite, settings, "RU", "Europe/Moscow").written == 5
    # logrotate moved yesterday's file away; the PBX started a new, shorter Master.csv.
    (folder / "Master.csv").rename(tmp_path / "Master.csv.1")
    write_cdr(folder / "Master.csv", [ROWS[3].replace("1772705200.6", "1772791600.1")])
    rotated = sync_cdr_dir(crm_sqlite, settings, "RU", "Europe/Moscow")
    assert rotated.written == 1 and rotated.unchanged == 0


def test_a_missing_cdr_folder_names_the_setting(sqlite_store: str, tmp_path: Path) -> None:
    with pytest.raises(PermanentSourceError, match="HUB_TELEPHONY__ASTERISK__CDR_DIR"):
        sync_cdr_dir(sqlite_store, cdr_settings(tmp_path / "no-such-folder"), "RU", "Europe/Moscow")
