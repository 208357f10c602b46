"""The invariants that hold the books together, checked on the store: no payment allocated beyond
its amount, no invoice beyond its own, and outstanding = invoiced - allocated per invoice, per
contact and in total. Each returns the offending rows (empty when the books hold)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.receivables.ledger import receivable_rows
from hub.store.models import ContactReceivable, Invoice, Payment, PaymentAllocation, Receivable


def _allocated_per(session: Session, model: Any, label: Any, link: Any) -> list[tuple[Any, Any, Any, Any]]:
    """(id, label, amount, sum of allocations) of every payment or invoice that has allocations."""
    return [
        tuple(row)
        for row in session.execute(
            select(model.id, label, model.amount, func.sum(PaymentAllocation.amount))
            .join(PaymentAllocation, link == model.id)
            .group_by(model.id, label, model.amount)
        )
    ]


def payments_over_allocated(session: Session) -> list[dict[str, Any]]:
    """Payments whose allocations exceed the money they carry (a refund: below its negative amount)."""
    return [
        {"payment_id": pid, "ref": ref, "amount": str(amount), "allocated": str(total)}
        for pid, ref, amount, total in _allocated_per(
            session, Payment, Payment.source_ref, PaymentAllocation.payment_id
        )
        if (amount >= 0 and total > amount) or (amount < 0 and (total < amount or total > 0))
    ]


def invoices_over_allocated(session: Session) -> list[dict[str, Any]]:
    """Invoices settled beyond their amount, or below zero by refunds."""
    return [
        {"invoice_id": iid, "number": number, "amount": str(amount), "allocated": str(total)}
        for iid, number, amount, total in _allocated_per(
            session, Invoice, Invoice.number, PaymentAllocation.invoice_id
        )
        if total > amount or total < 0
    ]


def latest_receivables_date(session: Session) -> date | None:
    return session.scalar(select(func.max(Receivable.as_of)))


def outstanding_mismatches(session: Session, as_of: date) -> list[dict[str, Any]]:
    """Receivable rows written for `as_of` that disagree with invoices minus allocations, per
    invoice, plus one row for the totals when they disagree."""
    expected = {r["invoice_id"]: r for r in receivable_rows(session, as_of)}
    written = {r.invoice_id: r for r in session.scalars(select(Receivable).where(Receivable.as_of == as_of))}
    problems = []
    for invoice_id in sorted(set(expected) | set(written)):
        want, got = expected.get(invoice_id), written.get(invoice_id)
        if want is None or got is None:
            problems.append({"invoice_id": invoice_id, "problem": "missing" if got is None else "unexpected"})
            continue
        if got.outstanding != got.invoiced - got.allocated or (got.invoiced, got.allocated) != (
            want["invoiced"],
            want["allocated"],
        ):
            problems.append(
                {
                    "invoice_id": invoice_id,
                    "problem": f"outstanding {got.outstanding}, invoiced {want['invoiced']} - allocated "
                    f"{want['allocated']} = {want['outstanding']}",
                }
            )
    per_contact: dict[int, Decimal] = {}
    for row in written.values():
        if row.contact_id is not None and row.outstanding > 0:
            per_contact[row.contact_id] = per_contact.get(row.contact_id, Decimal(0)) + row.outstanding
    contacts = {
        r.contact_id: r.outstanding
        for r in session.scalars(select(ContactReceivable).where(ContactReceivable.as_of == as_of))
    }
    for contact_id in sorted(set(per_contact) | set(contacts)):
        if per_contact.get(contact_id, Decimal(0)) != contacts.get(contact_id, Decimal(0)):
            problems.append(
                {
                    "invoice_id": f"contact {contact_id}",
                    "problem": f"contact owes {contacts.get(contact_id)}, its invoices "
                    f"{per_contact.get(contact_id, Decimal(0))}",
                }
            )
    total_invoiced = sum((r["invoiced"] for r in expected.values()), Decimal(0))
    total_allocated = sum((r["allocated"] for r in expected.values()), Decimal(0))
    total_outstanding = sum((r.outstanding for r in written.values()), Decimal(0))
    if total_outstanding != total_invoiced - total_allocated:
        problems.append(
            {
                "invoice_id": "total",
                "problem": f"outstanding {total_outstanding} != invoiced {total_invoiced} - allocated {total_allocated}",
            }
        )
    return problems
