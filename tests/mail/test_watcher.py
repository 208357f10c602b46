"""`hub watch-mail`'s loop against a real Dovecot: an APPENDed receipt becomes an alert at the
SMTP sink while the watcher holds IDLE; a dropped connection (EOF through a proxy, a server
BYE) is reconnected and caught up from the cursor, with no receipt lost or alerted twice."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import func, select

from hub.alerts.deliver import transports_from_settings
from hub.demo import mail_formats as samples
from hub.ingest.mail import record_sent_email
from hub.ingest.mail_watch import MailPassResult, MailWatcher, imap_mailboxes
from hub.settings import MailboxSettings, MailSettings, SettingsError, load_settings
from hub.store.db import session_scope
from hub.store.models import AlertOutbox, SyncState
from schemas.mail import SentEmail
from tests.mail.servers import DOVECOT_USER, Dovecot, SmtpSink, TcpProxy

CLIENT = "client@client.example.ru"
SENT_AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def proxy(dovecot: Dovecot) -> Iterator[TcpProxy]:
    tcp = TcpProxy(dovecot.port)
    yield tcp
    tcp.close()


def _start(watcher: MailWatcher) -> threading.Thread:
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    return thread


def _send_and_receipt(admin: IMAPClient, n: int) -> None:
    message_id = f"<w{n}@sales.example.ru>"
    admin.append("Sent", samples.sent_email(message_id, CLIENT, f"Offer {n}", when=SENT_AT))
    # The watcher reads Sent on each pass: wait for that pass to be triggered by the receipt.
    admin.append(
        "INBOX", samples.rfc8098(message_id, CLIENT, f"Offer {n}", receipt_id=f"<rw{n}@client.example.ru>")
    )


def _wait(predicate, timeout_s: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_idle_alerts_and_survives_a_dropped_connection(
    crm_sqlite: dict[str, int],
    sqlite_store: str,
    imap_admin: IMAPClient,
    mail_settings: MailSettings,
    smtp_sink: SmtpSink,
    proxy: TcpProxy,
) -> None:
    settings = mail_settings.model_copy(update={"imap_port": proxy.port})
    passes: list[MailPassResult] = []
    watcher = MailWatcher(sqlite_store, settings, transports_from_settings(settings), on_pass=passes.append)
    thread = _start(watcher)
    try:
        assert _wait(lambda: watcher.passes >= 1)
        _send_and_receipt(imap_admin, 1)
        assert len(smtp_sink.wait_for(1, timeout_s=15)) == 1

        # The network drops the session mid-IDLE; a receipt lands while the watcher is away.
        proxy.cut()
        _send_and_receipt(imap_admin, 2)
        assert len(smtp_sink.wait_for(2, timeout_s=20)) == 2
        assert watcher.reconnects >= 1
        assert proxy.accepted >= 2

        _send_and_receipt(imap_admin, 3)
        assert len(smtp_sink.wait_for(3, timeout_s=15)) == 3
    finally:
        watcher.stop()
        thread.join(timeout=20)
    assert not thread.is_alive()
    keys = sorted(str(m["X-Hub-Alert-Key"]) for m in smtp_sink.messages)
    assert keys == [f"email_opened:<w{n}@sales.example.ru>:smtp" for n in (1, 2, 3)]
    with session_scope(sqlite_store) as session:
        assert session.scalar(select(func.count()).where(AlertOutbox.status == "sent")) == 3


def test_server_bye_during_idle_reconnects(
    crm_sqlite: dict[str, int],
    sqlite_store: str,
    dovecot: Dovecot,
    imap_user: str,
    imap_admin: IMAPClient,
    mail_settings: MailSettings,
    smtp_sink: SmtpSink,
) -> None:
    watcher = MailWatcher(sqlite_store, mail_settings, transports_from_settings(mail_settings))
    thread = _start(watcher)
    try:
        assert _wait(lambda: watcher.passes >= 1)
        time.sleep(0.3)  # let it enter IDLE
        # doveadm kick: the server sends BYE to the user's sessions and closes them.
        kicked = subprocess.run(
            [
                "runuser",
                "-u",
                DOVECOT_USER,
                "--",
                "doveadm",
                "-c",
                str(dovecot.root / "dovecot.conf"),
                "kick",
                imap_user,
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert kicked.returncode == 0, kicked.stderr
        # The kick closed every session of the user, the test's own one too.
        admin = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
        admin.login(imap_user, dovecot.users[imap_user])
        _send_and_receipt(admin, 7)
        admin.logout()
        assert len(smtp_sink.wait_for(1, timeout_s=20)) == 1
        assert _wait(lambda: watcher.reconnects >= 1, timeout_s=5)
        assert watcher.last_error is not None
    finally:
        watcher.stop()
        thread.join(timeout=20)
    assert len(smtp_sink.messages) == 1


def test_silent_network_loss_during_idle_is_detected_by_the_timeout(
    crm_sqlite: dict[str, int],
    sqlite_store: str,
    imap_admin: IMAPClient,
    mail_settings: MailSettings,
    smtp_sink: SmtpSink,
    proxy: TcpProxy,
) -> None:
    """No FIN, no BYE: idle_check just sees nothing, and the timeout on every socket operation
    turns the silence into a reconnect."""
    settings = mail_settings.model_copy(update={"imap_port": proxy.port, "imap_timeout_s": 2.0})
    watcher = MailWatcher(sqlite_store, settings, transports_from_settings(settings))
    thread = _start(watcher)
    try:
        assert _wait(lambda: watcher.passes >= 1)
        time.sleep(2.0)  # past the short post-pass IDLE, into a normal one
        proxy.freeze()
        _send_and_receipt(imap_admin, 9)
        assert len(smtp_sink.wait_for(1, timeout_s=30)) == 1
        assert watcher.reconnects >= 1
    finally:
        watcher.stop()
        thread.join(timeout=20)
    assert len(smtp_sink.messages) == 1


def test_many_mailboxes_each_on_its_own_connections_cursor_and_password(
    crm_sqlite: dict[str, int],
    sqlite_store: str,
    dovecot: Dovecot,
    mail_settings: MailSettings,
    smtp_sink: SmtpSink,
    proxy: TcpProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three reps' mailboxes and one whose password is wrong: the wrong one stops alone, naming
    its variable; a network cut on one mailbox reconnects that one only; no password is logged."""
    users = {
        name: dovecot.add_user(f"m{name}{time.monotonic_ns() % 10**8}") for name in ("anna", "piotr", "olga")
    }
    settings = mail_settings.model_copy(
        update={
            "imap_username": "",  # only the listed mailboxes
            "sent_folder": "",
            "mailboxes": [
                MailboxSettings(name="anna", username=users["anna"]),
                # Piotr's mailbox goes through the proxy, to cut it alone.
                MailboxSettings(name="piotr", username=users["piotr"], port=proxy.port),
                MailboxSettings(name="olga", username=users["olga"]),
                MailboxSettings(name="bad", username=users["anna"]),
            ],
            "mailbox_passwords": {
                "anna": dovecot.users[users["anna"]],
                "piotr": dovecot.users[users["piotr"]],
                "olga": dovecot.users[users["olga"]],
                "bad": "wrong-secret-4711",
            },
        }
    )
    with session_scope(sqlite_store) as session:
        for n in range(6):
            record_sent_email(
                session,
                SentEmail(
                    message_id=f"<mm{n}@sales.example.ru>",
                    from_addr="rep1@sales.example.ru",
                    to_addrs=[CLIENT],
                    subject=f"Offer {n}",
                    sent_at=SENT_AT,
                ),
            )
    admins = {}
    for name, user in users.items():
        admins[name] = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
        admins[name].login(user, dovecot.users[user])

    def receipt(name: str, n: int) -> None:
        admins[name].append(
            "INBOX",
            samples.rfc8098(f"<mm{n}@sales.example.ru>", CLIENT, f"Offer {n}", receipt_id=f"<rmm{n}@c>"),
        )

    caplog.set_level(logging.DEBUG)
    watcher = MailWatcher(sqlite_store, settings, transports_from_settings(settings))
    by_name = {w.label: w for w in watcher.watchers}
    thread = _start(watcher)
    try:
        assert _wait(lambda: all(by_name[n].idling.is_set() for n in users))
        assert _wait(lambda: by_name["bad"].failed is not None)
        for n, name in enumerate(users):
            receipt(name, n)
        assert len(smtp_sink.wait_for(3, timeout_s=15)) == 3
        proxy.cut()
        receipt("piotr", 3)
        receipt("olga", 4)
        assert len(smtp_sink.wait_for(5, timeout_s=20)) == 5
        assert _wait(lambda: by_name["piotr"].reconnects >= 1)
        receipt("anna", 5)
        assert len(smtp_sink.wait_for(6, timeout_s=15)) == 6
    finally:
        watcher.stop()
        thread.join(timeout=30)
        for client in admins.values():
            client.logout()
    assert not thread.is_alive()
    assert (by_name["anna"].reconnects, by_name["olga"].reconnects) == (0, 0)
    assert "HUB_MAIL__MAILBOX_PASSWORDS__BAD" in str(by_name["bad"].failed)
    keys = sorted(str(m["X-Hub-Alert-Key"]) for m in smtp_sink.messages)
    assert keys == [f"email_opened:<mm{n}@sales.example.ru>:smtp" for n in range(6)]
    with session_scope(sqlite_store) as session:
        cursors = {s.source: s.cursor["last_uid"] for s in session.scalars(select(SyncState))}
    # Two receipts in each mailbox, each mailbox with its own cursor.
    assert [cursors[f"imap:{name}:INBOX"] for name in users] == [2, 2, 2]
    logged = (
        "\n".join(r.getMessage() for r in caplog.records) + repr(settings) + repr(watcher.watchers[0].mailbox)
    )
    assert "wrong-secret-4711" not in logged and dovecot.users[users["anna"]] not in logged


def test_mailbox_passwords_come_from_the_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text(
        "mail:\n  imap_host: imap.example.ru\n  mailboxes:\n    - {name: anna, username: anna@example.ru}\n"
    )
    monkeypatch.setenv("HUB_CONFIG", str(config))
    with pytest.raises(SettingsError, match="HUB_MAIL__MAILBOX_PASSWORDS__ANNA"):
        imap_mailboxes(load_settings().mail)
    monkeypatch.setenv("HUB_MAIL__MAILBOX_PASSWORDS__ANNA", "s3cret-from-env")
    (account,) = imap_mailboxes(load_settings().mail)
    assert (account.name, account.host, account.username) == ("anna", "imap.example.ru", "anna@example.ru")
    assert "s3cret" not in repr(account) and "s3cret" not in repr(load_settings())
    config.write_text(
        "mail:\n  mailboxes:\n    - {name: anna, username: anna@example.ru, password: in-the-file}\n"
    )
    with pytest.raises(SettingsError, match="environment only"):
        load_settings()
