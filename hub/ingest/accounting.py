"""Accounting into the store: counterparties, invoices and payments from 1C OData (with a date
cursor), bank statements dropped in a watched folder, and CSV files. Rows are linked to CRM
contacts by ИНН; every source commits its rows together with its cursor."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.accounting_csv import read_invoices_csv, read_payments_csv
from connectors.bank_statement import parse_statement, statement_payments
from connectors.errors import PermanentSourceError
from connectors.onec_odata import AccountingSource, since_literal
from hub.identity.resolve import find_contact
from hub.ingest.stats import IngestStats, note_http_usage
from hub.masking import mask_text
from hub.store.cursors import load_cursor, save_cursor
from hub.store.db import session_scope
from hub.store.models import Contact, Counterparty, Invoice, Payment
from hub.store.quarantine import describe_error, quarantine
from hub.store.upsert import upsert
from hub.timeutil import utcnow
from schemas.accounting import Counterparty as CounterpartyRecord
from schemas.accounting import InvoiceRecord, PaymentRecord

ODATA_SOURCE = "onec_odata"
STATEMENT_SOURCE = "bank_statement"
CSV_INVOICES_SOURCE = "invoices_csv"
CSV_PAYMENTS_SOURCE = "payments_csv"


class ContactsByTaxId:
    """The CRM contact of each ИНН, looked up once per run."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cache: dict[str, int | None] = {}

    def __call__(self, tax_id: str | None) -> int | None:
        if not tax_id:
            return None
        if tax_id not in self.cache:
            contact = find_contact(self.session, "tax_id", tax_id)
            if contact is None:
                contact = self.session.scalars(
                    select(Contact)
                    .where(Contact.tax_id == tax_id, Contact.merged_into_id.is_(None))
                    .order_by(Contact.id)
                    .limit(1)
                ).first()
            self.cache[tax_id] = contact.id if contact is not None else None
        return self.cache[tax_id]


def _validate(
    session: Session, source: str, model: type[Any], raw: Any, ref: str | None, stats: IngestStats
) -> Any | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        quarantine(session, source, raw, exc, source_ref=ref)
        stats.note_quarantined(f"invalid {model.__name__}")
        return None


def write_counterparties(
    session: Session, source_system: str, records: Iterable[Any], stats: IngestStats
) -> dict[str, str | None]:
    """Upsert counterparties; returns their ИНН by reference for the invoices that name them."""
    contacts = ContactsByTaxId(session)
    rows: dict[str, dict[str, Any]] = {}
    for raw in records:
        stats.rows_in += 1
        record = _validate(session, source_system, CounterpartyRecord, raw, _ref(raw), stats)
        if record is None:
            continue
        rows[record.source_ref] = {
            "source_system": source_system,
            "source_ref": record.source_ref,
            "name": record.name,
            "full_name": record.full_name,
            "tax_id": record.tax_id,
            "kpp": record.kpp,
            "contact_id": contacts(record.tax_id),
            "updated_at": utcnow(),
        }
    updated = ["name", "full_name", "tax_id", "kpp", "contact_id"]
    _upsert_changed(session, Counterparty, source_system, rows, updated, stats)
    return {ref: row["tax_id"] for ref, row in rows.items()}


def _upsert_changed(
    session: Session,
    model: Any,
    source_system: str,
    rows: dict[str, dict[str, Any]],
    update: list[str],
    stats: IngestStats,
) -> None:
    """Write new rows and rows whose `update` columns differ from the store; count the rest as
    unchanged (a cursor re-read inclusively sees its boundary documents again)."""
    if not rows:
        return
    current: dict[str, tuple[Any, ...]] = {}
    refs = list(rows)
    for start in range(0, len(refs), 500):
        chunk = refs[start : start + 500]
        for found in session.execute(
            select(model.source_ref, *[getattr(model, c) for c in update]).where(
                model.source_system == source_system, model.source_ref.in_(chunk)
            )
        ):
            current[found[0]] = tuple(found[1:])
    changed = [row for ref, row in rows.items() if current.get(ref) != tuple(row[c] for c in update)]
    upsert(session, model, changed, key=["source_system", "source_ref"], update=update)
    stats.written += len(changed)
    stats.unchanged += len(rows) - len(changed)


def invoice_row(record: InvoiceRecord, source_system: str, contact_id: int | None = None) -> dict[str, Any]:
    return {
        "source_system": source_system,
        "source_ref": record.source_ref,
        "number": record.number,
        "issued_on": record.issued_on,
        "due_on": record.due_on,
        "amount": record.amount,
        "currency": record.currency,
        "counterparty_tax_id": record.counterparty_tax_id,
        "counterparty_name": record.counterparty_name,
        "contact_id": contact_id,
        "status": "open",
        "created_at": utcnow(),
    }


