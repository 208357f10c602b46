"""Engine and session factory for the store: SQLite by default, PostgreSQL in production."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_engines: dict[str, Engine] = {}


def make_engine(database_url: str) -> Engine:
    """One engine per URL per process (engines own connection pools). SQL parameters are never
    put into error messages or logs (`hide_parameters`): they are the records, personal data."""
    engine = _engines.get(database_url)
    if engine is not None:
        return engine
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        # A concurrent writer waits for the lock instead of failing at once.
        engine = create_engine(url, connect_args={"timeout": 60}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        # A database host that does not answer fails the connection in seconds, not never.
        engine = create_engine(
            url, pool_pre_ping=True, hide_parameters=True, connect_args={"connect_timeout": 10}
        )
    _engines[database_url] = engine
    return engine


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the UI, checks) run beside a writer; FKs are off in SQLite by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def dispose_engines() -> None:
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


@contextmanager
def session_scope(database_url: str) -> Iterator[Session]:
    """A session whose work is committed as one transaction, or rolled back on error."""
    factory = sessionmaker(make_engine(database_url), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session
