"""A local 1C:Enterprise standard OData server: $metadata, JSON entity sets with $filter on
Date/Posted/DeletionMark, $top/$skip paging, HTTP Basic, and the faults 1C really shows (an HTML
login page with status 200, 5xx, 429 with Retry-After, a cut-off body, an answer too slow)."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from hub.demo.accounting import render_metadata
from tests.local_server import local_server

ROOT = "/acc/odata/standard.odata/"


@dataclass
class FakeOneC:
    data: dict[str, list[dict[str, Any]]]
    user: str = "odata"
    password: str = "secret"
    metadata_fields: dict[str, tuple[str, ...]] | None = None
    html_login: bool = False
    # Faults served before the real answers, per request: "503", "429", "truncated", "slow".
    faults: list[str] = field(default_factory=list)
    # Rows of the previous page served again at the head of each later page (offset paging
    # while documents are being posted): such a page holds more rows than $top.
    repeat_rows: int = 0
    requests: list[str] = field(default_factory=list)
    url: str = ""


def _matches(row: dict[str, Any], filter_expr: str) -> bool:
    since = filter_expr.split("'")[1]
    return str(row["Date"]) >= since and row.get("Posted") is True and row.get("DeletionMark") is False


def _handler(fake: FakeOneC) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            # The client may have given up waiting (the timeout fault).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)

        def do_GET(self) -> None:
            fake.requests.append(unquote(self.path))
            expected = "Basic " + base64.b64encode(f"{fake.user}:{fake.password}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._send(401, b"Unauthorized", "text/plain", {"WWW-Authenticate": 'Basic realm="1C"'})
                return
            if fake.html_login:
                page = "<!DOCTYPE html><html><body>Вход в 1С:Предприятие</body></html>".encode()
                self._send(200, page, "text/html; charset=utf-8")
                return
            if fake.faults:
                fault = fake.faults.pop(0)
                if fault == "503":
                    self._send(503, b"Service Unavailable", "text/plain")
                elif fault == "slow":
                    time.sleep(1.0)  # longer than the client's timeout: the client has given up
                    self._send(503, b"too late", "text/plain")
                elif fault == "429":
                    self._send(429, b"Too Many Requests", "text/plain", {"Retry-After": "0"})
                else:
                    self._send(200, b'{"odata.metadata": "x", "value": [{"Ref_Key": "', "application/json")
                return
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            if not path.startswith(ROOT):
                self._send(404, b"not found", "text/plain")
                return
            entity = path[len(ROOT) :]
            if entity == "$metadata":
                xml = render_metadata(fake.metadata_fields).encode()
                self._send(200, xml, "application/xml; charset=utf-8")
                return
            query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            if "$inlinecount" in query:
                # What 1C does: paging options are silently ignored.
                query.pop("$top", None)
                query.pop("$skip", None)
            if entity not in fake.data:
                error = '<?xml version="1.0"?><m:error><m:message>Not found</m:message></m:error>'
                self._send(400, error.encode(), "application/xml")
                return
            rows = fake.data[entity]
            if "$filter" in query:
                rows = [r for r in rows if _matches(r, query["$filter"])]
            order = query.get("$orderby", "Ref_Key").split(",")
            rows = sorted(rows, key=lambda r: tuple(str(r.get(k.strip().split(" ")[0], "")) for k in order))
            skip = int(query.get("$skip", 0))
            top = int(query.get("$top", len(rows) or 1))
            start = max(0, skip - fake.repeat_rows)
            body = {"odata.metadata": f"{fake.url}$metadata#{entity}", "value": rows[start : skip + top]}
            self._send(200, json.dumps(body, ensure_ascii=False).encode(), "application/json;charset=utf-8")

    return Handler


@contextmanager
def serve(fake: FakeOneC) -> Iterator[FakeOneC]:
    with local_server(_handler(fake)) as server:
        fake.url = f"{server.url}{ROOT}"
        yield fake
