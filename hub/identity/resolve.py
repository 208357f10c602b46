"""Find or create the contact behind each new lead by its strong keys (phone, email),
and mark a repeated submission of the same person as a duplicate of the open lead."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.store.models import Contact, ContactIdentifier, Lead
from hub.store.upsert import upsert
from hub.timeutil import as_utc, utcnow


@dataclass
class ResolveStats:
    leads: int = 0
    matched: int = 0
    created: int = 0
    duplicates: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def note(self, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def index_contact(session: Session, contact: Contact) -> None:
    """Record the contact's strong keys in the identifier index."""
    keys = [("phone", contact.phone_e164), ("email", contact.email), ("tax_id", contact.tax_id)]
    rows = [
        {"contact_id": contact.id, "kind": kind, "value": value, "seen_at": utcnow()}
        for kind, value in keys
        if value
    ]
    upsert(session, ContactIdentifier, rows, key=["kind", "value", "contact_id"], update=[])


def find_contact(session: Session, kind: str, value: str | None) -> Contact | None:
    """The live (not merged away) contact known by this key; the oldest if several."""
    if not value:
        return None
    contact = session.scalars(
        select(Contact)
        .join(ContactIdentifier, ContactIdentifier.contact_id == Contact.id)
        .where(ContactIdentifier.kind == kind, ContactIdentifier.value == value)
        .order_by(Contact.id)
        .limit(1)
    ).first()
    while contact is not None and contact.merged_into_id is not None:
        contact = session.get(Contact, contact.merged_into_id)
    return contact


def resolve_lead(session: Session, lead: Lead, duplicate_window: timedelta, stats: ResolveStats) -> None:
    contact = find_contact(session, "phone", lead.phone_e164)
    reason = "matched existing contact by phone"
    if contact is None:
        contact = find_contact(session, "email", lead.email)
        reason = "matched existing contact by email"
    if contact is None:
        contact = Contact(
            source_system="lead",
            source_ref=f"{lead.source_system}:{lead.source_ref}",
            name=lead.name,
            company=lead.company,
            phone_e164=lead.phone_e164,
            email=lead.email,
            region=lead.region,
            language=lead.language,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        session.add(contact)
        session.flush()
        index_contact(session, contact)
        reason = "new contact"
        stats.created += 1
    else:
        stats.matched += 1
        _fill_missing(session, contact, lead)
    lead.contact_id = contact.id
    lead.resolved_at = utcnow()
    lead.resolution_reason = reason
    lead.status = "open"
    earlier = _open_lead_of(session, contact.id, lead, duplicate_window)
    if earlier is not None:
        lead.duplicate_of_id = earlier.id
        lead.status = "duplicate"
        lead.resolution_reason = f"{reason}; repeat of lead {earlier.id} within {duplicate_window}"
        stats.duplicates += 1
    stats.note(reason)


def _fill_missing(session: Session, contact: Contact, lead: Lead) -> None:
    """A known contact gains what the lead adds (a second phone or email is indexed too)."""
    changed = False
    for attr in ("name", "company", "phone_e164", "email", "region", "language"):
        if getattr(contact, attr) is None and getattr(lead, attr) is not None:
            setattr(contact, attr, getattr(lead, attr))
            changed = True
    rows = [
        {"contact_id": contact.id, "kind": kind, "value": value, "seen_at": utcnow()}
        for kind, value in (("phone", lead.phone_e164), ("email", lead.email))
        if value
    ]
    upsert(session, ContactIdentifier, rows, key=["kind", "value", "contact_id"], update=[])
    if changed:
        contact.updated_at = utcnow()


def _open_lead_of(session: Session, contact_id: int, lead: Lead, window: timedelta) -> Lead | None:
    """The contact's earlier, still open, non-duplicate lead submitted within the window."""
    candidates = session.scalars(
        select(Lead)
        .where(
            Lead.contact_id == contact_id,
            Lead.id != lead.id,
            Lead.duplicate_of_id.is_(None),
            Lead.status == "open",
        )
        .order_by(Lead.submitted_at, Lead.id)
    ).all()
    submitted = as_utc(lead.submitted_at)
    for other in candidates:
        other_at = as_utc(other.submitted_at)
        if (other_at, other.id) < (submitted, lead.id) and submitted - other_at <= window:
            return other
    return None


def resolve_new_leads(
    session: Session, duplicate_window: timedelta, limit: int | None = None
) -> ResolveStats:
    """Resolve every lead not yet resolved, oldest first, so the result does not depend on
    how the work was split between runs."""
    stats = ResolveStats()
    query = select(Lead).where(Lead.resolved_at.is_(None)).order_by(Lead.submitted_at, Lead.id)
    if limit:
        query = query.limit(limit)
    for lead in session.scalars(query).all():
        stats.leads += 1
        resolve_lead(session, lead, duplicate_window, stats)
        session.flush()
    return stats
