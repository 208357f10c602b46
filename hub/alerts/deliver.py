"""The alert deliverer: claims due outbox rows, sends each by its channel (SMTP, Telegram bot
API, Slack incoming webhook) and records the outcome; failures are retried with backoff.

Exactly once: a row is claimed (status "sending", attempts + 1, a lease) in its own
transaction before it is sent and marked "sent" right after, so a restart resends nothing
that was confirmed and skips nothing pending. Only a crash between the server accepting a
message and the "sent" commit can repeat it, after the lease; the SMTP Message-ID is derived
from the idempotency key so mail clients drop such a repeat."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Protocol

from sqlalchemy import ColumnElement, and_, func, or_, select, update

from connectors.errors import PermanentSourceError, TransientSourceError
from connectors.http import HttpClient
from hub.alerts import templates
from hub.masking import mask_text
from hub.settings import MailSettings
from hub.store.db import session_scope
from hub.store.models import AlertOutbox
from hub.timeutil import as_utc, utcnow

log = logging.getLogger(__name__)

# Alerts to reps; the ops alerts in the same outbox go to ops by their own settings.
MAIL_ALERT_KINDS = ("email_opened",)


class PermanentDeliveryError(RuntimeError):
    """Sending again will not help (recipient refused, bad chat id, bad credentials)."""


class Transport(Protocol):
    def send(self, alert: AlertOutbox) -> None:
        """Deliver or raise: PermanentDeliveryError, or any other exception for a retry."""


def rendered(alert: AlertOutbox) -> templates.Rendered:
    """The alert as its channel shows it: rendered from its facts (`details`) in the rep's
    language, or its stored subject and body (ops alerts)."""
    details = alert.details or {}
    if details.get("template") == templates.EMAIL_OPENED:
        return templates.render(details, alert.channel)
    return templates.Rendered(alert.subject, alert.body)


def email_message(
    alert: AlertOutbox, from_addr: str, transfer_encoding: str = "quoted-printable"
) -> EmailMessage:
    """The alert as an email: plain text, and HTML beside it when the alert has markup. The
    Message-ID is derived from the idempotency key, so a repeat after a crash is one message to
    mail clients."""
    content = rendered(alert)
    message = EmailMessage()
    message["From"] = from_addr
    message["To"] = alert.recipient
    message["Subject"] = content.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = alert_message_id(alert.idempotency_key, from_addr)
    message["X-Hub-Alert-Key"] = alert.idempotency_key
    message.set_content(content.text, cte=transfer_encoding)
    if content.markup:
        message.add_alternative(content.markup, subtype="html", cte=transfer_encoding)
    return message


# A kept SMTP connection unused this long is replaced rather than trusted: servers drop idle
# sessions (Postfix after 300 s) and NATs forget them silently, which would stall an alert
# until the socket timeout.
SMTP_REUSE_S = 60.0


@dataclass
class SmtpTransport:
    """SMTP with one connection kept open across alerts. A kept connection the server has
    closed fails before the message is handed over (at MAIL FROM), so it is replaced and the
    alert sent on the new one; a failure once DATA has begun is left to the outbox's retry
    (the server may hold the message: the stable Message-ID makes a repeat harmless)."""

    host: str
    port: int
    from_addr: str
    security: str = "starttls"  # ssl | starttls | plain
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_s: float = 30.0
    verify_tls: bool = True
    # Named in errors; the ops alerts (hub/ops) use the same transport with their own settings.
    credential_setting: str = "HUB_MAIL__SMTP_USERNAME and HUB_MAIL__SMTP_PASSWORD"
    security_setting: str = "HUB_MAIL__SMTP_SECURITY"
    connections: int = field(default=0, init=False)  # opened so far (the benchmark reports it)
    _smtp: smtplib.SMTP | None = field(default=None, init=False, repr=False)
    _used_at: float = field(default=0.0, init=False, repr=False)

    def send(self, alert: AlertOutbox) -> None:
        message = email_message(alert, self.from_addr)
        if self._smtp is not None and time.monotonic() - self._used_at > SMTP_REUSE_S:
            self.close()
        reused = self._smtp is not None
        try:
            smtp = self._connection()
            try:
                self._envelope(smtp, alert.recipient, message)
            except (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError, _ServerClosing):
                if not reused:
                    raise
                # The kept connection had gone away; nothing was accepted on it.
                self.close()
                smtp = self._connection()
                self._envelope(smtp, alert.recipient, message)
            self._data(smtp, message)
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            raise PermanentDeliveryError(
                f"SMTP {self.host} refused the login ({exc.smtp_code}): check {self.credential_setting}"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            self.close()
            raise PermanentDeliveryError(
                f"SMTP {self.host}:{self.port}: {exc}; check {self.security_setting} (ssl for port 465, "
                "starttls for 587, plain only for a local relay)"
            ) from None
        except ssl.SSLError as exc:
            self.close()
            raise PermanentDeliveryError(
                f"SMTP {self.host}:{self.port}: TLS failed ({exc.reason or exc}); check {self.security_setting} "
                "(ssl for port 465, starttls for 587) and that the server's certificate is trusted"
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {code for code, _ in exc.recipients.values()}
            if all(500 <= code < 600 for code in codes):
                raise PermanentDeliveryError(f"SMTP {self.host} refused the recipient: {codes}") from None
            raise
        except _ServerClosing:
            self.close()
            raise
        except smtplib.SMTPResponseException:
            raise  # refused and reset (RSET): the session is still usable; the outbox retries
        except BaseException:
            self.close()
            raise
        self._used_at = time.monotonic()

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        context = ssl.create_default_context()
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        try:
            smtp.ehlo()
            if self.security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username:
                smtp.login(self.username, self.password)
        except BaseException:
            with contextlib.suppress(Exception):
                smtp.close()
            raise
        self.connections += 1
        self._smtp = smtp
        return smtp

    def _envelope(self, smtp: smtplib.SMTP, recipient: str, message: EmailMessage) -> None:
        """MAIL FROM and RCPT TO: up to here nothing is accepted, so failing is safe to repeat."""
        options = ["SMTPUTF8", "BODY=8BITMIME"] if _international(self.from_addr, recipient) else []
        code, reply = smtp.mail(self.from_addr, options)
        if code == 421:
            raise _ServerClosing(reply)
        if code != 250:
            smtp.rset()
            raise smtplib.SMTPSenderRefused(code, reply, self.from_addr)
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            smtp.rset()
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})

    def _data(self, smtp: smtplib.SMTP, message: EmailMessage) -> None:
        utf8 = _international(self.from_addr, str(message["To"]))
        payload = message.as_bytes(policy=message.policy.clone(utf8=utf8, linesep="\r\n"))
        code, reply = smtp.data(payload)
        if code != 250:
            smtp.rset()
            raise smtplib.SMTPDataError(code, reply)

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            with contextlib.suppress(Exception):
                smtp.close()


class _ServerClosing(smtplib.SMTPResponseException):
    def __init__(self, reply: bytes) -> None:
        super().__init__(421, reply)


def _international(*addresses: str) -> bool:
    return not all(a.isascii() for a in addresses)


@dataclass
class EmlFolderTransport:
    """Email alerts written as .eml files into a folder instead of sent (the demo; trying the hub
    without a mail server): any mail program opens them. The file name comes from the
    idempotency key, so a repeated delivery rewrites the same file."""

    folder: str
    from_addr: str

    def send(self, alert: AlertOutbox) -> None:
        # 8bit: the file reads as plain UTF-8 in a text editor too.
        message = email_message(alert, self.from_addr, transfer_encoding="8bit")
        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(alert.idempotency_key.encode()).hexdigest()[:12]
        created = as_utc(alert.created_at) if alert.created_at else utcnow()
        path = folder / f"{created:%Y%m%d-%H%M%S}-{digest}.eml"
        partial = path.with_suffix(".eml.part")
        partial.write_bytes(message.as_bytes(policy=message.policy.clone(utf8=True)))
        os.replace(partial, path)


def alert_message_id(idempotency_key: str, from_addr: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = from_addr.rpartition("@")[2] or "hub.local"
    return f"<alert-{digest}@{domain}>"


class TelegramTransport:
    """Bot API sendMessage with parse_mode HTML; the recipient is the rep's chat id."""

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
        content = rendered(alert)
        payload: dict[str, object] = {"chat_id": alert.recipient}
        if content.markup:
            payload.update(text=content.markup, parse_mode="HTML", link_preview_options={"is_disabled": True})
        else:
            payload["text"] = f"{content.subject}\n\n{content.text}"
        body = _post(self.http, "sendMessage", payload, self.bot_token)
        if isinstance(body, dict) and body.get("ok") is False:
            raise PermanentDeliveryError(f"telegram refused the message: {body.get('description')}")


