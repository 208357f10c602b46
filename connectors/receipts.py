"""Read receipts as real clients send them (RFC 8098 reports, Thunderbird, Outlook/Exchange
"Read:" reports in any language, plain-text notices) parsed into schemas.mail records."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

from schemas.mail import Disposition, DispositionSource, ParsedReceipt, ReceiptVariant, SentEmail


class NotAReceipt(ValueError):
    """The message is ordinary mail, not a read receipt."""


# Localized subject prefixes of "read" and "not read" reports (Outlook/Exchange, Thunderbird,
# Gmail/Workspace). Longer forms first so that "Not read:" never matches as "read:".
NOT_READ_PREFIXES = (
    "not read",
    "не прочитано",
    "непрочитано",
    "nieprzeczytane",
    "nie przeczytano",
    "ungelesen",
    "nicht gelesen",
    "non lu",
    "no leído",
    "non letto",
    "niet gelezen",
    "não lida",
    "não lido",
    "ej läst",
    "ikke læst",
    "ikke lest",
    "nepřečteno",
    "не е прочетено",
    "не прочитано повідомлення",
    "return receipt (deleted)",
    "return receipt (denied)",
)
READ_PREFIXES = (
    "read",
    "прочитано",
    "прочитан",
    "przeczytane",
    "przeczytano",
    "gelesen",
    "lu",
    "leído",
    "letto",
    "gelezen",
    "lida",
    "lido",
    "läst",
    "læst",
    "lest",
    "luettu",
    "přečteno",
    "prečítané",
    "olvasott",
    "citit",
    "прочетено",
    "pročitano",
    "prebrano",
    "okundu",
    "διαβάστηκε",
    "已读",
    "已讀",
    "開封済み",
    "읽음",
    "read receipt",
    "disposition notification",
    "return receipt (displayed)",
    "return receipt",
    "уведомление о прочтении",
    "potwierdzenie przeczytania",
)
_PREFIX_RE = re.compile(
    r"^\s*(?P<prefix>"
    + "|".join(re.escape(p) for p in sorted(NOT_READ_PREFIXES + READ_PREFIXES, key=len, reverse=True))
    + r")\s*(?::|-|–|—)\s*",
    re.IGNORECASE,
)
# Reply/forward prefixes a sent subject may carry, stripped before comparing subjects.
_REPLY_RE = re.compile(r"^\s*(re|fw|fwd|ответ|пересл|odp|pd)\s*(\[\d+\])?\s*:\s*", re.IGNORECASE)
_MSGID_RE = re.compile(r"<[^<>\s]+>")
_SPACED_MSGID_RE = re.compile(r"<\s*([^<>\s]+(?:\s+[^<>\s]+)*)\s*>")
_DISPOSITIONS: tuple[Disposition, ...] = (
    "displayed",
    "deleted",
    "dispatched",
    "processed",
    "denied",
    "failed",
)


def parse_receipt(raw: bytes) -> ParsedReceipt:
    """Parse one message; raise NotAReceipt for ordinary mail. A receipt with nothing to
    correlate it by is returned with `problem` set (the caller quarantines it)."""
    msg = email.message_from_bytes(raw, policy=policy.default)
    subject = header_text(raw, msg, "Subject")
    report = _disposition_fields(msg)
    prefix_match = _PREFIX_RE.match(subject)
    if report is None and prefix_match is None:
        raise NotAReceipt("neither a disposition-notification report nor a read-receipt subject")

    source: DispositionSource = "report"
    if report is not None:
        disposition = _disposition_value(report.get("Disposition", ""))
        reader = _address_field(report.get("Final-Recipient") or report.get("Original-Recipient") or "")
        original_id = first_message_id(report.get("Original-Message-ID", ""))
    else:
        disposition, reader, original_id = "unknown", None, None
    if disposition == "unknown" and prefix_match is not None:
        # No report, or one a client wrote wrong: the subject's "Read:" says it, less surely.
        prefix = prefix_match.group("prefix").lower()
        disposition = "deleted" if prefix in NOT_READ_PREFIXES else "displayed"
        source = "subject"
    reader = reader or _normalize_address(parseaddr(str(msg.get("From", "")))[1])

    receipt = ParsedReceipt(
        variant=_variant(msg, subject, report is not None),
        disposition=disposition,
        disposition_source=source,
        opened=disposition == "displayed",
        receipt_message_id=first_message_id(str(msg.get("Message-ID", ""))),
        original_message_id=original_id,
        references=message_ids(str(msg.get("References", ""))),
        in_reply_to=first_message_id(str(msg.get("In-Reply-To", ""))),
        headers_message_id=_rfc822_headers_message_id(msg),
        reader=reader,
        subject=subject,
        original_subject=strip_subject_prefixes(subject),
        received_at=_date(msg),
    )
    if not (
        receipt.original_message_id
        or receipt.references
        or receipt.in_reply_to
        or receipt.headers_message_id
        or (receipt.original_subject and receipt.reader)
    ):
        receipt.problem = (
            "receipt names no original Message-ID, References, In-Reply-To or attached headers, "
            "and has no subject and reader to match by"
        )
    return receipt


def parse_sent_email(raw: bytes) -> SentEmail:
    """A sent email's correlation keys; raise ValueError when it has no Message-ID or date."""
    msg = email.message_from_bytes(raw, policy=policy.default)
    message_id = first_message_id(str(msg.get("Message-ID", "")))
    if not message_id:
        raise ValueError("sent email has no Message-ID: receipts cannot be correlated to it")
    sent_at = _date(msg)
    if sent_at is None:
        raise ValueError(f"sent email {message_id} has no valid Date header")
    recipients = [
        _normalize_address(addr)
        for _, addr in getaddresses([str(v) for v in msg.get_all("To", []) + msg.get_all("Cc", [])])
        if addr
    ]
    return SentEmail(
        message_id=message_id,
        from_addr=_normalize_address(parseaddr(str(msg.get("From", "")))[1]) or None,
        to_addrs=recipients,
        subject=header_text(raw, msg, "Subject"),
        sent_at=sent_at,
        deal_ref=(str(msg.get("X-CRM-Deal", "")).strip() or None),
    )


