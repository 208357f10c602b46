"""Touches, attribution and the channel report on a small CRM built in the store: weights sum to
one per conversion, revenue comes from payments allocated to the deal's invoices, ad cost from CSV."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from hub.attribution.compute import UNATTRIBUTED, compute_all, write_attribution
from hub.attribution.costs import import_costs
from hub.attribution.models import MODELS
from hub.attribution.report import ALL, channel_report, per_channel, write_channel_report
from hub.attribution.touches import write_touches
from hub.channels import ChannelRules
from hub.store.db import session_scope
from hub.store.models import AdCost, ChannelReport, LeadAttribution, QuarantineRecord, Touch, TrackingNumber
from hub.store.upsert import upsert
from tests.analytics import crm

RULES = ChannelRules()
PERIOD = (date(2026, 3, 1), date(2026, 3, 31))


def build_crm(url: str) -> dict[str, int]:
    ids: dict[str, int] = {}
    with session_scope(url) as s:
        upsert(
            s,
            TrackingNumber,
            [{"number_e164": "+74951112233", "channel": "yandex / cpc", "campaign": "calls"}],
            key=["number_e164"],
        )
        a, b, c = crm.contact(s, "A"), crm.contact(s, "B"), crm.contact(s, "C")
        ids["L1"] = crm.lead(s, "L1", a, 0, referrer="https://www.google.com/")
        crm.activity(s, "call-1", "call", a, 3, channel="yandex / cpc", to_addr="+74951112233")
        crm.activity(s, "mail-1", "email_sent", a, 4)
        crm.activity(s, "open-1", "email_opened", a, 4.5)
        crm.activity(s, "call-2", "call", a, 4.6)  # an outbound call carries no channel: no touch
        ids["L2"] = crm.lead(s, "L2", a, 5, utm_source="yandex", utm_medium="cpc", utm_campaign="brand")
        ids["L3"] = crm.lead(s, "L3", b, 2)
        ids["L4"] = crm.lead(s, "L4", b, 2.1, status="duplicate")
        crm.lead(s, "L5", None, 3, utm_source="vk", utm_medium="social")  # not resolved to a contact yet
        ids["D1"] = crm.deal(
            s, "D1", a, 6, stage="invoice", status="won", closed_days=20, amount="500000", lead_id=ids["L2"]
        )
        ids["D2"] = crm.deal(s, "D2", b, 3)
        ids["D3"] = crm.deal(s, "D3", c, 8, stage="invoice", status="won", closed_days=10)
        invoice = crm.invoice(s, "INV-1", ids["D1"], "300000", issued_days=18)
        crm.payment(s, "P1", crm.at(21).date(), [(invoice, "100000")])
        crm.payment(s, "P2", crm.at(40).date(), [(invoice, "150000")])
    return ids


def test_touches_come_from_leads_calls_with_a_channel_and_sent_emails(store_url: str) -> None:
    build_crm(store_url)
    with session_scope(store_url) as s:
        stats = write_touches(s, RULES)
    assert (stats.leads, stats.calls, stats.emails, stats.skipped_without_contact) == (4, 1, 1, 1)
    with session_scope(store_url) as s:
        touches = {(t.kind, t.channel, t.campaign) for t in s.scalars(select(Touch))}
        write_touches(s, RULES)  # a rerun changes nothing
        assert s.scalar(select(func.count()).select_from(Touch)) == 6
    assert ("call", "yandex / cpc", "calls") in touches
    assert ("email", "email", "") in touches
    assert ("web", "organic / google", "") in touches
    assert ("web", "yandex / cpc", "brand") in touches


def test_attribution_sums_to_one_and_counts_revenue_from_payments(store_url: str) -> None:
    ids = build_crm(store_url)
    with session_scope(store_url) as s:
        write_touches(s, RULES)
        stats = write_attribution(s, lookback_days=90, half_life_days=7)
    assert stats.conversions == {"lead": 3, "deal": 2, "deal_opened": 3}
    assert stats.unattributed["deal"] == 1
    with session_scope(store_url) as s:
        rows = s.scalars(select(LeadAttribution)).all()
        count_before = len(rows)
        ids_before = sorted(r.id for r in rows)
    sums: dict[tuple[str, int, str], float] = {}
    revenue: dict[tuple[int, str], Decimal] = {}
    for row in rows:
        key = (row.conversion_kind, row.conversion_id, row.model)
        sums[key] = sums.get(key, 0.0) + row.weight
        if row.conversion_kind == "deal":
            revenue[(row.conversion_id, row.model)] = revenue.get(
                (row.conversion_id, row.model), Decimal(0)
            ) + (row.revenue or Decimal(0))
    assert len(sums) == 5 * len(MODELS)
    assert all(total == pytest.approx(1.0) for total in sums.values())
    # The deal's amount is 500 000, its invoice 300 000; 250 000 has been paid: that is the revenue.
    for model in MODELS:
        assert revenue[(ids["D1"], model)] == pytest.approx(Decimal("250000.00"), abs=Decimal("0.05"))
    d3 = [r for r in rows if r.conversion_kind == "deal" and r.conversion_id == ids["D3"]]
    assert {r.channel for r in d3} == {UNATTRIBUTED}
    lnd = {
        r.channel: r.weight
        for r in rows
        if (r.conversion_kind, r.conversion_id, r.model) == ("deal", ids["D1"], "last_non_direct")
    }
    assert lnd == {"yandex / cpc": 1.0}

    with session_scope(store_url) as s:
        write_touches(s, RULES)
        write_attribution(s, lookback_days=90, half_life_days=7)
        assert sorted(s.scalars(select(LeadAttribution.id))) == ids_before
    assert len(ids_before) == count_before


def test_a_conversion_whose_touches_changed_loses_its_old_rows(store_url: str) -> None:
    ids = build_crm(store_url)
    with session_scope(store_url) as s:
        write_touches(s, RULES)
        write_attribution(s, lookback_days=90, half_life_days=7)
    with session_scope(store_url) as s:
        # A two-day window: L1 (day 0) and the call (day 3) drop out of the path of lead L2 (day 5).
        stats = write_attribution(s, lookback_days=2, half_life_days=7)
        channels = set(
            s.scalars(
                select(LeadAttribution.channel).where(
                    LeadAttribution.conversion_kind == "lead", LeadAttribution.conversion_id == ids["L2"]
                )
            )
        )
    assert stats.rows_removed > 0
    assert channels == {"yandex / cpc", "email"}


def write_cost_csv(path: Path) -> Path:
    path.write_text(
        "date;channel;campaign;cost\n"
        "2026-03-02;yandex / cpc;brand;20 000,00\n"
        "02.03.2026;yandex / cpc;brand;30000\n"
        "2026-03-05;vk / social;;1500.50\n"
        "2026-02-20;yandex / cpc;brand;99999\n"
        "2026-03-06;yandex / cpc;brand;много\n",
        encoding="utf-8",
    )
    return path


def test_cost_import_adds_up_a_day_and_quarantines_bad_rows(sqlite_store: str, tmp_path: Path) -> None:
    path = write_cost_csv(tmp_path / "costs.csv")
    for _ in range(2):  # importing the same file again replaces, never doubles
        with session_scope(sqlite_store) as s:
            stats = import_costs(s, path, RULES)
    assert (stats.rows_in, stats.written, stats.quarantined) == (5, 3, 1)
    with session_scope(sqlite_store) as s:
        costs = {(r.day, r.channel, r.campaign): r.cost for r in s.scalars(select(AdCost))}
        reason = s.scalar(select(QuarantineRecord.error))
    assert costs[(date(2026, 3, 2), "yandex / cpc", "brand")] == Decimal("50000.00")
    assert costs[(date(2026, 3, 5), "vk / social", "")] == Decimal("1500.50")
    assert reason == "costs.csv line 6: cost 'много' is not a number"


def test_channel_report_money_and_ratios(store_url: str, tmp_path: Path) -> None:
    build_crm(store_url)
    with session_scope(store_url) as s:
        import_costs(s, write_cost_csv(tmp_path / "costs.csv"), RULES)
        write_touches(s, RULES)
        results, conversions, _ = compute_all(s, lookback_days=90, half_life_days=7)
        table = channel_report(s, results, conversions, *PERIOD, model="last_non_direct")
        written = write_channel_report(s, table, *PERIOD, model="last_non_direct")
    rows = {(r["channel"], r["campaign"]): r for r in table.to_dict("records")}
    brand = rows[("yandex / cpc", "brand")]
    # Only the payment made inside the period counts: 100 000 of the 250 000 paid.
    assert brand["revenue"] == pytest.approx(100_000)
    assert (brand["leads"], brand["deals"], brand["won"]) == (1.0, 1.0, 1.0)
    assert brand["cost"] == pytest.approx(50_000)  # the February cost is outside the period
    assert brand["cost_per_lead"] == pytest.approx(50_000)
    assert brand["cost_per_sale"] == pytest.approx(50_000)
    assert brand["roi"] == pytest.approx(1.0)
    assert brand["cost_share"] == pytest.approx(0.5)
    assert brand["average_check"] == pytest.approx(100_000)
    assert rows[("direct", "")]["leads"] == 1.0 and rows[("direct", "")]["deals"] == 1.0
    assert rows[("organic / google", "")]["leads"] == 1.0
    vk = rows[("vk / social", "")]
    assert vk["cost"] == pytest.approx(1500.5) and vk["leads"] == 0 and pd_isnan(vk["cost_per_lead"])
    assert rows[(UNATTRIBUTED, "")]["won"] == 1.0
    total = rows[(ALL, ALL)]
    assert total["leads"] == 3.0 and total["won"] == 2.0 and total["revenue"] == pytest.approx(100_000)
    assert total["cost"] == pytest.approx(51_500.5)
    assert rows[("yandex / cpc", ALL)]["revenue"] == pytest.approx(100_000)
    channels = per_channel(table)
    assert channels["channel"].is_unique and ALL not in set(channels["channel"])
    assert channels["revenue"].sum() == pytest.approx(total["revenue"])
    with session_scope(store_url) as s:
        stored = s.scalar(
            select(ChannelReport).where(
                ChannelReport.channel == "yandex / cpc", ChannelReport.campaign == "brand"
            )
        )
        assert s.scalar(select(func.count()).select_from(ChannelReport)) == written
    assert stored.revenue == Decimal("100000.00") and stored.roi == pytest.approx(1.0)


def pd_isnan(value: float) -> bool:
    return value != value


def test_report_period_outside_every_payment_has_no_revenue(sqlite_store: str) -> None:
    build_crm(sqlite_store)
    with session_scope(sqlite_store) as s:
        write_touches(s, RULES)
        results, conversions, _ = compute_all(s, lookback_days=90, half_life_days=7)
        start = PERIOD[1] + timedelta(days=60)
        table = channel_report(s, results, conversions, start, start + timedelta(days=5), model="linear")
    assert table["revenue"].sum() == 0 and table["leads"].sum() == 0
