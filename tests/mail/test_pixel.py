"""The open-tracking pixel through `hub serve`'s app: machine fetches kept with their reason,
a person's fetch recorded as an open (first one: task and alert), unknown tokens told nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from starlette.testclient import TestClient

from hub.ingest.mail import record_sent_email, tracking_token
from hub.ingest.mail_pixel import GIF, machine_reason, pixel_url
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
    client = TestClient(create_app(settings))
    token = _sent(store_url, "<px-1@sales.example.ru>", datetime.now(UTC) - timedelta(hours=1))
    fresh = _sent(store_url, "<px-2@sales.example.ru>", datetime.now(UTC))
    assert token != fresh and len(token) >= 32
    url = pixel_url("", token)

    for agent in (
        "Mozilla/5.0 (Windows NT 5.1) via ggpht.com GoogleImageProxy",
        "Mozilla/5.0",
        "Barracuda Sentinel",
    ):
        response = client.get(url, headers={"User-Agent": agent})
        assert response.status_code == 200 and response.content == GIF
    client.get(pixel_url("", fresh), headers={"User-Agent": THUNDERBIRD})
    assert (
        client.get(url, headers={"User-Agent": THUNDERBIRD}).headers["cache-control"].startswith("no-store")
    )
    client.get(url, headers={"User-Agent": THUNDERBIRD})
    unknown = client.get(pixel_url("", "x" * 32), headers={"User-Agent": THUNDERBIRD})
    assert unknown.status_code == 200 and unknown.content == GIF

    with session_scope(store_url) as session:
        hits = session.execute(
            select(MailPixelHit.message_id, MailPixelHit.machine_reason).order_by(MailPixelHit.id)
        ).all()
        opened = session.scalars(select(Activity).where(Activity.kind == "email_opened")).all()
        tasks = session.scalars(select(Task)).all()
        alerts = session.scalars(select(AlertOutbox)).all()
    reasons = [reason for _, reason in hits]
    assert reasons[0] is not None and reasons[0].startswith("image proxy")
    assert reasons[1] is not None and "Privacy Protection" in reasons[1]
    assert reasons[2] is not None and reasons[2].startswith("security scanner")
    assert reasons[3] is not None and "after sending" in reasons[3]
    assert reasons[4:] == [None, None]
    assert len(hits) == 6  # the unknown token left no trace
    assert [(a.message_id, a.count, a.details["first_via"]) for a in opened] == [
        ("<px-1@sales.example.ru>", 2, "pixel")
    ]
    assert [t.kind for t in tasks] == ["call_now"]
    assert len(alerts) == 1


def test_machine_reason_rules() -> None:
    sent = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    later = sent + timedelta(minutes=5)
    assert machine_reason(THUNDERBIRD, "17.58.1.2", later, sent, 10) is not None
    assert machine_reason(THUNDERBIRD, "203.0.113.5", later, sent, 10) is None
    assert machine_reason("", "203.0.113.5", later, sent, 10) == "no user agent: not a mail client"
    assert machine_reason(THUNDERBIRD, "203.0.113.5", sent + timedelta(seconds=3), sent, 10) is not None
