"""Ops alerts: a failed run or a failed check becomes one outbox row per channel and recipient
(the idempotency key makes a repeated sensor tick a no-op), then is sent by SMTP or a chat webhook."""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from connectors.errors import ConnectorError
from connectors.http import HttpClient
from hub.masking import mask_text
from hub.store.db import session_scope
from hub.store.models import AlertOutbox
from hub.store.upsert import upsert
from hub.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

OPS_KIND_PREFIX = "ops_"
RUN_FAILED = "ops_run_failed"
CHECK_FAILED = "ops_check_failed"
# Error texts can be long stack traces: the alert carries the head, the run page the rest.
MAX_ERROR_CHARS = 1500
WEBHOOK_URL_SETTING = "HUB_OPS__WEBHOOK_URL"


@dataclass(frozen=True)
class StepError:
    """A step (an asset's op) that failed, and why."""

    step: str
    message: str


@dataclass(frozen=True)
class FailedCheck:
    asset: str
    check: str
    severity: str
    description: str


@dataclass(frozen=True)
class OpsAlert:
    """What ops must be told about one run."""

    kind: str  # RUN_FAILED | CHECK_FAILED
    run_id: str
    job_name: str
    run_url: str
    assets: Sequence[str] = ()
    errors: Sequence[StepError] = ()
    failed_checks: Sequence[FailedCheck] = ()
    run_error: str = ""

    def subject(self) -> str:
        what = ", ".join(self.assets[:5]) + (" ..." if len(self.assets) > 5 else "")
        if self.kind == RUN_FAILED:
            failed = ", ".join(e.step for e in self.errors) or what or self.job_name
            return f"[hub] run failed: {failed} (job {self.job_name})"
        checks = ", ".join(f"{c.asset}.{c.check}" for c in self.failed_checks[:5])
        return f"[hub] check failed: {checks} (job {self.job_name})"

    def body(self) -> str:
        lines = [f"Job: {self.job_name}", f"Run: {self.run_url}"]
        if self.assets:
            lines.append("Assets in the run: " + ", ".join(self.assets))
        for error in self.errors:
            lines += ["", f"Failed: {error.step}", _clip(error.message)]
        if self.run_error and not self.errors:
            lines += ["", "Run error:", _clip(self.run_error)]
        if self.failed_checks:
            lines += ["", "Failed checks:"]
            lines += [
                f"- {c.asset} / {c.check} [{c.severity}]: {_clip(c.description, 300)}"
                for c in self.failed_checks
            ]
        lines += ["", "Open the run in the Dagster UI for logs; re-execute from failure once fixed."]
        # Errors may quote a record: phones and emails never leave the hub unmasked.
        return mask_text("\n".join(lines))


def _clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " [...]"


@dataclass(frozen=True)
class OpsChannels:
    """Where ops alerts go; empty fields switch a channel off."""

    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls | ssl | none
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_timeout_s: float = 30.0
    mail_from: str = "dagster@localhost"
    mail_to: Sequence[str] = ()
    webhook_url: str = field(default="", repr=False)
    webhook_format: str = "slack"  # slack | telegram
    telegram_chat_id: str = ""
    max_attempts: int = 5

    def recipients(self) -> list[tuple[str, str]]:
        """(channel, recipient) pairs an alert is sent to."""
        out: list[tuple[str, str]] = []
        if self.smtp_host:
            out += [("smtp", address) for address in self.mail_to]
        if self.webhook_url:
            if self.webhook_format == "telegram":
                out.append(("telegram", self.telegram_chat_id or "telegram"))
            else:
                out.append(("slack", "slack-webhook"))
        return out


def enqueue_ops_alert(session: Session, alert: OpsAlert, channels: OpsChannels) -> int:
    """Stage the alert's outbox rows in the caller's transaction; returns how many are new
    (0 when this run was already alerted: a sensor may see the same run twice)."""
    now = utcnow()
    rows = [
        {
            "idempotency_key": f"{alert.kind}:{alert.run_id}:{channel}:{recipient}",
            "kind": alert.kind,
            "channel": channel,
            "recipient": recipient,
            "subject": alert.subject()[:500],
            "body": alert.body(),
            "status": "pending",
            "attempts": 0,
            "event_at": now,
            "created_at": now,
        }
        for channel, recipient in channels.recipients()
    ]
    inserted = upsert(session, AlertOutbox, rows, key=["idempotency_key"], update=[], returning="id")
    return len(inserted)


@dataclass
class DeliveryStats:
    sent: int = 0
    failed: int = 0
    gave_up: int = 0


Sender = Callable[[AlertOutbox, OpsChannels], None]


