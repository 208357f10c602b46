"""What a rep reads: the alert of an open in the rep's language (ru, pl, en; the company's when
the rep has none), in the rep's time zone, person and company apart, the phone in international
form and as a tel: link, the client's email, the deal and its amount in the language's money
format, the link to the contact's card; the same in email (plain + HTML through a real SMTP
server), Telegram and Slack (through the local chat API replay), Cyrillic and Polish intact."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from decimal import Decimal
from email import policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hub.alerts.deliver import (
    EmlFolderTransport,
    RetryPolicy,
    SlackTransport,
    SmtpTransport,
    TelegramTransport,
    deliver_pending,
)
from hub.alerts.links import contact_url
from hub.demo import mail_formats as samples
from hub.ingest.mail import record_receipts, record_sent_email
from hub.settings import MailSettings
from hub.store.db import session_scope
from hub.store.models import AlertOutbox, Contact, Deal, Rep, Task
from hub.store.upsert import upsert
from schemas.mail import MailMessage, SentEmail
from tests.mail.servers import ChatApi, SmtpSink

FAST = RetryPolicy(max_attempts=3, backoff_s=0.0, backoff_max_s=0.0, lease_s=60)
OPENED = datetime(2026, 11, 20, 9, 5, tzinfo=UTC)
BASE = "https://hub.example.ru"

# rep id -> (locale, time zone, contact, what the rep must read)
CASES: dict[str, dict[str, Any]] = {
    "ru": {
        "rep": {"id": 31, "name": "Кузнецова Анна", "locale": None, "timezone": "Europe/Moscow"},
        "contact": {
            "id": 41,
            "name": "Иванов Пётр Сергеевич",
            "company": "ООО «Ёлка и Щука»",
            "email": "petr@client.example.ru",
            "phone_e164": "+79161234567",
        },
        "deal": {
            "id": 51,
            "title": "Поставка оборудования",
            "amount": Decimal("1250000.50"),
            "currency": "RUB",
        },
        "subject": "Коммерческое предложение",
        "expect": [
            "Письмо прочитано — позвоните: Иванов Пётр Сергеевич",
            "Открыто: 20 ноября, 12:05 (уведомление о прочтении)",
            "Контакт: Иванов Пётр Сергеевич",
            "Компания: ООО «Ёлка и Щука»",
            "Телефон: +7 916 123-45-67",
            "Email: petr@client.example.ru",
            "Сделка: Поставка оборудования — 1 250 000,50 ₽ (этап: proposal)",
            "«Коммерческое предложение»",
        ],
        "tel": "tel:+79161234567",
    },
    "pl": {
        "rep": {"id": 32, "name": "Katarzyna Zielińska", "locale": "pl", "timezone": "Europe/Warsaw"},
        "contact": {
            "id": 42,
            "name": "Zofia Łukasiewicz-Żółtowska",
            "company": "Zakład Źródlany Gęśla Sp. z o.o.",
            "email": "zofia@klient.example.pl",
            "phone_e164": "+48601234567",
        },
        "deal": {"id": 52, "title": "Dostawa łożysk", "amount": Decimal("48500"), "currency": "PLN"},
        "subject": "Oferta handlowa — łożyska",
        "expect": [
            "E-mail przeczytany — zadzwoń: Zofia Łukasiewicz-Żółtowska",
            "Otwarto: 20 listopada, 10:05 (potwierdzenie przeczytania)",
            "Kontakt: Zofia Łukasiewicz-Żółtowska",
            "Firma: Zakład Źródlany Gęśla Sp. z o.o.",
            "Telefon: +48 601 234 567",
            "E-mail: zofia@klient.example.pl",
            "Szansa sprzedaży: Dostawa łożysk — 48 500,00 zł (etap: proposal)",
            "„Oferta handlowa — łożyska”",
        ],
        "tel": "tel:+48601234567",
    },
    "en": {
        "rep": {"id": 33, "name": "John Smith", "locale": "en-GB", "timezone": "Europe/London"},
        "contact": {
            "id": 43,
            "name": "Ольга Żak",
            "company": "Łódź & Co <Ltd>",
            "email": "olga@client.example.com",
            "phone_e164": "+442079460958",
        },
        "deal": {"id": 53, "title": "Pilot", "amount": Decimal("12000"), "currency": "EUR"},
        "subject": "Proposal",
        "expect": [
            "Email read — call now: Ольга Żak",
            "Opened: 20 November, 09:05 (read receipt)",
            "Contact: Ольга Żak",
            "Company: Łódź & Co <Ltd>",
            "Phone: +44 20 7946 0958",
            "Email: olga@client.example.com",
            "Deal: Pilot — €12,000.00 (stage: proposal)",
        ],
        "tel": "tel:+442079460958",
    },
}


def _seed(database_url: str) -> None:
    with session_scope(database_url) as session:
        for case in CASES.values():
            rep = {
                **case["rep"],
                "email": f"rep{case['rep']['id']}@sales.example.ru",
                "chat_id": str(case["rep"]["id"]),
            }
            upsert(session, Rep, [rep], key=["id"])
            upsert(
                session,
                Contact,
                [{**case["contact"], "source_ref": f"C-{case['contact']['id']}", "owner_rep_id": rep["id"]}],
                key=["id"],
            )
            upsert(
                session,
                Deal,
                [
                    {
                        **case["deal"],
                        "source_ref": f"D-{case['deal']['id']}",
                        "stage": "proposal",
                        "contact_id": case["contact"]["id"],
                        "rep_id": rep["id"],
                        "opened_at": datetime(2026, 11, 1, tzinfo=UTC),
                    }
                ],
                key=["id"],
            )


def _open_all(database_url: str, mail: MailSettings) -> None:
    """Each client reads its offer: sent mail recorded, the receipt through the watcher's path."""
    for n, case in enumerate(CASES.values()):
        message_id = f"<offer-{n}@sales.example.ru>"
        with session_scope(database_url) as session:
            record_sent_email(
                session,
                SentEmail(
                    message_id=message_id,
                    from_addr=f"rep{case['rep']['id']}@sales.example.ru",
                    to_addrs=[case["contact"]["email"]],
                    subject=case["subject"],
                    sent_at=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
                    deal_ref=f"D-{case['deal']['id']}",
                ),
            )
        raw = samples.rfc8098(
            message_id, case["contact"]["email"], case["subject"], receipt_id=f"<r{n}@client>", when=OPENED
        )
        record_receipts(
            database_url,
            "imap:INBOX",
            [MailMessage(location=f"t:{n}", uid=n + 1, raw=raw)],
            {"last_uid": n + 1},
            mail,
        )


