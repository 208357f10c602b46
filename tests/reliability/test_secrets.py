"""No secret in logs, exceptions, Dagster metadata, the store or anything else a run writes:
the whole graph runs with known values in every secret setting (and a database password),
through a flaky site API, then everything it wrote is searched for them. Also: the webhook
secret never reaches a log line or an answer, and TLS is verified unless switched off."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from starlette.testclient import TestClient

from connectors.errors import PermanentSourceError
from connectors.http import HttpClient
from connectors.site import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook
from hub.server import create_app
from hub.settings import HubSettings, load_settings
from hub.store.models import Base
from tests.conftest import POSTGRES_AVAILABLE
from tests.faults.crash import build_demo_world
from tests.faults.http_proxy import FaultPlan, fault_proxy
from tests.local_server import local_server

PROJECT_DIR = Path(__file__).resolve().parents[2]
DB_PASSWORD = "pg-Pa55-Zq81xv"


def _secret_settings() -> list[str]:
    """Every secret the Dagster resources pass by name (assets/resources.py: secret("HUB_..."))."""
    source = (PROJECT_DIR / "assets" / "resources.py").read_text()
    return sorted(set(re.findall(r'secret\("(HUB_[A-Z0-9_]+)"', source)) - {"HUB_DATABASE_URL"})


def _known_values() -> dict[str, str]:
    values = {}
    for n, name in enumerate(_secret_settings()):
        token = f"Kn0wnSecret{n:02d}x{abs(hash(name)) % 10**8:08d}"
        # URL-shaped secrets (chat webhooks) point at a closed port: a delivery attempt fails.
        values[name] = f"http://127.0.0.1:9/hooks/{token}" if name.endswith("_URL") else token
    return values


def _store_text(database_url: str) -> str:
    engine = create_engine(database_url)
    parts = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.append(repr(tuple(row)))
    engine.dispose()
    return "\n".join(parts)


def _files_containing(root: Path, needle: str) -> list[str]:
    hits = []
    raw = needle.encode()
    for path in root.rglob("*"):
        if path.is_file() and raw in path.read_bytes():
            hits.append(str(path.relative_to(root)))
    return hits


@pytest.fixture
def pg_with_password(postgres_url: str) -> str:
    """The test PostgreSQL URL with a password in it (the test server trusts local logins,
    so the password is carried everywhere the URL goes without being needed)."""
    return postgres_url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_AVAILABLE, reason="PostgreSQL is not reachable")
def test_a_run_with_known_secrets_writes_none_of_them(pg_with_password: str) -> None:
    # A short folder keeps the demo's paths readable in failures.
    with tempfile.TemporaryDirectory(prefix="hubs") as short:
        _run_with_known_secrets(Path(short), pg_with_password)


def _run_with_known_secrets(tmp_path: Path, pg_with_password: str) -> None:
    from tests.site.fake_site import FakeSite, make_leads, serve_site

    secrets = _known_values()
    api_token = secrets["HUB_SITE__API_TOKEN"]
    site = FakeSite(make_leads(120), token=api_token)
    with serve_site(site), fault_proxy(site.url, FaultPlan(rate=0.25, seed=5, records_key="leads")) as proxy:
        env = {
            **secrets,
            "HUB_DATABASE_URL": pg_with_password,
            "HUB_ROUTING__REQUIRE_SHIFT": "false",
            # The site read from its (flaky) API with the token, not from the demo's recording.
            "HUB_SITE__BASE_URL": proxy.url,
            "HUB_SITE__SNAPSHOT_FILE": "",
            "HUB_SITE__TIMEOUT_S": "0.5",
            "HUB_SITE__WEBHOOK_SECRET": secrets.get("HUB_SITE__WEBHOOK_SECRET", "Kn0wnWebhookSecret"),
        }
        world = build_demo_world(tmp_path, date(2026, 11, 20), env)
        with world.runner() as runner:
            folder = tmp_path / "run"
            (folder / "dagster_home").mkdir(parents=True)
            outcome = runner.run_graph(pg_with_password, folder)
        assert proxy.log.requests > 0 and sum(proxy.log.faults.values()) > 0  # the token was used
    assert outcome.returncode == 0, outcome.output
    store = _store_text(pg_with_password)
    assert "Клиент 1" in store  # the site's leads arrived through the proxy
    needles = {**secrets, "database password": DB_PASSWORD}
    leaks = {
        name: _files_containing(tmp_path, value) + (["the store"] if value in store else [])
        for name, value in needles.items()
    }
    assert {name: where for name, where in leaks.items() if where} == {}
    assert len(needles) >= 5


def test_the_webhook_secret_never_reaches_logs_or_answers(
    sqlite_store: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "Wh-Kn0wn-S3cret-1234"
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_store)
    monkeypatch.setenv("HUB_SITE__WEBHOOK_SECRET", secret)
    client = TestClient(create_app(load_settings()))
    body = json.dumps({"id": "w1", "phone": "+79161234567", "submitted_at": "2026-11-20T10:00:00Z"}).encode()
    now = int(time.time())
    answers = []
    caplog.set_level(logging.DEBUG)
    for ts, key in [
        (now, secret),
        (now, "wrong"),
        (now - 3600, secret),
        (now + 3600, secret),
        (now, secret[:-1]),
    ]:
        headers = {SIGNATURE_HEADER: sign_webhook(key, ts, body), TIMESTAMP_HEADER: str(ts)}
        answers.append(client.post("/webhooks/site/leads", content=body, headers=headers))
    assert [a.status_code for a in answers] == [202, 401, 401, 401, 401]
    everything = caplog.text + "".join(a.text for a in answers) + _store_text(sqlite_store)
    assert secret not in everything and secret[:-1] not in everything
    assert "outside the 300s replay window" in answers[2].text and "replay window" in answers[3].text


def test_a_replayed_post_is_stored_once_and_a_resigned_old_one_refused(
    sqlite_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.store.db import session_scope
    from hub.store.models import WebhookInbox

    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_store)
    monkeypatch.setenv("HUB_SITE__WEBHOOK_SECRET", "s")
    client = TestClient(create_app(load_settings()))
    body = b'{"id": "w1", "phone": "+79161234567", "submitted_at": "2026-11-20T10:00:00Z"}'
    ts = int(time.time())
    headers = {SIGNATURE_HEADER: sign_webhook("s", ts, body), TIMESTAMP_HEADER: str(ts)}
    statuses = [
        client.post("/webhooks/site/leads", content=body, headers=headers).json()["status"] for _ in range(3)
    ]
    assert statuses == ["accepted", "duplicate", "duplicate"]
    # The same signature with the timestamp moved into the window: the HMAC covers the timestamp.
    moved = {**headers, TIMESTAMP_HEADER: str(ts + 1)}
    assert client.post("/webhooks/site/leads", content=body, headers=moved).status_code == 401
    with session_scope(sqlite_store) as session:
        assert len(session.scalars(select(WebhookInbox)).all()) == 1


def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(
    sqlite_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_store)
    monkeypatch.setenv("HUB_SITE__WEBHOOK_SECRET", "s")
    monkeypatch.setenv("HUB_SITE__WEBHOOK_MAX_BODY_BYTES", "1024")
    client = TestClient(create_app(load_settings()))
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(1000):  # 1 MB in 1 KB chunks, no Content-Length
            sent.append(1)
            yield b"x" * 1024

    ts = int(time.time())
    response = client.post(
        "/webhooks/site/leads",
        content=chunks(),
        headers={SIGNATURE_HEADER: "sha256=0", TIMESTAMP_HEADER: str(ts)},
    )
    assert response.status_code == 413


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTPS server with a self-signed certificate (not trusted by default)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with local_server(Handler, tls=(cert, key)) as server:
        yield server.url


def test_tls_is_verified_by_default_and_an_untrusted_certificate_fails_at_once(tls_server: str) -> None:
    client = HttpClient(tls_server, source="test", credential_setting="X")
    with pytest.raises(PermanentSourceError, match=r"self-signed certificate.*verify_tls"):
        client.get_json("/")
    assert client.retries_used == 0 and client.requests_made == 1  # not retried with backoff


def test_tls_off_works_only_with_a_warning(tls_server: str, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.warns(UserWarning, match="TLS verification is off for test"):
        client = HttpClient(tls_server, source="test", credential_setting="X", verify_tls=False)
    assert client.get_json("/") == {"ok": True}
    assert "TLS verification is disabled for source test" in caplog.text


def test_every_source_verifies_tls_unless_its_setting_says_otherwise() -> None:
    sections = {name: field.annotation for name, field in HubSettings.model_fields.items()}
    defaults = {
        f"{name}.{field_name}": field.default
        for name, section in sections.items()
        if hasattr(section, "model_fields")
        for field_name, field in section.model_fields.items()
        if "verify" in field_name or "tls" in field_name
    }
    assert defaults and all(value is True for value in defaults.values()), defaults
