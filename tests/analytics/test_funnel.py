"""The funnel, morning checks, the backward-move check and the plan, on a small CRM built in the test."""

from __future__ import annotations

import math
from datetime import date

import pytest
from sqlalchemy import func, select

from hub.funnel.checks import backward_moves, morning_checks
from hub.funnel.plan import DAYS_PER_MONTH, PlanError, PlanFacts, load_facts, make_plan, revenue_target
from hub.funnel.report import ALL_REPS, funnel_report, load_funnel_data, write_funnel
from hub.store.db import session_scope
from hub.store.models import FunnelStageReport, FunnelSummary
from tests.analytics import crm

PIPELINES = {"sales": ["new", "qualified", "proposal", "negotiation", "invoice"]}
MARCH = (date(2026, 3, 1), date(2026, 3, 31))


def build_crm(url: str) -> dict[str, int]:
    ids: dict[str, int] = {}
    with session_scope(url) as s:
        crm.rep(s, 1), crm.rep(s, 2)
        a = crm.contact(s, "A")
        lead = crm.lead(s, "L1", a, -3)
        ids["D1"] = crm.deal(s, "D1", a, 0, "invoice", "won", closed_days=12, rep_id=1, lead_id=lead)
        crm.stages(s, ids["D1"], [("new", 0), ("qualified", 2), ("proposal", 5), ("invoice", 9)])
        ids["D2"] = crm.deal(s, "D2", a, 1, "qualified", "lost", closed_days=6, rep_id=1)
        crm.stages(s, ids["D2"], [("new", 1), ("qualified", 4)])
        ids["D3"] = crm.deal(s, "D3", a, 2, "proposal", rep_id=2)
        crm.stages(s, ids["D3"], [("new", 2), ("proposal", 3)])  # skipped a stage: still forward
        ids["D4"] = crm.deal(s, "D4", a, 3, "qualified", rep_id=2)
        crm.stages(s, ids["D4"], [("new", 3), ("qualified", 4), ("proposal", 6), ("qualified", 8)])
        invoice = crm.invoice(s, "INV-1", ids["D1"], "1000", issued_days=9)
        crm.payment(s, "P1", crm.at(15).date(), [(invoice, "400")])
        crm.payment(s, "P2", crm.at(20).date(), [(invoice, "600")])
        crm.task(s, "T-D3", ids["D3"], 2, due_days=9)
        crm.task(s, "T-D4", ids["D4"], 2, due_days=9, done=True)
        crm.task(s, "T-free", None, 1, due_days=11)
    return ids


def test_stage_entries_conversions_and_median_times(store_url: str) -> None:
    build_crm(store_url)
    with session_scope(store_url) as s:
        data = load_funnel_data(s)
    stages, summary = funnel_report(data, *MARCH, PIPELINES)
    total = stages[stages["rep_id"] == ALL_REPS].set_index("stage")
    assert total["entered"].to_dict() == {
        "new": 4,
        "qualified": 3,
        "proposal": 3,
        "negotiation": 0,
        "invoice": 1,
    }
    assert total["advanced"].to_dict() == {
        "new": 4,
        "qualified": 2,
        "proposal": 1,
        "negotiation": 0,
        "invoice": 1,
    }
    assert total.loc["qualified", "conversion"] == pytest.approx(2 / 3)
    assert math.isnan(total.loc["negotiation", "conversion"])
    # new: 2, 3, 1, 1 days; qualified: 3, 2, 2 (D4's second stay is still running); proposal: 4, 2.
    assert total.loc["new", "median_days_in_stage"] == pytest.approx(1.5)
    assert total.loc["qualified", "median_days_in_stage"] == pytest.approx(2.0)
    assert total.loc["proposal", "median_days_in_stage"] == pytest.approx(3.0)
    assert total.loc["invoice", "median_days_in_stage"] == pytest.approx(3.0)
    rep2 = stages[stages["rep_id"] == 2].set_index("stage")
    assert rep2["entered"].to_dict()["new"] == 2 and rep2.loc["proposal", "advanced"] == 0

    by_rep = summary.set_index("rep_id")
    assert by_rep.loc[ALL_REPS, ["opened", "won", "lost", "paid"]].tolist() == [4, 1, 1, 1]
    assert by_rep.loc[ALL_REPS, "win_rate"] == pytest.approx(0.5)
    # Lead on 26 Feb 12:00, invoice paid in full by the second payment on 21 Mar.
    assert by_rep.loc[ALL_REPS, "median_cycle_days"] == pytest.approx(22.5)
    assert by_rep.loc[1, "win_rate"] == pytest.approx(0.5) and by_rep.loc[1, "paid"] == 1
    assert by_rep.loc[2, "win_rate"] is None or math.isnan(by_rep.loc[2, "win_rate"])

    with session_scope(store_url) as s:
        written = write_funnel(s, stages, summary, *MARCH)
        write_funnel(s, stages, summary, *MARCH)
        stored = s.scalar(select(func.count()).select_from(FunnelStageReport)) + s.scalar(
            select(func.count()).select_from(FunnelSummary)
        )
    assert written == stored == len(stages) + len(summary)


def test_a_period_before_any_deal_is_empty(sqlite_store: str) -> None:
    build_crm(sqlite_store)
    with session_scope(sqlite_store) as s:
        data = load_funnel_data(s)
    stages, summary = funnel_report(data, date(2025, 1, 1), date(2025, 1, 31), PIPELINES)
    assert stages["entered"].sum() == 0 and summary["opened"].sum() == 0


