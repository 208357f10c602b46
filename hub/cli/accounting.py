"""Commands of accounting: the aging report and unmatched queue as CSV for a spreadsheet, the
matching tried offline on files, and what the hub reads from a bank statement."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from connectors.accounting_csv import read_invoices_csv, read_payments_csv
from connectors.bank_statement import SIGNATURE, parse_statement, statement_payments, statement_summary
from connectors.errors import PermanentSourceError
from hub.receivables.ledger import to_kopecks
from hub.receivables.matching import InvoiceItem, MatchOptions, PaymentItem, match
from hub.settings import load_settings
from hub.store.quarantine import describe_error
from schemas.accounting import InvoiceRecord, PaymentRecord


def register(main: click.Group, inspect: click.Group) -> None:
    main.add_command(receivables)
    inspect.add_command(inspect_statement)


def _as_of(value: str | None) -> date:
    if not value:
        from zoneinfo import ZoneInfo

        return datetime.now(ZoneInfo(load_settings().timezone)).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2024-03-31") from None


def _write_csv(path: Path, rows: Iterable[dict[str, Any]], columns: list[str]) -> int:
    count = 0
    # UTF-8 with BOM: Excel opens Cyrillic correctly only so; ';' is its delimiter in RU locales.
    with open(path, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, delimiter=";", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
            count += 1
    return count


@click.group()
def receivables() -> None:
    """Receivables: export the aging report, try the matching rules on files."""


@receivables.command("import-csv")
@click.option("--invoices", "invoices_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--payments", "payments_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_csv(invoices_file: Path | None, payments_file: Path | None) -> None:
    """Import invoices and/or payments CSV files from another system into the store (rows dedupe by
    their id, or by their content when there is none); the next run of the assets matches them."""
    from hub.ingest.accounting import sync_csv_file

    if not invoices_file and not payments_file:
        raise click.UsageError("give --invoices FILE and/or --payments FILE")
    url = load_settings().database_url
    for kind, path in (("invoices", invoices_file), ("payments", payments_file)):
        if path is not None:
            stats = sync_csv_file(url, path, kind)
            click.echo(json.dumps({"file": str(path), **stats.as_dict()}, ensure_ascii=False, default=str))


@receivables.command("export")
@click.option("--as-of", "as_of", default=None, help="Date of the report (YYYY-MM-DD); default today.")
@click.option(
    "-o",
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for aging.csv, aging_by_client.csv and unmatched.csv.",
)
def export(as_of: str | None, out_dir: Path) -> None:
    """Write the aging report (per invoice and per client) and the unmatched queue as CSV."""
    from sqlalchemy import select

    from hub.receivables.aging import BUCKETS
    from hub.receivables.ledger import receivable_rows, receivables_by_contact
    from hub.store.db import session_scope
    from hub.store.models import Invoice, Payment, UnmatchedPayment

    day = _as_of(as_of)
    out_dir.mkdir(parents=True, exist_ok=True)
    with session_scope(load_settings().database_url) as session:
        rows = receivable_rows(session, day)
        invoices = {i.id: i for i in session.scalars(select(Invoice))}
        per_client = receivables_by_contact(session, rows)
        queue = session.execute(
            select(UnmatchedPayment, Payment)
            .join(Payment, Payment.id == UnmatchedPayment.payment_id)
            .order_by(Payment.paid_on, Payment.id)
        ).all()
    aging = [
        {
            **row,
            "number": invoices[row["invoice_id"]].number,
            "issued_on": invoices[row["invoice_id"]].issued_on,
            "due_on": invoices[row["invoice_id"]].due_on,
            "client": invoices[row["invoice_id"]].counterparty_name,
            "inn": invoices[row["invoice_id"]].counterparty_tax_id,
            "status": invoices[row["invoice_id"]].status,
        }
        for row in rows
    ]
    n_aging = _write_csv(
        out_dir / "aging.csv",
        aging,
        [
            "number",
            "issued_on",
            "due_on",
            "client",
            "inn",
            "invoiced",
            "allocated",
            "outstanding",
            "days_overdue",
            "aging_bucket",
            "status",
            "as_of",
        ],
    )
    _write_csv(
        out_dir / "aging_by_client.csv",
        per_client,
        ["client", "contact_id", "outstanding", "max_days_overdue", *BUCKETS],
    )
    unmatched = [
        {
            "paid_on": pay.paid_on,
            "amount": entry.amount,
            "payer": pay.payer_name,
            "inn": pay.payer_tax_id,
            "purpose": pay.purpose,
            "reason": entry.reason,
            "candidates": "; ".join(
                f"{c['number']} ({c['confidence']:.0%}: {c['why']})" for c in entry.candidates
            ),
            "payment_ref": f"{pay.source_system}:{pay.source_ref}",
        }
        for entry, pay in queue
    ]
    n_queue = _write_csv(
        out_dir / "unmatched.csv",
        unmatched,
        ["paid_on", "amount", "payer", "inn", "purpose", "reason", "candidates", "payment_ref"],
    )
    click.echo(
        f"as of {day}: {n_aging} invoices in {out_dir / 'aging.csv'}, {n_queue} payments in {out_dir / 'unmatched.csv'}"
    )


def read_payment_file(path: Path, our_accounts: Iterable[str]) -> tuple[list[PaymentRecord], list[str]]:
    """Payments of a bank statement or a payments CSV, and the reasons the bad ones were skipped."""
    raw = path.read_bytes()
    records: list[PaymentRecord] = []
    problems: list[str] = []
    if raw.lstrip(b"\xef\xbb\xbf").startswith(SIGNATURE.encode()):
        statement = parse_statement(raw)
        problems += [f"line {m.line}: {m.reason}" for m in statement.malformed]
        # Not skipped, but a person should know: a file cut short, an ИНН failing its checksum.
        for warning in statement.warnings():
            click.echo(f"warning: {path.name}: {warning}", err=True)
        for item in statement_payments(statement, our_accounts):
            for warning in item.warnings:
                click.echo(f"warning: {path.name} {warning}", err=True)
            if item.record is None:
                problems.append(f"line {item.line}: {describe_error(item.error or 'invalid')}")
            else:
                records.append(item.record)
        return records, problems
    for row_number, record in read_payments_csv(path):
        try:
            records.append(PaymentRecord.model_validate(record))
        except ValidationError as exc:
            problems.append(f"row {row_number}: {describe_error(exc)}")
    return records, problems


@receivables.command("match")
@click.option(
    "--invoices", "invoices_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--payments",
    "payments_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A 1CClientBankExchange statement or a payments CSV.",
)
@click.option("--as-of", "as_of", default=None, help="Only invoices issued and payments made by this date.")
@click.option(
    "--fifo/--no-fifo",
    default=None,
    help="Settle oldest open invoices with unnamed payments (default: HUB_ACCOUNTING__FIFO).",
)
@click.option(
    "--account",
    "accounts",
    multiple=True,
    help="Our account (default: HUB_ACCOUNTING__OUR_ACCOUNTS, else the statement's own).",
)
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
def match_files(
    invoices_file: Path,
    payments_file: Path,
    as_of: str | None,
    fifo: bool | None,
    accounts: tuple[str, ...],
    out: Path,
) -> None:
    """Run the matching on files, without the store: one output row per allocation or unmatched payment."""
    settings = load_settings().accounting
    day = _as_of(as_of) if as_of else None
    problems: list[str] = []
    invoices: list[InvoiceRecord] = []
    for row_number, record in read_invoices_csv(invoices_file):
        try:
            invoices.append(InvoiceRecord.model_validate(record))
        except ValidationError as exc:
            problems.append(f"{invoices_file.name} row {row_number}: {describe_error(exc)}")
    try:
        payments, payment_problems = read_payment_file(payments_file, accounts or settings.our_accounts)
    except PermanentSourceError as exc:
        raise click.ClickException(f"{payments_file}: {exc}") from None
    problems += [f"{payments_file.name} {p}" for p in payment_problems]
    if day is not None:
        invoices = [i for i in invoices if i.issued_on <= day]
        payments = [p for p in payments if p.paid_on <= day]
    by_ref = {i.source_ref: i for i in invoices}
    items = [
        InvoiceItem(
            i.source_ref,
            i.source_ref,
            i.number,
            i.issued_on,
            i.due_on,
            to_kopecks(i.amount),
            i.counterparty_tax_id,
            i.counterparty_name,
        )
        for i in invoices
    ]
    pays = {p.source_ref: p for p in payments}
    payment_items = [
        PaymentItem(
            p.source_ref,
            p.paid_on,
            to_kopecks(p.amount),
            p.payer_tax_id,
            p.payer_name,
            p.purpose,
            [
                (link.invoice_ref, to_kopecks(link.amount) if link.amount is not None else None)
                for link in p.linked_invoices
            ],
        )
        for p in payments
    ]
    result = match(items, payment_items, MatchOptions(fifo=settings.fifo if fifo is None else fifo))
    rows: list[dict[str, Any]] = []
    for a in result.allocations:
        pay, inv = pays[a.payment_key], by_ref.get(a.invoice_key) if a.invoice_key else None
        rows.append(
            {
                "payment_ref": a.payment_key,
                "paid_on": pay.paid_on,
                "payment_amount": pay.amount,
                "payer_inn": pay.payer_tax_id,
                "payer": pay.payer_name,
                "invoice_number": inv.number if inv else "",
                "invoice_ref": a.invoice_key or "",
                "allocated": f"{a.amount / 100:.2f}",
                "method": a.method,
                "confidence": a.confidence,
                "detail": a.detail,
            }
        )
    for u in result.unmatched:
        pay = pays[u.payment_key]
        rows.append(
            {
                "payment_ref": u.payment_key,
                "paid_on": pay.paid_on,
                "payment_amount": pay.amount,
                "payer_inn": pay.payer_tax_id,
                "payer": pay.payer_name,
                "invoice_number": "",
                "invoice_ref": "",
                "allocated": f"{u.amount / 100:.2f}",
                "method": "unmatched",
                "confidence": "",
                "detail": u.reason
                + (
                    "; candidates: "
                    + ", ".join(f"{c['number']} ({c['confidence']:.0%})" for c in u.candidates)
                    if u.candidates
                    else ""
                ),
            }
        )
    _write_csv(
        out,
        rows,
        [
            "payment_ref",
            "paid_on",
            "payment_amount",
            "payer_inn",
            "payer",
            "invoice_number",
            "invoice_ref",
            "allocated",
            "method",
            "confidence",
            "detail",
        ],
    )
    for problem in problems:
        click.echo(f"skipped: {problem}", err=True)
    counts = result.payments_by_method()
    click.echo(
        f"{len(payments)} payments, {len(invoices)} invoices -> {out}: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )


@click.command("statement")
@click.argument("statement_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--account", "accounts", multiple=True, help="Our account (default: the statement's own).")
def inspect_statement(statement_file: Path, accounts: tuple[str, ...]) -> None:
    """Print the payments parsed from a 1CClientBankExchange file as JSON lines (with what the
    matching will use: the payer's valid ИНН, name and the invoices the purpose names), why a section
    or document would be quarantined, and a last summary line: documents, incoming, outgoing, other,
    malformed, the encoding the file was read in, and warnings (a file cut short, an ИНН failing its
    checksum)."""
    from hub.receivables.purpose import invoice_references

    try:
        statement = parse_statement(statement_file.read_bytes())
    except PermanentSourceError as exc:
        raise click.ClickException(str(exc)) from None
    ours = accounts or load_settings().accounting.our_accounts
    warnings = statement.warnings()
    for section in statement.malformed:
        click.echo(json.dumps({"line": section.line, "quarantine": section.reason}, ensure_ascii=False))
    for item in statement_payments(statement, ours):
        warnings += item.warnings
        if item.record is None:
            out: dict[str, Any] = {"line": item.line, "quarantine": describe_error(item.error or "invalid")}
        else:
            record = item.record
            out = {"line": item.line, **record.model_dump(exclude_none=True, exclude_defaults=True)}
            out["match_on"] = {
                "payer_inn": record.payer_tax_id,
                "payer_name": record.payer_name,
                "invoices": [ref.number for ref in invoice_references(record.purpose)],
            }
            if item.warnings:
                out["warnings"] = item.warnings
        click.echo(json.dumps(out, ensure_ascii=False, default=str))
    summary = {"file": str(statement_file), **statement_summary(statement, ours)}
    click.echo(json.dumps({"summary": summary, "warnings": warnings}, ensure_ascii=False, default=str))
    sys.stdout.flush()
