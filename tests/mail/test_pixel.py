"""The open-tracking pixel through `hub serve`'s app: fetches counted per email with the last
machine reason, a person's fetch recorded as an open (first one: task and alert), unknown
tokens told nothing and leaving no trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from starlette.testclient import TestClient

from hub.ingest.mail import record_sent_email, tracking_token
from hub.ingest.mail_pixel import GIF, machine_reason, pixel_url, record_pixel_fetch
from hub.server import create_app
from hub.settings import HubSettings, MailSettings
from hub.store.db import session_scope
from hub.store.models import Activity, AlertOutbox, MailPixelHit, Task
from schemas.mail import SentEmail

THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0"


def _sent(database_url: str, message_id: str, sent_at: datetime) -> str:
    with session_scope(database_url) as session:
        record_sent_email(
            session,
            SentEmail(
                message_id=message_id,
                from_addr="rep1@sales.example.ru",
                to_addrs=["client@client.example.ru"],
                subject="Offer",
                sent_at=sent_at,
            ),
        )
        token = tracking_token(session, message_id)
    assert token is not None
    return token


def test_pixel_separates_machines_from_people(crm: dict[str, int], store_url: str) -> None:
    settings = HubSettings(database_url=store_url, mail=MailSettings(pixel_min_seconds_after_send=10))
    token = _sent(store_url, "<px-1@sales.example.ru>", datetime.now(UTC) - timedelta(hours=1))
    fresh = _sent(store_url, "<px-2@sales.example.ru>", datetime.now(UTC))
    assert token != fresh and len(token) >= 32
    url = pixel_url("", token)

    # Leaving the block shuts the app down, which records every fetch still waiting.
    with TestClient(create_app(settings)) as client:
        for agent in (
            "Mozilla/5.0 (Windows NT 5.1) via ggpht.com GoogleImageProxy",
            "Mozilla/5.0",
            "Barracuda Sentinel",
        ):
            response = client.get(url, headers={"User-Agent": agent})
            assert response.status_code == 200 and response.content == GIF
        client.get(pixel_url("", fresh), headers={"User-Agent": THUNDERBIRD})
        assert (
            client.get(url, headers={"User-Agent": THUNDERBIRD})
            .headers["cache-control"]
            .startswith("no-store")
        )
        client.get(url, headers={"User-Agent": THUNDERBIRD})
        unknown = client.get(pixel_url("", "x" * 32), headers={"User-Agent": THUNDERBIRD})
        assert unknown.status_code == 200 and unknown.content == GIF

    with session_scope(store_url) as session:
        hits = {
            h.message_id: (h.fetches, h.machine_fetches, h.machine_reason)
            for h in session.scalars(select(MailPixelHit))
        }
        opened = session.scalars(select(Activity).where(Activity.kind == "email_opened")).all()
        tasks = session.scalars(select(Task)).all()
        alerts = session.scalars(select(AlertOutbox)).all()
    # One row per email, whatever the number of fetches; the unknown token left no trace.
    assert set(hits) == {"<px-1@sales.example.ru>", "<px-2@sales.example.ru>"}
    fetches, machine, reason = hits["<px-1@sales.example.ru>"]
    assert (fetches, machine) == (5, 3) and reason is not None and reason.startswith("security scanner")
    fetches, machine, reason = hits["<px-2@sales.example.ru>"]
    assert (fetches, machine) == (1, 1) and reason is not None and "after sending" in reason
    assert [(a.message_id, a.count, a.details["first_via"]) for a in opened] == [
        ("<px-1@sales.example.ru>", 2, "pixel")
    ]
    assert [t.kind for t in tasks] == ["call_now"]
    assert len(alerts) == 1


def test_each_machine_reason_is_recorded_as_the_last_one_when_it_comes(
    crm: dict[str, int], store_url: str
) -> None:
    mail = MailSettings(pixel_min_seconds_after_send=10)
    token = _sent(store_url, "<px-3@sales.example.ru>", datetime.now(UTC) - timedelta(hours=1))
    reasons = []
    for agent in ("Mozilla/5.0 (Windows NT 5.1) via ggpht.com GoogleImageProxy", "Mozilla/5.0", THUNDERBIRD):
        assert record_pixel_fetch(store_url, token, agent, "203.0.113.5", mail) in ("machine", "first_open")
        with session_scope(store_url) as session:
            (hit,) = session.scalars(select(MailPixelHit))
            reasons.append((hit.fetches, hit.machine_reason))
    assert reasons[0][0] == 1 and reasons[0][1] is not None and reasons[0][1].startswith("image proxy")
    assert reasons[1][0] == 2 and reasons[1][1] is not None and "Privacy Protection" in reasons[1][1]
    assert reasons[2] == (3, reasons[1][1])  # a person's fetch keeps the last machine reason
    assert record_pixel_fetch(store_url, "y" * 32, THUNDERBIRD, None, mail) == "unknown_token"


def test_machine_reason_rules() -> None:
    sent = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    later = sent + timedelta(minutes=5)
    assert machine_reason(THUNDERBIRD, "17.58.1.2", later, sent, 10) is not None
    assert machine_reason(THUNDERBIRD, "203.0.113.5", later, sent, 10) is None
    assert machine_reason("", "203.0.113.5", later, sent, 10) == "no user agent: not a mail client"
    assert machine_reason(THUNDERBIRD, "203.0.113.5", sent + timedelta(seconds=3), sent, 10) is not None
