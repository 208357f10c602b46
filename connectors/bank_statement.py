"""Bank statements in the 1CClientBankExchange text format (versions 1.02/1.03), as every Russian
bank client exports them: sections of key=value lines, read into incoming payments and refunds.

The format, as the banks and 1C document it:
  1CClientBankExchange            first line
  ВерсияФормата=1.03
  Кодировка=Windows               Windows = cp1251, DOS = cp866
  ... header keys (Отправитель, ДатаНачала=dd.MM.yyyy, РасчСчет=<our account>) ...
  СекцияРасчСчет ... КонецРасчСчет            balances of one of our accounts
  СекцияДокумент=<kind> ... КонецДокумента    one payment document
  КонецФайла
Lines end with CRLF; values may be empty ("ПлательщикКПП="); the payer's name is in `Плательщик1`
(or `Плательщик`, often prefixed "ИНН 7701234567"); the purpose may be split over
`НазначениеПлатежа1..6`."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from connectors.errors import PermanentSourceError
from connectors.text import DecodedText, decode_bytes
from schemas.accounting import PaymentRecord, normalize_inn

SIGNATURE = "1CClientBankExchange"
ENCODINGS = {"windows": "cp1251", "dos": "cp866", "utf-8": "utf-8", "utf8": "utf-8"}
_ENCODING_KEY = "Кодировка="
# Words every statement contains: the encoding whose reading has them is the file's.
_MARKERS = ("СекцияДокумент", "КонецДокумента")
_REFUND_WORDS = re.compile(r"возврат|refund|zwrot", re.IGNORECASE)
_INN_IN_NAME = re.compile(r"^\s*ИНН\s*(\d{10}|\d{12})\s*", re.IGNORECASE)


@dataclass
class StatementDocument:
    """One `СекцияДокумент` section: its kind, its keys and where it was in the file."""

    kind: str
    fields: dict[str, str]
    line: int
    raw: str


@dataclass
class MalformedSection:
    """A section that could not be read; the rest of the file is read regardless."""

    line: int
    raw: str
    reason: str


@dataclass
class Statement:
    encoding: str
    header: dict[str, str]
    accounts: list[dict[str, str]] = field(default_factory=list)
    documents: list[StatementDocument] = field(default_factory=list)
    malformed: list[MalformedSection] = field(default_factory=list)
    # How the encoding was decided when the file's own claim was not taken as it stands.
    encoding_note: str = ""
    # False when the file ends without `КонецФайла` (cut short by a transfer or a full disk).
    complete: bool = True

    def our_accounts(self) -> set[str]:
        """The accounts this statement was exported for (header and balance sections)."""
        found = {self.header.get("РасчСчет", "")}
        found.update(section.get("РасчСчет", "") for section in self.accounts)
        return {a for a in found if a}

    def warnings(self) -> list[str]:
        """What a person should know about the file as a whole (run metadata, inspect output)."""
        out = []
        if not self.complete:
            out.append(
                f"the file ends without КонецФайла: it may be cut short; {len(self.documents)} "
                "document(s) read up to its end, ask the bank client for the complete export"
            )
        if self.encoding_note:
            out.append(f"encoding: {self.encoding_note}")
        return out


def declared_encoding(raw: bytes) -> str | None:
    """The value of the file's `Кодировка=` line (None without one). The key is Cyrillic, so each
    encoding is tried until it reads back; a file cut right after the key is refused."""
    head = raw[:8192]
    for codec in ("utf-8", "cp1251", "cp866"):
        text = head.decode(codec, errors="replace")
        position = text.find(_ENCODING_KEY)
        if position >= 0:
            rest = text[position + len(_ENCODING_KEY) :]
            value = rest.splitlines()[0].strip() if rest.strip() else ""
            if not value and not rest.strip():
                raise PermanentSourceError(
                    "Кодировка= has no value and nothing follows it (the file is cut short): "
                    "not a complete 1CClientBankExchange file"
                )
            return value
    return None


def detect_encoding(raw: bytes) -> DecodedText:
    """The file's text, decided by content (connectors/text.py): UTF-8 when it is UTF-8 whatever
    `Кодировка=` says, else the declared Windows (cp1251) or DOS (cp866) code page, checked
    against the words every statement contains."""
    declared = declared_encoding(raw)
    return decode_bytes(raw, declared or "Windows", markers=_MARKERS, repair_lines=True)


def parse_statement(raw: bytes) -> Statement:
    """Read the whole file. A file that is not a 1CClientBankExchange file raises
    PermanentSourceError; a broken section is reported in `malformed` and skipped."""
    decoded = detect_encoding(raw)
    lines = decoded.text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not lines or lines[0].strip().lstrip("\ufeff") != SIGNATURE:
        first = lines[0][:60] if lines else ""
        raise PermanentSourceError(
            f"the file does not start with {SIGNATURE!r} (found {first!r}): not a 1C bank statement"
        )
    statement = Statement(encoding=decoded.encoding, header={}, encoding_note=decoded.note, complete=False)
    section: list[str] | None = None
    section_kind = ""
    section_start = 0
    fields: dict[str, str] = {}
    bad: str | None = None

    def close(end_line: int, reason: str | None) -> None:
        raw_text = "\r\n".join(section or [])
        if reason or bad:
            statement.malformed.append(MalformedSection(section_start, raw_text, reason or bad or ""))
        elif section_kind == "account":
            statement.accounts.append(fields)
        else:
            statement.documents.append(StatementDocument(section_kind, fields, section_start, raw_text))

    for number, line in enumerate(lines[1:], start=2):
        stripped = line.strip()
        if not stripped:
            continue
        key, has_value, value = stripped.partition("=")
        if key in ("СекцияДокумент", "СекцияРасчСчет"):
            if section is not None:
                close(number, f"section opened at line {section_start} is not closed before line {number}")
            section, section_start, fields, bad = [line], number, {}, None
            # Files with one kind of document may name it once, in the header's `Документ=`.
            section_kind = (
                (value.strip() or statement.header.get("Документ", ""))
                if key == "СекцияДокумент"
                else "account"
            )
            if key == "СекцияДокумент" and not section_kind:
                bad = f"line {number}: СекцияДокумент names no document kind"
            continue
        if key in ("КонецДокумента", "КонецРасчСчет"):
            if section is None:
                statement.malformed.append(
                    MalformedSection(number, line, f"line {number}: {key} without a section")
                )
                continue
            section.append(line)
            expected = "КонецРасчСчет" if section_kind == "account" else "КонецДокумента"
            close(
                number,
                None
                if key == expected
                else f"line {number}: {key} closes a section opened with a different kind",
            )
            section = None
            continue
        if key == "КонецФайла":
            statement.complete = True
            break
        if section is None:
            if has_value:
                statement.header.setdefault(key, value.strip())
            continue
        section.append(line)
        if not has_value:
            bad = bad or f"line {number}: {stripped[:60]!r} is not a key=value line"
            continue
        fields.setdefault(key.strip(), value.strip())
    if section is not None:
        close(len(lines), f"section opened at line {section_start} is not closed before the end of the file")
    return statement


def read_statement(path: str | Path) -> Statement:
    return parse_statement(Path(path).read_bytes())


def _date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return datetime.strptime(value.strip(), "%d.%m.%Y").date()
    except ValueError:
        raise ValueError(f"date {value!r} is not dd.MM.yyyy") from None


def _purpose(fields: dict[str, str]) -> str | None:
    parts = [fields.get("НазначениеПлатежа", "")] + [
        fields.get(f"НазначениеПлатежа{i}", "") for i in range(1, 7)
    ]
    text = " ".join(p.strip() for p in parts if p and p.strip())
    return text or None


def _name(fields: dict[str, str], side: str) -> tuple[str | None, str | None]:
    """The party's name and the ИНН some banks put in front of it ("ИНН 7701234567 ООО ...")."""
    name = fields.get(f"{side}1") or fields.get(side) or ""
    match = _INN_IN_NAME.match(name)
    inn = match.group(1) if match else None
    if match:
        name = name[match.end() :]
    return (name.strip() or None), inn


