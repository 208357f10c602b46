"""Does the tracking pixel's answer time tell a valid token from a guess? `hub serve` (real
uvicorn) is asked for the pixel of a sent email's token and of unknown tokens, in random order,
one request at a time; the answer times of both are printed side by side with their difference.

    python -m bench.pixel_timing --rows 2000

The two medians should be equal within the noise of the machine (the answer does not wait for
the store); a valid token that answers measurably slower lets anyone test guessed tokens.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from hub.ingest.mail import record_sent_email, tracking_token
from hub.store import migrate
from hub.store.db import session_scope
from schemas.mail import SentEmail
from tests.serve.process import hub_serve

AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0"


def _sent_token(database_url: str) -> str:
    with session_scope(database_url) as session:
        record_sent_email(
            session,
            SentEmail(
                message_id="<bench-pixel@sales.example.ru>",
                from_addr="rep1@sales.example.ru",
                to_addrs=["client@client.example.ru"],
                subject="Offer",
                sent_at=datetime.now(UTC) - timedelta(hours=1),
            ),
        )
        token = tracking_token(session, "<bench-pixel@sales.example.ru>")
    assert token is not None
    return token


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2000, help="fetches of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate.upgrade(database_url)
        token = _sent_token(database_url)
        times: dict[str, list[float]] = {"known": [], "unknown": []}
        with hub_serve(
            {"HUB_DATABASE_URL": database_url, "HUB_DATA_DIR": tmp}, Path(tmp) / "serve.log"
        ) as server:
            session = requests.Session()
            # In random order: the store work a fetch leaves behind must not be charged to the
            # fetch that happens to come next.
            kinds = ["known", "unknown"] * args.rows
            random.Random(17).shuffle(kinds)
            for kind in kinds:
                fetched = token if kind == "known" else secrets.token_urlsafe(24)
                started = time.perf_counter()
                answer = session.get(
                    f"{server.url}/o/{fetched}.gif", headers={"User-Agent": AGENT}, timeout=30
                )
                times[kind].append(time.perf_counter() - started)
                assert answer.status_code == 200
    for kind, values in times.items():
        print(
            f"{kind:>7} token: median {statistics.median(values) * 1000:.2f} ms, "
            f"p95 {_percentile(values, 0.95) * 1000:.2f} ms ({len(values)} fetches)"
        )
    difference = statistics.median(times["known"]) - statistics.median(times["unknown"])
    ratio = statistics.median(times["known"]) / statistics.median(times["unknown"])
    print(f"known - unknown: {difference * 1000:+.2f} ms median (ratio {ratio:.2f})")


if __name__ == "__main__":
    main()
