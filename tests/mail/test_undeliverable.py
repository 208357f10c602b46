"""Alerts that cannot reach their rep are loud: the verdict behind the `alerts_reach_reps` asset
check (no channel, a channel missing its settings, a channel failing, opens nobody could be
alerted of), the ops notice `hub watch-mail` sends once a day per problem, and the check itself
in a Dagster run."""

from __future__ import annotations

from datetime import UTC, datetime

from dagster import materialize
from sqlalchemy import func, select

from assets.mail import alerts_reach_reps, mail_alerts
from assets.resources import HubSettingsResource, MailResource, StoreResource
from hub.alerts.deliver import RetryPolicy, SmtpTransport, deliver_pending
from hub.alerts.health import delivery_verdict
from hub.ingest.mail_watch import AlertDispatcher, ops_notifier
from hub.ops.alerts import ALERTS_UNDELIVERABLE, OpsChannels
from hub.settings import MailSettings
from hub.store.db import session_scope
from hub.store.models import Activity, AlertOutbox
from tests.mail.servers import SmtpSink
from tests.mail.test_alerts import _enqueue

FAST = RetryPolicy(max_attempts=3, backoff_s=0.0, backoff_max_s=0.0, lease_s=60)


def _verdict(database_url: str, configured: list[str]):  # type: ignore[no-untyped-def]
    with session_scope(database_url) as session:
        return delivery_verdict(session, configured)


def test_no_channel_configured_fails_and_names_the_settings(
    crm_sqlite: dict[str, int], sqlite_store: str
) -> None:
    empty = _verdict(sqlite_store, [])
    assert not empty.passed and "HUB_MAIL__SMTP_HOST" in empty.description
    _enqueue(sqlite_store, 5, ["smtp"])
    verdict = _verdict(sqlite_store, [])
    assert not verdict.passed
    assert "5 alerts wait for channel 'smtp'" in verdict.description
    assert verdict.metadata["waiting_without_channel"] == 5
    # Telegram configured, but the rows are for email: still five alerts nobody will send.
    partly = _verdict(sqlite_store, ["telegram"])
    assert not partly.passed and "HUB_MAIL__ALERT_EML_DIR" in partly.description


def test_a_failing_channel_fails_until_it_recovers(
    crm_sqlite: dict[str, int], sqlite_store: str, smtp_sink: SmtpSink
) -> None:
    _enqueue(sqlite_store, 2, ["smtp"])
    transport = SmtpTransport(host="127.0.0.1", port=smtp_sink.port, from_addr="hub@x.ru", security="plain")
    smtp_sink.refuse = True
    deliver_pending(sqlite_store, {"smtp": transport}, FAST)
    failing = _verdict(sqlite_store, ["smtp"])
    assert not failing.passed and "channel 'smtp' is failing: 2 alerts retrying" in failing.description
    assert "451" in failing.description
    smtp_sink.refuse = False
    assert deliver_pending(sqlite_store, {"smtp": transport}, FAST).sent == 2
    transport.close()
    healthy = _verdict(sqlite_store, ["smtp"])
    assert healthy.passed, healthy.description
    assert healthy.metadata["sent"] == 2


def test_an_open_no_channel_reaches_fails(crm_sqlite: dict[str, int], sqlite_store: str) -> None:
    with session_scope(sqlite_store) as session:
        session.add(
            Activity(
                source_system="mail_open",
                source_ref="<nobody@x>",
                kind="email_opened",
                occurred_at=datetime.now(UTC),
                count=1,
                details={},
            )
        )
    verdict = _verdict(sqlite_store, ["smtp"])
    assert not verdict.passed and "1 opens in 24 h alerted nobody" in verdict.description


def test_the_watcher_tells_ops_once_a_day_per_problem(
    crm_sqlite: dict[str, int], sqlite_store: str, smtp_sink: SmtpSink
) -> None:
    """No alert channel for reps, but ops has one: the dispatcher's first round pages ops."""
    ops = OpsChannels(
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_security="plain",
        mail_from="hub@x.ru",
        mail_to=("ops@x.ru",),
    )
    _enqueue(sqlite_store, 3, ["smtp"])
    dispatcher = AlertDispatcher(sqlite_store, {}, FAST, on_undeliverable=ops_notifier(sqlite_store, ops))
    dispatcher.deliver_due()
    assert not dispatcher.judge().passed  # the same problem again: no second notice today
    notices = [m for m in smtp_sink.messages if str(m["To"]) == "ops@x.ru"]
    assert len(notices) == 1
    body = notices[0].get_content()
    assert "3 alerts wait for channel 'smtp'" in body and "hub alerts deliver" in body
    with session_scope(sqlite_store) as session:
        kinds = session.scalars(
            select(AlertOutbox.kind).where(AlertOutbox.kind == ALERTS_UNDELIVERABLE)
        ).all()
        assert kinds == [ALERTS_UNDELIVERABLE]
        # The reps' alerts are untouched, waiting for a channel.
        waiting = session.scalar(
            select(func.count()).where(AlertOutbox.kind == "email_opened", AlertOutbox.status == "pending")
        )
    assert waiting == 3


def test_the_asset_check_fails_in_a_run_without_a_channel(
    crm_sqlite: dict[str, int], sqlite_store: str
) -> None:
    _enqueue(sqlite_store, 2, ["smtp"])
    result = materialize(
        [mail_alerts, alerts_reach_reps],
        resources={
            "store": StoreResource(database_url=sqlite_store),
            "mail": MailResource(),
            "hub_settings": HubSettingsResource(),
        },
        raise_on_error=False,
    )
    evaluations = result.get_asset_check_evaluations()
    assert [e.check_name for e in evaluations] == ["alerts_reach_reps"]
    assert evaluations[0].passed is False
    assert evaluations[0].severity.value == "ERROR"
    assert "2 alerts wait for channel 'smtp'" in (evaluations[0].description or "")


def test_the_demo_summary_says_what_keeps_alerts_from_reps(
    crm_sqlite: dict[str, int], sqlite_store: str
) -> None:
    from hub.demo.mail import alert_report

    _enqueue(sqlite_store, 2, ["smtp"])
    lines = alert_report(sqlite_store, MailSettings())
    assert lines[0].startswith("alerts to reps: 0 delivered") and "2 waiting" in lines[0]
    assert lines[1].startswith("ALERTS NOT DELIVERED: ") and "HUB_MAIL__SMTP_HOST" in lines[1]
