"""The store's schema and write primitives, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from hub.store.cursors import load_cursor, save_cursor
from hub.store.db import make_engine, session_scope
from hub.store.models import Base, Lead, QuarantineRecord
from hub.store.quarantine import quarantine
from hub.store.upsert import upsert
from hub.timeutil import utcnow


def test_migrations_match_models(store_url: str) -> None:
    """`hub db upgrade` builds exactly the schema the models describe."""
    with make_engine(store_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def _lead(ref: str, name: str) -> dict:
    return {
        "source_system": "site_api",
        "source_ref": ref,
        "name": name,
        "phone_e164": "+79991234567",
        "submitted_at": utcnow(),
        "status": "new",
        "created_at": utcnow(),
    }


def test_upsert_inserts_once_and_updates_on_natural_key(store_url: str) -> None:
    with session_scope(store_url) as session:
        first = upsert(
            session,
            Lead,
            [_lead("a", "Иван"), _lead("b", "Анна")],
            key=["source_system", "source_ref"],
            returning="source_ref",
        )
        again = upsert(
            session,
            Lead,
            [_lead("a", "Иван П.")],
            key=["source_system", "source_ref"],
            update=[],
            returning="source_ref",
        )
        upsert(session, Lead, [_lead("b", "Анна К.")], key=["source_system", "source_ref"], update=["name"])
    assert sorted(first) == ["a", "b"]
    assert again == []  # insert-if-absent: the existing row is left as it was
    with session_scope(store_url) as session:
        names = dict(session.execute(select(Lead.source_ref, Lead.name)).all())
    assert names == {"a": "Иван", "b": "Анна К."}


def test_upsert_handles_more_rows_than_one_statement_can_bind(store_url: str) -> None:
    rows = [_lead(f"r{i}", "x") for i in range(4000)]
    with session_scope(store_url) as session:
        upsert(session, Lead, rows, key=["source_system", "source_ref"])
        upsert(session, Lead, rows, key=["source_system", "source_ref"])
    with session_scope(store_url) as session:
        assert session.scalar(select(func.count()).select_from(Lead)) == 4000


def test_cursor_commits_with_rows_or_not_at_all(store_url: str) -> None:
    try:
        with session_scope(store_url) as session:
            upsert(session, Lead, [_lead("c", "x")], key=["source_system", "source_ref"])
            save_cursor(session, "site_api", {"since": "2026-01-01"})
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    with session_scope(store_url) as session:
        assert load_cursor(session, "site_api") == {}
        assert session.scalar(select(func.count()).select_from(Lead)) == 0
        save_cursor(session, "site_api", {"since": "2026-01-02"})
    with session_scope(store_url) as session:
        assert load_cursor(session, "site_api") == {"since": "2026-01-02"}


def test_quarantine_keeps_raw_and_reason_once(store_url: str) -> None:
    raw = {"id": "x1", "phone": "'; DROP TABLE crm_leads; --"}
    for _ in range(2):
        with session_scope(store_url) as session:
            quarantine(session, "site_api", raw, "no usable contact", source_ref="x1")
    with session_scope(store_url) as session:
        rows = session.scalars(select(QuarantineRecord)).all()
    assert len(rows) == 1
    assert "DROP TABLE crm_leads" in rows[0].raw and rows[0].error == "no usable contact"


def test_migrations_have_one_head_and_downgrade_to_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    from hub.store import migrate

    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    assert len(ScriptDirectory.from_config(migrate.alembic_config(url)).get_heads()) == 1
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    assert set(inspect(make_engine(url)).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(url)
    assert "crm_leads" in inspect(make_engine(url)).get_table_names()
