"""Demo data of analytics: the web leads, tracked calls and emails that led to the seeded deals,
invoices and payments of the won deals, tasks, ad costs per channel per day (a CSV imported as
`hub import-costs` does), and one deal that moved back a stage so the check has something to show."""

from __future__ import annotations

import csv
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.attribution.costs import import_costs
from hub.settings import load_settings
from hub.store.models import (
    Activity,
    Contact,
    Deal,
    DealStageChange,
    Invoice,
    Lead,
    Payment,
    PaymentAllocation,
    Task,
)
from hub.store.upsert import upsert

SOURCE = "demo_analytics"
# Rows written in one upsert share their columns.
ACTIVITY_DEFAULTS: dict[str, Any] = {
    "deal_id": None,
    "direction": None,
    "disposition": None,
    "duration_s": None,
    "subject": None,
    "channel": None,
    "details": {},
}
ARCHIVE = "site_archive"  # leads of past months, already resolved and worked on
# (utm fields or referrer, daily cost range or None for channels without ad spend)
CHANNEL_MIX: list[tuple[dict[str, str], tuple[int, int] | None]] = [
    ({"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "brand"}, (1500, 2500)),
    ({"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "stroymaterialy"}, (2500, 4500)),
    ({"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "pl-budownictwo"}, (800, 1500)),
    ({"utm_source": "vk", "utm_medium": "social", "utm_campaign": "retarget"}, (600, 1200)),
    ({"referrer": "https://yandex.ru/search/?text=упаковка"}, None),
    ({"referrer": "https://www.google.com/"}, None),
    ({"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "november"}, None),
    ({"referrer": "https://partner-portal.ru/catalog"}, None),
    ({}, None),
]
CALL_CHANNELS = [("yandex / cpc", "calls-yandex"), ("avito / classified", "")]
COST_DAYS = 120
STAGES = ["new", "qualified", "proposal", "negotiation", "invoice"]


def write_cost_csv(path: Path, today: date, rng: random.Random) -> Path:
    """An ad cabinet export: date;channel;campaign;cost with a decimal comma."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(["date", "utm_source", "utm_medium", "campaign", "cost"])
        for offset in range(COST_DAYS, 0, -1):
            day = today - timedelta(days=offset)
            for fields, spend in CHANNEL_MIX:
                if spend is None:
                    continue
                cost = Decimal(rng.randint(*spend)) + Decimal(rng.randint(0, 99)) / 100
                writer.writerow(
                    [
                        day.isoformat(),
                        fields["utm_source"],
                        fields["utm_medium"],
                        fields["utm_campaign"],
                        str(cost).replace(".", ","),
                    ]
                )
    return path


def _archive_lead(
    deal: Deal, contact: Contact, at: datetime, ref: str, fields: dict[str, str]
) -> dict[str, Any]:
    return {
        "source_system": ARCHIVE,
        "source_ref": ref,
        "name": contact.name,
        "phone_e164": contact.phone_e164,
        "email": contact.email,
        "utm_source": fields.get("utm_source"),
        "utm_medium": fields.get("utm_medium"),
        "utm_campaign": fields.get("utm_campaign"),
        "referrer": fields.get("referrer"),
        "submitted_at": at,
        "status": "converted",
        "contact_id": contact.id,
        "resolved_at": at,
        "resolution_reason": "demo: archive of past leads",
        "assigned_rep_id": deal.rep_id,
        "assigned_at": at,
        "routing_reason": "demo: archive of past leads",
    }


def _paths_to_deals(session: Session, deals: list[Deal], rng: random.Random, now: datetime) -> None:
    """Each deal's lead (and sometimes an earlier visit), a tracked call, a sent email."""
    contacts = {
        c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_({d.contact_id for d in deals})))
    }
    leads, activities, deal_leads = [], [], {}
    for deal in deals:
        contact = contacts[deal.contact_id]
        opened = deal.opened_at if deal.opened_at.tzinfo else deal.opened_at.replace(tzinfo=UTC)
        lead_at = opened - timedelta(days=rng.randint(1, 6), hours=rng.randint(0, 9))
        fields, _ = rng.choice(CHANNEL_MIX)
        ref = f"arch-{deal.source_ref}"
        leads.append(_archive_lead(deal, contact, lead_at, ref, fields))
        deal_leads[deal.id] = ref
        if rng.random() < 0.5:
            earlier, _ = rng.choice(CHANNEL_MIX)
            first_at = lead_at - timedelta(days=rng.randint(5, 40))
            leads.append(_archive_lead(deal, contact, first_at, f"arch-{deal.source_ref}-first", earlier))
        if rng.random() < 0.4:
            channel, campaign = rng.choice(CALL_CHANNELS)
            activities.append(
                {
                    **ACTIVITY_DEFAULTS,
                    "source_system": SOURCE,
                    "source_ref": f"call-{deal.source_ref}",
                    "kind": "call",
                    "occurred_at": lead_at + timedelta(hours=rng.randint(2, 30)),
                    "contact_id": contact.id,
                    "rep_id": deal.rep_id,
                    "direction": "inbound",
                    "disposition": "answered",
                    "duration_s": rng.randint(60, 600),
                    "channel": channel,
                    "details": {"campaign": campaign} if campaign else {},
                }
            )
        sent_at = opened + timedelta(days=rng.randint(0, 3), hours=3)
        if sent_at < now and rng.random() < 0.6:
            activities.append(
                {
                    **ACTIVITY_DEFAULTS,
                    "source_system": SOURCE,
                    "source_ref": f"email-{deal.source_ref}",
                    "kind": "email_sent",
                    "occurred_at": sent_at,
                    "contact_id": contact.id,
                    "rep_id": deal.rep_id,
                    "deal_id": deal.id,
                    "direction": "outbound",
                    "subject": f"Коммерческое предложение: {deal.title}",
                    "details": {},
                }
            )
    upsert(
        session,
        Lead,
        leads,
        key=["source_system", "source_ref"],
        update=["utm_source", "utm_medium", "utm_campaign", "referrer", "submitted_at"],
    )
    upsert(
        session,
        Activity,
        activities,
        key=["source_system", "source_ref"],
        update=["occurred_at", "channel", "details"],
    )
    lead_ids = dict(
        session.execute(select(Lead.source_ref, Lead.id).where(Lead.source_system == ARCHIVE)).all()
    )
    for deal_id, ref in deal_leads.items():
        session.execute(update(Deal).where(Deal.id == deal_id).values(lead_id=lead_ids[ref]))


def _money_for_won_deals(session: Session, deals: list[Deal], rng: random.Random, today: date) -> None:
    """An invoice per won deal and its payment, linked as 1C links them, so the receivables
    matcher allocates them the same way; a few paid in two parts, one not paid yet."""
    won = [d for d in deals if d.status == "won" and d.closed_at is not None]
    invoices, payments, plan = [], [], []
    for index, deal in enumerate(won):
        closed = deal.closed_at.date()
        issued = closed - timedelta(days=2)
        ref = f"AN-INV-{deal.source_ref}"
        amount = Decimal(deal.amount or 0)
        invoices.append(
            {
                "source_system": SOURCE,
                "source_ref": ref,
                "number": f"A-{deal.id}",
                "issued_on": issued,
                "due_on": issued + timedelta(days=10),
                "amount": amount,
                "contact_id": deal.contact_id,
                "deal_id": deal.id,
                "status": "open",
            }
        )
        if index == 0:
            continue  # one won deal whose invoice is still unpaid
        if rng.random() < 0.7:
            parts = [amount]
        else:  # an advance of 40 % and the rest later
            advance = (amount * Decimal("0.4")).quantize(Decimal("0.01"))
            parts = [advance, amount - advance]
        paid_on = closed + timedelta(days=rng.randint(0, 5))
        for part_no, part in enumerate(parts):
            day = paid_on + timedelta(days=12 * part_no)
            if day > today:
                break
            pay_ref = f"AN-PAY-{deal.source_ref}-{part_no + 1}"
            payments.append(
                {
                    "source_system": SOURCE,
                    "source_ref": pay_ref,
                    "paid_on": day,
                    "amount": part,
                    "purpose": f"Оплата по счету № A-{deal.id} от {issued:%d.%m.%Y}",
                    "linked_invoice_refs": [{"ref": ref, "amount": str(part)}],
                    "contact_id": deal.contact_id,
                }
            )
            plan.append((pay_ref, ref, part))
    upsert(
        session,
        Invoice,
        invoices,
        key=["source_system", "source_ref"],
        update=["amount", "deal_id", "due_on"],
    )
    upsert(session, Payment, payments, key=["source_system", "source_ref"], update=["amount", "paid_on"])
    invoice_ids = dict(
        session.execute(select(Invoice.source_ref, Invoice.id).where(Invoice.source_system == SOURCE)).all()
    )
    payment_ids = dict(
        session.execute(select(Payment.source_ref, Payment.id).where(Payment.source_system == SOURCE)).all()
    )
    allocations = [
        {
            "payment_id": payment_ids[pay_ref],
            "invoice_id": invoice_ids[inv_ref],
            "amount": part,
            "method": "explicit_link",
            "detail": "linked by the accounting system",
        }
        for pay_ref, inv_ref, part in plan
    ]
    upsert(session, PaymentAllocation, allocations, key=["payment_id", "invoice_id"], update=[])


def _tasks_and_a_backward_move(
    session: Session, deals: list[Deal], rng: random.Random, now: datetime
) -> None:
    open_deals = [d for d in deals if d.status == "open"]
    tasks = []
    for deal in open_deals:
        if rng.random() < 0.4:
            continue  # a deal nobody planned the next step for: the morning check shows it
        tasks.append(
            {
                "source_system": SOURCE,
                "source_ref": f"next-step-{deal.source_ref}",
                "kind": "follow_up",
                "title": f"Следующий шаг: {deal.title}",
                "rep_id": deal.rep_id,
                "contact_id": deal.contact_id,
                "deal_id": deal.id,
                "due_at": now + timedelta(days=rng.randint(-4, 5)),
                "done": False,
            }
        )
    upsert(session, Task, tasks, key=["source_system", "source_ref"], update=["due_at", "title"])
    moved = next((d for d in open_deals if STAGES.index(d.stage) >= 2), None)
    if moved is None:
        return
    reached = STAGES.index(moved.stage)
    opened = moved.opened_at if moved.opened_at.tzinfo else moved.opened_at.replace(tzinfo=UTC)
    back_at = opened + timedelta(days=3 * reached, hours=20)
    history = [
        {"deal_id": moved.id, "stage": STAGES[reached - 1], "entered_at": back_at},
        {"deal_id": moved.id, "stage": moved.stage, "entered_at": back_at + timedelta(days=1)},
    ]
    upsert(session, DealStageChange, history, key=["deal_id", "stage", "entered_at"], update=[])


def generate_analytics_demo(
    session: Session, demo_dir: Path, today: date, database_url: str, seed: int = 107
) -> dict[str, Any]:
    rng = random.Random(seed)
    now = datetime.combine(today, datetime.min.time(), UTC) + timedelta(hours=8)
    deals = session.scalars(
        select(Deal)
        .where(Deal.source_system == "crm", Deal.contact_id.is_not(None))
        .order_by(Deal.source_ref)
    ).all()
    _paths_to_deals(session, list(deals), rng, now)
    _money_for_won_deals(session, list(deals), rng, today)
    _tasks_and_a_backward_move(session, list(deals), rng, now)
    costs = write_cost_csv(demo_dir / "analytics" / "ad_costs.csv", today, rng)
    import_costs(session, costs, load_settings().analytics.channels)
    return {"analytics": {"report_days": 120, "plan_monthly_revenue": 3_000_000}}
