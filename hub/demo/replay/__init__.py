"""Local servers that replay external systems' documented APIs (format, paging, limits,
failures): the demo runs against them, and the tests use the same ones.

Every CRM replay (amoCRM, Bitrix24) offers `CrmReplay`, so one scenario suite
(tests/crm/test_scenarios.py) and the demo drive any of them the same way: seed the company's
world, act as a person in the CRM (reassign, move a stage, finish a task), break things, and
read back what the CRM holds in one backend-neutral shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class CrmSnapshot:
    """What a CRM holds, normalized for comparison. Rows are plain dicts; users are named by
    email, entities by their name/title (and hub_ref when they carry one), so two runs against
    two fresh replays compare equal when they left the same things.

    - leads: what the hub's new leads became (amoCRM leads; Bitrix24 leads, or deals in simple
      mode): {"title", "responsible", "contact", "pipeline", "stage", "tags", "fields", "hub_ref"}
    - deals: the pipeline's deals (in amoCRM the same objects as leads)
    - contacts: {"name", "phones", "emails", "responsible", "company", "tags", "fields"}
    - companies: {"name", "responsible", "fields"}
    - tasks: {"text", "responsible", "entity", "entity_name", "done", "kind"}
    - notes: {"entity", "entity_name", "text"}
    - calls: {"entity", "entity_name", "phone", "direction", "duration", "recording_url", "uniq"}"""

    leads: list[dict[str, Any]] = field(default_factory=list)
    deals: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    companies: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def sorted(self) -> CrmSnapshot:
        def key(row: dict[str, Any]) -> str:
            return repr(sorted(row.items()))

        return CrmSnapshot(**{name: sorted(rows, key=key) for name, rows in self.__dict__.items()})


class CrmReplay(Protocol):
    """A running replay of one CRM (start it as a context manager; its state is in memory)."""

    backend: str  # the backend name in hub/crm/registry.py
    url: str

    def hub_environment(self) -> dict[str, str]:
        """The HUB_* variables that point the hub at this replay (backend, URL, credentials)."""
        ...

    def seed_users(self, users: list[dict[str, Any]]) -> list[str]:
        """{"name", "email", "active"} each; returns their CRM ids."""
        ...

    def seed_pipeline(self, name: str, stages: list[str]) -> None:
        """A pipeline with these open stages in order (won and lost exist in every pipeline)."""
        ...

    def seed_contacts(self, contacts: list[dict[str, Any]]) -> list[str]:
        """{"name", "phones", "emails", "company", "responsible" (a user's email)} each."""
        ...

    def seed_deals(self, deals: list[dict[str, Any]]) -> list[str]:
        """{"title", "pipeline", "stage", "amount", "contact" (a CRM contact id), "responsible"}."""
        ...

    def snapshot(self) -> CrmSnapshot: ...

    # A person working in the CRM (each bumps the entity's modification time).
    def reassign(self, entity: str, crm_id: str, user_email: str) -> None: ...

    def move_stage(self, deal_id: str, stage: str) -> None: ...

    def complete_task(self, task_id: str) -> None: ...

    def find(self, entity: str, **match: Any) -> list[str]:
        """CRM ids of entities whose snapshot row has these values (e.g. title=...)."""
        ...

    # Faults.
    def outage(self, requests: int) -> None:
        """The next `requests` requests get 5xx (or the API's own "unavailable" answer)."""
        ...

    def requests_seen(self) -> int: ...
