"""The website-leads slice end to end through Dagster: quarantine, routing, idempotency,
and the same result on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from dagster import materialize
from sqlalchemy import select

from assets.leads import lead_assignments, resolved_leads
from assets.resources import build_resources
from assets.site import site_leads
from hub.identity.resolve import index_contact
from hub.settings import load_settings
from hub.store.db import session_scope
from hub.store.models import Contact, Lead, QuarantineRecord, Rep, Task
from tests.site.fake_site import FakeSite, serve_site
from tests.store_snapshot import WALL_CLOCK_COLUMNS, diff_snapshots, store_snapshot

SLICE = [site_leads, resolved_leads, lead_assignments]
ALWAYS_ON = {"shift_start": "00:00", "shift_end": "23:59", "work_days": [1, 2, 3, 4, 5, 6, 7]}


def _seed(url: str) -> None:
    with session_scope(url) as session:
        session.add_all(
            [
                Rep(id=1, name="Анна", capacity=10, **ALWAYS_ON),
                Rep(id=2, name="Дмитрий", capacity=20, **ALWAYS_ON),
                Rep(id=3, name="Ушедший", capacity=50, active=False, **ALWAYS_ON),
                Rep(id=4, name="Ольга", capacity=10, **ALWAYS_ON),
            ]
        )
        session.flush()
        owner_of = {"C-1": 1, "C-2": 3}
        for ref, phone, email in [("C-1", "+79161110001", "ivan@corp.ru"), ("C-2", "+79161110002", None)]:
            contact = Contact(
                source_system="crm",
                source_ref=ref,
                name=ref,
                phone_e164=phone,
                email=email,
                owner_rep_id=owner_of[ref],
            )
            session.add(contact)
            session.flush()
            index_contact(session, contact)


LEADS = [
    # Returning client, by a differently typed phone: goes to owner rep 1.
    {"id": "a1", "name": "Иван", "phone": "8 (916) 111-00-01", "submitted_at": "2026-11-20T09:00:00Z"},
    # Returning by email in capitals.
    {"id": "a2", "email": "IVAN@corp.ru", "submitted_at": "2026-11-20T09:30:00Z"},
    # Owner left the company: routed by load instead.
    {"id": "a3", "phone": "+7 916 111 00 02", "submitted_at": "2026-11-20T10:00:00Z"},
    {"id": "a4", "name": "Новый", "phone": "+79161110003", "submitted_at": "2026-11-20T10:05:00Z"},
    {"id": "a5", "name": "Новая", "email": "new@example.pl", "submitted_at": "2026-11-20T10:10:00Z"},
    # Malformed: no way to reach the person.
    {"id": "bad", "name": "Аноним", "phone": "123", "submitted_at": "2026-11-20T10:20:00Z"},
]


def _run(url: str, site: FakeSite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", url)
    monkeypatch.setenv("HUB_SITE__BASE_URL", site.url)
    monkeypatch.setenv("HUB_SITE__API_TOKEN", site.token)
    result = materialize(SLICE, resources=build_resources(load_settings()))
    assert result.success


def test_slice_routes_quarantines_and_is_idempotent(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _seed(store_url)
    with serve_site(FakeSite(LEADS)) as site:
        _run(store_url, site, monkeypatch)
        first = store_snapshot(store_url)
        _run(store_url, site, monkeypatch)
        assert diff_snapshots(first, store_snapshot(store_url)) == {}
    with session_scope(store_url) as session:
        leads = {lead.source_ref: lead for lead in session.scalars(select(Lead))}
        quarantined = session.scalars(select(QuarantineRecord)).all()
        tasks = session.scalars(select(Task)).all()
    assert set(leads) == {"a1", "a2", "a3", "a4", "a5"}
    assert len(quarantined) == 1 and quarantined[0].source_ref == "bad"
    assert "not a valid number" in quarantined[0].error
    # Sticky owner, and the second lead of the same person within the window is a duplicate.
    assert leads["a1"].assigned_rep_id == 1 and leads["a1"].routing_reason.startswith("returning contact")
    assert leads["a2"].status == "duplicate" and leads["a2"].duplicate_of_id == leads["a1"].id
    assert leads["a3"].assigned_rep_id in (2, 4) and "inactive" in leads["a3"].routing_reason
    assert all(lead.routing_reason for lead in leads.values() if lead.status == "open")
    assert len(tasks) == 4  # a first-call task per routed lead, none for the duplicate


def test_sqlite_and_postgresql_give_the_same_store(
    tmp_path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    from hub.store import migrate

    sqlite_url = f"sqlite:///{tmp_path / 'parity.db'}"
    snapshots = []
    for url in (sqlite_url, postgres_url):
        migrate.upgrade(url)
        _seed(url)
        with serve_site(FakeSite(LEADS)) as site:
            _run(url, site, monkeypatch)
        # PostgreSQL sequences advance on ON CONFLICT DO NOTHING, SQLite's rowids do not:
        # compare content, not surrogate ids.
        snapshots.append(store_snapshot(url, skip=WALL_CLOCK_COLUMNS | {"id"}))
    assert diff_snapshots(*snapshots) == {}
    assert snapshots[0]["crm_leads"]  # the comparison compared something


def test_load_balancing_spreads_new_leads_by_capacity(
    sqlite_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(sqlite_store)
    many = [
        {
            "id": f"n{i}",
            "phone": f"+7916200{i:04d}",
            "submitted_at": f"2026-11-21T{8 + i // 60:02d}:{i % 60:02d}:00Z",
        }
        for i in range(80)
    ]
    with serve_site(FakeSite(many)) as site:
        _run(sqlite_store, site, monkeypatch)
    with session_scope(sqlite_store) as session:
        per_rep = {
            rep: len(session.scalars(select(Lead).where(Lead.assigned_rep_id == rep)).all())
            for rep in (1, 2, 4)
        }
    # Capacities 10, 20, 10: Дмитрий takes about half, the others a quarter each.
    assert per_rep[2] == 40 and per_rep[1] == 20 and per_rep[4] == 20
