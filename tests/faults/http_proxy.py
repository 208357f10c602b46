"""A fault-injecting HTTP proxy for any HTTP source's replay server: in front of the
upstream it answers a share of requests with 429 (Retry-After), 500/502/503, a stalled
answer (client timeout), a reset connection, a truncated or invalid JSON body, or a page
whose records are reordered or repeated from the previous page. Seeded, so reproducible."""

from __future__ import annotations

import http.client
import json
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.local_server import LocalServer, local_server

# Faults that stop the request before the upstream sees it.
EARLY_FAULTS = ("429", "500", "502", "503", "reset")
# Faults applied to the upstream's answer.
BODY_FAULTS = ("timeout", "truncated", "cut_connection", "invalid_json", "reorder", "repeat")
ALL_FAULTS = EARLY_FAULTS + BODY_FAULTS


@dataclass
class FaultPlan:
    """Which faults to inject and how often. `rate` is the share of requests hit: one request
    at a random place in every window of 1/rate requests, so the rate holds on short runs
    too. Kinds are dealt from a shuffled deck: every kind occurs once before any twice."""

    rate: float = 0.25
    kinds: tuple[str, ...] = ALL_FAULTS
    seed: int = 0
    # Key of the records list in a JSON page ("leads", "calls", "value"...): reorder/repeat act on it.
    records_key: str | None = None
    retry_after_s: str = "0"
    stall_s: float = 0.6
    _rng: random.Random = field(init=False, repr=False)
    _deck: list[str] = field(init=False, repr=False, default_factory=list)
    _window: list[bool] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def draw(self) -> str | None:
        if not self.kinds or self.rate <= 0:
            return None
        if not self._window:
            size = max(1, round(1 / min(1.0, self.rate)))
            hit = self._rng.randrange(size)
            self._window = [i == hit for i in range(size)]
        if not self._window.pop():
            return None
        if not self._deck:
            self._deck = list(self.kinds)
            self._rng.shuffle(self._deck)
        return self._deck.pop()

    def shuffle(self, items: list[Any]) -> None:
        self._rng.shuffle(items)


@dataclass
class ProxyLog:
    requests: int = 0
    faults: Counter[str] = field(default_factory=Counter)


class FaultProxy:
    """`with FaultProxy(upstream_url, plan) as proxy:` point the client at `proxy.url`."""

    def __init__(self, upstream_url: str, plan: FaultPlan) -> None:
        self.upstream = urlsplit(upstream_url)
        self.plan = plan
        self.log = ProxyLog()
        self.url = ""
        self._lock = threading.Lock()
        self._previous_records: list[Any] = []
        self._serving: AbstractContextManager[LocalServer] | None = None

    def __enter__(self) -> FaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

        self._serving = local_server(Handler)
        server = self._serving.__enter__()
        # The upstream's base path is kept: the client is pointed at the proxy instead.
        self.url = f"{server.url}{self.upstream.path.rstrip('/')}"
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._serving is not None
        self._serving.__exit__(*exc)

    # ------------------------------------------------------------------ request handling

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:  # one request at a time keeps the seeded plan reproducible
            self.log.requests += 1
            fault = self.plan.draw()
            if fault:
                self.log.faults[fault] += 1
            length = int(handler.headers.get("Content-Length") or 0)
            body_in = handler.rfile.read(length) if length else b""
            if fault in ("429", "500", "502", "503"):
                headers = {"Retry-After": self.plan.retry_after_s} if fault == "429" else {}
                _send(handler, int(fault), b"upstream trouble", "text/plain", headers)
                return
            if fault == "reset":
                _reset(handler)
                return
            status, ctype, body = self._forward(handler, body_in)
            if status == 200 and fault in ("reorder", "repeat"):
                body = self._mangle_records(body, fault)
            if status == 200:
                self._note_served(body)
        # Outside the lock: the client's retry must not queue behind the stalled answer.
        if fault == "timeout":
            threading.Event().wait(self.plan.stall_s)
        elif fault == "truncated":
            # Announce the whole body, send half, close: the client reads an incomplete body.
            _send_partial(handler, status, body, ctype)
            return
        elif fault == "cut_connection":
            body = body[: max(1, len(body) // 3)]  # a proxy that cut the body but fixed the length
        elif fault == "invalid_json":
            body = b'{"error": unterminated, ' + body[:20]
        _send(handler, status, body, ctype)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(handler.command, handler.path, body=body or None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        ctype = response.getheader("Content-Type", "application/json")
        conn.close()
        return response.status, ctype, data

    def _mangle_records(self, body: bytes, fault: str) -> bytes:
        key = self.plan.records_key
        try:
            page = json.loads(body)
        except ValueError:
            return body
        if not key or not isinstance(page, dict) or not isinstance(page.get(key), list):
            return body
        records = list(page[key])
        if fault == "reorder":
            self.plan.shuffle(records)
        else:
            # Offset paging while rows are inserted upstream: the previous page's tail comes again.
            records = self._previous_records[-3:] + records
        page[key] = records
        return json.dumps(page, ensure_ascii=False).encode()

    def _note_served(self, body: bytes) -> None:
        key = self.plan.records_key
        if not key:
            return
        try:
            page = json.loads(body)
        except ValueError:
            return
        if isinstance(page, dict) and isinstance(page.get(key), list):
            self._previous_records = list(page[key])


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    ctype: str,
    headers: dict[str, str] | None = None,
) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
    except OSError:
        pass  # the client gave up (timeout): nothing to answer


def _send_partial(handler: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        handler.wfile.flush()
    except OSError:
        pass
    handler.close_connection = True
    _reset(handler)


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Close with RST (SO_LINGER 0), as a crashed upstream or a killed proxy does."""
    sock: socket.socket = handler.connection
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
    handler.close_connection = True


@contextmanager
def fault_proxy(upstream_url: str, plan: FaultPlan) -> Iterator[FaultProxy]:
    with FaultProxy(upstream_url, plan) as proxy:
        yield proxy
