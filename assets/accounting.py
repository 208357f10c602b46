"""Dagster assets of accounting: invoices and payments from 1C, bank statements and CSV; payments
allocated to invoices; receivables with aging and the unmatched queue for finance; blocking
checks that hold the books together; a sensor on the watched statements folder."""

import hashlib
import json
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    sensor,
)
from sqlalchemy import select

from assets.folders import file_sizes
from assets.metadata import ingest_metadata, markdown_table
from assets.resources import AccountingResource, HubSettingsResource, StoreResource
from assets.retries import TRANSIENT_RETRY_POLICY, fail_fast_on_permanent_errors
from hub.ingest.accounting import sync_odata, sync_payments_csv_dir, sync_statement_dir
from hub.ingest.stats import IngestStats
from hub.masking import mask_text
from hub.receivables.checks import (
    invoices_over_allocated,
    latest_receivables_date,
    outstanding_mismatches,
    payments_over_allocated,
)
from hub.receivables.ledger import aging_summary, receivables_by_contact, reconcile, write_receivables
from hub.store.models import Payment, UnmatchedPayment

TAGS = {"source": "accounting"}


def today_in(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()


@asset(
    group_name="accounting",
    owners=["team:finance"],
    kinds={"python", "sql"},
    tags=TAGS,
    retry_policy=TRANSIENT_RETRY_POLICY,
    description="Invoices to clients (1C Document_СчетНаОплатуПокупателю, posted and not deleted) and the "
    "1C counterparties they name, into crm_invoices linked to CRM contacts by ИНН. 1C's $metadata is "
    "checked first; money is held as Decimal, dates in the configured time zone.",
)
@fail_fast_on_permanent_errors
def invoices(
    context: AssetExecutionContext,
    store: StoreResource,
    accounting: AccountingResource,
    hub_settings: HubSettingsResource,
) -> MaterializeResult:
    settings = hub_settings.load()
    source = accounting.odata_source(settings.timezone)
    stats = IngestStats()
    if source is None:
        context.log.info("no 1C base configured (HUB_ACCOUNTING__ODATA_URL): nothing to read")
    else:
        stats = sync_odata(
            store.database_url,
            source,
            settings.accounting.odata_since,
            kinds=("invoices",),
            lookback_days=settings.accounting.odata_lookback_days,
        )
    return MaterializeResult(metadata=ingest_metadata(stats))


@asset(
    group_name="accounting",
    owners=["team:finance"],
    kinds={"python", "sql"},
    tags=TAGS,
    retry_policy=TRANSIENT_RETRY_POLICY,
    description="Payments from clients into crm_payments: 1C Document_ПоступлениеНаРасчетныйСчет with its "
    "РасшифровкаПлатежа links, 1CClientBankExchange statements from the watched folder (cp1251/cp866; "
    "money into our accounts, refunds out of them) and payments CSV files. A malformed statement "
    "section is quarantined with file and line while the rest loads.",
)
@fail_fast_on_permanent_errors
def payments(
    context: AssetExecutionContext,
    store: StoreResource,
    accounting: AccountingResource,
    hub_settings: HubSettingsResource,
) -> MaterializeResult:
    settings = hub_settings.load()
    total = IngestStats()
    per_way: dict[str, int] = {}
    source = accounting.odata_source(settings.timezone)
    if source is not None:
        odata = sync_odata(
            store.database_url,
            source,
            settings.accounting.odata_since,
            kinds=("payments",),
            lookback_days=settings.accounting.odata_lookback_days,
        )
        per_way["onec_written"] = odata.written
        total.merge(odata)
    if accounting.statements_dir:
        statements = sync_statement_dir(
            store.database_url, accounting.statements_dir, settings.accounting.our_accounts
        )
        per_way["statement_written"] = statements.written
        total.merge(statements)
    if accounting.payments_csv_dir:
        csv = sync_payments_csv_dir(store.database_url, accounting.payments_csv_dir)
        per_way["csv_written"] = csv.written
        total.merge(csv)
    context.log.info("payments: %s", total.as_dict())
    return MaterializeResult(metadata=ingest_metadata(total, **per_way))


@asset(
    group_name="accounting",
    owners=["team:finance"],
    kinds={"python", "sql"},
    deps=[invoices, payments],
    description="Every payment allocated to invoices, most certain evidence first: 1C's explicit link, the "
    "invoice number (and date) in the purpose scoped to the payer's ИНН, ИНН + exact open amount, FIFO by "
    "due date when HUB_ACCOUNTING__FIFO is on. Overpayments are held as credit, refunds draw on it; the "
    "rest waits in hub_unmatched_payments. Each allocation stores its method and confidence; invoice "
    "statuses (open, partially_paid, paid, overdue) are written back.",
)
def payment_allocations(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    settings = hub_settings.load()
    as_of = today_in(settings.timezone)
    with store.session() as session:
        stats, result = reconcile(session, as_of, fifo=settings.accounting.fifo, with_receivables=False)
    methods = [
        {"method": m, "payments": n, "amount": stats.allocated_by_method.get(m, "")}
        for m, n in sorted(stats.by_method.items())
    ]
    return MaterializeResult(
        metadata={
            "as_of": str(as_of),
            "invoices": stats.invoices,
            "payments": stats.payments,
            "allocations": len(result.allocations),
            "allocations_written": stats.allocations_written,
            "allocations_removed": stats.allocations_removed,
            "unmatched": stats.unmatched,
            "statuses_changed": stats.statuses_changed,
            "by_method": markdown_table(methods),
        }
    )


def unmatched_queue(session: Any, limit: int = 25) -> list[dict[str, Any]]:
    rows = session.execute(
        select(UnmatchedPayment, Payment)
        .join(Payment, Payment.id == UnmatchedPayment.payment_id)
        .order_by(Payment.paid_on, Payment.id)
        .limit(limit)
    ).all()
    queue = []
    for entry, pay in rows:
        best = entry.candidates[0] if entry.candidates else None
        queue.append(
            {
                "paid_on": str(pay.paid_on),
                "amount": str(entry.amount),
                "payer": pay.payer_name or "",
                "inn": pay.payer_tax_id or "",
                "purpose": mask_text(pay.purpose)[:60],
                "reason": entry.reason,
                "best_candidate": f"{best['number']} ({best['confidence']:.0%})" if best else "",
            }
        )
    return queue


@asset(
    group_name="accounting",
    owners=["team:finance"],
    kinds={"python", "sql"},
    deps=[payment_allocations],
    description="Receivables as of today, per invoice (crm_receivables: outstanding, days past due, aging "
    "bucket current / 1-30 / 31-60 / 61-90 / 90+ by due date) and per client, with the aging summary and "
    "the queue of payments waiting for finance.",
)
def receivables(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    settings = hub_settings.load()
    as_of = today_in(settings.timezone)
    with store.session() as session:
        rows = write_receivables(session, as_of)
        per_client = receivables_by_contact(session, rows)
        queue = unmatched_queue(session)
        queued = session.query(UnmatchedPayment).count()
    summary = aging_summary(rows)
    outstanding = sum((r["outstanding"] for r in rows if r["outstanding"] > 0), start=0)
    overdue = sum((r["outstanding"] for r in rows if r["outstanding"] > 0 and r["days_overdue"] > 0), start=0)
    top_clients = [
        {
            "client": c["client"],
            "outstanding": str(c["outstanding"]),
            "max_days_overdue": c["max_days_overdue"],
            **{b: str(c[b]) for b in ("current", "1-30", "31-60", "61-90", "90+")},
        }
        for c in per_client[:15]
    ]
    return MaterializeResult(
        metadata={
            "as_of": str(as_of),
            "invoices": len(rows),
            "outstanding_total": MetadataValue.float(float(outstanding)),
            "overdue_total": MetadataValue.float(float(overdue)),
            "unmatched_payments": queued,
            "aging_summary": markdown_table(summary),
            "by_client": markdown_table(top_clients),
            "unmatched_queue": markdown_table(queue, empty="_every payment is placed_"),
        }
    )


@asset_check(
    asset=payment_allocations,
    blocking=True,
    description="No payment is allocated beyond its amount (a refund beyond its own), and no invoice "
    "beyond its amount.",
)
def allocations_within_amounts(store: StoreResource) -> AssetCheckResult:
    with store.session() as session:
        payments_over = payments_over_allocated(session)
        invoices_over = invoices_over_allocated(session)
    return AssetCheckResult(
        passed=not payments_over and not invoices_over,
        metadata={
            "payments_over_allocated": len(payments_over),
            "invoices_over_allocated": len(invoices_over),
            "examples": markdown_table([*payments_over[:5], *invoices_over[:5]], empty="_none_"),
        },
    )


@asset_check(
    asset=receivables,
    blocking=True,
    description="Outstanding = invoiced - allocated, for every invoice and in total, on the latest "
    "receivables written.",
)
def outstanding_equals_invoiced_minus_allocated(store: StoreResource) -> AssetCheckResult:
    with store.session() as session:
        as_of = latest_receivables_date(session)
        problems = outstanding_mismatches(session, as_of) if as_of else []
    return AssetCheckResult(
        passed=not problems,
        metadata={
            "as_of": str(as_of),
            "mismatches": len(problems),
            "examples": markdown_table(problems[:10], empty="_none_"),
        },
    )


@sensor(
    target=[AssetKey("payments")],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Materializes `payments` when a bank statement file appears in the watched folder "
    "(HUB_ACCOUNTING__STATEMENTS_DIR) or changes. The hub's own cursor (file name and size, committed with "
    "the payments) decides what is read, so a repeated tick is harmless.",
)
def statements_folder_sensor(
    context: SensorEvaluationContext, accounting: AccountingResource
) -> RunRequest | SkipReason:
    state = file_sizes(accounting.statements_dir)
    if not state:
        return SkipReason("no statements folder configured or no files in it")
    previous = json.loads(context.cursor) if context.cursor else {}
    changed = sorted(name for name, size in state.items() if previous.get(name) != size)
    if not changed:
        return SkipReason("no statement file is new or changed")
    context.update_cursor(json.dumps(state))
    key = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]
    return RunRequest(run_key=f"statements-{key}", tags={"statement_files": ",".join(changed)[:200]})


ACCOUNTING_CHECKS = [allocations_within_amounts, outstanding_equals_invoiced_minus_allocated]
ACCOUNTING_SENSORS = [statements_folder_sensor]
