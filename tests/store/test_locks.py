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


_HOLDER = """
import sys, time
from hub.store.locks import exclusive_runner
with exclusive_runner(sys.argv[1], "test-runner") as held:
    print("held" if held else "busy", flush=True)
    time.sleep(120)
"""


def test_an_exclusive_runner_excludes_others_and_is_freed_when_its_holder_dies(store_url: str) -> None:
    import signal
    import subprocess
    import sys

    from hub.store.locks import exclusive_runner

    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, store_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with exclusive_runner(store_url, "test-runner") as held:
            assert held is False
        with exclusive_runner(store_url, "another-name") as held:
            assert held is True
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with exclusive_runner(store_url, "test-runner") as held:
        assert held is True
