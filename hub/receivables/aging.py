"""What is owed as of a date: invoice status, days past due and the aging bucket by due date
(current, 1-30, 31-60, 61-90, 90+), per invoice and summed per contact and per bucket."""

from __future__ import annotations

from datetime import date

BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
OPEN, PARTIALLY_PAID, PAID, OVERDUE = "open", "partially_paid", "paid", "overdue"


def days_past_due(due_on: date, as_of: date) -> int:
    return max(0, (as_of - due_on).days)


def aging_bucket(days_overdue: int) -> str:
    if days_overdue <= 0:
        return "current"
    if days_overdue <= 30:
        return "1-30"
    if days_overdue <= 60:
        return "31-60"
    if days_overdue <= 90:
        return "61-90"
    return "90+"


def invoice_status(invoiced: int, allocated: int, due_on: date, as_of: date) -> str:
    """Paid once nothing is outstanding; overdue while anything is past due (finance chases those
    first, partial or not); partially paid or open otherwise. Amounts in kopecks."""
    outstanding = invoiced - allocated
    if outstanding <= 0:
        return PAID
    if due_on < as_of:
        return OVERDUE
    return PARTIALLY_PAID if allocated > 0 else OPEN
