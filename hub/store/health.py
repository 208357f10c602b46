"""Whether the store can be used: reachable, and at the schema this release was written for.
`hub serve` checks it at start and in its readiness endpoint; the messages name the setting."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from hub.masking import mask_text, mask_url_password
from hub.store.db import make_engine

SETTING = "HUB_DATABASE_URL"


class StoreUnavailable(RuntimeError):
    """The store cannot be used; the message says which store, why, and what to do."""


@lru_cache(maxsize=1)
def _code_heads() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    from hub.store.migrate import MIGRATIONS_DIR

    return frozenset(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def error_line(exc: BaseException) -> str:
    """The first line of a (driver's) error, masked: what a one-line log or message shows."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return mask_text(lines[0] if lines else type(original).__name__)


def store_error_message(database_url: str, exc: BaseException) -> str:
    """One line for a store error met by any command: which store (password masked), why, what to do."""
    where = mask_url_password(database_url)
    if isinstance(exc, DBAPIError) and exc.statement is not None:
        return f"the store at {where} ({SETTING}) failed: {error_line(exc)}"
    return f"cannot reach the store at {where} ({SETTING}): {error_line(exc)}; start the database or fix {SETTING}"


def store_problem(database_url: str) -> str | None:
    """None when the store answers and is at this release's schema, else what is wrong."""
    from alembic.runtime.migration import MigrationContext

    where = mask_url_password(database_url)
    url = make_url(database_url)
    file_store = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    # Connecting would create an empty file: say what is missing instead.
    if file_store and not Path(str(url.database)).is_file():
        return f"there is no store at {where} ({SETTING}): run `hub db upgrade` to create it"
    try:
        with make_engine(database_url).connect() as conn:
            current = frozenset(MigrationContext.configure(conn).get_current_heads())
    except SQLAlchemyError as exc:
        return store_error_message(database_url, exc)
    heads = _code_heads()
    if current == heads:
        return None
    if not current:
        return f"the store at {where} ({SETTING}) has no hub schema: run `hub db upgrade`"
    return (
        f"the store at {where} ({SETTING}) is at schema revision {', '.join(sorted(current))}, this "
        f"release needs {', '.join(sorted(heads))}: run `hub db upgrade` (or deploy the release that "
        "migrated it)"
    )


def check_store(database_url: str) -> None:
    """Raise StoreUnavailable unless the store can be used now."""
    problem = store_problem(database_url)
    if problem is not None:
        raise StoreUnavailable(problem)
