"""The mail pipeline in one process: read sent mail and receipts from the saved cursors,
correlate, record, deliver alerts; and `MailWatcher`, which repeats that on every IMAP IDLE
notification, re-IDLEs well inside 29 minutes and reconnects with backoff when dropped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import CredentialError
from connectors.imap import NETWORK_ERRORS, ConnectionDropped, IdleSession, ImapMailbox, file_source
from hub.alerts.deliver import DeliveryStats, RetryPolicy, Transport, deliver_pending
from hub.ingest.mail import MailSource, correlate_pending, sync_receipts, sync_sent
from hub.ingest.stats import IngestStats
from hub.settings import MailSettings
from hub.store.cursors import load_cursor, path_cursor_name
from hub.store.db import session_scope

log = logging.getLogger(__name__)

# Passes run back to back while mail keeps arriving, before IDLE is entered again.
MAX_PASSES_PER_WAKEUP = 5
# Longer than Dovecot's 0.5 s notification delay and its 1 s maildir sync granularity.
POST_PASS_IDLE_S = 1.5


@dataclass
class MailPassResult:
    """What one pass did: receipts and sent mail read, queue retried, alerts delivered."""

    receipts: IngestStats = field(default_factory=IngestStats)
    sent: IngestStats = field(default_factory=IngestStats)
    queue: IngestStats = field(default_factory=IngestStats)
    delivery: DeliveryStats = field(default_factory=DeliveryStats)
    rescanned: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "receipts": self.receipts.as_dict(),
            "sent": self.sent.as_dict(),
            "queue": self.queue.as_dict(),
            "alerts": self.delivery.as_dict(),
            "rescanned": self.rescanned,
        }


def imap_mailbox(mail: MailSettings) -> ImapMailbox:
    return ImapMailbox(
        mail.imap_host,
        mail.imap_username,
        mail.imap_password,
        port=mail.imap_port,
        security=mail.imap_security,
        timeout_s=mail.imap_timeout_s,
        verify_tls=mail.verify_tls,
    )


def retry_policy(mail: MailSettings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=mail.alert_max_attempts,
        backoff_s=mail.alert_backoff_s,
        backoff_max_s=mail.alert_backoff_max_s,
    )


def mail_sources(
    mail: MailSettings, mailbox: ImapMailbox | None
) -> tuple[list[MailSource], list[MailSource]]:
    """(sent sources, receipt sources) configured: IMAP folders and/or offline maildir/mbox."""
    sent: list[MailSource] = []
    receipts: list[MailSource] = []
    if mailbox is not None:
        if mail.sent_folder:
            sent.append(mailbox.folder(mail.sent_folder))
        receipts.append(mailbox.folder(mail.receipts_folder, mail.processed_folder))
    if mail.sent_maildir:
        sent.append(file_source(mail.sent_maildir, name=path_cursor_name("file:sent", mail.sent_maildir)))
    if mail.maildir:
        receipts.append(file_source(mail.maildir, name=path_cursor_name("file:receipts", mail.maildir)))
    return sent, receipts


def run_mail_pass(
    database_url: str,
    mail: MailSettings,
    mailbox: ImapMailbox | None,
    transports: Mapping[str, Transport] | None = None,
    retry_queue: bool | None = None,
) -> MailPassResult:
    """Sent mail first (so receipts find their email), then receipts, then the waiting queue
    (by default only when new sent mail was recorded: nothing else can match it), then alert
    delivery (skipped when `transports` is None)."""
    result = MailPassResult()
    sent_sources, receipt_sources = mail_sources(mail, mailbox)
    for source in sent_sources:
        result.sent.merge(sync_sent(database_url, source))
    for source in receipt_sources:
        result.receipts.merge(sync_receipts(database_url, source, mail))
        result.rescanned = result.rescanned or bool(getattr(source, "rescanned", False))
    if retry_queue or (retry_queue is None and result.sent.written > 0):
        result.queue = correlate_pending(database_url, mail)
    if transports is not None:
        result.delivery = deliver_pending(database_url, transports, retry_policy(mail))
    return result


class MailWatcher:
    """Holds IMAP IDLE on the receipts folder and runs a pass on every notification. Any drop
    (BYE, EOF, timeout, IDLE returning at once) closes the connection, waits with exponential
    backoff and reconnects; the pass after reconnecting catches up from the saved cursors."""

    def __init__(
        self,
        database_url: str,
        mail: MailSettings,
        transports: Mapping[str, Transport],
        *,
        on_pass: Callable[[MailPassResult], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database_url = database_url
        self.mail = mail
        self.transports = transports
        self.on_pass = on_pass
        self.clock = clock
        self.mailbox = imap_mailbox(mail)
        self.stop_event = threading.Event()
        self.reconnects = 0
        self.passes = 0
        self.last_error: str | None = None

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                self._session()
                backoff = 0.5
            except CredentialError:
                raise
            except Exception as exc:
                # A dropped connection, or the store briefly unavailable: a long-running watcher
                # waits and starts over from the saved cursors rather than dying.
                if not isinstance(exc, (ConnectionDropped, *NETWORK_ERRORS)):
                    log.exception("mail watcher: unexpected error")
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.mailbox.drop()
                if self.stop_event.is_set():
                    break
                self.reconnects += 1
                log.warning("mail watcher: %s; reconnecting in %.1fs", self.last_error, backoff)
                self.stop_event.wait(backoff)
                backoff = min(self.mail.reconnect_max_s, backoff * 2)
        self.mailbox.close()

    def _session(self) -> None:
        """One connection's life: catch up, then IDLE until dropped or stopped."""
        self._pass()
        idle = IdleSession(self.mailbox.client, self.mail.idle_check_s)
        idle_since = self.clock()
        recheck = True
        while not self.stop_event.is_set():
            # Each wait is one IDLE command of at most idle_check_s: re-issued far inside the
            # 29 minutes after which servers may drop an IDLE client (RFC 2177). After a pass
            # that found mail, a short IDLE is followed by one more pass whatever it reports:
            # a message that lands while a pass ends may be announced neither by the SELECT nor
            # by the IDLE that follow (Dovecot's maildir sync has 1-second granularity).
            responses = idle.wait(POST_PASS_IDLE_S if recheck else None)
            if responses or recheck or self.clock() - idle_since >= self.mail.idle_renew_s:
                # The periodic pass also reads the Sent folder, which IDLE on receipts misses.
                found = self._pass()
                idle_since = self.clock()
                recheck = found > 0
            else:
                # Alerts whose retry backoff or quiet hours ended while the mailbox was quiet.
                deliver_pending(self.database_url, self.transports, retry_policy(self.mail))

    def _pass(self) -> int:
        """Run passes until the folder holds nothing past the cursor. A receipt that lands
        during a pass is announced in a response the pass does not look at, so IDLE would not
        report it: after each pass SELECT the folder (IDLE then reports anything newer) and
        compare its UIDNEXT with the cursor."""
        folder = self.mailbox.folder(self.mail.receipts_folder, self.mail.processed_folder)
        found = 0
        for _ in range(MAX_PASSES_PER_WAKEUP):
            result = run_mail_pass(self.database_url, self.mail, self.mailbox, self.transports)
            found += result.receipts.rows_in
            self.passes += 1
            if self.on_pass is not None:
                try:
                    self.on_pass(result)
                except Exception:  # reporting must never stop the watcher
                    log.exception("mail watcher: reporting the pass failed")
            uidnext = folder.select_uidnext()
            with session_scope(self.database_url) as session:
                last_uid = int(load_cursor(session, folder.name).get("last_uid", 0))
            if uidnext is None or uidnext - 1 <= last_uid:
                break
        return found