# ---------------------------------------------------------------- pieces


def _disposition_fields(msg: EmailMessage) -> dict[str, str] | None:
    """The fields of the message/disposition-notification part, case-insensitively keyed. Read
    leniently, as old webmail clients write them: a space before the colon
    (`Original-Message-ID : <id>`), no blank line between the part's headers and its fields."""
    for part in msg.walk():
        if part.get_content_type() != "message/disposition-notification":
            continue
        out: dict[str, str] = {}
        # Fields written straight under the part's Content-Type land among its headers.
        for name, value in part.raw_items():
            _add_field(out, name, str(value))
        payload = part.get_payload()
        if isinstance(payload, list) and payload:
            text = payload[0].as_string(policy=policy.compat32.clone(linesep="\n", max_line_length=0))
        elif isinstance(payload, str):
            text = payload
        else:
            text = ""
        for name, value in _lenient_fields(text):
            _add_field(out, name, value)
        return out
    return None


def _add_field(out: dict[str, str], name: str, value: str) -> None:
    canonical = _FIELD_NAMES.get(name.strip().lower())
    if canonical is not None:
        # A folded field comes back with its leading whitespace.
        out.setdefault(canonical, " ".join(value.split()))


_FIELD_LINE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(?P<value>.*)$")


def _lenient_fields(text: str) -> list[tuple[str, str]]:
    """`Name: value` lines (continuation lines folded in), whatever blank lines or a stray space
    before the colon a client wrote."""
    fields: list[tuple[str, str]] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}")
            continue
        match = _FIELD_LINE.match(line)
        if match:
            fields.append((match.group("name"), match.group("value").strip()))
    return fields


_FIELD_NAMES = {
    "final-recipient": "Final-Recipient",
    "original-recipient": "Original-Recipient",
    "original-message-id": "Original-Message-ID",
    "disposition": "Disposition",
}


def _disposition_value(field: str) -> Disposition:
    """`automatic-action/MDN-sent-automatically; displayed` (RFC 8098) or the older
    `...; displayed/error` form: the disposition type after the semicolon."""
    _, _, kind = field.partition(";")
    token = kind.strip().split("/")[0].strip().lower()
    for known in _DISPOSITIONS:
        if token == known:
            return known
    return "unknown"


def _address_field(value: str) -> str | None:
    """`rfc822; someone@example.com` (Exchange writes `RFC822;` and mixed case)."""
    _, _, address = value.partition(";")
    return _normalize_address(parseaddr(address.strip() or value)[1]) or None


def _normalize_address(address: str) -> str:
    return address.strip().strip("<>").lower()


def _variant(msg: EmailMessage, subject: str, has_report: bool) -> ReceiptVariant:
    lowered = subject.lower()
    agent = " ".join(str(msg.get(h, "")) for h in ("User-Agent", "X-Mailer", "Reporting-UA")).lower()
    if lowered.startswith("return receipt") or "thunderbird" in agent or "mozilla" in agent:
        return "thunderbird"
    if not has_report:
        return "plain_text"
    if "outlook" in agent or "exchange" in agent or msg.get("X-MS-Exchange-Organization-SCL") is not None:
        return "outlook"
    if _PREFIX_RE.match(subject) and not lowered.startswith(("read receipt", "disposition notification")):
        # "Read:" / "Прочитано:" / "Przeczytane:" reports are Outlook's wording.
        return "outlook"
    return "rfc8098"


