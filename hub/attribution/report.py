"""The channel report for a period: leads, deals, won deals and revenue from payments per channel and
campaign (split by one attribution model), with ad cost, CPL, cost per sale, ROI and cost share."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.attribution.compute import paid_revenue_by_deal
from hub.funnel.report import in_period
from hub.store.models import AdCost, ChannelReport
from hub.store.prune import delete_rows_not_in
from hub.store.upsert import upsert
from hub.timeutil import utcnow

ALL = "*"  # campaign "*": the channel over all its campaigns; channel "*": every channel together
METRIC_KEYS = ["channel", "campaign"]


def _weights_of(weights: pd.DataFrame, model: str) -> pd.DataFrame:
    return weights.loc[weights["model"] == model, ["conversion", "channel", "campaign", "weight"]]


def _count(
    weights: pd.DataFrame, conversions: pd.DataFrame, model: str, start: date, end: date, tz: str
) -> pd.Series:
    """Conversions in the period, split by the model's weights, per (channel, campaign)."""
    ids = conversions.loc[in_period(conversions["converted_at"], start, end, tz), "conversion"]
    chosen = _weights_of(weights, model)
    chosen = chosen[chosen["conversion"].isin(ids)]
    return chosen.groupby(METRIC_KEYS)["weight"].sum()


def ad_costs(session: Session, start: date, end: date) -> pd.Series:
    rows = session.execute(
        select(AdCost.channel, AdCost.campaign, func.sum(AdCost.cost))
        .where(AdCost.day >= start, AdCost.day <= end)
        .group_by(AdCost.channel, AdCost.campaign)
    ).all()
    frame = pd.DataFrame(rows, columns=["channel", "campaign", "cost"])
    frame["cost"] = frame["cost"].astype(float)
    return frame.set_index(METRIC_KEYS)["cost"]


def channel_report(
    session: Session,
    results: dict[str, pd.DataFrame],
    conversions: dict[str, pd.DataFrame],
    start: date,
    end: date,
    model: str,
    timezone: str = "UTC",
) -> pd.DataFrame:
    """One row per (channel, campaign), per channel over all campaigns (campaign "*") and the total
    ("*", "*"). Revenue is money received in the period for deals, split by the deal's weights (a
    deal paid before it was marked won by the weights it had when opened)."""
    leads = _count(results["lead"], conversions["lead"], model, start, end, timezone)
    deals = _count(results["deal_opened"], conversions["deal_opened"], model, start, end, timezone)
    won = _count(results["deal"], conversions["deal"], model, start, end, timezone)

    paid = paid_revenue_by_deal(session, start, end)
    won_weights = _weights_of(results["deal"], model)
    opened_weights = _weights_of(results["deal_opened"], model)
    revenue_weights = pd.concat(
        [won_weights, opened_weights[~opened_weights["conversion"].isin(won_weights["conversion"])]]
    )
    revenue_weights = revenue_weights[revenue_weights["conversion"].isin(list(paid))]
    amounts = revenue_weights["conversion"].map({k: float(v) for k, v in paid.items()})
    revenue = (
        (revenue_weights["weight"] * amounts)
        .groupby([revenue_weights["channel"], revenue_weights["campaign"]])
        .sum()
    )
    cost = ad_costs(session, start, end)

    table = pd.concat(
        {"leads": leads, "deals": deals, "won": won, "revenue": revenue, "cost": cost}, axis=1
    ).rename_axis(METRIC_KEYS)
    has_cost = table["cost"].notna()
    table = table.fillna({"leads": 0.0, "deals": 0.0, "won": 0.0, "revenue": 0.0})
    table = table.reset_index()
    table["has_cost"] = has_cost.to_numpy()
    per_channel = table.groupby("channel", as_index=False).agg(
        leads=("leads", "sum"),
        deals=("deals", "sum"),
        won=("won", "sum"),
        revenue=("revenue", "sum"),
        cost=("cost", "sum"),
        has_cost=("has_cost", "any"),
    )
    per_channel["campaign"] = ALL
    total = per_channel.drop(columns=["channel", "campaign"]).agg(
        {"leads": "sum", "deals": "sum", "won": "sum", "revenue": "sum", "cost": "sum", "has_cost": "any"}
    )
    total_row = pd.DataFrame([{**total.to_dict(), "channel": ALL, "campaign": ALL}])
    # A channel with campaigns gets its own rollup; one without campaigns is its rollup already.
    rollups = per_channel[per_channel["channel"].isin(table.loc[table["campaign"] != "", "channel"])]
    out = pd.concat([table, rollups, total_row], ignore_index=True)
    out.loc[~out["has_cost"].astype(bool), "cost"] = float("nan")
    return _with_metrics(out.drop(columns=["has_cost"]))


