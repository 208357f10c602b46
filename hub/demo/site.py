"""Demo data of the website source: recorded API pages, a CSV export of the old landing page, a
Google Forms responses export (US M/D/YYYY dates, decided from its rows) and signed webhook posts,
with returning clients, repeated submissions and a few broken records among them."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.site import TIMESTAMP_HEADER, sign_webhook, verify_webhook
from hub.demo import people
from hub.ingest.site import accept_webhook
from hub.store.models import Contact

UTM_MIX: list[dict[str, Any]] = [
    {"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "brand"},
    {"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "stroymaterialy"},
    {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "pl-budownictwo"},
    {"referrer": "https://yandex.ru/search/?text=упаковка+оптом"},
    {"referrer": "https://www.google.com/"},
    {"utm_source": "vk", "utm_medium": "social", "utm_campaign": "retarget"},
    {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "november"},
    {},  # direct
    {"referrer": "https://partner-portal.ru/catalog"},
]
FORMS = ["callback", "price-request", "demo-request", "contact"]
PAGES = [
    "https://sales.example.ru/",
    "https://sales.example.ru/price",
    "https://sales.example.ru/catalog/upakovka",
    "https://sales.example.pl/oferta",
]


def _lead(rng: random.Random, n: int, at: datetime, returning: Contact | None) -> dict[str, Any]:
    polish = (returning.region == "PL") if returning else rng.random() < 0.15
    if returning is not None:
        name, phone, email = returning.name, people.as_typed(returning.phone_e164 or "", rng), None
        if rng.random() < 0.4:
            phone, email = None, (returning.email or "").upper()
    else:
        name = people.pl_person(rng) if polish else people.ru_person(rng)[0]
        phone = people.as_typed(people.pl_mobile(rng) if polish else people.ru_mobile(rng), rng)
        email = people.translit_email(name, rng, "gmail.com") if rng.random() < 0.6 else None
    lead = {
        "id": f"web-{n:05d}",
        "name": name,
        "phone": phone,
        "email": email,
        "form": rng.choice(FORMS),
        "page_url": PAGES[3] if polish else rng.choice(PAGES[:3]),
        "message": rng.choice(
            [
                "Перезвоните, пожалуйста",
                "Нужен счёт на 200 коробок",
                "Прошу прислать прайс",
                "Интересует доставка в Казань",
                "",
            ]
        )
        if not polish
        else "Proszę o ofertę",
        "region": "PL" if polish else "RU",
        "language": "pl" if polish else "ru",
        "submitted_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **rng.choice(UTM_MIX),
    }
    if lead.get("utm_source") == "yandex":
        lead["yclid"] = str(rng.randint(10**15, 10**16))
    return lead


def write_google_forms_export(path: Path, rng: random.Random, today: date) -> None:
    """A Google Forms "Download responses (.csv)" of an English-locale event sign-up form: its
    Timestamp in M/D/YYYY H:MM:SS (the form's time zone), one column per question. The first
    dates are ambiguous (3/4 or 4/3?); a later row (day above 12) decides the file's order."""
    rows = [["Timestamp", "Email Address", "Full Name", "Phone Number", "Which product interests you?"]]
    month_ago = today.replace(day=1) - timedelta(days=1)
    days = [month_ago.replace(day=d) for d in (3, 4, 9)] + [month_ago.replace(day=min(25, month_ago.day))]
    for n, day in enumerate(days, start=1):
        name = people.ru_person(rng)[0]
        email = people.translit_email(name, rng, "example.com")
        phone = people.as_typed(people.ru_mobile(rng), rng) if n % 2 else ""
        when = datetime.combine(day, datetime.min.time()) + timedelta(hours=9 + n, minutes=7 * n, seconds=n)
        rows.append(
            [
                f"{when.month}/{when.day}/{when.year} {when:%H:%M:%S}",
                email,
                name,
                phone,
                rng.choice(["Коробки", "Плёнка"]),
            ]
        )
    rows.append(
        [f"{month_ago.month}/{month_ago.day}/{month_ago.year} 18:00:00", "", "Только имя", "", "Коробки"]
    )
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)


def generate_site_demo(
    session: Session, demo_dir: Path, today: date, database_url: str, seed: int = 7
) -> dict[str, Any]:
    rng = random.Random(seed)
    contacts = session.scalars(
        select(Contact).where(Contact.source_system == "crm").order_by(Contact.id)
    ).all()
    start = datetime.combine(today - timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=7)
    leads = []
    for n in range(1, 61):
        returning = rng.choice(contacts) if rng.random() < 0.25 else None
        leads.append(_lead(rng, n, start + timedelta(minutes=17 * n), returning))
    # A client who submits the same form twice within the hour: one lead, not two.
    repeat = dict(
        leads[10],
        id="web-00061",
        submitted_at=(start + timedelta(minutes=17 * 11 + 25)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    broken = [
        {"id": "web-00062", "name": "Без контактов", "submitted_at": leads[0]["submitted_at"]},
        {
            "id": "web-00063",
            "name": "Ошибка в номере",
            "phone": "+7 (999) 12",
            "submitted_at": leads[1]["submitted_at"],
        },
        {"id": "web-00064", "phone": "+79161234567", "submitted_at": "вчера вечером"},
        "<script>alert('not a lead')</script>",
    ]
    api_leads = [*leads[:45], repeat, *broken]
    api_leads.sort(
        key=lambda r: r["submitted_at"] if isinstance(r, dict) and r["submitted_at"][0].isdigit() else ""
    )
    pages = [{"leads": api_leads[i : i + 20], "next_cursor": None} for i in range(0, len(api_leads), 20)]
    site_dir = demo_dir / "site"
    (site_dir / "csv").mkdir(parents=True, exist_ok=True)
    snapshot = site_dir / "api_pages.json"
    snapshot.write_text(json.dumps(pages, ensure_ascii=False, indent=1), encoding="utf-8")

    # A CSV export from the old landing page: Russian headers, semicolons, one lead also in the API.
    with open(site_dir / "csv" / "landing-export.csv", "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh, delimiter=";")
        writer.writerow(["Имя", "Телефон", "E-mail", "Сообщение", "utm_source", "utm_medium", "Дата"])
        for lead in leads[45:55]:
            writer.writerow(
                [
                    lead["name"],
                    lead["phone"] or "",
                    lead["email"] or "",
                    lead["message"],
                    lead.get("utm_source", ""),
                    lead.get("utm_medium", ""),
                    lead["submitted_at"],
                ]
            )
        writer.writerow(["Пустая строка", "", "", "", "", "", leads[50]["submitted_at"]])

    write_google_forms_export(site_dir / "csv" / "event-signup (Responses).csv", rng, today)

    # Webhook posts, signed as the site signs them, accepted through the receiver's own checks.
    secret = "demo-webhook-secret"
    for lead in leads[55:]:
        body = json.dumps(lead, ensure_ascii=False).encode()
        # Signed at the lead's own time, so that rerunning the demo stores nothing new.
        sent_at = int(datetime.fromisoformat(lead["submitted_at"].replace("Z", "+00:00")).timestamp())
        signature = sign_webhook(secret, sent_at, body)
        problem = verify_webhook(secret, str(sent_at), signature, body, sent_at, replay_window_s=300)
        if problem is None:
            accept_webhook(database_url, body, {TIMESTAMP_HEADER.lower(): str(sent_at)}, sent_at)
    return {"site": {"snapshot_file": str(snapshot), "csv_dir": str(site_dir / "csv")}}
