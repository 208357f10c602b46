"""The mail pipeline in one process: a pass (sent mail, receipts, the waiting queue, delivery) from
the saved cursors, and `MailWatcher` (`hub watch-mail`): IMAP IDLE on every configured mailbox,
one connection and thread each, with alerts delivered by one dispatcher the moment they commit.

Where an alert's time goes, and what this module does about each part (docs/mail.md, "Latency"):
the server's IDLE notification (Dovecot waits 0.5 s after the file lands: the floor), leaving
IDLE and fetching (one UID FETCH, no SEARCH), recording (one transaction with the cursor), and
sending (a kept SMTP connection). IDLE is entered again before the fetched batch is recorded, so
mail landing meanwhile is announced at once instead of waiting for a re-check."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import CredentialError
from connectors.imap import (
    NETWORK_ERRORS,
    ConnectionDropped,
    ImapFolderSource,
    ImapMailbox,
    file_source,
)
from hub.alerts.deliver import (
    DeliveryStats,
    RetryPolicy,
    Transport,
    close_transports,
    deliver_pending,
    next_due_at,
)
from hub.alerts.health import delivery_verdict
from hub.ingest.mail import MailSource, correlate_pending, record_receipts, sync_receipts, sync_sent
from hub.ingest.stats import IngestStats
from hub.ops.alerts import OpsChannels, deliver_ops_alerts, enqueue_undeliverable_notice
from hub.ops.checks import Verdict
from hub.settings import MailboxSettings, MailSettings, SettingsError
from hub.store.cursors import load_cursor, path_cursor_name
from hub.store.db import session_scope
from hub.timeutil import utcnow

log = logging.getLogger(__name__)

# Between kicks the dispatcher still looks at the outbox this often, for alerts other processes
# queued (a scheduled `mail_receipts` run); retries and quiet hours wake it when they fall due.
DISPATCHER_MAX_SLEEP_S = 60.0


@dataclass
class MailPassResult:
    """What one pass did: receipts and sent mail read, queue retried, alerts delivered."""

    receipts: IngestStats = field(default_factory=IngestStats)
    sent: IngestStats = field(default_factory=IngestStats)
    queue: IngestStats = field(default_factory=IngestStats)
    delivery: DeliveryStats = field(default_factory=DeliveryStats)
    rescanned: bool = False
    mailbox: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "mailbox": self.mailbox,
            "receipts": self.receipts.as_dict(),
            "sent": self.sent.as_dict(),
            "queue": self.queue.as_dict(),
            "alerts": self.delivery.as_dict(),
            "rescanned": self.rescanned,
        }


def imap_mailbox(mail: MailSettings) -> ImapMailbox:
    """The single account of imap_host/imap_username (cursor names without a mailbox name)."""
    return ImapMailbox(
        mail.imap_host,
        mail.imap_username,
        mail.imap_password,
        port=mail.imap_port,
        security=mail.imap_security,
        timeout_s=mail.imap_timeout_s,
        verify_tls=mail.verify_tls,
        credential_setting="HUB_MAIL__IMAP_USERNAME and HUB_MAIL__IMAP_PASSWORD",
    )


def mailbox_password_variable(name: str) -> str:
    return f"HUB_MAIL__MAILBOX_PASSWORDS__{name.upper()}"


def listed_mailbox(mail: MailSettings, entry: MailboxSettings) -> ImapMailbox:
    """One entry of `mailboxes`, its password from HUB_MAIL__MAILBOX_PASSWORDS__<NAME>."""
    password = mail.mailbox_passwords.get(entry.name)
    if not password:
        raise SettingsError(
            f"mailbox {entry.name!r} ({entry.username}) has no password: set "
            f"{mailbox_password_variable(entry.name)} in the environment"
        )
    host = entry.host or mail.imap_host
    if not host:
        raise SettingsError(f"mailbox {entry.name!r} has no host: set its host or HUB_MAIL__IMAP_HOST")
    return ImapMailbox(
        host,
        entry.username,
        password,
        port=entry.port or mail.imap_port,
        security=entry.security or mail.imap_security,
        timeout_s=mail.imap_timeout_s,
        verify_tls=mail.verify_tls,
        name=entry.name,
        credential_setting=f"mailboxes[{entry.name}].username and {mailbox_password_variable(entry.name)}",
    )


def imap_mailboxes(mail: MailSettings) -> list[ImapMailbox]:
    """Every IMAP account to read: imap_host/imap_username when both are set, then `mailboxes`."""
    accounts = [imap_mailbox(mail)] if mail.imap_host and mail.imap_username else []
    return accounts + [listed_mailbox(mail, entry) for entry in mail.mailboxes]


def retry_policy(mail: MailSettings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=mail.alert_max_attempts,
        backoff_s=mail.alert_backoff_s,
        backoff_max_s=mail.alert_backoff_max_s,
    )


def _accounts(mailboxes: ImapMailbox | Sequence[ImapMailbox] | None) -> Sequence[ImapMailbox]:
    if mailboxes is None:
        return ()
    return [mailboxes] if isinstance(mailboxes, ImapMailbox) else mailboxes


def mail_sources(
    mail: MailSettings, mailboxes: ImapMailbox | Sequence[ImapMailbox] | None = (), files: bool = True
) -> tuple[list[MailSource], list[MailSource]]:
    """(sent sources, receipt sources) configured: IMAP folders and/or offline maildir/mbox."""
    sent: list[MailSource] = []
    receipts: list[MailSource] = []
    for mailbox in _accounts(mailboxes):
        if mail.sent_folder:
            sent.append(mailbox.folder(mail.sent_folder))
        receipts.append(mailbox.folder(mail.receipts_folder, mail.processed_folder))
    if files and mail.sent_maildir:
        sent.append(file_source(mail.sent_maildir, name=path_cursor_name("file:sent", mail.sent_maildir)))
    if files and mail.maildir:
        receipts.append(file_source(mail.maildir, name=path_cursor_name("file:receipts", mail.maildir)))
    return sent, receipts


def run_mail_pass(
    database_url: str,
    mail: MailSettings,
    mailboxes: ImapMailbox | Sequence[ImapMailbox] | None,
    transports: Mapping[str, Transport] | None = None,
    retry_queue: bool | None = None,
    files: bool = True,
) -> MailPassResult:
    """Sent mail first (so receipts find their email), then receipts, then the waiting queue
    (by default only when new sent mail was recorded: nothing else can match it), then alert
    delivery (skipped when `transports` is None)."""
    result = MailPassResult()
    sent_sources, receipt_sources = mail_sources(mail, mailboxes, files)
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


class AlertDispatcher:
    """Sends alerts in this process the moment a pass commits them: `kick()` wakes it. One
    thread owns the transports, so the SMTP connection is kept across alerts and no mailbox
    thread ever waits for a mail server. Between kicks it sleeps until the earliest retry or
    end of quiet hours (at most DISPATCHER_MAX_SLEEP_S)."""

    def __init__(
        self,
        database_url: str,
        transports: Mapping[str, Transport],
        policy: RetryPolicy,
        *,
        on_delivery: Callable[[DeliveryStats], None] | None = None,
        on_undeliverable: Callable[[Verdict], None] | None = None,
    ) -> None:
        self.database_url = database_url
        self.transports = transports
        self.policy = policy
        self.on_delivery = on_delivery
        self.on_undeliverable = on_undeliverable
        self._health_due = True  # judged on the first round, then after rounds with failures
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def kick(self) -> None:
        self._wake.set()

    def start(self) -> AlertDispatcher:
        self._thread = threading.Thread(target=self._run, name="alert-dispatcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        sleep_s = 0.0
        try:
            while not self._stop.is_set():
                self._wake.wait(sleep_s)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    sleep_s = self.deliver_due()
                except Exception as exc:  # the store briefly away: try again shortly
                    log.warning("alert dispatcher: %s: %s", type(exc).__name__, exc)
                    sleep_s = 1.0
        finally:
            close_transports(self.transports)

    def deliver_due(self) -> float:
        """Send everything due; returns how long to sleep before the next look."""
        while True:
            stats = deliver_pending(self.database_url, self.transports, self.policy)
            done = stats.sent + stats.retried + stats.failed
            if done and self.on_delivery is not None:
                try:
                    self.on_delivery(stats)
                except Exception:
                    log.exception("alert dispatcher: reporting a delivery failed")
            self._health_due = self._health_due or bool(stats.failed or stats.retried)
            if done < 100 or self._stop.is_set():  # deliver_pending's batch
                break
        if self._health_due:
            self._health_due = False
            self.judge()
        due = next_due_at(self.database_url, list(self.transports))
        if due is None:
            return DISPATCHER_MAX_SLEEP_S
        return min(DISPATCHER_MAX_SLEEP_S, max(0.05, (due - utcnow()).total_seconds()))

    def judge(self) -> Verdict:
        """Whether alerts reach reps; a failing verdict is logged and handed to on_undeliverable."""
        with session_scope(self.database_url) as session:
            verdict = delivery_verdict(session, list(self.transports))
        if not verdict.passed:
            log.error("%s", verdict.description)
            if self.on_undeliverable is not None:
                try:
                    self.on_undeliverable(verdict)
                except Exception:
                    log.exception("alert dispatcher: telling ops failed")
        return verdict


def ops_notifier(database_url: str, channels: OpsChannels) -> Callable[[Verdict], None]:
    """Tells ops (hub/ops/alerts.py) that reps' alerts are not delivered, once a day per problem."""

    def notify(verdict: Verdict) -> None:
        if not channels.recipients():
            return
        with session_scope(database_url) as session:
            enqueue_undeliverable_notice(
                session, verdict.description, str(verdict.metadata.get("problems", "")), channels
            )
        deliver_ops_alerts(database_url, channels)

    return notify


