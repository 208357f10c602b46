"""Seed data of the demo CRM: reps with capacities and shifts, contacts, deals with their stage
history, invoices. Every row has a natural key, so seeding twice changes nothing."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.demo import people
from hub.identity.resolve import index_contact
from hub.store.models import Contact, Deal, DealStageChange, Invoice, Rep
from hub.store.upsert import upsert

STAGES = ["new", "qualified", "proposal", "negotiation", "invoice"]

REPS: list[dict[str, Any]] = [
    # Moscow office, two shifts so that a lead finds someone awake most of the day.
    {
        "id": 1,
        "name": "Кузнецова Анна",
        "extension": "101",
        "capacity": 25,
        "timezone": "Europe/Moscow",
        "shift_start": "08:00",
        "shift_end": "20:00",
        "regions": ["RU"],
        "languages": ["ru"],
        "skills": ["b2b"],
    },
    {
        "id": 2,
        "name": "Соколов Дмитрий",
        "extension": "102",
        "capacity": 20,
        "timezone": "Europe/Moscow",
        "shift_start": "09:00",
        "shift_end": "18:00",
        "regions": ["RU"],
        "languages": ["ru", "en"],
        "skills": ["b2b", "enterprise"],
    },
    {
        "id": 3,
        "name": "Лебедева Ольга",
        "extension": "103",
        "capacity": 15,
        "timezone": "Asia/Yekaterinburg",
        "shift_start": "06:00",
        "shift_end": "15:00",
        "regions": ["RU"],
        "languages": ["ru"],
        "skills": ["b2b"],
    },
    {
        "id": 4,
        "name": "Морозов Павел",
        "extension": "104",
        "capacity": 30,
        "timezone": "Europe/Moscow",
        "shift_start": "20:00",
        "shift_end": "08:00",
        "regions": ["RU"],
        "languages": ["ru"],
        "skills": ["b2c"],
        "work_days": [1, 2, 3, 4, 5, 6, 7],
    },
    {
        "id": 5,
        "name": "Katarzyna Zielińska",
        "extension": "201",
        "capacity": 20,
        "timezone": "Europe/Warsaw",
        "shift_start": "08:00",
        "shift_end": "17:00",
        "regions": ["PL"],
        "languages": ["pl", "en"],
        "locale": "pl",
        "skills": ["b2b"],
    },
    {
        "id": 6,
        "name": "Tomasz Wójcik",
        "extension": "202",
        "capacity": 10,
        "timezone": "Europe/Warsaw",
        "shift_start": "10:00",
        "shift_end": "19:00",
        "regions": ["PL"],
        "languages": ["pl"],
        "locale": "pl",
        "skills": ["b2c"],
    },
    # Left the company last month: still in the CRM, no longer receives leads.
    {
        "id": 7,
        "name": "Волков Сергей",
        "extension": "105",
        "capacity": 20,
        "timezone": "Europe/Moscow",
        "shift_start": "09:00",
        "shift_end": "18:00",
        "regions": ["RU"],
        "languages": ["ru"],
        "skills": ["b2b"],
        "active": False,
    },
]


def seed_reps(session: Session) -> None:
    rows = []
    for rep in REPS:
        # Reps without a locale get alerts in the company's language (ru, HUB_MAIL__ALERT_LANGUAGE).
        row = {
            "active": True,
            "work_days": [1, 2, 3, 4, 5],
            "email": None,
            "phone_e164": None,
            "locale": None,
            **rep,
        }
        row["email"] = row["email"] or f"rep{rep['id']}@sales.example.ru"
        row["phone_e164"] = f"+7495100{rep['id']:04d}"
        row["created_at"] = datetime(2024, 1, 10, tzinfo=UTC)
        rows.append(row)
    # Only descriptive columns are refreshed: routing state (last_assigned_at) is the hub's.
    upsert(
        session,
        Rep,
        rows,
        key=["id"],
        update=[
            "name",
            "extension",
            "capacity",
            "timezone",
            "shift_start",
            "shift_end",
            "regions",
            "languages",
            "locale",
            "skills",
            "active",
        ],
    )


def seed_contacts(session: Session, rng: random.Random, count: int = 60) -> list[dict[str, Any]]:
    """Existing CRM contacts; the site's demo leads include some of them returning."""
    contacts = []
    for n in range(1, count + 1):
        polish = n % 6 == 0
        name = people.pl_person(rng) if polish else people.ru_person(rng)[0]
        company = rng.choice(people.PL_COMPANIES if polish else people.RU_COMPANIES)
        phone = people.pl_mobile(rng) if polish else people.ru_mobile(rng)
        email = people.translit_email(
            name,
            rng,
            rng.choice(
                ["gmail.com", "mail.ru", "yandex.ru", "wp.pl"]
                if not polish
                else ["wp.pl", "onet.pl", "gmail.com"]
            ),
        )
        owner = rng.choice([5, 6]) if polish else rng.choice([1, 2, 3, 4, 7])
        contacts.append(
            {
                "source_system": "crm",
                "source_ref": f"C-{n:04d}",
                "name": name,
                "company": company,
                "phone_e164": phone,
                "email": email,
                "region": "PL" if polish else "RU",
                "language": "pl" if polish else "ru",
                "owner_rep_id": owner,
                "city": rng.choice(people.PL_CITIES if polish else people.RU_CITIES),
                "created_at": datetime(2024, 2, 1, tzinfo=UTC) + timedelta(days=n),
                "updated_at": datetime(2024, 2, 1, tzinfo=UTC) + timedelta(days=n),
            }
        )
    upsert(
        session,
        Contact,
        contacts,
        key=["source_system", "source_ref"],
        update=["name", "company", "phone_e164", "email", "region", "language", "city"],
    )
    for contact in session.scalars(select(Contact).where(Contact.source_system == "crm")):
        index_contact(session, contact)
    return contacts


