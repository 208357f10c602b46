"""The named transaction lock (hub/store/locks.py) on SQLite and PostgreSQL: read-modify-write
steps of concurrent sessions holding it lose no update."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hub.store.cursors import load_cursor, save_cursor
from hub.store.db import session_scope
from hub.store.locks import lock_key, lock_transaction

WORKERS = 3
INCREMENTS = 10


def test_lock_keys_are_stable_distinct_bigints() -> None:
    assert lock_key("receivables") == lock_key("receivables")
    assert lock_key("receivables") != lock_key("routing")
    assert all(-(2**63) <= lock_key(name) < 2**63 for name in ("receivables", "routing", ""))


def test_sessions_holding_the_lock_lose_no_update(store_url: str) -> None:
    def increment_many() -> None:
        for _ in range(INCREMENTS):
            with session_scope(store_url) as session:
                lock_transaction(session, "test-counter")
                count = load_cursor(session, "test:counter").get("count", 0)
                save_cursor(session, "test:counter", {"count": count + 1})

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for future in [pool.submit(increment_many) for _ in range(WORKERS)]:
            future.result(timeout=60)
    with session_scope(store_url) as session:
        assert load_cursor(session, "test:counter") == {"count": WORKERS * INCREMENTS}


def test_the_lock_is_reentrant_and_released_with_the_transaction(store_url: str) -> None:
    with session_scope(store_url) as session:
        lock_transaction(session, "test-reentrant")
        lock_transaction(session, "test-reentrant")  # the same transaction again: no deadlock
        save_cursor(session, "test:reentrant", {"done": 1})
    with session_scope(store_url) as session:  # a new transaction gets it at once
        lock_transaction(session, "test-reentrant")
        assert load_cursor(session, "test:reentrant") == {"done": 1}
