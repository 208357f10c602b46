"""The alert deliverer: claims due outbox rows, sends each by its channel (SMTP, Telegram bot
API, Slack incoming webhook) and records the outcome; failures are retried with backoff.

Exactly once: a row is claimed (status "sending", attempts + 1, a lease) in its own
transaction before it is sent and marked "sent" right after, so a restart resends nothing
that was confirmed and skips nothing pending. Only a crash between the server accepting a
message and the "sent" commit can repeat it, after the lease; the SMTP Message-ID is derived
from the idempotency key so mail clients drop such a repeat."""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

from sqlalchemy import ColumnElement, and_, or_, select, update

from connectors.errors import PermanentSourceError, TransientSourceError
from connectors.http import HttpClient
from hub.masking import mask_text
from hub.settings import MailSettings
from hub.store.db import session_scope
from hub.store.models import AlertOutbox
from hub.timeutil import utcnow

log = logging.getLogger(__name__)

# Alerts to reps; the ops alerts in the same outbox go to ops by their own settings.
MAIL_ALERT_KINDS = ("email_opened",)


class PermanentDeliveryError(RuntimeError):
    """Sending again will not help (recipient refused, bad chat id, bad credentials)."""


class Transport(Protocol):
    def send(self, alert: AlertOutbox) -> None:
        """Deliver or raise: PermanentDeliveryError, or any other exception for a retry."""


@dataclass
class SmtpTransport:
    host: str
    port: int
    from_addr: str
    security: str = "starttls"  # ssl | starttls | plain
    username: str = ""
    password: str = ""
    timeout_s: float = 30.0
    verify_tls: bool = True
    # Named in errors; the ops alerts (hub/ops) use the same transport with their own settings.
    credential_setting: str = "HUB_MAIL__SMTP_USERNAME and HUB_MAIL__SMTP_PASSWORD"

    def send(self, alert: AlertOutbox) -> None:
        message = EmailMessage()
        message["From"] = self.from_addr
        message["To"] = alert.recipient
        message["Subject"] = alert.subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = alert_message_id(alert.idempotency_key, self.from_addr)
        message["X-Hub-Alert-Key"] = alert.idempotency_key
        message.set_content(alert.body)
        context = ssl.create_default_context()
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        smtp_class = smtplib.SMTP_SSL if self.security == "ssl" else smtplib.SMTP
        kwargs = {"context": context} if self.security == "ssl" else {}
        try:
            with smtp_class(self.host, self.port, timeout=self.timeout_s, **kwargs) as smtp:
                if self.security == "starttls":
                    smtp.starttls(context=context)
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentDeliveryError(
                f"SMTP {self.host} refused the login ({exc.smtp_code}): check {self.credential_setting}"
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {code for code, _ in exc.recipients.values()}
            if all(500 <= code < 600 for code in codes):
                raise PermanentDeliveryError(f"SMTP {self.host} refused the recipient: {codes}") from None
            raise


def alert_message_id(idempotency_key: str, from_addr: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = from_addr.rpartition("@")[2] or "hub.local"
    return f"<alert-{digest}@{domain}>"


class TelegramTransport:
    """Bot API sendMessage; the recipient is the rep's chat id."""

    def __init__(
        self,
        bot_token: str,
        api_url: str = "https://api.telegram.org",
        timeout_s: float = 15.0,
        credential_setting: str = "HUB_MAIL__TELEGRAM_BOT_TOKEN",
    ):
        self.bot_token = bot_token
        self.http = HttpClient(
            f"{api_url.rstrip('/')}/bot{bot_token}/",
            source="telegram",
            credential_setting=credential_setting,
            timeout_s=timeout_s,
            max_retries=0,
        )

    def send(self, alert: AlertOutbox) -> None:
        payload = {"chat_id": alert.recipient, "text": f"{alert.subject}\n\n{alert.body}"}
        body = _post(self.http, "sendMessage", payload, self.bot_token)
        if isinstance(body, dict) and body.get("ok") is False:
            raise PermanentDeliveryError(f"telegram refused the message: {body.get('description')}")


class SlackTransport:
    """Incoming webhook: POST {"text": ...}; the URL itself is the credential."""

    def __init__(
        self,
        webhook_url: str,
        timeout_s: float = 15.0,
        credential_setting: str = "HUB_MAIL__SLACK_WEBHOOK_URL",
    ):
        self.webhook_url = webhook_url
        self.http = HttpClient(
            webhook_url,
            source="slack",
            credential_setting=credential_setting,
            timeout_s=timeout_s,
            max_retries=0,
        )

    def send(self, alert: AlertOutbox) -> None:
        _post(self.http, self.webhook_url, {"text": f"*{alert.subject}*\n{alert.body}"}, self.webhook_url)


def _post(http: HttpClient, path: str, payload: dict[str, object], secret: str) -> object:
    """POST and decode; the URL carries the credential (bot token, webhook path), so it is
    taken out of every error message before the message is stored or logged."""
    try:
        response = http.post_json(path, payload)
    except PermanentSourceError as exc:
        raise PermanentDeliveryError(_redact(str(exc), secret)) from None
    except TransientSourceError as exc:
        raise TransientSourceError(_redact(str(exc), secret)) from None
    try:
        return response.json()
    except ValueError:
        return response.text


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "<secret>") if secret else text


def transports_from_settings(mail: MailSettings) -> dict[str, Transport]:
    transports: dict[str, Transport] = {}
    if mail.smtp_host:
        transports["smtp"] = SmtpTransport(
            host=mail.smtp_host,
            port=mail.smtp_port,
            from_addr=mail.smtp_from,
            security=mail.smtp_security,
            username=mail.smtp_username,
            password=mail.smtp_password,
            timeout_s=mail.smtp_timeout_s,
            verify_tls=mail.verify_tls,
        )
    if mail.telegram_bot_token:
        transports["telegram"] = TelegramTransport(mail.telegram_bot_token, mail.telegram_api_url)
    if mail.slack_webhook_url:
        transports["slack"] = SlackTransport(mail.slack_webhook_url)
    return transports


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"sent": self.sent, "retried": self.retried, "failed": self.failed}


