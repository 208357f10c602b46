"""The matching applied to the store: allocations (with method and confidence), the unmatched
queue, each invoice's status and the receivables as of a date, written back to the CRM tables.
A rerun with nothing new changes nothing; allocations a person made (method "manual") are kept."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from hub.receivables.aging import BUCKETS, aging_bucket, days_past_due, invoice_status
from hub.receivables.matching import (
    MANUAL,
    Allocation,
    InvoiceItem,
    MatchOptions,
    MatchResult,
    PaymentItem,
    match,
)
from hub.store.locks import lock_transaction
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
from hub.timeutil import utcnow

CENT = Decimal("0.01")
# Held by every step that reads allocations and writes from them: two runs at once take turns.
RECEIVABLES_LOCK = "receivables"


def to_kopecks(amount: Decimal) -> int:
    return int((Decimal(amount) * 100).to_integral_value())


def from_kopecks(kopecks: int) -> Decimal:
    return (Decimal(kopecks) / 100).quantize(CENT)


@dataclass
class ReconcileStats:
    invoices: int = 0
    payments: int = 0
    allocations_written: int = 0
    allocations_removed: int = 0
    unmatched: int = 0
    statuses_changed: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    allocated_by_method: dict[str, str] = field(default_factory=dict)


def _tax_ids_of_contacts(session: Session) -> dict[int, str]:
    return {
        cid: tax_id
        for cid, tax_id in session.execute(
            select(Contact.id, Contact.tax_id).where(Contact.tax_id.is_not(None))
        )
    }


def load_items(session: Session, as_of: date) -> tuple[list[InvoiceItem], list[PaymentItem]]:
    """Invoices issued and payments made up to `as_of`, as the matcher takes them. An invoice or
    payment without its own ИНН takes its CRM contact's."""
    contact_tax = _tax_ids_of_contacts(session)
    invoices = [
        InvoiceItem(
            key=inv.id,
            ref=inv.source_ref,
            number=inv.number,
            issued_on=inv.issued_on,
            due_on=inv.due_on,
            amount=to_kopecks(inv.amount),
            tax_id=inv.counterparty_tax_id or contact_tax.get(inv.contact_id or 0),
            name=inv.counterparty_name,
        )
        for inv in session.scalars(select(Invoice).where(Invoice.issued_on <= as_of).order_by(Invoice.id))
    ]
    payments = []
    for pay in session.scalars(select(Payment).where(Payment.paid_on <= as_of).order_by(Payment.id)):
        links = []
        for link in pay.linked_invoice_refs or []:
            if isinstance(link, dict) and link.get("ref"):
                amount = link.get("amount")
                links.append((str(link["ref"]), to_kopecks(Decimal(amount)) if amount is not None else None))
            elif isinstance(link, str):
                links.append((link, None))
        payments.append(
            PaymentItem(
                key=pay.id,
                paid_on=pay.paid_on,
                amount=to_kopecks(pay.amount),
                tax_id=pay.payer_tax_id or contact_tax.get(pay.contact_id or 0),
                name=pay.payer_name,
                purpose=pay.purpose,
                links=links,
            )
        )
    return invoices, payments


def reconcile(
    session: Session, as_of: date, fifo: bool = False, with_receivables: bool = True
) -> tuple[ReconcileStats, MatchResult]:
    """Match every payment made up to `as_of` and write allocations, the unmatched queue, invoice
    statuses and (unless the caller writes them itself) the receivables as of that date. Runs
    one at a time: a run started beside another reads the allocations the other committed."""
    lock_transaction(session, RECEIVABLES_LOCK)
    invoices, payments = load_items(session, as_of)
    # Only the allocations of the payments matched now: a payment made after `as_of` keeps its own.
    matched = {p.key for p in payments}
    existing = [a for a in session.scalars(select(PaymentAllocation)) if a.payment_id in matched]
    fixed = [
        Allocation(a.payment_id, a.invoice_id, to_kopecks(a.amount), MANUAL, a.confidence, a.detail or "")
        for a in existing
        if a.method == MANUAL
    ]
    result = match(invoices, payments, MatchOptions(fifo=fifo), fixed=fixed)
    stats = ReconcileStats(invoices=len(invoices), payments=len(payments))
    _write_allocations(session, result, existing, stats)
    _write_unmatched(session, result, stats)
    stats.statuses_changed = _write_statuses(session, result, as_of)
    if with_receivables:
        write_receivables(session, as_of)
    stats.by_method = result.payments_by_method()
    stats.allocated_by_method = {m: str(from_kopecks(v)) for m, v in result.allocated_by_method().items()}
    return stats, result


