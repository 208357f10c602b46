"""Calls into the CRM: each call one `crm_activities` row (idempotent on the provider's call id)
with rep and contact; an inbound call from an unknown number becomes a phone lead (with the
tracking number's channel); a missed call from a known contact becomes a call-back task."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connectors.asterisk_cdr import PROVIDER as ASTERISK
from connectors.asterisk_cdr import CdrOptions, read_cdr
from connectors.errors import PermanentSourceError
from connectors.pbx import CallPage, CallSource, RejectedRecord
from hub.identity.normalize import normalize_phone
from hub.identity.resolve import live_contact
from hub.ingest.stats import IngestStats, note_http_usage
from hub.masking import mask_phone
from hub.settings import TelephonySettings
from hub.store.cursors import load_cursor, save_cursor
from hub.store.db import session_scope
from hub.store.models import Activity, Contact, ContactIdentifier, Lead, Rep, Task, TrackingNumber
from hub.store.quarantine import describe_error, quarantine
from hub.store.upsert import upsert
from hub.timeutil import as_utc, utcnow
from schemas.telephony import Call

LEAD_SOURCE = "phone"
# Selecting many keys at once: stay well under SQLite's bound-parameter limit.
_IN_CHUNK = 5000


def cursor_name(provider: str) -> str:
    return f"telephony:{provider}"


@dataclass
class CallMaps:
    """What turning calls into CRM rows looks up: reps by extension and number, tracking numbers."""

    default_region: str
    extension_max_digits: int = 5
    call_back_within: timedelta = timedelta(minutes=30)
    reps_by_extension: dict[str, int] = field(default_factory=dict)
    reps_by_phone: dict[str, int] = field(default_factory=dict)
    tracking: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, settings: TelephonySettings, default_region: str) -> CallMaps:
        maps = cls(
            default_region=default_region,
            extension_max_digits=settings.extension_max_digits,
            call_back_within=timedelta(minutes=settings.call_back_within_minutes),
        )
        for rep in session.scalars(select(Rep)):
            if rep.extension:
                maps.reps_by_extension[rep.extension.strip()] = rep.id
            if rep.phone_e164:
                maps.reps_by_phone[rep.phone_e164] = rep.id
        for number, channel in settings.tracking_numbers.items():
            e164 = e164_of(number, default_region)
            if e164:
                maps.tracking[e164] = (channel, None)
        for row in session.scalars(select(TrackingNumber)):
            maps.tracking[row.number_e164] = (row.channel, row.campaign)
        return maps


@lru_cache(maxsize=100_000)
def e164_of(number: str | None, region: str) -> str | None:
    phone = normalize_phone(number, region) if number else None
    return phone.e164 if phone else None


def _region_of(e164: str) -> str | None:
    """The main region of the number's country code (+7: RU); codes are prefix-free."""
    for size in (1, 2, 3):
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(e164[1 : 1 + size] or 0))
        if regions:
            return regions[0]
    return None


def write_calls(session: Session, calls: list[Call], maps: CallMaps) -> IngestStats:
    """Write the calls not yet in the store, with their leads and call-back tasks. A call
    already stored changes nothing, so its lead or task is never made twice."""
    stats = IngestStats(rows_in=len(calls))
    external = [c for c in calls if c.direction != "internal"]
    stats.extra["internal_calls_skipped"] = len(calls) - len(external)
    by_provider: dict[str, list[Call]] = {}
    for call in external:
        by_provider.setdefault(call.provider, []).append(call)
    for provider, provider_calls in by_provider.items():
        stored = _existing_refs(session, provider, [c.call_id for c in provider_calls])
        fresh: dict[str, Call] = {}
        later_legs: list[Call] = []
        for call in provider_calls:
            if call.call_id not in stored:
                fresh.setdefault(call.call_id, call)
            elif call.leg_refs:
                later_legs.append(call)
        stats.unchanged += len(provider_calls) - len(fresh) - len(later_legs)
        if fresh:
            _write_new_calls(session, list(fresh.values()), maps, stats)
        if later_legs:
            _merge_later_legs(session, provider, later_legs, maps, stats)
    return stats


