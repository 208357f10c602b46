"""Invoice numbers (and dates) named in a payment's purpose, in the spellings payers really use:
"Оплата по счету № 128 от 05.03.2024", "по сч. 128", "счет N128", "сч.№ 0000-000128",
"oplata faktury FV/2024/03/128", "по счетам №№ 128, 129", "по счету № ХИМ-ММР286"."""

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
# A number may carry a series of letters, with or without hyphens: "АБ-128", "ХИМ-ММР286", "INV-000021".
_NUMBER = r"(?:[A-Za-zА-ЯЁа-яё]{1,6}[-/]?){0,3}\d(?:[\d/\-]*\d)?"
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
_LETTERS = re.compile(r"[A-Za-zА-ЯЁа-яё]+")
# Latin letters that look like Cyrillic ones: "XИМ" typed with a Latin X is the same series.
_LOOKALIKES = str.maketrans("ABCEHKMOPTXY", "АВСЕНКМОРТХУ")


@dataclass(frozen=True)
class InvoiceReference:
    """An invoice named in a purpose: its number's key (see number_key) and the date if given."""

    number_key: str
    number: str
    issued_on: date | None
    series: str = ""


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


def number_series(number: str) -> str:
    """The letters of an invoice number ("ХИМ-ММР286" -> "ХИММР"), uppercased and with Latin
    lookalikes read as Cyrillic; "" for a number of digits only. Two numbers whose series are both
    given and differ are different invoices, whatever their digits."""
    if number.isdigit():
        return ""
    return "".join(_LETTERS.findall(number)).upper().translate(_LOOKALIKES)


def same_series(a: str, b: str) -> bool:
    return not a or not b or a == b


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
                found.append(
                    InvoiceReference(
                        key, number, issued if len(numbers) == 1 else None, number_series(number)
                    )
                )
            match = _DATED_CONTINUATION.match(purpose, match.end()) if issued else None
    return found
