"""A small CRM built row by row for the analytics tests: contacts, leads, activities, deals with
stage history, invoices, payments and allocations, each written through the store's upsert."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from hub.store.models import (
    Activity,
    Contact,
    Deal,
    DealStageChange,
    Invoice,
    Lead,
    Payment,
    PaymentAllocation,
    Rep,
    Task,
)
from hub.store.upsert import upsert

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def _insert(session: Session, model: Any, row: dict[str, Any], key: list[str]) -> int:
    (row_id,) = upsert(session, model, [row], key=key, returning="id")
    return int(row_id)


def rep(session: Session, rep_id: int, name: str = "Rep") -> int:
    return _insert(session, Rep, {"id": rep_id, "name": f"{name} {rep_id}"}, key=["id"])


def contact(session: Session, ref: str) -> int:
    return _insert(
        session,
        Contact,
        {"source_system": "crm", "source_ref": ref, "name": ref},
        ["source_system", "source_ref"],
    )


def lead(session: Session, ref: str, contact_id: int, days: float, **fields: Any) -> int:
    row = {
        "source_system": "site_api",
        "source_ref": ref,
        "contact_id": contact_id,
        "submitted_at": at(days),
        "status": "open",
        **fields,
    }
    return _insert(session, Lead, row, ["source_system", "source_ref"])


def activity(session: Session, ref: str, kind: str, contact_id: int, days: float, **fields: Any) -> int:
    row = {
        "source_system": "test",
        "source_ref": ref,
        "kind": kind,
        "contact_id": contact_id,
        "occurred_at": at(days),
    }
    return _insert(session, Activity, {**row, **fields}, ["source_system", "source_ref"])


def deal(
    session: Session,
    ref: str,
    contact_id: int | None,
    opened_days: float,
    stage: str = "new",
    status: str = "open",
    closed_days: float | None = None,
    amount: str = "100000",
    **fields: Any,
) -> int:
    row = {
        "source_system": "crm",
        "source_ref": ref,
        "contact_id": contact_id,
        "stage": stage,
        "status": status,
        "amount": Decimal(amount),
        "opened_at": at(opened_days),
        "closed_at": at(closed_days) if closed_days is not None else None,
        **fields,
    }
    return _insert(session, Deal, row, ["source_system", "source_ref"])


def stages(session: Session, deal_id: int, entries: list[tuple[str, float]]) -> None:
    rows = [{"deal_id": deal_id, "stage": stage, "entered_at": at(days)} for stage, days in entries]
    upsert(session, DealStageChange, rows, key=["deal_id", "stage", "entered_at"], update=[])


def invoice(session: Session, ref: str, deal_id: int, amount: str, issued_days: float = 0) -> int:
    issued = at(issued_days).date()
    row = {
        "source_system": "test",
        "source_ref": ref,
        "number": ref,
        "issued_on": issued,
        "due_on": issued + timedelta(days=10),
        "amount": Decimal(amount),
        "deal_id": deal_id,
    }
    return _insert(session, Invoice, row, ["source_system", "source_ref"])


def payment(session: Session, ref: str, paid_on: date, allocations: list[tuple[int, str]]) -> int:
    total = sum(Decimal(amount) for _, amount in allocations)
    payment_id = _insert(
        session,
        Payment,
        {"source_system": "test", "source_ref": ref, "paid_on": paid_on, "amount": total},
        ["source_system", "source_ref"],
    )
    rows = [
        {
            "payment_id": payment_id,
            "invoice_id": invoice_id,
            "amount": Decimal(amount),
            "method": "explicit_link",
        }
        for invoice_id, amount in allocations
    ]
    upsert(session, PaymentAllocation, rows, key=["payment_id", "invoice_id"])
    return payment_id


def task(
    session: Session, ref: str, deal_id: int | None, rep_id: int | None, due_days: float, done: bool = False
) -> int:
    row = {
        "source_system": "test",
        "source_ref": ref,
        "kind": "follow_up",
        "title": ref,
        "deal_id": deal_id,
        "rep_id": rep_id,
        "due_at": at(due_days),
        "done": done,
    }
    return _insert(session, Task, row, ["source_system", "source_ref"])
