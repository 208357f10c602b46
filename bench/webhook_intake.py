"""Webhook intake under a burst: `hub serve` (uvicorn, one worker) receiving signed lead posts
from 16 connections on loopback — each checked (HMAC, timestamp window, size) and stored in
the inbox before its 202 — beside a bare bulk insert of the same bodies into the same database.

    python -m bench.webhook_intake --rows 10000 [--database-url postgresql://...]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.baseline import bare_bulk_insert, bench_arguments
from connectors.site import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_webhook
from hub.store import migrate

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(database_url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        {"HUB_DATABASE_URL": database_url, "HUB_SITE__WEBHOOK_SECRET": SECRET, "HUB_DATA_DIR": str(data_dir)}
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return proc, url
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("hub serve did not start")


def _post_all(url: str, bodies: list[bytes]) -> int:
    now = int(time.time())

    def post_share(start: int) -> int:
        session = requests.Session()
        accepted = 0
        for body in bodies[start::CONNECTIONS]:
            headers = {SIGNATURE_HEADER: sign_webhook(SECRET, now, body), TIMESTAMP_HEADER: str(now)}
            response = session.post(f"{url}/webhooks/site/leads", data=body, headers=headers, timeout=60)
            accepted += response.status_code == 202
        return accepted

    with ThreadPoolExecutor(max_workers=CONNECTIONS) as pool:
        return sum(pool.map(post_share, range(CONNECTIONS)))


def main() -> None:
    args = bench_arguments(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate.upgrade(database_url)
        bodies = _bodies(args.rows)

        started = time.perf_counter()
        bare_bulk_insert(database_url, "bench_bare_webhook", ["body"], ({"body": b.decode()} for b in bodies))
        baseline_s = time.perf_counter() - started

        proc, url = _start_server(database_url, Path(tmp))
        try:
            started = time.perf_counter()
            accepted = _post_all(url, bodies)
            intake_s = time.perf_counter() - started
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"rows: {args.rows}, accepted: {accepted}, lost: {args.rows - accepted}")
    print(
        f"hub serve intake: {intake_s:.2f} s, {args.rows / intake_s:,.0f} posts/s ({CONNECTIONS} connections)"
    )
    print(f"baseline bare bulk insert: {baseline_s:.3f} s, {args.rows / baseline_s:,.0f} rows/s")
    print(f"ratio (intake time / baseline time): {intake_s / baseline_s:.1f}x")


if __name__ == "__main__":
    main()
