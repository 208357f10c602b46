"""Two reconciles at once (a scheduled run beside a manual one) on SQLite and PostgreSQL: the
second waits for the first, reads its allocations and writes nothing twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from sqlalchemy import func, select

from hub.receivables.checks import invoices_over_allocated, payments_over_allocated
from hub.receivables.ledger import ReconcileStats, reconcile
from hub.store.db import session_scope
from hub.store.models import Payment, PaymentAllocation
from tests.accounting.test_ledger import AS_OF, _load

WAIT_S = 30.0


def test_a_reconcile_started_beside_another_waits_and_writes_nothing_twice(store_url: str) -> None:
    _load(store_url)
    first_reconciled = threading.Event()
    second_started = threading.Event()
    first_committed = threading.Event()

    def first() -> ReconcileStats:
        with session_scope(store_url) as session:
            stats, _ = reconcile(session, AS_OF)
            first_reconciled.set()
            # Keep the transaction open until the second run is inside reconcile: without the
            # lock it would read the allocations as they were before this run wrote any.
            assert second_started.wait(WAIT_S)
            threading.Event().wait(0.3)
        first_committed.set()
        return stats

    def second() -> tuple[ReconcileStats, bool]:
        assert first_reconciled.wait(WAIT_S)
        with session_scope(store_url) as session:
            second_started.set()
            stats, _ = reconcile(session, AS_OF)
            return stats, first_committed.is_set()

    with ThreadPoolExecutor(max_workers=2) as pool:
        earlier, later = pool.submit(first), pool.submit(second)
        first_stats = earlier.result(timeout=WAIT_S * 2)
        second_stats, saw_first_commit = later.result(timeout=WAIT_S * 2)

    assert first_stats.allocations_written == 6
    assert saw_first_commit  # the second reconcile read only after the first committed
    assert (second_stats.allocations_written, second_stats.allocations_removed) == (0, 0)
    with session_scope(store_url) as session:
        credits = session.scalar(
            select(func.count())
            .select_from(PaymentAllocation)
            .join(Payment, Payment.id == PaymentAllocation.payment_id)
            .where(Payment.source_ref == "p3", PaymentAllocation.invoice_id.is_(None))
        )
        total = session.scalar(select(func.sum(PaymentAllocation.amount)))
        assert payments_over_allocated(session) == [] and invoices_over_allocated(session) == []
    assert credits == 1  # the credit has no invoice, so no unique key: only the lock keeps it single
    assert total == Decimal("400.00") + 500 + 200 + 50 - 20 + 90