def _plain(text: str) -> str:
    # Money and dates use no-break spaces; header folding may drop or add a space (FACTS.md).
    return " ".join(text.replace("\xa0", " ").replace("\u202f", " ").split())


@pytest.fixture
def opened(crm_sqlite: dict[str, int], sqlite_store: str) -> str:
    _seed(sqlite_store)
    mail = MailSettings(
        alert_channels=["smtp", "telegram", "slack"], public_base_url=BASE, alert_language="ru"
    )
    _open_all(sqlite_store, mail)
    return sqlite_store


def test_each_language_reads_the_same_in_email_telegram_and_slack(
    opened: str, smtp_sink: SmtpSink, chat_api: ChatApi
) -> None:
    chat_api.failures = {"telegram": [], "slack": []}
    transports = {
        "smtp": SmtpTransport(
            host="127.0.0.1", port=smtp_sink.port, from_addr="hub@sales.example.ru", security="plain"
        ),
        "telegram": TelegramTransport("TOKEN123", api_url=chat_api.url),
        "slack": SlackTransport(f"{chat_api.url}/services/T0/B0/XYZ"),
    }
    stats = deliver_pending(opened, transports, FAST)
    assert (stats.sent, stats.failed, stats.retried) == (9, 0, 0), stats.errors
    mails = {str(m["To"]): m for m in smtp_sink.messages}
    telegram = {m["chat_id"]: m for m in chat_api.telegram}
    slack = [m["text"] for m in chat_api.slack]
    with session_scope(opened) as session:
        tasks = {t.rep_id: t.title for t in session.scalars(select(Task))}
    for language, case in CASES.items():
        rep_id = case["rep"]["id"]
        message = mails[f"rep{rep_id}@sales.example.ru"]
        text = _plain(message.get_body(("plain",)).get_content())
        html = message.get_body(("html",)).get_content()
        tg = telegram[str(rep_id)]
        sl = next(t for t in slack if case["contact"]["name"] in t)
        assert _plain(str(message["Subject"])) == _plain(case["expect"][0]), language
        for line in case["expect"][1:]:
            assert _plain(line) in text, (language, line, text)
        # The person and the company are separate lines.
        raw_lines = message.get_body(("plain",)).get_content().splitlines()
        person = next(
            i for i, line in enumerate(raw_lines) if line.endswith(case["contact"]["name"]) and ":" in line
        )
        assert raw_lines[person + 1].split(": ", 1)[1] == case["contact"]["company"]
        for body in (html, tg["text"], sl):
            assert case["contact"]["name"] in body or case["contact"]["name"].replace("&", "&amp;") in body
        # Links: phone and email in email, the contact's card everywhere.
        card = f"{BASE}/contacts/{case['contact']['id']}"
        assert f'href="{case["tel"]}"' in html and f'href="mailto:{case["contact"]["email"]}"' in html
        assert f'href="{card}"' in html and f'href="{card}"' in tg["text"] and f"<{card}|" in sl
        assert f"<{case['tel']}|" in sl
        assert tg["parse_mode"] == "HTML"
        # Escaped markup, readable text: "&" and "<" of the company's name survive as text.
        if language == "en":
            assert "Łódź &amp; Co &lt;Ltd&gt;" in html and "Łódź &amp; Co &lt;Ltd&gt;" in tg["text"]
            assert "Łódź &amp; Co &lt;Ltd&gt;" in sl
        assert _plain(case["expect"][0]).split(":")[0] in _plain(tg["text"])
        assert tasks[rep_id].endswith(case["contact"]["name"])
    assert "Позвонить сейчас" in _plain(mails["rep31@sales.example.ru"].get_body(("plain",)).get_content())


