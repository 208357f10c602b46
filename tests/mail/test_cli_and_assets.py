"""`hub inspect receipt`, the offline maildir/mbox sources, and the Dagster side: the assets
materialized in process and a watcher pass reported as an observation of `mail_receipts`."""

from __future__ import annotations

import json
import mailbox
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance, materialize
from sqlalchemy import select

from assets.mail import mail_alerts, mail_receipts, report_watcher_pass
from assets.resources import HubSettingsResource, MailResource, StoreResource
from hub.cli import main
from hub.demo import mail_formats as samples
from hub.ingest.mail_watch import run_mail_pass
from hub.settings import MailSettings
from hub.store.db import session_scope
from hub.store.models import Activity, MailReceipt
from tests.mail.servers import SmtpSink

CLIENT = "client@client.example.ru"
SENT_AT = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_inspect_receipt_prints_the_parse_and_the_quarantine_reason(tmp_path: Path) -> None:
    good = tmp_path / "read.eml"
    good.write_bytes(
        samples.outlook(
            "<o@sales.example.ru>", CLIENT, "Счёт", receipt_id="<r@c>", prefix="Прочитано", charset="koi8-r"
        )
    )
    bad = tmp_path / "bad.eml"
    bad.write_bytes(
        b"Subject: Read:\r\nMessage-ID: <b@c>\r\nContent-Type: multipart/report; report-type=disposition-notification;"
        b' boundary="B"\r\n\r\n--B\r\nContent-Type: message/disposition-notification\r\n\r\n'
        b"Disposition: automatic-action/MDN-sent-automatically; deleted\r\n\r\n--B--\r\n"
    )
    ordinary = tmp_path / "mail.eml"
    ordinary.write_bytes(samples.ordinary_mail(CLIENT, message_id="<m@c>"))
    runner = CliRunner()
    parsed = json.loads(runner.invoke(main, ["inspect", "receipt", str(good)]).output)
    assert (parsed["kind"], parsed["disposition"], parsed["subject"]) == (
        "outlook",
        "displayed",
        "Прочитано: Счёт",
    )
    assert parsed["original_message_id"] == "<o@sales.example.ru>" and parsed["quarantine"] is None
    rejected = json.loads(runner.invoke(main, ["inspect", "receipt", str(bad)]).output)
    assert rejected["disposition"] == "deleted" and "names no original Message-ID" in rejected["quarantine"]
    assert json.loads(runner.invoke(main, ["inspect", "receipt", str(ordinary)]).output)["receipt"] is False


