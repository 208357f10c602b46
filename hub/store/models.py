"""SQLAlchemy 2 models of the store: the CRM tables (`crm_*`) the hub reads and writes
back to, and the hub's own bookkeeping tables (`hub_*`). Alembic migrations create them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from hub.timeutil import utcnow

# Stable constraint names so that Alembic migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Money = Numeric(18, 2)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


def _created() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


# ---------------------------------------------------------------- CRM store


class Rep(Base):
    """A sales rep: who can receive leads, how many, when and of which kind."""

    __tablename__ = "crm_reps"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone_e164: Mapped[str | None] = mapped_column(String(32))
    extension: Mapped[str | None] = mapped_column(String(32), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    capacity: Mapped[int] = mapped_column(Integer, default=20)
    skills: Mapped[list[Any]] = mapped_column(default=list)
    regions: Mapped[list[Any]] = mapped_column(default=list)
    languages: Mapped[list[Any]] = mapped_column(default=list)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Moscow")
    # Working hours in the rep's own time zone, "HH:MM"; work_days are ISO weekdays 1..7.
    shift_start: Mapped[str] = mapped_column(String(5), default="09:00")
    shift_end: Mapped[str] = mapped_column(String(5), default="18:00")
    work_days: Mapped[list[Any]] = mapped_column(default=lambda: [1, 2, 3, 4, 5])
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    chat_id: Mapped[str | None] = mapped_column(String(100))
    # The language the hub writes to the rep in (alerts): ru, pl, en; empty: the company's
    # (HUB_MAIL__ALERT_LANGUAGE). `languages` above is what the rep can serve leads in.
    locale: Mapped[str | None] = mapped_column(String(8))
    # When the rep last received a routed lead: ties on load go to who waited longest.
    last_assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()


class Contact(Base):
    """A person (or company contact) in the CRM; merged duplicates point to the survivor."""

    __tablename__ = "crm_contacts"
    __table_args__ = (UniqueConstraint("source_system", "source_ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(50), default="crm")
    source_ref: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(300))
    name_key: Mapped[str | None] = mapped_column(String(300), index=True)
    company: Mapped[str | None] = mapped_column(String(300))
    company_key: Mapped[str | None] = mapped_column(String(300), index=True)
    # The company card the contact belongs to in the CRM (mirrored from the CRM backend).
    company_id: Mapped[int | None] = mapped_column(ForeignKey("crm_companies.id"), index=True)
    phone_e164: Mapped[str | None] = mapped_column(String(32), index=True)
    phone_ext: Mapped[str | None] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    tax_id: Mapped[str | None] = mapped_column(String(20), index=True)
    city: Mapped[str | None] = mapped_column(String(120))
    region: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    owner_rep_id: Mapped[int | None] = mapped_column(ForeignKey("crm_reps.id"), index=True)
    owner_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why the owner is who it is (first lead routed, redistributed from a deactivated rep...).
    owner_reason: Mapped[str | None] = mapped_column(String(300))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Company(Base):
    """A company card of the CRM (amoCRM and Bitrix24 companies): the payer of invoices, whose
    receivables the hub writes back; its contacts point to it."""

    __tablename__ = "crm_companies"
    __table_args__ = (UniqueConstraint("source_system", "source_ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(50))
    source_ref: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(300))
    tax_id: Mapped[str | None] = mapped_column(String(20), index=True)
    phone_e164: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320))
    owner_rep_id: Mapped[int | None] = mapped_column(ForeignKey("crm_reps.id"), index=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class PipelineStage(Base):
    """A pipeline's stages in the CRM's own order (pulled): the funnel orders stages by it."""

    __tablename__ = "crm_pipeline_stages"
    __table_args__ = (UniqueConstraint("source_system", "source_ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(50))
    source_ref: Mapped[str] = mapped_column(String(200))  # "<pipeline id>:<stage id>" in the CRM
    pipeline: Mapped[str] = mapped_column(String(100))
    stage: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(10), default="open")  # open | won | lost


class ContactIdentifier(Base):
    """Index of every strong key a contact is known by (all its phones, emails, tax ids),
    so a new batch is matched without re-scanning the contacts."""

    __tablename__ = "crm_contact_identifiers"
    __table_args__ = (
        UniqueConstraint("kind", "value", "contact_id"),
        Index("ix_crm_contact_identifiers_lookup", "kind", "value"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # phone | email | tax_id
    value: Mapped[str] = mapped_column(String(320))
    seen_at: Mapped[datetime] = _created()


class Lead(Base):
    """An inbound request from any channel, deduplicated and routed to a rep."""

    __tablename__ = "crm_leads"
    __table_args__ = (UniqueConstraint("source_system", "source_ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(50))  # site_api | site_webhook | site_csv | phone ...
    source_ref: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(300))
    phone_raw: Mapped[str | None] = mapped_column(String(64))
    phone_e164: Mapped[str | None] = mapped_column(String(32), index=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    company: Mapped[str | None] = mapped_column(String(300))
    message: Mapped[str | None] = mapped_column(Text)
    form: Mapped[str | None] = mapped_column(String(200))
    page_url: Mapped[str | None] = mapped_column(Text)
    referrer: Mapped[str | None] = mapped_column(Text)
    utm_source: Mapped[str | None] = mapped_column(String(200))
    utm_medium: Mapped[str | None] = mapped_column(String(200))
    utm_campaign: Mapped[str | None] = mapped_column(String(200))
    utm_term: Mapped[str | None] = mapped_column(String(200))
    utm_content: Mapped[str | None] = mapped_column(String(200))
    gclid: Mapped[str | None] = mapped_column(String(300))
    yclid: Mapped[str | None] = mapped_column(String(300))
    region: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(16))
    skill: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    status: Mapped[str] = mapped_column(String(20), default="new", index=True)  # new|open|converted|closed
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution_reason: Mapped[str | None] = mapped_column(String(300))
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("crm_leads.id"), index=True)
    assigned_rep_id: Mapped[int | None] = mapped_column(ForeignKey("crm_reps.id"), index=True)
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    routing_reason: Mapped[str | None] = mapped_column(String(300))
    # Set when a person assigned the lead in the CRM: routing never overwrites it.
    assignment_manual: Mapped[bool] = mapped_column(Boolean, default=False)
    # Every touch of one person within the window, this lead's own first (identity resolution):
    # [{"source_system", "source_ref", "lead_id", "channel", "at"}]; later leads are duplicates.
    touches: Mapped[list[Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = _created()


class Deal(Base):
    __tablename__ = "crm_deals"
    __table_args__ = (UniqueConstraint("source_system", "source_ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(50), default="crm")
    source_ref: Mapped[str] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(300))
    pipeline: Mapped[str] = mapped_column(String(100), default="sales")
    stage: Mapped[str] = mapped_column(String(100))
    stage_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(10), default="open", index=True)  # open|won|lost
    amount: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("crm_reps.id"), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("crm_leads.id"), index=True)
    # Why the deal is with this rep when the hub moved it (a deactivated rep's deals).
    assignment_reason: Mapped[str | None] = mapped_column(String(300))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DealStageChange(Base):
    """Each time a deal entered a stage: the funnel is computed from this history."""

    __tablename__ = "crm_deal_stage_history"
    __table_args__ = (UniqueConstraint("deal_id", "stage", "entered_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("crm_deals.id"), index=True)
    stage: Mapped[str] = mapped_column(String(100))
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Activity(Base):
    """The client's timeline: calls, emails sent, emails opened, notes."""

    __tablename__ = "crm_activities"
    __table_args__ = (UniqueConstraint("source_system", "source_ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(50))
    source_ref: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20), index=True)  # call | email_sent | email_opened | note
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("crm_reps.id"), index=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("crm_deals.id"), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("crm_leads.id"), index=True)
    direction: Mapped[str | None] = mapped_column(String(10))  # inbound | outbound
    from_addr: Mapped[str | None] = mapped_column(String(320))
    to_addr: Mapped[str | None] = mapped_column(String(320))
    duration_s: Mapped[int | None] = mapped_column(Integer)
    talk_s: Mapped[int | None] = mapped_column(Integer)
    disposition: Mapped[str | None] = mapped_column(String(20))  # answered | missed | busy | failed
    recording_url: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    channel: Mapped[str | None] = mapped_column(String(100))
    count: Mapped[int] = mapped_column(Integer, default=1)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()


