"""Migration 1701 on a store with data: pixel fetches folded into one counted row per email,
inbox posts stored as text before it still processed, and the way back (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from hub.ingest.site import sync_webhook_inbox
from hub.store import migrate
from hub.store.db import make_engine

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _before() -> str:
    from alembic.script import ScriptDirectory

    from hub.store.migrate import MIGRATIONS_DIR

    previous = ScriptDirectory(str(MIGRATIONS_DIR)).get_revision("1701").down_revision
    assert isinstance(previous, str)
    return previous


def _at_the_revision_before_1701(database_url: str) -> None:
    migrate.upgrade(database_url, _before())
    with make_engine(database_url).begin() as conn:
        for n, (message_id, reason) in enumerate(
            [("<a@x>", "image proxy: Gmail"), ("<a@x>", None), ("<a@x>", None), ("<b@x>", "crawler/bot")]
        ):
            conn.execute(
                text(
                    "INSERT INTO hub_mail_pixel_hits (message_id, fetched_at, remote_ip, user_agent, "
                    "machine_reason, created_at) VALUES (:m, :at, :ip, :ua, :reason, :at)"
                ),
                {
                    "m": message_id,
                    "at": T0 + timedelta(minutes=n),
                    "ip": f"203.0.113.{n}",
                    "ua": f"agent {n}",
                    "reason": reason,
                },
            )
        conn.execute(
            text(
                "INSERT INTO hub_webhook_inbox (endpoint, dedup_key, body, headers, received_at) "
                "VALUES ('site/leads', 'old-key', :body, '{}', :at)"
            ),
            {
                "body": '{"id": "old-1", "phone": "+79160000001", "submitted_at": "2026-11-20T10:00:00Z"}',
                "at": T0,
            },
        )


def test_pixel_fetches_are_folded_and_old_posts_still_become_leads(store_url: str) -> None:
    # store_url is migrated to the head; go back to before 1701 and put data in.
    migrate.downgrade(store_url, _before())
    _at_the_revision_before_1701(store_url)
    migrate.upgrade(store_url)
    with make_engine(store_url).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT message_id, fetches, machine_fetches, user_agent, machine_reason FROM hub_mail_pixel_hits "
                "ORDER BY message_id"
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("<a@x>", 3, 1, "agent 2", "image proxy: Gmail"),
        ("<b@x>", 1, 1, "agent 3", "crawler/bot"),
    ]
    assert sync_webhook_inbox(store_url, "RU").written == 1

    migrate.downgrade(store_url, _before())
    with make_engine(store_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM hub_mail_pixel_hits")).scalar() == 2
        assert conn.execute(text("SELECT body FROM hub_webhook_inbox")).scalar().startswith('{"id": "old-1"')
    migrate.upgrade(store_url)
