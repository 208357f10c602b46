"""Aging buckets and invoice statuses at their boundaries; the payments CSV folder."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hub.ingest.accounting import CSV_PAYMENTS_SOURCE, sync_payments_csv_dir
from hub.receivables.aging import aging_bucket, days_past_due, invoice_status
from hub.store.db import session_scope
from hub.store.models import Payment, QuarantineRecord
from tests.accounting.builders import INN_A

AS_OF = date(2024, 6, 30)


@pytest.mark.parametrize(
    ("days_late", "bucket"),
    [
        (-5, "current"),
        (0, "current"),
        (1, "1-30"),
        (30, "1-30"),
        (31, "31-60"),
        (60, "31-60"),
        (61, "61-90"),
        (90, "61-90"),
        (91, "90+"),
        (400, "90+"),
    ],
)
def test_aging_bucket_by_days_past_due(days_late: int, bucket: str) -> None:
    due = AS_OF - timedelta(days=days_late)
    assert days_past_due(due, AS_OF) == max(0, days_late)
    assert aging_bucket(days_past_due(due, AS_OF)) == bucket


@pytest.mark.parametrize(
    ("allocated", "due", "status"),
    [
        (0, date(2024, 7, 10), "open"),
        (400, date(2024, 7, 10), "partially_paid"),
        (400, date(2024, 6, 29), "overdue"),
        (0, date(2024, 6, 30), "open"),  # due today is not late yet
        (1000, date(2024, 1, 1), "paid"),
    ],
)
def test_invoice_status(allocated: int, due: date, status: str) -> None:
    assert invoice_status(1000, allocated, due, AS_OF) == status


def test_payments_csv_folder_loads_once_and_quarantines_bad_rows(sqlite_store: str, tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "bank.csv").write_text(
        "date;amount;inn;payer;purpose;invoice_ref\n"
        f"05.03.2024;1 500,50;{INN_A};Ромашка;Оплата по счету 12;\n"
        f"06.03.2024;-200;{INN_A};Ромашка;Возврат;\n"
        "07.03.2024;0;;Никто;ноль;\n"
        f"08.03.2024;300;{INN_A};Ромашка;оплата;guid-12\n",
        encoding="utf-8-sig",
    )
    (folder / "notes.txt").write_text("not a csv")
    first = sync_payments_csv_dir(sqlite_store, folder)
    assert (first.written, first.quarantined) == (3, 1)
    assert sync_payments_csv_dir(sqlite_store, folder).rows_in == 0
    with session_scope(sqlite_store) as session:
        payments = {p.amount: p for p in session.scalars(select(Payment))}
        [bad] = session.scalars(
            select(QuarantineRecord).where(QuarantineRecord.source == CSV_PAYMENTS_SOURCE)
        ).all()
    assert sorted(str(a) for a in payments) == ["-200.00", "1500.50", "300.00"]
    assert payments[next(a for a in payments if str(a) == "300.00")].linked_invoice_refs == [
        {"ref": "guid-12", "amount": None}
    ]
    assert "zero" in bad.error
