"""Masking of personal data for logs, previews and metadata: enough to recognize, not to use."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"([A-Za-z0-9._%+\-]+)@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")
_PHONE = re.compile(r"(?<![\w])\+?\d[\d\s().\-]{6,}\d")


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


def mask_text(text: str | None) -> str:
    """Mask every email address and phone-like number inside free text."""
    if not text:
        return ""
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
