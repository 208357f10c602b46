"""Mail into the CRM: sent emails recorded as "email_sent" activities, read receipts and pixel
opens correlated to them, and each first open turned into a "call now" task plus an outbox
alert in the same transaction. Every mailbox batch commits with its cursor."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from connectors.receipts import NotAReceipt, parse_receipt, parse_sent_email, subject_key
from hub.alerts import templates
from hub.alerts.links import contact_url
from hub.alerts.outbox import enqueue_alert
from hub.ingest.stats import IngestStats
from hub.masking import mask_email
from hub.settings import MailSettings
from hub.store.cursors import load_cursor, save_cursor
from hub.store.db import session_scope
from hub.store.models import (
    Activity,
    Contact,
    ContactIdentifier,
    Deal,
    MailReceipt,
    MailTrackingToken,
    Rep,
    Task,
)
from hub.store.quarantine import quarantine
from hub.store.upsert import upsert
from hub.timeutil import as_utc, utcnow
from schemas.mail import MailMessage, ParsedReceipt, SentEmail

SENT_SOURCE = "mail_sent"
OPEN_SOURCE = "mail_open"
RECEIPT_SOURCE = "mail"
TASK_SOURCE = "mail"
QUARANTINE_SOURCE = "mail_receipts"

# Confidence of each way a receipt is tied to the sent email, strongest first.
MATCH_CONFIDENCE = {
    "original_message_id": 1.0,
    "references": 0.9,
    "in_reply_to": 0.9,
    "rfc822_headers": 0.8,
    "subject_reader_window": 0.4,
}
# A receipt whose disposition comes from its subject ("Read: ...") because its report part is
# missing or malformed: the open is recorded, with its confidence scaled by this.
SUBJECT_DISPOSITION_FACTOR = 0.75


class MailSource(Protocol):
    """A mailbox folder read incrementally: batches of messages, each with the cursor that
    covers it; `after_commit` runs once the batch and its cursor are in the store."""

    name: str

    def batches(self, cursor: dict[str, Any]) -> Iterator[tuple[list[MailMessage], dict[str, Any]]]: ...

    def after_commit(self, messages: list[MailMessage]) -> None: ...


@dataclass
class OpenEvent:
    """What a receipt or a pixel fetch says: this sent email was opened at this time."""

    message_id: str
    opened_at: datetime
    via: str  # receipt | pixel
    detail: dict[str, Any]


# ---------------------------------------------------------------- sent mail


def record_sent_email(session: Session, sent: SentEmail) -> bool:
    """Record a sent email as an "email_sent" activity tied to its contact, deal and rep, with
    a tracking-pixel token. Returns True when it was new."""
    contact = _contact_by_email(session, sent.to_addrs)
    rep_id = _rep_by_email(session, sent.from_addr)
    if rep_id is None and contact is not None:
        rep_id = contact.owner_rep_id
    deal_id = _deal_for(session, sent.deal_ref, contact)
    row = {
        "source_system": SENT_SOURCE,
        "source_ref": sent.message_id,
        "kind": "email_sent",
        "occurred_at": sent.sent_at,
        "contact_id": contact.id if contact else None,
        "rep_id": rep_id,
        "deal_id": deal_id,
        "direction": "outbound",
        "from_addr": sent.from_addr,
        "to_addr": ", ".join(sent.to_addrs)[:320] or None,
        "subject": sent.subject,
        "message_id": sent.message_id,
        "channel": "email",
        "count": 1,
        "details": {},
        "created_at": utcnow(),
    }
    inserted = upsert(
        session, Activity, [row], key=["source_system", "source_ref"], update=[], returning="id"
    )
    upsert(
        session,
        MailTrackingToken,
        [{"token": secrets.token_urlsafe(24), "message_id": sent.message_id, "created_at": utcnow()}],
        key=["message_id"],
        update=[],
    )
    return bool(inserted)


def tracking_token(session: Session, message_id: str) -> str | None:
    return session.scalar(select(MailTrackingToken.token).where(MailTrackingToken.message_id == message_id))


def _contact_by_email(session: Session, addresses: list[str]) -> Contact | None:
    for address in addresses:
        contact = session.scalar(
            select(Contact)
            .join(ContactIdentifier, ContactIdentifier.contact_id == Contact.id, isouter=True)
            .where(
                (func.lower(Contact.email) == address)
                | ((ContactIdentifier.kind == "email") & (ContactIdentifier.value == address))
            )
            .order_by(Contact.id)
            .limit(1)
        )
        while contact is not None and contact.merged_into_id is not None:
            contact = session.get(Contact, contact.merged_into_id)
        if contact is not None:
            return contact
    return None


def _rep_by_email(session: Session, address: str | None) -> int | None:
    if not address:
        return None
    return session.scalar(select(Rep.id).where(func.lower(Rep.email) == address.lower()).limit(1))


def _deal_for(session: Session, deal_ref: str | None, contact: Contact | None) -> int | None:
    if deal_ref:
        deal_id = session.scalar(select(Deal.id).where(Deal.source_ref == deal_ref).limit(1))
        if deal_id is not None:
            return deal_id
    if contact is None:
        return None
    # The contact's most recent open deal is what an offer email is about.
    return session.scalar(
        select(Deal.id)
        .where(Deal.contact_id == contact.id, Deal.status == "open")
        .order_by(Deal.opened_at.desc())
        .limit(1)
    )


# ---------------------------------------------------------------- receipts


def record_receipt(
    session: Session,
    receipt: ParsedReceipt,
    *,
    raw: bytes,
    location: str | None,
    arrived_at: datetime | None,
    mail: MailSettings,
) -> str:
    """Store a receipt once (keyed by its own Message-ID), correlate it and record the open.
    Returns its status: opened | not_read | uncorrelated | duplicate."""
    natural_key = receipt.receipt_message_id or "sha256:" + hashlib.sha256(raw).hexdigest()
    row = {
        "source_system": RECEIPT_SOURCE,
        "source_ref": natural_key[:500],
        "location": location,
        "variant": receipt.variant,
        "disposition": receipt.disposition,
        "disposition_source": receipt.disposition_source,
        "reader": receipt.reader,
        "subject": receipt.subject,
        "original_message_id": receipt.original_message_id,
        "candidates": receipt_candidates(receipt),
        "received_at": receipt.received_at,
        "arrived_at": arrived_at,
        "status": "uncorrelated",
        "created_at": utcnow(),
    }
    ids = upsert(session, MailReceipt, [row], key=["source_system", "source_ref"], update=[], returning="id")
    if not ids:
        return "duplicate"
    stored = session.get(MailReceipt, ids[0])
    assert stored is not None
    return correlate_and_record(session, stored, mail)


def receipt_candidates(receipt: ParsedReceipt) -> list[list[str]]:
    """[method, Message-ID] pairs in order of confidence, each Message-ID once."""
    pairs: list[list[str]] = []
    if receipt.original_message_id:
        pairs.append(["original_message_id", receipt.original_message_id])
    # The last References entry is the message replied to; receipts carry only the original.
    for message_id in reversed(receipt.references):
        pairs.append(["references", message_id])
    if receipt.in_reply_to:
        pairs.append(["in_reply_to", receipt.in_reply_to])
    if receipt.headers_message_id:
        pairs.append(["rfc822_headers", receipt.headers_message_id])
    unique: list[list[str]] = []
    for method, message_id in pairs:
        if all(message_id != kept for _, kept in unique):
            unique.append([method, message_id])
    return unique


def correlate_and_record(session: Session, receipt: MailReceipt, mail: MailSettings) -> str:
    """Tie a stored receipt to its sent email; on success record the open (when displayed)."""
    match = _correlate(session, receipt, mail)
    if match is None:
        return receipt.status
    sent, method = match
    receipt.sent_message_id = sent.message_id
    receipt.match_method = method
    receipt.confidence = round(
        MATCH_CONFIDENCE[method]
        * (SUBJECT_DISPOSITION_FACTOR if receipt.disposition_source == "subject" else 1.0),
        3,
    )
    receipt.correlated_at = utcnow()
    if receipt.disposition != "displayed":
        receipt.status = "not_read"
        return receipt.status
    receipt.status = "opened"
    opened_at = receipt.received_at or receipt.arrived_at or utcnow()
    record_open(
        session,
        sent,
        OpenEvent(
            message_id=sent.message_id or "",
            opened_at=opened_at,
            via="receipt",
            detail={"receipt_id": receipt.id, "method": method, "confidence": receipt.confidence},
        ),
        mail,
    )
    return receipt.status


def _correlate(session: Session, receipt: MailReceipt, mail: MailSettings) -> tuple[Activity, str] | None:
    for method, message_id in receipt.candidates or []:
        sent = _sent_by_message_id(session, message_id)
        if sent is not None:
            return sent, method
    if receipt.reader and receipt.subject:
        sent = _sent_by_subject(session, receipt, mail.subject_match_window_days)
        if sent is not None:
            return sent, "subject_reader_window"
    return None


def _sent_by_message_id(session: Session, message_id: str) -> Activity | None:
    # Exact comparison in the store: a server-side HEADER search would match substrings.
    return session.scalar(
        select(Activity).where(Activity.source_system == SENT_SOURCE, Activity.source_ref == message_id)
    )


def _sent_by_subject(session: Session, receipt: MailReceipt, window_days: int) -> Activity | None:
    """Low confidence: same subject (prefixes stripped), sent to the reader, within the window
    before the receipt; the most recent such email."""
    when = as_utc(receipt.received_at or receipt.arrived_at or utcnow())
    wanted = subject_key(receipt.subject or "")
    if not wanted:
        return None
    candidates = session.scalars(
        select(Activity)
        .where(
            Activity.source_system == SENT_SOURCE,
            Activity.to_addr.contains(receipt.reader or ""),
            Activity.occurred_at >= when - timedelta(days=window_days),
            Activity.occurred_at <= when + timedelta(hours=1),
        )
        .order_by(Activity.occurred_at.desc())
    )
    for sent in candidates:
        if subject_key(sent.subject or "") == wanted:
            return sent
    return None


def correlate_pending(database_url: str, mail: MailSettings, batch: int = 500) -> IngestStats:
    """Retry the uncorrelated queue: a receipt can arrive before its sent email is read."""
    stats = IngestStats()
    with session_scope(database_url) as session:
        # Newest first: old receipts that never match must not starve recent ones.
        waiting = session.scalars(
            select(MailReceipt)
            .where(MailReceipt.status == "uncorrelated")
            .order_by(MailReceipt.id.desc())
            .limit(batch)
        ).all()
        for receipt in waiting:
            status = correlate_and_record(session, receipt, mail)
            stats.extra[status] = stats.extra.get(status, 0) + 1
            if status != "uncorrelated":
                stats.written += 1
    stats.extra["queue_checked"] = len(waiting)
    return stats


# ---------------------------------------------------------------- opens, tasks, alerts


def record_open(session: Session, sent: Activity, event: OpenEvent, mail: MailSettings) -> bool:
    """One "email_opened" activity per sent email, later opens counted on it. The first open
    also adds a "call now" task for the owner rep and the alert rows, in this transaction.
    Returns True for a first open."""
    rep_id = sent.rep_id or _owner_of(session, sent.contact_id)
    row = {
        "source_system": OPEN_SOURCE,
        "source_ref": event.message_id,
        "kind": "email_opened",
        "occurred_at": event.opened_at,
        "contact_id": sent.contact_id,
        "rep_id": rep_id,
        "deal_id": sent.deal_id,
        "direction": "inbound",
        "from_addr": sent.to_addr,
        "to_addr": sent.from_addr,
        "subject": sent.subject,
        "message_id": event.message_id,
        "channel": "email",
        "count": 1,
        "details": {"first_via": event.via, "last_via": event.via, **event.detail},
        "created_at": utcnow(),
    }
    inserted = upsert(
        session, Activity, [row], key=["source_system", "source_ref"], update=[], returning="id"
    )
    if not inserted:
        session.execute(
            update(Activity)
            .where(Activity.source_system == OPEN_SOURCE, Activity.source_ref == event.message_id)
            .values(count=Activity.count + 1)
        )
        return False
    rep = session.get(Rep, rep_id) if rep_id is not None else None
    facts = open_alert_facts(session, sent, event, rep, mail)
    upsert(
        session,
        Task,
        [
            {
                "source_system": TASK_SOURCE,
                "source_ref": f"call_now:{event.message_id}",
                "kind": "call_now",
                "title": templates.task_title(facts)[:500],
                "rep_id": rep_id,
                "contact_id": sent.contact_id,
                "deal_id": sent.deal_id,
                "due_at": utcnow(),
                "done": False,
                "created_at": utcnow(),
            }
        ],
        key=["source_system", "source_ref"],
        update=[],
    )
    if rep is not None:
        enqueue_alert(
            session,
            key=f"email_opened:{event.message_id}",
            kind=templates.EMAIL_OPENED,
            rep=rep,
            subject=templates.subject(facts),
            body=templates.as_text(templates.lines(facts)),
            event_at=event.opened_at,
            channels=mail.alert_channels,
            details=facts,
        )
    return True


def open_alert_facts(
    session: Session, sent: Activity, event: OpenEvent, rep: Rep | None, mail: MailSettings
) -> dict[str, Any]:
    """What the rep is told about an open, as data (kept with the outbox row, rendered per
    channel by hub/alerts/templates.py): who opened what and when, how to reach them, the deal."""
    contact = session.get(Contact, sent.contact_id) if sent.contact_id is not None else None
    deal = session.get(Deal, sent.deal_id) if sent.deal_id is not None else None
    email = (contact.email if contact is not None else None) or (sent.to_addr or "").split(",")[0].strip()
    return {
        "template": templates.EMAIL_OPENED,
        "language": templates.language_of(rep.locale if rep else None, mail.alert_language),
        "timezone": rep.timezone if rep is not None else None,
        "rep": rep.name if rep is not None else None,
        "person": contact.name if contact is not None else None,
        "company": contact.company if contact is not None else None,
        "phone_e164": contact.phone_e164 if contact is not None else None,
        "phone_ext": contact.phone_ext if contact is not None else None,
        "email": email or None,
        "email_subject": sent.subject,
        "sent_message_id": sent.message_id,
        "opened_at": as_utc(event.opened_at).isoformat(),
        "via": event.via,
        "deal_title": (deal.title or deal.source_ref) if deal is not None else None,
        "deal_amount": str(deal.amount) if deal is not None and deal.amount is not None else None,
        "deal_currency": deal.currency if deal is not None else None,
        "deal_stage": deal.stage if deal is not None else None,
        "contact_url": contact_url(session, contact.id, mail) if contact is not None else None,
    }


def _owner_of(session: Session, contact_id: int | None) -> int | None:
    if contact_id is None:
        return None
    return session.scalar(select(Contact.owner_rep_id).where(Contact.id == contact_id))


# ---------------------------------------------------------------- mailbox sync


def sync_sent(database_url: str, source: MailSource) -> IngestStats:
    """Record the sent emails of a folder from its saved cursor, batch by batch."""
    return _sync_source(database_url, source, _ingest_sent)


def sync_receipts(database_url: str, source: MailSource, mail: MailSettings) -> IngestStats:
    """Parse, correlate and record the receipts of a folder from its saved cursor; ordinary mail
    in the folder is skipped, broken receipts are quarantined."""
    return _sync_source(
        database_url, source, lambda session, message: _ingest_receipt(session, message, mail)
    )


def record_receipts(
    database_url: str,
    source_name: str,
    messages: list[MailMessage],
    cursor: dict[str, Any],
    mail: MailSettings,
) -> IngestStats:
    """One fetched batch of receipts and the cursor that covers it, in one transaction (the
    watcher's path: it fetched the batch itself while leaving IDLE)."""
    stats = IngestStats()
    with session_scope(database_url) as session:
        for message in messages:
            stats.merge(_ingest_receipt(session, message, mail))
        save_cursor(session, source_name, cursor)
    return stats


def _sync_source(
    database_url: str, source: MailSource, ingest: Callable[[Session, MailMessage], IngestStats]
) -> IngestStats:
    """Each batch of the source and its cursor in one transaction; then the source's
    after-commit step (moving processed messages)."""
    stats = IngestStats()
    with session_scope(database_url) as session:
        cursor = load_cursor(session, source.name)
    for messages, next_cursor in source.batches(cursor):
        with session_scope(database_url) as session:
            for message in messages:
                stats.merge(ingest(session, message))
            save_cursor(session, source.name, next_cursor)
        source.after_commit(messages)
    return stats


def _ingest_sent(session: Session, message: MailMessage) -> IngestStats:
    stats = IngestStats(rows_in=1)
    try:
        sent = parse_sent_email(message.raw)
    except ValueError as exc:
        quarantine(session, SENT_SOURCE, message.raw, exc, message.location)
        stats.note_quarantined(str(exc))
        return stats
    if record_sent_email(session, sent):
        stats.written = 1
    else:
        stats.unchanged = 1
    return stats


def _ingest_receipt(session: Session, message: MailMessage, mail: MailSettings) -> IngestStats:
    stats = IngestStats(rows_in=1)
    try:
        receipt = parse_receipt(message.raw)
    except NotAReceipt:
        stats.extra["not_receipts"] = 1
        return stats
    except Exception as exc:  # a malformed message must not stop the mailbox
        quarantine(session, QUARANTINE_SOURCE, message.raw, f"unreadable message: {exc}", message.location)
        stats.note_quarantined("unreadable message")
        return stats
    if receipt.problem:
        quarantine(session, QUARANTINE_SOURCE, message.raw, receipt.problem, message.location)
        stats.note_quarantined(receipt.problem)
        return stats
    status = record_receipt(
        session, receipt, raw=message.raw, location=message.location, arrived_at=message.arrived_at, mail=mail
    )
    stats.extra[status] = 1
    if status == "duplicate":
        stats.unchanged += 1
    else:
        stats.written += 1
        stats.add_preview(
            {
                "variant": receipt.variant,
                "disposition": receipt.disposition,
                "reader": mask_email(receipt.reader),
                "status": status,
            }
        )
    return stats
