"""Assign open leads to reps: a returning contact to its active, qualified owner; otherwise the
eligible rep (active, on shift in their own time zone, with the lead's skill/region/language) with
the lowest load relative to capacity, round-robin (longest since last assignment) on ties.
Manual assignments are never overwritten; a deactivated rep's open leads, deals and contacts go
to the others by the same rule. Every assignment stores its reason."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
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
    off_shift: int = 0  # routed to an eligible rep off shift because nobody eligible was on shift
    redistributed_leads: int = 0
    redistributed_deals: int = 0
    redistributed_contacts: int = 0
    manual_kept: int = 0  # work of a deactivated rep left alone because a person assigned it
    load_before: dict[str, float] = field(default_factory=dict)
    load_after: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    """What a piece of work asks of a rep."""

    region: str | None = None
    language: str | None = None
    skill: str | None = None

    @classmethod
    def of_lead(cls, lead: Lead) -> Profile:
        return cls(lead.region, lead.language, lead.skill)


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
    """Whether `at` falls in the rep's working hours in the rep's own time zone; a night shift
    (20:00-08:00) belongs to the day it starts on."""
    local = as_utc(at).astimezone(ZoneInfo(rep.timezone))
    days = rep.work_days or []
    now = local.strftime("%H:%M")
    if rep.shift_start <= rep.shift_end:
        return local.isoweekday() in days and rep.shift_start <= now < rep.shift_end
    if now >= rep.shift_start:
        return local.isoweekday() in days
    yesterday = (local - timedelta(days=1)).isoweekday()
    return now < rep.shift_end and yesterday in days


def qualified(rep: Rep, profile: Profile) -> bool:
    """Active, and has the region, language and skill the work asks for."""
    if not rep.active:
        return False
    if profile.region and rep.regions and profile.region not in rep.regions:
        return False
    if profile.language and rep.languages and profile.language not in rep.languages:
        return False
    return not (profile.skill and profile.skill not in (rep.skills or []))


def eligible(rep: Rep, lead: Lead) -> bool:
    return qualified(rep, Profile.of_lead(lead))


class RepPool:
    """Reps with their current load; picks the least-loaded qualified rep in O(log n) per pick
    with one heap per (profile, shift) and lazy deletion of stale entries."""

    def __init__(
        self,
        reps: list[Rep],
        loads: dict[int, float],
        now: datetime,
        require_shift: bool,
        lead_weight: float = 1.0,
    ) -> None:
        self.lead_weight = lead_weight
        self.sequence = 0
        self.reps = {r.id: r for r in reps if r.active and r.capacity > 0}
        self.loads = {rep_id: loads.get(rep_id, 0.0) for rep_id in self.reps}
        self.now = now
        self.require_shift = require_shift
        self.shift = {rep_id: on_shift(rep, now) for rep_id, rep in self.reps.items()}
        self.version = dict.fromkeys(self.reps, 0)
        self.heaps: dict[tuple[Profile, bool], list[tuple[float, float, int, int]]] = {}
        self.pool_size: dict[tuple[Profile, bool], int] = {}
        self.heaps_of: dict[int, list[list[tuple[float, float, int, int]]]] = {r: [] for r in self.reps}

    def ratio(self, rep_id: int) -> float:
        return self.loads[rep_id] / self.reps[rep_id].capacity

    def _entry(self, rep_id: int) -> tuple[float, float, int, int]:
        rep = self.reps[rep_id]
        waited = as_utc(rep.last_assigned_at).timestamp() if rep.last_assigned_at else float("-inf")
        return (self.ratio(rep_id), waited, rep_id, self.version[rep_id])

    def _heap(self, profile: Profile, shift_only: bool) -> list[tuple[float, float, int, int]]:
        key = (profile, shift_only)
        heap = self.heaps.get(key)
        if heap is None:
            heap = [
                self._entry(rep_id)
                for rep_id, rep in self.reps.items()
                if qualified(rep, profile) and (self.shift[rep_id] or not shift_only)
            ]
            heapq.heapify(heap)
            self.heaps[key] = heap
            self.pool_size[key] = len(heap)
            for _, _, rep_id, _ in heap:
                self.heaps_of[rep_id].append(heap)
        return heap

    def _top(self, heap: list[tuple[float, float, int, int]]) -> int | None:
        while heap:
            _, _, rep_id, version = heap[0]
            if version == self.version[rep_id]:
                return rep_id
            heapq.heappop(heap)
        return None

    def pick(self, profile: Profile) -> tuple[Rep | None, str]:
        """The least-loaded qualified rep (on shift first when shifts are required)."""
        note = "shifts not required"
        rep_id = None
        if self.require_shift:
            rep_id = self._top(self._heap(profile, True))
            note = "on shift"
        if rep_id is None:
            rep_id = self._top(self._heap(profile, False))
            if self.require_shift:
                note = "nobody qualified on shift, so off shift"
        if rep_id is None:
            return None, "no active rep has the region, language and skill asked for"
        rep = self.reps[rep_id]
        count = self.pool_size[(profile, note == "on shift")]
        return rep, (
            f"lowest load {self.ratio(rep_id):.2f} of capacity {rep.capacity} among qualified reps "
            f"({note}; {count} in the pool)"
        )

    def assign(self, rep: Rep, weight: float, rotate: bool = True) -> None:
        """Add the work's weight to the rep's load; `rotate` moves the rep to the back of the
        round-robin (an owner receiving its own contact does not lose its turn)."""
        self.loads[rep.id] = self.loads.get(rep.id, 0.0) + weight
        if rotate:
            # A microsecond per assignment keeps the order of a run's assignments for the next run.
            self.sequence += 1
            rep.last_assigned_at = self.now + timedelta(microseconds=self.sequence)
        self.version[rep.id] += 1
        entry = self._entry(rep.id)
        for heap in self.heaps_of[rep.id]:
            heapq.heappush(heap, entry)

    def snapshot(self) -> dict[str, float]:
        return {rep.name: round(self.ratio(rep_id), 3) for rep_id, rep in sorted(self.reps.items())}


def pick_rep(
    reps: list[Rep], loads: dict[int, float], lead: Lead, at: datetime, require_shift: bool
) -> tuple[Rep | None, str]:
    """One pick without keeping a pool (for callers routing a single lead)."""
    return RepPool(reps, loads, at, require_shift).pick(Profile.of_lead(lead))


def route_open_leads(
    session: Session,
    *,
    lead_weight: float = 1.0,
    deal_weight: float = 0.5,
    require_shift: bool = True,
    sticky_owner_off_shift: bool = True,
    redistribute_inactive: bool = True,
    now: datetime | None = None,
) -> RoutingStats:
    """Redistribute a deactivated rep's open work, then route every open, unassigned lead."""
    now = now or utcnow()
    stats = RoutingStats()
    reps = list(session.scalars(select(Rep).order_by(Rep.id)).all())
    by_id = {r.id: r for r in reps}
    pool = RepPool(reps, rep_loads(session, lead_weight, deal_weight), now, require_shift, lead_weight)
    stats.load_before = pool.snapshot()
    tasks: list[dict[str, Any]] = []
    leads = session.scalars(
        select(Lead)
        .where(Lead.status == "open", Lead.assigned_rep_id.is_(None), Lead.assignment_manual.is_(False))
        .order_by(Lead.submitted_at, Lead.id)
    ).all()
    contacts = _contacts_of(session, [lead.contact_id for lead in leads])
    for lead in leads:
        contact = contacts.get(lead.contact_id) if lead.contact_id else None
        rep, reason = _choose(pool, by_id, lead, contact, sticky_owner_off_shift, stats)
        if rep is None:
            lead.routing_reason = reason[:300]
            stats.unroutable += 1
            continue
        _assign_lead(lead, rep, reason, now, tasks)
        if contact is not None and not contact.owner_manual:
            previous = by_id.get(contact.owner_rep_id) if contact.owner_rep_id else None
            if previous is None:
                contact.owner_rep_id = rep.id
                contact.owner_reason = f"first lead {lead.id} routed to {rep.name}"[:300]
            elif not previous.active:
                contact.owner_rep_id = rep.id
                contact.owner_reason = f"owner {previous.name} deactivated; follows lead {lead.id}"[:300]
                stats.redistributed_contacts += 1
        stats.routed += 1
    # New leads first (they wait for a first call), then what a deactivated rep left behind.
    if redistribute_inactive:
        _redistribute(session, pool, by_id, deal_weight, sticky_owner_off_shift, stats, tasks)
    upsert(session, Task, tasks, key=["source_system", "source_ref"], update=[])
    session.flush()
    stats.load_after = pool.snapshot()
    return stats


