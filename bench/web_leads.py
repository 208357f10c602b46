"""Ingest of website leads from CSV: the hub's full path (parse, validate, normalize phones and
emails, classify the channel, upsert on the natural key with per-batch cursor) beside a bare
bulk insert of the same rows into the same database.

    python -m bench.web_leads --rows 1000000 [--database-url postgresql://...]
"""

from __future__ import annotations

import csv
import random
import resource
import tempfile
import time
from pathlib import Path

from bench.baseline import bare_bulk_insert, bench_arguments
from hub.demo import people
from hub.ingest.site import sync_csv_dir
from hub.store import migrate
from hub.store.db import dispose_engines

COLUMNS = [
    "id",
    "name",
    "phone",
    "email",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "page_url",
    "submitted_at",
]


def write_csv(path: Path, rows: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    utm = [
        ("yandex", "cpc", "brand"),
        ("google", "cpc", "generic"),
        ("", "", ""),
        ("vk", "social", "retarget"),
    ]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for n in range(rows):
            polish = n % 7 == 0
            e164 = people.pl_mobile(rng) if polish else people.ru_mobile(rng)
            source, medium, campaign = utm[n % len(utm)]
            writer.writerow(
                [
                    f"L{n:08d}",
                    f"Клиент {n}",
                    people.as_typed(e164, rng),
                    f"client{n}@example.{'pl' if polish else 'ru'}" if n % 3 else "",
                    source,
                    medium,
                    campaign,
                    "https://sales.example.ru/price",
                    f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00Z",
                ]
            )


def bare_insert(database_url: str, path: Path, batch: int = 2000) -> int:
    """The baseline: the same CSV rows inserted as they are, no validation or normalization."""
    with path.open(encoding="utf-8", newline="") as fh:
        return bare_bulk_insert(database_url, "bench_bare_leads", COLUMNS, csv.DictReader(fh), batch)


def main() -> None:
    args = bench_arguments(__doc__)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "csv"
        folder.mkdir()
        path = folder / "leads.csv"
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        started = time.perf_counter()
        write_csv(path, args.rows)
        print(
            f"generated {args.rows:,} rows ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f}s"
        )
        migrate.upgrade(url)

        started = time.perf_counter()
        bare = bare_insert(url, path)
        bare_s = time.perf_counter() - started

        started = time.perf_counter()
        stats = sync_csv_dir(url, folder, "RU")
        hub_s = time.perf_counter() - started
        rerun_started = time.perf_counter()
        rerun = sync_csv_dir(url, folder, "RU")
        rerun_s = time.perf_counter() - rerun_started
        dispose_engines()

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"database: {url.split(':')[0]}")
    print(f"bare bulk insert : {bare:,} rows in {bare_s:.1f}s = {bare / bare_s:,.0f} rows/s")
    print(
        f"hub CSV ingest   : {stats.written:,} leads written, {stats.quarantined} quarantined, "
        f"in {hub_s:.1f}s = {stats.rows_in / hub_s:,.0f} leads/s"
    )
    print(
        f"ratio hub/bare time: {hub_s / bare_s:.2f}x  (bare is {bare / bare_s / (stats.rows_in / hub_s):.2f}x faster)"
    )
    print(f"rerun of the same folder: {rerun.rows_in} rows read, {rerun.written} written, {rerun_s:.2f}s")
    print(f"peak RSS: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
