"""The client-side rate limit (connectors/ratelimit.py) and HttpClient's handling of 429: every
attempt passes the bucket, and a refused write is waited out and sent again exactly once more."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from connectors.http import HttpClient
from connectors.ratelimit import TokenBucket
from tests.local_server import local_server


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_a_bucket_admits_its_burst_then_one_request_per_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(7, burst=7, clock=clock, sleep=clock.sleep)
    for _ in range(7 + 14):
        bucket.acquire()
    # 7 at once, then 14 more at 7 a second: two seconds of waiting in all.
    assert clock.sleeps[0] > 0 and len(clock.sleeps) == 14
    assert abs(clock.now - 2.0) < 1e-9
    assert abs(bucket.waited_s - 2.0) < 1e-9


def test_a_drained_bucket_makes_the_next_request_wait_a_whole_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, burst=50, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.drain()
    bucket.acquire()
    assert clock.sleeps == [0.5]


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        state = self.server.state  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with state["lock"]:
            state["posts"].append(json.loads(body))
            refuse = state["refuse"] > 0
            state["refuse"] -= 1
        status, payload = (429, b'{"title":"Too Many Requests"}') if refuse else (200, b'{"ok":true}')
        self.send_response(status)
        if refuse:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_a_write_refused_with_429_is_sent_again_and_counted() -> None:
    state: dict[str, Any] = {"lock": threading.Lock(), "posts": [], "refuse": 2}
    with local_server(Recorder, state=state) as server:
        client = HttpClient(
            server.url,
            source="test api",
            credential_setting="the token",
            backoff_factor=0.01,
            rate_limit=TokenBucket(1000, burst=10),
        )
        response = client.post_json("/api/v4/leads", [{"name": "x"}])
    assert response.json() == {"ok": True}
    assert len(state["posts"]) == 3  # two refusals, one accepted: the lead is sent, once
    assert (client.throttled, client.retries_used, client.requests_made) == (2, 2, 3)