def _contacts_of(session: Session, ids: list[int | None]) -> dict[int, Contact]:
    wanted = sorted({i for i in ids if i is not None})
    found: dict[int, Contact] = {}
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        found.update({c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(chunk)))})
    return found


def _choose(
    pool: RepPool,
    by_id: dict[int, Rep],
    lead: Lead,
    contact: Contact | None,
    sticky_owner_off_shift: bool,
    stats: RoutingStats,
) -> tuple[Rep | None, str]:
    profile = Profile.of_lead(lead)
    owner = by_id.get(contact.owner_rep_id) if contact and contact.owner_rep_id else None
    owner_ok = owner is not None and owner.id in pool.reps and qualified(owner, profile)
    if owner_ok and (sticky_owner_off_shift or not pool.require_shift or pool.shift[owner.id]):
        manual = " (owner set by hand)" if contact and contact.owner_manual else ""
        pool.assign(owner, pool.lead_weight, rotate=False)  # type: ignore[arg-type]
        stats.sticky += 1
        return owner, f"returning contact: owner {owner.name} is active{manual}"  # type: ignore[union-attr]
    rep, reason = pool.pick(profile)
    if rep is not None:
        pool.assign(rep, pool.lead_weight)
        if "off shift" in reason:
            stats.off_shift += 1
    if owner is not None:
        why = "inactive" if not owner.active else "not qualified or off shift"
        reason = f"owner {owner.name} is {why}; {reason}"
    return rep, reason