def _rfc822_headers_message_id(msg: EmailMessage) -> str | None:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            headers = BytesHeaderParser(policy=policy.default).parsebytes(text)
            return first_message_id(str(headers.get("Message-ID", "")))
        if ctype == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                return first_message_id(str(inner[0].get("Message-ID", "")))
    return None


def _date(msg: Message) -> datetime | None:
    """The Date header as sent. Comments are CFWS (RFC 5322 section 3.2.2): "00:19:00 (EDT) -0400"
    is 04:19 UTC, yet email.utils reads the comment as the zone and drops the offset; and the
    header object of policy.default keeps that misreading. So the raw value is taken, its comments
    removed, and then email.utils.parsedate_to_datetime applied."""
    value = next((v for name, v in msg.raw_items() if name.lower() == "date"), None)
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(_without_comments(" ".join(str(value).split())))
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _without_comments(value: str) -> str:
    out: list[str] = []
    depth = 0
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return " ".join("".join(out).split())


def first_message_id(value: str) -> str | None:
    ids = message_ids(value)
    if ids:
        return ids[0]
    spaced = _SPACED_MSGID_RE.search(value)
    if spaced:
        # "<199509192301.23456 >": spaces a client left inside the brackets.
        return "<" + "".join(spaced.group(1).split()) + ">"
    bare = value.strip()
    # Some clients drop the angle brackets.
    return f"<{bare}>" if bare and " " not in bare and "@" in bare else None


def message_ids(value: str) -> list[str]:
    return _MSGID_RE.findall(" ".join(value.split()))


def strip_subject_prefixes(subject: str) -> str:
    """The original subject: localized receipt prefixes and Re:/Fwd: removed, spaces collapsed
    (header folding may drop or add spaces in long Cyrillic subjects)."""
    text = " ".join(subject.split())
    for _ in range(5):
        stripped = _PREFIX_RE.sub("", text, count=1)
        stripped = _REPLY_RE.sub("", stripped, count=1)
        if stripped == text:
            break
        text = stripped.strip()
    return text


def subject_key(subject: str) -> str:
    """A comparison key for subjects: prefixes stripped, case and whitespace folded."""
    return "".join(strip_subject_prefixes(subject).casefold().split())


# ---------------------------------------------------------------- charsets


def header_text(raw: bytes, msg: Message, name: str) -> str:
    """A header decoded: RFC 2047 words by the email package; raw 8-bit bytes (clients that
    write windows-1251 or KOI8-R straight into headers) by the message's charset or a guess."""
    value = msg.get(name)
    text = str(value) if value is not None else ""
    if "\ufffd" not in text and not any("\udc80" <= ch <= "\udcff" for ch in text):
        return " ".join(text.split())
    raw_value = _raw_header(raw, name)
    if raw_value is None:
        return " ".join(text.split())
    return " ".join(decode_8bit(raw_value, _declared_charsets(msg)).split())


def _raw_header(raw: bytes, name: str) -> bytes | None:
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    match = re.search(
        rb"^" + re.escape(name.encode()) + rb"[ \t]*:(.*(?:\r?\n[ \t].*)*)",
        head,
        re.IGNORECASE | re.MULTILINE,
    )
    if match is None:
        return None
    return re.sub(rb"\r?\n[ \t]+", b" ", match.group(1)).strip()


def _declared_charsets(msg: Message) -> list[str]:
    charsets = []
    for part in msg.walk():
        charset = part.get_content_charset()
        if charset and charset not in charsets and charset not in ("us-ascii", "ascii"):
            charsets.append(charset)
    return charsets


def decode_8bit(data: bytes, declared: list[str] | None = None) -> str:
    """Decode bytes of unknown Cyrillic-or-Latin charset: UTF-8 when valid, else the charset the
    message declares, else whichever of windows-1251 / KOI8-R reads as more lowercase Cyrillic
    (each turns the other's lowercase text into uppercase)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for charset in declared or []:
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    candidates = []
    for charset in ("windows-1251", "koi8-r"):
        text = data.decode(charset, errors="replace")
        lower = sum(1 for ch in text if "а" <= ch <= "я" or ch == "ё")
        candidates.append((lower, charset, text))
    return max(candidates)[2]
