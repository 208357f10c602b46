"""Conversions (leads, won deals, opened deals) and their attribution weights per channel and model,
written to `crm_lead_attribution`; paid revenue per deal is counted from payment allocations."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.attribution.models import MODELS, attribute, build_paths
from hub.attribution.touches import load_touches
from hub.frames import lookup
from hub.store.models import Deal, Invoice, Lead, LeadAttribution, Payment, PaymentAllocation
from hub.store.prune import delete_rows_not_in
from hub.store.upsert import upsert
from hub.timeutil import utcnow

UNATTRIBUTED = "unattributed"
# The kinds stored in crm_lead_attribution; "deal_opened" is computed for the report only.
STORED_KINDS = ("lead", "deal")


@dataclass
class AttributionStats:
    conversions: dict[str, int] = field(default_factory=dict)
    unattributed: dict[str, int] = field(default_factory=dict)
    rows_written: int = 0
    rows_removed: int = 0


def load_conversions(session: Session) -> dict[str, pd.DataFrame]:
    """Each kind's conversions as (conversion, contact_id, converted_at): leads (not duplicates)
    when submitted, deals when opened, won deals when closed."""
    leads = session.execute(
        select(Lead.id, Lead.contact_id, Lead.submitted_at).where(
            Lead.contact_id.is_not(None), Lead.status != "duplicate"
        )
    ).all()
    opened = session.execute(
        select(Deal.id, Deal.contact_id, Deal.opened_at).where(Deal.contact_id.is_not(None))
    ).all()
    won = session.execute(
        select(Deal.id, Deal.contact_id, Deal.closed_at).where(
            Deal.contact_id.is_not(None), Deal.status == "won", Deal.closed_at.is_not(None)
        )
    ).all()
    out = {}
    for kind, rows in (("lead", leads), ("deal", won), ("deal_opened", opened)):
        frame = pd.DataFrame(rows, columns=["conversion", "contact_id", "converted_at"])
        frame["converted_at"] = pd.to_datetime(frame["converted_at"], utc=True)
        out[kind] = frame
    return out


def paid_revenue_by_deal(session: Session, start: Any = None, end: Any = None) -> dict[int, Decimal]:
    """Money received for each deal: payments allocated to the deal's invoices (refunds
    negative), optionally only payments dated within [start, end]."""
    query = (
        select(Invoice.deal_id, func.sum(PaymentAllocation.amount))
        .join(Invoice, PaymentAllocation.invoice_id == Invoice.id)
        .join(Payment, PaymentAllocation.payment_id == Payment.id)
        .where(Invoice.deal_id.is_not(None))
        .group_by(Invoice.deal_id)
    )
    if start is not None:
        query = query.where(Payment.paid_on >= start)
    if end is not None:
        query = query.where(Payment.paid_on <= end)
    return {int(deal_id): Decimal(total) for deal_id, total in session.execute(query).all()}


def attribute_conversions(
    touches: pd.DataFrame, conversions: pd.DataFrame, lookback_days: float, half_life_days: float
) -> tuple[pd.DataFrame, int]:
    """Weights of each conversion; one without a touch in the window goes wholly to "unattributed".
    Returns (weights, number of unattributed conversions)."""
    paths, untouched = build_paths(touches, conversions, lookback_days)
    weights = attribute(paths, half_life_days)
    if not untouched.empty:
        filler = pd.DataFrame(
            [(c, m, UNATTRIBUTED, "") for c in untouched["conversion"] for m in MODELS],
            columns=["conversion", "model", "channel", "campaign"],
        )
        filler["weight"] = 1.0
        weights = pd.concat([weights, filler], ignore_index=True)
    return weights, len(untouched)


def compute_all(
    session: Session, lookback_days: float, half_life_days: float
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], AttributionStats]:
    """(weights per kind, conversions per kind, stats) for leads, won deals and opened deals."""
    touches = load_touches(session)
    stats = AttributionStats()
    results = {}
    conversions_by_kind = load_conversions(session)
    for kind, conversions in conversions_by_kind.items():
        weights, untouched = attribute_conversions(touches, conversions, lookback_days, half_life_days)
        contacts = conversions.set_index("conversion")["contact_id"]
        weights["contact_id"] = lookup(weights["conversion"], contacts)
        results[kind] = weights
        stats.conversions[kind] = len(conversions)
        stats.unattributed[kind] = untouched
    return results, conversions_by_kind, stats


def write_attribution(session: Session, lookback_days: float, half_life_days: float) -> AttributionStats:
    """Recompute every lead's and won deal's weights and store them."""
    results, _, stats = compute_all(session, lookback_days, half_life_days)
    return store_attribution(session, results, stats)


def store_attribution(
    session: Session, results: dict[str, pd.DataFrame], stats: AttributionStats
) -> AttributionStats:
    """Store the weights of leads and won deals (won deals with their paid revenue split by the
    weights); rows of channels a conversion no longer has are removed, so the table always sums
    to one per conversion and model."""
    revenue = paid_revenue_by_deal(session)
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for kind in STORED_KINDS:
        for rec in results[kind].itertuples(index=False):
            paid = revenue.get(int(rec.conversion)) if kind == "deal" else None
            rows.append(
                {
                    "conversion_kind": kind,
                    "conversion_id": int(rec.conversion),
                    "contact_id": int(rec.contact_id),
                    "model": rec.model,
                    "channel": rec.channel,
                    "campaign": rec.campaign,
                    "weight": float(rec.weight),
                    "revenue": (paid * Decimal(str(rec.weight))).quantize(Decimal("0.01"))
                    if paid is not None
                    else None,
                    "computed_at": now,
                }
            )
    key = ["conversion_kind", "conversion_id", "model", "channel", "campaign"]
    upsert(session, LeadAttribution, rows, key=key, update=["contact_id", "weight", "revenue", "computed_at"])
    stats.rows_written = len(rows)
    fresh = {tuple(r[column] for column in key) for r in rows}
    stats.rows_removed = delete_rows_not_in(session, LeadAttribution, key, fresh)
    return stats
