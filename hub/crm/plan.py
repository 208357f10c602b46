"""What the CRM is to be told, derived from the store: the planner compares the hub's rows with
the id map and the CRM's last known state and writes one outbox row per thing to do.

Why derive instead of enqueueing inside every core module's transaction (the classic outbox):
the plan is recomputed from committed state, so no change can be lost between a commit and an
enqueue, whatever path made it (a source, routing, the CLI, a finance decision in the web UI);
a backend connected later catches up by the same code; and the idempotency key of each row
makes planning twice plan nothing new. The outbox still records each operation's attempts,
outcome and errors, and is what makes a push exactly once (hub/crm/push.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import String, and_, cast, exists, func, literal, select
from sqlalchemy.orm import Session, aliased

from hub.crm.links import hub_ref
from hub.store.models import (
    Activity,
    Contact,
    ContactReceivable,
    CrmLink,
    CrmOutbox,
    Invoice,
    Lead,
    LeadAttribution,
    MergeLog,
    Rep,
    Task,
)
from hub.store.upsert import upsert
from hub.timeutil import as_utc, utcnow
from schemas.crm import (
    AddNote,
    ContactData,
    CreateContact,
    CreateLead,
    CreateTask,
    FlagDuplicate,
    LogCall,
    Op,
    Ref,
    SetFields,
    SetResponsible,
    UpdateTask,
)

# Order of execution: entities others hang on first.
RANK = {
    "create_contact": 0,
    "create_lead": 1,
    "log_call": 2,
    "create_task": 2,
    "add_note": 3,
    "set_fields": 3,
    "flag_duplicate": 3,
    "set_responsible": 4,
    "update_task": 4,
}
# The hub's own fields on CRM cards, by code (backends create them on first use).
RECEIVABLE_FIELDS = ("hub_outstanding", "hub_overdue", "hub_max_days_overdue", "hub_aging_bucket")
ATTRIBUTION_FIELDS = ("hub_first_touch", "hub_last_non_direct", "hub_attributed_revenue")
NOTE_TEXT_MAX = 2000


@dataclass
class PlanStats:
    planned: dict[str, int] = field(default_factory=dict)

    def total(self) -> int:
        return sum(self.planned.values())


def fields_digest(values: dict[str, Any]) -> str:
    """The digest a backend stores as `fields_digest` in the state of a SetFields target: the
    planner plans the fields again only when the hub's values differ from it."""
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _money(value: Decimal | None) -> float:
    return float(value or 0)