def _write_allocations(session: Session, result: MatchResult, existing: Any, stats: ReconcileStats) -> None:
    # Merge per (payment, invoice): several passes may place parts of a payment on one invoice.
    wanted: dict[tuple[Any, Any], dict[str, Any]] = {}
    for allocation in result.allocations:
        key = (allocation.payment_key, allocation.invoice_key)
        row = wanted.get(key)
        if row is None:
            wanted[key] = {
                "payment_id": allocation.payment_key,
                "invoice_id": allocation.invoice_key,
                "amount": allocation.amount,
                "method": allocation.method,
                "confidence": allocation.confidence,
                "detail": allocation.detail,
            }
        else:
            row["amount"] += allocation.amount
            row["confidence"] = min(row["confidence"], allocation.confidence)
            row["detail"] = f"{row['detail']}; {allocation.detail}"[:2000]
    have = {(a.payment_id, a.invoice_id): a for a in existing}
    for key, current in have.items():
        row = wanted.get(key)
        if row is None:
            session.delete(current)
            stats.allocations_removed += 1
            continue
        amount = from_kopecks(row["amount"])
        if (current.amount, current.method, current.detail) != (amount, row["method"], row["detail"]):
            current.amount, current.method = amount, row["method"]
            current.confidence, current.detail = row["confidence"], row["detail"]
            stats.allocations_written += 1
    session.flush()
    new_rows = [
        {**row, "amount": from_kopecks(row["amount"]), "created_at": utcnow()}
        for key, row in wanted.items()
        if key not in have
    ]
    # Only absent pairs are inserted, so a credit's NULL invoice is never written twice.
    upsert(session, PaymentAllocation, new_rows, key=["payment_id", "invoice_id"], update=[])
    stats.allocations_written += len(new_rows)


def _write_unmatched(session: Session, result: MatchResult, stats: ReconcileStats) -> None:
    keep = [u.payment_key for u in result.unmatched]
    session.execute(delete(UnmatchedPayment).where(UnmatchedPayment.payment_id.not_in(keep)))
    current = (
        {
            u.payment_id: u
            for u in session.scalars(select(UnmatchedPayment).where(UnmatchedPayment.payment_id.in_(keep)))
        }
        if keep
        else {}
    )
    rows = []
    for entry in result.unmatched:
        candidates = [
            {
                "invoice_id": c["invoice_key"],
                "number": c["number"],
                "open": str(from_kopecks(c["open"])),
                "confidence": c["confidence"],
                "why": c["why"],
            }
            for c in entry.candidates
        ]
        row = current.get(entry.payment_key)
        amount = from_kopecks(entry.amount)
        if row is not None and (row.amount, row.reason, row.candidates) == (amount, entry.reason, candidates):
            continue
        rows.append(
            {
                "payment_id": entry.payment_key,
                "amount": amount,
                "reason": entry.reason,
                "candidates": candidates,
                "updated_at": utcnow(),
            }
        )
    upsert(session, UnmatchedPayment, rows, key=["payment_id"])
    stats.unmatched = len(result.unmatched)


def _write_statuses(session: Session, result: MatchResult, as_of: date) -> int:
    allocated: dict[Any, int] = defaultdict(int)
    for allocation in result.allocations:
        if allocation.invoice_key is not None:
            allocated[allocation.invoice_key] += allocation.amount
    changed = 0
    for invoice in session.scalars(select(Invoice).where(Invoice.issued_on <= as_of)):
        status = invoice_status(
            to_kopecks(invoice.amount), allocated.get(invoice.id, 0), invoice.due_on, as_of
        )
        if invoice.status != status:
            invoice.status = status
            changed += 1
    return changed


def receivable_rows(session: Session, as_of: date) -> list[dict[str, Any]]:
    """What each invoice issued by `as_of` still owes as of that date: the stored allocations of
    payments made by then."""
    allocated = dict(
        session.execute(
            select(PaymentAllocation.invoice_id, func.sum(PaymentAllocation.amount))
            .join(Payment, Payment.id == PaymentAllocation.payment_id)
            .where(PaymentAllocation.invoice_id.is_not(None), Payment.paid_on <= as_of)
            .group_by(PaymentAllocation.invoice_id)
        ).all()
    )
    rows = []
    for invoice in session.scalars(select(Invoice).where(Invoice.issued_on <= as_of).order_by(Invoice.id)):
        paid = Decimal(allocated.get(invoice.id) or 0).quantize(CENT)
        outstanding = Decimal(invoice.amount).quantize(CENT) - paid
        days = days_past_due(invoice.due_on, as_of) if outstanding > 0 else 0
        rows.append(
            {
                "invoice_id": invoice.id,
                "contact_id": invoice.contact_id,
                "as_of": as_of,
                "invoiced": Decimal(invoice.amount).quantize(CENT),
                "allocated": paid,
                "outstanding": outstanding,
                "days_overdue": days,
                "aging_bucket": aging_bucket(days),
            }
        )
    return rows


