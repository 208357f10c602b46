"""Shared fixtures: a migrated store on SQLite (always) and PostgreSQL (when reachable; CI
always has it at 127.0.0.1:5432, database `test`), each test in its own schema/file."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, text

from hub.store import migrate
from hub.store.db import dispose_engines

POSTGRES_URL = os.environ.get("HUB_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> bool:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 2})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:
        return False


POSTGRES_AVAILABLE = _postgres_reachable()
if os.environ.get("CI") and not POSTGRES_AVAILABLE:
    raise RuntimeError(f"CI must have PostgreSQL at {POSTGRES_URL}")


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """No test reads the developer's HUB_* environment or writes into the project's var/."""
    for name in list(os.environ):
        if name.startswith("HUB_") and name != "HUB_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "var"))


def _sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A migrated-ready PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if not POSTGRES_AVAILABLE:
        pytest.skip("PostgreSQL is not reachable")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    dispose_engines()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def postgres_schemas() -> Iterator[Callable[[], str]]:
    """Makes more fresh schemas beside `postgres_url`'s (a baseline store, a second run's), each
    dropped afterwards; returns their URLs."""
    if not POSTGRES_AVAILABLE:
        pytest.skip("PostgreSQL is not reachable")
    admin = create_engine(POSTGRES_URL)
    made: list[str] = []

    def make() -> str:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"

    yield make
    dispose_engines()
    with admin.begin() as conn:
        for schema in made:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A migrated store on each dialect: tests using it run on SQLite and on PostgreSQL."""
    url = _sqlite_url(tmp_path) if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    migrate.upgrade(url)
    yield url
    dispose_engines()


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A migrated SQLite store, for tests whose logic does not depend on the dialect."""
    url = _sqlite_url(tmp_path)
    migrate.upgrade(url)
    yield url
    dispose_engines()
