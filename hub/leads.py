"""Leads from any source into `crm_leads`: one row per (source system, source reference),
written once; the same lead seen again changes nothing."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from connectors.site import UNREADABLE
from hub.channels import classify_channel
from hub.identity.normalize import normalize_email, normalize_phone
from hub.ingest.stats import IngestStats
from hub.masking import mask_email, mask_phone
from hub.store.models import Activity, Lead
from hub.store.quarantine import quarantine
from hub.store.upsert import upsert
from hub.timeutil import utcnow
from schemas.site import WebLead


class LeadRejected(ValueError):
    """The record is a well-formed lead but cannot be used (no valid way to reach the person)."""


def validate_web_lead(raw: dict[str, Any]) -> WebLead:
    """A raw record as a WebLead; a record with neither a phone nor an email is refused for that
    reason before anything else about it (its date, its id) is looked at."""
    if UNREADABLE in raw:
        raise LeadRejected(str(raw[UNREADABLE]))
    if not any(isinstance(raw.get(k), str) and raw[k].strip() for k in ("phone", "email")):
        raise LeadRejected("a lead needs a phone or an email to reach the person: the record has neither")
    return WebLead.model_validate(raw)


def lead_row_from_web(lead: WebLead, source_system: str, default_region: str) -> dict[str, Any]:
    phone = normalize_phone(lead.phone, default_region)
    email = normalize_email(lead.email)
    if phone is None and email is None:
        raise LeadRejected(
            f"no usable contact: phone {lead.phone!r} is not a valid number"
            f"{' for region ' + default_region if lead.phone else ''} and email {lead.email!r} is not an address"
        )
    return {
        "source_system": source_system,
        "source_ref": lead.id,
        "channel": classify_channel(lead.utm_source, lead.utm_medium, lead.referrer, lead.gclid, lead.yclid),
        "name": lead.name,
        "phone_raw": lead.phone,
        "phone_e164": phone.e164 if phone else None,
        "email": email,
        "company": lead.company,
        "message": lead.message,
        "form": lead.form,
        "page_url": lead.page_url,
        "referrer": lead.referrer,
        "utm_source": lead.utm_source,
        "utm_medium": lead.utm_medium,
        "utm_campaign": lead.utm_campaign,
        "utm_term": lead.utm_term,
        "utm_content": lead.utm_content,
        "gclid": lead.gclid,
        "yclid": lead.yclid,
        "region": lead.region,
        "language": lead.language,
        "submitted_at": lead.submitted_at,
        "status": "new",
        "created_at": utcnow(),
    }


def write_web_leads(
    session: Session,
    source_system: str,
    records: list[Any],
    default_region: str,
    source_refs: list[str | None] | None = None,
) -> IngestStats:
    """Validate each raw record, quarantine the bad ones with a reason, write the rest once."""
    stats = IngestStats(rows_in=len(records))
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, raw in enumerate(records):
        ref = source_refs[index] if source_refs else None
        try:
            if not isinstance(raw, dict):
                raise LeadRejected(f"expected a JSON object, got {type(raw).__name__}")
            row = lead_row_from_web(validate_web_lead(raw), source_system, default_region)
        except (ValidationError, LeadRejected) as exc:
            quarantine(session, source_system, raw, exc, source_ref=ref or _raw_id(raw))
            stats.note_quarantined(str(exc) if isinstance(exc, LeadRejected) else "invalid lead")
            continue
        if row["source_ref"] in seen:  # the same lead twice in one batch (a repeated page)
            continue
        seen.add(row["source_ref"])
        rows.append(row)
    inserted = upsert(
        session, Lead, rows, key=["source_system", "source_ref"], update=[], returning="source_ref"
    )
    stats.written = len(inserted)
    stats.unchanged = len(rows) - len(inserted)
    for row in rows[: IngestStats.PREVIEW_ROWS]:
        stats.add_preview(lead_preview(row))
    return stats


def lead_preview(row: dict[str, Any]) -> dict[str, Any]:
    """A lead as shown in metadata and logs: personal data masked."""
    return {
        "ref": row["source_ref"],
        "phone": mask_phone(row.get("phone_e164")),
        "email": mask_email(row.get("email")),
        "channel": row.get("channel"),
        "submitted_at": str(row.get("submitted_at")),
    }


def _raw_id(raw: Any) -> str | None:
    if isinstance(raw, dict):
        value = raw.get("id") or raw.get("lead_id")
        return str(value)[:200] if value is not None else None
    return None


def link_activities_to_lead_contacts(session: Session) -> int:
    """Activities recorded for a lead before it was resolved (a call from an unknown number)
    get the contact the lead was resolved to. Part of resolution, so that one run of the graph
    leaves nothing for the next run to change."""
    lead_contact = (
        select(Lead.contact_id).where(Lead.id == Activity.lead_id).correlate(Activity).scalar_subquery()
    )
    result = session.execute(
        update(Activity)
        .where(and_(Activity.contact_id.is_(None), Activity.lead_id.is_not(None), lead_contact.is_not(None)))
        .values(contact_id=lead_contact)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)
