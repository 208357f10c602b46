"""Merging a duplicate contact into the survivor with survivorship rules and a merge log, and
undoing a wrong merge from the log's snapshot (`hub contacts unmerge ID`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from hub.identity.normalize import company_key, name_key, name_parts
from hub.store.models import Base, Contact, ContactIdentifier, MergeLog
from hub.store.upsert import upsert
from hub.timeutil import as_utc, utcnow

# Fields of a contact that survivorship may change: the snapshot keeps them for unmerge.
SURVIVOR_FIELDS = (
    "name",
    "name_key",
    "company",
    "company_key",
    "phone_e164",
    "phone_ext",
    "email",
    "tax_id",
    "city",
    "region",
    "language",
    "owner_rep_id",
    "owner_reason",
)


class UnmergeError(ValueError):
    """The contact cannot be unmerged (never merged, or already restored)."""


def contact_tables() -> list[Table]:
    """Every table with a contact_id pointing at crm_contacts, whichever domain added it, except
    the identifier index (its rows are copied, not moved)."""
    tables = []
    for table in Base.metadata.sorted_tables:
        if table.name == ContactIdentifier.__tablename__ or "contact_id" not in table.c:
            continue
        column = table.c.contact_id
        if any(fk.column.table.name == Contact.__tablename__ for fk in column.foreign_keys):
            tables.append(table)
    return tables


def name_completeness(raw: str | None) -> tuple[int, int, int]:
    """More words, a patronymic, then a longer spelling: "Иванов Иван Петрович" beats "Иван"."""
    parts = name_parts(raw)
    return (len(parts.tokens), 1 if parts.patronymic else 0, len(raw or ""))


def apply_survivorship(survivor: Contact, other: Contact) -> list[str]:
    """Newest valid phone, most complete name, every email kept (the index holds them all;
    the survivor's stays primary), missing fields filled. Returns the fields changed."""
    changed = []
    other_newer = as_utc(other.updated_at or other.created_at) > as_utc(
        survivor.updated_at or survivor.created_at
    )
    if other.phone_e164 and (
        survivor.phone_e164 is None or (other_newer and other.phone_e164 != survivor.phone_e164)
    ):
        survivor.phone_e164, survivor.phone_ext = other.phone_e164, other.phone_ext
        changed.append("phone_e164")
    if other.name and name_completeness(other.name) > name_completeness(survivor.name):
        survivor.name, survivor.name_key = other.name, name_key(other.name)
        changed.append("name")
    for attr in ("email", "tax_id", "company", "city", "region", "language"):
        if getattr(survivor, attr) is None and getattr(other, attr) is not None:
            setattr(survivor, attr, getattr(other, attr))
            changed.append(attr)
    if "company" in changed:
        survivor.company_key = company_key(survivor.company)
    if survivor.owner_rep_id is None and other.owner_rep_id is not None:
        survivor.owner_rep_id, survivor.owner_reason = other.owner_rep_id, "owner of a merged duplicate"
        changed.append("owner_rep_id")
    return changed


def merge_contacts(
    session: Session, survivor: Contact, merged: Contact, reason: str, evidence: dict[str, Any]
) -> MergeLog:
    """Merge `merged` into `survivor`: its leads, deals, activities, tasks and every other row
    pointing at it move over, its keys are indexed under the survivor, and the log records the
    evidence and a snapshot from which `unmerge` restores both."""
    if survivor.id == merged.id or merged.merged_into_id is not None:
        raise ValueError(f"contact {merged.id} cannot be merged into {survivor.id}")
    snapshot: dict[str, Any] = {
        "survivor_before": {f: getattr(survivor, f) for f in SURVIVOR_FIELDS},
        "moved": {},
    }
    for table in contact_tables():
        ids = list(session.scalars(select(table.c.id).where(table.c.contact_id == merged.id)))
        if ids:
            session.execute(update(table).where(table.c.id.in_(ids)).values(contact_id=survivor.id))
            snapshot["moved"][table.name] = ids
    keys = session.execute(
        select(ContactIdentifier.kind, ContactIdentifier.value).where(
            ContactIdentifier.contact_id == merged.id
        )
    ).all()
    rows = [{"contact_id": survivor.id, "kind": k, "value": v, "seen_at": utcnow()} for k, v in keys]
    snapshot["identifiers_added"] = upsert(
        session, ContactIdentifier, rows, key=["kind", "value", "contact_id"], update=[], returning="id"
    )
    snapshot["changed"] = apply_survivorship(survivor, merged)
    merged.merged_into_id = survivor.id
    survivor.updated_at = utcnow()
    log = MergeLog(
        survivor_id=survivor.id,
        merged_id=merged.id,
        evidence=evidence,
        reason=reason[:500],
        snapshot=_jsonable(snapshot),
        merged_at=utcnow(),
    )
    session.add(log)
    session.flush()
    return log


def unmerge(session: Session, merged_id: int) -> MergeLog:
    """Undo the latest merge of contact `merged_id`: the survivor's fields as they were, the rows
    that moved back to the restored contact, the copied keys removed from the survivor."""
    log = session.scalars(
        select(MergeLog)
        .where(MergeLog.merged_id == merged_id, MergeLog.undone_at.is_(None))
        .order_by(MergeLog.id.desc())
        .limit(1)
    ).first()
    if log is None:
        raise UnmergeError(f"contact {merged_id} has no merge to undo (see hub_merge_log)")
    merged = session.get(Contact, merged_id)
    survivor = session.get(Contact, log.survivor_id)
    if merged is None or survivor is None:
        raise UnmergeError(f"merge {log.id}: a contact it names no longer exists")
    snapshot = log.snapshot or {}
    tables = {t.name: t for t in contact_tables()}
    for table_name, ids in (snapshot.get("moved") or {}).items():
        table = tables.get(table_name)
        if table is None or not ids:
            continue
        # Only rows still with the survivor go back: one moved on since is left where it is.
        session.execute(
            update(table)
            .where(table.c.id.in_(ids), table.c.contact_id == survivor.id)
            .values(contact_id=merged.id)
        )
    added = snapshot.get("identifiers_added") or []
    if added:
        session.execute(delete(ContactIdentifier).where(ContactIdentifier.id.in_(added)))
    for field, value in (snapshot.get("survivor_before") or {}).items():
        setattr(survivor, field, value)
    survivor.updated_at = utcnow()
    merged.merged_into_id = None
    merged.updated_at = utcnow()
    log.undone_at = utcnow()
    session.flush()
    return log


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
