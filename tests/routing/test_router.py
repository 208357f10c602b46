"""Routing by load: relative load with weights, round-robin ties, shifts in each rep's time zone,
skills/region/language, sticky owners, manual assignments, redistribution of a leaver's work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import materialize
from sqlalchemy import select

from assets.leads import lead_assignments
from assets.resources import build_resources
from hub.routing.router import on_shift, route_open_leads
from hub.settings import load_settings
from hub.store.db import session_scope
from hub.store.models import Contact, Deal, Lead, Rep, Task

# Friday 2026-11-20 10:00 UTC = 13:00 in Moscow, 15:00 in Yekaterinburg, 11:00 in Warsaw.
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ALWAYS = {"shift_start": "00:00", "shift_end": "23:59", "work_days": [1, 2, 3, 4, 5, 6, 7]}


def _lead(session, ref: str, **fields) -> Lead:  # type: ignore[no-untyped-def]
    lead = Lead(
        source_system="site_api",
        source_ref=ref,
        submitted_at=NOW - timedelta(minutes=5),
        status="open",
        **fields,
    )
    session.add(lead)
    session.flush()
    return lead


def _route(session, **options):  # type: ignore[no-untyped-def]
    return route_open_leads(session, now=NOW, **options)


def test_lowest_relative_load_with_weights(store_url: str) -> None:
    with session_scope(store_url) as session:
        session.add_all(
            [
                Rep(id=1, name="big", capacity=40, **ALWAYS),
                Rep(id=2, name="small", capacity=10, **ALWAYS),
            ]
        )
        session.flush()
        # big: 10 open deals * 0.5 + 6 leads = 11/40 = 0.275; small: 2 leads = 0.2.
        for n in range(10):
            session.add(Deal(source_ref=f"D{n}", stage="new", rep_id=1, opened_at=NOW))
        for n in range(6):
            _lead(session, f"old-big-{n}", assigned_rep_id=1)
        for n in range(2):
            _lead(session, f"old-small-{n}", assigned_rep_id=2)
        _lead(session, "new-1")
        _lead(session, "new-2")
        stats = _route(session)
        leads = {lead.source_ref: lead for lead in session.scalars(select(Lead))}
    assert leads["new-1"].assigned_rep_id == 2  # 0.2 < 0.275
    assert leads["new-2"].assigned_rep_id == 1  # small is now 0.3 > 0.275
    assert "lowest load 0.20 of capacity 10" in leads["new-1"].routing_reason
    assert "(on shift; 2 in the pool)" in leads["new-2"].routing_reason
    assert stats.load_before == {"big": 0.275, "small": 0.2}
    assert stats.load_after == {"big": 0.3, "small": 0.3}


def test_ties_go_round_robin_to_who_waited_longest(sqlite_store: str) -> None:
    with session_scope(sqlite_store) as session:
        session.add_all(
            [
                Rep(id=1, name="a", capacity=10, last_assigned_at=NOW - timedelta(minutes=1), **ALWAYS),
                Rep(id=2, name="b", capacity=10, last_assigned_at=NOW - timedelta(hours=1), **ALWAYS),
                Rep(id=3, name="c", capacity=10, last_assigned_at=NOW - timedelta(minutes=30), **ALWAYS),
            ]
        )
        for n in range(6):
            lead = Lead(
                source_system="s",
                source_ref=f"l{n}",
                status="open",
                submitted_at=NOW - timedelta(minutes=10 - n),
            )
            session.add(lead)
        session.flush()
        _route(session)
        order = [lead.assigned_rep_id for lead in session.scalars(select(Lead).order_by(Lead.submitted_at))]
    assert order == [2, 3, 1, 2, 3, 1]


def test_shifts_in_each_reps_own_time_zone(sqlite_store: str) -> None:
    weekdays = [1, 2, 3, 4, 5]
    moscow = Rep(
        name="msk", timezone="Europe/Moscow", shift_start="09:00", shift_end="12:00", work_days=weekdays
    )
    yekat = Rep(
        name="ekb", timezone="Asia/Yekaterinburg", shift_start="14:00", shift_end="18:00", work_days=weekdays
    )
    night = Rep(name="night", timezone="Europe/Moscow", shift_start="20:00", shift_end="08:00", work_days=[5])
    assert not on_shift(moscow, NOW)  # 13:00 in Moscow
    assert on_shift(yekat, NOW)  # 15:00 in Yekaterinburg
    assert on_shift(night, datetime(2026, 11, 20, 18, 0, tzinfo=UTC))  # Friday 21:00
    assert on_shift(night, datetime(2026, 11, 21, 2, 0, tzinfo=UTC))  # Saturday 05:00, Friday's shift
    assert not on_shift(night, datetime(2026, 11, 21, 18, 0, tzinfo=UTC))  # Saturday evening: day off
    assert not on_shift(
        night, datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    )  # Friday 05:00: Thursday's shift, off
    with session_scope(sqlite_store) as session:
        session.add_all(
            [
                Rep(
                    id=1,
                    name="msk",
                    capacity=100,
                    timezone="Europe/Moscow",
                    shift_start="09:00",
                    shift_end="12:00",
                ),
                Rep(
                    id=2,
                    name="ekb",
                    capacity=1,
                    timezone="Asia/Yekaterinburg",
                    shift_start="14:00",
                    shift_end="18:00",
                ),
            ]
        )
        _lead(session, "a")
        _lead(session, "b")
        stats = _route(session)
        leads = {lead.source_ref: lead for lead in session.scalars(select(Lead))}
        # Only ekb is on shift: both go there however loaded; with shifts off, the load decides.
        assert leads["a"].assigned_rep_id == 2 and leads["b"].assigned_rep_id == 2
        assert "on shift" in leads["a"].routing_reason and stats.off_shift == 0
        _lead(session, "c")
        _route(session, require_shift=False)
        assert session.scalars(select(Lead).where(Lead.source_ref == "c")).one().assigned_rep_id == 1


def test_nobody_on_shift_goes_off_shift_and_says_so(sqlite_store: str) -> None:
    with session_scope(sqlite_store) as session:
        session.add(Rep(id=1, name="msk", timezone="Europe/Moscow", shift_start="09:00", shift_end="12:00"))
        _lead(session, "a")
        stats = _route(session)
        lead = session.scalars(select(Lead)).one()
    assert lead.assigned_rep_id == 1 and "nobody qualified on shift" in lead.routing_reason
    assert stats.off_shift == 1


def test_skills_region_language(sqlite_store: str) -> None:
    with session_scope(sqlite_store) as session:
        session.add_all(
            [
                Rep(id=1, name="ru-b2b", regions=["RU"], languages=["ru"], skills=["b2b"], **ALWAYS),
                Rep(id=2, name="pl", regions=["PL"], languages=["pl", "en"], skills=["b2b", "b2c"], **ALWAYS),
                Rep(id=3, name="ru-b2c", regions=["RU"], languages=["ru"], skills=["b2c"], **ALWAYS),
            ]
        )
        _lead(session, "pl", region="PL", language="pl")
        _lead(session, "ru-b2c", region="RU", skill="b2c")
        _lead(session, "en", language="en")
        _lead(session, "de", language="de")
        stats = _route(session)
        leads = {lead.source_ref: lead for lead in session.scalars(select(Lead))}
    assert leads["pl"].assigned_rep_id == 2
    assert leads["ru-b2c"].assigned_rep_id == 3
    assert leads["en"].assigned_rep_id == 2
    assert leads["de"].assigned_rep_id is None and "no active rep" in leads["de"].routing_reason
    assert stats.unroutable == 1


def test_sticky_owner_and_manual_assignments(store_url: str) -> None:
    with session_scope(store_url) as session:
        session.add_all(
            [
                Rep(id=1, name="owner", capacity=1, **ALWAYS),
                Rep(id=2, name="free", capacity=100, **ALWAYS),
                Rep(id=3, name="gone", capacity=100, active=False, **ALWAYS),
            ]
        )
        session.flush()
        loyal = Contact(source_ref="C-1", name="Клиент", owner_rep_id=1)
        orphan = Contact(source_ref="C-2", name="Другой", owner_rep_id=3)
        session.add_all([loyal, orphan])
        session.flush()
        _lead(session, "busy", assigned_rep_id=1)
        _lead(session, "returning", contact_id=loyal.id)
        _lead(session, "orphaned", contact_id=orphan.id)
        _lead(session, "manual", assignment_manual=True)
        stats = _route(session)
        leads = {lead.source_ref: lead for lead in session.scalars(select(Lead))}
        # Sticky however loaded the owner is; the owner's turn in the round-robin is kept.
        assert leads["returning"].assigned_rep_id == 1
        assert leads["returning"].routing_reason == "returning contact: owner owner is active"
        assert session.get(Rep, 1).last_assigned_at is None
        assert (
            leads["orphaned"].assigned_rep_id == 2
            and "owner gone is inactive" in leads["orphaned"].routing_reason
        )
        assert session.get(Contact, orphan.id).owner_rep_id == 2
        assert leads["manual"].assigned_rep_id is None and leads["manual"].routing_reason is None
        assert stats.sticky == 1 and stats.routed == 2


def test_deactivated_rep_work_is_redistributed_manual_kept(store_url: str) -> None:
    with session_scope(store_url) as session:
        session.add_all(
            [
                Rep(id=1, name="Анна", capacity=10, **ALWAYS),
                Rep(id=2, name="Олег", capacity=10, **ALWAYS),
                Rep(id=3, name="Ушёл", capacity=10, active=False, **ALWAYS),
            ]
        )
        session.flush()
        contacts = [Contact(source_ref=f"C-{n}", name=f"Клиент {n}", owner_rep_id=3) for n in range(4)]
        contacts.append(
            Contact(source_ref="C-manual", name="Личный клиент", owner_rep_id=3, owner_manual=True)
        )
        session.add_all(contacts)
        session.flush()
        for n in range(4):
            _lead(session, f"open-{n}", assigned_rep_id=3, contact_id=contacts[n].id, assigned_at=NOW)
        session.add(
            Task(
                source_system="hub",
                source_ref="t",
                kind="first_call",
                title="call",
                rep_id=3,
                lead_id=session.scalars(select(Lead.id).where(Lead.source_ref == "open-0")).one(),
            )
        )
        _lead(session, "kept", assigned_rep_id=3, assignment_manual=True)
        session.add(
            Deal(source_ref="D-1", stage="proposal", rep_id=3, contact_id=contacts[0].id, opened_at=NOW)
        )
        session.add(Deal(source_ref="D-2", stage="proposal", rep_id=3, opened_at=NOW))
        session.add(Deal(source_ref="D-won", stage="won", status="won", rep_id=3, opened_at=NOW))
        stats = _route(session)
        leads = {lead.source_ref: lead for lead in session.scalars(select(Lead))}
        deals = {deal.source_ref: deal for deal in session.scalars(select(Deal))}
        owners = {c.source_ref: c for c in session.scalars(select(Contact))}
        task = session.scalars(select(Task).where(Task.source_ref == "t")).one()
        assert stats.redistributed_leads == 4 and stats.redistributed_deals == 2
        assert stats.redistributed_contacts == 4 and stats.manual_kept == 2
        moved = [leads[f"open-{n}"].assigned_rep_id for n in range(4)]
        assert sorted(moved) == [1, 1, 2, 2]  # balanced by load
        assert all(
            leads[f"open-{n}"].routing_reason.startswith("redistributed from deactivated Ушёл")
            for n in range(4)
        )
        assert leads["kept"].assigned_rep_id == 3
        # The deal follows its contact's lead; the contact follows its open work.
        assert (
            deals["D-1"].rep_id == leads["open-0"].assigned_rep_id
            and "follows" in deals["D-1"].assignment_reason
        )
        assert deals["D-2"].rep_id in (1, 2) and deals["D-won"].rep_id == 3
        assert owners["C-0"].owner_rep_id == leads["open-0"].assigned_rep_id
        assert owners["C-manual"].owner_rep_id == 3
        assert task.rep_id == leads["open-0"].assigned_rep_id
        assert stats.load_before == {"Анна": 0.0, "Олег": 0.0}
        assert stats.load_after["Анна"] + stats.load_after["Олег"] == pytest.approx(0.4 + 0.1)
        # A second run finds nothing left to move.
        again = _route(session)
        assert (again.redistributed_leads, again.redistributed_deals, again.redistributed_contacts) == (
            0,
            0,
            0,
        )


def test_asset_metadata_shows_load_before_and_after(
    sqlite_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope(sqlite_store) as session:
        session.add_all(
            [Rep(id=1, name="Анна", capacity=4, **ALWAYS), Rep(id=2, name="Олег", capacity=4, **ALWAYS)]
        )
        for n in range(4):
            _lead(session, f"l{n}")
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_store)
    result = materialize([lead_assignments], resources=build_resources(load_settings()))
    assert result.success
    metadata = result.asset_materializations_for_node("lead_assignments")[0].metadata
    assert metadata["routed"].value == 4
    table = metadata["rep_load"].value
    assert "| Анна | 0.0 | 0.5 |" in table and "| Олег | 0.0 | 0.5 |" in table
    assert metadata["max_relative_load"].value == metadata["min_relative_load"].value == 0.5
