"""Per-source cursors kept in the store, saved in the transaction of the rows they cover."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from hub.store.models import SyncState
from hub.store.upsert import upsert
from hub.timeutil import utcnow


def load_cursor(session: Session, source: str) -> dict[str, Any]:
    state = session.get(SyncState, source)
    return dict(state.cursor) if state is not None else {}


def save_cursor(session: Session, source: str, cursor: dict[str, Any]) -> None:
    """Stage the cursor in the caller's transaction: it commits with the rows or not at all."""
    upsert(session, SyncState, [{"source": source, "cursor": cursor, "updated_at": utcnow()}], key=["source"])
