"""A stranger's calls go the way of web leads: resolved to one contact (the repeat call a
duplicate), routed to a rep; the calls join the contact's card, and the next missed call from
that number is a call-back task for the new owner, not another lead."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from hub.identity.resolve import resolve_new_leads
from hub.ingest.telephony import sync_cdr_dir
from hub.leads import link_activities_to_lead_contacts
from hub.routing.router import route_open_leads
from hub.store.db import session_scope
from hub.store.models import Activity, Lead, Task
from tests.telephony.test_asterisk_cdr import cdr_settings, write_cdr

STRANGER = "79035557788"


def cdr_row(uniqueid: str, start: str, disposition: str, billsec: int) -> str:
    answer = f'"{start[:-2]}10"' if disposition == "ANSWERED" else '""'
    return (
        f'"","{STRANGER}","74950000000","from-trunk","","SIP/trunk-{uniqueid}","SIP/101-{uniqueid}","Dial",'
        f'"SIP/101,30","{start}",{answer},"{start}",{billsec + 10},{billsec},"{disposition}",'
        f'"DOCUMENTATION","{uniqueid}",""'
    )


def test_stranger_calls_become_one_routed_lead_and_then_a_known_client(crm_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "cdr"
    folder.mkdir()
    settings = cdr_settings(folder)
    write_cdr(
        folder / "Master.csv",
        [
            cdr_row("1000.1", "2026-03-05 10:00:00", "NO ANSWER", 0),
            cdr_row("1000.2", "2026-03-05 10:12:00", "ANSWERED", 95),
        ],
    )
    first = sync_cdr_dir(crm_url, settings, "RU", "Europe/Moscow")
    assert first.extra["leads_created"] == 2 and first.extra.get("call_back_tasks", 0) == 0
    with session_scope(crm_url) as session:
        resolved = resolve_new_leads(session, timedelta(hours=24))
        routed = route_open_leads(session, require_shift=False)
    assert (resolved.leads, resolved.duplicates, routed.routed) == (2, 1, 1)
    with session_scope(crm_url) as session:
        assert link_activities_to_lead_contacts(session) == 2
    with session_scope(crm_url) as session:
        leads = session.scalars(select(Lead).order_by(Lead.submitted_at)).all()
        calls = session.scalars(select(Activity).order_by(Activity.occurred_at)).all()
        contact_id = leads[0].contact_id
        owner = leads[0].assigned_rep_id
    assert [lead.status for lead in leads] == ["open", "duplicate"] and owner is not None
    assert [call.contact_id for call in calls] == [contact_id, contact_id]

    # The stranger is now a client: the next missed call is a call-back task for the owner.
    write_cdr(folder / "Master.csv", [cdr_row("1000.3", "2026-03-06 09:00:00", "BUSY", 0)], mode="a")
    second = sync_cdr_dir(crm_url, settings, "RU", "Europe/Moscow")
    assert second.written == 1 and second.extra.get("leads_created", 0) == 0
    with session_scope(crm_url) as session:
        tasks = session.scalars(select(Task).where(Task.kind == "call_back")).all()
        last_call = session.scalars(select(Activity).where(Activity.source_ref == "1000.3")).one()
    assert [(t.rep_id, t.contact_id) for t in tasks] == [(owner, contact_id)]
    assert last_call.contact_id == contact_id and last_call.lead_id is None