class Planner:
    def __init__(
        self,
        session: Session,
        backend: str,
        instance: str,
        since: datetime,
        tags: list[str],
        lead_creates_contact: bool = True,
    ) -> None:
        self.session = session
        self.lead_creates_contact = lead_creates_contact
        self.backend = backend
        self.instance = instance
        self.since = since
        self.tags = tags
        self.rows: list[dict[str, Any]] = []
        self.stats = PlanStats()
        # Contacts some operation of this plan (or a pending one) will create in the CRM.
        self._creating: set[int] = set()
        self._keys: set[str] = set()  # idempotency keys planned in this pass

    # ------------------------------------------------------------ helpers

    def _linked(self, table: str, hub_id: Any) -> Any:
        return exists().where(
            CrmLink.backend == self.backend, CrmLink.hub_table == table, CrmLink.hub_id == hub_id
        )

    def _planned(self, key: str) -> Any:
        return exists().where(CrmOutbox.backend == self.backend, CrmOutbox.idempotency_key == key)

    def _add(self, key: str, op: Op) -> None:
        name = op.model_dump()["op"]
        self._keys.add(key)
        self.rows.append(
            {
                "backend": self.backend,
                "idempotency_key": key,
                "op": name,
                "rank": RANK[name],
                "payload": op.model_dump(mode="json"),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": utcnow(),
                "created_at": utcnow(),
            }
        )
        self.stats.planned[name] = self.stats.planned.get(name, 0) + 1

    def _ref(self, table: str, hub_id: int) -> str:
        return hub_ref(self.instance, Ref(table=table, id=hub_id))  # type: ignore[arg-type]

    def _link_map(self, table: str, ids: Iterable[int]) -> dict[int, CrmLink]:
        ids = sorted(set(ids))
        found: dict[int, CrmLink] = {}
        for start in range(0, len(ids), 500):
            for link in self.session.scalars(
                select(CrmLink).where(
                    CrmLink.backend == self.backend,
                    CrmLink.hub_table == table,
                    CrmLink.hub_id.in_(ids[start : start + 500]),
                )
            ):
                found[link.hub_id] = link
        return found

    def _user_of_rep(self) -> dict[int, str]:
        return {
            link.hub_id: link.crm_id
            for link in self.session.scalars(
                select(CrmLink).where(CrmLink.backend == self.backend, CrmLink.hub_table == "crm_reps")
            )
        }

    def _contact_data(self, contact: Contact) -> ContactData:
        return ContactData(
            ref=Ref(table="crm_contacts", id=contact.id),
            name=contact.name,
            phone=contact.phone_e164,
            email=contact.email,
            company=contact.company,
            tax_id=contact.tax_id,
            responsible=Ref(table="crm_reps", id=contact.owner_rep_id) if contact.owner_rep_id else None,
        )

    def _pending_contact_creators(self) -> None:
        """Contacts an unfinished operation already carries to the CRM."""
        carriers = ("create_lead", "create_contact") if self.lead_creates_contact else ("create_contact",)
        for payload in self.session.scalars(
            select(CrmOutbox.payload).where(
                CrmOutbox.backend == self.backend,
                CrmOutbox.op.in_(carriers),
                CrmOutbox.status.in_(("pending", "sending")),
            )
        ):
            contact = payload.get("contact") or {}
            ref = contact.get("ref") or {}
            if ref.get("id"):
                self._creating.add(int(ref["id"]))

    def need_contact(self, contact_id: int | None) -> None:
        """Make sure the contact reaches the CRM: an operation that hangs on it waits for it."""
        if contact_id is None or contact_id in self._creating:
            return
        if self.session.scalar(select(self._linked("crm_contacts", contact_id))):
            return
        contact = self.session.get(Contact, contact_id)
        if contact is None or contact.merged_into_id is not None:
            return
        self._creating.add(contact_id)
        key = f"contact:{contact_id}"
        if not self.session.scalar(select(self._planned(key))):
            self._add(
                key,
                CreateContact(
                    hub_ref=self._ref("crm_contacts", contact_id), contact=self._contact_data(contact)
                ),
            )

    # ------------------------------------------------------------ what to plan

    def plan(self) -> PlanStats:
        self._pending_contact_creators()
        self.leads()
        self.calls()
        self.tasks()
        self.task_updates()
        self.notes()
        self.receivables()
        self.attribution()
        self.responsible()
        self.duplicates()
        # A key planned twice in one pass (two rules reaching one contact) is one operation.
        unique = {row["idempotency_key"]: row for row in self.rows}
        upsert(self.session, CrmOutbox, list(unique.values()), key=["backend", "idempotency_key"], update=[])
        return self.stats

    def _new_rows(self, model: Any, table: str, key_prefix: str, *conditions: Any) -> Iterator[Any]:
        """Rows made since the horizon, not from this CRM, neither linked nor planned yet
        (planned: an outbox row keyed `<key_prefix><id>` exists), in one query."""
        key = literal(key_prefix) + cast(model.id, String)
        query = (
            select(model)
            .where(
                model.created_at >= self.since,
                model.source_system != self.backend,
                ~self._linked(table, model.id),
                ~self._planned(key),
            )
            .where(*conditions)
            .order_by(model.id)
        )
        yield from self.session.scalars(query)

    def leads(self) -> None:
        for lead in self._new_rows(
            Lead,
            "crm_leads",
            "lead:",
            Lead.status.in_(("open", "converted")),
            Lead.assigned_rep_id.is_not(None),
        ):
            key = f"lead:{lead.id}"
            contact = self.session.get(Contact, lead.contact_id) if lead.contact_id else None
            existing: Ref | None = None
            if contact is not None and (
                contact.id in self._creating
                or self.session.scalar(select(self._linked("crm_contacts", contact.id)))
            ):
                existing = Ref(table="crm_contacts", id=contact.id)
            data = (
                self._contact_data(contact)
                if contact is not None
                else ContactData(
                    ref=Ref(table="crm_leads", id=lead.id),
                    name=lead.name,
                    phone=lead.phone_e164,
                    email=lead.email,
                    company=lead.company,
                )
            )
            if contact is not None and existing is None and self.lead_creates_contact:
                self._creating.add(contact.id)
            utm = {
                name: value
                for name, value in (
                    ("utm_source", lead.utm_source),
                    ("utm_medium", lead.utm_medium),
                    ("utm_campaign", lead.utm_campaign),
                    ("utm_term", lead.utm_term),
                    ("utm_content", lead.utm_content),
                    ("gclid", lead.gclid),
                    ("yclid", lead.yclid),
                )
                if value
            }
            title = f"{lead.name or lead.phone_e164 or lead.email or 'Lead'} — {lead.channel or lead.source_system}"
            self._add(
                key,
                CreateLead(
                    hub_ref=self._ref("crm_leads", lead.id),
                    lead=Ref(table="crm_leads", id=lead.id),
                    title=title[:250],
                    contact=data,
                    existing_contact=existing,
                    responsible=Ref(table="crm_reps", id=lead.assigned_rep_id)
                    if lead.assigned_rep_id
                    else None,
                    source=lead.source_system,
                    channel=lead.channel,
                    utm=utm,
                    tags=[*self.tags, lead.source_system],
                    message=lead.message,
                    note=f"Routing: {lead.routing_reason}" if lead.routing_reason else None,
                    created_at=as_utc(lead.submitted_at),
                ),
            )

    def calls(self) -> None:
        for call in self._new_rows(
            Activity, "crm_activities", "call:", Activity.kind == "call", Activity.contact_id.is_not(None)
        ):
            key = f"call:{call.id}"
            self.need_contact(call.contact_id)
            phone = call.from_addr if call.direction == "inbound" else call.to_addr
            if not phone:
                # A log without the client's number (some exports): the contact's number it was linked by.
                contact = self.session.get(Contact, call.contact_id)
                phone = contact.phone_e164 if contact is not None else None
            self._add(
                key,
                LogCall(
                    hub_ref=self._ref("crm_activities", call.id),
                    call=Ref(table="crm_activities", id=call.id),
                    target=Ref(table="crm_contacts", id=call.contact_id),
                    direction="outbound" if call.direction == "outbound" else "inbound",
                    phone=phone,
                    started_at=as_utc(call.occurred_at),
                    duration_s=call.duration_s or 0,
                    talk_s=call.talk_s or 0,
                    disposition=call.disposition or "answered",
                    recording_url=call.recording_url,
                    responsible=Ref(table="crm_reps", id=call.rep_id) if call.rep_id else None,
                    uniq=f"{call.source_system}:{call.source_ref}"[:200],
                ),
            )

    def _task_target(self, task: Task) -> Ref | None:
        if task.lead_id is not None:
            return Ref(table="crm_leads", id=task.lead_id)
        if task.deal_id is not None:
            return Ref(table="crm_deals", id=task.deal_id)
        if task.contact_id is not None:
            return Ref(table="crm_contacts", id=task.contact_id)
        return None

    def tasks(self) -> None:
        for task in self._new_rows(Task, "crm_tasks", "task:", Task.done.is_(False)):
            key = f"task:{task.id}"
            target = self._task_target(task)
            if target is not None and target.table == "crm_contacts":
                self.need_contact(target.id)
            if target is not None and (
                (target.table == "crm_leads" and not self._lead_goes_to_crm(target.id))
                or (
                    target.table == "crm_deals"
                    and not self.session.scalar(select(self._linked("crm_deals", target.id)))
                )
            ):
                # The lead stays in the hub (unrouted, a duplicate), or the deal is one the CRM
                # does not have (the hub's own from before the CRM was connected): hang the task
                # on its contact rather than wait for an entity that will never come.
                target = Ref(table="crm_contacts", id=task.contact_id) if task.contact_id else None
                if target is not None:
                    self.need_contact(target.id)
            self._add(
                key,
                CreateTask(
                    hub_ref=self._ref("crm_tasks", task.id),
                    task=Ref(table="crm_tasks", id=task.id),
                    kind=task.kind,
                    text=task.title,
                    target=target,
                    responsible=Ref(table="crm_reps", id=task.rep_id) if task.rep_id else None,
                    due_at=as_utc(task.due_at) if task.due_at else None,
                ),
            )

    def _lead_goes_to_crm(self, lead_id: int) -> bool:
        if f"lead:{lead_id}" in self._keys or self.session.scalar(select(self._linked("crm_leads", lead_id))):
            return True
        return bool(self.session.scalar(select(self._planned(f"lead:{lead_id}"))))

    def task_updates(self) -> None:
        users = self._user_of_rep()
        linked = self.session.execute(
            select(Task, CrmLink)
            .join(CrmLink, and_(CrmLink.hub_table == "crm_tasks", CrmLink.hub_id == Task.id))
            .where(CrmLink.backend == self.backend)
        ).all()
        for task, link in linked:
            state = link.state or {}
            user = users.get(task.rep_id) if task.rep_id else None
            moved = user is not None and state.get("responsible") not in (None, user)
            finished = task.done and not state.get("done", False)
            if not (moved or finished):
                continue
            key = f"task-update:{task.id}:{user}:{task.done}"
            if self.session.scalar(select(self._planned(key))):
                continue
            self._add(
                key,
                UpdateTask(
                    hub_ref=self._ref("crm_tasks", task.id),
                    task=Ref(table="crm_tasks", id=task.id),
                    responsible=Ref(table="crm_reps", id=task.rep_id) if moved and task.rep_id else None,
                    done=True if finished else None,
                    expected_responsible=state.get("responsible"),
                ),
            )

    def notes(self) -> None:
        for opened in self._new_rows(
            Activity,
            "crm_activities",
            "note:activity:",
            Activity.kind == "email_opened",
            Activity.contact_id.is_not(None),
        ):
            key = f"note:activity:{opened.id}"
            self.need_contact(opened.contact_id)
            subject = opened.subject or "your email"
            text = f"Client opened the email “{subject}” at {as_utc(opened.occurred_at):%Y-%m-%d %H:%M} UTC"
            self._add(
                key,
                AddNote(
                    hub_ref=self._ref("crm_activities", opened.id),
                    target=Ref(table="crm_contacts", id=opened.contact_id),
                    text=text[:NOTE_TEXT_MAX],
                ),
            )
        paid = self.session.scalars(
            select(Invoice).where(
                Invoice.status == "paid",
                Invoice.contact_id.is_not(None),
                self._linked("crm_contacts", Invoice.contact_id),
            )
        )
        for invoice in paid:
            key = f"note:invoice:{invoice.id}:paid"
            if self.session.scalar(select(self._planned(key))):
                continue
            text = f"Invoice № {invoice.number} of {invoice.issued_on:%d.%m.%Y} is paid: {invoice.amount} {invoice.currency}"
            self._add(
                key,
                AddNote(
                    hub_ref=f"{self._ref('crm_contacts', invoice.contact_id)}:invoice:{invoice.id}",
                    target=Ref(table="crm_contacts", id=invoice.contact_id),
                    text=text,
                ),
            )

    def _set_fields(self, target: Ref, link: CrmLink | None, fields: dict[str, Any]) -> None:
        digest = fields_digest(fields)
        if link is not None and (link.state or {}).get("fields_digest") == digest:
            return
        key = f"fields:{target.key()}:{digest}"
        if self.session.scalar(select(self._planned(key))):
            return
        self._add(key, SetFields(hub_ref=self._ref(target.table, target.id), target=target, fields=fields))

    def receivables(self) -> None:
        latest = (
            select(ContactReceivable.contact_id, func.max(ContactReceivable.as_of).label("as_of"))
            .group_by(ContactReceivable.contact_id)
            .subquery()
        )
        rows = self.session.scalars(
            select(ContactReceivable).join(
                latest,
                and_(
                    ContactReceivable.contact_id == latest.c.contact_id,
                    ContactReceivable.as_of == latest.c.as_of,
                ),
            )
        ).all()
        contacts = {
            c.id: c
            for c in self.session.scalars(select(Contact).where(Contact.id.in_([r.contact_id for r in rows])))
        }
        contact_links = self._link_map("crm_contacts", contacts)
        for row in rows:
            contact = contacts.get(row.contact_id)
            if contact is None or contact.merged_into_id is not None:
                continue
            if row.contact_id not in contact_links and _money(row.outstanding) <= 0:
                continue  # nothing owed and not in the CRM: nothing to tell
            overdue = (
                _money(row.days_1_30)
                + _money(row.days_31_60)
                + _money(row.days_61_90)
                + _money(row.days_90_plus)
            )
            fields = {
                "hub_outstanding": round(_money(row.outstanding), 2),
                "hub_overdue": round(overdue, 2),
                "hub_max_days_overdue": int(row.max_days_overdue),
                "hub_aging_bucket": row.aging_bucket,
            }
            self.need_contact(row.contact_id)
            self._set_fields(
                Ref(table="crm_contacts", id=row.contact_id), contact_links.get(row.contact_id), fields
            )

    def attribution(self) -> None:
        rows = self.session.execute(
            select(
                LeadAttribution.conversion_id,
                LeadAttribution.model,
                LeadAttribution.channel,
                LeadAttribution.weight,
                LeadAttribution.revenue,
            )
            .where(LeadAttribution.conversion_kind == "lead")
            .order_by(
                LeadAttribution.conversion_id,
                LeadAttribution.model,
                LeadAttribution.weight.desc(),
                LeadAttribution.channel,
            )
        ).all()
        per_lead: dict[int, dict[str, Any]] = {}
        for lead_id, model, channel, weight, revenue in rows:
            fields = per_lead.setdefault(
                lead_id, {"hub_first_touch": None, "hub_last_non_direct": None, "hub_attributed_revenue": 0.0}
            )
            if model == "first_touch" and fields["hub_first_touch"] is None and weight > 0:
                fields["hub_first_touch"] = channel
            if model == "last_non_direct" and fields["hub_last_non_direct"] is None and weight > 0:
                fields["hub_last_non_direct"] = channel
            if model == "last_non_direct" and revenue is not None:
                fields["hub_attributed_revenue"] = round(
                    fields["hub_attributed_revenue"] + _money(revenue), 2
                )
        links = self._link_map("crm_leads", per_lead)
        for lead_id, fields in per_lead.items():
            # A lead created in this push gets its fields in the same push (they wait for it):
            # otherwise one run and two runs would leave different cards.
            if lead_id in links or f"lead:{lead_id}" in self._keys:
                self._set_fields(Ref(table="crm_leads", id=lead_id), links.get(lead_id), fields)

    def responsible(self) -> None:
        """Entities the hub moved to another rep since the CRM last showed them (a leaver's work
        redistributed): three-way, so a reassignment people made in the CRM is never undone."""
        users = self._user_of_rep()
        for model, table, rep_column in (
            (Lead, "crm_leads", Lead.assigned_rep_id),
            (Contact, "crm_contacts", Contact.owner_rep_id),
        ):
            rows = self.session.execute(
                select(model.id, rep_column, CrmLink.state)
                .join(CrmLink, and_(CrmLink.hub_table == table, CrmLink.hub_id == model.id))
                .where(CrmLink.backend == self.backend, rep_column.is_not(None))
            ).all()
            for hub_id, rep_id, state in rows:
                user = users.get(rep_id)
                seen = (state or {}).get("responsible")
                if user is None or seen is None or seen == user:
                    continue
                key = f"responsible:{table}:{hub_id}:{user}"
                if self.session.scalar(select(self._planned(key))):
                    continue
                self._add(
                    key,
                    SetResponsible(
                        hub_ref=self._ref(table, hub_id),
                        target=Ref(table=table, id=hub_id),  # type: ignore[arg-type]
                        responsible=Ref(table="crm_reps", id=rep_id),
                        expected_responsible=seen,
                    ),
                )

    def duplicates(self) -> None:
        survivor_link, merged_link = aliased(CrmLink), aliased(CrmLink)
        rows = self.session.execute(
            select(MergeLog, Contact)
            .join(Contact, Contact.id == MergeLog.survivor_id)
            .join(
                survivor_link,
                and_(
                    survivor_link.hub_table == "crm_contacts",
                    survivor_link.hub_id == MergeLog.survivor_id,
                    survivor_link.backend == self.backend,
                ),
            )
            .join(
                merged_link,
                and_(
                    merged_link.hub_table == "crm_contacts",
                    merged_link.hub_id == MergeLog.merged_id,
                    merged_link.backend == self.backend,
                ),
            )
            .where(MergeLog.undone_at.is_(None))
        ).all()
        for merge, survivor in rows:
            key = f"duplicate:{merge.id}"
            if self.session.scalar(select(self._planned(key))):
                continue
            owner = self.session.get(Rep, survivor.owner_rep_id) if survivor.owner_rep_id else None
            text = (
                f"Possible duplicate cards of one client ({merge.reason}): check and merge them in the CRM; "
                "the hub already treats them as one"
            )
            self._add(
                key,
                FlagDuplicate(
                    hub_ref=f"{self._ref('crm_contacts', merge.survivor_id)}:merge:{merge.id}",
                    survivor=Ref(table="crm_contacts", id=merge.survivor_id),
                    duplicate=Ref(table="crm_contacts", id=merge.merged_id),
                    tag="hub:duplicate",
                    text=text[:NOTE_TEXT_MAX],
                    responsible=Ref(table="crm_reps", id=owner.id) if owner else None,
                ),
            )


def plan_push(
    session: Session,
    backend: str,
    instance: str,
    connected_at: datetime,
    history_days: int,
    tags: list[str],
    lead_creates_contact: bool = True,
) -> PlanStats:
    """Write the outbox rows for everything the CRM does not know yet, in the caller's
    transaction; rows older than the connection (minus history_days) are left alone.
    `lead_creates_contact`: the backend's (see CrmBackend)."""
    since = as_utc(connected_at) - timedelta(days=history_days)
    return Planner(session, backend, instance, since, tags, lead_creates_contact).plan()