class Task(Base):
    __tablename__ = "crm_tasks"
    __table_args__ = (UniqueConstraint("source_system", "source_ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(50))
    source_ref: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(30))  # call_back | call_now | follow_up ...
    title: Mapped[str] = mapped_column(String(500))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("crm_reps.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("crm_deals.id"), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("crm_leads.id"), index=True)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    done: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()


class Invoice(Base):
    __tablename__ = "crm_invoices"
    __table_args__ = (UniqueConstraint("source_system", "source_ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(50))
    source_ref: Mapped[str] = mapped_column(String(200))
    number: Mapped[str] = mapped_column(String(64), index=True)
    issued_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date, index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    counterparty_tax_id: Mapped[str | None] = mapped_column(String(20), index=True)
    counterparty_name: Mapped[str | None] = mapped_column(String(300))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("crm_deals.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open|partially_paid|paid|overdue
    created_at: Mapped[datetime] = _created()


class Payment(Base):
    __tablename__ = "crm_payments"
    __table_args__ = (UniqueConstraint("source_system", "source_ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(50))
    source_ref: Mapped[str] = mapped_column(String(200))
    paid_on: Mapped[date] = mapped_column(Date, index=True)
    amount: Mapped[Decimal] = mapped_column(Money)  # negative for a refund
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    payer_tax_id: Mapped[str | None] = mapped_column(String(20), index=True)
    payer_name: Mapped[str | None] = mapped_column(String(300))
    payer_account: Mapped[str | None] = mapped_column(String(34))
    purpose: Mapped[str | None] = mapped_column(Text)
    # Invoices the accounting system itself links the payment to (1C's РасшифровкаПлатежа).
    linked_invoice_refs: Mapped[list[Any]] = mapped_column(default=list)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    created_at: Mapped[datetime] = _created()


class PaymentAllocation(Base):
    __tablename__ = "crm_payment_allocations"
    __table_args__ = (UniqueConstraint("payment_id", "invoice_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("crm_payments.id"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("crm_invoices.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    method: Mapped[str] = mapped_column(
        String(30)
    )  # explicit_link | purpose_number | tax_id_amount | fifo | credit
    confidence: Mapped[float] = mapped_column(default=1.0)
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()


class Receivable(Base):
    """What is still owed on an invoice as of a date."""

    __tablename__ = "crm_receivables"
    __table_args__ = (UniqueConstraint("invoice_id", "as_of"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("crm_invoices.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    as_of: Mapped[date] = mapped_column(Date, index=True)
    invoiced: Mapped[Decimal] = mapped_column(Money)
    allocated: Mapped[Decimal] = mapped_column(Money)
    outstanding: Mapped[Decimal] = mapped_column(Money)
    days_overdue: Mapped[int] = mapped_column(Integer)
    aging_bucket: Mapped[str] = mapped_column(String(10))  # current | 1-30 | 31-60 | 61-90 | 90+


class Counterparty(Base):
    """A client as the accounting system knows it (1C Catalog_Контрагенты): how its invoices,
    which name only the counterparty's reference, reach its ИНН and the CRM contact."""

    __tablename__ = "hub_counterparties"
    __table_args__ = (UniqueConstraint("source_system", "source_ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(50))
    source_ref: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(300))
    full_name: Mapped[str | None] = mapped_column(String(1000))
    tax_id: Mapped[str | None] = mapped_column(String(20), index=True)
    kpp: Mapped[str | None] = mapped_column(String(20))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class UnmatchedPayment(Base):
    """A payment (or what is left of it) no rule could place: waits for finance, with the
    invoices it might settle and how sure each suggestion is."""

    __tablename__ = "hub_unmatched_payments"
    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("crm_payments.id"), unique=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    reason: Mapped[str] = mapped_column(Text)
    candidates: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ContactReceivable(Base):
    """What a CRM contact owes as of a date: the sum of its invoices' receivables, split by aging
    bucket, with the oldest debt's days past due (the figure a rep sees on the client's card)."""

    __tablename__ = "crm_contact_receivables"
    __table_args__ = (UniqueConstraint("contact_id", "as_of"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    as_of: Mapped[date] = mapped_column(Date, index=True)
    invoices: Mapped[int] = mapped_column(Integer)
    invoiced: Mapped[Decimal] = mapped_column(Money)
    outstanding: Mapped[Decimal] = mapped_column(Money)
    current: Mapped[Decimal] = mapped_column(Money)
    days_1_30: Mapped[Decimal] = mapped_column(Money)
    days_31_60: Mapped[Decimal] = mapped_column(Money)
    days_61_90: Mapped[Decimal] = mapped_column(Money)
    days_90_plus: Mapped[Decimal] = mapped_column(Money)
    max_days_overdue: Mapped[int] = mapped_column(Integer)
    aging_bucket: Mapped[str] = mapped_column(String(10))  # of the oldest unpaid invoice


class LeadAttribution(Base):
    """Weight of each channel in a lead's or won deal's conversion, per model."""

    __tablename__ = "crm_lead_attribution"
    __table_args__ = (UniqueConstraint("conversion_kind", "conversion_id", "model", "channel", "campaign"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    conversion_kind: Mapped[str] = mapped_column(String(10))  # lead | deal
    conversion_id: Mapped[int] = mapped_column(Integer, index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    model: Mapped[str] = mapped_column(String(30))
    channel: Mapped[str] = mapped_column(String(100))
    campaign: Mapped[str] = mapped_column(String(200), default="")
    weight: Mapped[float] = mapped_column()
    revenue: Mapped[Decimal | None] = mapped_column(Money)
    computed_at: Mapped[datetime] = _created()


# ---------------------------------------------------------------- hub's own tables


class SyncState(Base):
    """A source's cursor, written in the same transaction as the rows it covers."""

    __tablename__ = "hub_sync_state"
    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    cursor: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class QuarantineRecord(Base):
    """Input that failed validation: kept with its raw form and a readable reason."""

    __tablename__ = "hub_quarantine"
    __table_args__ = (UniqueConstraint("source", "fingerprint"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(100), index=True)
    source_ref: Mapped[str | None] = mapped_column(String(300))
    fingerprint: Mapped[str] = mapped_column(String(64))
    raw: Mapped[str] = mapped_column(Text)
    # The exact bytes when the input was bytes (text in an unknown or wrong charset): `raw` is
    # only their readable approximation.
    raw_bytes: Mapped[bytes | None] = mapped_column(LargeBinary)
    error: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AlertOutbox(Base):
    """Alerts to deliver exactly once; written in the transaction that caused them."""

    __tablename__ = "hub_alert_outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(30))  # email_opened | ops_run_failed ...
    channel: Mapped[str] = mapped_column(String(20))  # smtp | telegram | slack
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(
        String(20), default="pending", index=True
    )  # pending|sending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the alert says, as data (hub/alerts/templates.py renders it per channel and language);
    # empty for alerts whose subject and body are their whole content (ops alerts).
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class WebhookInbox(Base):
    """Raw posts accepted by the webhook receiver, stored before it answers 2xx."""

    __tablename__ = "hub_webhook_inbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(100), index=True)
    # sha256 of what the signature covers ("<timestamp>." + body): a replayed post is stored once,
    # however its headers are spelled.
    dedup_key: Mapped[str] = mapped_column(String(64), unique=True)
    # The body exactly as received; decoded (declared charset or detection) when it is processed.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Posts stored before the raw bytes were kept (migration 1701) have only their text.
    body: Mapped[str | None] = mapped_column(Text)
    # An allow-list of headers, each value bounded (hub/server/site_webhook.py).
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = _created()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


class MergeLog(Base):
    """Who was merged into whom and on what evidence; the snapshot makes unmerge possible."""

    __tablename__ = "hub_merge_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    survivor_id: Mapped[int] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    merged_id: Mapped[int] = mapped_column(ForeignKey("crm_contacts.id"), index=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reason: Mapped[str] = mapped_column(String(500))
    snapshot: Mapped[dict[str, Any]] = mapped_column(default=dict)
    merged_at: Mapped[datetime] = _created()
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TrackingNumber(Base):
    """One phone number per ad channel: a call to it carries the channel onto the lead."""

    __tablename__ = "hub_tracking_numbers"
    number_e164: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(100))
    campaign: Mapped[str | None] = mapped_column(String(200))


class AdCost(Base):
    __tablename__ = "hub_ad_costs"
    __table_args__ = (UniqueConstraint("day", "channel", "campaign"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    channel: Mapped[str] = mapped_column(String(100))
    campaign: Mapped[str] = mapped_column(String(200), default="")
    cost: Mapped[Decimal] = mapped_column(Money)


class CrmLink(Base):
    """The id map between hub rows and the CRM's entities (hub/crm). `state` holds what the CRM
    last showed of the fields both sides may change (responsible, done, the hub's computed
    fields): the base against which a change is told apart as the CRM's or the hub's."""

    __tablename__ = "hub_crm_links"
    __table_args__ = (
        UniqueConstraint("backend", "hub_table", "hub_id", "crm_entity"),
        # One CRM entity may stand for two hub rows: an amoCRM lead the hub created from a
        # crm_leads row is also the crm_deals row the funnel reads.
        UniqueConstraint("backend", "crm_entity", "crm_id", "hub_table"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    backend: Mapped[str] = mapped_column(String(30))
    hub_table: Mapped[str] = mapped_column(String(40))
    hub_id: Mapped[int] = mapped_column(Integer)
    crm_entity: Mapped[str] = mapped_column(String(20))
    crm_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class CrmOutbox(Base):
    """What the hub is to write into the CRM, one row per operation, exactly once: the key makes
    planning idempotent, `attempts > 0` on a claimed row means an earlier try's outcome is
    unknown (the backend then looks the entity up by the hub's reference before creating)."""

    __tablename__ = "hub_crm_outbox"
    __table_args__ = (
        UniqueConstraint("backend", "idempotency_key"),
        Index("ix_hub_crm_outbox_due", "backend", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    backend: Mapped[str] = mapped_column(String(30))
    idempotency_key: Mapped[str] = mapped_column(String(300))
    op: Mapped[str] = mapped_column(String(30))
    # Order of execution: entities first (contacts, leads), then what hangs on them.
    rank: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|sending|done|skipped|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# ---------------------------------------------------------------- analytics (hub/attribution, hub/funnel)


class Touch(Base):
    """One contact's interaction with a channel (web visit/form, call, email) before a conversion."""

    __tablename__ = "hub_touches"
    __table_args__ = (
        UniqueConstraint("source_system", "source_ref"),
        Index("ix_hub_touches_contact_time", "contact_id", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(50))  # the table the touch was read from
    source_ref: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # web | call | email
    contact_id: Mapped[int] = mapped_column(ForeignKey("crm_contacts.id"))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    channel: Mapped[str] = mapped_column(String(100))
    campaign: Mapped[str] = mapped_column(String(200), default="")
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("crm_leads.id"))


class ChannelReport(Base):
    """Leads, deals, paid revenue and ad cost per channel and campaign for a period, by one model."""

    __tablename__ = "hub_channel_report"
    __table_args__ = (UniqueConstraint("period_start", "period_end", "model", "channel", "campaign"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)  # inclusive
    model: Mapped[str] = mapped_column(String(30))
    channel: Mapped[str] = mapped_column(String(100))
    campaign: Mapped[str] = mapped_column(String(200), default="")
    # Fractional: a lead shared by two channels counts half in each.
    leads: Mapped[float] = mapped_column()
    deals: Mapped[float] = mapped_column()
    won: Mapped[float] = mapped_column()
    revenue: Mapped[Decimal] = mapped_column(Money)
    cost: Mapped[Decimal | None] = mapped_column(Money)
    lead_to_deal: Mapped[float | None] = mapped_column()
    deal_to_won: Mapped[float | None] = mapped_column()
    lead_to_won: Mapped[float | None] = mapped_column()
    average_check: Mapped[Decimal | None] = mapped_column(Money)
    cost_per_lead: Mapped[Decimal | None] = mapped_column(Money)
    cost_per_sale: Mapped[Decimal | None] = mapped_column(Money)
    roi: Mapped[float | None] = mapped_column()
    cost_share: Mapped[float | None] = mapped_column()
    computed_at: Mapped[datetime] = _created()


class FunnelStageReport(Base):
    """Deals entering a stage in a period, how many went further, and the median time spent in it."""

    __tablename__ = "hub_funnel_report"
    __table_args__ = (UniqueConstraint("period_start", "period_end", "pipeline", "rep_id", "stage"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    pipeline: Mapped[str] = mapped_column(String(100))
    rep_id: Mapped[int] = mapped_column(Integer)  # 0: all reps together
    stage: Mapped[str] = mapped_column(String(100))
    stage_order: Mapped[int] = mapped_column(Integer)
    entered: Mapped[int] = mapped_column(Integer)
    advanced: Mapped[int] = mapped_column(Integer)
    conversion: Mapped[float | None] = mapped_column()
    median_days_in_stage: Mapped[float | None] = mapped_column()
    computed_at: Mapped[datetime] = _created()


class FunnelSummary(Base):
    """Per pipeline and rep for a period: deals opened and closed, win rate, cycle from lead to paid."""

    __tablename__ = "hub_funnel_summary"
    __table_args__ = (UniqueConstraint("period_start", "period_end", "pipeline", "rep_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    pipeline: Mapped[str] = mapped_column(String(100))
    rep_id: Mapped[int] = mapped_column(Integer)  # 0: all reps together
    opened: Mapped[int] = mapped_column(Integer)
    won: Mapped[int] = mapped_column(Integer)
    lost: Mapped[int] = mapped_column(Integer)
    win_rate: Mapped[float | None] = mapped_column()
    paid: Mapped[int] = mapped_column(Integer)
    median_cycle_days: Mapped[float | None] = mapped_column()
    computed_at: Mapped[datetime] = _created()


# ---------------------------------------------------------------- mail (read receipts, opens)


class MailReceipt(Base):
    """A read receipt taken from the mailbox, keyed by its own Message-ID so that a rescan
    (UIDVALIDITY change, maildir and IMAP both) records it once. Uncorrelated receipts stay
    here with status "uncorrelated": the queue shown to people, retried as sent mail arrives."""

    __tablename__ = "hub_mail_receipts"
    __table_args__ = (UniqueConstraint("source_system", "source_ref"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    source_system: Mapped[str] = mapped_column(String(50))  # mail
    source_ref: Mapped[str] = mapped_column(String(500))  # the receipt's Message-ID (or a hash)
    location: Mapped[str | None] = mapped_column(String(300))
    variant: Mapped[str] = mapped_column(String(20))
    disposition: Mapped[str] = mapped_column(String(20))
    # report | subject: a disposition read from the subject ("Read: ...") is less sure.
    disposition_source: Mapped[str] = mapped_column(String(10), default="report", server_default="report")
    reader: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    original_message_id: Mapped[str | None] = mapped_column(String(500))
    # Every Message-ID the receipt names, in order of confidence, with the method of each.
    candidates: Mapped[list[Any]] = mapped_column(default=list)
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    arrived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20), index=True)  # opened | not_read | uncorrelated
    sent_message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    match_method: Mapped[str | None] = mapped_column(String(30))
    confidence: Mapped[float | None] = mapped_column()
    correlated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _created()


class MailTrackingToken(Base):
    """The unguessable token of a sent email's open-tracking pixel."""

    __tablename__ = "hub_mail_tracking_tokens"
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(500), unique=True)
    created_at: Mapped[datetime] = _created()


class MailPixelHit(Base):
    """The fetches of one sent email's tracking pixel, counted in one row (a pixel fetched a
    thousand times is one row); the last fetch's agent and address, and the reason the last
    machine fetch was not counted as an open."""

    __tablename__ = "hub_mail_pixel_hits"
    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(500), unique=True)
    fetches: Mapped[int] = mapped_column(Integer, default=0)
    machine_fetches: Mapped[int] = mapped_column(Integer, default=0)
    first_fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    remote_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)
    machine_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = _created()
