"""Dagster assets of the analytics domain: touches, attribution, the channel report, the funnel, the
morning checks and the plan, with charts in their metadata and a check that deals only move forward."""

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from assets.metadata import markdown_table
from assets.resources import HubSettingsResource, StoreResource
from hub.attribution.compute import compute_all, store_attribution
from hub.attribution.report import ALL, per_channel, write_channel_report
from hub.attribution.report import channel_report as compute_channel_report
from hub.attribution.touches import write_touches
from hub.funnel.charts import channel_chart, funnel_chart, markdown_image
from hub.funnel.checks import backward_moves, morning_checks
from hub.funnel.plan import PlanError, load_facts, make_plan, revenue_target
from hub.funnel.report import ALL_REPS, funnel_report, load_funnel_data, write_funnel
from hub.masking import mask_text
from hub.settings import HubSettings
from hub.timeutil import utcnow

GROUP = "analytics"
OWNERS = ["team:analytics"]
PREVIEW_ROWS = 15


def _period(settings: HubSettings) -> tuple[date, date]:
    """The report period: the last `report_days` days up to today in the hub's time zone."""
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    return today - timedelta(days=settings.analytics.report_days - 1), today


def _rounded(frame: pd.DataFrame, digits: int = 2) -> list[dict[str, Any]]:
    """Records for a markdown table: numbers rounded, missing values blank."""
    out = []
    for record in frame.to_dict("records"):
        row = {}
        for key, value in record.items():
            if isinstance(value, float):
                value = "" if pd.isna(value) else round(value, digits)
            row[key] = value
        out.append(row)
    return out


def _money_total(totals: pd.Series | None, column: str) -> float:
    """A total for numeric metadata (plotted across runs): rounded to cents, 0 when absent."""
    if totals is None or pd.isna(totals[column]):
        return 0.0
    return round(float(totals[column]), 2)


@asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "sql"},
    # Leads with their contacts, calls with theirs (upstream of resolution), sent emails.
    deps=[AssetKey("resolved_leads"), AssetKey("mail_receipts")],
    description="Touches per contact in hub_touches: web leads (UTM, click ids, referrer by the channel rules "
    "in HUB_ANALYTICS__CHANNELS__*), calls with a tracking-number channel, and sent emails.",
)
def attribution_touches(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    rules = hub_settings.load().analytics.channels
    with store.session() as session:
        stats = write_touches(session, rules)
    channels = sorted(stats.by_channel.items(), key=lambda item: -item[1])
    return MaterializeResult(
        metadata={
            "dagster/row_count": stats.total,
            "lead_touches": stats.leads,
            "call_touches": stats.calls,
            "email_touches": stats.emails,
            "skipped_without_contact": stats.skipped_without_contact,
            "touches_per_channel": markdown_table([{"channel": c, "touches": n} for c, n in channels]),
        }
    )


@asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "pandas", "sql"},
    deps=[attribution_touches],
    description="Weights per channel of every lead and every won deal in crm_lead_attribution, by six models "
    "(first, last, last non-direct, linear, time-decay, position-based 40/20/40) over the look-back window; "
    "won deals carry their paid revenue split by the weights.",
)
def lead_attribution(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    settings = hub_settings.load().analytics
    with store.session() as session:
        results, _, stats = compute_all(session, settings.lookback_days, settings.half_life_days)
        store_attribution(session, results, stats)
    leads = results["lead"]
    shares = leads.pivot_table(
        index="channel", columns="model", values="weight", aggfunc="sum", fill_value=0.0
    )
    shares = (
        shares.sort_values(settings.report_model, ascending=False)
        if settings.report_model in shares
        else shares
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": stats.rows_written,
            "leads": stats.conversions.get("lead", 0),
            "won_deals": stats.conversions.get("deal", 0),
            "unattributed_leads": stats.unattributed.get("lead", 0),
            "unattributed_won_deals": stats.unattributed.get("deal", 0),
            "rows_removed": stats.rows_removed,
            "leads_per_channel_by_model": markdown_table(
                _rounded(shares.reset_index().head(PREVIEW_ROWS), 1)
            ),
        }
    )


@asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "pandas", "sql"},
    deps=[lead_attribution, AssetKey("payment_allocations")],
    description="Per channel and campaign for the report period (HUB_ANALYTICS__REPORT_DAYS): leads, deals, won, "
    "revenue from payments allocated to the deals' invoices, conversions, average check, and with the ad cost "
    "from hub_ad_costs: cost, CPL, cost per sale, ROI, cost share. Stored in hub_channel_report.",
)
def channel_report(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    settings = hub_settings.load()
    analytics = settings.analytics
    start, end = _period(settings)
    with store.session() as session:
        results, conversions, _ = compute_all(session, analytics.lookback_days, analytics.half_life_days)
        table = compute_channel_report(
            session, results, conversions, start, end, analytics.report_model, settings.timezone
        )
        written = write_channel_report(session, table, start, end, analytics.report_model)
    total = table[(table["channel"] == ALL) & (table["campaign"] == ALL)]
    shown = [
        "channel",
        "campaign",
        "leads",
        "deals",
        "won",
        "revenue",
        "cost",
        "lead_to_won",
        "average_check",
        "cost_per_lead",
        "cost_per_sale",
        "roi",
        "cost_share",
    ]
    chart = channel_chart(per_channel(table), f"Channels {start:%d.%m}–{end:%d.%m.%Y}: paid revenue and ROI")
    totals = total.iloc[0] if len(total) else None
    return MaterializeResult(
        metadata={
            "dagster/row_count": written,
            "period": f"{start.isoformat()} .. {end.isoformat()}",
            "model": analytics.report_model,
            "revenue": MetadataValue.float(_money_total(totals, "revenue")),
            "ad_cost": MetadataValue.float(_money_total(totals, "cost")),
            "channels": markdown_table(_rounded(table[shown].head(PREVIEW_ROWS * 2))),
            "channel_chart": MetadataValue.md(markdown_image(chart, "revenue and ROI per channel")),
        }
    )


@asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "pandas", "sql"},
    # Deals and stages are read from the CRM store; payments decide the cycle from lead to paid.
    deps=[AssetKey("payment_allocations")],
    description="The funnel per pipeline and rep for the report period from crm_deal_stage_history: deals "
    "entering each stage, conversion onward, median days in stage, win rate, cycle from lead to paid. Stored "
    "in hub_funnel_report and hub_funnel_summary.",
)
def sales_funnel(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    settings = hub_settings.load()
    start, end = _period(settings)
    with store.session() as session:
        data = load_funnel_data(session)
        stages, summary = funnel_report(data, start, end, settings.analytics.pipelines, settings.timezone)
        written = write_funnel(session, stages, summary, start, end)
    metadata: dict[str, Any] = {
        "dagster/row_count": written,
        "period": f"{start.isoformat()} .. {end.isoformat()}",
    }
    for pipeline in sorted(summary["pipeline"].unique()) if len(summary) else []:
        whole = stages[(stages["pipeline"] == pipeline) & (stages["rep_id"] == ALL_REPS)]
        metadata[f"funnel_{pipeline}"] = markdown_table(
            _rounded(whole[["stage", "entered", "advanced", "conversion", "median_days_in_stage"]])
        )
        chart = funnel_chart(whole, f"Funnel '{pipeline}' {start:%d.%m}–{end:%d.%m.%Y}")
        metadata[f"funnel_{pipeline}_chart"] = MetadataValue.md(markdown_image(chart, f"funnel {pipeline}"))
    metadata["per_pipeline_and_rep"] = markdown_table(_rounded(summary))
    if len(summary):
        overall = summary[summary["rep_id"] == ALL_REPS]
        won, lost = int(overall["won"].sum()), int(overall["lost"].sum())
        metadata["win_rate"] = MetadataValue.float(won / (won + lost) if won + lost else 0.0)
    return MaterializeResult(metadata=metadata)


@asset_check(
    asset=sales_funnel,
    name="deals_move_only_forward",
    description="A deal only moves down the funnel: one that went back to an earlier stage should be closed "
    "and a new deal opened, or the funnel's conversions overstate. Lists every backward move.",
)
def deals_move_only_forward(store: StoreResource, hub_settings: HubSettingsResource) -> AssetCheckResult:
    with store.session() as session:
        moves = backward_moves(load_funnel_data(session), hub_settings.load().analytics.pipelines)
    moves["moved_at"] = moves["moved_at"].astype(str)
    return AssetCheckResult(
        passed=moves.empty,
        severity=AssetCheckSeverity.WARN,
        description=None
        if moves.empty
        else f"{len(moves)} deal(s) moved back to an earlier stage: close each and open a new deal",
        metadata={"backward_moves": len(moves), "moves": markdown_table(moves.head(50).to_dict("records"))},
    )


@asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "sql"},
    deps=[AssetKey("lead_assignments"), sales_funnel],
    description="What a head of sales checks every morning: open deals without an open task, overdue tasks, "
    "deals in a stage longer than its norm (HUB_ANALYTICS__STAGE_NORM_DAYS), and the load per rep.",
)
def sales_morning_checks(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    settings = hub_settings.load().analytics
    with store.session() as session:
        checks = morning_checks(
            session,
            load_funnel_data(session),
            utcnow(),
            settings.stage_norm_days,
            settings.default_stage_norm_days,
        )

    def masked(frame: pd.DataFrame) -> list[dict[str, Any]]:
        rows = _rounded(frame.head(PREVIEW_ROWS))
        return [{k: mask_text(v) if k == "title" else v for k, v in row.items()} for row in rows]

    overdue = checks.overdue_tasks.drop(columns=["due_at"])
    return MaterializeResult(
        metadata={
            "deals_without_task": len(checks.deals_without_task),
            "overdue_tasks": len(checks.overdue_tasks),
            "stuck_deals": len(checks.stuck_deals),
            "deals_without_task_list": markdown_table(masked(checks.deals_without_task)),
            "overdue_task_list": markdown_table(masked(overdue)),
            "stuck_deal_list": markdown_table(masked(checks.stuck_deals)),
            "rep_load": markdown_table(_rounded(checks.rep_load)),
        }
    )


@asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "sql"},
    deps=[sales_funnel, channel_report],
    description="The monthly plan from the facts of the last HUB_ANALYTICS__PLAN_FACT_DAYS days: from the revenue "
    "(or profit and margin) target in settings, the deals, leads, calls and reps needed at the actual average "
    "check, conversions and call rate. `hub plan --revenue N` prints the same for any target.",
)
def sales_plan(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    settings = hub_settings.load()
    analytics = settings.analytics
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    with store.session() as session:
        facts = load_facts(session, today, analytics.plan_fact_days, analytics.working_days_per_month)
    metadata: dict[str, Any] = {
        "fact_days": facts.days,
        "average_check": MetadataValue.float(facts.average_check or 0.0),
        "win_rate": MetadataValue.float(facts.win_rate or 0.0),
        "lead_to_deal": MetadataValue.float(facts.lead_to_deal or 0.0),
        "calls_per_rep_day": MetadataValue.float(facts.calls_per_rep_day or 0.0),
    }
    try:
        target = revenue_target(
            analytics.plan_monthly_revenue, analytics.plan_monthly_profit, analytics.plan_margin
        )
        plan = make_plan(target, facts)
    except PlanError as exc:
        context.log.warning("no plan: %s", exc)
        metadata["plan"] = MetadataValue.md(
            f"_no plan_: {exc} (settings HUB_ANALYTICS__PLAN_MONTHLY_REVENUE, ...)"
        )
        return MaterializeResult(metadata=metadata)
    metadata["plan"] = markdown_table([{"per month": k, "value": v} for k, v in plan.as_dict().items()])
    metadata.update(
        {
            "deals_needed": plan.deals,
            "leads_needed": plan.leads,
            "calls_needed": plan.calls,
            "reps_needed": plan.reps,
        }
    )
    return MaterializeResult(metadata=metadata)
