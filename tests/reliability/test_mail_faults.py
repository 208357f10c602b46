"""Mail faults the mail source's own suite (tests/mail) does not cover: an SMTP server that
accepts the alert but answers too late (the deliverer cannot know it was sent), and one that
stalls before accepting. Nothing is lost, and a copy sent twice is the same message (same
Message-ID), which mail clients show once. Dropped IDLE, BYE, UIDVALIDITY changes, refusals
and a crash mid-batch are covered in tests/mail."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from sqlalchemy import select

from hub.alerts.deliver import RetryPolicy, SmtpTransport, deliver_pending
from hub.store.db import session_scope
from hub.store.models import AlertOutbox
from tests.mail.servers import SmtpSink, seed_crm
from tests.mail.test_alerts import _enqueue as enqueue_alerts

FAST = RetryPolicy(max_attempts=6, backoff_s=0.0, backoff_max_s=0.0, lease_s=60)
ALERTS = 3


class SlowSmtpSink(SmtpSink):
    """Stalls `stall_s` on the next `stalls` messages, after (or before) keeping them."""

    def __init__(self, stall_s: float, stalls: int, keep_before_stall: bool) -> None:
        super().__init__()
        self.stall_s = stall_s
        self.stalls = stalls
        self.keep_before_stall = keep_before_stall

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.stalls > 0:
            self.stalls -= 1
            if self.keep_before_stall:
                await super().handle_DATA(server, session, envelope)
            await asyncio.sleep(self.stall_s)
            return "250 OK" if self.keep_before_stall else "451 4.3.0 too late"
        return await super().handle_DATA(server, session, envelope)


def _deliver_until_done(database_url: str, sink: SmtpSink, rounds: int = 6) -> None:
    transport = SmtpTransport(
        host="127.0.0.1", port=sink.port, from_addr="hub@sales.example.ru", security="plain", timeout_s=0.3
    )
    for _ in range(rounds):
        deliver_pending(database_url, {"smtp": transport}, FAST)
        with session_scope(database_url) as session:
            if all(row.status == "sent" for row in session.scalars(select(AlertOutbox))):
                return


def _run(database_url: str, keep_before_stall: bool) -> tuple[Counter[str], Counter[str], list[str]]:
    seed_crm(database_url)
    enqueue_alerts(database_url, ALERTS, ["smtp"])
    sink = SlowSmtpSink(stall_s=1.0, stalls=2, keep_before_stall=keep_before_stall).start()
    try:
        _deliver_until_done(database_url, sink)
        # Let the stalled sessions finish writing what they kept.
        sink.wait_for(ALERTS + (2 if keep_before_stall else 0), timeout_s=3)
    finally:
        sink.stop()
    keys = Counter(str(m["X-Hub-Alert-Key"]) for m in sink.messages)
    ids = Counter(str(m["Message-ID"]) for m in sink.messages)
    with session_scope(database_url) as session:
        statuses = [row.status for row in session.scalars(select(AlertOutbox))]
    return keys, ids, statuses


def test_smtp_accepting_but_answering_too_late_loses_nothing_and_repeats_the_same_message(
    sqlite_store: str,
) -> None:
    keys, ids, statuses = _run(sqlite_store, keep_before_stall=True)
    assert statuses == ["sent"] * ALERTS
    assert len(keys) == ALERTS  # every alert arrived
    assert sum(keys.values()) > ALERTS  # the fault bit: the deliverer could not know it had sent
    # A repeat (the server kept the message, the answer timed out) is the same message: one
    # Message-ID per alert, so the rep's mail client shows it once.
    assert len(ids) == ALERTS and sum(ids.values()) == sum(keys.values())


def test_smtp_stalling_before_accepting_sends_each_alert_once(sqlite_store: str) -> None:
    keys, _, statuses = _run(sqlite_store, keep_before_stall=False)
    assert statuses == ["sent"] * ALERTS
    assert keys == Counter({key: 1 for key in keys}) and len(keys) == ALERTS
