"""Group commit: writes submitted by many concurrent requests are made by one thread, as many
at a time as have arrived, in one transaction each; a request learns its result after the commit.

Under load, the posts that arrive while one transaction commits (a WAL fsync, a few ms) are
written by the next one, so the cost of a durable commit is shared instead of paid per post.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from hub.store.db import session_scope
from hub.store.health import error_line

log = logging.getLogger("hub.store.group_commit")

Item = TypeVar("Item")
Result = TypeVar("Result")

# Writes the items in the session (one transaction) and returns one result per item, in order.
BatchWriter = Callable[[Session, Sequence[Item]], Sequence[Result]]


class QueueFull(RuntimeError):
    """More items wait than the committer keeps; the caller drops or refuses this one."""


@dataclass
class _Pending(Generic[Item]):
    item: Item
    loop: asyncio.AbstractEventLoop | None = None
    future: asyncio.Future[Any] | None = None


_STOP = object()


class GroupCommitter(Generic[Item, Result]):
    """Writer threads for `write`, started on first use. `submit` (from a coroutine) waits
    for the commit; `submit_nowait` hands an item over and returns at once.

    On PostgreSQL two writers take turns: while one waits for its commit to be flushed, the
    other writes the posts that arrived meanwhile (the server flushes both at once). SQLite
    has one writer at a time anyway, so one thread."""

    def __init__(
        self,
        database_url: str,
        write: BatchWriter[Item, Result],
        *,
        name: str,
        max_batch: int = 1000,
        max_waiting: int = 0,
        linger_s: float = 0.0,
        writers: int | None = None,
    ) -> None:
        self.database_url = database_url
        self.write = write
        self.name = name
        self.max_batch = max_batch
        # Wait this long after the first item before writing (items nobody waits for).
        self.linger_s = linger_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_waiting)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # Two writers only where `write` takes its locks in one order (else they could deadlock).
        self.writers = writers or (1 if make_url(database_url).get_backend_name() == "sqlite" else 2)
        self.batches = 0  # transactions committed (for benchmarks and tests)
        self.items = 0

    # ------------------------------------------------------------ callers

    async def submit(self, item: Item) -> Result:
        """The item's result once its transaction has committed (or its write's exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._put(_Pending(item, loop, future))
        return await future

    def submit_nowait(self, item: Item) -> None:
        """Hand the item over without waiting for its commit; QueueFull when too many wait."""
        self._put(_Pending(item))

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is waiting, then stop the thread."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            thread.join(timeout_s)
        if threads:
            log.info("%s: %d items written in %d transactions", self.name, self.items, self.batches)

    def _put(self, pending: _Pending[Item]) -> None:
        if not self._threads:
            with self._lock:
                while len(self._threads) < self.writers:
                    thread = threading.Thread(
                        target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True
                    )
                    thread.start()
                    self._threads.append(thread)
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            raise QueueFull(f"{self.name}: {self._queue.maxsize} items already wait for the store") from None

    # ------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Pending[Item]] = [first]
            if self.linger_s:
                time.sleep(self.linger_s)
            # Everything that arrived while the previous transaction committed goes in this one.
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch.append(more)
            self._commit(batch)

    def _commit(self, batch: list[_Pending[Item]]) -> None:
        try:
            results = self._write_in_one_transaction([p.item for p in batch])
        except OperationalError as exc:
            # The store is unreachable or locked: every item of the batch meets the same error.
            self._settle(batch, [exc] * len(batch))
            return
        except DBAPIError:
            if len(batch) == 1:
                log.exception("%s: a write failed", self.name)
                self._settle(batch, [RuntimeError(f"{self.name}: the write failed")])
                return
            # One bad item must not fail the others: write each in its own transaction.
            for pending in batch:
                self._commit([pending])
            return
        except Exception as exc:  # a bug in `write`: the callers still get an answer
            log.exception("%s: a batch failed", self.name)
            self._settle(batch, [exc] * len(batch))
            return
        with self._lock:
            self.batches += 1
            self.items += len(batch)
        self._settle(batch, list(results))

    def _write_in_one_transaction(self, items: list[Item]) -> Sequence[Result]:
        with session_scope(self.database_url) as session:
            results = self.write(session, items)
        if len(results) != len(items):
            raise RuntimeError(f"{self.name}: {len(results)} results for {len(items)} items")
        return results

    def _settle(self, batch: list[_Pending[Item]], outcomes: list[Any]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        unheard: list[BaseException] = []
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.loop is not None and pending.future is not None:
                by_loop.setdefault(pending.loop, []).append((pending.future, outcome))
            elif isinstance(outcome, BaseException):
                unheard.append(outcome)
        if unheard:
            # Nobody waits for these items: say once per batch that they were not written.
            log.warning("%s: %d items not written: %s", self.name, len(unheard), error_line(unheard[0]))
        # One wake-up per event loop and batch, not one per item.
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                loop.call_soon_threadsafe(_resolve, settled)


def _resolve(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in settled:
        if future.done():  # the request was cancelled (client gone)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