def _stored_as_call(activity: Activity) -> Call:
    """A stored call as one (merged) leg, to merge the legs read after it with."""
    details = activity.details or {}
    return Call.model_construct(
        provider=activity.source_system,
        call_id=activity.source_ref,
        direction=activity.direction or "inbound",
        caller=activity.from_addr or "",
        callee=activity.to_addr or "",
        started_at=as_utc(activity.occurred_at),
        duration_s=activity.duration_s or 0,
        talk_s=activity.talk_s or 0,
        disposition=activity.disposition or "missed",
        provider_status=str(details.get("status", "")),
        recording_url=activity.recording_url,
        extension=details.get("extension"),
        rep_number=None,
        dialled_number=details.get("dialled"),
        legs=int(details.get("legs", 1)),
        leg_refs=list(details.get("leg_refs", [])),
    )


def _merge_later_legs(
    session: Session, provider: str, calls: list[Call], maps: CallMaps, stats: IngestStats
) -> None:
    """Legs of stored calls read later (another batch or file: a transfer's last leg is written
    when it ends): merged into the stored call, never a second one. A leg already merged changes
    nothing; a call that turns out answered closes its open call-back task."""
    from connectors.asterisk_cdr import is_root_leg, merge_call_legs

    stored = {
        a.source_ref: a
        for a in session.scalars(
            select(Activity).where(
                Activity.source_system == provider, Activity.source_ref.in_([c.call_id for c in calls])
            )
        )
    }
    now = utcnow()
    for call in calls:
        activity = stored.get(call.call_id)
        if activity is None:
            continue
        before = _stored_as_call(activity)
        known = set(before.leg_refs)
        if set(call.leg_refs) <= known:
            stats.unchanged += 1
            continue
        merged = merge_call_legs([before, call])
        refs = list(dict.fromkeys([*before.leg_refs, *call.leg_refs]))
        root_known = any(is_root_leg(call.call_id, ref) for ref in before.leg_refs)
        who = before if root_known or not any(is_root_leg(call.call_id, r) for r in call.leg_refs) else call
        merged = merged.model_copy(
            update={
                "direction": who.direction,
                "caller": who.caller,
                "callee": who.callee,
                "dialled_number": who.dialled_number,
                "legs": len(refs),
                "leg_refs": refs,
            }
        )
        if merged.direction == "internal":
            continue
        plan = _plan(merged, maps)
        contact_id = activity.contact_id
        if contact_id is None and plan.client:
            found = _known_contacts(session, [plan.client]).get(plan.client)
            contact_id = found.id if found else None
        row = _activity_row(plan, activity.lead_id, now)
        for column in (
            "occurred_at",
            "direction",
            "from_addr",
            "to_addr",
            "duration_s",
            "talk_s",
            "disposition",
            "recording_url",
            "details",
        ):
            setattr(activity, column, row[column])
        activity.rep_id = activity.rep_id or row["rep_id"]
        activity.contact_id = contact_id
        stats.extra["calls_updated_by_later_legs"] = stats.extra.get("calls_updated_by_later_legs", 0) + 1
        if merged.disposition == "answered" and before.disposition != "answered":
            closed = session.execute(
                update(Task)
                .where(
                    Task.source_system == "hub",
                    Task.source_ref == f"call:{provider}:{call.call_id}:call_back",
                    Task.done.is_(False),
                )
                .values(done=True, done_at=now)
                .execution_options(synchronize_session=False)
            )
            stats.extra["call_backs_closed"] = stats.extra.get("call_backs_closed", 0) + int(
                closed.rowcount or 0
            )


def _existing_refs(session: Session, provider: str, refs: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(refs), _IN_CHUNK):
        chunk = refs[start : start + _IN_CHUNK]
        found.update(
            session.scalars(
                select(Activity.source_ref).where(
                    Activity.source_system == provider, Activity.source_ref.in_(chunk)
                )
            )
        )
    return found


