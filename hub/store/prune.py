"""Removal of rows a recomputed result no longer has: after upserting the new rows of a scope
(a period, a set of conversions), the scope's other rows are stale."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import DeclarativeBase, Session

_BATCH = 1000


def delete_rows_not_in(
    session: Session,
    model: type[DeclarativeBase],
    key: Sequence[str],
    keep: set[tuple[Any, ...]],
    *scope: ColumnElement[bool],
) -> int:
    """Delete the rows within `scope` whose `key` columns are not among `keep`; returns how many."""
    table = model.__table__
    columns = [table.c[name] for name in key]
    existing = session.execute(select(table.c.id, *columns).where(*scope)).all()
    stale = [row[0] for row in existing if tuple(row[1:]) not in keep]
    for start in range(0, len(stale), _BATCH):
        session.execute(delete(table).where(table.c.id.in_(stale[start : start + _BATCH])))
    return len(stale)
