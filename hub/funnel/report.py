"""The sales funnel per pipeline and rep for a period, from the deals' stage history: deals entering
each stage, conversion to a later stage, median time in stage, win rate and cycle from lead to paid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.frames import lookup
from hub.store.models import (
    Deal,
    DealStageChange,
    FunnelStageReport,
    FunnelSummary,
    Invoice,
    Lead,
    Payment,
    PaymentAllocation,
)
from hub.store.prune import delete_rows_not_in
from hub.store.upsert import upsert
from hub.timeutil import utcnow

ALL_REPS = 0
SECONDS_PER_DAY = 86_400.0


@dataclass
class FunnelData:
    """What the funnel needs from the store, as frames with aware UTC times."""

    deals: pd.DataFrame  # deal_id, pipeline, rep_id, stage, status, opened_at, closed_at, lead_at
    history: pd.DataFrame  # deal_id, stage, entered_at
    paid_at: pd.Series  # deal_id -> when its invoices were paid in full


def _utc(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def load_funnel_data(session: Session) -> FunnelData:
    deals = pd.DataFrame(
        session.execute(
            select(
                Deal.id,
                Deal.pipeline,
                Deal.rep_id,
                Deal.stage,
                Deal.status,
                Deal.opened_at,
                Deal.closed_at,
                Lead.submitted_at,
            ).outerjoin(Lead, Deal.lead_id == Lead.id)
        ).all(),
        columns=["deal_id", "pipeline", "rep_id", "stage", "status", "opened_at", "closed_at", "lead_at"],
    )
    deals = _utc(deals, "opened_at", "closed_at", "lead_at")
    deals["rep_id"] = pd.to_numeric(deals["rep_id"]).fillna(ALL_REPS).astype(int)
    history = pd.DataFrame(
        session.execute(
            select(DealStageChange.deal_id, DealStageChange.stage, DealStageChange.entered_at).order_by(
                DealStageChange.deal_id, DealStageChange.entered_at, DealStageChange.id
            )
        ).all(),
        columns=["deal_id", "stage", "entered_at"],
    )
    return FunnelData(deals, _utc(history, "entered_at"), paid_in_full_at(session))


def paid_in_full_at(session: Session) -> pd.Series:
    """For each deal with invoices, the day the payments allocated to them first covered the
    invoiced total (a deal paid in parts is paid on the day of the last part)."""
    invoiced = pd.DataFrame(
        session.execute(select(Invoice.deal_id, Invoice.amount).where(Invoice.deal_id.is_not(None))).all(),
        columns=["deal_id", "amount"],
    )
    allocations = pd.DataFrame(
        session.execute(
            select(Invoice.deal_id, Payment.paid_on, PaymentAllocation.amount)
            .join(Invoice, PaymentAllocation.invoice_id == Invoice.id)
            .join(Payment, PaymentAllocation.payment_id == Payment.id)
            .where(Invoice.deal_id.is_not(None))
            .order_by(Payment.paid_on, Payment.id)
        ).all(),
        columns=["deal_id", "paid_on", "amount"],
    )
    if invoiced.empty or allocations.empty:
        return pd.Series(dtype="datetime64[ns, UTC]", name="paid_at")
    # Decimals arrive as objects; cents are exact enough in float for a comparison of totals.
    invoiced["amount"] = invoiced["amount"].astype(float)
    allocations["amount"] = allocations["amount"].astype(float)
    total = invoiced.groupby("deal_id")["amount"].sum()
    allocations["paid"] = allocations.groupby("deal_id")["amount"].cumsum()
    allocations["due"] = lookup(allocations["deal_id"], total)
    covered = allocations[(allocations["due"] > 0) & (allocations["paid"] >= allocations["due"])]
    first = covered.groupby("deal_id")["paid_on"].min()
    return pd.to_datetime(first, utc=True).rename("paid_at")


def stage_order(pipeline: str, history: pd.DataFrame, configured: dict[str, list[str]]) -> list[str]:
    """The configured stages, then any other stage seen in the history, by its usual position."""
    stages = list(configured.get(pipeline, []))
    seen = history.assign(position=history.groupby("deal_id").cumcount())
    usual = seen.groupby("stage")["position"].median().sort_values(kind="stable")
    stages.extend(stage for stage in usual.index if stage not in stages)
    return stages


def in_period(stamps: pd.Series, start: date, end: date, timezone: str) -> pd.Series:
    """Which aware timestamps fall on the days start..end (inclusive) in the given time zone."""
    begin = pd.Timestamp(start).tz_localize(timezone)
    after = pd.Timestamp(end + timedelta(days=1)).tz_localize(timezone)
    return stamps.notna() & (stamps >= begin) & (stamps < after)


def stage_table(
    deals: pd.DataFrame, history: pd.DataFrame, stages: list[str], start: date, end: date, timezone: str
) -> pd.DataFrame:
    """Per stage: deals entering it in the period, how many of them reached a later stage (for the
    last stage: were won), that share, and the median days a deal stayed in it."""
    rank = {stage: index for index, stage in enumerate(stages)}
    hist = history[history["deal_id"].isin(deals["deal_id"])].copy()
    hist["rank"] = hist["stage"].map(rank)
    hist = hist.sort_values(["deal_id", "entered_at"], kind="stable")
    closed = lookup(hist["deal_id"], deals.set_index("deal_id")["closed_at"])
    next_entry = hist.groupby("deal_id")["entered_at"].shift(-1)
    left_at = next_entry.fillna(closed)
    hist["days"] = (left_at - hist["entered_at"]).dt.total_seconds() / SECONDS_PER_DAY
    # The highest stage a deal reached after each entry: shows whether it went further.
    hist["later_rank"] = (
        hist.iloc[::-1].groupby("deal_id")["rank"].cummax().iloc[::-1].groupby(hist["deal_id"]).shift(-1)
    )
    won = set(deals.loc[deals["status"] == "won", "deal_id"])
    hist["advanced"] = (hist["later_rank"] > hist["rank"]) | (
        (hist["rank"] == len(stages) - 1) & hist["deal_id"].isin(won)
    )
    entered = hist[in_period(hist["entered_at"], start, end, timezone)]
    rows = []
    for stage in stages:
        at_stage = entered[entered["stage"] == stage]
        per_deal = at_stage.groupby("deal_id")["advanced"].any()
        count = len(per_deal)
        advanced = int(per_deal.sum())
        days = at_stage["days"].dropna()
        rows.append(
            {
                "stage": stage,
                "stage_order": rank[stage],
                "entered": count,
                "advanced": advanced,
                "conversion": advanced / count if count else None,
                "median_days_in_stage": float(days.median()) if len(days) else None,
            }
        )
    return pd.DataFrame(rows).astype({"conversion": float, "median_days_in_stage": float})


def summary_row(
    deals: pd.DataFrame, paid_at: pd.Series, start: date, end: date, timezone: str
) -> dict[str, Any]:
    opened = int(in_period(deals["opened_at"], start, end, timezone).sum())
    closed = deals[in_period(deals["closed_at"], start, end, timezone)]
    won = int((closed["status"] == "won").sum())
    lost = int((closed["status"] == "lost").sum())
    paid = deals.assign(paid_at=lookup(deals["deal_id"], paid_at))
    paid = paid[in_period(paid["paid_at"], start, end, timezone)]
    began = paid["lead_at"].fillna(paid["opened_at"])
    cycle = (paid["paid_at"] - began).dt.total_seconds() / SECONDS_PER_DAY
    return {
        "opened": opened,
        "won": won,
        "lost": lost,
        "win_rate": won / (won + lost) if won + lost else None,
        "paid": len(paid),
        "median_cycle_days": float(cycle.median()) if len(cycle) else None,
    }


def funnel_report(
    data: FunnelData, start: date, end: date, pipelines: dict[str, list[str]], timezone: str = "UTC"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stages, summary) per pipeline and rep; rep_id 0 is every rep of the pipeline together."""
    stage_frames, summaries = [], []
    for pipeline, pipeline_deals in data.deals.groupby("pipeline"):
        history = data.history[data.history["deal_id"].isin(pipeline_deals["deal_id"])]
        stages = stage_order(str(pipeline), history, pipelines)
        groups = [(ALL_REPS, pipeline_deals), *pipeline_deals.groupby("rep_id")]
        for rep_id, deals in groups:
            if rep_id == ALL_REPS and deals is not pipeline_deals:
                continue  # deals without a rep are counted only in the pipeline's total
            table = stage_table(deals, history, stages, start, end, timezone)
            stage_frames.append(table.assign(pipeline=pipeline, rep_id=int(rep_id)))
            summaries.append(
                {
                    "pipeline": pipeline,
                    "rep_id": int(rep_id),
                    **summary_row(deals, data.paid_at, start, end, timezone),
                }
            )
    stages_out = pd.concat(stage_frames, ignore_index=True) if stage_frames else pd.DataFrame()
    return stages_out, pd.DataFrame(summaries)


