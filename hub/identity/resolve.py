"""Find or create the contact behind each new lead, incrementally against the identifier and
name indexes in the store (no rescan); merge contacts a lead proves to be one person; make the
leads of one person within the window one lead with all its touches."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.identity.match import Link, MatchRecord, MatchThresholds, compare, names_conflict
from hub.identity.merge import apply_survivorship, merge_contacts
from hub.identity.normalize import (
    company_key,
    fold_token,
    is_role_email,
    name_key,
    name_parts,
    normalize_tax_id,
)
from hub.settings import IdentitySettings
from hub.store.models import Contact, ContactIdentifier, Lead
from hub.store.upsert import upsert
from hub.timeutil import as_utc, utcnow


@dataclass
class ResolveStats:
    leads: int = 0
    matched: int = 0
    created: int = 0
    duplicates: int = 0
    merged_contacts: int = 0
    guarded: int = 0  # a shared phone/mailbox that did not link different names
    reasons: dict[str, int] = field(default_factory=dict)

    def note(self, reason: str) -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def thresholds_from(settings: IdentitySettings | None) -> MatchThresholds:
    """MatchThresholds from hub.settings.IdentitySettings (None: the defaults)."""
    if settings is None:
        return MatchThresholds()
    return MatchThresholds(
        name_compatible=settings.name_compatible,
        fuzzy_link=settings.fuzzy_link,
        name_probable=settings.name_probable,
        shared_key_names=settings.shared_key_names,
        max_block=settings.max_block,
    )


def index_contact(session: Session, contact: Contact) -> None:
    """Record the contact's strong keys in the identifier index and its name/company keys on
    the row, so later batches find it without a rescan."""
    if contact.name and not contact.name_key:
        contact.name_key = name_key(contact.name)
    if contact.company and not contact.company_key:
        contact.company_key = company_key(contact.company)
    keys = [("phone", contact.phone_e164), ("email", contact.email), ("tax_id", contact.tax_id)]
    rows = [
        {"contact_id": contact.id, "kind": kind, "value": value, "seen_at": utcnow()}
        for kind, value in keys
        if value
    ]
    upsert(session, ContactIdentifier, rows, key=["kind", "value", "contact_id"], update=[])


def live_contact(session: Session, contact: Contact | None) -> Contact | None:
    """Follow merged_into to the surviving contact."""
    seen: set[int] = set()
    while contact is not None and contact.merged_into_id is not None and contact.id not in seen:
        seen.add(contact.id)
        contact = session.get(Contact, contact.merged_into_id)
    return contact


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
    return live_contact(session, contact)


def contact_record(contact: Contact) -> MatchRecord:
    tax = normalize_tax_id(contact.tax_id) if contact.tax_id else None
    return MatchRecord(
        ref=contact.id,
        name=name_parts(contact.name),
        phone=contact.phone_e164,
        phone_ext=contact.phone_ext,
        email=contact.email,
        email_role=is_role_email(contact.email),
        tax=tax,
        company=contact.company_key or company_key(contact.company),
        city=fold_token(contact.city) if contact.city else None,
    )


def lead_record(lead: Lead) -> MatchRecord:
    return MatchRecord(
        ref=-lead.id,
        name=name_parts(lead.name),
        phone=lead.phone_e164,
        email=lead.email,
        email_role=is_role_email(lead.email),
        company=company_key(lead.company),
    )


class ContactIndex:
    """The store's identifier and name indexes, queried per lead: cost grows with the batch,
    not with the number of contacts."""

    def __init__(self, session: Session, thresholds: MatchThresholds, max_name_candidates: int = 50) -> None:
        self.session = session
        self.thresholds = thresholds
        self.max_name_candidates = max_name_candidates

    def _by_key(self, kind: str, value: str | None) -> list[Contact]:
        if not value:
            return []
        found = self.session.scalars(
            select(Contact)
            .join(ContactIdentifier, ContactIdentifier.contact_id == Contact.id)
            .where(ContactIdentifier.kind == kind, ContactIdentifier.value == value)
            .order_by(Contact.id)
            # A switchboard known under hundreds of contacts is shared after the first few:
            # reading them all would make every lead on it cost as much as the CRM is large.
            .limit(self.max_name_candidates)
        ).all()
        return self._live(found)

    def _live(self, contacts: Any) -> list[Contact]:
        out: dict[int, Contact] = {}
        for contact in contacts:
            live = live_contact(self.session, contact)
            if live is not None:
                out.setdefault(live.id, live)
        return list(out.values())

    def candidates(self, record: MatchRecord) -> tuple[list[Contact], set[str]]:
        """Contacts sharing a phone, email or name key with the record, and which of the
        record's phone/email are shared by people with different names."""
        shared: set[str] = set()
        found: dict[int, Contact] = {}
        for kind, value in (("phone", record.phone), ("email", record.email)):
            holders = self._by_key(kind, value)
            if value and self._is_shared(holders):
                shared.add(value)
            for contact in holders:
                found.setdefault(contact.id, contact)
        if record.name.key and len(record.name.tokens) >= 2:
            by_name = self.session.scalars(
                select(Contact)
                .where(Contact.name_key == record.name.key, Contact.merged_into_id.is_(None))
                .order_by(Contact.id)
                .limit(self.max_name_candidates)
            ).all()
            for contact in by_name:
                found.setdefault(contact.id, contact)
        return sorted(found.values(), key=lambda c: c.id), shared

    def _is_shared(self, holders: list[Contact]) -> bool:
        people: list[Any] = []
        for contact in holders:
            parts = name_parts(contact.name)
            if parts.tokens and not any(not names_conflict([parts], [p], self.thresholds) for p in people):
                people.append(parts)
        return len(people) >= self.thresholds.shared_key_names

    def match(self, record: MatchRecord) -> tuple[list[tuple[Contact, Link]], bool]:
        """Contacts the record links to, best first; and whether a shared key was refused."""
        candidates, shared = self.candidates(record)
        links = []
        guarded = False
        for contact in candidates:
            other = contact_record(contact)
            link = compare(record, other, self.thresholds, shared)
            if link is not None:
                links.append((contact, link))
            elif (record.phone and record.phone == other.phone) or (
                record.email and record.email == other.email
            ):
                guarded = True
        links.sort(key=lambda item: (-item[1].score, item[0].id))
        return links, guarded


