"""One `hub serve` (real uvicorn, one worker, SQLite store) shared by the tests of a module that
only post and read; tests that break the store or change options start their own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from connectors.site import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook
from hub.store import migrate
from hub.store.db import dispose_engines, make_engine
from tests.serve.process import HubServe, hub_serve

SECRET = "serve-test-secret"
WEBHOOK = "/webhooks/site/leads"


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('serve') / 'store.db'}"
    migrate.upgrade(url)
    yield url
    dispose_engines()


@pytest.fixture(scope="module")
def server(shared_store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServe]:
    folder = tmp_path_factory.mktemp("serve-run")
    settings = {
        "HUB_DATABASE_URL": shared_store,
        "HUB_SITE__WEBHOOK_SECRET": SECRET,
        "HUB_DATA_DIR": str(folder),
    }
    with hub_serve(settings, folder / "serve.log") as running:
        yield running


def signature_headers(body: bytes, ts: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return {SIGNATURE_HEADER: sign_webhook(secret, ts, body), TIMESTAMP_HEADER: str(ts)}


def inbox_bodies(database_url: str, marker: bytes) -> list[bytes]:
    """The stored bodies (raw bytes where the inbox keeps them) that contain `marker`."""
    with make_engine(database_url).connect() as conn:
        rows = conn.execute(text("SELECT * FROM hub_webhook_inbox")).mappings().all()
    bodies = []
    for row in rows:
        raw = row.get("raw")
        body = bytes(raw) if raw is not None else (row["body"] or "").encode()
        if marker in body:
            bodies.append(body)
    return bodies


def project_file(*parts: str) -> Path:
    return Path(__file__).resolve().parents[2].joinpath(*parts)