def _accounts(fields: dict[str, str]) -> tuple[str, str]:
    payer = fields.get("ПлательщикСчет") or fields.get("ПлательщикРасчСчет") or ""
    payee = fields.get("ПолучательСчет") or fields.get("ПолучательРасчСчет") or ""
    return payer, payee


def document_direction(document: StatementDocument, our_accounts: Iterable[str]) -> str:
    """ "incoming" (money into one of our accounts), "outgoing" (out of one), or "other" (a
    transfer between our own accounts, or a document naming none of them)."""
    ours = set(our_accounts)
    payer, payee = _accounts(document.fields)
    if payee in ours and payer not in ours:
        return "incoming"
    if payer in ours and payee not in ours:
        return "outgoing"
    return "other"


def payment_from_document(document: StatementDocument, our_accounts: Iterable[str]) -> dict[str, Any] | None:
    """The payment record (not yet validated) a document carries for us: money in to one of our
    accounts, or a refund paid out of one; None for any other document (e.g. paying a supplier)."""
    ours = set(our_accounts)
    fields = document.fields
    payer_account, payee_account = _accounts(fields)
    purpose = _purpose(fields)
    direction = document_direction(document, ours)
    if direction == "incoming":
        side, sign, counter_account = "Плательщик", "", payer_account
        paid_on = fields.get("ДатаПоступило") or fields.get("Дата")
    elif direction == "outgoing" and purpose and _REFUND_WORDS.search(purpose):
        side, sign, counter_account = "Получатель", "-", payee_account
        paid_on = fields.get("ДатаСписано") or fields.get("Дата")
    else:
        return None
    name, inn_in_name = _name(fields, side)
    number = fields.get("Номер", "")
    amount = fields.get("Сумма", "")
    doc_date = fields.get("Дата", "")
    inn = fields.get(f"{side}ИНН") or inn_in_name
    return {
        # The bank's document number repeats across payers and years: qualify it.
        "source_ref": f"{doc_date}/{number}/{normalize_inn(inn) or counter_account}/{sign}{amount}",
        "paid_on": _date(paid_on),
        "amount": f"{sign}{amount}" if amount else None,
        "payer_tax_id": inn,
        "payer_name": name,
        "payer_account": counter_account or None,
        "purpose": purpose,
        "document_number": number,
    }