def seed_deals_and_invoices(session: Session, rng: random.Random, today: date) -> None:
    contact_ids = {
        c.source_ref: (c.id, c.owner_rep_id)
        for c in session.scalars(select(Contact).where(Contact.source_system == "crm"))
    }
    deals, invoices = [], []
    for n in range(1, 41):
        ref = f"C-{rng.randint(1, len(contact_ids)):04d}"
        contact_id, owner = contact_ids[ref]
        opened = datetime.combine(today - timedelta(days=rng.randint(5, 120)), datetime.min.time(), UTC)
        stage_index = rng.randint(0, len(STAGES) - 1)
        status = "open"
        closed = None
        if stage_index == len(STAGES) - 1 and rng.random() < 0.6:
            status = "won"
            closed = opened + timedelta(days=rng.randint(10, 40))
        elif rng.random() < 0.15:
            status = "lost"
            closed = opened + timedelta(days=rng.randint(5, 30))
        amount = Decimal(rng.choice([45_000, 120_000, 250_000, 380_000, 99_900, 1_250_000]))
        deals.append(
            {
                "source_system": "crm",
                "source_ref": f"D-{n:04d}",
                "title": f"Поставка #{n}",
                "pipeline": "sales",
                "stage": STAGES[stage_index],
                "status": status,
                "amount": amount,
                "currency": "RUB",
                "contact_id": contact_id,
                "rep_id": owner,
                "opened_at": opened,
                "closed_at": closed,
                "stage_changed_at": opened + timedelta(days=3 * stage_index),
            }
        )
        if stage_index == len(STAGES) - 1:
            issued = opened.date() + timedelta(days=3 * stage_index)
            invoices.append(
                {
                    "source_system": "crm_seed",
                    "source_ref": f"INV-{n:04d}",
                    "number": str(100 + n),
                    "issued_on": issued,
                    "due_on": issued + timedelta(days=rng.choice([5, 10, 14, 30])),
                    "amount": amount,
                    "currency": "RUB",
                    "contact_id": contact_id,
                    "status": "open",
                    "counterparty_tax_id": None,
                    "counterparty_name": None,
                }
            )
    upsert(
        session,
        Deal,
        deals,
        key=["source_system", "source_ref"],
        update=["stage", "status", "amount", "closed_at", "stage_changed_at"],
    )
    upsert(session, Invoice, invoices, key=["source_system", "source_ref"], update=["amount", "due_on"])
    history = []
    for deal in session.scalars(select(Deal).where(Deal.source_system == "crm")):
        reached = STAGES.index(deal.stage)
        for index in range(reached + 1):
            history.append(
                {
                    "deal_id": deal.id,
                    "stage": STAGES[index],
                    "entered_at": deal.opened_at + timedelta(days=3 * index),
                }
            )
    upsert(session, DealStageChange, history, key=["deal_id", "stage", "entered_at"], update=[])


def seed_crm(session: Session, today: date, seed: int = 42) -> None:
    rng = random.Random(seed)
    seed_reps(session)
    seed_contacts(session, rng)
    seed_deals_and_invoices(session, rng, today)