def test_backward_move_is_flagged(store_url: str) -> None:
    ids = build_crm(store_url)
    with session_scope(store_url) as s:
        moves = backward_moves(load_funnel_data(s), PIPELINES)
    assert moves[["deal_id", "from_stage", "to_stage"]].values.tolist() == [
        [ids["D4"], "proposal", "qualified"]
    ]
    assert moves["moved_at"].iloc[0] == crm.at(8)


def test_morning_checks(store_url: str) -> None:
    ids = build_crm(store_url)
    with session_scope(store_url) as s:
        checks = morning_checks(
            s, load_funnel_data(s), crm.at(10), {"proposal": 5, "qualified": 5}, default_norm_days=14
        )
    assert checks.deals_without_task["deal_id"].tolist() == [ids["D4"]]
    assert checks.overdue_tasks["title"].tolist() == ["T-D3"]
    assert checks.overdue_tasks["days_overdue"].tolist() == [1.0]
    assert checks.stuck_deals[["deal_id", "days_in_stage", "norm_days"]].values.tolist() == [
        [ids["D3"], 7.0, 5.0]
    ]
    load = checks.rep_load.set_index("rep_id")
    assert load.loc[
        2, ["open_deals", "open_tasks", "overdue_tasks", "deals_without_task", "stuck_deals"]
    ].tolist() == [
        2,
        1,
        1,
        1,
        1,
    ]
    assert load.loc[1, ["open_deals", "open_tasks", "overdue_tasks"]].tolist() == [0, 1, 0]


FACTS = PlanFacts(
    days=90,
    leads=200,
    deals_opened=50,
    won=10,
    lost=30,
    paid_revenue=1_500_000.0,
    paying_deals=10,
    calls=2000,
    calling_reps=4,
    working_days_per_month=21.0,
)


def test_plan_arithmetic() -> None:
    plan = make_plan(3_000_000, FACTS)
    assert plan.average_check == 150_000
    assert plan.won_deals == 20  # 3 000 000 / 150 000
    assert plan.deals == 80  # 20 won at a 25 % win rate
    assert plan.leads == 320  # 80 deals at 25 % lead-to-deal
    assert plan.calls == 3200  # 10 calls per lead
    rate = 2000 / (4 * 90 * 21 / DAYS_PER_MONTH)
    assert plan.calls_per_rep_day == pytest.approx(rate, abs=0.01)
    assert plan.reps == math.ceil(3200 / (rate * 21))
    # A target that does not divide evenly rounds each step up.
    assert make_plan(3_000_001, FACTS).won_deals == 21


def test_profit_target_with_margin() -> None:
    assert revenue_target(None, 750_000, 25) == pytest.approx(3_000_000)
    assert revenue_target(None, 750_000, 0.25) == pytest.approx(3_000_000)
    assert revenue_target(1_000_000, None, None) == 1_000_000
    with pytest.raises(PlanError, match="--margin"):
        revenue_target(None, 750_000, None)
    with pytest.raises(PlanError, match="--revenue"):
        revenue_target(None, None, None)


def test_plan_names_the_missing_fact() -> None:
    no_closed = PlanFacts(90, 10, 2, 0, 0, 0.0, 0, 0, 0, 21.0)
    with pytest.raises(PlanError, match="win rate") as error:
        make_plan(1_000_000, no_closed)
    assert "average check" in str(error.value)


def test_plan_facts_from_the_store(sqlite_store: str) -> None:
    build_crm(sqlite_store)
    with session_scope(sqlite_store) as s:
        crm.activity(s, "c1", "call", None, 5, rep_id=1)
        crm.activity(s, "c2", "call", None, 6, rep_id=1)
        crm.activity(s, "c3", "call", None, 6, rep_id=2)
        facts = load_facts(s, date(2026, 3, 31), days=40, working_days_per_month=21)
    assert (facts.leads, facts.deals_opened, facts.won, facts.lost) == (1, 4, 1, 1)
    assert (facts.paid_revenue, facts.paying_deals) == (1000.0, 1)
    assert (facts.calls, facts.calling_reps) == (3, 2)
    plan = make_plan(10_000, facts)
    assert (plan.won_deals, plan.deals, plan.leads) == (10, 20, 5)


def test_period_days_are_the_hub_time_zone_days() -> None:
    import pandas as pd

    from hub.funnel.report import in_period

    # 31 March 22:30 UTC is already 1 April in Moscow (UTC+3).
    stamps = pd.Series(pd.to_datetime(["2026-03-31 22:30", "2026-03-31 20:30", None], utc=True))
    april = in_period(stamps, date(2026, 4, 1), date(2026, 4, 30), "Europe/Moscow").tolist()
    assert april == [True, False, False]
    assert in_period(stamps, *MARCH, "UTC").tolist() == [True, True, False]


def test_stages_of_an_unconfigured_pipeline_follow_their_usual_order(sqlite_store: str) -> None:
    from hub.funnel.report import stage_order

    with session_scope(sqlite_store) as s:
        contact = crm.contact(s, "A")
        for n in range(3):
            deal = crm.deal(s, f"T{n}", contact, n, "contract", pipeline="tenders")
            crm.stages(s, deal, [("request", n), ("bid", n + 1), ("contract", n + 2)][: n + 1])
        data = load_funnel_data(s)
    assert stage_order("tenders", data.history, PIPELINES) == ["request", "bid", "contract"]
    stages, _ = funnel_report(data, *MARCH, PIPELINES)
    tenders = stages[(stages["pipeline"] == "tenders") & (stages["rep_id"] == ALL_REPS)].set_index("stage")
    assert tenders["entered"].to_dict() == {"request": 3, "bid": 2, "contract": 1}
    assert tenders.loc["request", "conversion"] == pytest.approx(2 / 3)
