"""The id map between hub rows and CRM entities (hub_crm_links), and the hub's reference that a
backend stores in what it creates, so the entity can be found again after a lost answer."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any, get_args

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from hub.crm.backend import PushContext
from hub.store.cursors import load_cursor, save_cursor
from hub.store.models import CrmLink
from hub.store.upsert import upsert
from hub.timeutil import utcnow
from schemas.crm import CrmEntity, HubTable, Ref

INSTANCE_CURSOR = "hub:instance"
_HUB_TABLES: frozenset[str] = frozenset(get_args(HubTable))
_HUB_REF = re.compile(r"^hub:([0-9a-f]{8}):([a-z_]+):(\d+)$")


def instance_id(session: Session) -> str:
    """A random id of this store, made once: hub references of two stores never collide in one
    CRM (a demo reset, a second hub on the same account)."""
    state = load_cursor(session, INSTANCE_CURSOR)
    if "id" not in state:
        state = {"id": uuid.uuid4().hex[:8]}
        save_cursor(session, INSTANCE_CURSOR, state)
    return str(state["id"])


def hub_ref(instance: str, ref: Ref) -> str:
    return f"hub:{instance}:{ref.table}:{ref.id}"


def parse_hub_ref(value: str | None, instance: str) -> Ref | None:
    """The hub row a reference found in the CRM stands for, if this store made it."""
    match = _HUB_REF.match((value or "").strip())
    if not match or match.group(1) != instance or match.group(2) not in _HUB_TABLES:
        return None
    return Ref(table=match.group(2), id=int(match.group(3)))  # type: ignore[arg-type]


def crm_id_of(session: Session, backend: str, ref: Ref) -> str | None:
    return session.scalar(
        select(CrmLink.crm_id).where(
            CrmLink.backend == backend, CrmLink.hub_table == ref.table, CrmLink.hub_id == ref.id
        )
    )


def hub_id_of(session: Session, backend: str, table: HubTable, entity: CrmEntity, crm_id: str) -> int | None:
    """The hub row of `table` a CRM entity is linked to."""
    return session.scalar(
        select(CrmLink.hub_id).where(
            CrmLink.backend == backend,
            CrmLink.crm_entity == entity,
            CrmLink.crm_id == crm_id,
            CrmLink.hub_table == table,
        )
    )


def hub_ids_of(session: Session, backend: str, entity: CrmEntity, crm_ids: Iterable[str]) -> dict[str, int]:
    """CRM id -> hub row id for many entities of one kind at once (the mirror writer's lookups)."""
    ids = sorted(set(crm_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(CrmLink.crm_id, CrmLink.hub_id).where(
            CrmLink.backend == backend, CrmLink.crm_entity == entity, CrmLink.crm_id.in_(ids)
        )
    ).all()
    return {crm_id: hub_id for crm_id, hub_id in rows}


def save_link(
    session: Session,
    backend: str,
    ref: Ref,
    entity: CrmEntity,
    crm_id: str,
    state: dict[str, Any] | None = None,
) -> None:
    """Record (or confirm) that the hub row is this CRM entity; `state` replaces the base when
    given. Staged in the caller's transaction, with whatever the link was learnt with."""
    row: dict[str, Any] = {
        "backend": backend,
        "hub_table": ref.table,
        "hub_id": ref.id,
        "crm_entity": entity,
        "crm_id": str(crm_id),
        "updated_at": utcnow(),
    }
    if state is not None:
        row["state"] = state
    update = ["crm_id", "updated_at", *(["state"] if state is not None else [])]
    upsert(
        session,
        CrmLink,
        [row | {"state": state or {}}],
        key=["backend", "hub_table", "hub_id", "crm_entity"],
        update=update,
    )


def update_state(session: Session, backend: str, ref: Ref, changes: dict[str, Any]) -> None:
    """Merge `changes` into the link's base state (the link must exist)."""
    link = session.scalar(
        select(CrmLink).where(
            CrmLink.backend == backend, CrmLink.hub_table == ref.table, CrmLink.hub_id == ref.id
        )
    )
    if link is not None:
        link.state = {**(link.state or {}), **changes}


def push_context(session: Session, backend: str, refs: Iterable[Ref]) -> PushContext:
    """The links and states of the given hub rows, in one query."""
    wanted = {(ref.table, ref.id) for ref in refs}
    context = PushContext()
    if not wanted:
        return context
    rows = session.execute(
        select(CrmLink.hub_table, CrmLink.hub_id, CrmLink.crm_entity, CrmLink.crm_id, CrmLink.state).where(
            CrmLink.backend == backend, tuple_(CrmLink.hub_table, CrmLink.hub_id).in_(sorted(wanted))
        )
    ).all()
    for table, hub_id, entity, crm_id, state in rows:
        key = f"{table}:{hub_id}"
        context.links[key] = (entity, crm_id)
        context.states[key] = dict(state or {})
    return context