def write_receivables(session: Session, as_of: date) -> list[dict[str, Any]]:
    lock_transaction(session, RECEIVABLES_LOCK)
    rows = receivable_rows(session, as_of)
    session.execute(
        delete(Receivable).where(
            Receivable.as_of == as_of, Receivable.invoice_id.not_in([r["invoice_id"] for r in rows])
        )
    )
    upsert(session, Receivable, rows, key=["invoice_id", "as_of"])
    per_contact = contact_receivable_rows(rows, as_of)
    session.execute(
        delete(ContactReceivable).where(
            ContactReceivable.as_of == as_of,
            ContactReceivable.contact_id.not_in([r["contact_id"] for r in per_contact]),
        )
    )
    upsert(session, ContactReceivable, per_contact, key=["contact_id", "as_of"])
    return rows


# crm_contact_receivables column of each aging bucket.
BUCKET_COLUMNS = {
    "current": "current",
    "1-30": "days_1_30",
    "31-60": "days_31_60",
    "61-90": "days_61_90",
    "90+": "days_90_plus",
}


def contact_receivable_rows(rows: list[dict[str, Any]], as_of: date) -> list[dict[str, Any]]:
    """The invoices' receivables summed per CRM contact: what the client owes as of the date, by
    bucket, and the bucket of its oldest unpaid invoice."""
    per: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row["contact_id"] is None:
            continue
        entry = per.setdefault(
            row["contact_id"],
            {
                "contact_id": row["contact_id"],
                "as_of": as_of,
                "invoices": 0,
                "invoiced": Decimal(0),
                "outstanding": Decimal(0),
                "max_days_overdue": 0,
                **{column: Decimal(0) for column in BUCKET_COLUMNS.values()},
            },
        )
        entry["invoices"] += 1
        entry["invoiced"] += row["invoiced"]
        if row["outstanding"] > 0:
            entry["outstanding"] += row["outstanding"]
            entry[BUCKET_COLUMNS[row["aging_bucket"]]] += row["outstanding"]
            entry["max_days_overdue"] = max(entry["max_days_overdue"], row["days_overdue"])
    for entry in per.values():
        entry["aging_bucket"] = aging_bucket(entry["max_days_overdue"])
    return [per[key] for key in sorted(per)]


def aging_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Outstanding per aging bucket (the finance view), with the invoice count of each."""
    totals = {bucket: [0, Decimal(0)] for bucket in BUCKETS}
    for row in rows:
        if row["outstanding"] > 0:
            totals[row["aging_bucket"]][0] += 1
            totals[row["aging_bucket"]][1] += row["outstanding"]
    return [
        {"bucket": b, "invoices": n, "outstanding": str(v.quantize(CENT))} for b, (n, v) in totals.items()
    ]


def receivables_by_contact(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Outstanding per CRM contact and aging bucket, largest debt first."""
    names = dict(session.execute(select(Contact.id, func.coalesce(Contact.company, Contact.name))).all())
    invoice_names = dict(session.execute(select(Invoice.id, Invoice.counterparty_name)).all())
    per: dict[Any, dict[str, Any]] = {}
    for row in rows:
        if row["outstanding"] <= 0:
            continue
        key = row["contact_id"] or f"invoice:{row['invoice_id']}"
        entry = per.setdefault(
            key,
            {
                "contact_id": row["contact_id"],
                "client": names.get(row["contact_id"]) or invoice_names.get(row["invoice_id"]) or "",
                "outstanding": Decimal(0),
                "max_days_overdue": 0,
                **{bucket: Decimal(0) for bucket in BUCKETS},
            },
        )
        entry["outstanding"] += row["outstanding"]
        entry[row["aging_bucket"]] += row["outstanding"]
        entry["max_days_overdue"] = max(entry["max_days_overdue"], row["days_overdue"])
    return sorted(per.values(), key=lambda e: (-e["outstanding"], str(e["client"])))
