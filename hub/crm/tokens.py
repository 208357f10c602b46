"""OAuth tokens of a CRM backend kept in the store: every new pair is committed before the client
uses it, because the refresh token rotates and the old one dies with the refresh (a crash right
after a refresh must not leave the hub holding only a dead token)."""

from __future__ import annotations

from typing import Any

from hub.store.cursors import load_cursor, save_cursor
from hub.store.db import session_scope


def _name(backend: str) -> str:
    return f"crm:{backend}:oauth"


def load_tokens(database_url: str, backend: str) -> dict[str, Any]:
    with session_scope(database_url) as session:
        return load_cursor(session, _name(backend))


def save_tokens(database_url: str, backend: str, tokens: dict[str, Any]) -> None:
    """Commit the pair now, in a transaction of its own."""
    with session_scope(database_url) as session:
        save_cursor(session, _name(backend), tokens)
