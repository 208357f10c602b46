"""The signed webhook receiver: authentic posts are stored before 2xx, everything else refused."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from connectors.site import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook
from hub.ingest.site import sync_webhook_inbox
from hub.server import create_app
from hub.settings import load_settings
from hub.store.db import session_scope
from hub.store.models import Lead, QuarantineRecord, WebhookInbox

SECRET = "s3cret-for-tests"


@pytest.fixture
def client(sqlite_store: str, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_store)
    monkeypatch.setenv("HUB_SITE__WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("HUB_SITE__WEBHOOK_MAX_BODY_BYTES", "2048")
    return TestClient(create_app(load_settings()))


def _post(client: TestClient, body: bytes, secret: str = SECRET, ts: int | None = None, **headers: str):  # type: ignore[no-untyped-def]
    ts = int(time.time()) if ts is None else ts
    sig = {SIGNATURE_HEADER: sign_webhook(secret, ts, body), TIMESTAMP_HEADER: str(ts)}
    return client.post("/webhooks/site/leads", content=body, headers={**sig, **headers})


def _inbox(url: str) -> list[WebhookInbox]:
    with session_scope(url) as session:
        return list(session.scalars(select(WebhookInbox)))


LEAD = {"id": "w1", "name": "Анна", "phone": "+7 916 000-00-01", "submitted_at": "2026-11-20T10:00:00Z"}


def test_authentic_post_is_stored_then_becomes_a_lead(client: TestClient, sqlite_store: str) -> None:
    response = _post(client, json.dumps(LEAD).encode())
    assert response.status_code == 202 and response.json()["status"] == "accepted"
    assert len(_inbox(sqlite_store)) == 1
    stats = sync_webhook_inbox(sqlite_store, "RU")
    assert stats.written == 1
    with session_scope(sqlite_store) as session:
        assert session.scalars(select(Lead.phone_e164)).one() == "+79160000001"
    assert sync_webhook_inbox(sqlite_store, "RU").written == 0  # processed posts are not read again


def test_bad_signature_is_refused_and_nothing_stored(client: TestClient, sqlite_store: str) -> None:
    response = _post(client, json.dumps(LEAD).encode(), secret="guessed")
    assert response.status_code == 401 and "signature" in response.json()["error"]
    assert _inbox(sqlite_store) == []


def test_missing_signature_is_refused(client: TestClient, sqlite_store: str) -> None:
    response = client.post("/webhooks/site/leads", content=json.dumps(LEAD).encode())
    assert response.status_code == 401 and "missing" in response.json()["error"]
    assert _inbox(sqlite_store) == []


def test_body_signed_for_other_content_is_refused(client: TestClient, sqlite_store: str) -> None:
    ts = int(time.time())
    signature = sign_webhook(SECRET, ts, b'{"id": "w1"}')
    response = client.post(
        "/webhooks/site/leads",
        content=json.dumps(LEAD).encode(),
        headers={SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: str(ts)},
    )
    assert response.status_code == 401
    assert _inbox(sqlite_store) == []


def test_oversized_body_is_refused(client: TestClient, sqlite_store: str) -> None:
    body = json.dumps({**LEAD, "message": "x" * 5000}).encode()
    response = _post(client, body)
    assert response.status_code == 413
    assert _inbox(sqlite_store) == []


def test_stale_timestamp_and_replay_are_not_stored_twice(client: TestClient, sqlite_store: str) -> None:
    body = json.dumps(LEAD).encode()
    stale = _post(client, body, ts=int(time.time()) - 3600)
    assert stale.status_code == 401 and "replay window" in stale.json()["error"]
    ts = int(time.time())
    first = _post(client, body, ts=ts)
    replay = _post(client, body, ts=ts)
    assert first.json()["status"] == "accepted" and replay.json()["status"] == "duplicate"
    assert len(_inbox(sqlite_store)) == 1


def test_garbage_body_is_quarantined_not_lost(client: TestClient, sqlite_store: str) -> None:
    assert _post(client, b"{not json").status_code == 202
    assert _post(client, json.dumps([1, 2]).encode()).status_code == 202
    assert (
        _post(
            client,
            json.dumps({"leads": [LEAD, {"id": "w2", "submitted_at": "2026-11-20T10:00:00Z"}]}).encode(),
        ).status_code
        == 202
    )
    stats = sync_webhook_inbox(sqlite_store, "RU")
    assert stats.written == 1 and stats.quarantined == 1
    with session_scope(sqlite_store) as session:
        errors = sorted(q.error for q in session.scalars(select(QuarantineRecord)))
    assert len(errors) == 3
    assert any("not JSON" in e for e in errors) and any("phone or an email" in e for e in errors)


def test_server_without_secret_refuses_everything(sqlite_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_store)
    client = TestClient(create_app(load_settings()))
    response = _post(client, json.dumps(LEAD).encode(), secret="")
    assert response.status_code == 401 and "HUB_SITE__WEBHOOK_SECRET" in response.json()["error"]
