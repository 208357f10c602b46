"""What crosses the CRM-backend seam: the records a backend pulls out of its CRM (normalized, so
the hub's mirror writer is one piece of code for every CRM) and the operations the hub pushes in
(what the hub decided, in the hub's words; each backend turns them into its API's calls)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# ---------------------------------------------------------------- names shared by both sides

# The kinds of CRM entity the hub maps to its own rows (hub_crm_links.crm_entity).
CrmEntity = Literal["user", "company", "contact", "lead", "deal", "task", "note", "call"]
# Which hub table a CRM entity is mirrored into, for the kinds that are mirrored.
HubTable = Literal[
    "crm_reps", "crm_companies", "crm_contacts", "crm_leads", "crm_deals", "crm_tasks", "crm_activities"
]
DealState = Literal["open", "won", "lost"]
StageKind = Literal["open", "won", "lost"]


class CrmRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------- pulled records


class CrmUser(CrmRecord):
    """A CRM user: a rep (capacity, skills and shifts stay in the hub, keyed by this user)."""

    crm_id: str
    name: str
    email: str | None = None
    phone: str | None = None
    active: bool = True


class CrmStage(CrmRecord):
    """One stage of one pipeline, in the CRM's order."""

    pipeline_id: str
    pipeline: str
    stage_id: str
    stage: str
    position: int
    kind: StageKind = "open"


class CrmCompany(CrmRecord):
    crm_id: str
    name: str | None = None
    tax_id: str | None = None
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    responsible_id: str | None = None
    updated_at: datetime
    hub_ref: str | None = None  # the hub's reference, when the hub created it


class CrmContact(CrmRecord):
    crm_id: str
    name: str | None = None
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    company_id: str | None = None
    responsible_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime
    hub_ref: str | None = None


class CrmDeal(CrmRecord):
    """A deal in a pipeline (amoCRM calls these "leads"; Bitrix24 "deals")."""

    entity: CrmEntity = "deal"  # the CRM's own name of the entity type: amoCRM says "lead"
    crm_id: str
    title: str | None = None
    pipeline_id: str
    stage_id: str
    state: DealState = "open"
    amount: Decimal | None = None
    currency: str | None = None
    contact_id: str | None = None
    company_id: str | None = None
    responsible_id: str | None = None
    created_at: datetime
    closed_at: datetime | None = None
    updated_at: datetime
    hub_ref: str | None = None
    # The CRM lead this deal was converted from (Bitrix24 classic mode), if any.
    lead_id: str | None = None


class CrmLead(CrmRecord):
    """An inbound request kept apart from deals (Bitrix24 classic mode). amoCRM has none: its
    "leads" are deals."""

    crm_id: str
    title: str | None = None
    name: str | None = None
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    company: str | None = None
    source: str | None = None
    status_id: str | None = None
    closed: bool = False
    contact_id: str | None = None
    responsible_id: str | None = None
    created_at: datetime
    updated_at: datetime
    hub_ref: str | None = None


class CrmTask(CrmRecord):
    crm_id: str
    text: str
    responsible_id: str | None = None
    entity: Literal["contact", "company", "lead", "deal"] | None = None
    entity_id: str | None = None
    due_at: datetime | None = None
    done: bool = False
    updated_at: datetime
    hub_ref: str | None = None


class CrmStageChange(CrmRecord):
    """A deal entered a stage (amoCRM events, Bitrix24 crm.stagehistory.list)."""

    event_id: str
    deal_id: str
    pipeline_id: str
    stage_id: str
    at: datetime


class PullBatch(BaseModel):
    """One page of what changed in the CRM, with the backend's cursor after it: the mirror
    writer commits the rows and the cursor together."""

    users: list[CrmUser] = Field(default_factory=list)
    stages: list[CrmStage] = Field(default_factory=list)
    companies: list[CrmCompany] = Field(default_factory=list)
    contacts: list[CrmContact] = Field(default_factory=list)
    leads: list[CrmLead] = Field(default_factory=list)
    deals: list[CrmDeal] = Field(default_factory=list)
    tasks: list[CrmTask] = Field(default_factory=list)
    stage_changes: list[CrmStageChange] = Field(default_factory=list)
    cursor: dict[str, Any] = Field(default_factory=dict)

    def size(self) -> int:
        return sum(
            len(items)
            for items in (
                self.users,
                self.stages,
                self.companies,
                self.contacts,
                self.leads,
                self.deals,
                self.tasks,
                self.stage_changes,
            )
        )