class SlackTransport:
    """Incoming webhook: POST {"text": mrkdwn}; the URL itself is the credential."""

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
        content = rendered(alert)
        text = content.markup or f"*{content.subject}*\n{content.text}"
        _post(self.http, self.webhook_url, {"text": text}, self.webhook_url)


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
    elif mail.alert_eml_dir:
        transports["smtp"] = EmlFolderTransport(mail.alert_eml_dir, mail.smtp_from)
    if mail.telegram_bot_token:
        transports["telegram"] = TelegramTransport(mail.telegram_bot_token, mail.telegram_api_url)
    if mail.slack_webhook_url:
        transports["slack"] = SlackTransport(mail.slack_webhook_url)
    return transports


def close_transports(transports: Mapping[str, Transport]) -> None:
    """Close kept connections (SMTP); transports without any are left alone."""
    for transport in transports.values():
        close = getattr(transport, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()


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


def next_due_at(
    database_url: str, channels: list[str], kinds: tuple[str, ...] = MAIL_ALERT_KINDS
) -> datetime | None:
    """When the earliest waiting alert of these channels falls due (a retry's backoff, quiet
    hours, a lease); None when nothing waits."""
    if not channels:
        return None
    with session_scope(database_url) as session:
        value = session.scalar(
            select(func.min(AlertOutbox.next_attempt_at)).where(
                AlertOutbox.status.in_(("pending", "sending")),
                AlertOutbox.channel.in_(channels),
                AlertOutbox.kind.in_(kinds),
            )
        )
    return as_utc(value) if value is not None else None


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
    only one claims it (the other's UPDATE matches nothing). The row comes back from the same
    statement (RETURNING: SQLite 3.35+, PostgreSQL), one round trip on the alert's path."""
    with session_scope(database_url) as session:
        row = session.scalars(
            update(AlertOutbox)
            .where(AlertOutbox.id == alert_id, _due(now))
            .values(
                status="sending",
                attempts=AlertOutbox.attempts + 1,
                next_attempt_at=now + timedelta(seconds=policy.lease_s),
            )
            .returning(AlertOutbox),
            execution_options={"synchronize_session": False},
        ).first()
        if row is None:
            return None
        session.expunge(row)
        return row


def _finish(
    database_url: str, alert_id: int, status: str, error: str | None, next_attempt_at: datetime | None = None
) -> None:
    with session_scope(database_url) as session:
        session.execute(
            update(AlertOutbox)
            .where(AlertOutbox.id == alert_id)
            .values(
                status=status,
                last_error=error[:2000] if error else None,
                next_attempt_at=next_attempt_at,
                **({"sent_at": utcnow()} if status == "sent" else {}),
            ),
            execution_options={"synchronize_session": False},
        )
