"""The two moves of a CRM sync, as the assets, the CLI and the demo call them: pull the CRM into
the mirror (each page committed with its cursor), and push (plan the outbox from the store, then
carry it out). Also what `hub crm status` and the checks report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from hub.crm.backend import BackendUsage, CrmBackend
from hub.crm.links import instance_id
from hub.crm.mirror import MirrorStats, apply_pull
from hub.crm.plan import PlanStats, plan_push
from hub.crm.push import PushStats, push_pending
from hub.settings import HubSettings
from hub.store.cursors import load_cursor, save_cursor
from hub.store.db import session_scope
from hub.store.models import CrmLink, CrmOutbox
from hub.timeutil import as_utc, utcnow


def _state_name(backend: str, what: str) -> str:
    return f"crm:{backend}:{what}"


def connected_at(session: Any, backend: str) -> datetime:
    """When the hub first synced with this CRM: what the hub had before is pushed only as far
    back as `crm.push_history_days`. Recorded by the first pull or push."""
    state = load_cursor(session, _state_name(backend, "connected"))
    if "at" not in state:
        state = {"at": utcnow().isoformat()}
        save_cursor(session, _state_name(backend, "connected"), state)
    return as_utc(datetime.fromisoformat(state["at"]))


def _note_run(session: Any, backend: str, what: str, figures: dict[str, Any]) -> None:
    save_cursor(session, _state_name(backend, what), {"at": utcnow().isoformat(), **figures})


@dataclass
class PullResult:
    mirror: MirrorStats = field(default_factory=MirrorStats)
    batches: int = 0
    usage: BackendUsage = field(default_factory=BackendUsage)


def pull_crm(database_url: str, backend: CrmBackend, region: str) -> PullResult:
    """Bring what changed in the CRM into the mirror; each page and its cursor in one transaction,
    so a crash mid-pull repeats at most the page it was writing."""
    result = PullResult()
    name = _state_name(backend.name, "pull")
    with session_scope(database_url) as session:
        cursor = load_cursor(session, name)
        instance = instance_id(session)
        connected_at(session, backend.name)
    for batch in backend.pull(cursor):
        with session_scope(database_url) as session:
            result.mirror.merge(apply_pull(session, backend.name, instance, region, batch))
            save_cursor(session, name, batch.cursor)
        result.batches += 1
    result.usage = backend.usage()
    with session_scope(database_url) as session:
        _note_run(
            session, backend.name, "last_pull", {"entities": result.mirror.total(), **result.usage.as_dict()}
        )
    return result


@dataclass
class PushResult:
    plan: PlanStats
    push: PushStats


def push_crm(database_url: str, backend: CrmBackend, settings: HubSettings) -> PushResult:
    """Plan the outbox from the store, then carry out everything due."""
    with session_scope(database_url) as session:
        instance = instance_id(session)
        since = connected_at(session, backend.name)
        plan = plan_push(
            session,
            backend.name,
            instance,
            since,
            settings.crm.push_history_days,
            settings.crm.lead_tags,
            backend.lead_creates_contact,
        )
    pushed = push_pending(database_url, backend, settings.crm)
    with session_scope(database_url) as session:
        _note_run(session, backend.name, "last_push", {"planned": plan.total(), **pushed.as_dict()})
    return PushResult(plan, pushed)


@dataclass
class CrmStatus:
    backend: str
    pending: int
    failed: int
    oldest_pending_at: datetime | None
    links: int
    last_pull: dict[str, Any]
    last_push: dict[str, Any]
    recent_errors: list[tuple[str, str]]

    def oldest_pending_minutes(self, now: datetime | None = None) -> float | None:
        if self.oldest_pending_at is None:
            return None
        return ((now or utcnow()) - as_utc(self.oldest_pending_at)).total_seconds() / 60

    def last_pull_minutes(self, now: datetime | None = None) -> float | None:
        at = self.last_pull.get("at")
        if not at:
            return None
        return ((now or utcnow()) - as_utc(datetime.fromisoformat(at))).total_seconds() / 60


def crm_status(database_url: str, backend: str) -> CrmStatus:
    with session_scope(database_url) as session:
        mine = CrmOutbox.backend == backend
        pending = session.scalar(
            select(func.count())
            .select_from(CrmOutbox)
            .where(mine, CrmOutbox.status.in_(("pending", "sending")))
        )
        failed = session.scalar(
            select(func.count()).select_from(CrmOutbox).where(mine, CrmOutbox.status == "failed")
        )
        oldest = session.scalar(
            select(func.min(CrmOutbox.created_at)).where(mine, CrmOutbox.status.in_(("pending", "sending")))
        )
        links = session.scalar(select(func.count()).select_from(CrmLink).where(CrmLink.backend == backend))
        errors = session.execute(
            select(CrmOutbox.idempotency_key, CrmOutbox.last_error)
            .where(mine, CrmOutbox.status == "failed")
            .order_by(CrmOutbox.id.desc())
            .limit(5)
        ).all()
        return CrmStatus(
            backend=backend,
            pending=int(pending or 0),
            failed=int(failed or 0),
            oldest_pending_at=oldest,
            links=int(links or 0),
            last_pull=load_cursor(session, _state_name(backend, "last_pull")),
            last_push=load_cursor(session, _state_name(backend, "last_push")),
            recent_errors=[(key, error or "") for key, error in errors],
        )
