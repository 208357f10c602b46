"""Invoice numbers (and dates) named in a payment's purpose, in the spellings payers really use:
"Оплата по счету № 128 от 05.03.2024", "по сч. 128", "счет N128", "сч.№ 0000-000128",
"oplata faktury FV/2024/03/128", "по счетам №№ 128, 129"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

# A word that says "invoice" — never "договор" (contract) or "счет-фактура" (a tax invoice,
# numbered separately), whose numbers would match unrelated invoices.
_INVOICE_WORD = (
    r"(?:(?<![\w-])(?:сч[её]т(?:у|а|ам|ов|ом|ах|е)?(?!\s*-?\s*фактур)(?:-оферт[аеуы]?|\s+на\s+оплату)?"
    r"|сч(?:\.|\b)(?!\s*-?\s*ф)"
    r"|invoices?|inv\.?|faktur[aęyi]?|rachunk[ua]|rechnung)(?![\w-]))"
)
_NUMBER = r"(?:[A-Za-zА-Яа-я]{1,5}[-/])?\d(?:[\d/\-]*\d)?"
_MARK = r"(?:№+|N(?=\s*\d)|#|No\.?|Nr\.?|номер)"
_DATE = r"(?P<day>\d{1,2})[./](?P<month>\d{1,2})[./](?P<year>\d{4}|\d{2})"
_DATED = rf"\s*(?:г\.)?\s*(?:от|from|z\s+dnia|z|dd\.?|vom)\s*(?P<date>{_DATE})"
_REFERENCE = re.compile(
    rf"{_INVOICE_WORD}[\s.:]*(?:{_MARK}[\s.:]*)?(?P<numbers>{_NUMBER}(?:\s*(?:,|;|и|and|i)\s*(?:{_MARK}\s*)?{_NUMBER})*)"
    rf"(?:{_DATED})?",
    re.IGNORECASE,
)
# "... № 128 от 05.03.2024 и № 129 от 06.03.2024": a further number continues the list only with
# its own date, so an amount after a comma ("..., 1000-00 руб.") is never read as an invoice.
_DATED_CONTINUATION = re.compile(
    rf"\s*(?:,|;|и|and|i)\s*(?:{_MARK}\s*)?(?P<numbers>{_NUMBER}){_DATED}", re.IGNORECASE
)
_NUMBER_RE = re.compile(_NUMBER)
_DIGIT_GROUPS = re.compile(r"\d+")
_YEAR = re.compile(r"^20\d\d$")


@dataclass(frozen=True)
class InvoiceReference:
    """An invoice named in a purpose: its number's key (see number_key) and the date if given."""

    number_key: str
    number: str
    issued_on: date | None


def number_key(number: str) -> str:
    """What identifies an invoice number across spellings: its last group of digits (the one before
    a trailing year), without leading zeros ("0000-000128", "FV/2024/03/128", "128/2024" -> "128")."""
    if number.isdigit():  # the common case, and the hot path when matching millions
        return number.lstrip("0") or "0"
    groups = _DIGIT_GROUPS.findall(number)
    if not groups:
        return number.strip().upper()
    last = groups[-1]
    years_before = [g for g in groups[:-1] if _YEAR.match(g)]
    # "128/2024": the year comes last and the number before it; "FV/2024/03/2024": a number that
    # looks like a year, after the document's own year (no number carries two years).
    if len(groups) > 1 and _YEAR.match(last) and not years_before:
        last = next((g for g in reversed(groups[:-1]) if not _YEAR.match(g)), last)
    return last.lstrip("0") or "0"


def _date(day: str, month: str, year: str) -> date | None:
    full_year = int(year) + 2000 if len(year) == 2 else int(year)
    try:
        return date(full_year, int(month), int(day))
    except ValueError:
        return None


def invoice_references(purpose: str | None) -> list[InvoiceReference]:
    """Every invoice the purpose names, in order, each once."""
    if not purpose:
        return []
    found: list[InvoiceReference] = []
    seen: set[str] = set()
    for first in _REFERENCE.finditer(purpose):
        match: re.Match[str] | None = first
        while match is not None:
            issued = None
            if match.group("date"):
                issued = _date(match.group("day"), match.group("month"), match.group("year"))
            numbers = _NUMBER_RE.findall(match.group("numbers"))
            for number in numbers:
                key = number_key(number)
                if key in seen:
                    continue
                seen.add(key)
                # A date written after a list belongs to the number only when there is one.
                found.append(InvoiceReference(key, number, issued if len(numbers) == 1 else None))
            match = _DATED_CONTINUATION.match(purpose, match.end()) if issued else None
    return found