def _write_maildir(root: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(root, create=True)
    for raw in messages:
        box.add(raw)
    return root


def test_maildir_and_mbox_sources_are_incremental(
    crm_sqlite: dict[str, int], sqlite_store: str, tmp_path: Path
) -> None:
    sent_mbox = mailbox.mbox(tmp_path / "sent.mbox")
    sent_mbox.add(samples.sent_email("<f1@sales.example.ru>", CLIENT, "Offer", when=SENT_AT))
    sent_mbox.flush()
    receipts = _write_maildir(
        tmp_path / "receipts",
        [samples.thunderbird("<f1@sales.example.ru>", CLIENT, "Offer", receipt_id="<rf1@c>")],
    )
    settings = MailSettings(maildir=str(receipts), sent_maildir=str(tmp_path / "sent.mbox"))
    first = run_mail_pass(sqlite_store, settings, None)
    assert (first.sent.written, first.receipts.extra.get("opened")) == (1, 1)
    # New mail in both: only the new messages are read.
    sent_mbox.add(samples.sent_email("<f2@sales.example.ru>", CLIENT, "Second", when=SENT_AT))
    sent_mbox.flush()
    mailbox.Maildir(receipts).add(
        samples.rfc8098("<f2@sales.example.ru>", CLIENT, "Second", receipt_id="<rf2@c>")
    )
    second = run_mail_pass(sqlite_store, settings, None)
    assert (second.sent.rows_in, second.receipts.rows_in) == (1, 1)
    assert run_mail_pass(sqlite_store, settings, None).receipts.rows_in == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_assets_materialize_and_watcher_reports_observations(
    crm_sqlite: dict[str, int],
    sqlite_store: str,
    tmp_path: Path,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = _write_maildir(
        tmp_path / "sent", [samples.sent_email("<a1@sales.example.ru>", CLIENT, "Offer", when=SENT_AT)]
    )
    receipts = _write_maildir(
        tmp_path / "receipts",
        [
            samples.rfc8098("<a1@sales.example.ru>", CLIENT, "Offer", receipt_id="<ra1@c>"),
            samples.outlook("<nobody@x>", CLIENT, "Other", receipt_id="<ra2@c>"),
        ],
    )
    for name, value in {
        "HUB_MAIL__MAILDIR": str(receipts),
        "HUB_MAIL__SENT_MAILDIR": str(sent),
        "HUB_MAIL__SMTP_HOST": "127.0.0.1",
        "HUB_MAIL__SMTP_PORT": str(smtp_sink.port),
        "HUB_MAIL__SMTP_SECURITY": "plain",
    }.items():
        monkeypatch.setenv(name, value)
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [mail_receipts, mail_alerts],
        resources={
            "store": StoreResource(database_url=sqlite_store),
            "mail": MailResource(),
            "hub_settings": HubSettingsResource(),
        },
        instance=instance,
    )
    assert result.success
    receipts_meta = result.asset_materializations_for_node("mail_receipts")[0].metadata
    assert receipts_meta["opened"].value == 1
    assert receipts_meta["uncorrelated_queue"].value == 1
    queue_preview = receipts_meta["uncorrelated_receipts"].value
    assert "nobody@x" in queue_preview and CLIENT not in queue_preview  # masked reader
    assert result.asset_materializations_for_node("mail_alerts")[0].metadata["sent"].value == 1
    assert len(smtp_sink.wait_for(1)) == 1

    # What `hub watch-mail` does after each pass.
    mailbox.Maildir(receipts).add(
        samples.thunderbird("<a1@sales.example.ru>", CLIENT, "Offer", receipt_id="<ra3@c>")
    )
    watcher_pass = run_mail_pass(
        sqlite_store, MailSettings(maildir=str(receipts), sent_maildir=str(sent)), None
    )
    report_watcher_pass(instance, watcher_pass, timedelta(seconds=0.2))
    records = instance.fetch_observations(AssetKey("mail_receipts"), limit=1).records
    assert len(records) == 1
    observation = records[0].asset_observation
    assert observation is not None
    assert observation.metadata["rows_in"].value == 1
    assert observation.metadata["reported_by"].value == "hub watch-mail"
    with session_scope(sqlite_store) as session:
        assert session.scalar(select(Activity.count).where(Activity.kind == "email_opened")) == 2
        assert (
            session.scalar(select(MailReceipt.status).where(MailReceipt.source_ref == "<ra2@c>"))
            == "uncorrelated"
        )


def test_due_alerts_sensor_asks_only_when_a_channel_can_send(
    crm_sqlite: dict[str, int], sqlite_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster import RunRequest, SkipReason, build_sensor_context

    from assets.mail import mail_alerts_due_sensor
    from hub.alerts.outbox import enqueue_alert
    from hub.store.models import Rep

    with session_scope(sqlite_store) as session:
        rep = session.get(Rep, 1)
        assert rep is not None
        enqueue_alert(
            session,
            key="email_opened:<s1@x>",
            kind="email_opened",
            rep=rep,
            subject="s",
            body="b",
            event_at=datetime.now(UTC),
            channels=["smtp"],
        )
    resources = {
        "store": StoreResource(database_url=sqlite_store),
        "mail": MailResource(),
        "hub_settings": HubSettingsResource(),
    }
    with build_sensor_context(resources=resources) as context:
        assert isinstance(mail_alerts_due_sensor(context), SkipReason)
    monkeypatch.setenv("HUB_MAIL__SMTP_HOST", "127.0.0.1")
    with build_sensor_context(resources=resources) as context:
        assert isinstance(mail_alerts_due_sensor(context), RunRequest)