def _write_records(
    session: Session,
    source_system: str,
    records: Iterable[Any],
    stats: IngestStats,
    schema: type[Any],
    model: Any,
    to_row: Callable[[Any], dict[str, Any]],
    preview: Callable[[Any], dict[str, Any]],
    kept: tuple[str, ...] = ("created_at",),
) -> None:
    """Validate each record (quarantining the bad ones), link it to its CRM contact by ИНН and
    write what changed; the `kept` columns are never overwritten."""
    contacts = ContactsByTaxId(session)
    rows: dict[str, dict[str, Any]] = {}
    for raw in records:
        stats.rows_in += 1
        record = (
            raw
            if isinstance(raw, schema)
            else _validate(session, source_system, schema, raw, _ref(raw), stats)
        )
        if record is None:
            continue
        row = to_row(record)
        row["contact_id"] = contacts(row.get("counterparty_tax_id") or row.get("payer_tax_id"))
        rows[record.source_ref] = row
        stats.add_preview(preview(record))
    key = ("source_system", "source_ref")
    updated = [c for c in next(iter(rows.values()), {}) if c not in key and c not in kept]
    _upsert_changed(session, model, source_system, rows, updated, stats)


def write_invoices(session: Session, source_system: str, records: Iterable[Any], stats: IngestStats) -> None:
    """Upsert invoices; their status belongs to the matching, so an update leaves it alone."""
    _write_records(
        session,
        source_system,
        records,
        stats,
        InvoiceRecord,
        Invoice,
        lambda record: invoice_row(record, source_system),
        lambda record: {
            "invoice": record.number,
            "issued_on": str(record.issued_on),
            "due_on": str(record.due_on),
            "amount": str(record.amount),
            "inn": record.counterparty_tax_id or "",
        },
        kept=("status", "created_at"),
    )


def payment_row(record: PaymentRecord, source_system: str, contact_id: int | None = None) -> dict[str, Any]:
    return {
        "source_system": source_system,
        "source_ref": record.source_ref,
        "paid_on": record.paid_on,
        "amount": record.amount,
        "currency": record.currency,
        "payer_tax_id": record.payer_tax_id,
        "payer_name": record.payer_name,
        "payer_account": record.payer_account,
        "purpose": record.purpose,
        "linked_invoice_refs": [
            {"ref": link.invoice_ref, "amount": str(link.amount) if link.amount is not None else None}
            for link in record.linked_invoices
        ],
        "contact_id": contact_id,
        "created_at": utcnow(),
    }


def write_payments(session: Session, source_system: str, records: Iterable[Any], stats: IngestStats) -> None:
    _write_records(
        session,
        source_system,
        records,
        stats,
        PaymentRecord,
        Payment,
        lambda record: payment_row(record, source_system),
        lambda record: {
            "payment": record.source_ref,
            "paid_on": str(record.paid_on),
            "amount": str(record.amount),
            "inn": record.payer_tax_id or "",
            "purpose": mask_text(record.purpose)[:80],
        },
    )


def _ref(raw: Any) -> str | None:
    if isinstance(raw, dict):
        value = raw.get("source_ref") or raw.get("Ref_Key") or raw.get("id")
        return str(value)[:200] if value is not None else None
    return None


# ---------------------------------------------------------------- sources


def sync_odata(
    database_url: str,
    source: AccountingSource,
    since: str,
    kinds: tuple[str, ...] = ("invoices", "payments"),
    lookback_days: int = 0,
) -> IngestStats:
    """Counterparties, then invoices and/or payments changed since the cursor, page by page. The
    cursor is the newest document date seen; a run starts `lookback_days` before it (rows dedupe
    by key)."""
    stats = IngestStats()
    source.validate()
    with session_scope(database_url) as session:
        cursor = load_cursor(session, ODATA_SOURCE)
    start = {kind: _looked_back(cursor.get(kind), since, lookback_days) for kind in ("invoices", "payments")}
    # Read every time: a payment from a client created in 1C since the last run needs its ИНН.
    with session_scope(database_url) as session:
        write_counterparties(session, ODATA_SOURCE, source.counterparties(), stats)
    readers = {
        "invoices": (source.invoice_pages, write_invoices),
        "payments": (source.payment_pages, write_payments),
    }
    for kind in kinds:
        pages, writer = readers[kind]
        newest = start[kind]
        with session_scope(database_url) as session:
            parties = {
                ref: (tax_id, name)
                for ref, tax_id, name in session.execute(
                    select(Counterparty.source_ref, Counterparty.tax_id, Counterparty.name).where(
                        Counterparty.source_system == ODATA_SOURCE
                    )
                )
            }
        pages_read = 0
        for page in pages(start[kind], parties):
            pages_read += 1
            with session_scope(database_url) as session:
                for bad in page.rejected:
                    quarantine(session, ODATA_SOURCE, bad.raw, bad.reason, source_ref=bad.ref)
                    stats.rows_in += 1
                    stats.note_quarantined(bad.reason)
                writer(session, ODATA_SOURCE, page.records, stats)
                newest = max([newest, *page.dates])
                cursor = load_cursor(session, ODATA_SOURCE)
                cursor[kind] = newest
                save_cursor(session, ODATA_SOURCE, cursor)
        stats.extra[f"{kind}_pages"] = pages_read
    stats.extra["requests"] = source.requests_made()
    note_http_usage(stats, source)
    return stats