def _known_contacts(session: Session, numbers: Iterable[str]) -> dict[str, Contact]:
    """The contact behind each number that has one, as `find_contact` finds it (the oldest
    contact indexed by the number, followed to where it was merged), for a batch at once."""
    wanted = sorted(set(numbers))
    contacts: dict[str, Contact] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = session.execute(
            select(ContactIdentifier.value, Contact)
            .join(Contact, ContactIdentifier.contact_id == Contact.id)
            .where(
                ContactIdentifier.kind == "phone",
                ContactIdentifier.value.in_(wanted[start : start + _IN_CHUNK]),
            )
            .order_by(ContactIdentifier.value, Contact.id)
        ).all()
        for number, contact in rows:
            if number not in contacts:
                live = live_contact(session, contact) if contact.merged_into_id else contact
                if live is not None:
                    contacts[number] = live
    return contacts


@dataclass
class _Plan:
    call: Call
    from_addr: str
    to_addr: str
    client: str | None
    rep_id: int | None
    channel: str | None
    campaign: str | None
    dialled: str | None
    contact: Contact | None = None


def _plan(call: Call, maps: CallMaps) -> _Plan:
    region = maps.default_region
    from_e164 = e164_of(call.caller, region)
    to_e164 = e164_of(call.callee, region)
    inbound = call.direction == "inbound"
    client = from_e164 if inbound else to_e164
    rep_id = maps.reps_by_extension.get(call.extension or "")
    if rep_id is None and call.rep_number:
        rep_id = maps.reps_by_phone.get(e164_of(call.rep_number, region) or "")
    if rep_id is None and not inbound and from_e164:
        rep_id = maps.reps_by_phone.get(from_e164)
    channel = campaign = dialled = None
    if inbound:
        dialled = e164_of(call.dialled_number, region) if call.dialled_number else to_e164
        if dialled in maps.tracking:
            channel, campaign = maps.tracking[dialled]
    return _Plan(
        call=call,
        from_addr=from_e164 or call.caller,
        to_addr=to_e164 or call.callee,
        client=client,
        rep_id=rep_id,
        channel=channel,
        campaign=campaign,
        dialled=dialled or call.dialled_number,
    )


def _write_new_calls(session: Session, calls: list[Call], maps: CallMaps, stats: IngestStats) -> None:
    plans = [_plan(call, maps) for call in calls]
    contacts = _known_contacts(session, (p.client for p in plans if p.client))
    lead_rows: list[dict[str, Any]] = []
    task_rows: list[dict[str, Any]] = []
    now = utcnow()
    for plan in plans:
        call = plan.call
        plan.contact = contacts.get(plan.client or "")
        if call.direction != "inbound":
            continue
        if plan.client is None:
            stats.extra["inbound_without_number"] = stats.extra.get("inbound_without_number", 0) + 1
        elif plan.contact is None:
            lead_rows.append(_lead_row(plan, now))
        elif call.disposition != "answered":
            task_rows.append(_call_back_row(plan, maps, now))
    lead_ids, leads_created = _insert_leads(session, lead_rows)
    upsert(session, Task, task_rows, key=["source_system", "source_ref"], update=[])
    rows = [_activity_row(p, lead_ids.get(f"{p.call.provider}:{p.call.call_id}"), now) for p in plans]
    inserted = upsert(
        session, Activity, rows, key=["source_system", "source_ref"], update=[], returning="source_ref"
    )
    stats.written += len(inserted)
    stats.unchanged += len(rows) - len(inserted)
    stats.extra["leads_created"] = stats.extra.get("leads_created", 0) + leads_created
    stats.extra["call_back_tasks"] = stats.extra.get("call_back_tasks", 0) + len(task_rows)
    stats.extra["missed_inbound"] = stats.extra.get("missed_inbound", 0) + sum(
        1 for p in plans if p.call.direction == "inbound" and p.call.disposition != "answered"
    )
    for plan in plans[: IngestStats.PREVIEW_ROWS]:
        stats.add_preview(call_preview(plan.call, plan.from_addr, plan.to_addr, plan.channel))


def _lead_row(plan: _Plan, now: datetime) -> dict[str, Any]:
    call = plan.call
    if call.disposition == "answered":
        message = f"Inbound call, talked {call.talk_s // 60}:{call.talk_s % 60:02d}"
    else:
        message = f"Missed call ({call.disposition})"
    return {
        "source_system": LEAD_SOURCE,
        "source_ref": f"{call.provider}:{call.call_id}",
        "channel": plan.channel or "phone",
        "phone_raw": call.caller[:64],
        "phone_e164": plan.client,
        "message": message,
        "form": "call",
        "utm_campaign": plan.campaign,
        "region": _region_of(plan.client) if plan.client else None,
        "submitted_at": call.started_at,
        "status": "new",
        "created_at": now,
    }


