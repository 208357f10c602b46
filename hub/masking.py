"""Masking of personal data and credentials for logs, previews, metadata and messages: enough to
recognize, not to use. `install_log_masking` applies `mask_text` to every log line of a process."""

from __future__ import annotations

import logging
import re
from typing import Any

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-]+)@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
_PHONE = re.compile(r"(?<![\w])\+?\d[\d\s().\-]{6,}\d")
# Numbers the phone pattern also matches that are not phones: dates, times of day, IPv4
# addresses and decimals (a log line or a payment purpose full of masked dates is unreadable).
_NOT_A_PHONE = re.compile(
    r"\d{4}-\d{2}-\d{2}\b.*|\d{1,2}\.\d{1,2}\.\d{2,4}\b.*|\d{1,3}(\.\d{1,3}){3}|\d+\.\d+"
)
# Phones have 9 (PL national) to 15 (E.164 maximum) digits.
_PHONE_DIGITS = range(9, 16)
# scheme://user:password@host — the password runs to the last "@" before the host.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^\s]*)@")


def mask_email(email: str | None) -> str:
    if not email:
        return ""
    local, _, domain = email.partition("@")
    if not domain:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str | None) -> str:
    """Keep the country prefix and the last two digits: +7*******67."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 4:
        return "***"
    prefix = "+" if phone.strip().startswith("+") else ""
    return f"{prefix}{digits[:1]}{'*' * (len(digits) - 3)}{digits[-2:]}"


def mask_url_password(text: str) -> str:
    """Every URL's password replaced by ***: postgresql://hub:***@db/hub. The one function for
    database URLs and webhook URLs shown by commands, in errors and in logs."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}***@", text)


def _mask_phone_candidate(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = sum(ch.isdigit() for ch in candidate)
    if digits not in _PHONE_DIGITS or _NOT_A_PHONE.fullmatch(candidate.strip()):
        return candidate
    return mask_phone(candidate)


def mask_text(text: str | None) -> str:
    """Mask every email address, phone-like number and URL password inside free text."""
    if not text:
        return ""
    text = mask_url_password(text)
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE.sub(_mask_phone_candidate, text)


_installed = False


def install_log_masking() -> None:
    """Mask every log record of this process as it is created (message, arguments and the
    exception text), whoever logs it: the hub, uvicorn, SQLAlchemy, a library. Idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to logging to report
            return record
        record.msg, record.args = mask_text(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return record

    logging.setLogRecordFactory(masked_record)
