"""Whether reps' alerts reach them: no channel configured, alerts waiting for a channel that has no
transport, a channel failing (retries, failures), opens no channel could reach the rep on. One
verdict, used by the asset check, the watcher's ops alert and the demo's summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.alerts.deliver import MAIL_ALERT_KINDS
from hub.masking import mask_text
from hub.ops.checks import Verdict
from hub.store.models import Activity, AlertOutbox
from hub.timeutil import utcnow

# Failures and unreachable opens older than this no longer fail the verdict (the call-now
# moment has passed); alerts still waiting count whatever their age.
RECENT = timedelta(hours=24)

CHANNEL_SETTINGS = {
    "smtp": "HUB_MAIL__SMTP_HOST (or HUB_MAIL__ALERT_EML_DIR to write .eml files)",
    "telegram": "HUB_MAIL__TELEGRAM_BOT_TOKEN",
    "slack": "HUB_MAIL__SLACK_WEBHOOK_URL",
}


def _open_source() -> str:
    from hub.ingest.mail import OPEN_SOURCE  # hub.ingest.mail imports hub.alerts: import late

    return OPEN_SOURCE


def delivery_verdict(session: Session, configured: Sequence[str], now: datetime | None = None) -> Verdict:
    """Fails when any alert cannot reach its rep; the description says why and what to set."""
    now = now or utcnow()
    since = now - RECENT
    mail_kinds = AlertOutbox.kind.in_(MAIL_ALERT_KINDS)
    by_status = Counter(
        {
            (status, channel): int(count)
            for status, channel, count in session.execute(
                select(AlertOutbox.status, AlertOutbox.channel, func.count())
                .where(mail_kinds)
                .group_by(AlertOutbox.status, AlertOutbox.channel)
            )
        }
    )
    waiting_unconfigured = Counter(
        {ch: n for (st, ch), n in by_status.items() if st in ("pending", "sending") and ch not in configured}
    )
    retrying = session.execute(
        select(AlertOutbox.channel, func.count(), func.max(AlertOutbox.last_error))
        .where(
            mail_kinds,
            AlertOutbox.status == "pending",
            AlertOutbox.attempts > 0,
            AlertOutbox.channel.in_(list(configured) or [""]),
        )
        .group_by(AlertOutbox.channel)
    ).all()
    failed = session.execute(
        select(AlertOutbox.channel, func.count(), func.max(AlertOutbox.last_error))
        .where(mail_kinds, AlertOutbox.status == "failed", AlertOutbox.created_at >= since)
        .group_by(AlertOutbox.channel)
    ).all()
    unreachable = _opens_without_alert(session, since)
    metadata = {
        "channels_configured": ", ".join(configured) or "none",
        "sent": sum(n for (st, _), n in by_status.items() if st == "sent"),
        "waiting": sum(n for (st, _), n in by_status.items() if st in ("pending", "sending")),
        "waiting_without_channel": sum(waiting_unconfigured.values()),
        "retrying": sum(int(n) for _, n, _ in retrying),
        "failed_24h": sum(int(n) for _, n, _ in failed),
        "opens_nobody_alerted_24h": unreachable,
    }
    problems = []
    kinds = []
    if not configured:
        kinds.append("no_channel")
        problems.append(
            "no alert channel is configured: opens are recorded but no rep is alerted; set "
            + ", ".join(CHANNEL_SETTINGS.values())
        )
    for channel, count in sorted(waiting_unconfigured.items()):
        kinds.append(f"unconfigured:{channel}")
        if configured:
            problems.append(
                f"{count} alerts wait for channel {channel!r}, which is not configured: set "
                f"{CHANNEL_SETTINGS.get(channel, channel)}, or remove it from HUB_MAIL__ALERT_CHANNELS"
            )
        else:
            problems.append(f"{count} alerts wait for channel {channel!r}")
    for channel, count, error in retrying:
        kinds.append(f"failing:{channel}")
        problems.append(f"channel {channel!r} is failing: {count} alerts retrying; error: {mask_text(error)}")
    for channel, count, error in failed:
        kinds.append(f"failed:{channel}")
        problems.append(f"{count} alerts by {channel!r} failed for good in 24 h; error: {mask_text(error)}")
    if unreachable:
        kinds.append("unreachable")
        problems.append(
            f"{unreachable} opens in 24 h alerted nobody: their rep has no address on the configured channels "
            "(crm_reps.email, crm_reps.chat_id) or the contact has no owner"
        )
    if problems:
        metadata["problems"] = ",".join(sorted(set(kinds)))
        return Verdict(False, "Reps' alerts are not all delivered: " + "; ".join(problems), metadata)
    return Verdict(
        True,
        f"Alerts reach reps by {', '.join(configured)}: {metadata['sent']} sent, {metadata['waiting']} waiting "
        "(quiet hours or just queued)",
        metadata,
    )


def _opens_without_alert(session: Session, since: datetime) -> int:
    opened = set(
        session.scalars(
            select(Activity.source_ref).where(
                Activity.source_system == _open_source(), Activity.created_at >= since
            )
        )
    )
    if not opened:
        return 0
    keys = session.scalars(
        select(AlertOutbox.idempotency_key).where(
            AlertOutbox.kind.in_(MAIL_ALERT_KINDS), AlertOutbox.created_at >= since - timedelta(minutes=5)
        )
    )
    # Keys are "email_opened:<Message-ID>:<channel>".
    alerted = {key.split(":", 1)[1].rsplit(":", 1)[0] for key in keys}
    return len(opened - alerted)


def delivery_summary(session: Session) -> dict[str, int]:
    """Reps' alerts by status (the demo's summary line)."""
    counts = dict(
        session.execute(
            select(AlertOutbox.status, func.count())
            .where(AlertOutbox.kind.in_(MAIL_ALERT_KINDS))
            .group_by(AlertOutbox.status)
        ).all()
    )
    return {status: int(counts.get(status, 0)) for status in ("sent", "pending", "sending", "failed")}


def first_delivered(session: Session) -> AlertOutbox | None:
    """The first alert sent (the demo prints it in full)."""
    return session.scalars(
        select(AlertOutbox)
        .where(AlertOutbox.kind.in_(MAIL_ALERT_KINDS), AlertOutbox.status == "sent")
        .order_by(AlertOutbox.sent_at, AlertOutbox.id)
        .limit(1)
    ).first()
