"""Every word of the alerts reps get, in one table per language (ru, pl, en), and their rendering
per channel from one set of facts: plain text and HTML for email, HTML for Telegram, mrkdwn for Slack.

A new language is one more entry in STRINGS; a new line of content is one more entry in `lines`.
Channels differ only in markup, never in what they say."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from babel.dates import format_datetime
from babel.numbers import format_currency

from hub.timeutil import as_utc

# The kind of outbox row these templates render (the facts are kept in its `details`).
EMAIL_OPENED = "email_opened"

STRINGS: dict[str, dict[str, str]] = {
    "ru": {
        "subject": "Письмо прочитано — позвоните: {who}",
        "headline": "{who} открыл(а) письмо «{subject}»",
        "opened": "Открыто",
        "via_receipt": "уведомление о прочтении",
        "via_pixel": "пиксель в письме",
        "person": "Контакт",
        "company": "Компания",
        "phone": "Телефон",
        "ext": "доб.",
        "email": "Email",
        "deal": "Сделка",
        "stage": "этап",
        "card": "Карточка",
        "open_card": "открыть карточку контакта",
        "footer": "Задача «Позвонить сейчас» уже стоит в CRM.",
        "task_title": "Клиент прочитал письмо — позвоните сейчас: {who}",
        "no_subject": "(без темы)",
        "client": "Клиент",
    },
    "pl": {
        "subject": "E-mail przeczytany — zadzwoń: {who}",
        "headline": "{who} otworzył(a) wiadomość „{subject}”",
        "opened": "Otwarto",
        "via_receipt": "potwierdzenie przeczytania",
        "via_pixel": "piksel w wiadomości",
        "person": "Kontakt",
        "company": "Firma",
        "phone": "Telefon",
        "ext": "wew.",
        "email": "E-mail",
        "deal": "Szansa sprzedaży",
        "stage": "etap",
        "card": "Karta",
        "open_card": "otwórz kartę kontaktu",
        "footer": "Zadanie „Zadzwoń teraz” czeka już w CRM.",
        "task_title": "Klient przeczytał wiadomość — zadzwoń teraz: {who}",
        "no_subject": "(bez tematu)",
        "client": "Klient",
    },
    "en": {
        "subject": "Email read — call now: {who}",
        "headline": "{who} opened “{subject}”",
        "opened": "Opened",
        "via_receipt": "read receipt",
        "via_pixel": "tracking pixel",
        "person": "Contact",
        "company": "Company",
        "phone": "Phone",
        "ext": "ext.",
        "email": "Email",
        "deal": "Deal",
        "stage": "stage",
        "card": "Card",
        "open_card": "open the contact's card",
        "footer": "A “call now” task is waiting in the CRM.",
        "task_title": "Client read your email — call now: {who}",
        "no_subject": "(no subject)",
        "client": "Client",
    },
}
LANGUAGES = tuple(STRINGS)


@dataclass(frozen=True)
class Line:
    """One line of an alert: an optional label, the text, and a link the text points to."""

    label: str
    text: str
    href: str | None = None


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str  # plain text (email text part, the outbox's readable body)
    markup: str | None = None  # HTML for email and Telegram, mrkdwn for Slack


def language_of(value: str | None, default: str) -> str:
    """ru/pl/en from a rep's locale ("ru", "pl_PL", "en-GB"); the company's default otherwise."""
    code = (value or "").replace("-", "_").split("_")[0].lower()
    return code if code in STRINGS else (default if default in STRINGS else "en")


def _who(facts: dict[str, Any], words: dict[str, str]) -> str:
    return facts.get("person") or facts.get("company") or facts.get("email") or words["client"]


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(value: str | datetime, timezone: str | None, language: str) -> str:
    """The moment in the rep's own time zone, written the way the rep's language writes it."""
    moment = as_utc(datetime.fromisoformat(value) if isinstance(value, str) else value)
    return format_datetime(moment, "d MMMM, HH:mm", tzinfo=_zone(timezone), locale=language)


def money(amount: str | Decimal | None, currency: str | None, language: str) -> str:
    """ "1 250 000,00 ₽" in Russian, "1 250 000,00 zł" in Polish, "RUB 1,250,000.00" in English."""
    if amount is None:
        return ""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    return format_currency(value, currency or "RUB", locale=language)


def phone_line(e164: str | None, ext: str | None, words: dict[str, str]) -> tuple[str, str] | None:
    """(international spelling, tel: URI) of a stored E.164 number; None without one."""
    if not e164:
        return None
    try:
        number = phonenumbers.parse(e164, None)
        text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        uri = "tel:" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        text, uri = e164, f"tel:{e164}"
    if ext:
        text += f" {words['ext']} {ext}"
        uri += f";ext={ext}"  # RFC 3966
    return text, uri


def lines(facts: dict[str, Any]) -> list[Line]:
    """What an "email opened" alert says, in the rep's language, top to bottom."""
    language = facts["language"]
    words = STRINGS[language]
    out = [
        Line(
            "",
            words["headline"].format(
                who=_who(facts, words), subject=facts.get("email_subject") or words["no_subject"]
            ),
        ),
        Line(
            words["opened"],
            f"{local_time(facts['opened_at'], facts.get('timezone'), language)} "
            f"({words.get('via_' + str(facts.get('via')), str(facts.get('via')))})",
        ),
    ]
    if facts.get("person"):
        out.append(Line(words["person"], facts["person"]))
    if facts.get("company"):
        out.append(Line(words["company"], facts["company"]))
    phone = phone_line(facts.get("phone_e164"), facts.get("phone_ext"), words)
    if phone is not None:
        out.append(Line(words["phone"], phone[0], phone[1]))
    if facts.get("email"):
        out.append(Line(words["email"], facts["email"], f"mailto:{facts['email']}"))
    if facts.get("deal_title"):
        deal = facts["deal_title"]
        amount = money(facts.get("deal_amount"), facts.get("deal_currency"), language)
        if amount:
            deal += f" — {amount}"
        if facts.get("deal_stage"):
            deal += f" ({words['stage']}: {facts['deal_stage']})"
        out.append(Line(words["deal"], deal))
    if facts.get("contact_url"):
        out.append(Line(words["card"], words["open_card"], facts["contact_url"]))
    out.append(Line("", words["footer"]))
    return out


