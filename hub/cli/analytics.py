"""Commands of the analytics domain: the plan from the facts (`hub plan`) and the import of ad
costs per channel per day (`hub import-costs`)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from hub.settings import load_settings


def register(main: click.Group, inspect: click.Group) -> None:
    main.add_command(plan)
    main.add_command(import_costs_command)


@click.command()
@click.option("--revenue", type=float, default=None, help="Monthly revenue target.")
@click.option("--profit", type=float, default=None, help="Monthly profit target (needs --margin).")
@click.option("--margin", type=float, default=None, help="Margin, 25 or 0.25 for 25 %.")
@click.option(
    "--days", type=int, default=None, help="Facts of this many days [default: HUB_ANALYTICS__PLAN_FACT_DAYS]."
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(
    revenue: float | None, profit: float | None, margin: float | None, days: int | None, as_json: bool
) -> None:
    """How many deals, leads, calls and reps a month needs for a revenue (or profit) target, at the
    actual average check (from payments), conversions and call rate of the last days."""
    from hub.funnel.plan import PlanError, load_facts, make_plan, revenue_target
    from hub.store.db import session_scope

    settings = load_settings()
    analytics = settings.analytics
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    with session_scope(settings.database_url) as session:
        facts = load_facts(session, today, days or analytics.plan_fact_days, analytics.working_days_per_month)
    try:
        result = make_plan(revenue_target(revenue, profit, margin), facts)
    except PlanError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    lines = [
        f"Facts of the last {facts.days} days: {facts.leads} leads, {facts.deals_opened} deals opened, "
        f"{facts.won} won / {facts.lost} lost, {facts.paid_revenue:,.0f} paid by {facts.paying_deals} deals, "
        f"{facts.calls} calls by {facts.calling_reps} reps",
        f"  average check      {result.average_check:>14,.0f}",
        f"  win rate           {result.win_rate:>14.1%}",
        f"  lead -> deal       {result.lead_to_deal:>14.1%}",
        f"  calls per lead     {result.calls_per_lead:>14.2f}",
        f"  calls per rep/day  {result.calls_per_rep_day:>14.2f}",
        f"Per month for {result.revenue_target:,.0f} revenue:",
        f"  won deals          {result.won_deals:>14,}",
        f"  deals              {result.deals:>14,}",
        f"  leads              {result.leads:>14,}",
        f"  calls              {result.calls:>14,}",
        f"  reps               {result.reps:>14,}"
        + ("" if result.reps else "  (no calls by reps in the period)"),
    ]
    click.echo("\n".join(lines))


@click.command("import-costs")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_costs_command(csv_file: Path) -> None:
    """Import ad cost per day from a CSV (date; channel or utm_source+utm_medium; [campaign;] cost).
    Importing a corrected file again replaces the costs of its days; bad rows go to quarantine."""
    from hub.attribution.costs import import_costs
    from hub.store.db import session_scope

    settings = load_settings()
    with session_scope(settings.database_url) as session:
        stats = import_costs(session, csv_file, settings.analytics.channels)
    click.echo(json.dumps(stats.as_dict(), ensure_ascii=False))
