"""Demo data of the mail source: a maildir of offers the reps sent to seeded contacts and a
maildir of receipts of every variant (RFC 8098, Thunderbird, Outlook ru/pl, "not read", plain
text in KOI8-R, an uncorrelated one, a broken one, ordinary mail). Written byte-for-byte the
same each time, with fixed file times, so running the demo twice reads nothing new."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.demo import mail_formats as formats
from hub.settings import MailSettings
from hub.store.db import session_scope
from hub.store.models import Contact, Deal, Rep


def generate_mail_demo(session: Session, demo_dir: Path, today: date, database_url: str) -> dict[str, Any]:
    root = demo_dir / "mail"
    sent_at = datetime.combine(today - timedelta(days=1), time(9, 0), UTC)
    offers = _offers(session)
    sent = [
        formats.sent_email(
            message_id,
            contact_email,
            subject,
            sender=rep_email,
            when=sent_at + timedelta(minutes=n),
            deal=deal,
        )
        for n, (message_id, contact_email, subject, rep_email, deal) in enumerate(offers)
    ]
    read_at = sent_at + timedelta(hours=2)
    receipts = _receipts(offers, read_at)
    _write_maildir(root / "sent", sent, sent_at)
    _write_maildir(root / "receipts", receipts, read_at)
    return {
        "mail": {
            "imap_host": "",
            "maildir": str(root / "receipts"),
            "sent_maildir": str(root / "sent"),
            # Alerts are really delivered: as .eml files a newcomer opens in any mail program.
            "alert_eml_dir": str(alerts_folder(demo_dir)),
        }
    }


def alerts_folder(demo_dir: Path) -> Path:
    return demo_dir / "alerts"


def alert_report(database_url: str, mail: MailSettings) -> list[str]:
    """The demo's lines about reps' alerts: how many were delivered and where, what keeps any
    from being delivered, and the first one in full as the rep reads it."""
    from hub.alerts.deliver import rendered, transports_from_settings
    from hub.alerts.health import delivery_summary, delivery_verdict, first_delivered

    with session_scope(database_url) as session:
        counts = delivery_summary(session)
        verdict = delivery_verdict(session, list(transports_from_settings(mail)))
        first = first_delivered(session)
        rep = session.scalar(select(Rep).where(Rep.email == first.recipient)) if first is not None else None
        if first is not None:
            session.expunge(first)
    where = (
        f"as .eml files in {mail.alert_eml_dir}"
        if mail.alert_eml_dir and not mail.smtp_host
        else "by SMTP/chat"
    )
    lines = [
        f"alerts to reps: {counts['sent']} delivered {where}, {counts['pending'] + counts['sending']} waiting, "
        f"{counts['failed']} failed"
    ]
    if not verdict.passed:
        lines.append(f"ALERTS NOT DELIVERED: {verdict.description}")
    if first is not None:
        content = rendered(first)
        who = f"{rep.name} <{first.recipient}>" if rep is not None else first.recipient
        lines += ["", f"The first alert, as {who} reads it:", f"  Subject: {content.subject}"]
        lines += [f"  {line}" for line in content.text.splitlines()]
    return lines


def _offers(session: Session) -> list[tuple[str, str, str, str, str | None]]:
    """(Message-ID, to, subject, from, deal ref) of eight offers to seeded contacts."""
    rows = session.execute(
        select(Contact.email, Rep.email, Contact.id)
        .join(Rep, Rep.id == Contact.owner_rep_id)
        .where(Contact.source_system == "crm", Contact.email.is_not(None), Rep.active.is_(True))
        .order_by(Contact.source_ref)
        .limit(8)
    ).all()
    offers = []
    subjects = [
        "Коммерческое предложение",
        "Счёт на оплату",
        "Oferta handlowa",
        "Договор поставки",
        "Спецификация к договору",
        "Коммерческое предложение (обновлённое)",
        "Прайс-лист на декабрь",
        "Акт сверки",
    ]
    for n, (contact_email, rep_email, contact_id) in enumerate(rows):
        deal = session.scalar(
            select(Deal.source_ref).where(Deal.contact_id == contact_id, Deal.status == "open").limit(1)
        )
        offers.append((f"<demo-offer-{n + 1}@sales.example.ru>", contact_email, subjects[n], rep_email, deal))
    return offers


def _receipts(offers: list[tuple[str, str, str, str, str | None]], when: datetime) -> list[bytes]:
    out: list[bytes] = []
    variants = [
        lambda m, to, s, n: formats.rfc8098(m, to, s, receipt_id=f"<demo-r{n}@client.example>", when=when),
        lambda m, to, s, n: formats.thunderbird(
            m, to, s, receipt_id=f"<demo-r{n}@client.example>", when=when
        ),
        lambda m, to, s, n: formats.outlook(
            m,
            to,
            s,
            receipt_id=f"<demo-r{n}@client.example>",
            prefix="Przeczytane",
            charset="utf-8",
            when=when,
        ),
        lambda m, to, s, n: formats.outlook(
            m,
            to,
            s,
            receipt_id=f"<demo-r{n}@client.example>",
            prefix="Не прочитано",
            charset="windows-1251",
            disposition="deleted",
            when=when,
        ),
        lambda m, to, s, n: formats.outlook(
            m,
            to,
            s,
            receipt_id=f"<demo-r{n}@client.example>",
            prefix="Прочитано",
            charset="koi8-r",
            when=when,
        ),
        lambda m, to, s, n: formats.plain_text(
            to, s, receipt_id=f"<demo-r{n}@client.example>", charset="koi8-r", when=when
        ),
    ]
    for n, (message_id, to, subject, _, _) in enumerate(offers[: len(variants)]):
        out.append(variants[n](message_id, to, subject, n))
    # Opened again: counted on the same "email opened" activity.
    if offers:
        message_id, to, subject, _, _ = offers[0]
        out.append(formats.thunderbird(message_id, to, subject, receipt_id="<demo-r-again@client.example>"))
    out.append(
        formats.outlook(
            "<not-ours@elsewhere.example>",
            "someone@elsewhere.example",
            "Meeting",
            receipt_id="<demo-r-queue@x>",
        )
    )
    out.append(
        b"From: <>\r\nMessage-ID: <demo-broken@x>\r\nContent-Type: multipart/report;"
        b' report-type=disposition-notification; boundary="B"\r\n\r\n--B\r\n'
        b"Content-Type: message/disposition-notification\r\n\r\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--B--\r\n"
    )
    out.append(formats.ordinary_mail("client@client.example.ru", message_id="<demo-question@client.example>"))
    return out


def _write_maildir(folder: Path, messages: list[bytes], stamp: datetime) -> None:
    """Fixed names and times: the source's (mtime, name) cursor sees nothing new on a rerun."""
    for sub in ("new", "cur", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for n, raw in enumerate(messages):
        path = folder / "cur" / f"{1_700_000_000 + n}.demo{n:03d}.hub:2,"
        if not path.exists() or path.read_bytes() != raw:
            path.write_bytes(raw)
        seconds = stamp.timestamp() + n
        os.utime(path, (seconds, seconds))
