"""Touches per contact from every source: web leads (UTM, click ids, referrer, by the channel
rules in settings), calls with a tracking-number channel, and emails; written to `hub_touches`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.channels import ChannelRules, classify_channel
from hub.store.models import Activity, Lead, Touch, TrackingNumber
from hub.store.upsert import upsert
from hub.timeutil import as_utc

# An opened email is the same touch as the email sent: counting both would double the channel.
EMAIL_TOUCH_KINDS = ("email_sent", "email_received")
EMAIL_CHANNEL = "email"
LEAD_SOURCE = "crm_leads"
ACTIVITY_SOURCE = "crm_activities"


@dataclass
class TouchStats:
    leads: int = 0
    calls: int = 0
    emails: int = 0
    skipped_without_contact: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.leads + self.calls + self.emails


def lead_channel(lead: Lead, rules: ChannelRules) -> str:
    """A web lead's channel by the current rules; a lead without web tags keeps the channel its
    source gave it (a call lead's tracking number), else it is direct."""
    tagged = any((lead.utm_source, lead.utm_medium, lead.referrer, lead.gclid, lead.yclid))
    if not tagged and lead.channel:
        return lead.channel
    return classify_channel(
        lead.utm_source, lead.utm_medium, lead.referrer, lead.gclid, lead.yclid, rules=rules
    )


def collect_touches(session: Session, rules: ChannelRules) -> tuple[list[dict[str, Any]], TouchStats]:
    """Every touch the store knows of, as `hub_touches` rows (only those with a known contact)."""
    stats = TouchStats()
    rows: list[dict[str, Any]] = []

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        stats.by_channel[row["channel"]] = stats.by_channel.get(row["channel"], 0) + 1

    for lead in session.scalars(select(Lead).order_by(Lead.id)):
        if lead.contact_id is None:
            stats.skipped_without_contact += 1
            continue
        stats.leads += 1
        add(
            {
                "source_system": LEAD_SOURCE,
                "source_ref": str(lead.id),
                "kind": "web" if lead.source_system.startswith("site") else "lead",
                "contact_id": lead.contact_id,
                "occurred_at": as_utc(lead.submitted_at),
                "channel": lead_channel(lead, rules)[:100],
                "campaign": (lead.utm_campaign or "")[:200],
                "lead_id": lead.id,
            }
        )
    campaigns = {
        number.number_e164: (number.channel, number.campaign or "")
        for number in session.scalars(select(TrackingNumber))
    }
    activities = select(Activity).where(
        (Activity.kind.in_(EMAIL_TOUCH_KINDS)) | ((Activity.kind == "call") & Activity.channel.is_not(None))
    )
    for activity in session.scalars(activities.order_by(Activity.id)):
        if activity.contact_id is None:
            stats.skipped_without_contact += 1
            continue
        if activity.kind == "call":
            stats.calls += 1
            kind, channel = "call", activity.channel or ""
            tracked = campaigns.get(activity.to_addr or "")
            campaign = (activity.details or {}).get("campaign") or (tracked[1] if tracked else "")
        else:
            stats.emails += 1
            kind, channel = "email", activity.channel or EMAIL_CHANNEL
            campaign = (activity.details or {}).get("campaign") or ""
        add(
            {
                "source_system": ACTIVITY_SOURCE,
                "source_ref": str(activity.id),
                "kind": kind,
                "contact_id": activity.contact_id,
                "occurred_at": as_utc(activity.occurred_at),
                "channel": channel[:100],
                "campaign": str(campaign)[:200],
                "lead_id": activity.lead_id,
            }
        )
    return rows, stats


def write_touches(session: Session, rules: ChannelRules) -> TouchStats:
    """Refresh `hub_touches` from the sources; a rerun with the same sources changes nothing."""
    rows, stats = collect_touches(session, rules)
    upsert(
        session,
        Touch,
        rows,
        key=["source_system", "source_ref"],
        update=["kind", "contact_id", "occurred_at", "channel", "campaign", "lead_id"],
    )
    return stats


def load_touches(session: Session) -> pd.DataFrame:
    """Touches as a frame (contact_id, touch_at, channel, campaign, touch_id), oldest first."""
    query = select(Touch.id, Touch.contact_id, Touch.occurred_at, Touch.channel, Touch.campaign).order_by(
        Touch.occurred_at, Touch.id
    )
    frame = pd.DataFrame(
        session.execute(query).all(), columns=["touch_id", "contact_id", "touch_at", "channel", "campaign"]
    )
    frame["touch_at"] = pd.to_datetime(frame["touch_at"], utc=True)
    return frame
