"""Invoices and payments from CSV files (any other accounting or bank system's export): column
names in Russian or English, comma or semicolon, UTF-8 or cp1251, dates ISO or dd.mm.yyyy."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.text import decode_text

INVOICE_COLUMNS = {
    "source_ref": ("source_ref", "id", "invoice_id", "ref", "guid", "ссылка"),
    "number": ("number", "invoice", "invoice_number", "номер", "номер счета", "счет", "nr faktury"),
    "issued_on": ("issued_on", "date", "issue_date", "дата", "дата счета", "data wystawienia"),
    "due_on": ("due_on", "due", "due_date", "срок оплаты", "оплатить до", "termin płatności"),
    "amount": ("amount", "total", "sum", "сумма", "сумма документа", "kwota"),
    "currency": ("currency", "валюта", "waluta"),
    "counterparty_tax_id": ("counterparty_tax_id", "tax_id", "inn", "инн", "инн контрагента"),
    "counterparty_name": ("counterparty_name", "client", "customer", "контрагент", "покупатель", "name"),
}
PAYMENT_COLUMNS = {
    "source_ref": ("source_ref", "id", "payment_id", "ref", "номер документа"),
    "paid_on": ("paid_on", "date", "payment_date", "дата", "дата поступления", "data"),
    "amount": ("amount", "sum", "сумма", "kwota"),
    "currency": ("currency", "валюта", "waluta"),
    "payer_tax_id": ("payer_tax_id", "tax_id", "inn", "инн", "инн плательщика"),
    "payer_name": ("payer_name", "payer", "плательщик", "name", "nadawca"),
    "payer_account": ("payer_account", "account", "счет плательщика"),
    "purpose": ("purpose", "назначение", "назначение платежа", "description", "tytuł", "tytul"),
    "invoice_ref": ("invoice_ref", "linked_invoice", "счет на оплату"),
}
_DMY = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")


def _iso_date(value: Any) -> Any:
    if isinstance(value, str):
        match = _DMY.match(value.strip())
        if match:
            day, month, year = match.groups()
            return f"{year}-{int(month):02d}-{int(day):02d}"
    return value


def _rows(path: str | Path, columns: dict[str, tuple[str, ...]]) -> Iterator[tuple[int, dict[str, Any]]]:
    text = decode_text(Path(path).read_bytes())
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    aliases = {alias: name for name, names in columns.items() for alias in names}
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    for row_number, row in enumerate(reader, start=2):
        record: dict[str, Any] = {}
        for column, value in row.items():
            if column is None:
                record["_extra_cells"] = value
                continue
            name = aliases.get(column.strip().lower(), column.strip().lower())
            record[name] = _iso_date(value) if isinstance(value, str) else value
        if not record.get("source_ref"):
            # Without an id the row's content is its identity: importing it twice writes it once.
            content = json.dumps(sorted(record.items()), ensure_ascii=False, default=str)
            record["source_ref"] = "sha1:" + hashlib.sha1(content.encode("utf-8")).hexdigest()
        yield row_number, record


def read_invoices_csv(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, raw invoice record) for each row; validation is the caller's."""
    yield from _rows(path, INVOICE_COLUMNS)


def read_payments_csv(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, raw payment record); an `invoice_ref` column becomes an explicit link."""
    for row_number, record in _rows(path, PAYMENT_COLUMNS):
        invoice_ref = record.pop("invoice_ref", None)
        if invoice_ref:
            record["linked_invoices"] = [{"invoice_ref": invoice_ref}]
        yield row_number, record
