"""Normalization of the strong keys contacts are matched on: phones and emails."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

_EXTENSION = re.compile(r"(?:доб\.?|доп\.?|ext\.?|wew\.?|x)\s*(\d{1,6})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Phone:
    e164: str
    extension: str | None = None


def normalize_phone(raw: str | None, default_region: str = "RU") -> Phone | None:
    """E.164 form of a phone as people type it ("8 (999) 123-45-67 доб. 12"); None when it
    is not a valid number."""
    if not raw or not raw.strip():
        return None
    text = raw.strip()
    extension = None
    match = _EXTENSION.search(text)
    if match:
        extension = match.group(1)
        text = text[: match.start()].strip(" ,;")
    digits = re.sub(r"\D", "", text)
    # Russian trunk prefix: 8XXXXXXXXXX written without +7.
    if default_region == "RU" and len(digits) == 11 and digits.startswith("8") and not text.startswith("+"):
        text = "+7" + digits[1:]
    elif (
        len(digits) == 11
        and digits.startswith("7")
        and not text.startswith("+")
        and default_region in ("RU", "KZ")
    ):
        text = "+" + digits
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    if number.extension and not extension:
        extension = number.extension
    return Phone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), extension)


_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)+$"
)


def normalize_email(raw: str | None) -> str | None:
    """Lower-cased address without surrounding junk ("<Ivan@Mail.RU>", "mailto:"); None if
    it is not an address."""
    if not raw:
        return None
    text = raw.strip().strip("<>\"' ,;").removeprefix("mailto:").strip()
    text = text.lower()
    if len(text) > 254 or not _EMAIL.match(text):
        return None
    return text
