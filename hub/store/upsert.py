"""Idempotent writes: insert-or-update on a natural key, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Session


def upsert(
    session: Session,
    model: type[DeclarativeBase],
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    update: Iterable[str] | None = None,
    returning: str | Sequence[str] | None = None,
    add: Iterable[str] = (),
) -> list[Any]:
    """Insert `rows`; where a row with the same `key` exists, update the `update` columns
    (all non-key columns given when None; nothing when empty, i.e. insert-if-absent), and add
    the new value to the stored one for the `add` columns (counters).

    Returns the `returning` column (or, for several names, row tuples of those columns) of the
    rows inserted or updated (for insert-if-absent: only of those inserted)."""
    if not rows:
        return []
    table: Table = model.__table__  # type: ignore[assignment]
    dialect = session.get_bind().dialect.name
    insert_fn = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect)
    if insert_fn is None:
        raise RuntimeError(f"upsert supports SQLite and PostgreSQL, not {dialect!r}")
    columns = list(rows[0].keys())
    added = [c for c in add if c not in key]
    update_cols = [c for c in (columns if update is None else update) if c not in key and c not in added]
    # One statement executed with many parameter sets: SQLAlchemy compiles it once (cached) and
    # its "insertmanyvalues" batches the rows, RETURNING included, on both dialects.
    stmt = insert_fn(table)
    if update_cols or added:
        values = {c: stmt.excluded[c] for c in update_cols}
        values.update({c: table.c[c] + stmt.excluded[c] for c in added})
        stmt = stmt.on_conflict_do_update(index_elements=list(key), set_=values)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
    params = rows if isinstance(rows, list) else list(rows)
    if isinstance(returning, str):
        return list(session.execute(stmt.returning(table.c[returning]), params).scalars())
    if returning:
        return [tuple(r) for r in session.execute(stmt.returning(*(table.c[c] for c in returning)), params)]
    session.execute(stmt, params)
    return []
