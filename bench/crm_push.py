"""Pushing new leads into a CRM under its rate limit: N routed leads planned and carried out by the
hub's pusher against the backend's local replay, which enforces the CRM's published limit.
Prints requests per lead and the time against the limit's floor (the fewest seconds the limit
allows for that many requests).

    python -m bench.crm_push --backend bitrix24 --rows 10000 [--mode classic|simple] [--database-url ...]

Bitrix24: the ordinary plan's leaky bucket (50 requests, draining 2 a second); the floor is
(requests - 50) / 2 s. Goals: at most 1/45 requests per lead, at most 1.2x the floor.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.crm.sync import pull_crm, push_crm
from hub.settings import load_settings
from hub.store import migrate
from hub.store.db import dispose_engines, session_scope
from hub.store.models import Lead, Rep


def _reps(database_url: str, users: int) -> list[dict[str, Any]]:
    people = [{"name": f"Менеджер {i}", "email": f"rep{i}@sales.example.ru"} for i in range(users)]
    with session_scope(database_url) as session:
        session.add_all(Rep(name=p["name"], email=p["email"]) for p in people)
    return people


def _leads(database_url: str, rows: int) -> None:
    now = datetime.now(UTC)
    with session_scope(database_url) as session:
        reps = [rep.id for rep in session.query(Rep).order_by(Rep.id)]
        for start in range(0, rows, 5000):
            session.add_all(
                Lead(
                    source_system="site_api",
                    source_ref=f"bench-{n}",
                    name=f"Клиент {n}",
                    phone_e164=f"+7916{n % 10**7:07d}",
                    utm_source="yandex",
                    utm_medium="cpc",
                    channel="yandex / cpc",
                    submitted_at=now,
                    status="open",
                    assigned_rep_id=reps[n % len(reps)],
                    routing_reason="least loaded",
                    created_at=now,
                )
                for n in range(start, min(rows, start + 5000))
            )
            session.flush()


def bench_bitrix24(database_url: str, rows: int, mode: str) -> dict[str, float]:
    from connectors.bitrix24 import Bitrix24Auth, Bitrix24Client
    from hub.crm.bitrix24 import Bitrix24Backend
    from hub.demo.replay.bitrix24 import Bitrix24Replay, Limits

    limits = Limits()  # the ordinary plan: burst 50, 2 a second
    settings = load_settings()
    with Bitrix24Replay(mode=mode, limits=limits) as crm:
        people = _reps(database_url, 10)
        crm.seed_users(people)
        client = Bitrix24Client(
            Bitrix24Auth(webhook_url=crm.webhook_url),
            requests_per_second=settings.crm.bitrix24.requests_per_second,
            burst=settings.crm.bitrix24.burst,
        )
        backend = Bitrix24Backend(client)
        pull_crm(database_url, backend, "RU")
        _leads(database_url, rows)
        # The portal's bucket refills while the leads are written: start from a full one, as
        # the client's own bucket does.
        crm.advance(limits.burst / limits.drain_per_s)
        before = crm.requests_seen()
        started = time.perf_counter()
        result = push_crm(database_url, backend, settings)
        elapsed = time.perf_counter() - started
        requests = crm.requests_seen() - before
        created = len(crm.portal.entities["lead" if mode == "classic" else "deal"])
    floor = max(0.0, requests - limits.burst) / limits.drain_per_s
    return {
        "leads": rows,
        "created": created,
        "pushed": result.push.done,
        "failed": result.push.failed,
        "requests": requests,
        "throttled": result.push.usage.throttled,
        "seconds": elapsed,
        "floor_s": floor,
    }


BENCHES: dict[str, Callable[[str, int, str], dict[str, float]]] = {"bitrix24": bench_bitrix24}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=sorted(BENCHES), default="bitrix24")
    parser.add_argument("--rows", type=int, default=10_000, help="new leads to push")
    parser.add_argument("--mode", choices=("classic", "simple"), default="classic", help="Bitrix24 CRM mode")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file in a temp folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate.upgrade(url)
        figures = BENCHES[args.backend](url, args.rows, args.mode)
        dispose_engines()
    per_lead = figures["requests"] / max(1, figures["leads"])
    ratio = figures["seconds"] / figures["floor_s"] if figures["floor_s"] else float("nan")
    print(
        f"{args.backend} ({args.mode}): {figures['pushed']:.0f} of {figures['leads']:.0f} leads pushed, "
        f"{figures['created']:.0f} in the CRM, {figures['failed']:.0f} failed"
    )
    print(
        f"requests {figures['requests']:.0f}: {per_lead:.4f} per lead (1/{1 / per_lead:.1f}; goal <= 1/45), "
        f"{figures['throttled']:.0f} throttled"
    )
    print(
        f"time {figures['seconds']:.1f} s against the limit's floor {figures['floor_s']:.1f} s: "
        f"ratio {ratio:.2f} (goal <= 1.2)"
    )


if __name__ == "__main__":
    main()