@dataclass
class RetryPolicy:
    max_attempts: int = 8
    backoff_s: float = 5.0
    backoff_max_s: float = 900.0
    # How long a claimed row is left alone before a restarted deliverer takes it again.
    lease_s: float = 300.0

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempts - 1)))


def deliver_pending(
    database_url: str,
    transports: Mapping[str, Transport],
    policy: RetryPolicy | None = None,
    *,
    now: datetime | None = None,
    limit: int = 100,
    kinds: tuple[str, ...] = MAIL_ALERT_KINDS,
) -> DeliveryStats:
    """Send every due alert of `kinds` once. Rows of a channel without a transport stay pending;
    ops alerts (other kinds, other recipients) are left to hub.ops.alerts. Rows are claimed one
    at a time, right before sending, so a crash leaves at most one row in doubt."""
    policy = policy or RetryPolicy()
    now = now or utcnow()
    stats = DeliveryStats()
    for alert_id in _due_ids(database_url, list(transports), kinds, now, limit):
        alert = _claim(database_url, alert_id, policy, now)
        if alert is None:
            continue  # another deliverer took it
        try:
            transports[alert.channel].send(alert)
        except PermanentDeliveryError as exc:
            _finish(database_url, alert.id, "failed", str(exc), None)
            stats.failed += 1
            stats.errors.append(mask_text(str(exc)))
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if alert.attempts >= policy.max_attempts:
                _finish(
                    database_url, alert.id, "failed", f"gave up after {alert.attempts} attempts: {reason}"
                )
                stats.failed += 1
            else:
                _finish(database_url, alert.id, "pending", reason, utcnow() + policy.delay(alert.attempts))
                stats.retried += 1
            stats.errors.append(mask_text(reason))
            log.warning(
                "alert %s not delivered (attempt %s): %s", alert.id, alert.attempts, mask_text(reason)
            )
        else:
            _finish(database_url, alert.id, "sent", None, None)
            stats.sent += 1
    return stats


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(
        AlertOutbox.status.in_(("pending", "sending")),
        or_(AlertOutbox.next_attempt_at.is_(None), AlertOutbox.next_attempt_at <= now),
    )


def _due_ids(
    database_url: str, channels: list[str], kinds: tuple[str, ...], now: datetime, limit: int
) -> list[int]:
    if not channels:
        return []
    with session_scope(database_url) as session:
        return list(
            session.scalars(
                select(AlertOutbox.id)
                .where(_due(now), AlertOutbox.channel.in_(channels), AlertOutbox.kind.in_(kinds))
                .order_by(AlertOutbox.id)
                .limit(limit)
            )
        )


def _claim(database_url: str, alert_id: int, policy: RetryPolicy, now: datetime) -> AlertOutbox | None:
    """Move one due row to "sending" with a lease by a conditional UPDATE: of two deliverers
    only one claims it (the other's UPDATE matches nothing)."""
    with session_scope(database_url) as session:
        result = session.execute(
            update(AlertOutbox)
            .where(AlertOutbox.id == alert_id, _due(now))
            .values(
                status="sending",
                attempts=AlertOutbox.attempts + 1,
                next_attempt_at=now + timedelta(seconds=policy.lease_s),
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        row = session.get(AlertOutbox, alert_id)
        if row is None:
            return None
        session.refresh(row)
        session.expunge(row)
        return row


def _finish(
    database_url: str, alert_id: int, status: str, error: str | None, next_attempt_at: datetime | None = None
) -> None:
    with session_scope(database_url) as session:
        row = session.get(AlertOutbox, alert_id)
        if row is None:
            return
        row.status = status
        row.last_error = error[:2000] if error else None
        row.next_attempt_at = next_attempt_at
        if status == "sent":
            row.sent_at = utcnow()