def subject(facts: dict[str, Any]) -> str:
    words = STRINGS[facts["language"]]
    return words["subject"].format(who=_who(facts, words))


def task_title(facts: dict[str, Any]) -> str:
    words = STRINGS[facts["language"]]
    return words["task_title"].format(who=_who(facts, words))


def as_text(items: list[Line]) -> str:
    out = []
    for line in items:
        text = f"{line.label}: {line.text}" if line.label else line.text
        # A link whose text is not the address itself is spelled out in plain text.
        if line.href and not line.href.startswith(("tel:", "mailto:")):
            text += f" — {line.href}"
        out.append(text)
    return "\n".join(out)


def as_html(items: list[Line], title: str) -> str:
    esc = html.escape
    rows = []
    for line in items:
        text = esc(line.text)
        if line.href:
            text = f'<a href="{esc(line.href, quote=True)}">{text}</a>'
        rows.append(f"<p><b>{esc(line.label)}:</b> {text}</p>" if line.label else f"<p>{text}</p>")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
        + esc(title)
        + "</title></head><body>\n"
        + "\n".join(rows)
        + "\n</body></html>\n"
    )


def as_telegram(items: list[Line], title: str) -> str:
    """Bot API HTML (parse_mode=HTML): <b> and <a> only. Telegram links http(s) URLs only, so a
    phone stays plain text in international form, which Telegram apps make tappable themselves."""
    esc = html.escape
    out = [f"<b>{esc(title)}</b>"]
    for line in items:
        text = esc(line.text, quote=False)
        if line.href and line.href.startswith(("http://", "https://")):
            text = f'<a href="{esc(line.href, quote=True)}">{text}</a>'
        out.append(f"<b>{esc(line.label, quote=False)}:</b> {text}" if line.label else text)
    return "\n".join(out)


def _slack_escape(text: str) -> str:
    # Slack mrkdwn: only &, < and > are control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def as_slack(items: list[Line], title: str) -> str:
    out = [f"*{_slack_escape(title)}*"]
    for line in items:
        text = _slack_escape(line.text)
        if line.href:
            text = f"<{line.href}|{text}>"
        out.append(f"*{_slack_escape(line.label)}:* {text}" if line.label else text)
    return "\n".join(out)


def render(facts: dict[str, Any], channel: str) -> Rendered:
    """The alert for one channel: smtp (text + HTML), telegram (HTML), slack (mrkdwn), or
    text only for anything else."""
    items = lines(facts)
    title = subject(facts)
    text = as_text(items)
    if channel == "smtp":
        return Rendered(title, text, as_html(items, title))
    if channel == "telegram":
        return Rendered(title, text, as_telegram(items, title))
    if channel == "slack":
        return Rendered(title, text, as_slack(items, title))
    return Rendered(title, text)