class MailboxWatcher:
    """IDLE on one mailbox's receipts folder, over two connections: one that only holds IDLE
    and never leaves it (except to re-issue it every idle_check_s), and one for the commands.
    Dovecot announces in IDLE only what lands after IDLE began, and not what landed after the
    connection's last command (measured: a receipt in that gap stayed unannounced for more than
    45 s), so a single connection alternating between FETCH and IDLE loses receipts in the gap.
    Here every fetch runs while the watching connection is armed, so nothing falls between.

    On news of new mail: fetch what is past the cursor (one UID FETCH), record each receipt with
    its cursor, kick the dispatcher. Any drop (BYE, EOF, timeout, IDLE returning at once) closes
    both connections, waits with exponential backoff and reconnects; the session after
    reconnecting catches up from the cursor saved in the store. A refused login stops this
    mailbox only."""

    def __init__(
        self,
        database_url: str,
        mail: MailSettings,
        mailbox: ImapMailbox,
        dispatcher: AlertDispatcher,
        stop_event: threading.Event,
        *,
        on_pass: Callable[[MailPassResult], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database_url = database_url
        self.mail = mail
        self.mailbox = mailbox
        self.watching = mailbox.sibling()
        self.dispatcher = dispatcher
        self.stop_event = stop_event
        self.on_pass = on_pass
        self.clock = clock
        self.label = mailbox.name or mailbox.username
        self.passes = 0
        self.reconnects = 0
        self.last_error: str | None = None
        self.failed: CredentialError | None = None
        self.idling = threading.Event()  # set once the first IDLE is armed (the benchmark waits for it)

    def run(self) -> None:
        backoff = 0.5
        while not self.stop_event.is_set():
            try:
                self._session()
                backoff = 0.5
            except CredentialError as exc:
                self.failed = exc
                self.last_error = str(exc)
                log.error("mailbox %s: %s; this mailbox is no longer watched", self.label, exc)
                break
            except Exception as exc:
                # A dropped connection, or the store briefly unavailable: a long-running watcher
                # waits and starts over from the saved cursors rather than dying.
                if not isinstance(exc, (ConnectionDropped, SettingsError, *NETWORK_ERRORS)):
                    log.exception("mailbox %s: unexpected error", self.label)
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.mailbox.drop()
                self.watching.drop()
                if self.stop_event.is_set():
                    break
                self.reconnects += 1
                log.warning("mailbox %s: %s; reconnecting in %.1fs", self.label, self.last_error, backoff)
                self.stop_event.wait(backoff)
                backoff = min(self.mail.reconnect_max_s, backoff * 2)
        self.watching.close()
        self.mailbox.close()

    def _session(self) -> None:
        """One pair of connections' life: arm IDLE, catch up, then fetch on every announcement
        until dropped or stopped."""
        folder = self.mailbox.folder(self.mail.receipts_folder, self.mail.processed_folder)
        idle = self.watching.watch(self.mail.receipts_folder, self.mail.idle_check_s)
        idle.start()
        armed_at = renewed_at = self.clock()
        try:
            # Armed first: whatever lands from now on is announced; the pass reads what came before.
            self._full_pass()
            uidvalidity, last_uid = self._cursor(folder)
            self.idling.set()
            fetch = True
            while not self.stop_event.is_set():
                if not fetch:
                    # Each IDLE command lasts at most idle_check_s before it is re-issued, far
                    # inside the 29 minutes after which servers may drop it (RFC 2177).
                    left = self.mail.idle_check_s - (self.clock() - armed_at)
                    if left > 0:
                        fetch = idle.wait(left).new_mail
                        if self.stop_event.is_set():
                            break
                    if not fetch and self.clock() - armed_at >= self.mail.idle_check_s:
                        idle.done()
                        idle.start()
                        armed_at = self.clock()
                        # Mail that landed while IDLE was re-issued is announced by nobody: look.
                        fetch = True
                    if not fetch:
                        continue
                if self.clock() - renewed_at >= self.mail.idle_renew_s:
                    # The periodic pass also reads the Sent folder, which IDLE on receipts misses.
                    self._full_pass()
                    uidvalidity, last_uid = self._cursor(folder)
                    renewed_at = self.clock()
                fetched = folder.fetch_after(last_uid, uidvalidity)
                uncorrelated = False
                for message in fetched.messages:
                    # Each receipt commits with its own cursor and is alerted at once: the first
                    # of a batch does not wait for the others to be recorded.
                    assert message.uid is not None
                    stats = record_receipts(
                        self.database_url,
                        folder.name,
                        [message],
                        folder.cursor(uidvalidity, message.uid),
                        self.mail,
                    )
                    last_uid = message.uid
                    if stats.written:
                        self.dispatcher.kick()
                    uncorrelated = uncorrelated or bool(stats.extra.get("uncorrelated"))
                    self._report(MailPassResult(receipts=stats, mailbox=self.label))
                if fetched.messages:
                    folder.after_commit(fetched.messages)
                if uncorrelated and self.mail.sent_folder:
                    # A receipt came before its sent email was read: read Sent now, retry the queue.
                    self._full_pass()
                    uidvalidity, last_uid = self._cursor(folder)
                fetch = fetched.more or folder.announced_new_mail()
        finally:
            if idle.active:
                with contextlib.suppress(ConnectionDropped):
                    idle.done()

    def _full_pass(self) -> None:
        """Sent folder, then receipts from the saved cursor, then the queue; leaves the receipts
        folder selected (it is read last)."""
        result = run_mail_pass(self.database_url, self.mail, self.mailbox, files=False)
        result.mailbox = self.label
        if result.receipts.written or result.queue.written:
            self.dispatcher.kick()
        self._report(result)

    def _cursor(self, folder: ImapFolderSource) -> tuple[int, int]:
        """(UIDVALIDITY, last UID recorded) of the receipts folder, as the store has them."""
        with session_scope(self.database_url) as session:
            cursor = load_cursor(session, folder.name)
        uidvalidity = folder.select()
        if cursor.get("uidvalidity") != uidvalidity:
            return uidvalidity, 0  # nothing read yet (a changed UIDVALIDITY was rescanned by the pass)
        return uidvalidity, int(cursor.get("last_uid", 0))

    def _report(self, result: MailPassResult) -> None:
        self.passes += 1
        if self.on_pass is not None:
            try:
                self.on_pass(result)
            except Exception:  # reporting must never stop the watcher
                log.exception("mailbox %s: reporting the pass failed", self.label)


class MailWatcher:
    """`hub watch-mail`: a MailboxWatcher thread per IMAP account (imap_host/imap_username and
    every entry of `mailboxes`), and one AlertDispatcher for all of them. Threads are bounded by
    the configured mailboxes; each reconnects on its own, from its own cursor."""

    def __init__(
        self,
        database_url: str,
        mail: MailSettings,
        transports: Mapping[str, Transport],
        *,
        on_pass: Callable[[MailPassResult], None] | None = None,
        on_delivery: Callable[[DeliveryStats], None] | None = None,
        ops: OpsChannels | None = None,
        clock: Callable[[], float] = time.monotonic,
        mailboxes: Sequence[ImapMailbox] | None = None,
    ) -> None:
        self.database_url = database_url
        self.mail = mail
        self.transports = transports
        self.stop_event = threading.Event()
        self.dispatcher = AlertDispatcher(
            database_url,
            transports,
            retry_policy(mail),
            on_delivery=on_delivery,
            on_undeliverable=ops_notifier(database_url, ops) if ops is not None else None,
        )
        self._report_lock = threading.Lock()
        self._on_pass = on_pass
        accounts = list(mailboxes) if mailboxes is not None else imap_mailboxes(mail)
        if not accounts:
            raise SettingsError(
                "no IMAP mailbox to watch: set HUB_MAIL__IMAP_HOST and HUB_MAIL__IMAP_USERNAME, or list "
                "HUB_MAIL__MAILBOXES"
            )
        self.watchers = [
            MailboxWatcher(
                database_url,
                mail,
                account,
                self.dispatcher,
                self.stop_event,
                on_pass=self._report if on_pass is not None else None,
                clock=clock,
            )
            for account in accounts
        ]

    def _report(self, result: MailPassResult) -> None:
        # Passes of several mailboxes report one at a time (the Dagster instance, the console).
        with self._report_lock:
            assert self._on_pass is not None
            self._on_pass(result)

    @property
    def passes(self) -> int:
        return sum(w.passes for w in self.watchers)

    @property
    def reconnects(self) -> int:
        return sum(w.reconnects for w in self.watchers)

    @property
    def last_error(self) -> str | None:
        errors = [w.last_error for w in self.watchers if w.last_error]
        return errors[-1] if errors else None

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        """Watch until stop(); raises the login error when every mailbox was refused."""
        self.dispatcher.start()
        threads = [
            threading.Thread(target=w.run, name=f"mailbox-{w.label}", daemon=True) for w in self.watchers
        ]
        for thread in threads:
            thread.start()
        try:
            while not self.stop_event.is_set():
                if all(w.failed is not None for w in self.watchers):
                    break
                self.stop_event.wait(0.5)
        finally:
            self.stop_event.set()
            for thread in threads:
                thread.join(timeout=30)
            self.dispatcher.stop()
        failed = [w.failed for w in self.watchers if w.failed is not None]
        if failed and len(failed) == len(self.watchers):
            raise failed[0]
