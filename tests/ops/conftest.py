"""Fixtures of the ops tests: a real SMTP sink (aiosmtpd), a local HTTP server that records
posts and answers as told, and a fresh PostgreSQL database for Dagster's own storage."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, text

from tests.conftest import POSTGRES_AVAILABLE, POSTGRES_URL
from tests.local_server import free_port, local_server


@dataclass
class SmtpSink:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@dataclass
class HttpRecorder:
    """Answers each request with the next (status, body) of `script` (then the last one again)
    and records what was posted."""

    url: str
    script: list[tuple[int, Any]]
    posts: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def http_recorder() -> Iterator[HttpRecorder]:
    port = free_port()
    recorder = HttpRecorder(url=f"http://127.0.0.1:{port}", script=[(200, {"ok": True})])
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            with lock:
                recorder.paths.append(self.path)
                status, body = recorder.script[0] if len(recorder.script) == 1 else recorder.script.pop(0)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            recorder.posts.append(json.loads(self.rfile.read(length) or b"null"))
            self._answer()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with local_server(Handler, port=port):
        yield recorder


@pytest.fixture
def dagster_database() -> Iterator[str]:
    """A fresh PostgreSQL database for Dagster's own storage, dropped afterwards."""
    if not POSTGRES_AVAILABLE:
        pytest.skip("PostgreSQL is not reachable")
    name = f"dagster_ops_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
