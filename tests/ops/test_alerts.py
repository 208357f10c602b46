"""Ops alerts: a failing run of the hub's graph and a failed check each tell ops exactly once,
by a real SMTP server (aiosmtpd) and a chat webhook, with the asset, the error and the run link."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    Definitions,
    MaterializeResult,
    asset,
    asset_check,
    build_sensor_context,
    define_asset_job,
    instance_for_test,
)
from sqlalchemy import select

from assets import ops
from assets.resources import build_resources
from hub.ops.alerts import RUN_FAILED, OpsAlert, OpsChannels, StepError, deliver_ops_alerts, enqueue_ops_alert
from hub.settings import load_settings
from hub.store.db import session_scope
from hub.store.models import AlertOutbox
from hub.timeutil import utcnow
from tests.ops.helpers import evaluate_run_sensor, hub_definitions

UI = "http://dagster.example.org:3000"


@pytest.fixture
def ops_smtp_env(monkeypatch: pytest.MonkeyPatch, smtp_sink, sqlite_store: str) -> str:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_store)
    monkeypatch.setenv("HUB_DAGSTER_UI_URL", UI)
    monkeypatch.setenv("HUB_OPS__SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("HUB_OPS__SMTP_PORT", str(smtp_sink.port))
    monkeypatch.setenv("HUB_OPS__SMTP_SECURITY", "plain")
    monkeypatch.setenv("HUB_OPS__MAIL_TO", '["ops@example.com"]')
    return sqlite_store


def test_failing_run_produces_exactly_one_ops_alert(ops_smtp_env, smtp_sink, http_recorder, monkeypatch):  # type: ignore[no-untyped-def]
    # The site API refuses our token: a permanent error, so site_leads fails at once (its
    # RetryPolicy would otherwise wait 2 x 30 s) and the run fails.
    http_recorder.script = [(401, {"error": "invalid token"})]
    monkeypatch.setenv("HUB_SITE__BASE_URL", http_recorder.url)
    monkeypatch.setenv("HUB_SITE__API_TOKEN", "wrong-token")
    defs = hub_definitions()
    with instance_for_test() as instance:
        result = defs.resolve_job_def("hub_main_job").execute_in_process(
            instance=instance, raise_on_error=False
        )
        assert not result.success
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert [e.step_key for e in failures] == ["site_leads"]
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert "HUB_SITE__API_TOKEN" in failures[0].step_failure_data.user_failure_data.description

        # The daemon may evaluate the sensor for the same run again (a restart, a repeated tick).
        for _ in range(3):
            evaluate_run_sensor(ops.ops_run_failure_alerts, defs, instance, result.run_id, failure=True)

    assert len(smtp_sink.messages) == 1
    message = smtp_sink.messages[0]
    assert message["To"] == "ops@example.com"
    assert "site_leads" in message["Subject"]
    body = message.get_content()
    assert f"{UI}/runs/{result.run_id}" in body
    assert "HUB_SITE__API_TOKEN" in body
    assert "wrong-token" not in body
    with session_scope(ops_smtp_env) as session:
        rows = session.scalars(select(AlertOutbox)).all()
    assert [(r.kind, r.channel, r.status, r.attempts) for r in rows] == [(RUN_FAILED, "smtp", "sent", 1)]


@asset(group_name="ops_test", owners=["team:ops"], kinds={"python"}, description="A trivial asset")
def counted_rows() -> MaterializeResult:
    return MaterializeResult(metadata={"rows_in": 3})


@asset_check(asset=counted_rows, description="Always fails, as a broken invariant would")
def invariant_holds() -> AssetCheckResult:
    return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, description="3 rows, expected 4")


@asset_check(asset=counted_rows, description="A warning only: ops are not paged for it")
def soft_expectation() -> AssetCheckResult:
    return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN, description="a soft miss")


def test_failed_check_in_successful_run_alerts_once(ops_smtp_env, smtp_sink):  # type: ignore[no-untyped-def]
    defs = Definitions(
        assets=[counted_rows],
        asset_checks=[invariant_holds, soft_expectation],
        jobs=[define_asset_job("checked_job", selection="*")],
        sensors=ops.OPS_SENSORS,
        resources=build_resources(load_settings()),
    )
    with instance_for_test() as instance:
        result = defs.resolve_job_def("checked_job").execute_in_process(instance=instance)
        assert result.success
        for _ in range(2):
            evaluate_run_sensor(ops.ops_check_failure_alerts, defs, instance, result.run_id, failure=False)
    assert len(smtp_sink.messages) == 1
    message = smtp_sink.messages[0]
    assert "counted_rows.invariant_holds" in message["Subject"]
    body = message.get_content()
    assert "3 rows, expected 4" in body and "soft_expectation" not in body
    assert f"{UI}/runs/{result.run_id}" in body


def _alert(run_id: str) -> OpsAlert:
    return OpsAlert(
        kind=RUN_FAILED,
        run_id=run_id,
        job_name="hub_main_job",
        run_url=f"{UI}/runs/{run_id}",
        assets=["site_leads"],
        errors=[StepError("site_leads", "lead from +7 916 123-45-67, ivan@example.ru was refused")],
    )


@pytest.mark.parametrize("channel", ["slack", "telegram"])
def test_chat_alert_retried_after_failure_and_sent_once(store_url, http_recorder, channel):  # type: ignore[no-untyped-def]
    # The bot token / the webhook URL is the credential: it must never be stored in last_error.
    if channel == "slack":
        channels = OpsChannels(slack_webhook_url=f"{http_recorder.url}/services/T000/B000/SECRET")
    else:
        channels = OpsChannels(
            telegram_bot_token="123456:SECRET", telegram_api_url=http_recorder.url, telegram_chat_id="-100200"
        )
    http_recorder.script = [(500, {"ok": False}), (200, {"ok": True})]
    with session_scope(store_url) as session:
        assert enqueue_ops_alert(session, _alert("run-1"), channels) == 1
    with session_scope(store_url) as session:
        assert enqueue_ops_alert(session, _alert("run-1"), channels) == 0  # same run: nothing new

    now = utcnow()
    first = deliver_ops_alerts(store_url, channels, now=now)
    assert (first.sent, first.retried) == (0, 1)
    with session_scope(store_url) as session:
        row = session.scalars(select(AlertOutbox)).one()
        assert row.status == "pending" and "SECRET" not in (row.last_error or "")
    # Not due yet: the backoff holds the row back.
    assert deliver_ops_alerts(store_url, channels, now=now).sent == 0
    later = deliver_ops_alerts(store_url, channels, now=now + timedelta(hours=2))
    assert later.sent == 1
    assert deliver_ops_alerts(store_url, channels, now=now + timedelta(hours=4)).sent == 0

    assert len(http_recorder.posts) == 2  # the failed attempt and the successful one
    payload = http_recorder.posts[-1]
    text = payload["text"]
    assert "site_leads" in text and f"{UI}/runs/run-1" in text
    # Personal data in an error message is masked before it leaves the hub.
    assert "ivan@example.ru" not in text and "123-45-67" not in text
    if channel == "telegram":
        assert payload["chat_id"] == "-100200"
        assert http_recorder.paths[-1] == "/bot123456:SECRET/sendMessage"
    with session_scope(store_url) as session:
        row = session.scalars(select(AlertOutbox)).one()
        assert (row.status, row.attempts, row.channel) == ("sent", 2, channel)


def test_alert_masks_personal_data_but_keeps_the_run_link() -> None:
    run_id = "84e37dcd-3431-4285-83c4-32765689db1f"  # digits a phone pattern would eat
    alert = _alert(run_id)
    body = alert.body()
    assert f"{UI}/runs/{run_id}" in body
    assert "ivan@example.ru" not in body and "i***@example.ru" in body
    assert "+7 916 123-45-67" not in body
    assert alert.subject() == "[hub] run failed: site_leads (job hub_main_job)"


def test_alerts_left_pending_are_sent_by_the_retry_sensor(ops_smtp_env, smtp_sink):  # type: ignore[no-untyped-def]
    resources = build_resources(load_settings())
    channels = resources["ops_alerts"].channels()
    with session_scope(ops_smtp_env) as session:
        assert enqueue_ops_alert(session, _alert("run-4"), channels) == 1  # the send never happened
    for _ in range(2):
        ops.ops_alert_retries(build_sensor_context(resources=resources))
    assert [m["Subject"] for m in smtp_sink.messages] == ["[hub] run failed: site_leads (job hub_main_job)"]


def test_no_channel_configured_sends_nothing(sqlite_store):  # type: ignore[no-untyped-def]
    with session_scope(sqlite_store) as session:
        assert enqueue_ops_alert(session, _alert("run-2"), OpsChannels()) == 0
    assert deliver_ops_alerts(sqlite_store, OpsChannels()).sent == 0
