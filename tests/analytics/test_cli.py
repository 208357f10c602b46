"""`hub plan` and `hub import-costs` against a store built in the test."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub.cli import main
from hub.store.db import session_scope
from hub.store.models import AdCost
from tests.analytics import crm


@pytest.fixture
def store(sqlite_store: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_store)
    monkeypatch.setenv("HUB_TIMEZONE", "UTC")
    return sqlite_store


def test_plan_from_the_facts_of_the_store(store: str) -> None:
    recent_day = (datetime.now(UTC) - crm.T0).days - 10  # 10 days ago, as days after crm.T0
    with session_scope(store) as s:
        crm.rep(s, 1)
        contact = crm.contact(s, "A")
        for n in range(4):
            crm.lead(s, f"L{n}", contact, recent_day)
        won = crm.deal(s, "D1", contact, recent_day, "invoice", "won", closed_days=recent_day, rep_id=1)
        crm.deal(s, "D2", contact, recent_day, "new", "lost", closed_days=recent_day, rep_id=1)
        invoice = crm.invoice(s, "I1", won, "500000", issued_days=recent_day)
        crm.payment(s, "P1", (crm.at(recent_day) + timedelta(days=1)).date(), [(invoice, "500000")])
        for n in range(8):
            crm.activity(s, f"call-{n}", "call", contact, recent_day, rep_id=1)
    result = CliRunner().invoke(main, ["plan", "--revenue", "3000000", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    # 500 000 a deal, half the closed deals won, every second lead a deal, two calls per lead.
    assert (plan["won_deals"], plan["deals"], plan["leads"], plan["calls"]) == (6, 12, 24, 48)
    text = CliRunner().invoke(main, ["plan", "--profit", "750000", "--margin", "25"])
    assert text.exit_code == 0 and "won deals                       6" in text.output


def test_plan_without_facts_says_what_is_missing(store: str) -> None:
    result = CliRunner().invoke(main, ["plan", "--revenue", "100"])
    assert result.exit_code == 1
    assert "average check" in result.output and "win rate" in result.output


def test_import_costs(store: str, tmp_path: Path) -> None:
    path = tmp_path / "cabinet.csv"
    path.write_bytes(
        "Дата;utm_source;utm_medium;Кампания;Расход\n01.11.2026;yandex;cpc;brand;1 500,50\n".encode("cp1251")
    )
    result = CliRunner().invoke(main, ["import-costs", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["written"] == 1
    with session_scope(store) as s:
        cost = s.scalar(select(AdCost))
    assert (cost.channel, cost.campaign, str(cost.cost)) == ("yandex / cpc", "brand", "1500.50")