def _assign_lead(lead: Lead, rep: Rep, reason: str, now: datetime, tasks: list[dict[str, Any]]) -> None:
    lead.assigned_rep_id = rep.id
    lead.assigned_at = now
    lead.routing_reason = reason[:300]
    tasks.append(
        {
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
    )


def _redistribute(
    session: Session,
    pool: RepPool,
    by_id: dict[int, Rep],
    deal_weight: float,
    sticky_owner_off_shift: bool,
    stats: RoutingStats,
    tasks: list[dict[str, Any]],
) -> None:
    """A deactivated rep's open leads and deals go to the others by load; its contacts follow
    their open work, or are spread over the qualified reps by load. Manual ones stay."""
    gone = [r.id for r in by_id.values() if not r.active]
    if not gone:
        return
    new_owner: dict[int, Rep] = {}
    leads = session.scalars(
        select(Lead)
        .where(Lead.status == "open", Lead.assigned_rep_id.in_(gone))
        .order_by(Lead.submitted_at, Lead.id)
    ).all()
    contacts = _contacts_of(session, [lead.contact_id for lead in leads])
    for lead in leads:
        if lead.assignment_manual:
            stats.manual_kept += 1
            continue
        previous = by_id[lead.assigned_rep_id]  # type: ignore[index]
        contact = contacts.get(lead.contact_id) if lead.contact_id else None
        rep, reason = _choose(pool, by_id, lead, contact, sticky_owner_off_shift, stats)
        if rep is None:
            continue
        _assign_lead(lead, rep, f"redistributed from deactivated {previous.name}: {reason}", pool.now, tasks)
        # The leaver's open tasks on the lead (the first call) move with it.
        session.execute(
            update(Task)
            .where(Task.lead_id == lead.id, Task.rep_id == previous.id, Task.done.is_(False))
            .values(rep_id=rep.id)
        )
        if lead.contact_id:
            new_owner.setdefault(lead.contact_id, rep)
        stats.redistributed_leads += 1
    deals = session.scalars(
        select(Deal).where(Deal.status == "open", Deal.rep_id.in_(gone)).order_by(Deal.id)
    ).all()
    deal_contacts = _contacts_of(session, [deal.contact_id for deal in deals])
    for deal in deals:
        previous = by_id[deal.rep_id]  # type: ignore[index]
        contact = deal_contacts.get(deal.contact_id) if deal.contact_id else None
        rep = new_owner.get(deal.contact_id) if deal.contact_id else None
        if rep is not None:
            reason = f"follows contact's open lead to {rep.name}"
            pool.assign(rep, deal_weight, rotate=False)
        else:
            profile = Profile(contact.region if contact else None, contact.language if contact else None)
            rep, reason = pool.pick(profile)
            if rep is None:
                continue
            pool.assign(rep, deal_weight)
        deal.rep_id = rep.id
        deal.assignment_reason = f"redistributed from deactivated {previous.name}: {reason}"[:300]
        if deal.contact_id:
            new_owner.setdefault(deal.contact_id, rep)
        stats.redistributed_deals += 1
    owned = session.scalars(select(Contact).where(Contact.owner_rep_id.in_(gone)).order_by(Contact.id)).all()
    spread: dict[Profile, int] = {}
    for contact in owned:
        if contact.owner_manual:
            stats.manual_kept += 1
            continue
        previous = by_id[contact.owner_rep_id]  # type: ignore[index]
        rep = new_owner.get(contact.id)
        if rep is not None:
            reason = f"follows its open work to {rep.name}"
        else:
            # No open work: spread round-robin over qualified reps from the least loaded up,
            # without adding load (an owned contact is not work until it writes or calls).
            profile = Profile(contact.region, contact.language)
            ranked = sorted(
                (r for r in pool.reps.values() if qualified(r, profile)),
                key=lambda r: (pool.ratio(r.id), r.id),
            )
            if not ranked:
                continue
            turn = spread.get(profile, 0)
            spread[profile] = turn + 1
            rep = ranked[turn % len(ranked)]
            reason = f"round-robin over {len(ranked)} qualified reps by load"
        contact.owner_rep_id = rep.id
        contact.owner_reason = f"redistributed from deactivated {previous.name}: {reason}"[:300]
        stats.redistributed_contacts += 1
