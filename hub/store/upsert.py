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
    returning: str | None = None,
) -> list[Any]:
    """Insert `rows`; where a row with the same `key` exists, update the `update` columns
    (all non-key columns given when None; nothing when empty, i.e. insert-if-absent).

    Returns the `returning` column of the rows inserted or updated (for insert-if-absent:
    only of those inserted)."""
    if not rows:
        return []
    table: Table = model.__table__  # type: ignore[assignment]
    dialect = session.get_bind().dialect.name
    insert_fn = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect)
    if insert_fn is None:
        raise RuntimeError(f"upsert supports SQLite and PostgreSQL, not {dialect!r}")
    columns = list(rows[0].keys())
    update_cols = [c for c in (columns if update is None else update) if c not in key]
    # One statement executed with many parameter sets: SQLAlchemy compiles it once (cached) and
    # its "insertmanyvalues" batches the rows, RETURNING included, on both dialects.
    stmt = insert_fn(table)
    if update_cols:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in update_cols}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
    params = rows if isinstance(rows, list) else list(rows)
    if returning:
        return list(session.execute(stmt.returning(table.c[returning]), params).scalars())
    session.execute(stmt, params)
    return []
