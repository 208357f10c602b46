"""Named locks across processes: one held until the current transaction ends, so steps that read
the store and then write from what they read (reconcile, recompute) run one at a time; and one
held by a long-running worker (the CRM pusher) so that only one runs at all."""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from hub.store.db import make_engine


def lock_key(name: str) -> int:
    """A stable signed 64-bit number for a lock name (PostgreSQL advisory locks take a bigint)."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_transaction(session: Session, name: str) -> None:
    """Wait for, then hold until commit or rollback, the lock called `name`. Take it before the
    reads the writes depend on: a second holder then sees what the first committed.

    PostgreSQL: a transaction-scoped advisory lock (re-entrant within the transaction).
    SQLite: the database's single write lock, taken now (BEGIN IMMEDIATE) rather than at the
    first write, so no other writer commits between this transaction's reads and its writes; it
    waits for the connection's busy timeout. Other dialects: no lock is taken."""
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(name)})
    elif dialect == "sqlite":
        dbapi_connection = connection.connection.dbapi_connection
        # pysqlite opens a (deferred) transaction only before the first write; once one is open
        # this transaction has written, so it already holds the write lock.
        if dbapi_connection is not None and not dbapi_connection.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def exclusive_runner(database_url: str, name: str) -> Iterator[bool]:
    """Hold the lock called `name` for as long as the block runs, across processes, without
    waiting: yields False when another process holds it. A holder that dies releases it (the
    database closes its session; the kernel closes its lock file), so whatever it left half done
    belongs to the next holder at once — no lease to wait out.

    PostgreSQL: a session-level advisory lock on a connection of its own. SQLite: an flock on
    a file beside the database (a transaction lock would block the writers the block needs)."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        engine = make_engine(database_url)
        with engine.connect() as connection:
            key = lock_key(name)
            held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
            connection.commit()
            try:
                yield held
            finally:
                if held:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()
        return
    database = url.database if url.database and url.database != ":memory:" else None
    lock_path = Path(f"{database}.{lock_key(name) & 0xFFFFFFFF:08x}.lock") if database else None
    if lock_path is None:
        yield True
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
