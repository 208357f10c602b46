"""The analytics assets and the backward-move check, materialized by Dagster on a small CRM."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dagster import AssetKey, materialize

from assets.analytics import (
    attribution_touches,
    channel_report,
    deals_move_only_forward,
    lead_attribution,
    sales_funnel,
    sales_morning_checks,
    sales_plan,
)
from assets.resources import HubSettingsResource, StoreResource
from hub.store.db import session_scope
from tests.analytics import crm


def build_recent_crm(url: str, backward: bool) -> None:
    """Deals of the last weeks (inside the report period), one of them moved back when asked."""
    base = (datetime.now(UTC) - crm.T0).days - 20
    with session_scope(url) as s:
        crm.rep(s, 1)
        contact = crm.contact(s, "A")
        lead = crm.lead(s, "L1", contact, base, utm_source="yandex", utm_medium="cpc", utm_campaign="brand")
        won = crm.deal(
            s, "D1", contact, base + 1, "invoice", "won", closed_days=base + 8, rep_id=1, lead_id=lead
        )
        crm.stages(s, won, [("new", base + 1), ("proposal", base + 3), ("invoice", base + 6)])
        invoice = crm.invoice(s, "I1", won, "200000", issued_days=base + 7)
        crm.payment(s, "P1", crm.at(base + 9).date(), [(invoice, "200000")])
        moved = crm.deal(s, "D2", contact, base + 2, "qualified", rep_id=1)
        entries = [("new", base + 2), ("qualified", base + 3)]
        if backward:
            entries += [("proposal", base + 4), ("qualified", base + 5)]
        crm.stages(s, moved, entries)


@pytest.mark.parametrize("backward", [False, True])
def test_analytics_assets_and_the_backward_move_check(
    sqlite_store: str, monkeypatch: pytest.MonkeyPatch, backward: bool
) -> None:
    monkeypatch.setenv("HUB_ANALYTICS__PLAN_MONTHLY_REVENUE", "1000000")
    build_recent_crm(sqlite_store, backward)
    result = materialize(
        [
            attribution_touches,
            lead_attribution,
            channel_report,
            sales_funnel,
            sales_morning_checks,
            sales_plan,
            deals_move_only_forward,
        ],
        resources={"store": StoreResource(database_url=sqlite_store), "hub_settings": HubSettingsResource()},
    )
    assert result.success
    materializations = [
        event.event_specific_data.materialization for event in result.get_asset_materialization_events()
    ]
    metadata = {m.asset_key.to_user_string(): m.metadata for m in materializations}
    assert metadata["channel_report"]["channel_chart"].value.startswith(
        "![revenue and ROI per channel](data:image/png;base64,"
    )
    assert metadata["sales_funnel"]["funnel_sales_chart"].value.startswith(
        "![funnel sales](data:image/png;base64,"
    )
    assert metadata["channel_report"]["revenue"].value == 200_000
    assert "yandex / cpc" in metadata["channel_report"]["channels"].value
    assert metadata["lead_attribution"]["won_deals"].value == 1
    # 1 000 000 / 200 000 = 5 won deals; every closed deal won; two deals opened from one lead.
    assert (metadata["sales_plan"]["deals_needed"].value, metadata["sales_plan"]["leads_needed"].value) == (
        5,
        3,
    )
    (check,) = result.get_asset_check_evaluations()
    assert check.asset_key == AssetKey("sales_funnel")
    assert check.passed is (not backward)
    assert check.metadata["backward_moves"].value == (1 if backward else 0)
