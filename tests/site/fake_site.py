"""A local HTTP server that speaks the site's documented leads API (connectors/site.py):
bearer auth, `since` + opaque cursor paging, and scripted failures per request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.local_server import local_server


class FakeSite:
    def __init__(
        self, leads: list[dict[str, Any]], token: str = "site-token", page_size_cap: int = 50
    ) -> None:
        self.leads = sorted(leads, key=lambda r: (r["submitted_at"], r["id"]))
        self.token = token
        self.page_size_cap = page_size_cap
        # Failures to inject, consumed one per request: "429", "500", "503", "timeout", "truncated", "html".
        self.faults: list[str] = []
        self.requests: list[str] = []
        self.url = ""

    def page(self, query: dict[str, list[str]]) -> dict[str, Any]:
        limit = min(int(query.get("limit", ["100"])[0]), self.page_size_cap)
        since = query.get("since", [""])[0]
        offset = int(query.get("cursor", ["0"])[0])
        matching = [r for r in self.leads if r["submitted_at"] >= since]
        chunk = matching[offset : offset + limit]
        more = offset + limit < len(matching)
        return {"leads": chunk, "next_cursor": str(offset + limit) if more else None}


class _Handler(BaseHTTPRequestHandler):
    site: FakeSite

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _send(
        self, status: int, body: bytes, ctype: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        site = self.server.site  # type: ignore[attr-defined]
        site.requests.append(self.path)
        parsed = urlparse(self.path)
        if parsed.path != "/api/v1/leads":
            self._send(404, b'{"error": "not found"}')
            return
        if self.headers.get("Authorization") != f"Bearer {site.token}":
            self._send(401, b'{"error": "invalid token"}')
            return
        fault = site.faults.pop(0) if site.faults else None
        if fault == "429":
            self._send(429, b'{"error": "slow down"}', headers={"Retry-After": "1"})
            return
        if fault in ("500", "502", "503"):
            self._send(int(fault), b"upstream trouble", ctype="text/plain")
            return
        if fault == "timeout":
            threading.Event().wait(1.5)  # longer than the client's timeout in the tests
        body = json.dumps(site.page(parse_qs(parsed.query)), ensure_ascii=False).encode()
        if fault == "truncated":
            body = body[: len(body) // 2]
        if fault == "html":
            self._send(200, b"<!DOCTYPE html><html><body>Login</body></html>", ctype="text/html")
            return
        self._send(200, body)


@contextmanager
def serve_site(site: FakeSite) -> Iterator[FakeSite]:
    with local_server(_Handler, site=site) as server:
        site.url = server.url
        yield site


def make_leads(count: int, start_hour: int = 8) -> list[dict[str, Any]]:
    leads = []
    for n in range(count):
        leads.append(
            {
                "id": f"L{n:04d}",
                "name": f"Клиент {n}",
                "phone": f"+7 (916) {n // 100 % 1000:03d}-{n // 10 % 100:02d}-{n % 100:02d}"
                if n % 3
                else None,
                "email": f"client{n}@example.ru" if n % 3 != 1 else None,
                "utm_source": "yandex" if n % 2 else None,
                "utm_medium": "cpc" if n % 2 else None,
                "submitted_at": f"2026-11-20T{start_hour + n // 60:02d}:{n % 60:02d}:00Z",
            }
        )
    return leads
