"""Latency of the read-receipt alert: receipts APPENDed one by one to a real Dovecot while
`hub watch-mail`'s loop (MailWatcher) holds IDLE; for each, the time from the APPEND completing
(the receipt landed in the mailbox) to the alert arriving at an SMTP sink (aiosmtpd), beside the
time for the bare IDLE notification on a second connection in the same run (the floor).

    python -m bench.mail_latency --rows 200

Needs root (Dovecot runs as an unprivileged user through runuser) and dovecot-imapd.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from imapclient import IMAPClient

from hub.alerts.deliver import transports_from_settings
from hub.demo import mail_formats
from hub.ingest.mail import record_sent_email
from hub.ingest.mail_watch import MailWatcher
from hub.settings import MailSettings
from hub.store import migrate
from hub.store.db import dispose_engines, session_scope
from schemas.mail import SentEmail
from tests.local_server import free_port
from tests.mail.servers import Dovecot, SmtpSink, dovecot_available, seed_crm

CLIENT = "client@client.example.ru"


class IdleListener:
    """A second IMAP connection in IDLE on INBOX, noting when each EXISTS arrives."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=30)
        self.client.login(user, password)
        self.client.select_folder("INBOX", readonly=True)
        self.exists_at: dict[int, float] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> IdleListener:
        self.client.idle()
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for response in self.client.idle_check(timeout=0.5):
                if isinstance(response, tuple) and len(response) > 1 and response[1] == b"EXISTS":
                    self.exists_at.setdefault(int(response[0]), time.monotonic())

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        try:
            self.client.idle_done()
            self.client.logout()
        except Exception:
            self.client.shutdown()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run(rows: int) -> dict[str, float]:
    if not dovecot_available():
        raise SystemExit("needs root and dovecot-imapd (/usr/sbin/dovecot)")
    work = Path(tempfile.mkdtemp(prefix="hub-bench-mail-"))
    work.chmod(0o755)  # Dovecot runs as an unprivileged user
    dovecot = Dovecot(root=work / "dovecot", port=free_port())
    dovecot.start()
    sink = SmtpSink().start()
    database_url = f"sqlite:///{work / 'store.db'}"
    migrate.upgrade(database_url)
    seed_crm(database_url)
    user = dovecot.add_user("bench")
    password = dovecot.users[user]
    sent_at = datetime.now(UTC) - timedelta(hours=1)
    with session_scope(database_url) as session:
        for n in range(rows):
            record_sent_email(
                session,
                SentEmail(
                    message_id=f"<bench-{n}@sales.example.ru>",
                    from_addr="rep1@sales.example.ru",
                    to_addrs=[CLIENT],
                    subject=f"Offer {n}",
                    sent_at=sent_at,
                ),
            )
    settings = MailSettings(
        imap_host="127.0.0.1",
        imap_port=dovecot.port,
        imap_security="plain",
        imap_username=user,
        imap_password=password,
        sent_folder="",
        idle_check_s=30,
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        smtp_security="plain",
    )
    watcher = MailWatcher(database_url, settings, transports_from_settings(settings))
    watcher_thread = threading.Thread(target=watcher.run, daemon=True)
    watcher_thread.start()
    listener = IdleListener(dovecot.port, user, password).start()
    appender = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=30)
    appender.login(user, password)
    while watcher.passes < 1:
        time.sleep(0.01)
    time.sleep(0.3)  # both connections are in IDLE

    to_alert: list[float] = []
    to_idle: list[float] = []
    lost = 0
    try:
        for n in range(rows):
            raw = mail_formats.rfc8098(
                f"<bench-{n}@sales.example.ru>",
                CLIENT,
                f"Offer {n}",
                receipt_id=f"<bench-r{n}@client.example.ru>",
            )
            appender.append("INBOX", raw)
            landed = time.monotonic()
            messages = sink.wait_for(n + 1 - lost, timeout_s=15)
            if len(messages) < n + 1 - lost:
                lost += 1
                continue
            to_alert.append(sink.arrivals[-1] - landed)
            notified = listener.exists_at.get(n + 1)
            if notified is not None:
                to_idle.append(max(0.0, notified - landed))
    finally:
        watcher.stop()
        listener.stop()
        appender.logout()
        watcher_thread.join(timeout=60)
        sink.stop()
        dovecot.stop()
        dispose_engines()
        shutil.rmtree(work, ignore_errors=True)
    if not to_alert or not to_idle:
        raise SystemExit("no alert or no IDLE notification was measured")
    return {
        "rows": rows,
        "alerts": len(to_alert),
        "lost": lost,
        "duplicates": len(sink.messages) - len(to_alert),
        "alert_p50_ms": percentile(to_alert, 0.5) * 1000,
        "alert_p95_ms": percentile(to_alert, 0.95) * 1000,
        "idle_p50_ms": percentile(to_idle, 0.5) * 1000,
        "idle_p95_ms": percentile(to_idle, 0.95) * 1000,
        "alert_mean_ms": statistics.fmean(to_alert) * 1000,
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200, help="Receipts to APPEND (default 200)")
    args = parser.parse_args(argv)
    result = run(args.rows)
    print(
        f"receipts appended: {result['rows']}, alerts at the SMTP sink: {result['alerts']}, "
        f"lost: {result['lost']}, duplicates: {result['duplicates']}"
    )
    print(
        f"APPEND -> alert at SMTP sink: p50 {result['alert_p50_ms']:.0f} ms, p95 {result['alert_p95_ms']:.0f} ms"
    )
    print(
        f"APPEND -> IDLE notification (baseline): p50 {result['idle_p50_ms']:.0f} ms, "
        f"p95 {result['idle_p95_ms']:.0f} ms"
    )
    print(
        f"difference (the hub's own work: fetch, parse, correlate, record, SMTP): "
        f"p50 {result['alert_p50_ms'] - result['idle_p50_ms']:.0f} ms, "
        f"p95 {result['alert_p95_ms'] - result['idle_p95_ms']:.0f} ms; "
        f"ratio alert/IDLE p50 {result['alert_p50_ms'] / max(result['idle_p50_ms'], 1e-9):.2f}x"
    )
    return result


if __name__ == "__main__":
    main()
