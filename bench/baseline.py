"""The baseline every ingest benchmark is measured against: the same rows inserted as they are
(all text, no validation) into a plain table of the same database; and the benchmarks' options."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, insert

from hub.store.db import make_engine


def bare_bulk_insert(
    database_url: str,
    table_name: str,
    columns: Sequence[str],
    rows: Iterable[dict[str, Any]],
    batch: int = 5000,
) -> int:
    """Insert `rows` into a fresh text table `table_name`; returns how many were inserted."""
    engine = make_engine(database_url)
    table = Table(table_name, MetaData(), *(Column(c, String) for c in columns))
    table.drop(engine, checkfirst=True)
    table.create(engine)
    count = 0
    with engine.begin() as conn:
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= batch:
                conn.execute(insert(table), chunk)
                count += len(chunk)
                chunk = []
        if chunk:
            conn.execute(insert(table), chunk)
            count += len(chunk)
    return count


def bench_arguments(doc: str | None) -> argparse.Namespace:
    """--rows and --database-url, the options every ingest benchmark takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file in a temp folder")
    return parser.parse_args()
