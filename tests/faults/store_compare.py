"""The store as a comparable picture for "nothing lost, nothing doubled" checks: every table's
rows as a multiset keyed by content, surrogate ids replaced by the natural key of the row they
point to, and times written by the run itself (the wall clock) masked."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, Table, UniqueConstraint, select

from hub.store.db import make_engine
from hub.store.models import Base
from hub.timeutil import as_utc

WALL_CLOCK = "<written at run time>"
RANDOM = "<random by design>"
# Values drawn at random on purpose (unguessable tracking tokens): equal only by chance.
RANDOM_COLUMNS = {("hub_mail_tracking_tokens", "token")}
# Columns holding a row id (as text or a bare integer) without a foreign key, and the table
# that row is in, read from the same row: like a foreign key, the id depends on insert order
# (PostgreSQL sequences hand out ids differently under concurrent inserts).
CONVERSION_TABLES = {"lead": "crm_leads", "deal": "crm_deals"}
ID_REFERENCES: dict[tuple[str, str], Callable[[dict[str, Any]], str]] = {
    ("hub_touches", "source_ref"): lambda row: row["source_system"],
    ("crm_lead_attribution", "conversion_id"): lambda row: CONVERSION_TABLES.get(row["conversion_kind"], ""),
}
# Texts the hub writes naming a lead by its id (reasons such as "first lead 122 routed to ...",
# task references "lead:122:first_call"), and ids in JSON details under the keys below: each id
# is replaced by the natural key of the row it names.
LEAD_ID_IN_REASON = re.compile(r"\b(lead )(\d+)")
TEXTS_NAMING_LEADS = {
    ("crm_contacts", "owner_reason"): LEAD_ID_IN_REASON,
    ("crm_leads", "resolution_reason"): LEAD_ID_IN_REASON,
    ("hub_merge_log", "reason"): LEAD_ID_IN_REASON,
    ("crm_tasks", "source_ref"): re.compile(r"^(lead:)(\d+)(?=:)"),
}
JSON_ID_KEYS = {"lead_id": "crm_leads", "receipt_id": "hub_mail_receipts"}

StoreImage = dict[str, Counter[tuple[Any, ...]]]


def _surrogate_id(table: Table) -> Column[Any] | None:
    """The autoincrement integer primary key, whose values depend on insert order."""
    pk = list(table.primary_key.columns)
    if len(pk) == 1 and pk[0].name == "id" and pk[0].type.python_type is int:
        return pk[0]
    return None


# Tables without a unique constraint, named by what identifies a row to a person.
EXTRA_NATURAL_KEYS = {"crm_reps": ["name"]}


def _natural_key(table: Table) -> list[str] | None:
    if table.name in EXTRA_NATURAL_KEYS:
        return EXTRA_NATURAL_KEYS[table.name]
    for constraint in sorted(table.constraints, key=lambda c: str(c.name)):
        if isinstance(constraint, UniqueConstraint):
            return [c.name for c in constraint.columns]
    unique_cols = [c.name for c in table.columns if c.unique]
    return unique_cols[:1] or None


class _Reader:
    def __init__(self, conn: Any, run_started: datetime | None) -> None:
        self.conn = conn
        self.run_started = as_utc(run_started) if run_started else None
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.identity: dict[str, dict[int, Any]] = {}

    def table_rows(self, table: Table) -> list[dict[str, Any]]:
        if table.name not in self.rows:
            self.rows[table.name] = [dict(r._mapping) for r in self.conn.execute(select(table))]
        return self.rows[table.name]

    def identity_of(self, table: Table, row_id: int | None) -> Any:
        """What a foreign key points at, by the target's natural key (or content)."""
        if row_id is None:
            return None
        if table.name not in self.identity:
            self.identity[table.name] = {}  # set first: a self-reference resolves to content
            key = _natural_key(table)
            by_id: dict[int, Any] = {}
            for row in self.table_rows(table):
                columns = key or [c.name for c in table.columns if c is not _surrogate_id(table)]
                by_id[row["id"]] = (table.name, *self.plain_row(table, row, columns))
            self.identity[table.name] = by_id
        return self.identity[table.name].get(row_id, ("dangling", table.name, row_id))

    def referenced_row(self, table_name: str, row_id: str | int | None) -> Any:
        """A row id kept without a foreign key, by the natural key of the row it names."""
        target = Base.metadata.tables.get(table_name)
        if target is None or row_id is None or not str(row_id).isdigit():
            return row_id
        return self.identity_of(target, int(row_id))

    def plain_row(self, table: Table, row: dict[str, Any], columns: list[str]) -> tuple[Any, ...]:
        out = []
        for name in columns:
            value = row[name]
            if (table.name, name) in RANDOM_COLUMNS:
                out.append(RANDOM)
                continue
            fks = list(table.columns[name].foreign_keys)
            if fks:
                value = self.identity_of(fks[0].column.table, value)
            elif (table.name, name) in ID_REFERENCES:
                value = self.referenced_row(ID_REFERENCES[table.name, name](row), value)
            elif (table.name, name) in TEXTS_NAMING_LEADS and value is not None:
                value = TEXTS_NAMING_LEADS[table.name, name].sub(
                    lambda m: f"{m[1]}{self.referenced_row('crm_leads', m[2])}", value
                )
            out.append(self.plain(value))
        return tuple(out)

    def plain(self, value: Any) -> Any:
        if isinstance(value, datetime):
            value = as_utc(value)
            if self.run_started is not None and value >= self.run_started:
                return WALL_CLOCK
            return value.isoformat()
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value.normalize())
        if isinstance(value, float):
            return round(value, 9)
        if isinstance(value, dict):
            return tuple(
                sorted(
                    (str(k), self.referenced_row(JSON_ID_KEYS[k], v) if k in JSON_ID_KEYS else self.plain(v))
                    for k, v in value.items()
                )
            )
        if isinstance(value, list | tuple):
            return tuple(self.plain(v) for v in value)
        return value


def store_image(database_url: str, run_started: datetime | None = None) -> StoreImage:
    """Every table as a multiset of rows. Datetimes at or after `run_started` were set by the
    clock during a run and are masked."""
    image: StoreImage = {}
    with make_engine(database_url).connect() as conn:
        reader = _Reader(conn, run_started)
        for table in Base.metadata.sorted_tables:
            surrogate = _surrogate_id(table)
            columns = [c.name for c in table.columns if c is not surrogate]
            image[table.name] = Counter(
                reader.plain_row(table, row, columns) for row in reader.table_rows(table)
            )
    return image


def image_differences(expected: StoreImage, actual: StoreImage, limit: int = 3) -> dict[str, str]:
    """Tables whose rows differ: what is missing and what is extra (doubled counts as extra)."""
    out: dict[str, str] = {}
    for name in sorted(set(expected) | set(actual)):
        want, got = expected.get(name, Counter()), actual.get(name, Counter())
        if want == got:
            continue
        missing, extra = want - got, got - want
        out[name] = (
            f"{sum(want.values())} expected, {sum(got.values())} found; "
            f"missing {sum(missing.values())} e.g. {list(missing)[:limit]}; "
            f"extra {sum(extra.values())} e.g. {list(extra)[:limit]}"
        )
    return out
