"""Sent mail and receipts of every variant read from a real Dovecot, correlated, recorded as
one "email_opened" activity per sent email with a call-now task, and alerted once by SMTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from imapclient import IMAPClient
from sqlalchemy import func, select

from hub.alerts.deliver import transports_from_settings
from hub.demo import mail_formats as samples
from hub.ingest.mail_watch import imap_mailbox, run_mail_pass
from hub.settings import MailSettings
from hub.store.db import session_scope
from hub.store.models import Activity, AlertOutbox, MailReceipt, QuarantineRecord, SyncState, Task
from tests.mail.servers import SmtpSink

CLIENT = "client@client.example.ru"
CLIENT_PL = "anna@client.example.pl"
SENT_AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
LATER = SENT_AT + timedelta(hours=1)


def _append_sent(admin: IMAPClient) -> None:
    admin.append(
        "Sent",
        samples.sent_email(
            "<offer-1@sales.example.ru>", CLIENT, "Коммерческое предложение", when=SENT_AT, deal="D-20"
        ),
    )
    admin.append(
        "Sent", samples.sent_email("<offer-2@sales.example.ru>", CLIENT, "Счёт на оплату", when=SENT_AT)
    )
    admin.append(
        "Sent",
        samples.sent_email(
            "<offer-3@sales.example.ru>",
            CLIENT_PL,
            "Oferta handlowa",
            sender="rep2@sales.example.ru",
            when=SENT_AT,
        ),
    )
    admin.append(
        "Sent", samples.sent_email("<offer-4@sales.example.ru>", CLIENT, "Договор поставки", when=SENT_AT)
    )


def _append_receipts(admin: IMAPClient) -> None:
    admin.append(
        "INBOX",
        samples.rfc8098(
            "<offer-1@sales.example.ru>",
            CLIENT,
            "Коммерческое предложение",
            receipt_id="<r1@client.example.ru>",
            when=LATER,
        ),
    )
    # A second open of the same email (Thunderbird, matched by its References).
    admin.append(
        "INBOX",
        samples.thunderbird(
            "<offer-1@sales.example.ru>",
            CLIENT,
            "Коммерческое предложение",
            receipt_id="<r2@client.example.ru>",
            when=LATER,
        ),
    )
    admin.append(
        "INBOX",
        samples.outlook(
            "<offer-3@sales.example.ru>",
            CLIENT_PL,
            "Oferta handlowa",
            receipt_id="<r3@client.example.pl>",
            prefix="Przeczytane",
            charset="iso-8859-2",
            when=LATER,
        ),
    )
    # Deleted without being read: recorded, not an open.
    admin.append(
        "INBOX",
        samples.outlook(
            "<offer-4@sales.example.ru>",
            CLIENT,
            "Договор поставки",
            receipt_id="<r4@client.example.ru>",
            prefix="Не прочитано",
            charset="windows-1251",
            disposition="deleted",
            when=LATER,
        ),
    )
    # Plain text, 8-bit windows-1251 subject, nothing machine-readable: subject + reader + window.
    admin.append(
        "INBOX", samples.plain_text(CLIENT, "Счёт на оплату", receipt_id="<r5@client.example.ru>", when=LATER)
    )
    # Nobody sent this one: it waits in the uncorrelated queue.
    admin.append(
        "INBOX",
        samples.outlook(
            "<unknown@elsewhere.example>",
            CLIENT,
            "Something else",
            receipt_id="<r6@client.example.ru>",
            prefix="Прочитано",
            charset="koi8-r",
            when=LATER,
        ),
    )
    admin.append("INBOX", samples.ordinary_mail(CLIENT, message_id="<q1@client.example.ru>"))


def test_every_variant_is_correlated_recorded_and_alerted_once(
    crm: dict[str, int],
    store_url: str,
    imap_admin: IMAPClient,
    mail_settings: MailSettings,
    smtp_sink: SmtpSink,
) -> None:
    _append_sent(imap_admin)
    _append_receipts(imap_admin)
    mailbox = imap_mailbox(mail_settings)
    transports = transports_from_settings(mail_settings)
    first = run_mail_pass(store_url, mail_settings, mailbox, transports)

    assert first.sent.written == 4
    assert first.receipts.rows_in == 7
    assert first.receipts.extra["not_receipts"] == 1
    assert first.delivery.sent == 3  # offer-1, offer-2 (plain text), offer-3

    with session_scope(store_url) as session:
        receipts = {r.source_ref: r for r in session.scalars(select(MailReceipt))}
        opens = {
            a.message_id: a for a in session.scalars(select(Activity).where(Activity.kind == "email_opened"))
        }
        tasks = session.scalars(select(Task).where(Task.kind == "call_now")).all()
        outbox = session.scalars(select(AlertOutbox)).all()

    assert receipts["<r1@client.example.ru>"].match_method == "original_message_id"
    assert receipts["<r3@client.example.pl>"].subject == "Przeczytane: Oferta handlowa"
    assert receipts["<r4@client.example.ru>"].status == "not_read"
    assert receipts["<r4@client.example.ru>"].subject == "Не прочитано: Договор поставки"
    plain = receipts["<r5@client.example.ru>"]
    # A plain-text notice: "opened" read from its subject, so its confidence is scaled down too.
    assert (plain.status, plain.match_method, plain.disposition_source) == (
        "opened",
        "subject_reader_window",
        "subject",
    )
    assert plain.confidence == 0.3
    assert plain.subject == "Прочитано: Счёт на оплату"
    assert receipts["<r6@client.example.ru>"].status == "uncorrelated"

    assert set(opens) == {
        "<offer-1@sales.example.ru>",
        "<offer-2@sales.example.ru>",
        "<offer-3@sales.example.ru>",
    }
    assert opens["<offer-1@sales.example.ru>"].count == 2
    assert opens["<offer-1@sales.example.ru>"].deal_id == crm["deal"]
    assert opens["<offer-3@sales.example.ru>"].rep_id == crm["rep2"]
    assert sorted(t.rep_id for t in tasks) == [crm["rep"], crm["rep"], crm["rep2"]]
    assert {o.status for o in outbox} == {"sent"}

    alerts = smtp_sink.wait_for(3)
    assert sorted(str(m["To"]) for m in alerts) == [
        "rep1@sales.example.ru",
        "rep1@sales.example.ru",
        "rep2@sales.example.ru",
    ]
    # The client's phone in international form, and as a tel: link in the HTML part.
    assert any("+7 916 123-45-67" in m.get_body(("plain",)).get_content() for m in alerts)
    assert any('href="tel:+79161234567"' in m.get_body(("html",)).get_content() for m in alerts)

    # BODY.PEEK: the receipts are still unread for the rep.
    imap_admin.select_folder("INBOX", readonly=True)
    assert imap_admin.search(["SEEN"]) == []

    # A second pass reads nothing new and sends nothing.
    again = run_mail_pass(store_url, mail_settings, mailbox, transports)
    assert (again.receipts.rows_in, again.sent.rows_in, again.delivery.sent) == (0, 0, 0)
    assert len(smtp_sink.messages) == 3
    mailbox.close()


def test_receipt_before_its_sent_email_waits_then_correlates(
    crm: dict[str, int], store_url: str, imap_admin: IMAPClient, mail_settings: MailSettings
) -> None:
    imap_admin.append(
        "INBOX",
        samples.rfc8098(
            "<late@sales.example.ru>", CLIENT, "Offer", receipt_id="<rl@client.example.ru>", when=LATER
        ),
    )
    mailbox = imap_mailbox(mail_settings)
    first = run_mail_pass(store_url, mail_settings, mailbox)
    assert first.receipts.extra["uncorrelated"] == 1
    imap_admin.append("Sent", samples.sent_email("<late@sales.example.ru>", CLIENT, "Offer", when=SENT_AT))
    second = run_mail_pass(store_url, mail_settings, mailbox)
    assert second.queue.extra.get("opened") == 1
    with session_scope(store_url) as session:
        assert session.scalar(select(MailReceipt.status)) == "opened"
        assert session.scalar(select(func.count()).select_from(AlertOutbox)) == 1
    mailbox.close()


def test_uidvalidity_change_rescans_without_double_counting(
    crm_sqlite: dict[str, int], sqlite_store: str, imap_admin: IMAPClient, mail_settings: MailSettings
) -> None:
    settings = mail_settings.model_copy(update={"receipts_folder": "Receipts"})
    imap_admin.create_folder("Receipts")
    imap_admin.append("Sent", samples.sent_email("<uv-1@sales.example.ru>", CLIENT, "Offer", when=SENT_AT))
    receipt = samples.rfc8098(
        "<uv-1@sales.example.ru>", CLIENT, "Offer", receipt_id="<ruv@client.example.ru>", when=LATER
    )
    imap_admin.append("Receipts", receipt)
    mailbox = imap_mailbox(settings)
    run_mail_pass(sqlite_store, settings, mailbox)
    with session_scope(sqlite_store) as session:
        before = session.get(SyncState, "imap:Receipts").cursor

    # The folder is recreated (UIDVALIDITY changes) holding the old receipt and a new one.
    imap_admin.delete_folder("Receipts")
    imap_admin.create_folder("Receipts")
    imap_admin.append("Receipts", receipt)
    imap_admin.append(
        "Sent", samples.sent_email("<uv-2@sales.example.ru>", CLIENT, "Second offer", when=SENT_AT)
    )
    imap_admin.append(
        "Receipts",
        samples.rfc8098(
            "<uv-2@sales.example.ru>",
            CLIENT,
            "Second offer",
            receipt_id="<ruv2@client.example.ru>",
            when=LATER,
        ),
    )
    mailbox.drop()
    result = run_mail_pass(sqlite_store, settings, mailbox)

    assert result.rescanned
    assert result.receipts.extra == {"duplicate": 1, "opened": 1}
    with session_scope(sqlite_store) as session:
        after = session.get(SyncState, "imap:Receipts").cursor
        opens = session.scalars(select(Activity.count).where(Activity.kind == "email_opened")).all()
    assert after["uidvalidity"] != before["uidvalidity"]
    assert after["last_uid"] == 2
    assert sorted(opens) == [1, 1]
    mailbox.close()


def test_processed_receipts_are_moved_and_broken_ones_quarantined(
    crm_sqlite: dict[str, int], sqlite_store: str, imap_admin: IMAPClient, mail_settings: MailSettings
) -> None:
    settings = mail_settings.model_copy(update={"processed_folder": "Processed"})
    imap_admin.append("Sent", samples.sent_email("<mv-1@sales.example.ru>", CLIENT, "Offer", when=SENT_AT))
    imap_admin.append(
        "INBOX",
        samples.rfc8098("<mv-1@sales.example.ru>", CLIENT, "Offer", receipt_id="<rmv@client.example.ru>"),
    )
    # A report that names nothing to correlate by: no ids, no subject.
    broken = (
        b"From: <>\r\nMessage-ID: <broken@x>\r\nContent-Type: multipart/report; report-type=disposition-notification;"
        b' boundary="B"\r\n\r\n--B\r\nContent-Type: message/disposition-notification\r\n\r\n'
        b"Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--B--\r\n"
    )
    imap_admin.append("INBOX", broken)
    mailbox = imap_mailbox(settings)
    result = run_mail_pass(sqlite_store, settings, mailbox)
    assert result.receipts.quarantined == 1
    imap_admin.select_folder("INBOX", readonly=True)
    assert imap_admin.search(["ALL"]) == []
    imap_admin.select_folder("Processed", readonly=True)
    assert len(imap_admin.search(["ALL"])) == 2
    with session_scope(sqlite_store) as session:
        reason = session.scalar(select(QuarantineRecord.error))
    assert reason is not None and "names no original Message-ID" in reason
    mailbox.close()