def deliver_ops_alerts(
    database_url: str, channels: OpsChannels, now: datetime | None = None, limit: int = 100
) -> DeliveryStats:
    """Send the pending ops alerts. Each row is claimed (pending -> sending) in its own
    transaction before it is sent, so two deliverers never send the same row; a failed send
    goes back to pending with a backoff until max_attempts."""
    now = now or utcnow()
    stats = DeliveryStats()
    with session_scope(database_url) as session:
        due = session.scalars(
            select(AlertOutbox.id)
            .where(
                AlertOutbox.kind.like(OPS_KIND_PREFIX + "%"),
                AlertOutbox.status == "pending",
            )
            .order_by(AlertOutbox.id)
            .limit(limit)
        ).all()
    for row_id in due:
        row = _claim(database_url, row_id, now)
        if row is None:
            continue
        try:
            SENDERS[row.channel](row, channels)
        except Exception as exc:  # any failure of the far side: keep the row for a later attempt
            error = _redact(f"{type(exc).__name__}: {exc}", channels)
            gave_up = row.attempts >= channels.max_attempts
            log.warning(
                "ops alert %s via %s failed (attempt %s): %s", row.id, row.channel, row.attempts, error
            )
            with session_scope(database_url) as session:
                session.execute(
                    update(AlertOutbox)
                    .where(AlertOutbox.id == row.id)
                    .values(
                        status="failed" if gave_up else "pending",
                        last_error=error[:2000],
                        next_attempt_at=now + timedelta(seconds=min(3600, 30 * 2**row.attempts)),
                    )
                )
            stats.gave_up += gave_up
            stats.failed += not gave_up
            continue
        with session_scope(database_url) as session:
            session.execute(
                update(AlertOutbox).where(AlertOutbox.id == row.id).values(status="sent", sent_at=utcnow())
            )
        stats.sent += 1
    return stats


def _claim(database_url: str, row_id: int, now: datetime) -> AlertOutbox | None:
    with session_scope(database_url) as session:
        row = session.get(AlertOutbox, row_id)
        if row is None or (row.next_attempt_at is not None and as_utc(row.next_attempt_at) > now):
            return None
        claimed = session.execute(
            update(AlertOutbox)
            .where(AlertOutbox.id == row_id, AlertOutbox.status == "pending")
            .values(status="sending", attempts=AlertOutbox.attempts + 1)
        )
        if claimed.rowcount != 1:
            return None
        session.refresh(row)
        session.expunge(row)
        return row


def _redact(text: str, channels: OpsChannels) -> str:
    """The webhook URL carries its token (Slack path, Telegram bot token): never store it."""
    if channels.webhook_url:
        text = text.replace(channels.webhook_url, f"<{WEBHOOK_URL_SETTING}>")
    if channels.smtp_password:
        text = text.replace(channels.smtp_password, "<HUB_OPS__SMTP_PASSWORD>")
    return text


def send_smtp(row: AlertOutbox, channels: OpsChannels) -> None:
    message = EmailMessage()
    message["From"] = channels.mail_from
    message["To"] = row.recipient
    message["Subject"] = row.subject
    # A stable Message-ID per outbox row lets a mail server drop a duplicate after a crash.
    message["Message-ID"] = make_msgid(idstring=f"hub-ops-{row.id}", domain="crm-hub")
    message.set_content(row.body)
    if channels.smtp_security == "ssl":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(
            channels.smtp_host,
            channels.smtp_port,
            timeout=channels.smtp_timeout_s,
            context=ssl.create_default_context(),
        )
    else:
        smtp = smtplib.SMTP(channels.smtp_host, channels.smtp_port, timeout=channels.smtp_timeout_s)
    with smtp:
        if channels.smtp_security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if channels.smtp_user:
            smtp.login(channels.smtp_user, channels.smtp_password)
        smtp.send_message(message)


def send_webhook(row: AlertOutbox, channels: OpsChannels) -> None:
    client = HttpClient(
        channels.webhook_url,
        source="ops alert webhook",
        credential_setting=WEBHOOK_URL_SETTING,
        timeout_s=channels.smtp_timeout_s,
        max_retries=0,
    )
    if row.channel == "telegram":
        payload = {
            "chat_id": channels.telegram_chat_id,
            "text": f"{row.subject}\n\n{row.body}"[:4096],
            "disable_web_page_preview": True,
        }
    else:
        payload = {"text": f"*{row.subject}*\n{row.body}"}
    try:
        client.post_json(channels.webhook_url, payload)
    except ConnectorError as exc:
        raise ConnectorError(_redact(str(exc), channels)) from None


SENDERS: dict[str, Sender] = {"smtp": send_smtp, "slack": send_webhook, "telegram": send_webhook}
