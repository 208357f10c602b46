"""Ops alerts: a failed run or a failed check becomes one outbox row per channel and recipient
(the idempotency key makes a repeated sensor tick a no-op), sent by the hub's alert deliverer
(hub/alerts) over SMTP, a Slack webhook or Telegram, with the ops settings."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from hub.alerts.deliver import (
    DeliveryStats,
    SlackTransport,
    SmtpTransport,
    TelegramTransport,
    Transport,
    close_transports,
    deliver_pending,
)
from hub.alerts.deliver import RetryPolicy as DeliveryRetryPolicy
from hub.masking import mask_text
from hub.settings import OpsSettings
from hub.store.models import AlertOutbox
from hub.store.upsert import upsert
from hub.timeutil import utcnow

RUN_FAILED = "ops_run_failed"
CHECK_FAILED = "ops_check_failed"
# Reps' alerts cannot be delivered (hub/alerts/health.py), seen by `hub watch-mail` outside Dagster.
ALERTS_UNDELIVERABLE = "ops_alerts_undeliverable"
OPS_ALERT_KINDS = (RUN_FAILED, CHECK_FAILED, ALERTS_UNDELIVERABLE)
# Error texts can be long stack traces: the alert carries the head, the run page the rest.
MAX_ERROR_CHARS = 1500


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
        # Errors may quote a record: phones and emails in them never leave the hub unmasked.
        # (Only the free text is masked: a run id's digits would look like a phone number.)
        lines = [f"Job: {self.job_name}", f"Run: {self.run_url}"]
        if self.assets:
            lines.append("Assets in the run: " + ", ".join(self.assets))
        for error in self.errors:
            lines += ["", f"Failed: {error.step}", mask_text(_clip(error.message))]
        if self.run_error and not self.errors:
            lines += ["", "Run error:", mask_text(_clip(self.run_error))]
        if self.failed_checks:
            lines += ["", "Failed checks:"]
            lines += [
                f"- {c.asset} / {c.check} [{c.severity}]: {mask_text(_clip(c.description, 300))}"
                for c in self.failed_checks
            ]
        lines += ["", "Open the run in the Dagster UI for logs; re-execute from failure once fixed."]
        return "\n".join(lines)


def _clip(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " [...]"


@dataclass(frozen=True)
class OpsChannels:
    """Where ops alerts go; empty fields switch a channel off."""

    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"  # ssl | starttls | plain
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_timeout_s: float = 30.0
    mail_from: str = "dagster@localhost"
    mail_to: Sequence[str] = ()
    slack_webhook_url: str = field(default="", repr=False)
    telegram_bot_token: str = field(default="", repr=False)
    telegram_api_url: str = "https://api.telegram.org"
    telegram_chat_id: str = ""
    max_attempts: int = 5

    def recipients(self) -> list[tuple[str, str]]:
        """(channel, recipient) pairs an alert is sent to."""
        out: list[tuple[str, str]] = []
        if self.smtp_host:
            out += [("smtp", address) for address in self.mail_to]
        if self.slack_webhook_url:
            out.append(("slack", "ops-webhook"))
        if self.telegram_bot_token and self.telegram_chat_id:
            out.append(("telegram", self.telegram_chat_id))
        return out

    def transports(self) -> dict[str, Transport]:
        """The alert deliverer's transports (hub/alerts), with the ops settings named in errors."""
        transports: dict[str, Transport] = {}
        if self.smtp_host:
            transports["smtp"] = SmtpTransport(
                host=self.smtp_host,
                port=self.smtp_port,
                from_addr=self.mail_from,
                security=self.smtp_security,
                username=self.smtp_user,
                password=self.smtp_password,
                timeout_s=self.smtp_timeout_s,
                credential_setting="HUB_OPS__SMTP_USER and HUB_OPS__SMTP_PASSWORD",
            )
        if self.slack_webhook_url:
            transports["slack"] = SlackTransport(
                self.slack_webhook_url, credential_setting="HUB_OPS__SLACK_WEBHOOK_URL"
            )
        if self.telegram_bot_token:
            transports["telegram"] = TelegramTransport(
                self.telegram_bot_token,
                self.telegram_api_url,
                credential_setting="HUB_OPS__TELEGRAM_BOT_TOKEN",
            )
        return transports


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


def enqueue_undeliverable_notice(
    session: Session, description: str, problems: str, channels: OpsChannels, now: datetime | None = None
) -> int:
    """Tell ops that reps' alerts are not delivered: at most one notice a day per set of problems
    (`problems`, e.g. "failing:smtp"), so a watcher that sees it after every delivery pages once."""
    now = now or utcnow()
    problem = hashlib.sha256(problems.encode()).hexdigest()[:12]
    subject = "[hub] reps' alerts are not being delivered"
    body = "\n".join(
        [
            mask_text(_clip(description)),
            "",
            "Opens are recorded and call-now tasks created, but reps are not told. Fix the channel "
            "settings (docs/mail.md), then `hub alerts deliver` sends what is still due.",
        ]
    )
    rows = [
        {
            "idempotency_key": f"{ALERTS_UNDELIVERABLE}:{now:%Y-%m-%d}:{problem}:{channel}:{recipient}",
            "kind": ALERTS_UNDELIVERABLE,
            "channel": channel,
            "recipient": recipient,
            "subject": subject,
            "body": body,
            "status": "pending",
            "attempts": 0,
            "event_at": now,
            "created_at": now,
        }
        for channel, recipient in channels.recipients()
    ]
    return len(upsert(session, AlertOutbox, rows, key=["idempotency_key"], update=[], returning="id"))


def ops_channels(settings: OpsSettings) -> OpsChannels:
    """The ops channels of the settings (processes outside Dagster: `hub watch-mail`)."""
    return OpsChannels(
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
        smtp_security=settings.smtp_security,
        smtp_user=settings.smtp_user,
        smtp_password=settings.smtp_password,
        smtp_timeout_s=settings.smtp_timeout_s,
        mail_from=settings.mail_from,
        mail_to=tuple(settings.mail_to),
        slack_webhook_url=settings.slack_webhook_url,
        telegram_bot_token=settings.telegram_bot_token,
        telegram_api_url=settings.telegram_api_url,
        telegram_chat_id=settings.telegram_chat_id,
        max_attempts=settings.max_delivery_attempts,
    )


def deliver_ops_alerts(
    database_url: str, channels: OpsChannels, now: datetime | None = None, limit: int = 50
) -> DeliveryStats:
    """Send the due ops alerts through the hub's alert deliverer: each row is claimed before it
    is sent (never twice), failures are retried with backoff up to max_attempts."""
    policy = DeliveryRetryPolicy(max_attempts=channels.max_attempts, backoff_s=30.0, backoff_max_s=3600.0)
    transports = channels.transports()
    try:
        return deliver_pending(database_url, transports, policy, now=now, limit=limit, kinds=OPS_ALERT_KINDS)
    finally:
        close_transports(transports)  # the SMTP transport keeps its connection open otherwise
