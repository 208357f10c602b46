"""The monthly sales plan from the facts: from a revenue (or profit and margin) target, the actual
average check, conversions and calls, how many deals, leads, calls and reps a month needs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.store.models import Activity, Deal, Invoice, Lead, Payment, PaymentAllocation

DAYS_PER_MONTH = 365.25 / 12


class PlanError(ValueError):
    """The target or the facts do not allow a plan; the message says which figure is missing."""


@dataclass(frozen=True)
class PlanFacts:
    """What the last `days` days show; money from payments, not from deal amounts."""

    days: int
    leads: int
    deals_opened: int
    won: int
    lost: int
    paid_revenue: float
    paying_deals: int
    calls: int
    calling_reps: int
    working_days_per_month: float

    @property
    def average_check(self) -> float | None:
        return self.paid_revenue / self.paying_deals if self.paying_deals else None

    @property
    def lead_to_deal(self) -> float | None:
        return self.deals_opened / self.leads if self.leads else None

    @property
    def win_rate(self) -> float | None:
        return self.won / (self.won + self.lost) if self.won + self.lost else None

    @property
    def calls_per_lead(self) -> float | None:
        return self.calls / self.leads if self.leads else None

    @property
    def calls_per_rep_day(self) -> float | None:
        working_days = self.days * self.working_days_per_month / DAYS_PER_MONTH
        return self.calls / (self.calling_reps * working_days) if self.calling_reps and working_days else None


@dataclass(frozen=True)
class Plan:
    revenue_target: float
    won_deals: int
    deals: int
    leads: int
    calls: int
    reps: int
    average_check: float
    win_rate: float
    lead_to_deal: float
    calls_per_lead: float
    calls_per_rep_day: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def revenue_target(revenue: float | None, profit: float | None, margin: float | None) -> float:
    """The monthly revenue a target means: given directly, or profit / margin (25 or 0.25 both mean 25 %)."""
    if revenue is not None and revenue > 0:
        return float(revenue)
    if profit is None or profit <= 0:
        raise PlanError(
            "give a monthly revenue target (--revenue) or a profit target with a margin (--profit, --margin)"
        )
    if margin is None or margin <= 0:
        raise PlanError("a profit target needs the margin (--margin, e.g. 25 or 0.25 for 25 %)")
    share = margin / 100 if margin > 1 else margin
    return float(profit) / share


def make_plan(target: float, facts: PlanFacts) -> Plan:
    """Each step divides by an actual rate and rounds up: a fraction of a deal or a rep is a whole one."""
    missing = [
        name
        for name, value in (
            ("average check (no payments for won deals in the period)", facts.average_check),
            ("win rate (no deals closed in the period)", facts.win_rate),
            ("lead-to-deal conversion (no leads or deals in the period)", facts.lead_to_deal),
        )
        if not value
    ]
    if missing:
        raise PlanError(f"the last {facts.days} days do not show: " + "; ".join(missing))
    average_check = float(facts.average_check or 0)
    win_rate = float(facts.win_rate or 0)
    lead_to_deal = float(facts.lead_to_deal or 0)
    won_deals = math.ceil(target / average_check)
    deals = math.ceil(won_deals / win_rate)
    leads = math.ceil(deals / lead_to_deal)
    calls_per_lead = facts.calls_per_lead or 0.0
    calls = math.ceil(leads * calls_per_lead)
    rate = facts.calls_per_rep_day or 0.0
    reps = math.ceil(calls / (rate * facts.working_days_per_month)) if rate > 0 else 0
    return Plan(
        revenue_target=target,
        won_deals=won_deals,
        deals=deals,
        leads=leads,
        calls=calls,
        reps=reps,
        average_check=round(average_check, 2),
        win_rate=round(win_rate, 4),
        lead_to_deal=round(lead_to_deal, 4),
        calls_per_lead=round(calls_per_lead, 3),
        calls_per_rep_day=round(rate, 2),
    )


def load_facts(session: Session, today: date, days: int, working_days_per_month: float) -> PlanFacts:
    """Facts of the `days` days up to and including `today` (UTC days)."""
    start_day = today - timedelta(days=days - 1)
    start_at = datetime.combine(start_day, time.min, UTC)
    end_at = datetime.combine(today + timedelta(days=1), time.min, UTC)

    def count(query: Any) -> int:
        return int(session.scalar(query) or 0)

    leads = count(
        select(func.count())
        .select_from(Lead)
        .where(Lead.submitted_at >= start_at, Lead.submitted_at < end_at, Lead.status != "duplicate")
    )
    opened = count(
        select(func.count()).select_from(Deal).where(Deal.opened_at >= start_at, Deal.opened_at < end_at)
    )
    closed = select(func.count()).select_from(Deal).where(Deal.closed_at >= start_at, Deal.closed_at < end_at)
    won = count(closed.where(Deal.status == "won"))
    lost = count(closed.where(Deal.status == "lost"))
    paid = session.execute(
        select(func.sum(PaymentAllocation.amount), func.count(func.distinct(Invoice.deal_id)))
        .join(Invoice, PaymentAllocation.invoice_id == Invoice.id)
        .join(Payment, PaymentAllocation.payment_id == Payment.id)
        .where(Invoice.deal_id.is_not(None), Payment.paid_on >= start_day, Payment.paid_on <= today)
    ).one()
    calls = session.execute(
        select(func.count(), func.count(func.distinct(Activity.rep_id))).where(
            Activity.kind == "call", Activity.occurred_at >= start_at, Activity.occurred_at < end_at
        )
    ).one()
    return PlanFacts(
        days=days,
        leads=leads,
        deals_opened=opened,
        won=won,
        lost=lost,
        paid_revenue=float(paid[0] or 0),
        paying_deals=int(paid[1] or 0),
        calls=int(calls[0]),
        calling_reps=int(calls[1]),
        working_days_per_month=working_days_per_month,
    )
