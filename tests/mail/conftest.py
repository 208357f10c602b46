"""Fixtures of the mail tests: one Dovecot per test session with a fresh account per test,
an SMTP sink per test, and the hub's mail settings pointing at both."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from hub.settings import MailSettings
from tests.local_server import free_port, local_server
from tests.mail.servers import ChatApi, Dovecot, SmtpSink, dovecot_available, seed_crm


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    if not dovecot_available():
        pytest.skip("Dovecot (dovecot-imapd) and root for runuser are needed for IMAP tests")
    # Not under pytest's temp root: pytest keeps that 0700, and Dovecot runs as another user.
    root = Path(tempfile.mkdtemp(prefix="hub-dovecot-"))
    server = Dovecot(root=root, port=free_port())
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def imap_user(dovecot: Dovecot) -> str:
    return dovecot.add_user(f"u{uuid.uuid4().hex[:10]}")


@pytest.fixture
def imap_admin(dovecot: Dovecot, imap_user: str) -> Iterator[IMAPClient]:
    """A second connection, as the mail server's other clients: APPENDs receipts and sent mail."""
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    client.login(imap_user, dovecot.users[imap_user])
    for folder in ("Sent",):
        if not client.folder_exists(folder):
            client.create_folder(folder)
    yield client
    with contextlib.suppress(Exception):
        client.logout()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def chat_api() -> Iterator[ChatApi]:
    """Telegram and Slack replayed on one local server; the first request of each kind fails."""
    api = ChatApi()
    with local_server(api.handler) as server:
        api.url = server.url
        yield api


@pytest.fixture
def mail_settings(dovecot: Dovecot, imap_user: str, smtp_sink: SmtpSink) -> MailSettings:
    return MailSettings(
        imap_host="127.0.0.1",
        imap_port=dovecot.port,
        imap_security="plain",
        imap_username=imap_user,
        imap_password=dovecot.users[imap_user],
        imap_timeout_s=10,
        receipts_folder="INBOX",
        sent_folder="Sent",
        idle_check_s=2.0,
        reconnect_max_s=1.0,
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_security="plain",
        smtp_from="hub@sales.example.ru",
        alert_backoff_s=0.05,
        alert_backoff_max_s=0.2,
    )


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def crm(store_url: str) -> dict[str, int]:
    """A rep, a client contact with an open deal, in a migrated store (SQLite and PostgreSQL)."""
    return seed_crm(store_url)


@pytest.fixture
def crm_sqlite(sqlite_store: str) -> dict[str, int]:
    return seed_crm(sqlite_store)
