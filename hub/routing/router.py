"""Assign open leads to reps: sticky owner first, else the eligible rep with the lowest load
relative to capacity, round-robin (longest since last assignment) on ties. Every assignment
stores its reason."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.store.models import Contact, Deal, Lead, Rep, Task
from hub.store.upsert import upsert
from hub.timeutil import as_utc, utcnow

FIRST_CALL_WITHIN = timedelta(minutes=15)


@dataclass
class RoutingStats:
    routed: int = 0
    sticky: int = 0
    unroutable: int = 0
    load_before: dict[str, float] = field(default_factory=dict)
    load_after: dict[str, float] = field(default_factory=dict)


def rep_loads(session: Session, lead_weight: float, deal_weight: float) -> dict[int, float]:
    """Weighted open work per rep: open (non-duplicate) leads and open deals."""
    loads: dict[int, float] = {}
    open_leads = session.execute(
        select(Lead.assigned_rep_id, func.count())
        .where(Lead.assigned_rep_id.is_not(None), Lead.status == "open")
        .group_by(Lead.assigned_rep_id)
    ).all()
    for rep_id, count in open_leads:
        loads[rep_id] = loads.get(rep_id, 0.0) + lead_weight * count
    open_deals = session.execute(
        select(Deal.rep_id, func.count())
        .where(Deal.rep_id.is_not(None), Deal.status == "open")
        .group_by(Deal.rep_id)
    ).all()
    for rep_id, count in open_deals:
        loads[rep_id] = loads.get(rep_id, 0.0) + deal_weight * count
    return loads


def on_shift(rep: Rep, at: datetime) -> bool:
    local = as_utc(at).astimezone(ZoneInfo(rep.timezone))
    if local.isoweekday() not in (rep.work_days or []):
        return False
    now = local.strftime("%H:%M")
    if rep.shift_start <= rep.shift_end:
        return rep.shift_start <= now < rep.shift_end
    return now >= rep.shift_start or now < rep.shift_end  # a night shift over midnight


def eligible(rep: Rep, lead: Lead) -> bool:
    if not rep.active:
        return False
    if lead.region and rep.regions and lead.region not in rep.regions:
        return False
    if lead.language and rep.languages and lead.language not in rep.languages:
        return False
    return not (lead.skill and lead.skill not in (rep.skills or []))


def pick_rep(
    reps: list[Rep], loads: dict[int, float], lead: Lead, at: datetime, require_shift: bool
) -> tuple[Rep | None, str]:
    candidates = [r for r in reps if eligible(r, lead) and r.capacity > 0]
    if require_shift:
        working = [r for r in candidates if on_shift(r, at)]
        if working:
            candidates = working
            shift_note = "on shift"
        elif candidates:
            shift_note = "nobody on shift, so any eligible rep"
        else:
            shift_note = ""
    else:
        shift_note = "shifts not required"
    if not candidates:
        return None, "no active rep is eligible"
    epoch = datetime.min.replace(tzinfo=as_utc(at).tzinfo)

    def order(rep: Rep) -> tuple[float, datetime, int]:
        waited = as_utc(rep.last_assigned_at) if rep.last_assigned_at else epoch
        return (loads.get(rep.id, 0.0) / rep.capacity, waited, rep.id)

    best = min(candidates, key=order)
    ratio = loads.get(best.id, 0.0) / best.capacity
    return (
        best,
        f"lowest load {ratio:.2f} of capacity {best.capacity} among {len(candidates)} eligible reps ({shift_note})",
    )


def route_open_leads(
    session: Session,
    *,
    lead_weight: float = 1.0,
    deal_weight: float = 0.5,
    require_shift: bool = True,
    now: datetime | None = None,
) -> RoutingStats:
    now = now or utcnow()
    stats = RoutingStats()
    reps = session.scalars(select(Rep).order_by(Rep.id)).all()
    by_id = {r.id: r for r in reps}
    loads = rep_loads(session, lead_weight, deal_weight)
    stats.load_before = {
        r.name: round(loads.get(r.id, 0.0) / r.capacity, 3) for r in reps if r.active and r.capacity
    }
    leads = session.scalars(
        select(Lead)
        .where(Lead.status == "open", Lead.assigned_rep_id.is_(None), Lead.assignment_manual.is_(False))
        .order_by(Lead.submitted_at, Lead.id)
    ).all()
    for lead in leads:
        contact = session.get(Contact, lead.contact_id) if lead.contact_id else None
        owner = by_id.get(contact.owner_rep_id) if contact and contact.owner_rep_id else None
        if owner is not None and eligible(owner, lead):
            rep, reason = owner, f"returning contact: owner {owner.name} is active"
            stats.sticky += 1
        else:
            rep, reason = pick_rep(list(reps), loads, lead, now, require_shift)
            if owner is not None:
                reason = f"owner {owner.name} is inactive or not eligible; {reason}"
        if rep is None:
            lead.routing_reason = reason
            stats.unroutable += 1
            continue
        lead.assigned_rep_id = rep.id
        lead.assigned_at = now
        lead.routing_reason = reason
        rep.last_assigned_at = now
        loads[rep.id] = loads.get(rep.id, 0.0) + lead_weight
        if contact is not None and contact.owner_rep_id is None:
            contact.owner_rep_id = rep.id
        _first_call_task(session, lead, rep, now)
        stats.routed += 1
        session.flush()
    stats.load_after = {
        r.name: round(loads.get(r.id, 0.0) / r.capacity, 3) for r in reps if r.active and r.capacity
    }
    return stats


def _first_call_task(session: Session, lead: Lead, rep: Rep, now: datetime) -> None:
    row = {
        "source_system": "hub",
        "source_ref": f"lead:{lead.id}:first_call",
        "kind": "first_call",
        "title": f"New lead from {lead.channel or lead.source_system}: call within 15 minutes",
        "rep_id": rep.id,
        "contact_id": lead.contact_id,
        "lead_id": lead.id,
        "due_at": now + FIRST_CALL_WITHIN,
        "done": False,
        "created_at": now,
    }
    upsert(session, Task, [row], key=["source_system", "source_ref"], update=[])
