"""Zadarma's PBX statistics against a local server that checks the documented signature, the
one-month limit and skip/limit paging: legs become calls, each call arrives once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from connectors.errors import CredentialError, TransientSourceError
from connectors.zadarma import ZadarmaCalls
from hub.ingest.telephony import sync_calls
from hub.store.db import session_scope
from hub.store.models import Activity, Lead, Task
from tests.telephony.conftest import KNOWN_CLIENT, TRACKING_YANDEX, at, telephony_settings
from tests.telephony.servers import ZADARMA_KEY, ZADARMA_SECRET, ZadarmaApi, serve, zadarma_leg

MOSCOW_9AM = datetime(2026, 3, 5, 9, 0)  # local time of the account (UTC+3)


def legs() -> list[dict]:
    out = []
    for n in range(1, 13):
        start = MOSCOW_9AM + timedelta(hours=n * 7)  # spread over four days: several windows
        out.append(
            zadarma_leg(
                f"in_{n:04d}",
                f"{n}.1",
                start,
                clid=f"7926{n:07d}",
                destination=TRACKING_YANDEX.lstrip("+"),
                sip="101",
                seconds=40 + n,
                recorded=n % 3 == 0,
            )
        )
    # A queue call: ext 101 did not answer, ext 102 did; one call, answered by 102.
    queue_start = MOSCOW_9AM + timedelta(minutes=30)
    out.append(
        zadarma_leg("in_queue", "q.1", queue_start, clid="79160000001", destination="74950000000", sip="101",
                    disposition="no answer", seconds=0)
    )  # fmt: skip
    out.append(
        zadarma_leg("in_queue", "q.2", queue_start + timedelta(seconds=20), clid="79160000001",
                    destination="74950000000", sip="102", seconds=95)
    )  # fmt: skip
    # A known client rang and gave up.
    out.append(
        zadarma_leg("in_known", "k.1", MOSCOW_9AM + timedelta(hours=1), clid=KNOWN_CLIENT.lstrip("+"),
                    destination="74950000000", sip="102", disposition="cancel", seconds=0)
    )  # fmt: skip
    out.append(
        zadarma_leg("out_0001", "o.1", MOSCOW_9AM + timedelta(hours=2), clid="101",
                    destination=KNOWN_CLIENT.lstrip("+"), sip="101", seconds=300)
    )  # fmt: skip
    out.append({"call_id": "broken", "pbx_call_id": "in_broken", "callstart": "2026-03-05 10:01:00",
                "disposition": "answered", "seconds": -5})  # fmt: skip
    return out


def source(url: str, secret: str = ZADARMA_SECRET, **options: object) -> ZadarmaCalls:
    return ZadarmaCalls(
        ZADARMA_KEY, secret, base_url=url, page_size=5, timeout_s=0.5, backoff_factor=0.01, **options
    )


def test_signed_paged_windows_of_legs_arrive_as_calls_once(crm_url: str) -> None:
    api = ZadarmaApi(legs=legs(), faults=["503", "truncate"])
    settings = telephony_settings()
    since = at(0, day=5)
    with serve(api) as url:
        stats = sync_calls(crm_url, source(url), settings, "RU", since=since, until=at(0, day=10))
        again = sync_calls(crm_url, source(url), settings, "RU", since=since, until=at(0, day=10))
    assert stats.written == 15 and stats.quarantined == 1
    assert again.written == 0 and again.unchanged == 15
    assert all("start=" in r and "limit=5" in r for r in api.requests if r.startswith("/v1/statistics"))
    with session_scope(crm_url) as session:
        calls = {a.source_ref: a for a in session.scalars(select(Activity))}
        leads = session.scalars(select(Lead)).all()
        tasks = session.scalars(select(Task)).all()
    assert len(calls) == 15
    queue = calls["in_queue"]
    assert (queue.disposition, queue.rep_id, queue.talk_s, queue.details["legs"]) == ("answered", 2, 95, 2)
    assert queue.occurred_at.replace(tzinfo=None) == datetime(2026, 3, 5, 6, 30)  # 09:30 Moscow in UTC
    assert calls["in_0003"].recording_url.endswith("/in_0003.mp3")
    assert calls["in_0001"].recording_url is None and calls["in_0001"].channel == "yandex / cpc"
    assert calls["out_0001"].direction == "outbound" and calls["out_0001"].to_addr == KNOWN_CLIENT
    assert calls["in_known"].disposition == "missed"
    assert len(leads) == 13 and {lead.channel for lead in leads} == {"yandex / cpc", "phone"}
    assert [t.kind for t in tasks] == ["call_back"]


def test_wrong_secret_fails_at_once(sqlite_store: str) -> None:
    api = ZadarmaApi(legs=legs())
    with serve(api) as url, pytest.raises(CredentialError, match="HUB_TELEPHONY__ZADARMA__API_SECRET"):
        sync_calls(sqlite_store, source(url, secret="wrong"), telephony_settings(), "RU", since=at(0))
    assert len(api.requests) == 1


def test_an_api_that_ignores_skip_is_detected_not_looped(sqlite_store: str) -> None:
    api = ZadarmaApi(legs=legs(), ignore_skip=True)
    with serve(api) as url, pytest.raises(TransientSourceError, match="ignores 'skip'"):
        sync_calls(
            sqlite_store,
            source(url, window=timedelta(days=7)),
            telephony_settings(),
            "RU",
            since=at(0, day=5),
            until=at(0, day=10),
        )


def test_windows_never_exceed_the_month_the_api_allows(sqlite_store: str) -> None:
    api = ZadarmaApi(legs=legs())
    with serve(api) as url:
        stats = sync_calls(
            sqlite_store,
            source(url, window=timedelta(days=90)),
            telephony_settings(),
            "RU",
            since=at(0, day=1) - timedelta(days=60),
            until=at(0, day=10),
        )
    assert stats.written == 15 and stats.quarantined == 1
    windows = [r for r in api.requests if r.startswith("/v1/statistics") and "skip=0" in r]
    assert len(windows) == 3  # 69 days in windows of 28 days


def test_a_call_across_a_window_boundary_stays_one_call(sqlite_store: str) -> None:
    boundary = datetime(2026, 3, 6, 3, 0)  # windows start at 00:00 UTC, 03:00 in Moscow
    queue = [
        zadarma_leg("in_edge", "e.1", boundary - timedelta(minutes=2), clid="79160000002",
                    destination="74950000000", sip="101", disposition="no answer", seconds=0),
        zadarma_leg("in_edge", "e.2", boundary + timedelta(seconds=30), clid="79160000002",
                    destination="74950000000", sip="102", seconds=120),
    ]  # fmt: skip
    api = ZadarmaApi(legs=legs() + queue)
    with serve(api) as url:
        stats = sync_calls(
            sqlite_store, source(url), telephony_settings(), "RU", since=at(0, day=5), until=at(0, day=10)
        )
    assert stats.written == 16
    with session_scope(sqlite_store) as session:
        edge = session.scalars(select(Activity).where(Activity.source_ref == "in_edge")).one()
        leads = session.scalars(select(Lead).where(Lead.phone_e164 == "+79160000002")).all()
    assert (edge.disposition, edge.talk_s, edge.details["legs"]) == ("answered", 120, 2)
    assert len(leads) == 1 and leads[0].message.startswith("Inbound call")
