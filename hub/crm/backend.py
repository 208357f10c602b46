"""The interface a CRM backend implements, and what the hub hands it.

A backend does two things, both in the CRM's own terms and nothing else:
- `pull(cursor)`: what changed in the CRM since the cursor, as normalized records (schemas/crm.py)
  with the cursor after each page; the hub writes them into the mirror with the cursor.
- `push(ops, context)`: carry out the hub's operations, batching as its API allows, and say
  what became of each (`PushResult`). It never writes to the store: the executor
  (hub/crm/push.py) records links and outcomes, so a crash anywhere leaves the outbox right.

Exactly once is shared work: the executor marks an operation as attempted before the backend
sees it and hands it back with `attempt > 1` when an earlier outcome is unknown; the backend
stores `op.hub_ref` in what it creates and, on such a retry, looks for it before creating."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from schemas.crm import CrmEntity, PullBatch, PushOp, PushResult, Ref


@dataclass(frozen=True)
class PendingOp:
    key: str  # the outbox row's idempotency key
    op: PushOp
    attempt: int  # 1: first try; more: an earlier try may or may not have reached the CRM

    @property
    def recovering(self) -> bool:
        return self.attempt > 1


@dataclass
class PushContext:
    """The id map as the backend needs it for one batch: CRM ids of the hub rows the operations
    name, the CRM's last known state of them, and the CRM users of the hub's reps."""

    links: dict[str, tuple[CrmEntity, str]] = field(default_factory=dict)  # Ref.key() -> (entity, id)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)  # Ref.key() -> state

    def crm_id(self, ref: Ref | None) -> str | None:
        if ref is None:
            return None
        link = self.links.get(ref.key())
        return link[1] if link else None

    def crm_entity(self, ref: Ref) -> CrmEntity | None:
        link = self.links.get(ref.key())
        return link[0] if link else None

    def state(self, ref: Ref) -> dict[str, Any]:
        return self.states.get(ref.key(), {})


@dataclass
class BackendUsage:
    """What talking to the CRM cost, for run metadata and `hub crm status`."""

    requests: int = 0
    throttled: int = 0  # 429 / QUERY_LIMIT_EXCEEDED answers, each waited out
    waited_s: float = 0.0  # time spent waiting for the client-side rate limit
    retries: int = 0

    def as_dict(self) -> dict[str, float]:
        return {
            "crm_requests": self.requests,
            "crm_throttled": self.throttled,
            "crm_rate_wait_s": round(self.waited_s, 3),
            "crm_retries": self.retries,
        }


class CrmBackend(Protocol):
    name: str
    # Whether `CreateLead` also creates its new contact in the CRM (amoCRM: yes, leads/complex;
    # Bitrix24 classic mode: no, the lead carries the person until people convert it). When not,
    # the planner plans a `CreateContact` for a contact something else needs.
    lead_creates_contact: bool

    def pull(self, cursor: dict[str, Any]) -> Iterator[PullBatch]:
        """Pages of what changed since `cursor` (the backend's own dict, {} at first), each with
        the cursor to resume after it."""
        ...

    def push(self, ops: Sequence[PendingOp], context: PushContext) -> list[PushResult]:
        """One result per operation, in order. Raises only when nothing could be tried at all
        (the CRM is down: a TransientSourceError; refused credentials: a CredentialError)."""
        ...

    def usage(self) -> BackendUsage: ...

    def entity_url(self, entity: CrmEntity, crm_id: str) -> str | None:
        """Where a person opens the entity in the CRM (alerts link to it)."""
        ...
