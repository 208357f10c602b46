"""Read receipts as other systems wrote them (tests/mail/samples/README.md): a Date with a comment
before its offset read right, malformed report parts read leniently, and the subject's "Read:"
taken — at a lower confidence — when the report says nothing usable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.receipts import parse_receipt, parse_sent_email
from hub.ingest.mail import MATCH_CONFIDENCE, SUBJECT_DISPOSITION_FACTOR, record_receipt, record_sent_email
from hub.settings import MailSettings
from hub.store.db import session_scope
from hub.store.models import MailReceipt
from schemas.mail import SentEmail

SAMPLES = Path(__file__).parent / "samples"

# file: (disposition, read from, opened, original Message-ID, reader, Date in UTC)
EXPECTED = {
    "ansforge-mdn-processed-error.eml": (
        "processed",
        "report",
        False,
        "<199509192301.23456>",
        "servicey_auto@chb.mssante.fr",
        datetime(2024, 2, 20, 4, 19, tzinfo=UTC),
    ),
    "rfc8098-section9.eml": (
        "displayed",
        "report",
        True,
        "<199509192301.23456@example.org>",
        "joe_recipient@example.com",
        datetime(1995, 9, 20, 4, 19, tzinfo=UTC),
    ),
    "written-webmail-space-before-colon.eml": (
        "displayed",
        "report",
        True,
        "<offer-42@sales.example.ru>",
        "client@client.example.ru",
        datetime(2024, 3, 5, 7, 15, tzinfo=UTC),
    ),
    "written-report-without-disposition.eml": (
        "displayed",
        "subject",
        True,
        "<offer-43@sales.example.ru>",
        "jan@client.example.pl",
        datetime(2024, 3, 5, 10, 0, tzinfo=UTC),
    ),
}


def test_every_sample_is_listed_with_its_origin() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    assert sorted(p.name for p in SAMPLES.glob("*.eml")) == sorted(EXPECTED)
    assert all(f"`{name}`" in readme for name in EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_receipt_is_read_right(name: str) -> None:
    receipt = parse_receipt((SAMPLES / name).read_bytes())
    disposition, source, opened, original, reader, date = EXPECTED[name]
    assert (receipt.disposition, receipt.disposition_source, receipt.opened) == (disposition, source, opened)
    assert (receipt.original_message_id, receipt.reader) == (original, reader)
    assert receipt.received_at == date
    assert receipt.problem is None


def test_a_date_comment_before_the_offset_is_a_comment_not_the_zone() -> None:
    sent = parse_sent_email(
        b"Message-ID: <x@example.org>\r\nDate: Wed, 20 Sep 1995 00:19:00 (EDT) -0400\r\n"
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\n\r\nbody\r\n"
    )
    assert sent.sent_at == datetime(1995, 9, 20, 4, 19, tzinfo=UTC)
    nested = parse_sent_email(
        b"Message-ID: <y@example.org>\r\nDate: Tue, 5 Mar 2024 (very (nested) comment) 10:00:00 +0100 (CET)\r\n"
        b"\r\nbody\r\n"
    )
    assert nested.sent_at == datetime(2024, 3, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "subject",
    [
        "Lu : Offre",
        "Gelesen: Angebot",
        "Läst: Offert",
        "Přečteno: Nabídka",
        "Прочетено: Оферта",
        "Okundu: Teklif",
    ],
)
def test_localized_read_prefixes_of_a_subject_only_notice(subject: str) -> None:
    raw = (
        f"From: c@example.org\r\nTo: r@example.org\r\nSubject: {subject}\r\nMessage-ID: <n@example.org>\r\n"
        "Date: Tue, 05 Mar 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nYour message was read.\r\n"
    ).encode()
    receipt = parse_receipt(raw)
    assert (receipt.disposition, receipt.disposition_source, receipt.opened) == ("displayed", "subject", True)


def test_a_subject_only_open_is_recorded_at_a_lower_confidence(sqlite_store: str) -> None:
    mail = MailSettings()
    with session_scope(sqlite_store) as session:
        for message_id in ("<offer-42@sales.example.ru>", "<offer-43@sales.example.ru>"):
            record_sent_email(
                session,
                SentEmail(
                    message_id=message_id,
                    from_addr="rep@sales.example.ru",
                    to_addrs=["client@client.example.ru"],
                    subject="Оферта",
                    sent_at=datetime(2024, 3, 4, 9, 0, tzinfo=UTC),
                ),
            )
    for name in ("written-webmail-space-before-colon.eml", "written-report-without-disposition.eml"):
        raw = (SAMPLES / name).read_bytes()
        with session_scope(sqlite_store) as session:
            status = record_receipt(
                session, parse_receipt(raw), raw=raw, location=name, arrived_at=None, mail=mail
            )
        assert status == "opened"
    with session_scope(sqlite_store) as session:
        receipts = {r.location: r for r in session.scalars(select(MailReceipt))}
    sure = receipts["written-webmail-space-before-colon.eml"]
    by_subject = receipts["written-report-without-disposition.eml"]
    assert (sure.disposition_source, sure.confidence) == ("report", MATCH_CONFIDENCE["original_message_id"])
    assert by_subject.disposition_source == "subject"
    assert by_subject.confidence == MATCH_CONFIDENCE["original_message_id"] * SUBJECT_DISPOSITION_FACTOR