def test_the_company_language_applies_to_reps_without_one(
    crm_sqlite: dict[str, int], sqlite_store: str
) -> None:
    _seed(sqlite_store)
    _open_all(sqlite_store, MailSettings(alert_language="pl"))
    with session_scope(sqlite_store) as session:
        rows = {r.recipient: r for r in session.scalars(select(AlertOutbox))}
    # rep 31 has no locale: the company's (pl); rep 33's "en-GB" stays English.
    assert rows["rep31@sales.example.ru"].subject.startswith("E-mail przeczytany")
    assert rows["rep33@sales.example.ru"].subject.startswith("Email read")
    # Without a public URL there is no card to link to.
    assert "contacts/" not in rows["rep31@sales.example.ru"].body


def test_contact_url_follows_merges_and_needs_a_public_url(
    crm_sqlite: dict[str, int], sqlite_store: str
) -> None:
    with session_scope(sqlite_store) as session:
        session.get(Contact, 11).merged_into_id = 10  # type: ignore[union-attr]
    with session_scope(sqlite_store) as session:
        assert contact_url(session, 11, MailSettings(public_base_url=BASE + "/")) == f"{BASE}/contacts/10"
        assert contact_url(session, 11, MailSettings()) is None
        assert contact_url(session, None, MailSettings(public_base_url=BASE)) is None


def test_eml_folder_holds_one_readable_file_per_alert(opened: str, tmp_path: Path) -> None:
    folder = tmp_path / "alerts"
    transport = EmlFolderTransport(str(folder), "hub@sales.example.ru")
    assert deliver_pending(opened, {"smtp": transport}, FAST).sent == 3
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 3
    # Delivered again (as after a crash before the "sent" commit): the same file, not a second one.
    with session_scope(opened) as session:
        row = session.scalars(select(AlertOutbox).where(AlertOutbox.channel == "smtp")).first()
        assert row is not None
        session.expunge(row)
    transport.send(row)
    assert sorted(folder.glob("*.eml")) == files
    russian = next(f for f in files if "Иванов" in f.read_text("utf-8"))
    message = email.message_from_bytes(russian.read_bytes(), policy=policy.default)
    assert "Телефон: +7 916 123-45-67" in _plain(message.get_body(("plain",)).get_content())


def test_smtp_connection_is_kept_and_replaced_when_the_server_dropped_it(
    crm_sqlite: dict[str, int], sqlite_store: str
) -> None:
    _seed(sqlite_store)
    _open_all(sqlite_store, MailSettings())
    sink = SmtpSink().start()
    transport = SmtpTransport(
        host="127.0.0.1", port=sink.port, from_addr="hub@sales.example.ru", security="plain"
    )
    try:
        with session_scope(sqlite_store) as session:
            first = session.scalars(select(AlertOutbox).order_by(AlertOutbox.id)).first()
            assert first is not None
            session.expunge(first)
        assert deliver_pending(sqlite_store, {"smtp": transport}, FAST, limit=2).sent == 2
        assert transport.connections == 1
        # The server goes away and comes back on the same port: the kept session is dead.
        port = sink.port
        sink.stop()
        sink = SmtpSink()
        sink.controller.port = sink.port = port
        sink.start()
        assert deliver_pending(sqlite_store, {"smtp": transport}, FAST).sent == 1
        assert transport.connections == 2
        assert len(sink.messages) == 1
    finally:
        transport.close()
        sink.stop()


def test_starttls_against_a_plain_server_fails_at_once_naming_the_setting(
    crm_sqlite: dict[str, int], sqlite_store: str, smtp_sink: SmtpSink
) -> None:
    _seed(sqlite_store)
    _open_all(sqlite_store, MailSettings())
    transport = SmtpTransport(
        host="127.0.0.1", port=smtp_sink.port, from_addr="hub@x.ru", security="starttls"
    )
    stats = deliver_pending(sqlite_store, {"smtp": transport}, FAST)
    assert stats.failed == 3 and stats.retried == 0
    with session_scope(sqlite_store) as session:
        errors = {r.last_error for r in session.scalars(select(AlertOutbox))}
    assert all("HUB_MAIL__SMTP_SECURITY" in (e or "") for e in errors)
