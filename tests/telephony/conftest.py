"""Fixtures of the telephony tests: a CRM with reps, a known contact and a tracking number."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from hub.identity.resolve import index_contact
from hub.settings import TelephonySettings
from hub.store.db import session_scope
from hub.store.models import Contact, Rep, TrackingNumber

KNOWN_CLIENT = "+79161234567"
KNOWN_OWNER_REP = 2
TRACKING_YANDEX = "+74951112233"
TRACKING_VK = "+74954445566"
OFFICE_LINE = "+74950000000"


def seed_telephony_crm(database_url: str) -> None:
    with session_scope(database_url) as session:
        for rep_id, name, ext, phone in (
            (1, "Кузнецова Анна", "101", "+74951000001"),
            (2, "Соколов Дмитрий", "102", "+74951000002"),
            (3, "Katarzyna Zielińska", "201", "+48221000003"),
        ):
            session.add(Rep(id=rep_id, name=name, extension=ext, phone_e164=phone, capacity=20))
        session.flush()
        contact = Contact(
            source_system="crm",
            source_ref="C-1",
            name="Петров Иван",
            phone_e164=KNOWN_CLIENT,
            owner_rep_id=KNOWN_OWNER_REP,
        )
        session.add(contact)
        session.add(TrackingNumber(number_e164=TRACKING_YANDEX, channel="yandex / cpc", campaign="brand"))
        session.flush()
        index_contact(session, contact)


def telephony_settings(**overrides: object) -> TelephonySettings:
    # The VK number comes from settings, the Yandex one from the store's table.
    return TelephonySettings.model_validate(
        {"tracking_numbers": {"8 (495) 444-55-66": "vk / social"}, "lookback_minutes": 30, **overrides}
    )


@pytest.fixture
def crm_url(store_url: str) -> str:
    """A migrated store (SQLite and PostgreSQL) with reps, a known client and tracking numbers."""
    seed_telephony_crm(store_url)
    return store_url


@pytest.fixture
def crm_sqlite(sqlite_store: str) -> str:
    seed_telephony_crm(sqlite_store)
    return sqlite_store


def contact_id(database_url: str, phone: str = KNOWN_CLIENT) -> int:
    with session_scope(database_url) as session:
        return session.scalars(select(Contact.id).where(Contact.phone_e164 == phone)).one()


def at(hour: int, minute: int = 0, day: int = 5) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)
