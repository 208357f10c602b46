"""Twilio's Calls list against a local server that pages, throttles and fails like the API:
every finished call arrives exactly once, with rep, contact, lead, task and recording."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from connectors.errors import CredentialError
from connectors.twilio import TwilioCalls
from hub.ingest.telephony import cursor_name, sync_calls
from hub.store.cursors import load_cursor
from hub.store.db import session_scope
from hub.store.models import Activity, Lead, QuarantineRecord, Task
from tests.telephony.conftest import (
    KNOWN_CLIENT,
    KNOWN_OWNER_REP,
    OFFICE_LINE,
    TRACKING_VK,
    TRACKING_YANDEX,
    at,
    contact_id,
    telephony_settings,
)
from tests.telephony.servers import TWILIO_SID, TWILIO_TOKEN, TwilioApi, serve, twilio_call


def unknown(n: int) -> str:
    return f"+7926{n:07d}"


def scenario() -> list[dict]:
    calls = [
        twilio_call(f"CA{n:032d}", at(9, n), frm=unknown(n), to=TRACKING_YANDEX if n % 2 else OFFICE_LINE)
        for n in range(1, 16)
    ]
    calls += [
        # A known client rang and nobody answered: a call-back task for the owner, no lead.
        twilio_call("CAmissedknown", at(10, 0), frm=KNOWN_CLIENT, to=OFFICE_LINE, status="no-answer"),
        # An unknown caller hung up before anyone answered, on the VK tracking number.
        twilio_call("CAcanceledvk", at(10, 5), frm=unknown(99), to=TRACKING_VK, status="canceled"),
        twilio_call("CAbusy", at(10, 10), frm=unknown(98), to=OFFICE_LINE, status="busy"),
        twilio_call(
            "CAoutbound",
            at(11, 0),
            frm="+74951000001",
            to=KNOWN_CLIENT,
            direction="outbound-api",
            duration=125,
        ),
        # An inbound call forwarded to rep 2's phone: the child leg names the rep.
        twilio_call("CAforwarded", at(12, 0), frm=unknown(97), to=OFFICE_LINE, duration=80),
        twilio_call(
            "CAchildleg",
            at(12, 0) + timedelta(seconds=3),
            frm=OFFICE_LINE,
            to="+74951000002",
            direction="outbound-dial",
            parent="CAforwarded",
            duration=75,
        ),
        twilio_call(
            "CAfailed", at(12, 30), frm="+74951000001", to="+7000", direction="outbound-api", status="failed"
        ),
    ]
    return calls


FINAL_CALLS = 15 + 6  # the 15 unknown callers and six others; the child leg is part of CAforwarded


def make_source(url: str, **options: object) -> TwilioCalls:
    return TwilioCalls(
        TWILIO_SID,
        TWILIO_TOKEN,
        base_url=url,
        page_size=4,
        timeout_s=0.5,
        backoff_factor=0.01,
        **options,
    )


def test_every_call_arrives_once_through_throttling_failures_and_a_repeated_page(crm_url: str) -> None:
    api = TwilioApi(calls=scenario(), faults=["429", "500", "truncate", "stall"], repeat_page=1)
    settings = telephony_settings()
    with serve(api) as url:
        source = make_source(url)
        stats = sync_calls(crm_url, source, settings, "RU", since=None, now=at(23))
        again = sync_calls(crm_url, make_source(url), settings, "RU", now=at(23, 30))
    assert stats.written == FINAL_CALLS and stats.quarantined == 0
    # The retry budget spent is reported with the run (429, 500, the cut body and the stall).
    assert stats.extra["http_retries"] == source.http.retries_used >= 4
    assert stats.extra["http_requests"] == source.http.requests_made
    assert stats.extra["repeated_calls_dropped"] == 4  # the page served twice
    assert again.written == 0 and again.unchanged == FINAL_CALLS
    with session_scope(crm_url) as session:
        refs = session.scalars(select(Activity.source_ref).where(Activity.source_system == "twilio")).all()
        assert sorted(refs) == sorted({c["sid"] for c in scenario() if c["sid"] != "CAchildleg"})
        calls = {a.source_ref: a for a in session.scalars(select(Activity))}
        leads = {lead.source_ref: lead for lead in session.scalars(select(Lead))}
        tasks = session.scalars(select(Task)).all()

    first = calls[f"CA{1:032d}"]
    assert (first.direction, first.disposition, first.duration_s, first.talk_s) == (
        "inbound",
        "answered",
        60,
        60,
    )
    assert first.from_addr == unknown(1) and first.to_addr == TRACKING_YANDEX
    assert first.occurred_at.replace(tzinfo=None) == at(9, 1).replace(tzinfo=None)
    assert first.recording_url and first.recording_url.endswith(f"/Recordings/RE{'0' * 31}1.mp3")
    assert first.channel == "yandex / cpc"

    # No inbound call lost: every unknown caller is a phone lead, the missed ones included.
    unknown_inbound = {f"twilio:CA{n:032d}" for n in range(1, 16)} | {
        "twilio:CAcanceledvk",
        "twilio:CAbusy",
        "twilio:CAforwarded",
    }
    assert set(leads) == unknown_inbound
    assert leads["twilio:CAcanceledvk"].channel == "vk / social"
    assert leads[f"twilio:CA{1:032d}"].utm_campaign == "brand"
    assert leads[f"twilio:CA{2:032d}"].channel == "phone"
    assert all(lead.source_system == "phone" and lead.status == "new" for lead in leads.values())
    assert calls["CAcanceledvk"].lead_id == leads["twilio:CAcanceledvk"].id
    assert calls["CAcanceledvk"].disposition == "missed" and calls["CAbusy"].disposition == "busy"

    # The known client's missed call: a call-back task for the owner, on the client's card.
    assert calls["CAmissedknown"].contact_id == contact_id(crm_url)
    assert [(t.kind, t.rep_id, t.contact_id) for t in tasks] == [
        ("call_back", KNOWN_OWNER_REP, contact_id(crm_url))
    ]
    outbound = calls["CAoutbound"]
    assert (outbound.direction, outbound.rep_id, outbound.contact_id) == ("outbound", 1, contact_id(crm_url))
    assert calls["CAforwarded"].rep_id == 2
    assert calls["CAfailed"].disposition == "failed"


def test_bad_credentials_fail_at_once_naming_the_setting(sqlite_store: str) -> None:
    api = TwilioApi(calls=scenario())
    with serve(api) as url:
        source = TwilioCalls(TWILIO_SID, "wrong-token", base_url=url, backoff_factor=0.01)
        with pytest.raises(CredentialError, match="HUB_TELEPHONY__TWILIO__AUTH_TOKEN"):
            sync_calls(sqlite_store, source, telephony_settings(), "RU", now=at(23))
    assert len(api.requests) == 1


def test_call_in_progress_holds_the_cursor_until_it_ends(crm_sqlite: str) -> None:
    live = twilio_call("CAlive", at(9, 30), frm=unknown(1), to=OFFICE_LINE, status="in-progress")
    done = twilio_call("CAdone", at(10, 0), frm=unknown(2), to=OFFICE_LINE)
    api = TwilioApi(calls=[live, done])
    settings = telephony_settings()
    with serve(api) as url:
        first = sync_calls(crm_sqlite, make_source(url, fetch_recordings=False), settings, "RU", now=at(11))
        with session_scope(crm_sqlite) as session:
            cursor = load_cursor(session, cursor_name("twilio"))
        api.calls[0] = twilio_call("CAlive", at(9, 30), frm=unknown(1), to=OFFICE_LINE, duration=200)
        second = sync_calls(crm_sqlite, make_source(url, fetch_recordings=False), settings, "RU", now=at(12))
    assert first.written == 1 and first.extra["calls_in_progress"] == 1
    assert cursor["high_water"] <= at(9, 30).isoformat()
    assert second.written == 1 and second.unchanged == 1
    with session_scope(crm_sqlite) as session:
        live_row = session.scalars(select(Activity).where(Activity.source_ref == "CAlive")).one()
    assert (live_row.disposition, live_row.talk_s) == ("answered", 200)


def test_malformed_records_go_to_quarantine_with_reasons(crm_sqlite: str) -> None:
    good = twilio_call("CAgood", at(9), frm=unknown(1), to=OFFICE_LINE)
    bad_status = dict(good, sid="CAbadstatus", status="exploded")
    bad_date = dict(good, sid="CAbaddate", start_time="yesterday at noon")
    negative = dict(good, sid="CAnegative", duration="-5")
    api = TwilioApi(calls=[good, bad_status, bad_date, negative, "not a call"])  # type: ignore[list-item]
    with serve(api) as url:
        stats = sync_calls(
            crm_sqlite, make_source(url, fetch_recordings=False), telephony_settings(), "RU", now=at(11)
        )
    assert stats.written == 1 and stats.quarantined == 4
    with session_scope(crm_sqlite) as session:
        reasons = dict(session.execute(select(QuarantineRecord.source_ref, QuarantineRecord.error)).all())
        assert session.scalar(select(func.count()).select_from(Activity)) == 1
    assert "status" in reasons["CAbadstatus"]
    assert "RFC 2822" in reasons["CAbaddate"]
    assert "duration" in reasons["CAnegative"]
    assert "expected a JSON object" in reasons[None]


def test_a_forwarded_leg_read_after_its_call_names_the_rep(crm_sqlite: str) -> None:
    parent = twilio_call("CAparent", at(9), frm=unknown(5), to=OFFICE_LINE, duration=90)
    leg = twilio_call(
        "CAleg", at(9) + timedelta(seconds=2), frm=OFFICE_LINE, to="+74951000001",
        direction="outbound-dial", parent="CAparent", duration=85,
    )  # fmt: skip
    api = TwilioApi(calls=[parent])
    settings = telephony_settings()
    with serve(api) as url:
        sync_calls(crm_sqlite, make_source(url, fetch_recordings=False), settings, "RU", now=at(10))
        api.calls.append(leg)  # Twilio listed the forwarded leg only later
        later = sync_calls(crm_sqlite, make_source(url, fetch_recordings=False), settings, "RU", now=at(11))
    assert later.extra["reps_from_legs"] == 1
    with session_scope(crm_sqlite) as session:
        rows = session.scalars(select(Activity)).all()
    assert [(a.source_ref, a.rep_id) for a in rows] == [("CAparent", 1)]
