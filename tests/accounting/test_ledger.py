"""Matching applied to the store: allocations, queue, statuses and receivables written back, the
books' invariants checked, reruns that change nothing."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from hub.ingest.accounting import write_invoices, write_payments
from hub.ingest.stats import IngestStats
from hub.receivables.checks import invoices_over_allocated, outstanding_mismatches, payments_over_allocated
from hub.receivables.ledger import aging_summary, receivable_rows, receivables_by_contact, reconcile
from hub.store.db import session_scope
from hub.store.models import (
    Contact,
    ContactReceivable,
    Invoice,
    Payment,
    PaymentAllocation,
    Receivable,
    UnmatchedPayment,
)
from hub.store.upsert import upsert
from tests.accounting.builders import INN_A, INN_B

AS_OF = date(2024, 6, 1)


def _invoice(
    ref: str, number: str, amount: str, issued: str, due: str, inn: str | None = INN_A
) -> dict[str, Any]:
    return {
        "source_ref": ref,
        "number": number,
        "issued_on": issued,
        "due_on": due,
        "amount": amount,
        "counterparty_tax_id": inn,
        "counterparty_name": "Ромашка",
    }


def _payment(
    ref: str, amount: str, paid: str, purpose: str, inn: str | None = INN_A, **extra: Any
) -> dict[str, Any]:
    return {
        "source_ref": ref,
        "amount": amount,
        "paid_on": paid,
        "purpose": purpose,
        "payer_tax_id": inn,
        "payer_name": "ООО Ромашка",
        **extra,
    }


def _load(url: str) -> None:
    with session_scope(url) as session:
        upsert(
            session,
            Contact,
            [{"source_system": "crm", "source_ref": "C-1", "name": "Ромашка", "tax_id": INN_A}],
            key=["source_system", "source_ref"],
        )
        stats = IngestStats()
        write_invoices(
            session,
            "test",
            [
                _invoice("i1", "101", "1000.00", "2024-01-10", "2024-01-20"),  # 90+ days late, partly paid
                _invoice("i2", "102", "500.00", "2024-04-01", "2024-04-10"),  # 31-60, paid by ИНН + amount
                _invoice("i3", "103", "300.00", "2024-05-01", "2024-05-15"),  # 1-30, untouched
                _invoice("i4", "104", "200.00", "2024-05-20", "2024-06-10"),  # current, overpaid
                _invoice("i5", "7", "800.00", "2024-03-01", "2024-03-05", inn=INN_B),  # other payer
                _invoice("i6", "105", "50.00", "2024-07-01", "2024-07-05"),  # issued after the as-of date
            ],
            stats,
        )
        write_payments(
            session,
            "test",
            [
                _payment("p1", "400.00", "2024-02-01", "Оплата по счету № 101 от 10.01.2024"),
                _payment("p2", "500.00", "2024-04-05", "за товар"),
                _payment("p3", "250.00", "2024-05-25", "сч.№ 0000-000104"),
                _payment("p4", "800.00", "2024-05-26", "Оплата по счету 7", inn=None),  # no ИНН: queue
                _payment("p5", "-20.00", "2024-05-28", "Возврат переплаты"),
                _payment(
                    "p6",
                    "90.00",
                    "2024-05-29",
                    "оплата",
                    linked_invoices=[{"invoice_ref": "i1", "amount": "90"}],
                ),
            ],
            stats,
        )
        assert stats.quarantined == 0


def test_reconcile_writes_allocations_queue_statuses_and_aging(store_url: str) -> None:
    _load(store_url)
    with session_scope(store_url) as session:
        stats, _result = reconcile(session, AS_OF)
    assert stats.unmatched == 1
    with session_scope(store_url) as session:
        refs = dict(session.execute(select(Payment.id, Payment.source_ref)).all())
        numbers = dict(session.execute(select(Invoice.id, Invoice.number)).all())
        allocations = {
            (refs[a.payment_id], numbers.get(a.invoice_id)): (a.amount, a.method)
            for a in session.scalars(select(PaymentAllocation))
        }
        statuses = {i.number: i.status for i in session.scalars(select(Invoice))}
        aging = {
            numbers[r.invoice_id]: (r.outstanding, r.days_overdue, r.aging_bucket)
            for r in session.scalars(select(Receivable).where(Receivable.as_of == AS_OF))
        }
        [queued] = session.scalars(select(UnmatchedPayment)).all()
        assert refs[queued.payment_id] == "p4" and queued.amount == Decimal("800.00")
        assert queued.candidates[0]["number"] == "7"
        assert payments_over_allocated(session) == [] and invoices_over_allocated(session) == []
        assert outstanding_mismatches(session, AS_OF) == []
        rows = receivable_rows(session, AS_OF)
        per_contact = receivables_by_contact(session, rows)
        [client] = session.scalars(select(ContactReceivable).where(ContactReceivable.as_of == AS_OF)).all()
    assert (client.invoices, client.outstanding, client.days_90_plus, client.days_1_30) == (
        4,  # 105 is issued after the as-of date
        Decimal("810.00"),
        Decimal("510.00"),
        Decimal("300.00"),
    )
    assert (client.max_days_overdue, client.aging_bucket) == (133, "90+")
    assert allocations == {
        ("p1", "101"): (Decimal("400.00"), "purpose_number"),
        ("p2", "102"): (Decimal("500.00"), "tax_id_amount"),
        ("p3", "104"): (Decimal("200.00"), "purpose_number"),
        ("p3", None): (Decimal("50.00"), "credit"),
        ("p5", None): (Decimal("-20.00"), "refund"),
        ("p6", "101"): (Decimal("90.00"), "explicit_link"),
    }
    assert statuses == {
        "101": "overdue",
        "102": "paid",
        "103": "overdue",
        "104": "paid",
        "7": "overdue",
        "105": "open",
    }
    assert aging == {
        "101": (Decimal("510.00"), 133, "90+"),
        "102": (Decimal("0.00"), 0, "current"),
        "103": (Decimal("300.00"), 17, "1-30"),
        "104": (Decimal("0.00"), 0, "current"),
        "7": (Decimal("800.00"), 88, "61-90"),
    }
    summary = {row["bucket"]: row["outstanding"] for row in aging_summary(rows)}
    assert summary == {
        "current": "0.00",
        "1-30": "300.00",
        "31-60": "0.00",
        "61-90": "800.00",
        "90+": "510.00",
    }
    assert per_contact[0]["outstanding"] == Decimal("810.00") and per_contact[0]["90+"] == Decimal("510.00")


def test_rerun_changes_nothing_and_keeps_manual_allocations(sqlite_store: str) -> None:
    _load(sqlite_store)
    with session_scope(sqlite_store) as session:
        reconcile(session, AS_OF)
    with session_scope(sqlite_store) as session:
        before = [
            (a.id, a.payment_id, a.invoice_id, a.amount, a.method)
            for a in session.scalars(select(PaymentAllocation))
        ]
        again, _ = reconcile(session, AS_OF)
    assert (again.allocations_written, again.allocations_removed, again.statuses_changed) == (0, 0, 0)
    with session_scope(sqlite_store) as session:
        after = [
            (a.id, a.payment_id, a.invoice_id, a.amount, a.method)
            for a in session.scalars(select(PaymentAllocation))
        ]
        assert after == before
        # Finance places the queued payment by hand: the next run keeps it and empties the queue.
        p4 = session.scalar(select(Payment.id).where(Payment.source_ref == "p4"))
        i5 = session.scalar(select(Invoice.id).where(Invoice.source_ref == "i5"))
        session.add(
            PaymentAllocation(
                payment_id=p4,
                invoice_id=i5,
                amount=Decimal("800.00"),
                method="manual",
                confidence=1.0,
                detail="confirmed by phone",
            )
        )
    with session_scope(sqlite_store) as session:
        reconcile(session, AS_OF)
    with session_scope(sqlite_store) as session:
        assert session.scalars(select(UnmatchedPayment)).all() == []
        manual = session.scalars(select(PaymentAllocation).where(PaymentAllocation.method == "manual")).one()
        assert manual.detail == "confirmed by phone"
        assert session.scalar(select(Invoice.status).where(Invoice.id == i5)) == "paid"


def test_receivables_as_of_an_earlier_date_count_only_payments_made_by_then(sqlite_store: str) -> None:
    _load(sqlite_store)
    with session_scope(sqlite_store) as session:
        reconcile(session, AS_OF)
        rows = {r["invoice_id"]: r for r in receivable_rows(session, date(2024, 3, 1))}
        numbers = dict(session.execute(select(Invoice.id, Invoice.number)).all())
    by_number = {numbers[k]: v for k, v in rows.items()}
    assert set(by_number) == {"101", "7"}
    assert (
        by_number["101"]["outstanding"] == Decimal("600.00") and by_number["101"]["aging_bucket"] == "31-60"
    )


def test_checks_catch_books_that_do_not_hold(sqlite_store: str) -> None:
    _load(sqlite_store)
    with session_scope(sqlite_store) as session:
        reconcile(session, AS_OF)
    with session_scope(sqlite_store) as session:
        allocation = session.scalars(
            select(PaymentAllocation).where(PaymentAllocation.method == "tax_id_amount")
        ).one()
        allocation.amount = Decimal("650.00")
        receivable = session.scalars(select(Receivable).where(Receivable.outstanding > 0)).first()
        assert receivable is not None
        receivable.outstanding += Decimal("1.00")
        contact_row = session.scalars(select(ContactReceivable)).one()
        contact_row.outstanding -= Decimal("5.00")
    with session_scope(sqlite_store) as session:
        assert [p["amount"] for p in payments_over_allocated(session)] == ["500.00"]
        assert [i["number"] for i in invoices_over_allocated(session)] == ["102"]
        problems = outstanding_mismatches(session, AS_OF)
        assert {p["invoice_id"] for p in problems} >= {
            receivable.invoice_id,
            "total",
            f"contact {contact_row.contact_id}",
        }


def test_reconciling_an_earlier_date_leaves_later_payments_allocations_alone(sqlite_store: str) -> None:
    _load(sqlite_store)
    with session_scope(sqlite_store) as session:
        reconcile(session, AS_OF)
        before = session.scalars(select(PaymentAllocation.id)).all()
        reconcile(session, date(2024, 3, 1))
        after = session.scalars(select(PaymentAllocation.id)).all()
    assert sorted(after) == sorted(before)
