"""Writing alerts into hub_alert_outbox, in the caller's transaction, one row per channel with
an idempotency key; a rep's quiet hours postpone the first attempt instead of dropping it."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from hub.store.models import AlertOutbox, Rep
from hub.store.upsert import upsert
from hub.timeutil import as_utc, utcnow

CHANNELS = ("smtp", "telegram", "slack")


def quiet_until(rep: Rep, now: datetime) -> datetime | None:
    """When the rep's quiet hours end, if `now` falls inside them (in the rep's time zone;
    a window like 22:00-08:00 wraps midnight); None when the rep may be alerted now."""
    if not rep.quiet_start or not rep.quiet_end:
        return None
    try:
        zone = ZoneInfo(rep.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = as_utc(now).astimezone(zone)
    start, end = _hhmm(rep.quiet_start), _hhmm(rep.quiet_end)
    clock = local.time()
    inside = start <= clock < end if start < end else (clock >= start or clock < end)
    if not inside or start == end:
        return None
    end_local = datetime.combine(local.date(), end, tzinfo=zone)
    if end_local <= local:
        end_local += timedelta(days=1)
    return as_utc(end_local)


def _hhmm(value: str) -> time:
    hours, _, minutes = value.partition(":")
    return time(int(hours), int(minutes or 0))


def recipients_for(rep: Rep, channels: list[str]) -> list[tuple[str, str]]:
    """(channel, recipient) pairs the rep can be reached on among the configured channels."""
    out = []
    for channel in channels:
        if channel == "smtp" and rep.email:
            out.append(("smtp", rep.email))
        elif channel == "telegram" and rep.chat_id:
            out.append(("telegram", rep.chat_id))
        elif channel == "slack":
            # One incoming webhook posts to its channel; the rep is named in the text.
            out.append(("slack", rep.email or rep.name))
    return out


def enqueue_alert(
    session: Session,
    *,
    key: str,
    kind: str,
    rep: Rep,
    subject: str,
    body: str,
    event_at: datetime,
    channels: list[str],
    now: datetime | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Stage one outbox row per reachable channel; a key already queued is left as it is.
    Returns how many rows were added."""
    now = now or utcnow()
    first_attempt = quiet_until(rep, now)
    rows = [
        {
            "idempotency_key": f"{key}:{channel}",
            "kind": kind,
            "channel": channel,
            "recipient": recipient,
            "subject": subject[:500],
            "body": body,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": first_attempt,
            "event_at": event_at,
            "created_at": now,
            "details": details,
        }
        for channel, recipient in recipients_for(rep, channels)
    ]
    return len(upsert(session, AlertOutbox, rows, key=["idempotency_key"], update=[], returning="id"))