def _insert_leads(session: Session, rows: list[dict[str, Any]]) -> tuple[dict[str, int], int]:
    """Insert the leads (once per call); the id of each, new or already there, and how many
    were new."""
    if not rows:
        return {}, 0
    inserted = upsert(session, Lead, rows, key=["source_system", "source_ref"], update=[], returning="id")
    refs = [r["source_ref"] for r in rows]
    ids: dict[str, int] = {}
    for start in range(0, len(refs), _IN_CHUNK):
        ids.update(
            session.execute(
                select(Lead.source_ref, Lead.id).where(
                    Lead.source_system == LEAD_SOURCE, Lead.source_ref.in_(refs[start : start + _IN_CHUNK])
                )
            ).all()
        )
    return ids, len(inserted)


def _call_back_row(plan: _Plan, maps: CallMaps, now: datetime) -> dict[str, Any]:
    call, contact = plan.call, plan.contact
    assert contact is not None
    who = contact.name or mask_phone(plan.client)
    return {
        "source_system": "hub",
        "source_ref": f"call:{call.provider}:{call.call_id}:call_back",
        "kind": "call_back",
        "title": f"Missed call from {who}: call back",
        "rep_id": contact.owner_rep_id or plan.rep_id,
        "contact_id": contact.id,
        "due_at": call.started_at + maps.call_back_within,
        "done": False,
        "created_at": now,
    }


def _activity_row(plan: _Plan, lead_id: int | None, now: datetime) -> dict[str, Any]:
    call = plan.call
    details: dict[str, Any] = {"status": call.provider_status}
    if call.legs > 1:
        details["legs"] = call.legs
    if call.extension:
        details["extension"] = call.extension
    if plan.campaign:
        details["campaign"] = plan.campaign
    if plan.dialled:
        details["dialled"] = plan.dialled
    if call.leg_refs:
        details["leg_refs"] = call.leg_refs
    return {
        "source_system": call.provider,
        "source_ref": call.call_id,
        "kind": "call",
        "occurred_at": call.started_at,
        "contact_id": plan.contact.id if plan.contact else None,
        "rep_id": plan.rep_id,
        "lead_id": lead_id,
        "direction": call.direction,
        "from_addr": plan.from_addr[:320],
        "to_addr": plan.to_addr[:320],
        "duration_s": call.duration_s,
        "talk_s": call.talk_s,
        "disposition": call.disposition,
        "recording_url": call.recording_url,
        "channel": plan.channel,
        "count": 1,
        "details": details,
        "created_at": now,
    }


def call_preview(call: Call, from_addr: str, to_addr: str, channel: str | None = None) -> dict[str, Any]:
    """A call as shown in metadata and logs: numbers masked."""
    return {
        "call": call.call_id[-24:],
        "at": call.started_at.strftime("%Y-%m-%d %H:%M"),
        "direction": call.direction,
        "from": mask_phone(from_addr) if len(from_addr) > 6 else from_addr,
        "to": mask_phone(to_addr) if len(to_addr) > 6 else to_addr,
        "disposition": call.disposition,
        "talk_s": call.talk_s,
        "channel": channel or "",
    }


def quarantine_rejected(
    session: Session, provider: str, rejected: list[RejectedRecord], stats: IngestStats
) -> None:
    for record in rejected:
        quarantine(session, cursor_name(provider), record.raw, record.reason, source_ref=record.ref)
        stats.note_quarantined(describe_error(record.reason))


def assign_reps_from_legs(
    session: Session, provider: str, answered_by: dict[str, str], maps: CallMaps
) -> int:
    """Stored calls without a rep get the rep whose number a later-read leg says answered."""
    assigned = 0
    for call_id, number in answered_by.items():
        rep_id = maps.reps_by_phone.get(e164_of(number, maps.default_region) or "")
        if rep_id is None:
            continue
        result = session.execute(
            update(Activity)
            .where(
                Activity.source_system == provider, Activity.source_ref == call_id, Activity.rep_id.is_(None)
            )
            .values(rep_id=rep_id)
            .execution_options(synchronize_session=False)
        )
        assigned += int(result.rowcount or 0)
    return assigned


