"""The alert deliverer against a real SMTP server (aiosmtpd) and local servers speaking the
Telegram Bot API and Slack incoming-webhook formats: retries, restarts, quiet hours."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hub.alerts.deliver import RetryPolicy, SlackTransport, SmtpTransport, TelegramTransport, deliver_pending
from hub.alerts.outbox import enqueue_alert, quiet_until
from hub.store.db import session_scope
from hub.store.models import AlertOutbox, Rep
from tests.mail.servers import ChatApi, SmtpSink

FAST = RetryPolicy(max_attempts=4, backoff_s=0.0, backoff_max_s=0.0, lease_s=60)


def _enqueue(database_url: str, count: int, channels: list[str], rep_id: int = 1) -> None:
    with session_scope(database_url) as session:
        rep = session.get(Rep, rep_id)
        assert rep is not None
        for n in range(count):
            enqueue_alert(
                session,
                key=f"email_opened:<m{n}@sales.example.ru>",
                kind="email_opened",
                rep=rep,
                subject=f"Client {n} opened your email — call now",
                body="Phone: +79161234567",
                event_at=datetime.now(UTC),
                channels=channels,
            )


def _smtp(sink: SmtpSink) -> SmtpTransport:
    return SmtpTransport(host="127.0.0.1", port=sink.port, from_addr="hub@sales.example.ru", security="plain")


def _keys(sink: SmtpSink) -> list[str]:
    return sorted(str(m["X-Hub-Alert-Key"]) for m in sink.messages)


def test_refused_then_accepted_after_restart_sends_each_once(
    crm: dict[str, int], store_url: str, smtp_sink: SmtpSink
) -> None:
    _enqueue(store_url, 3, ["smtp"])
    smtp_sink.refuse = True
    first = deliver_pending(store_url, {"smtp": _smtp(smtp_sink)}, FAST)
    assert (first.sent, first.retried) == (0, 3)
    smtp_sink.refuse = False
    # A new deliverer (as after a restart) with fresh transports.
    second = deliver_pending(store_url, {"smtp": _smtp(smtp_sink)}, FAST)
    third = deliver_pending(store_url, {"smtp": _smtp(smtp_sink)}, FAST)
    assert (second.sent, third.sent) == (3, 0)
    assert len(smtp_sink.messages) == 3
    assert len(set(_keys(smtp_sink))) == 3
    with session_scope(store_url) as session:
        rows = session.scalars(select(AlertOutbox)).all()
    assert {(r.status, r.attempts) for r in rows} == {("sent", 2)}


class _CrashAfter:
    """A transport that dies (like a killed process) when asked to send its n-th alert."""

    def __init__(self, inner: SmtpTransport, crash_on: int) -> None:
        self.inner = inner
        self.crash_on = crash_on
        self.calls = 0

    def send(self, alert: AlertOutbox) -> None:
        self.calls += 1
        if self.calls == self.crash_on:
            raise SystemExit("deliverer killed")
        self.inner.send(alert)


def test_crash_mid_batch_never_resends_and_never_skips(
    crm_sqlite: dict[str, int], sqlite_store: str, smtp_sink: SmtpSink
) -> None:
    _enqueue(sqlite_store, 4, ["smtp"])
    with pytest.raises(SystemExit):
        deliver_pending(sqlite_store, {"smtp": _CrashAfter(_smtp(smtp_sink), crash_on=3)}, FAST)
    assert len(smtp_sink.messages) == 2
    # Restarted at once: the row in doubt waits for its lease, the untouched one goes now.
    restarted = deliver_pending(sqlite_store, {"smtp": _smtp(smtp_sink)}, FAST)
    assert restarted.sent == 1
    # After the lease the row that was being sent when the process died is sent.
    later = deliver_pending(
        sqlite_store, {"smtp": _smtp(smtp_sink)}, FAST, now=datetime.now(UTC) + timedelta(seconds=61)
    )
    assert later.sent == 1
    assert _keys(smtp_sink) == sorted(f"email_opened:<m{n}@sales.example.ru>:smtp" for n in range(4))
    assert (
        deliver_pending(
            sqlite_store, {"smtp": _smtp(smtp_sink)}, FAST, now=datetime.now(UTC) + timedelta(hours=1)
        ).sent
        == 0
    )


def test_telegram_and_slack_formats_with_retries(
    crm_sqlite: dict[str, int], sqlite_store: str, chat_api: ChatApi
) -> None:
    _enqueue(sqlite_store, 2, ["telegram", "slack"])
    transports = {
        "telegram": TelegramTransport("TOKEN123", api_url=chat_api.url),
        "slack": SlackTransport(f"{chat_api.url}/services/T0/B0/XYZ"),
    }
    first = deliver_pending(sqlite_store, transports, FAST)
    assert (first.sent, first.retried) == (2, 2)
    second = deliver_pending(sqlite_store, transports, FAST)
    assert (second.sent, second.retried) == (2, 0)
    assert deliver_pending(sqlite_store, transports, FAST).sent == 0
    assert [m["chat_id"] for m in chat_api.telegram] == ["1001", "1001"]
    assert all("call now" in m["text"] for m in chat_api.telegram)
    assert len(chat_api.slack) == 2 and chat_api.slack[0]["text"].startswith("*Client")


def test_bad_chat_id_fails_permanently_with_the_reason(
    crm_sqlite: dict[str, int], sqlite_store: str, chat_api: ChatApi
) -> None:
    chat_api.failures["telegram"] = []
    with session_scope(sqlite_store) as session:
        rep = session.get(Rep, 1)
        assert rep is not None
        rep.chat_id = "bad"
    _enqueue(sqlite_store, 1, ["telegram"])
    stats = deliver_pending(
        sqlite_store, {"telegram": TelegramTransport("TOKEN123", api_url=chat_api.url)}, FAST
    )
    assert stats.failed == 1
    with session_scope(sqlite_store) as session:
        row = session.scalars(select(AlertOutbox)).one()
    assert row.status == "failed" and row.attempts == 1
    assert "HTTP 400" in (row.last_error or "")
    assert "TOKEN123" not in (row.last_error or "")


def test_quiet_hours_postpone_the_alert_to_their_end(
    crm_sqlite: dict[str, int], sqlite_store: str, smtp_sink: SmtpSink
) -> None:
    rep = Rep(name="x", timezone="Europe/Moscow", quiet_start="22:00", quiet_end="08:00")
    # 23:30 in Moscow is 20:30 UTC; quiet hours end at 08:00 Moscow = 05:00 UTC next day.
    assert quiet_until(rep, datetime(2026, 11, 20, 20, 30, tzinfo=UTC)) == datetime(
        2026, 11, 21, 5, 0, tzinfo=UTC
    )
    assert quiet_until(rep, datetime(2026, 11, 20, 12, 0, tzinfo=UTC)) is None
    day_rep = Rep(name="y", timezone="UTC", quiet_start="12:00", quiet_end="14:00")
    assert quiet_until(day_rep, datetime(2026, 11, 20, 13, 0, tzinfo=UTC)) == datetime(
        2026, 11, 20, 14, 0, tzinfo=UTC
    )

    now = datetime.now(UTC)
    with session_scope(sqlite_store) as session:
        stored = session.get(Rep, 1)
        assert stored is not None
        stored.timezone = "UTC"
        # Quiet from an hour ago to an hour from now, whatever the time of the test run.
        stored.quiet_start = f"{(now - timedelta(hours=1)):%H:%M}"
        stored.quiet_end = f"{(now + timedelta(hours=1)):%H:%M}"
    _enqueue(sqlite_store, 1, ["smtp"])
    assert deliver_pending(sqlite_store, {"smtp": _smtp(smtp_sink)}, FAST).sent == 0
    after = deliver_pending(
        sqlite_store, {"smtp": _smtp(smtp_sink)}, FAST, now=now + timedelta(hours=1, minutes=1)
    )
    assert after.sent == 1
    assert len(smtp_sink.messages) == 1


def test_two_deliverers_at_once_send_each_alert_once(
    crm: dict[str, int], store_url: str, smtp_sink: SmtpSink
) -> None:
    _enqueue(store_url, 12, ["smtp"])
    results = []

    def deliver() -> None:
        results.append(deliver_pending(store_url, {"smtp": _smtp(smtp_sink)}, FAST))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(r.sent for r in results) == 12
    assert _keys(smtp_sink) == sorted(f"email_opened:<m{n}@sales.example.ru>:smtp" for n in range(12))