def resolve_lead(
    session: Session,
    lead: Lead,
    duplicate_window: timedelta,
    stats: ResolveStats,
    index: ContactIndex | None = None,
) -> None:
    index = index or ContactIndex(session, MatchThresholds())
    record = lead_record(lead)
    links, guarded = index.match(record)
    if guarded:
        stats.guarded += 1
    if links:
        contact, link = links[0]
        reason = f"matched existing contact by {link.reason}"
        stats.matched += 1
        contact = _merge_also_linked(session, contact, links[1:], lead, index, stats)
        _absorb_lead(session, contact, lead)
    else:
        contact = _new_contact(session, lead)
        reason = "new contact" + (
            " (a shared phone/mailbox of other people was not trusted)" if guarded else ""
        )
        stats.created += 1
    lead.contact_id = contact.id
    lead.resolved_at = utcnow()
    lead.resolution_reason = reason[:300]
    lead.status = "open"
    earlier = _open_lead_of(session, contact.id, lead, duplicate_window)
    if earlier is not None:
        same_source = earlier.source_system == lead.source_system and (earlier.form or "") == (
            lead.form or ""
        )
        kind = "repeat submission" if same_source else f"another touch ({lead.source_system})"
        lead.duplicate_of_id = earlier.id
        lead.status = "duplicate"
        lead.resolution_reason = f"{reason}; {kind} of lead {earlier.id} within {duplicate_window}"[:300]
        earlier.touches = [*(earlier.touches or [_touch(earlier)]), _touch(lead)]
        stats.duplicates += 1
    else:
        lead.touches = [_touch(lead)]
    stats.note(reason.split(" (")[0])


def _touch(lead: Lead) -> dict[str, Any]:
    return {
        "lead_id": lead.id,
        "source_system": lead.source_system,
        "source_ref": lead.source_ref,
        "channel": lead.channel,
        "at": as_utc(lead.submitted_at).isoformat(),
    }


def _new_contact(session: Session, lead: Lead) -> Contact:
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
    return contact


def _absorb_lead(session: Session, contact: Contact, lead: Lead) -> None:
    """A known contact gains what the lead adds: the lead is the newest evidence, so its valid
    phone becomes the primary one; a second phone or email is indexed too."""
    incoming = Contact(
        name=lead.name,
        company=lead.company,
        phone_e164=lead.phone_e164,
        email=lead.email,
        region=lead.region,
        language=lead.language,
        created_at=as_utc(lead.submitted_at),
        updated_at=as_utc(lead.submitted_at),
    )
    if apply_survivorship(contact, incoming):
        contact.updated_at = utcnow()
    if contact.name and not contact.name_key:
        contact.name_key = name_key(contact.name)
    rows = [
        {"contact_id": contact.id, "kind": kind, "value": value, "seen_at": utcnow()}
        for kind, value in (("phone", lead.phone_e164), ("email", lead.email))
        if value
    ]
    upsert(session, ContactIdentifier, rows, key=["kind", "value", "contact_id"], update=[])


def _merge_also_linked(
    session: Session,
    survivor: Contact,
    others: list[tuple[Contact, Link]],
    lead: Lead,
    index: ContactIndex,
    stats: ResolveStats,
) -> Contact:
    """A lead whose phone names one contact and whose email names another proves them one
    person, when their names agree (the cluster check): the younger merges into the older."""
    survivor_parts = [name_parts(survivor.name)]
    for other, link in others:
        if other.id == survivor.id or other.merged_into_id is not None:
            continue
        if names_conflict(survivor_parts, [name_parts(other.name)], index.thresholds):
            continue
        keep, drop = (survivor, other) if survivor.id < other.id else (other, survivor)
        evidence = {"lead_id": lead.id, "survivor_link": survivor.id, "other_link": link.reason}
        merge_contacts(session, keep, drop, f"lead {lead.id} links both: {link.reason}", evidence)
        stats.merged_contacts += 1
        survivor = keep
    return survivor


def _open_lead_of(session: Session, contact_id: int, lead: Lead, window: timedelta) -> Lead | None:
    """The contact's earlier, still open, non-duplicate lead submitted within the window."""
    submitted = as_utc(lead.submitted_at)
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
    for other in candidates:
        other_at = as_utc(other.submitted_at)
        if (other_at, other.id) < (submitted, lead.id) and submitted - other_at <= window:
            return other
    return None


def resolve_new_leads(
    session: Session,
    duplicate_window: timedelta,
    limit: int | None = None,
    identity: IdentitySettings | None = None,
) -> ResolveStats:
    """Resolve every lead not yet resolved, oldest first, so the result does not depend on
    how the work was split between runs. `identity` is hub.settings.IdentitySettings."""
    stats = ResolveStats()
    thresholds = thresholds_from(identity)
    index = ContactIndex(session, thresholds, identity.max_name_candidates if identity else 50)
    query = select(Lead).where(Lead.resolved_at.is_(None)).order_by(Lead.submitted_at, Lead.id)
    if limit:
        query = query.limit(limit)
    for lead in session.scalars(query).all():
        stats.leads += 1
        resolve_lead(session, lead, duplicate_window, stats, index)
        session.flush()
    return stats
