"""Webhook intake under a burst: `hub serve` (real uvicorn, one or more workers) receiving signed
lead posts from 16 keep-alive connections on loopback — each checked (size, HMAC, timestamp
window, records) and committed to the inbox before its 202, posts arriving together sharing one
transaction — beside a bare bulk insert of the same bodies into the same database.

    python -m bench.webhook_intake --rows 10000 [--workers 2] [--database-url postgresql://...]

The load comes from one asyncio client writing pre-signed requests by hand, so that the client's
own cost (a `requests` session costs about as much CPU per post as the server) does not hide
the server's; the same client against /healthz gives the HTTP floor of the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from bench.baseline import bare_bulk_insert
from connectors.site import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook
from hub.store import migrate
from hub.store.db import session_scope
from hub.store.models import WebhookInbox
from tests.serve.process import hub_serve

SECRET = "bench-webhook-secret"
CONNECTIONS = 16


def _bodies(rows: int) -> list[bytes]:
    return [
        json.dumps(
            {
                "id": f"b{n:08d}",
                "name": f"Клиент {n}",
                "phone": f"+7916{n % 10**7:07d}",
                "submitted_at": "2026-11-20T10:00:00Z",
                "utm_source": "yandex",
            },
            ensure_ascii=False,
        ).encode()
        for n in range(rows)
    ]


def _signed_requests(bodies: list[bytes], now: int) -> list[bytes]:
    requests = []
    for body in bodies:
        head = (
            "POST /webhooks/site/leads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"{SIGNATURE_HEADER}: {sign_webhook(SECRET, now, body)}\r\n{TIMESTAMP_HEADER}: {now}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


async def _answer_status(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def _send_all(port: int, requests: list[bytes], expected: int) -> int:
    """Send `requests` over CONNECTIONS keep-alive connections, one at a time on each; the
    number answered `expected`."""

    async def connection(share: list[bytes]) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        ok = 0
        for request in share:
            writer.write(request)
            ok += await _answer_status(reader) == expected
        writer.close()
        return ok

    shares = [requests[start::CONNECTIONS] for start in range(CONNECTIONS)]
    return sum(await asyncio.gather(*(connection(share) for share in shares)))


def _timed(port: int, requests: list[bytes], expected: int) -> tuple[int, float]:
    started = time.perf_counter()
    answered = asyncio.run(_send_all(port, requests, expected))
    return answered, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file in a temp folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate.upgrade(database_url)
        bodies = _bodies(args.rows)

        started = time.perf_counter()
        bare_bulk_insert(database_url, "bench_bare_webhook", ["body"], ({"body": b.decode()} for b in bodies))
        baseline_s = time.perf_counter() - started

        settings = {"HUB_DATABASE_URL": database_url, "HUB_SITE__WEBHOOK_SECRET": SECRET, "HUB_DATA_DIR": tmp}
        with hub_serve(settings, Path(tmp) / "serve.log", "--workers", str(args.workers)) as server:
            health = [b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"] * args.rows
            _, floor_s = _timed(server.port, health, 200)
            accepted, intake_s = _timed(server.port, _signed_requests(bodies, int(time.time())), 202)
        with session_scope(database_url) as session:
            stored = session.scalar(select(func.count()).select_from(WebhookInbox)) or 0
    print(
        f"rows: {args.rows}, accepted: {accepted}, stored: {stored}, lost: {args.rows - min(accepted, stored)}"
    )
    print(
        f"hub serve intake: {intake_s:.2f} s, {args.rows / intake_s:,.0f} posts/s "
        f"({CONNECTIONS} connections, {args.workers} worker(s))"
    )
    print(f"HTTP floor (/healthz, same client): {args.rows / floor_s:,.0f} answers/s")
    print(f"baseline bare bulk insert: {baseline_s:.3f} s, {args.rows / baseline_s:,.0f} rows/s")
    print(f"ratio (intake time / baseline time): {intake_s / baseline_s:.1f}x")


if __name__ == "__main__":
    main()
