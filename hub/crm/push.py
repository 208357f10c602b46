"""Carries the outbox into the CRM, exactly once.

One pusher per backend at a time (an exclusive lock the database or kernel frees if the holder
dies). Each round claims the due operations of the lowest rank, marks them attempted and
commits before the backend sees them; the backend's answers are committed with the links they
created. A crash between the CRM's answer and that commit leaves the rows "sending": the next
pusher takes them at once, with `attempt > 1`, and the backend finds what the lost answer
created by the hub's reference instead of creating it again."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.errors import PermanentSourceError, TransientSourceError
from hub.crm.backend import BackendUsage, CrmBackend, PendingOp
from hub.crm.links import push_context, save_link, update_state
from hub.settings import CrmSettings
from hub.store.db import session_scope
from hub.store.locks import exclusive_runner
from hub.store.models import CrmOutbox
from hub.timeutil import as_utc, utcnow
from schemas.crm import (
    AddNote,
    CreateContact,
    CreateLead,
    CreateTask,
    FlagDuplicate,
    LogCall,
    PushOp,
    PushResult,
    Ref,
    SetFields,
    SetResponsible,
    UpdateTask,
)

log = logging.getLogger(__name__)
_OPS: TypeAdapter[PushOp] = TypeAdapter(PushOp)
ERROR_TEXT_MAX = 2000


@dataclass
class PushStats:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    retried: int = 0
    deferred: int = 0  # waited for an entity the CRM does not have yet
    recovered: int = 0  # tried again after an unknown outcome (crash, timeout)
    rounds: int = 0
    busy: bool = False  # another pusher holds the lock: this run did nothing
    by_op: dict[str, int] = field(default_factory=dict)
    usage: BackendUsage = field(default_factory=BackendUsage)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pushed": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "retried": self.retried,
            "deferred": self.deferred,
            "recovered": self.recovered,
            **self.usage.as_dict(),
        }


def required_refs(op: PushOp) -> list[Ref]:
    """Hub rows the CRM must already know for the operation to be carried out."""
    if isinstance(op, CreateLead):
        return [op.existing_contact] if op.existing_contact else []
    if isinstance(op, LogCall | AddNote | SetFields):
        return [op.target]
    if isinstance(op, CreateTask):
        return [op.target] if op.target else []
    if isinstance(op, UpdateTask):
        return [op.task]
    if isinstance(op, SetResponsible):
        return [op.target, op.responsible]
    if isinstance(op, FlagDuplicate):
        return [op.survivor, op.duplicate]
    return []


def optional_refs(op: PushOp) -> list[Ref]:
    """Hub rows used when the CRM knows them (a rep without a CRM user: the CRM's default)."""
    refs: list[Ref] = []
    responsible = getattr(op, "responsible", None)
    if isinstance(responsible, Ref):
        refs.append(responsible)
    if isinstance(op, CreateLead | CreateContact):
        refs.append(op.contact.ref)
        if op.contact.responsible:
            refs.append(op.contact.responsible)
    if isinstance(op, CreateLead):
        refs.append(op.lead)
    if isinstance(op, LogCall):
        refs.append(op.call)
    if isinstance(op, CreateTask):
        refs.append(op.task)
    return refs


def _ref_of_key(key: str) -> Ref:
    table, _, hub_id = key.rpartition(":")
    return Ref(table=table, id=int(hub_id))  # type: ignore[arg-type]


class Pusher:
    def __init__(self, database_url: str, backend: CrmBackend, settings: CrmSettings) -> None:
        self.database_url = database_url
        self.backend = backend
        self.settings = settings
        self.stats = PushStats()
        # Rows found waiting for an entity the CRM does not have: not claimed again in this run,
        # so that the ranks above them still go (they are due again in the next run).
        self._waiting: set[int] = set()

    def _backoff(self, attempts: int) -> timedelta:
        seconds = min(
            self.settings.push_backoff_max_s, self.settings.push_backoff_s * 2 ** max(0, attempts - 1)
        )
        return timedelta(seconds=seconds)

    def _claim(self, session: Session, now: datetime) -> list[CrmOutbox]:
        due = (
            select(CrmOutbox)
            .where(
                CrmOutbox.backend == self.backend.name,
                CrmOutbox.status.in_(("pending", "sending")),
                CrmOutbox.next_attempt_at <= now,
            )
            .order_by(CrmOutbox.rank, CrmOutbox.id)
        )
        if self._waiting:
            due = due.where(CrmOutbox.id.not_in(sorted(self._waiting)))
        first = session.scalars(due.limit(1)).first()
        if first is None:
            return []
        rows = list(
            session.scalars(due.where(CrmOutbox.rank == first.rank).limit(self.settings.push_batch_size))
        )
        for row in rows:
            if row.status == "sending" or row.attempts > 0:
                self.stats.recovered += 1
            row.status = "sending"
            row.attempts += 1
        return rows

    def run(self, now: datetime | None = None, max_rounds: int = 10_000) -> PushStats:
        with exclusive_runner(self.database_url, f"crm-push:{self.backend.name}") as held:
            if not held:
                self.stats.busy = True
                return self.stats
            now = now or utcnow()
            for _ in range(max_rounds):
                if not self._round(now):
                    break
        return self.stats

    def _round(self, now: datetime) -> bool:
        """One claimed batch carried out (or found waiting); False when nothing was due or the CRM
        is unavailable."""
        with session_scope(self.database_url) as session:
            rows = self._claim(session, now)
            claimed = [(row.id, row.idempotency_key, row.op, dict(row.payload), row.attempts) for row in rows]
        if not claimed:
            return False
        self.stats.rounds += 1
        pending: list[tuple[int, PendingOp]] = []
        broken: list[tuple[int, str]] = []
        for row_id, key, _, payload, attempts in claimed:
            try:
                pending.append(
                    (row_id, PendingOp(key=key, op=_OPS.validate_python(payload), attempt=attempts))
                )
            except ValidationError as exc:
                broken.append((row_id, f"the outbox row cannot be read as an operation: {exc}"))
        with session_scope(self.database_url) as session:
            context = push_context(
                session,
                self.backend.name,
                [ref for _, item in pending for ref in (*required_refs(item.op), *optional_refs(item.op))],
            )
        ready = [
            (row_id, item)
            for row_id, item in pending
            if all(context.crm_id(r) for r in required_refs(item.op))
        ]
        waiting = [(row_id, item) for row_id, item in pending if (row_id, item) not in ready]
        results: list[PushResult] = []
        try:
            if ready:
                results = self.backend.push([item for _, item in ready], context)
        except TransientSourceError as exc:
            self._give_back(ready, str(exc), now, counted=True)
            self._give_back(waiting, None, now, counted=False)
            self.stats.errors.append(str(exc))
            return False  # the CRM is down or saturated: the next run goes on
        except PermanentSourceError:
            self._give_back(ready, None, now, counted=True)
            self._give_back(waiting, None, now, counted=False)
            raise
        if len(results) != len(ready):
            raise RuntimeError(
                f"{self.backend.name} answered {len(results)} results for {len(ready)} operations"
            )
        with session_scope(self.database_url) as session:
            for (row_id, item), result in zip(ready, results, strict=True):
                self._record(session, row_id, item, result, now)
            for row_id, reason in broken:
                self._fail(session, row_id, reason)
        progressed = bool(ready) or bool(broken)
        # Operations waiting for an entity: due again at once while others progress (the
        # entity may have just been created), later when nothing moved (it may never come).
        self._give_back(waiting, None, now if progressed else now + self._backoff(1), counted=False)
        self.stats.deferred += len(waiting) if not progressed else 0
        if not progressed:
            # Nothing of this rank could go: leave these for the next run, go on with the rest.
            self._waiting.update(row_id for row_id, _ in waiting)
        return True

    def _give_back(
        self, items: Sequence[tuple[int, PendingOp]], error: str | None, due: datetime, counted: bool
    ) -> None:
        if not items:
            return
        with session_scope(self.database_url) as session:
            for row_id, _ in items:
                row = session.get(CrmOutbox, row_id)
                if row is None:
                    continue
                row.status = "pending"
                if not counted:
                    row.attempts = max(0, row.attempts - 1)
                else:
                    self.stats.retried += 1
                row.next_attempt_at = due if not counted else due + self._backoff(row.attempts)
                if error:
                    row.last_error = error[:ERROR_TEXT_MAX]
                if counted and row.attempts >= self.settings.push_max_attempts:
                    row.status = "failed"
                    self.stats.failed += 1

    def _fail(self, session: Session, row_id: int, reason: str) -> None:
        row = session.get(CrmOutbox, row_id)
        if row is not None:
            row.status = "failed"
            row.last_error = reason[:ERROR_TEXT_MAX]
            self.stats.failed += 1

    def _record(
        self, session: Session, row_id: int, item: PendingOp, result: PushResult, now: datetime
    ) -> None:
        row = session.get(CrmOutbox, row_id)
        if row is None:
            return
        for key, (entity, crm_id) in result.links.items():
            save_link(session, self.backend.name, _ref_of_key(key), entity, crm_id, result.state.get(key))
        for key, state in result.state.items():
            if key not in result.links:
                update_state(session, self.backend.name, _ref_of_key(key), state)
        row.last_error = result.detail[:ERROR_TEXT_MAX] if result.detail else None
        name = row.op
        if result.outcome in ("done", "skipped"):
            row.status = result.outcome
            row.done_at = now
            if result.outcome == "done":
                self.stats.done += 1
                self.stats.by_op[name] = self.stats.by_op.get(name, 0) + 1
            else:
                self.stats.skipped += 1
        elif result.outcome == "retry" and row.attempts < self.settings.push_max_attempts:
            row.status = "pending"
            wait = (
                timedelta(seconds=result.retry_after_s)
                if result.retry_after_s
                else self._backoff(row.attempts)
            )
            row.next_attempt_at = as_utc(now) + wait
            self.stats.retried += 1
        else:
            row.status = "failed"
            self.stats.failed += 1
            self.stats.errors.append(f"{item.key}: {result.detail}")


def push_pending(
    database_url: str, backend: CrmBackend, settings: CrmSettings, now: datetime | None = None
) -> PushStats:
    """Carry every due outbox operation of the backend into the CRM (see the module's docstring)."""
    pusher = Pusher(database_url, backend, settings)
    stats = pusher.run(now)
    stats.usage = backend.usage()
    return stats
