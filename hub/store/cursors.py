"""Per-source cursors kept in the store, saved in the transaction of the rows they cover."""

from __future__ import annotations

import hashlib
from pathlib import Path
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


CURSOR_NAME_MAX = 100  # hub_sync_state.source


def path_cursor_name(prefix: str, path: str | Path) -> str:
    """The cursor name of a folder or file source: "<prefix>:<path>" when it fits the column,
    else a hash of the path and its readable tail (deep folders are common on servers)."""
    name = f"{prefix}:{path}"
    if len(name) <= CURSOR_NAME_MAX:
        return name
    digest = hashlib.sha1(str(path).encode("utf-8")).hexdigest()[:12]
    head = f"{prefix}:{digest}:..."
    return head + str(path)[-(CURSOR_NAME_MAX - len(head)) :]