def _clean(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else value


def write_funnel(
    session: Session, stages: pd.DataFrame, summary: pd.DataFrame, start: date, end: date
) -> int:
    """Store the period's funnel, replacing what an earlier run stored for the same period."""
    now = utcnow()
    stage_rows = [
        {
            **{k: _clean(v) for k, v in rec.items()},
            "period_start": start,
            "period_end": end,
            "computed_at": now,
        }
        for rec in stages.to_dict("records")
    ]
    summary_rows = [
        {
            **{k: _clean(v) for k, v in rec.items()},
            "period_start": start,
            "period_end": end,
            "computed_at": now,
        }
        for rec in summary.to_dict("records")
    ]
    upsert(
        session,
        FunnelStageReport,
        stage_rows,
        key=["period_start", "period_end", "pipeline", "rep_id", "stage"],
    )
    upsert(session, FunnelSummary, summary_rows, key=["period_start", "period_end", "pipeline", "rep_id"])
    stage_key = ["pipeline", "rep_id", "stage"]
    summary_key = ["pipeline", "rep_id"]
    for model, key, rows in (
        (FunnelStageReport, stage_key, stage_rows),
        (FunnelSummary, summary_key, summary_rows),
    ):
        keep = {tuple(r[column] for column in key) for r in rows}
        delete_rows_not_in(session, model, key, keep, model.period_start == start, model.period_end == end)
    return len(stage_rows) + len(summary_rows)