def _looked_back(cursor: str | None, since: str, days: int) -> str:
    """Where a run starts reading: `days` before the cursor (documents posted with a past date),
    never before the configured first date."""
    if cursor is None:
        return since
    start = (datetime.fromisoformat(cursor) - timedelta(days=days)).isoformat(timespec="seconds")
    return max(start, since_literal(since))


def sync_statement_file(database_url: str, path: Path, our_accounts: Iterable[str]) -> IngestStats:
    """One statement file: its payments written, each malformed section and invalid document
    quarantined with the file name and line, the file remembered by name and size."""
    stats = IngestStats()
    raw = path.read_bytes()
    with session_scope(database_url) as session:
        try:
            statement = parse_statement(raw)
        except PermanentSourceError as exc:
            quarantine(session, STATEMENT_SOURCE, raw[:100_000], f"{path.name}: {exc}", source_ref=path.name)
            stats.note_quarantined("not a 1CClientBankExchange file")
            _remember(session, path, len(raw))
            return stats
        for section in statement.malformed:
            stats.rows_in += 1
            quarantine(
                session,
                STATEMENT_SOURCE,
                section.raw,
                f"{path.name} line {section.line}: {section.reason}",
                source_ref=f"{path.name}:{section.line}",
            )
            stats.note_quarantined("malformed section")
        for warning in statement.warnings():
            stats.warn(f"{path.name}: {warning}")
        stats.extra["encoding"] = statement.encoding
        records: list[PaymentRecord] = []
        for item in statement_payments(statement, our_accounts):
            for warning in item.warnings:
                stats.warn(f"{path.name} {warning}")
            if item.record is None:
                stats.rows_in += 1
                reason = f"{path.name} line {item.line}: {describe_error(item.error or 'unknown error')}"
                quarantine(session, STATEMENT_SOURCE, item.raw, reason, source_ref=f"{path.name}:{item.line}")
                stats.note_quarantined("invalid payment document")
                continue
            records.append(item.record)
        write_payments(session, STATEMENT_SOURCE, records, stats)
        _remember(session, path, len(raw))
    stats.extra["files"] = 1
    return stats


def _remember(session: Session, path: Path, size: int, source: str = STATEMENT_SOURCE) -> None:
    cursor = load_cursor(session, source)
    cursor[path.name] = size
    save_cursor(session, source, cursor)


def new_files(
    database_url: str,
    folder: str | Path,
    source: str = STATEMENT_SOURCE,
    suffixes: tuple[str, ...] = (".txt", ".1c", ""),
) -> list[Path]:
    """Files in the folder not yet read at their current size (a file still being written, or
    re-exported with more payments, is read again once it has grown)."""
    directory = Path(folder)
    if not directory.is_dir():
        return []
    with session_scope(database_url) as session:
        seen = load_cursor(session, source)
    return [
        path
        for path in sorted(directory.iterdir())
        if path.is_file() and path.suffix.lower() in suffixes and seen.get(path.name) != path.stat().st_size
    ]


def new_statement_files(database_url: str, folder: str | Path) -> list[Path]:
    return new_files(database_url, folder)


def sync_statement_dir(database_url: str, folder: str | Path, our_accounts: Iterable[str]) -> IngestStats:
    stats = IngestStats()
    for path in new_statement_files(database_url, folder):
        stats.merge(sync_statement_file(database_url, path, our_accounts))
    return stats


def sync_csv_file(database_url: str, path: Path, kind: str) -> IngestStats:
    """An invoices or payments CSV (kind "invoices" | "payments"); rows dedupe by their key."""
    stats = IngestStats()
    source = CSV_INVOICES_SOURCE if kind == "invoices" else CSV_PAYMENTS_SOURCE
    reader = read_invoices_csv if kind == "invoices" else read_payments_csv
    writer = write_invoices if kind == "invoices" else write_payments
    with session_scope(database_url) as session:
        writer(session, source, [record for _row, record in reader(path)], stats)
        _remember(session, path, path.stat().st_size, source)
    return stats


def sync_payments_csv_dir(database_url: str, folder: str | Path) -> IngestStats:
    stats = IngestStats()
    for path in new_files(database_url, folder, CSV_PAYMENTS_SOURCE, (".csv",)):
        stats.merge(sync_csv_file(database_url, path, "payments"))
    return stats
