"""A comparable picture of the whole store, for tests that must show "nothing lost, nothing
doubled": every table's rows, without surrogate ids' noise of wall-clock columns."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from hub.store.db import make_engine
from hub.store.models import Base

# Set from the clock when a row is processed, so they differ between two correct runs.
WALL_CLOCK_COLUMNS = {
    "created_at",
    "updated_at",
    "assigned_at",
    "resolved_at",
    "last_assigned_at",
    "received_at",
    "processed_at",
    "seen_at",
    "due_at",
    "computed_at",
    "sent_at",
    "merged_at",
    "next_attempt_at",
    "undone_at",
}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value.normalize())
    if hasattr(value, "isoformat"):
        return (
            value.replace(tzinfo=None).isoformat()
            if hasattr(value, "tzinfo") and value.tzinfo
            else value.isoformat()
        )
    if isinstance(value, dict):
        return tuple(sorted((k, _plain(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def store_snapshot(
    database_url: str, skip: set[str] = WALL_CLOCK_COLUMNS
) -> dict[str, list[tuple[Any, ...]]]:
    """Per table, the sorted rows (all columns but `skip`); ids are kept because the hub's
    processing order is deterministic, so the same input gives the same ids."""
    snapshot: dict[str, list[tuple[Any, ...]]] = {}
    with make_engine(database_url).connect() as conn:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name not in skip]
            rows = conn.execute(select(*columns)).all()
            snapshot[table.name] = sorted((tuple(_plain(v) for v in row) for row in rows), key=repr)
    return snapshot


def diff_snapshots(
    a: dict[str, list[tuple[Any, ...]]], b: dict[str, list[tuple[Any, ...]]]
) -> dict[str, str]:
    """Tables that differ, with counts: empty when the stores are the same."""
    out = {}
    for table in sorted(set(a) | set(b)):
        rows_a, rows_b = a.get(table, []), b.get(table, [])
        if rows_a != rows_b:
            only_a = len(set(rows_a) - set(rows_b))
            only_b = len(set(rows_b) - set(rows_a))
            out[table] = (
                f"{len(rows_a)} vs {len(rows_b)} rows; {only_a} only in first, {only_b} only in second"
            )
    return out