# ---------------------------------------------------------------- pushed operations
#
# An operation names hub rows by (table, id); the executor resolves them to CRM ids through
# the id map before the backend sees it (`PushContext.crm_id`). `hub_ref` is the hub's reference
# a backend stores in the entity it creates, so that a create whose answer was lost (a crash
# between the CRM's answer and the hub's commit) is found again instead of made twice.


class Ref(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    table: HubTable
    id: int

    def key(self) -> str:
        return f"{self.table}:{self.id}"


class ContactData(BaseModel):
    """A person the CRM does not know yet, sent along with the entity that needs it."""

    model_config = ConfigDict(extra="forbid")

    ref: Ref
    name: str | None = None
    phone: str | None = None  # E.164
    email: str | None = None
    company: str | None = None
    tax_id: str | None = None
    responsible: Ref | None = None


class Op(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hub_ref: str  # e.g. "hub:lead:123"; stored in the CRM entity where the API allows


class CreateLead(Op):
    """A new inbound lead, routed: a lead (amoCRM) or lead/deal by the portal's mode (Bitrix24),
    with its contact (existing or new), the routed rep as responsible and how it came."""

    op: Literal["create_lead"] = "create_lead"
    lead: Ref
    title: str
    contact: ContactData
    existing_contact: Ref | None = None  # when the contact is already in the CRM
    responsible: Ref | None = None
    source: str  # site_api, site_webhook, phone ...
    channel: str | None = None
    utm: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    message: str | None = None
    note: str | None = None  # the routing reason
    created_at: datetime


class CreateContact(Op):
    op: Literal["create_contact"] = "create_contact"
    contact: ContactData


class LogCall(Op):
    """A call on the client's timeline with its recording."""

    op: Literal["log_call"] = "log_call"
    call: Ref  # crm_activities row
    target: Ref  # the contact (or lead) it belongs to
    direction: Literal["inbound", "outbound"]
    phone: str | None = None
    started_at: datetime
    duration_s: int = 0
    talk_s: int = 0
    disposition: str
    recording_url: str | None = None
    responsible: Ref | None = None
    uniq: str  # the provider's call id


class CreateTask(Op):
    op: Literal["create_task"] = "create_task"
    task: Ref
    kind: str  # call_back | call_now | review_duplicate ...
    text: str
    target: Ref | None = None
    responsible: Ref | None = None
    due_at: datetime | None = None


class UpdateTask(Op):
    """A hub task handed to another rep (a leaver's work redistributed) or done by the hub."""

    op: Literal["update_task"] = "update_task"
    task: Ref
    responsible: Ref | None = None
    done: bool | None = None
    expected_responsible: str | None = None  # the CRM user id last seen: a newer edit wins


class AddNote(Op):
    op: Literal["add_note"] = "add_note"
    target: Ref
    text: str


class SetFields(Op):
    """Fields the hub computes (receivables, attribution) on an entity; the backend finds or
    creates each field by its code on first use."""

    op: Literal["set_fields"] = "set_fields"
    target: Ref
    fields: dict[str, str | float | int | None]


class SetResponsible(Op):
    """The hub moved an entity to another rep (routing, redistribution). Applied only while the
    CRM still shows `expected_responsible`: a person's newer reassignment in the CRM wins."""

    op: Literal["set_responsible"] = "set_responsible"
    target: Ref
    responsible: Ref
    expected_responsible: str | None = None


class FlagDuplicate(Op):
    """Identity resolution found two cards of one person: tag both, task for the owner (the
    APIs have no merge call that keeps the history)."""

    op: Literal["flag_duplicate"] = "flag_duplicate"
    survivor: Ref
    duplicate: Ref
    tag: str
    text: str
    responsible: Ref | None = None


PushOp = Annotated[
    CreateLead
    | CreateContact
    | LogCall
    | CreateTask
    | UpdateTask
    | AddNote
    | SetFields
    | SetResponsible
    | FlagDuplicate,
    Field(discriminator="op"),
]


class PushResult(BaseModel):
    """What became of one operation. `links` are the CRM entities it created or found, by the
    hub row each stands for; `state` is what the CRM now holds of the fields it set (the base
    of the next three-way comparison)."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["done", "skipped", "retry", "failed"]
    links: dict[str, tuple[CrmEntity, str]] = Field(default_factory=dict)  # Ref.key() -> (entity, crm id)
    state: dict[str, dict[str, Any]] = Field(default_factory=dict)  # Ref.key() -> fields now in the CRM
    detail: str | None = None
    retry_after_s: float | None = None
