"""Writes what a backend pulled into the crm_* mirror, one piece of code for every CRM.

Each pulled entity is found by its link (hub_crm_links), else by the hub's reference it carries
(the hub created it and the answer was lost), else by (backend, CRM id); a new one is inserted
and linked. Fields people edit in the CRM are the CRM's (names, phones, responsible user, stage,
done): they are taken whenever the CRM's copy is newer than the link's base. A responsible user
changed in the CRM marks the assignment manual, so routing keeps it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.crm.links import hub_ids_of, parse_hub_ref, save_link
from hub.identity.normalize import normalize_email, normalize_phone, normalize_tax_id
from hub.identity.resolve import index_contact
from hub.store.models import Company, Contact, Deal, DealStageChange, Lead, PipelineStage, Rep, Task
from hub.store.upsert import upsert
from hub.timeutil import as_utc, utcnow
from schemas.crm import (
    CrmCompany,
    CrmContact,
    CrmDeal,
    CrmEntity,
    CrmLead,
    CrmStage,
    CrmStageChange,
    CrmTask,
    CrmUser,
    PullBatch,
    Ref,
)


@dataclass
class MirrorStats:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    reassigned_in_crm: int = 0  # responsible users people changed in the CRM
    stage_moves: int = 0

    def count(self, bucket: dict[str, int], kind: str) -> None:
        bucket[kind] = bucket.get(kind, 0) + 1

    def merge(self, other: MirrorStats) -> None:
        for mine, theirs in (
            (self.created, other.created),
            (self.updated, other.updated),
            (self.unchanged, other.unchanged),
        ):
            for kind, n in theirs.items():
                mine[kind] = mine.get(kind, 0) + n
        self.reassigned_in_crm += other.reassigned_in_crm
        self.stage_moves += other.stage_moves

    def total(self) -> int:
        return sum(self.created.values()) + sum(self.updated.values()) + sum(self.unchanged.values())


def _stamp(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def _first_phone(phones: tuple[str, ...], region: str) -> str | None:
    for raw in phones:
        phone = normalize_phone(raw, region)
        if phone is not None:
            return phone.e164
    return None


def _first_email(emails: tuple[str, ...]) -> str | None:
    for raw in emails:
        email = normalize_email(raw)
        if email:
            return email
    return None


class MirrorWriter:
    """Applies one batch inside the caller's transaction (the batch's cursor is saved by the
    caller in the same transaction)."""

    def __init__(self, session: Session, backend: str, instance: str, region: str) -> None:
        self.session = session
        self.backend = backend
        self.instance = instance
        self.region = region
        self.stats = MirrorStats()
        self._states: dict[tuple[str, str], dict[str, Any]] = {}

    # ------------------------------------------------------------ lookups

    def _linked(self, entity: CrmEntity, table: str, crm_ids: list[str]) -> dict[str, int]:
        from hub.store.models import CrmLink

        ids = sorted(set(crm_ids))
        if not ids:
            return {}
        rows = self.session.execute(
            select(CrmLink.crm_id, CrmLink.hub_id, CrmLink.state).where(
                CrmLink.backend == self.backend,
                CrmLink.crm_entity == entity,
                CrmLink.hub_table == table,
                CrmLink.crm_id.in_(ids),
            )
        ).all()
        found = {}
        for crm_id, hub_id, state in rows:
            found[crm_id] = hub_id
            self._states[(table, crm_id)] = dict(state or {})
        return found

    def _base(self, table: str, crm_id: str) -> dict[str, Any]:
        return self._states.get((table, crm_id), {})

    def _rep_ids(self, user_ids: list[str | None]) -> dict[str, int]:
        return hub_ids_of(self.session, self.backend, "user", [u for u in user_ids if u])

    def _by_natural_key(self, model: Any, crm_id: str) -> Any:
        return self.session.scalar(
            select(model).where(model.source_system == self.backend, model.source_ref == crm_id)
        )

    def _claimed(self, hub_ref: str | None, table: str, model: Any) -> Any:
        """The hub row a hub reference in the CRM entity names (this store created it)."""
        ref = parse_hub_ref(hub_ref, self.instance)
        if ref is None or ref.table != table:
            return None
        return self.session.get(model, ref.id)

    def _link(self, table: str, hub_id: int, entity: CrmEntity, crm_id: str, state: dict[str, Any]) -> None:
        save_link(self.session, self.backend, Ref(table=table, id=hub_id), entity, crm_id, state)  # type: ignore[arg-type]

    # ------------------------------------------------------------ entities

    def apply(self, batch: PullBatch) -> MirrorStats:
        self.users(batch.users)
        self.stages(batch.stages)
        self.companies(batch.companies)
        self.contacts(batch.contacts)
        self.leads(batch.leads)
        self.deals(batch.deals)
        self.tasks(batch.tasks)
        self.stage_changes(batch.stage_changes)
        return self.stats

    def users(self, users: list[CrmUser]) -> None:
        linked = self._linked("user", "crm_reps", [u.crm_id for u in users])
        for user in users:
            rep = self.session.get(Rep, linked[user.crm_id]) if user.crm_id in linked else None
            email = normalize_email(user.email) if user.email else None
            if rep is None and email:
                # A rep the hub already knows (capacity, skills, shifts kept here) is this user.
                rep = self.session.scalar(
                    select(Rep).where(func.lower(Rep.email) == email).order_by(Rep.id).limit(1)
                )
            kind = "created" if rep is None else "updated"
            if rep is None:
                rep = Rep(name=user.name, email=email, active=user.active, created_at=utcnow())
                self.session.add(rep)
            changed = (rep.name, rep.email, rep.active) != (user.name, email or rep.email, user.active)
            rep.name, rep.email, rep.active = user.name, email or rep.email, user.active
            self.session.flush()
            self._link("crm_reps", rep.id, "user", user.crm_id, {"active": user.active})
            self.stats.count(
                self.stats.created
                if kind == "created"
                else self.stats.updated
                if changed
                else self.stats.unchanged,
                "users",
            )

    def stages(self, stages: list[CrmStage]) -> None:
        rows = [
            {
                "source_system": self.backend,
                "source_ref": f"{s.pipeline_id}:{s.stage_id}",
                "pipeline": s.pipeline,
                "stage": s.stage,
                "position": s.position,
                "kind": s.kind,
            }
            for s in stages
        ]
        upsert(self.session, PipelineStage, rows, key=["source_system", "source_ref"])
        for _ in stages:
            self.stats.count(self.stats.updated, "stages")

    def _stage(self, pipeline_id: str, stage_id: str) -> PipelineStage | None:
        return self.session.scalar(
            select(PipelineStage).where(
                PipelineStage.source_system == self.backend,
                PipelineStage.source_ref == f"{pipeline_id}:{stage_id}",
            )
        )

    def companies(self, companies: list[CrmCompany]) -> None:
        linked = self._linked("company", "crm_companies", [c.crm_id for c in companies])
        reps = self._rep_ids([c.responsible_id for c in companies])
        for item in companies:
            row = self.session.get(Company, linked[item.crm_id]) if item.crm_id in linked else None
            row = row or self._by_natural_key(Company, item.crm_id)
            base = self._base("crm_companies", item.crm_id)
            if row is not None and base.get("updated_at") == _stamp(item.updated_at):
                self.stats.count(self.stats.unchanged, "companies")
                continue
            created = row is None
            if row is None:
                row = Company(source_system=self.backend, source_ref=item.crm_id, created_at=utcnow())
                self.session.add(row)
            tax = normalize_tax_id(item.tax_id) if item.tax_id else None
            row.name = item.name
            row.tax_id = tax.value if tax else None
            row.phone_e164 = _first_phone(item.phones, self.region)
            row.email = _first_email(item.emails)
            row.owner_rep_id = reps.get(item.responsible_id or "")
            row.updated_at = utcnow()
            self.session.flush()
            self._link(
                "crm_companies",
                row.id,
                "company",
                item.crm_id,
                {"updated_at": _stamp(item.updated_at), "responsible": item.responsible_id},
            )
            self.stats.count(self.stats.created if created else self.stats.updated, "companies")

    def contacts(self, contacts: list[CrmContact]) -> None:
        linked = self._linked("contact", "crm_contacts", [c.crm_id for c in contacts])
        reps = self._rep_ids([c.responsible_id for c in contacts])
        companies = hub_ids_of(
            self.session, self.backend, "company", [c.company_id for c in contacts if c.company_id]
        )
        for item in contacts:
            row = self.session.get(Contact, linked[item.crm_id]) if item.crm_id in linked else None
            row = (
                row
                or self._claimed(item.hub_ref, "crm_contacts", Contact)
                or self._by_natural_key(Contact, item.crm_id)
            )
            base = self._base("crm_contacts", item.crm_id)
            if row is not None and base.get("updated_at") == _stamp(item.updated_at):
                self.stats.count(self.stats.unchanged, "contacts")
                continue
            created = row is None
            if row is None:
                row = Contact(
                    source_system=self.backend,
                    source_ref=item.crm_id,
                    created_at=as_utc(item.created_at or item.updated_at),
                )
                self.session.add(row)
            row.name = item.name or row.name
            row.phone_e164 = _first_phone(item.phones, self.region) or row.phone_e164
            row.email = _first_email(item.emails) or row.email
            company_id = companies.get(item.company_id or "")
            if company_id is not None:
                row.company_id = company_id
                company = self.session.get(Company, company_id)
                if company is not None and company.name:
                    row.company = company.name
            owner = reps.get(item.responsible_id or "")
            if (
                owner is not None
                and owner != row.owner_rep_id
                and (created or base.get("responsible") != item.responsible_id)
            ):
                # People assigned (or reassigned) this card in the CRM: routing keeps it.
                if not created:
                    self.stats.reassigned_in_crm += 1
                row.owner_rep_id = owner
                row.owner_manual = True
                row.owner_reason = f"owner set in {self.backend}"
            row.name_key = None
            row.company_key = None
            row.updated_at = utcnow()
            self.session.flush()
            index_contact(self.session, row)
            # Every phone and email of the card finds it, not only the first.
            for raw in item.phones[1:]:
                self._index_more(row.id, "phone", _first_phone((raw,), self.region))
            for raw in item.emails[1:]:
                self._index_more(row.id, "email", normalize_email(raw))
            self._link(
                "crm_contacts",
                row.id,
                "contact",
                item.crm_id,
                {**base, "updated_at": _stamp(item.updated_at), "responsible": item.responsible_id},
            )
            self.stats.count(self.stats.created if created else self.stats.updated, "contacts")

    def _index_more(self, contact_id: int, kind: str, value: str | None) -> None:
        from hub.store.models import ContactIdentifier

        if value:
            upsert(
                self.session,
                ContactIdentifier,
                [{"contact_id": contact_id, "kind": kind, "value": value, "seen_at": utcnow()}],
                key=["kind", "value", "contact_id"],
                update=[],
            )

    def leads(self, leads: list[CrmLead]) -> None:
        linked = self._linked("lead", "crm_leads", [lead.crm_id for lead in leads])
        reps = self._rep_ids([lead.responsible_id for lead in leads])
        contacts = hub_ids_of(
            self.session, self.backend, "contact", [x.contact_id for x in leads if x.contact_id]
        )
        for item in leads:
            row = self.session.get(Lead, linked[item.crm_id]) if item.crm_id in linked else None
            row = (
                row
                or self._claimed(item.hub_ref, "crm_leads", Lead)
                or self._by_natural_key(Lead, item.crm_id)
            )
            base = self._base("crm_leads", item.crm_id)
            if row is not None and base.get("updated_at") == _stamp(item.updated_at):
                self.stats.count(self.stats.unchanged, "leads")
                continue
            created = row is None
            if row is None:
                # A lead people created in the CRM: the hub resolves it against the contacts.
                phone = _first_phone(item.phones, self.region)
                row = Lead(
                    source_system=self.backend,
                    source_ref=item.crm_id,
                    name=item.name,
                    phone_raw=item.phones[0] if item.phones else None,
                    phone_e164=phone,
                    email=_first_email(item.emails),
                    company=item.company,
                    channel=item.source,
                    form=item.title,
                    submitted_at=as_utc(item.created_at),
                    status="new",
                    created_at=utcnow(),
                )
                self.session.add(row)
            if item.contact_id and contacts.get(item.contact_id):
                row.contact_id = contacts[item.contact_id]
            rep = reps.get(item.responsible_id or "")
            people_assigned = created or base.get("responsible") != item.responsible_id
            if rep is not None and people_assigned and rep != row.assigned_rep_id:
                if not created:
                    self.stats.reassigned_in_crm += 1
                row.assigned_rep_id = rep
                row.assigned_at = utcnow()
                row.routing_reason = f"assigned in {self.backend}"
                row.assignment_manual = True
            if item.closed and row.status in ("new", "open"):
                row.status = "closed"
            self.session.flush()
            self._link(
                "crm_leads",
                row.id,
                "lead",
                item.crm_id,
                {**base, "updated_at": _stamp(item.updated_at), "responsible": item.responsible_id},
            )
            self.stats.count(self.stats.created if created else self.stats.updated, "leads")

    def deals(self, deals: list[CrmDeal]) -> None:
        by_entity: dict[CrmEntity, list[CrmDeal]] = {}
        for item in deals:
            by_entity.setdefault(item.entity, []).append(item)
        for entity, items in by_entity.items():
            self._deals(entity, items)

    def _deals(self, entity: CrmEntity, deals: list[CrmDeal]) -> None:
        linked = self._linked(entity, "crm_deals", [d.crm_id for d in deals])
        # A deal the hub created from one of its leads (amoCRM: the lead itself).
        lead_links = self._linked(entity, "crm_leads", [d.crm_id for d in deals])
        converted = hub_ids_of(self.session, self.backend, "lead", [d.lead_id for d in deals if d.lead_id])
        reps = self._rep_ids([d.responsible_id for d in deals])
        contacts = hub_ids_of(
            self.session, self.backend, "contact", [d.contact_id for d in deals if d.contact_id]
        )
        for item in deals:
            row = self.session.get(Deal, linked[item.crm_id]) if item.crm_id in linked else None
            row = row or self._by_natural_key(Deal, item.crm_id)
            base = self._base("crm_deals", item.crm_id)
            if row is not None and base.get("updated_at") == _stamp(item.updated_at):
                self.stats.count(self.stats.unchanged, "deals")
                continue
            stage = self._stage(item.pipeline_id, item.stage_id)
            created = row is None
            lead_id = lead_links.get(item.crm_id) or converted.get(item.lead_id or "")
            if lead_id is None:
                claimed = self._claimed(item.hub_ref, "crm_leads", Lead)
                lead_id = claimed.id if claimed is not None else None
            if row is None:
                row = Deal(
                    source_system=self.backend,
                    source_ref=item.crm_id,
                    opened_at=as_utc(item.created_at),
                    stage=stage.stage if stage else item.stage_id,
                )
                self.session.add(row)
            row.title = item.title
            row.pipeline = stage.pipeline if stage else item.pipeline_id
            new_stage = stage.stage if stage else item.stage_id
            if not created and base.get("stage") not in (None, item.stage_id):
                self.stats.stage_moves += 1
                row.stage_changed_at = as_utc(item.updated_at)
            row.stage = new_stage
            row.status = item.state
            row.amount = item.amount
            row.currency = item.currency or row.currency or "RUB"
            row.closed_at = as_utc(item.closed_at) if item.closed_at else None
            row.contact_id = contacts.get(item.contact_id or "") or row.contact_id
            row.lead_id = lead_id or row.lead_id
            rep = reps.get(item.responsible_id or "")
            if (
                rep is not None
                and rep != row.rep_id
                and (created or base.get("responsible") != item.responsible_id)
            ):
                if not created:
                    self.stats.reassigned_in_crm += 1
                    row.assignment_reason = f"reassigned in {self.backend}"
                row.rep_id = rep
            self.session.flush()
            state = {
                **base,
                "updated_at": _stamp(item.updated_at),
                "responsible": item.responsible_id,
                "stage": item.stage_id,
            }
            self._link("crm_deals", row.id, entity, item.crm_id, state)
            if lead_id is not None:
                self._sync_lead_owner(lead_id, rep, item, entity)
            self.stats.count(self.stats.created if created else self.stats.updated, "deals")

    def _sync_lead_owner(self, lead_id: int, rep: int | None, item: CrmDeal, entity: CrmEntity) -> None:
        """The hub lead an amoCRM lead was created from follows a reassignment made in the CRM."""
        lead = self.session.get(Lead, lead_id)
        base = self._base("crm_leads", item.crm_id)
        if lead is None or rep is None or base.get("responsible") == item.responsible_id:
            return
        if lead.assigned_rep_id != rep:
            lead.assigned_rep_id = rep
            lead.assigned_at = utcnow()
            lead.routing_reason = f"assigned in {self.backend}"
            lead.assignment_manual = True
        self._link("crm_leads", lead.id, entity, item.crm_id, {**base, "responsible": item.responsible_id})

    def tasks(self, tasks: list[CrmTask]) -> None:
        linked = self._linked("task", "crm_tasks", [t.crm_id for t in tasks])
        reps = self._rep_ids([t.responsible_id for t in tasks])
        for item in tasks:
            row = self.session.get(Task, linked[item.crm_id]) if item.crm_id in linked else None
            row = (
                row
                or self._claimed(item.hub_ref, "crm_tasks", Task)
                or self._by_natural_key(Task, item.crm_id)
            )
            base = self._base("crm_tasks", item.crm_id)
            if row is not None and base.get("updated_at") == _stamp(item.updated_at):
                self.stats.count(self.stats.unchanged, "tasks")
                continue
            created = row is None
            if row is None:
                row = Task(
                    source_system=self.backend,
                    source_ref=item.crm_id,
                    kind="crm",
                    title=item.text[:500],
                    created_at=utcnow(),
                )
                self.session.add(row)
                self._attach(row, item)
            rep = reps.get(item.responsible_id or "")
            if rep is not None and (created or base.get("responsible") != item.responsible_id):
                if rep != row.rep_id and not created:
                    self.stats.reassigned_in_crm += 1
                row.rep_id = rep
            if created or base.get("done") != item.done:
                row.done = item.done
                row.done_at = as_utc(item.updated_at) if item.done else None
            if item.due_at is not None and (created or base.get("due_at") != _stamp(item.due_at)):
                row.due_at = as_utc(item.due_at)
            self.session.flush()
            state = {
                **base,
                "updated_at": _stamp(item.updated_at),
                "responsible": item.responsible_id,
                "done": item.done,
                "due_at": _stamp(item.due_at),
            }
            self._link("crm_tasks", row.id, "task", item.crm_id, state)
            self.stats.count(self.stats.created if created else self.stats.updated, "tasks")

    def _attach(self, row: Task, item: CrmTask) -> None:
        if not item.entity or not item.entity_id:
            return
        table = {"contact": "crm_contacts", "lead": "crm_leads", "deal": "crm_deals"}.get(item.entity)
        if table is None:
            return
        hub_id = self._linked(item.entity, table, [item.entity_id]).get(item.entity_id)
        if item.entity == "lead" and hub_id is None:
            # amoCRM: a task on a "lead" hangs on what the hub mirrors as a deal.
            hub_id = self._linked("lead", "crm_deals", [item.entity_id]).get(item.entity_id)
            table = "crm_deals" if hub_id is not None else table
        if hub_id is None:
            return
        if table == "crm_contacts":
            row.contact_id = hub_id
        elif table == "crm_leads":
            row.lead_id = hub_id
        else:
            row.deal_id = hub_id

    def stage_changes(self, changes: list[CrmStageChange]) -> None:
        rows = []
        for change in changes:
            stage = self._stage(change.pipeline_id, change.stage_id)
            deal_id = None
            for entity in ("deal", "lead"):
                deal_id = self._linked(entity, "crm_deals", [change.deal_id]).get(change.deal_id)  # type: ignore[arg-type]
                if deal_id is not None:
                    break
            if deal_id is None:
                continue  # a deal not mirrored (deleted, or outside the pull): nothing to chart
            rows.append(
                {
                    "deal_id": deal_id,
                    "stage": stage.stage if stage else change.stage_id,
                    "entered_at": as_utc(change.at),
                }
            )
        upsert(self.session, DealStageChange, rows, key=["deal_id", "stage", "entered_at"], update=[])
        for _ in rows:
            self.stats.count(self.stats.updated, "stage_changes")


def apply_pull(session: Session, backend: str, instance: str, region: str, batch: PullBatch) -> MirrorStats:
    """Write one pulled batch into the mirror, in the caller's transaction."""
    return MirrorWriter(session, backend, instance, region).apply(batch)
