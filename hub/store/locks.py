"""A named lock held until the current transaction ends, so steps that read the store and then
write from what they read (reconcile, recompute) run one at a time across processes."""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.orm import Session


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