# ---------------------------------------------------------------- cloud PBX (HTTP)


def _parse_stamp(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def sync_calls(
    database_url: str,
    source: CallSource,
    settings: TelephonySettings,
    default_region: str,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
) -> IngestStats:
    """Read a cloud PBX from its cursor (minus the lookback), or the range [since, until) for
    a backfill, which leaves the cursor alone. Each page commits with its rows; the new cursor
    commits with the last page, and never passes a call that is still going on."""
    now = now or utcnow()
    name = cursor_name(source.provider)
    backfill = since is not None
    with session_scope(database_url) as session:
        cursor = load_cursor(session, name)
        maps = CallMaps.load(session, settings, default_region)
    high_water = _parse_stamp(cursor.get("high_water"))
    if since is None:
        since = (
            high_water - timedelta(minutes=settings.lookback_minutes)
            if high_water
            else now - timedelta(days=settings.initial_days)
        )
    stats = IngestStats()
    latest: datetime | None = high_water
    pending: datetime | None = None
    held: CallPage | None = None
    pages = 0
    for page in source.pages(since, until):
        pages += 1
        if held is not None:
            stats.merge(_write_page(database_url, source.provider, held, maps, None))
        held = page
        for call in page.calls:
            latest = max(latest or call.started_at, call.started_at)
        if page.pending_since is not None:
            pending = min(pending or page.pending_since, page.pending_since)
    if held is not None:
        new_cursor = None
        if not backfill and latest is not None:
            mark = min(latest, pending) if pending else latest
            new_cursor = {"high_water": mark.isoformat()}
        stats.merge(_write_page(database_url, source.provider, held, maps, new_cursor))
    stats.extra["pages"] = pages
    if pending:
        stats.extra["calls_in_progress"] = 1
    note_http_usage(stats, source)
    return stats


def _write_page(
    database_url: str, provider: str, page: CallPage, maps: CallMaps, cursor: dict[str, Any] | None
) -> IngestStats:
    with session_scope(database_url) as session:
        stats = write_calls(session, page.calls, maps)
        quarantine_rejected(session, provider, page.rejected, stats)
        stats.rows_in += len(page.rejected)
        stats.extra["repeated_calls_dropped"] = page.repeated
        stats.extra["legs_merged"] = page.skipped_legs
        if page.answered_by:
            stats.extra["reps_from_legs"] = assign_reps_from_legs(session, provider, page.answered_by, maps)
        if cursor is not None:
            save_cursor(session, cursor_name(provider), cursor)
    return stats


# ---------------------------------------------------------------- Asterisk CDR files


def cdr_options(settings: TelephonySettings, hub_timezone: str) -> CdrOptions:
    """How the CDR files are read, from the settings; a bad column list names its setting."""
    asterisk = settings.asterisk
    options = CdrOptions(
        timezone=asterisk.timezone or hub_timezone,
        extension_max_digits=settings.extension_max_digits,
        recording_base_url=asterisk.recording_base_url,
        columns=tuple(asterisk.cdr_columns),
        inbound_contexts=tuple(asterisk.inbound_contexts),
        trunk_peers=tuple(asterisk.trunk_peers),
        pbx_apps=tuple(asterisk.pbx_apps),
    )
    try:
        options.layout_guess()
    except ValueError as exc:
        raise PermanentSourceError(f"HUB_TELEPHONY__ASTERISK__CDR_COLUMNS: {exc}") from None
    return options


def sync_cdr_dir(
    database_url: str,
    settings: TelephonySettings,
    default_region: str,
    hub_timezone: str,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_rows: int = 5000,
) -> IngestStats:
    """Import the CDR files of the configured folder. Each file's byte offset is kept in the
    cursor, committed with the batch it covers, so a file that grows is read from where it
    stopped. With since/until (a backfill) every file is read whole and only calls in the
    range are written; the cursor is left alone."""
    stats = IngestStats()
    asterisk = settings.asterisk
    folder = Path(asterisk.cdr_dir)
    if not asterisk.cdr_dir:
        return stats
    if not folder.is_dir():
        raise PermanentSourceError(
            f"HUB_TELEPHONY__ASTERISK__CDR_DIR is {asterisk.cdr_dir!r}, which is not a folder: "
            "point it at the folder the PBX writes Master.csv to"
        )
    options = cdr_options(settings, hub_timezone)
    backfill = since is not None or until is not None
    with session_scope(database_url) as session:
        maps = CallMaps.load(session, settings, default_region)
        cursor = load_cursor(session, cursor_name(ASTERISK))
    files = 0
    for path in sorted(p for p in folder.glob(asterisk.file_glob) if p.is_file()):
        files += 1
        state = {} if backfill else dict(cursor.get(path.name) or {})
        offset, line = int(state.get("offset", 0)), int(state.get("line", 0))
        size = path.stat().st_size
        if size < offset:  # rotated or truncated: a new file under the old name
            offset, line = 0, 0
        if size == offset:
            continue
        for batch in read_cdr(path, offset, line, options, batch_rows=batch_rows):
            calls = [
                c
                for c in batch.calls
                if (since is None or c.started_at >= since) and (until is None or c.started_at < until)
            ]
            with session_scope(database_url) as session:
                batch_stats = write_calls(session, calls, maps)
                quarantine_rejected(session, ASTERISK, batch.rejected, batch_stats)
                batch_stats.rows_in += len(batch.rejected)
                batch_stats.extra["cdr_rows"] = batch.rows
                batch_stats.extra["legs_merged"] = batch.skipped_legs
                batch_stats.extra["cdr_layout"] = batch.layout
                if not backfill:
                    cursor[path.name] = {"offset": batch.end_offset, "line": batch.end_line}
                    save_cursor(session, cursor_name(ASTERISK), cursor)
            stats.merge(batch_stats)
    stats.extra["files"] = files
    return stats


# ---------------------------------------------------------------- sources from settings


def call_sources(settings: TelephonySettings, **http_options: Any) -> list[CallSource]:
    """The cloud PBX sources the settings configure (a recorded snapshot wins over the API)."""
    from connectors.twilio import TwilioCalls, TwilioSnapshot
    from connectors.zadarma import ZadarmaCalls

    sources: list[CallSource] = []
    twilio = settings.twilio
    if twilio.snapshot_file:
        sources.append(TwilioSnapshot(twilio.snapshot_file, fetch_recordings=twilio.fetch_recordings))
    elif twilio.account_sid:
        sources.append(
            TwilioCalls(
                twilio.account_sid,
                twilio.auth_token,
                base_url=twilio.base_url,
                page_size=twilio.page_size,
                fetch_recordings=twilio.fetch_recordings,
                timeout_s=settings.timeout_s,
                verify_tls=settings.verify_tls,
                **http_options,
            )
        )
    zadarma = settings.zadarma
    if zadarma.api_key:
        sources.append(
            ZadarmaCalls(
                zadarma.api_key,
                zadarma.api_secret,
                base_url=zadarma.base_url,
                timezone=zadarma.timezone,
                page_size=zadarma.page_size,
                window=timedelta(hours=zadarma.window_hours),
                extension_max_digits=settings.extension_max_digits,
                fetch_recordings=zadarma.fetch_recordings,
                timeout_s=settings.timeout_s,
                verify_tls=settings.verify_tls,
                **http_options,
            )
        )
    return sources


def sync_telephony(
    database_url: str,
    settings: TelephonySettings,
    default_region: str,
    hub_timezone: str,
    since: datetime | None = None,
    until: datetime | None = None,
    sources: list[CallSource] | None = None,
) -> dict[str, IngestStats]:
    """Every configured provider. (Calls of phone leads get their contact when the leads are
    resolved: hub.leads.link_activities_to_lead_contacts.)"""
    results: dict[str, IngestStats] = {}
    for source in call_sources(settings) if sources is None else sources:
        results[source.provider] = sync_calls(database_url, source, settings, default_region, since, until)
    if settings.asterisk.cdr_dir:
        results[ASTERISK] = sync_cdr_dir(database_url, settings, default_region, hub_timezone, since, until)
    return results
