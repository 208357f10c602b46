"""Read receipts as real clients write them (templates after messages seen from RFC 8098
reporters, Thunderbird, Outlook/Exchange in English, Russian and Polish, plain-text notices),
and sent emails, as raw bytes: the mail tests, the demo and the latency benchmark use them."""

from __future__ import annotations

import base64
import quopri
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime


def _date(when: datetime | None) -> str:
    return format_datetime(when or datetime(2026, 11, 20, 10, 30, tzinfo=UTC))


def sent_email(
    message_id: str,
    to: str,
    subject: str,
    *,
    sender: str = "rep1@sales.example.ru",
    when: datetime | None = None,
    deal: str | None = None,
) -> bytes:
    deal_header = f"X-CRM-Deal: {deal}\r\n" if deal else ""
    subject_header = Header(subject, "utf-8").encode()
    return (
        f"From: Rep <{sender}>\r\nTo: {to}\r\nSubject: {subject_header}\r\nDate: {_date(when)}\r\n"
        f"Message-ID: {message_id}\r\nDisposition-Notification-To: {sender}\r\n{deal_header}"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find our offer attached.\r\n"
    ).encode()


def rfc8098(
    original_id: str,
    reader: str,
    subject: str,
    *,
    receipt_id: str,
    disposition: str = "displayed",
    when: datetime | None = None,
) -> bytes:
    """A standard MDN with an attached text/rfc822-headers part."""
    subj = Header(f"Disposition notification: {subject}", "utf-8").encode()
    return (
        f"From: <{reader}>\r\nTo: rep1@sales.example.ru\r\nSubject: {subj}\r\nDate: {_date(when)}\r\n"
        f"Message-ID: {receipt_id}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="RPT"\r\n\r\n'
        "--RPT\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        "The message sent on 2026-11-20 to the reader was displayed.\r\n\r\n"
        "--RPT\r\nContent-Type: message/disposition-notification\r\n\r\n"
        "Reporting-UA: mail.client.example; Example MUA 2.0\r\n"
        f"Original-Recipient: rfc822;{reader}\r\nFinal-Recipient: rfc822;{reader}\r\n"
        f"Original-Message-ID: {original_id}\r\n"
        f"Disposition: manual-action/MDN-sent-manually; {disposition}\r\n\r\n"
        "--RPT\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original_id}\r\nSubject: offer\r\n\r\n--RPT--\r\n"
    ).encode()


def thunderbird(
    original_id: str, reader: str, subject: str, *, receipt_id: str, when: datetime | None = None
) -> bytes:
    """Thunderbird: "Return Receipt (displayed) - <subject>", References, MDN part."""
    subj = Header(f"Return Receipt (displayed) - {subject}", "utf-8").encode()
    return (
        f"Message-ID: {receipt_id}\r\nDate: {_date(when)}\r\nMIME-Version: 1.0\r\n"
        "User-Agent: Mozilla Thunderbird\r\n"
        f"From: Client <{reader}>\r\nTo: rep1@sales.example.ru\r\nSubject: {subj}\r\n"
        f"References: {original_id}\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification;\r\n boundary="------------TB"\r\n\r\n'
        "This is a multi-part message in MIME format.\r\n"
        "--------------TB\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "This is a Return Receipt for the mail that you sent.\r\n\r\n"
        '--------------TB\r\nContent-Type: message/disposition-notification; name="MDNPart2.txt"\r\n'
        "Content-Disposition: inline\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        "Reporting-UA: client.example.ru; Mozilla Thunderbird\r\n"
        f"Final-Recipient: rfc822;{reader}\r\nOriginal-Message-ID: {original_id}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n"
        "--------------TB--\r\n"
    ).encode()


def outlook(
    original_id: str,
    reader: str,
    subject: str,
    *,
    receipt_id: str,
    prefix: str = "Read",
    charset: str = "utf-8",
    disposition: str = "displayed",
    when: datetime | None = None,
) -> bytes:
    """Exchange/Outlook: localized "Read:" subject as RFC 2047 words in the given charset,
    report-type after boundary, `Final-recipient: RFC822;`, Original-Message-ID folded onto a
    continuation line, no References; a quoted-printable human part in that charset."""
    subj = Header(f"{prefix}: {subject}", charset).encode()
    human = quopri.encodestring(
        f"Your message\r\n  Subject: {subject}\r\nwas read.\r\n".encode(charset)
    ).decode("ascii")
    name = "Клиент" if charset.lower() in ("utf-8", "koi8-r", "windows-1251") else "Klient Łódź"
    return (
        f"From: =?{charset}?B?{base64.b64encode(name.encode(charset)).decode()}?= <{reader}>\r\n"
        f"To: rep1@sales.example.ru\r\nSubject: {subj}\r\nDate: {_date(when)}\r\n"
        f"Message-ID: {receipt_id}\r\nX-MS-Exchange-Organization-SCL: -1\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; boundary="_000_EX_";\r\n\treport-type=disposition-notification\r\n\r\n'
        f'--_000_EX_\r\nContent-Type: text/plain; charset="{charset}"\r\n'
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{human}\r\n\r\n"
        "--_000_EX_\r\nContent-Type: message/disposition-notification\r\n\r\n"
        f"Final-recipient: RFC822; {reader}\r\n"
        f"Disposition: automatic-action/MDN-sent-automatically; {disposition}\r\n"
        f"X-MSExch-Correlation-Key: AbCdEf==\r\nOriginal-Message-ID:\r\n {original_id}\r\n\r\n"
        "--_000_EX_--\r\n"
    ).encode("ascii")


def plain_text(
    reader: str,
    subject: str,
    *,
    receipt_id: str,
    prefix: str = "Прочитано",
    charset: str = "windows-1251",
    raw_8bit_subject: bool = True,
    in_reply_to: str | None = None,
    when: datetime | None = None,
) -> bytes:
    """A plain-text notice with no machine-readable part. Old clients put 8-bit bytes straight
    into the Subject header in the body's charset."""
    if raw_8bit_subject:
        subj = f"{prefix}: {subject}".encode(charset)
    else:
        subj = Header(f"{prefix}: {subject}", charset).encode().encode("ascii")
    reply = f"In-Reply-To: {in_reply_to}\r\n".encode() if in_reply_to else b""
    body = f'Ваше сообщение "{subject}" было прочитано.\r\n'.encode(charset)
    return (
        f"From: <{reader}>\r\nTo: rep1@sales.example.ru\r\n".encode()
        + b"Subject: "
        + subj
        + b"\r\n"
        + f"Date: {_date(when)}\r\nMessage-ID: {receipt_id}\r\nMIME-Version: 1.0\r\n".encode()
        + reply
        + f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".encode()
        + body
    )


def ordinary_mail(sender: str, *, message_id: str) -> bytes:
    return (
        f"From: <{sender}>\r\nTo: rep1@sales.example.ru\r\nSubject: Question about delivery\r\n"
        f"Date: {_date(None)}\r\nMessage-ID: {message_id}\r\n\r\nWhen will you deliver?\r\n"
    ).encode()