def per_channel(table: pd.DataFrame) -> pd.DataFrame:
    """One row per channel: its rollup over campaigns, or its only row; without the total."""
    rolled_up = set(table.loc[table["campaign"] == ALL, "channel"])
    one_row = (table["campaign"] == ALL) | ~table["channel"].isin(rolled_up)
    return table[one_row & (table["channel"] != ALL)]


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return (numerator / denominator.where(denominator > 0)).astype(float)


def _with_metrics(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    table["lead_to_deal"] = _ratio(table["deals"], table["leads"])
    table["deal_to_won"] = _ratio(table["won"], table["deals"])
    table["lead_to_won"] = _ratio(table["won"], table["leads"])
    table["average_check"] = _ratio(table["revenue"], table["won"])
    table["cost_per_lead"] = _ratio(table["cost"], table["leads"])
    table["cost_per_sale"] = _ratio(table["cost"], table["won"])
    table["roi"] = _ratio(table["revenue"] - table["cost"], table["cost"])
    table["cost_share"] = _ratio(table["cost"], table["revenue"])
    order = table["channel"].eq(ALL).astype(int)
    return (
        table.assign(_total=order)
        .sort_values(["_total", "revenue", "leads"], ascending=[True, False, False])
        .drop(columns="_total")
        .reset_index(drop=True)
    )


def _money(value: float) -> Decimal | None:
    if value is None or pd.isna(value):
        return None
    return Decimal(str(round(float(value), 2))).quantize(Decimal("0.01"))


def _number(value: float) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def write_channel_report(session: Session, table: pd.DataFrame, start: date, end: date, model: str) -> int:
    """Store the period's report; rows of channels that no longer appear in it are removed."""
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for rec in table.to_dict("records"):
        rows.append(
            {
                "period_start": start,
                "period_end": end,
                "model": model,
                "channel": rec["channel"],
                "campaign": rec["campaign"],
                "leads": float(rec["leads"]),
                "deals": float(rec["deals"]),
                "won": float(rec["won"]),
                "revenue": _money(rec["revenue"]) or Decimal("0.00"),
                "cost": _money(rec["cost"]),
                "lead_to_deal": _number(rec["lead_to_deal"]),
                "deal_to_won": _number(rec["deal_to_won"]),
                "lead_to_won": _number(rec["lead_to_won"]),
                "average_check": _money(rec["average_check"]),
                "cost_per_lead": _money(rec["cost_per_lead"]),
                "cost_per_sale": _money(rec["cost_per_sale"]),
                "roi": _number(rec["roi"]),
                "cost_share": _number(rec["cost_share"]),
                "computed_at": now,
            }
        )
    key = ["period_start", "period_end", "model", "channel", "campaign"]
    upsert(session, ChannelReport, rows, key=key)
    keep = {(r["channel"], r["campaign"]) for r in rows}
    scope = (
        ChannelReport.period_start == start,
        ChannelReport.period_end == end,
        ChannelReport.model == model,
    )
    delete_rows_not_in(session, ChannelReport, ["channel", "campaign"], keep, *scope)
    return len(rows)
