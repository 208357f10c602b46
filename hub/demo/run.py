"""`hub demo`: set up the local SQLite CRM, seed it, generate every source's demo data,
materialize the whole asset graph once and print what happened."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub.settings import PROJECT_DIR, load_settings
from hub.store import migrate
from hub.store.db import dispose_engines, session_scope
from hub.store.models import Activity, Contact, Lead, QuarantineRecord, Task

# Each source's demo generator writes its files and returns the settings that point at them.
DemoGenerator = Callable[[Session, Path, date, str], dict[str, Any]]


def demo_generators() -> list[DemoGenerator]:
    from hub.demo.accounting import generate_accounting_demo
    from hub.demo.analytics import generate_analytics_demo
    from hub.demo.mail import generate_mail_demo
    from hub.demo.site import generate_site_demo
    from hub.demo.telephony import generate_telephony_demo

    return [
        generate_site_demo,
        generate_telephony_demo,
        generate_analytics_demo,
        generate_accounting_demo,
        generate_mail_demo,
    ]


def demo_paths(project_dir: Path = PROJECT_DIR) -> dict[str, Path]:
    # The demo lives in the data folder (HUB_DATA_DIR, default var/ in the project).
    var = Path(os.environ.get("HUB_DATA_DIR") or project_dir / "var")
    return {
        "var": var,
        "demo": var / "demo",
        "config": var / "demo" / "hub.yaml",
        "dagster_home": var / "dagster_home",
    }


def prepare_environment(project_dir: Path = PROJECT_DIR) -> dict[str, Path]:
    """Point this process (and `hub ui`) at the demo: its config file and a persistent DAGSTER_HOME."""
    paths = demo_paths(project_dir)
    paths["dagster_home"].mkdir(parents=True, exist_ok=True)
    instance_yaml = paths["dagster_home"] / "dagster.yaml"
    if not instance_yaml.exists():
        instance_yaml.write_text("telemetry:\n  enabled: false\n")
    paths["demo"].mkdir(parents=True, exist_ok=True)
    if not paths["config"].exists():
        paths["config"].write_text("{}\n")
    os.environ["DAGSTER_HOME"] = str(paths["dagster_home"])
    os.environ["HUB_CONFIG"] = str(paths["config"])
    return paths


def set_up(
    reset: bool = False, project_dir: Path = PROJECT_DIR, today: date | None = None
) -> dict[str, Path]:
    """Create and seed the store and write the demo sources; returns the demo paths."""
    from hub.demo.seed import seed_crm

    today = today or datetime.now(UTC).date()
    paths = demo_paths(project_dir)
    prepare_environment(project_dir)
    settings = load_settings()
    if reset and settings.database_url.startswith("sqlite:///"):
        dispose_engines()
        for suffix in ("", "-wal", "-shm"):
            Path(settings.database_url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    migrate.upgrade(settings.database_url)
    config: dict[str, Any] = {}
    with session_scope(settings.database_url) as session:
        seed_crm(session, today)
    for generate in demo_generators():
        with session_scope(settings.database_url) as session:
            for section, values in generate(session, paths["demo"], today, settings.database_url).items():
                config.setdefault(section, {}).update(values)
    paths["config"].write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=True))
    return paths


def summary(database_url: str) -> list[tuple[str, int]]:
    with session_scope(database_url) as session:

        def count(query: Any) -> int:
            return int(session.scalar(query) or 0)

        return [
            ("leads in the CRM", count(select(func.count()).select_from(Lead))),
            ("  assigned to a rep", count(select(func.count()).where(Lead.assigned_rep_id.is_not(None)))),
            (
                "  sticky to their owner",
                count(select(func.count()).where(Lead.routing_reason.like("returning%"))),
            ),
            ("  duplicates of an open lead", count(select(func.count()).where(Lead.status == "duplicate"))),
            (
                "contacts",
                count(select(func.count()).select_from(Contact).where(Contact.merged_into_id.is_(None))),
            ),
            ("activities", count(select(func.count()).select_from(Activity))),
            ("open tasks", count(select(func.count()).select_from(Task).where(Task.done.is_(False)))),
            ("records in quarantine", count(select(func.count()).select_from(QuarantineRecord))),
        ]


@contextmanager
def demo_crm(backend: str, database_url: str) -> Iterator[Any]:
    """`hub demo --crm <backend>`: the CRM's local replay, started, with the demo's reps as its
    users, and this process pointed at it (HUB_CRM__*) until the block ends."""
    from hub.crm.registry import replay_class
    from hub.store.models import Rep

    with replay_class(backend)() as crm:
        with session_scope(database_url) as session:
            reps = [
                {"name": rep.name, "email": rep.email, "active": rep.active}
                for rep in session.scalars(select(Rep).where(Rep.email.is_not(None)).order_by(Rep.id))
            ]
        crm.seed_users(reps)
        crm.seed_pipeline("Продажи", ["Новая", "Квалификация", "КП", "Переговоры", "Счёт"])
        # The demo's sources are read in the same run as the first pull (the connection): what
        # they bring is today's work, not history to leave out.
        environment = {**crm.hub_environment(), "HUB_CRM__PUSH_HISTORY_DAYS": "1"}
        saved = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        try:
            yield crm
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def describe_crm(crm: Any, examples: int = 3) -> list[str]:
    """What the sales team now sees in the CRM (the replay's snapshot), personal data masked."""
    from hub.masking import mask_text

    snap = crm.snapshot()
    lines = [
        f"{crm.backend}: {len(snap.leads)} new leads, {len(snap.deals)} deals, {len(snap.contacts)} contacts, "
        f"{len(snap.tasks)} tasks, {len(snap.calls)} calls with recordings "
        f"{sum(1 for c in snap.calls if c.get('recording_url'))}, {len(snap.notes)} notes; "
        f"{crm.requests_seen()} API requests"
    ]
    for lead in snap.leads[:examples]:
        lines.append(
            f"  lead  {mask_text(str(lead.get('title')))} -> {lead.get('responsible')} ({lead.get('stage')})"
        )
    for task in snap.tasks[:examples]:
        lines.append(f"  task  {mask_text(str(task.get('text')))[:70]} -> {task.get('responsible')}")
    for call in snap.calls[:examples]:
        lines.append(
            f"  call  {call.get('direction')} {call.get('duration')} s on {call.get('entity')} "
            f"{mask_text(str(call.get('entity_name')))}"
        )
    with_fields = [c for c in snap.contacts if c.get("fields")]
    for contact in with_fields[:examples]:
        lines.append(f"  card  {mask_text(str(contact.get('name')))}: {contact['fields']}")
    return lines
