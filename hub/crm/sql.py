"""The built-in backend: no external CRM, the store's crm_* tables are the CRM people work in.
Nothing to pull and nothing to push; the planner plans nothing for it (registry: external=False)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from hub.crm.backend import BackendUsage, PendingOp, PushContext
from hub.settings import HubSettings
from schemas.crm import CrmEntity, PullBatch, PushResult


class SqlBackend:
    name = "sql"
    lead_creates_contact = True

    def pull(self, cursor: dict[str, Any]) -> Iterator[PullBatch]:
        return iter(())

    def push(self, ops: Sequence[PendingOp], context: PushContext) -> list[PushResult]:
        return [PushResult(outcome="skipped", detail="the store is the CRM") for _ in ops]

    def usage(self) -> BackendUsage:
        return BackendUsage()

    def entity_url(self, entity: CrmEntity, crm_id: str) -> str | None:
        return None


def build(settings: HubSettings, database_url: str) -> SqlBackend:
    return SqlBackend()
