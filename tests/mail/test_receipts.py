"""Receipts parsed as each client writes them, in every charset the issue names; what the
parser cannot correlate is flagged with a reason; subjects compare after folding."""

from __future__ import annotations

import pytest

from connectors.receipts import NotAReceipt, decode_8bit, parse_receipt, parse_sent_email, subject_key
from hub.demo import mail_formats as formats

READER = "client@client.example.ru"
ORIGINAL = "<offer-42@sales.example.ru>"
SUBJECT_RU = "Коммерческое предложение на поставку"


@pytest.mark.parametrize("charset", ["utf-8", "windows-1251", "koi8-r"])
def test_outlook_russian_in_each_charset(charset: str) -> None:
    receipt = parse_receipt(
        formats.outlook(ORIGINAL, READER, SUBJECT_RU, receipt_id="<r@c>", prefix="Прочитано", charset=charset)
    )
    assert (receipt.variant, receipt.disposition, receipt.opened) == ("outlook", "displayed", True)
    # Folded onto a continuation line in the report: found and stripped.
    assert receipt.original_message_id == ORIGINAL
    assert receipt.reader == READER
    assert receipt.subject == f"Прочитано: {SUBJECT_RU}"
    assert receipt.original_subject == SUBJECT_RU
    assert receipt.problem is None


def test_outlook_polish_and_not_read() -> None:
    polish = parse_receipt(
        formats.outlook(
            ORIGINAL,
            READER,
            "Oferta handlowa",
            receipt_id="<r@c>",
            prefix="Przeczytane",
            charset="iso-8859-2",
        )
    )
    assert (polish.variant, polish.opened, polish.original_subject) == ("outlook", True, "Oferta handlowa")
    deleted = parse_receipt(
        formats.outlook(
            ORIGINAL, READER, "Offer", receipt_id="<r@c>", prefix="Not read", disposition="deleted"
        )
    )
    assert (deleted.disposition, deleted.opened) == ("deleted", False)


def test_rfc8098_with_rfc822_headers_part() -> None:
    receipt = parse_receipt(formats.rfc8098(ORIGINAL, READER, "Offer", receipt_id="<r@c>"))
    assert (receipt.variant, receipt.disposition) == ("rfc8098", "displayed")
    assert receipt.original_message_id == ORIGINAL
    assert receipt.headers_message_id == ORIGINAL
    assert receipt.received_at is not None


def test_rfc822_headers_part_alone_is_enough() -> None:
    raw = formats.rfc8098(ORIGINAL, READER, "Offer", receipt_id="<r@c>").replace(
        f"Original-Message-ID: {ORIGINAL}\r\n".encode(), b""
    )
    receipt = parse_receipt(raw)
    assert receipt.original_message_id is None
    assert receipt.headers_message_id == ORIGINAL
    assert receipt.problem is None


def test_thunderbird_references_and_utf8_subject() -> None:
    receipt = parse_receipt(formats.thunderbird(ORIGINAL, READER, SUBJECT_RU, receipt_id="<r@c>"))
    assert receipt.variant == "thunderbird"
    assert receipt.references == [ORIGINAL]
    assert receipt.original_subject == SUBJECT_RU


@pytest.mark.parametrize(
    ("charset", "raw_8bit"), [("windows-1251", True), ("koi8-r", True), ("utf-8", True), ("koi8-r", False)]
)
def test_plain_text_receipt_in_each_charset(charset: str, raw_8bit: bool) -> None:
    receipt = parse_receipt(
        formats.plain_text(
            READER,
            "Счёт на оплату",
            receipt_id="<r@c>",
            charset=charset,
            raw_8bit_subject=raw_8bit,
            in_reply_to=ORIGINAL,
        )
    )
    assert (receipt.variant, receipt.opened) == ("plain_text", True)
    assert receipt.subject == "Прочитано: Счёт на оплату"
    assert receipt.in_reply_to == ORIGINAL
    assert receipt.reader == READER


def test_8bit_guess_without_a_declared_charset() -> None:
    for charset in ("windows-1251", "koi8-r"):
        assert decode_8bit("Прочитано: Счёт".encode(charset)) == "Прочитано: Счёт"


def test_ordinary_mail_is_not_a_receipt_and_bare_report_is_flagged() -> None:
    with pytest.raises(NotAReceipt):
        parse_receipt(formats.ordinary_mail(READER, message_id="<m@c>"))
    bare = parse_receipt(
        b"Content-Type: multipart/report; report-type=disposition-notification; boundary=B\r\n\r\n--B\r\n"
        b"Content-Type: message/disposition-notification\r\n\r\nDisposition: manual-action/MDN-sent-manually;"
        b" displayed\r\n\r\n--B--\r\n"
    )
    assert bare.problem is not None and "names no original Message-ID" in bare.problem


def test_subject_key_folds_prefixes_case_and_spaces() -> None:
    assert subject_key("Прочитано:  Re: Коммерческое  предложение") == subject_key("коммерческое предложение")
    assert subject_key("Return Receipt (displayed) - Offer") == subject_key("RE: offer")


def test_sent_email_needs_a_message_id() -> None:
    sent = parse_sent_email(formats.sent_email(ORIGINAL, READER, SUBJECT_RU, deal="D-1"))
    assert (sent.message_id, sent.to_addrs, sent.deal_ref, sent.subject) == (
        ORIGINAL,
        [READER],
        "D-1",
        SUBJECT_RU,
    )
    with pytest.raises(ValueError, match="no Message-ID"):
        parse_sent_email(b"Subject: x\r\nDate: Fri, 20 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n")