@dataclass
class StatementPayment:
    """A payment document of the statement: its record, or why it cannot be one, and what a person
    should know about it (an ИНН failing its checksum is kept out of matching, not dropped unsaid)."""

    line: int
    raw: str
    record: PaymentRecord | None
    error: Exception | None
    warnings: list[str] = field(default_factory=list)


def statement_payments(statement: Statement, our_accounts: Iterable[str] = ()) -> Iterator[StatementPayment]:
    """Every document of the statement that is a payment to us (or our refund), validated; a
    document that fails validation is yielded with its error so that the caller quarantines it.
    With no accounts configured, the accounts the statement was exported for are ours."""
    accounts = set(our_accounts) or statement.our_accounts()
    for document in statement.documents:
        try:
            draft = payment_from_document(document, accounts)
            if draft is None:
                continue
            if not draft.get("document_number"):
                raise ValueError("the document has no Номер")
            record = PaymentRecord.model_validate(draft)
        except (ValidationError, ValueError) as exc:
            yield StatementPayment(document.line, document.raw, None, exc)
            continue
        warnings = []
        raw_inn = str(draft.get("payer_tax_id") or "").strip()
        if raw_inn and record.payer_tax_id is None:
            warnings.append(
                f"line {document.line}: ИНН {raw_inn!r} fails its checksum (a typo in the bank "
                "client?): the payment is kept and matched as one without an ИНН"
            )
        yield StatementPayment(document.line, document.raw, record, None, warnings)


def statement_summary(statement: Statement, our_accounts: Iterable[str] = ()) -> dict[str, Any]:
    """Counts a person checks a file by: documents, incoming, outgoing, other, malformed sections,
    and the encoding it was read in (with why, when that is not what the file declares)."""
    accounts = set(our_accounts) or statement.our_accounts()
    directions = Counter(document_direction(d, accounts) for d in statement.documents)
    summary: dict[str, Any] = {
        "documents": len(statement.documents),
        "incoming": directions["incoming"],
        "outgoing": directions["outgoing"],
        "other": directions["other"],
        "malformed": len(statement.malformed),
        "encoding": statement.encoding,
        "complete": statement.complete,
    }
    if statement.encoding_note:
        summary["encoding_note"] = statement.encoding_note
    return summary


def render_statement(
    header: dict[str, str],
    accounts: list[dict[str, str]],
    documents: list[tuple[str, dict[str, str]]],
    encoding: str = "Windows",
) -> bytes:
    """A statement file as a bank client writes it (CRLF, the named encoding): for the demo, tests
    and anyone producing a file to try the rules on."""
    lines = [SIGNATURE, "ВерсияФормата=1.03", f"Кодировка={encoding}"]
    lines += [f"{key}={value}" for key, value in header.items()]
    for account in accounts:
        lines.append("СекцияРасчСчет")
        lines += [f"{key}={value}" for key, value in account.items()]
        lines.append("КонецРасчСчет")
    for kind, fields in documents:
        lines.append(f"СекцияДокумент={kind}")
        lines += [f"{key}={value}" for key, value in fields.items()]
        lines.append("КонецДокумента")
    lines.append("КонецФайла")
    return ("\r\n".join(lines) + "\r\n").encode(ENCODINGS[encoding.lower()])
