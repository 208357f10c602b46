"""The Bitrix24 backend: pulls users, deal categories and stages, companies, contacts, leads (classic
mode), deals, tasks and stage history into the mirror; pushes the hub's operations as batched REST
calls, each create findable again by the hub's reference (docs/crm.md, "Bitrix24")."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from connectors.bitrix24 import (
    BATCH_MAX,
    OPERATION_LIMIT,
    ORIGINATOR,
    QUERY_LIMIT,
    BatchAnswer,
    Bitrix24Auth,
    Bitrix24Client,
    Command,
    OAuthTokens,
    OperationTimeLimit,
)
from connectors.errors import TransientSourceError
from hub.crm.backend import BackendUsage, PendingOp, PushContext
from hub.crm.plan import fields_digest
from hub.crm.tokens import load_tokens, save_tokens
from hub.settings import HubSettings
from hub.timeutil import as_utc, utcnow
from schemas.crm import (
    AddNote,
    ContactData,
    CreateContact,
    CreateLead,
    CreateTask,
    CrmCompany,
    CrmContact,
    CrmDeal,
    CrmEntity,
    CrmLead,
    CrmStage,
    CrmStageChange,
    CrmTask,
    CrmUser,
    FlagDuplicate,
    LogCall,
    PullBatch,
    PushResult,
    Ref,
    SetFields,
    SetResponsible,
    UpdateTask,
)

log = logging.getLogger(__name__)

NAME = "bitrix24"
# Rows modified this long before the cursor are read again: the portal stamps DATE_MODIFY in
# seconds and a row saved during the previous read may carry the boundary's second.
OVERLAP = timedelta(minutes=5)
PULLED_KINDS: tuple[str, ...] = ("company", "contact", "lead", "deal")
ENTITY_SELECT = ["*", "UF_*", "PHONE", "EMAIL"]
TASK_SELECT = [
    "ID",
    "TITLE",
    "DESCRIPTION",
    "RESPONSIBLE_ID",
    "DEADLINE",
    "STATUS",
    "CHANGED_DATE",
    "CLOSED_DATE",
    "XML_ID",
    "UF_CRM_TASK",
]
HISTORY_SELECT = ["ID", "OWNER_ID", "CATEGORY_ID", "STAGE_ID", "CREATED_TIME"]
# The hub's own fields (hub/crm/plan.py) as Bitrix24 user fields: UF_CRM_<CODE>, and their types.
FIELD_TYPES = {
    "hub_outstanding": "double",
    "hub_overdue": "double",
    "hub_max_days_overdue": "integer",
    "hub_aging_bucket": "string",
    "hub_first_touch": "string",
    "hub_last_non_direct": "string",
    "hub_attributed_revenue": "double",
}
FIELD_LABELS = {
    "hub_outstanding": "Hub: outstanding",
    "hub_overdue": "Hub: overdue",
    "hub_max_days_overdue": "Hub: max days overdue",
    "hub_aging_bucket": "Hub: aging bucket",
    "hub_first_touch": "Hub: first touch",
    "hub_last_non_direct": "Hub: last non-direct channel",
    "hub_attributed_revenue": "Hub: attributed revenue",
}
# Where a task or a call hangs: the CRM binding prefixes of UF_CRM_TASK and ENTITY_TYPE names.
BINDING = {"lead": "L", "deal": "D", "contact": "C", "company": "CO"}
UNBINDING = {v: k for k, v in BINDING.items()}
# Hub sources -> the portal's default SOURCE_ID values.
SOURCE_IDS = {"site": "WEB", "webhook": "WEB", "csv": "WEB", "mail": "EMAIL", "email": "EMAIL"}
CALL_SOURCES = ("phone", "call", "telephony", "twilio", "zadarma", "asterisk", "cdr")


def user_field(code: str) -> str:
    """hub_outstanding -> UF_CRM_HUB_OUTSTANDING (the portal prefixes FIELD_NAME with UF_CRM_)."""
    return "UF_CRM_" + code.upper()


def field_code(name: str) -> str | None:
    """UF_CRM_HUB_OUTSTANDING -> hub_outstanding, for the hub's own fields."""
    code = name.removeprefix("UF_CRM_").lower()
    return code if code in FIELD_TYPES else None


def marker(hub_ref: str) -> str:
    """The hub's reference at the end of a timeline comment: how a lost create is found again."""
    return f"[{hub_ref}]"


def _source_id(source: str) -> str:
    lowered = source.lower()
    if any(word in lowered for word in CALL_SOURCES):
        return "CALL"
    for word, source_id in SOURCE_IDS.items():
        if word in lowered:
            return source_id
    return "OTHER"


def _split_name(name: str | None) -> tuple[str, str]:
    first, _, last = (name or "").strip().partition(" ")
    return first, last.strip()


def _when(value: Any) -> datetime | None:
    if value in (None, "", {}, []):
        return None
    try:
        return as_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return None


def _values(items: Any) -> tuple[str, ...]:
    return tuple(str(i.get("VALUE")) for i in items or [] if isinstance(i, dict) and i.get("VALUE"))


def _id(value: Any) -> str | None:
    text = str(value or "").strip()
    return text if text and text != "0" else None


def _money(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except InvalidOperation:
        return None


def _hub_ref(row: dict[str, Any]) -> str | None:
    if row.get("ORIGINATOR_ID") == ORIGINATOR and row.get("ORIGIN_ID"):
        return str(row["ORIGIN_ID"])
    return None


def _iso(value: datetime) -> str:
    return as_utc(value).isoformat(timespec="seconds")


def _sibling_ref(op_ref: str, ref: Ref) -> str:
    """The hub reference of another row of the same store as `op_ref` (hub:<instance>:...)."""
    parts = op_ref.split(":")
    return f"{parts[0]}:{parts[1]}:{ref.table}:{ref.id}" if len(parts) >= 2 else f"hub:{ref.table}:{ref.id}"


# ---------------------------------------------------------------- mapping pulled rows


def to_user(row: dict[str, Any]) -> CrmUser:
    name = " ".join(str(row.get(k) or "").strip() for k in ("NAME", "LAST_NAME")).strip()
    active = row.get("ACTIVE")
    return CrmUser(
        crm_id=str(row["ID"]),
        name=name or str(row.get("EMAIL") or f"user {row['ID']}"),
        email=row.get("EMAIL") or None,
        phone=row.get("PERSONAL_MOBILE") or row.get("WORK_PHONE") or None,
        active=active is True or str(active).upper() in ("Y", "TRUE", "1"),
    )


def to_company(row: dict[str, Any]) -> CrmCompany:
    return CrmCompany(
        crm_id=str(row["ID"]),
        name=row.get("TITLE") or None,
        phones=_values(row.get("PHONE")),
        emails=_values(row.get("EMAIL")),
        responsible_id=_id(row.get("ASSIGNED_BY_ID")),
        updated_at=_when(row.get("DATE_MODIFY")) or utcnow(),
        hub_ref=_hub_ref(row),
    )


def to_contact(row: dict[str, Any]) -> CrmContact:
    name = " ".join(str(row.get(k) or "").strip() for k in ("NAME", "SECOND_NAME", "LAST_NAME") if row.get(k))
    return CrmContact(
        crm_id=str(row["ID"]),
        name=name or None,
        phones=_values(row.get("PHONE")),
        emails=_values(row.get("EMAIL")),
        company_id=_id(row.get("COMPANY_ID")),
        responsible_id=_id(row.get("ASSIGNED_BY_ID")),
        created_at=_when(row.get("DATE_CREATE")),
        updated_at=_when(row.get("DATE_MODIFY")) or utcnow(),
        hub_ref=_hub_ref(row),
    )


def to_lead(row: dict[str, Any]) -> CrmLead:
    name = " ".join(str(row.get(k) or "").strip() for k in ("NAME", "LAST_NAME") if row.get(k))
    created = _when(row.get("DATE_CREATE")) or utcnow()
    return CrmLead(
        crm_id=str(row["ID"]),
        title=row.get("TITLE") or None,
        name=name or None,
        phones=_values(row.get("PHONE")),
        emails=_values(row.get("EMAIL")),
        company=row.get("COMPANY_TITLE") or None,
        source=row.get("SOURCE_ID") or None,
        status_id=row.get("STATUS_ID") or None,
        closed=row.get("STATUS_SEMANTIC_ID") in ("S", "F"),
        contact_id=_id(row.get("CONTACT_ID")),
        responsible_id=_id(row.get("ASSIGNED_BY_ID")),
        created_at=created,
        updated_at=_when(row.get("DATE_MODIFY")) or created,
        hub_ref=_hub_ref(row),
    )


def to_deal(row: dict[str, Any]) -> CrmDeal:
    semantic = row.get("STAGE_SEMANTIC_ID")
    state = "won" if semantic == "S" else "lost" if semantic == "F" else "open"
    created = _when(row.get("DATE_CREATE")) or utcnow()
    return CrmDeal(
        entity="deal",
        crm_id=str(row["ID"]),
        title=row.get("TITLE") or None,
        pipeline_id=str(row.get("CATEGORY_ID") or 0),
        stage_id=str(row.get("STAGE_ID") or ""),
        state=state,
        amount=_money(row.get("OPPORTUNITY")),
        currency=row.get("CURRENCY_ID") or None,
        contact_id=_id(row.get("CONTACT_ID")),
        company_id=_id(row.get("COMPANY_ID")),
        responsible_id=_id(row.get("ASSIGNED_BY_ID")),
        created_at=created,
        closed_at=_when(row.get("CLOSEDATE")) if row.get("CLOSED") == "Y" else None,
        updated_at=_when(row.get("DATE_MODIFY")) or created,
        hub_ref=_hub_ref(row),
        lead_id=_id(row.get("LEAD_ID")),
    )


def to_task(row: dict[str, Any]) -> CrmTask:
    binding = next(iter(row.get("ufCrmTask") or []), "")
    prefix, _, entity_id = str(binding).partition("_")
    entity = UNBINDING.get(prefix)
    xml_id = row.get("xmlId") or ""
    return CrmTask(
        crm_id=str(row["id"]),
        text=str(row.get("title") or ""),
        responsible_id=_id(row.get("responsibleId")),
        entity=entity if entity in ("contact", "company", "lead", "deal") else None,  # type: ignore[arg-type]
        entity_id=entity_id or None,
        due_at=_when(row.get("deadline")),
        done=str(row.get("status")) == "5",
        updated_at=_when(row.get("changedDate")) or utcnow(),
        hub_ref=xml_id if str(xml_id).startswith("hub:") else None,
    )


def to_stages(categories: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> list[CrmStage]:
    stages: list[CrmStage] = []
    for category in categories:
        cid = int(category.get("id") or 0)
        entity = "DEAL_STAGE" if cid == 0 else f"DEAL_STAGE_{cid}"
        rows = sorted(
            (s for s in statuses if s.get("ENTITY_ID") == entity), key=lambda s: int(s.get("SORT") or 0)
        )
        for position, row in enumerate(rows):
            semantic = row.get("SEMANTICS") or (row.get("EXTRA") or {}).get("SEMANTICS")
            kind = (
                "won"
                if semantic in ("S", "success")
                else "lost"
                if semantic in ("F", "failure", "apology")
                else "open"
            )
            stages.append(
                CrmStage(
                    pipeline_id=str(cid),
                    pipeline=str(category.get("name") or cid),
                    stage_id=str(row["STATUS_ID"]),
                    stage=str(row.get("NAME") or row["STATUS_ID"]),
                    position=position,
                    kind=kind,  # type: ignore[arg-type]
                )
            )
    return stages


def to_stage_change(row: dict[str, Any]) -> CrmStageChange:
    return CrmStageChange(
        event_id=str(row["ID"]),
        deal_id=str(row["OWNER_ID"]),
        pipeline_id=str(row.get("CATEGORY_ID") or 0),
        stage_id=str(row.get("STAGE_ID") or ""),
        at=_when(row.get("CREATED_TIME")) or utcnow(),
    )


# ---------------------------------------------------------------- pushing: jobs of batched commands


@dataclass
class _Job:
    """One operation as commands for one batch and how to read their answers."""

    commands: dict[str, Command]
    finish: Callable[[BatchAnswer], PushResult]


def _error_text(answer: BatchAnswer, key: str) -> str:
    error = answer.errors.get(key) or {}
    return f"{error.get('error') or 'error'}: {error.get('error_description') or ''}".strip(": ")


def _failed_or_retry(answer: BatchAnswer, key: str, what: str) -> PushResult:
    error = answer.errors.get(key) or {}
    code = error.get("error")
    if code in (QUERY_LIMIT, OPERATION_LIMIT, "INTERNAL_SERVER_ERROR"):
        return PushResult(outcome="retry", detail=f"{what}: {_error_text(answer, key)}", retry_after_s=60.0)
    if key not in answer.results and key not in answer.errors:
        return PushResult(outcome="retry", detail=f"{what}: not run (an earlier command of the batch failed)")
    return PushResult(outcome="failed", detail=f"Bitrix24 refused {what}: {_error_text(answer, key)}")


@dataclass
class _Portal:
    """What the backend learns about the portal once per run."""

    mode: str | None = None  # classic | simple
    categories: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    user_fields: dict[str, set[str]] = field(default_factory=dict)  # entity -> UF_CRM_* names
    default_user: str | None = None


class Bitrix24Backend:
    name = NAME

    def __init__(
        self,
        client: Bitrix24Client,
        *,
        portal_url: str = "",
        lead_pipeline: str = "",
        lead_stage: str = "",
    ) -> None:
        self.client = client
        self.portal_url = portal_url.rstrip("/")
        self.lead_pipeline = lead_pipeline
        self.lead_stage = lead_stage
        self.portal = _Portal()

    # ------------------------------------------------------------ the portal

    def mode(self) -> str:
        """classic (leads, then deals) or simple (deals only), as crm.settings.mode.get says."""
        if self.portal.mode is None:
            self._reference()
        return self.portal.mode or "classic"

    @property
    def lead_creates_contact(self) -> bool:
        """Simple mode: a deal needs its contact, created in the same batch. Classic mode: the lead
        holds the person's name, phones and e-mails itself and people convert it into a contact
        and a deal; the hub creates the contact only when something else hangs on it (a call, a
        note, receivables), and the lead then names it."""
        return self.mode() == "simple"

    def _reference_commands(self) -> dict[str, Command]:
        return {
            "mode": Command("crm.settings.mode.get"),
            "categories": Command("crm.category.list", {"entityTypeId": 2}),
            "statuses": Command("crm.status.list", {"order": {"SORT": "ASC"}}),
        }

    def _reference(self, answer: BatchAnswer | None = None) -> None:
        answer = answer or self.client.batch(self._reference_commands())
        for key in ("mode", "categories", "statuses"):
            if key in answer.errors:
                raise TransientSourceError(f"Bitrix24: {key}: {_error_text(answer, key)}")
        self.portal.mode = "simple" if str(answer.results.get("mode")) == "2" else "classic"
        categories = (answer.results.get("categories") or {}).get("categories") or []
        self.portal.categories = list(categories) or [{"id": 0, "name": "General", "isDefault": "Y"}]
        self.portal.statuses = list(answer.results.get("statuses") or [])

    def _default_user(self) -> str:
        """Who the hub acts as: the webhook's user (in its URL), else user.current."""
        if self.portal.default_user is None:
            if self.client.auth.uses_webhook:
                parts = [p for p in urlsplit(self.client.auth.webhook_url).path.split("/") if p]
                self.portal.default_user = parts[-2] if len(parts) >= 3 else "1"
            else:
                current = self.client.call("user.current").result or {}
                self.portal.default_user = str(current.get("ID") or 1)
        return self.portal.default_user

    def _category_and_stage(self) -> tuple[str, str | None]:
        self.mode()
        category = next(
            (
                c
                for c in self.portal.categories
                if self.lead_pipeline and self.lead_pipeline in (str(c.get("name")), str(c.get("id")))
            ),
            None,
        ) or next((c for c in self.portal.categories if c.get("isDefault") == "Y"), self.portal.categories[0])
        cid = int(category.get("id") or 0)
        stages = [s for s in to_stages([category], self.portal.statuses)]
        stage = (
            next((s.stage_id for s in stages if self.lead_stage in (s.stage, s.stage_id)), None)
            if self.lead_stage
            else None
        )
        return str(cid), stage

    # ------------------------------------------------------------ pull

    def pull(self, cursor: dict[str, Any]) -> Iterator[PullBatch]:
        cursor = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cursor.items()}
        # One request for the reference data and the first page of every kind: a quiet portal's
        # increment costs one request.
        commands = {
            **self._reference_commands(),
            "users": Command("user.get", {"sort": "ID", "order": "ASC", "start": 0}),
        }
        for kind in PULLED_KINDS:
            commands[kind] = Command(f"crm.{kind}.list", self._kind_params(kind, cursor))
        commands["task"] = Command("tasks.task.list", self._task_params(cursor))
        commands["history"] = Command("crm.stagehistory.list", self._history_params(cursor))
        answer = self.client.batch(commands)
        self._reference(answer)
        if "users" in answer.errors:
            raise TransientSourceError(f"Bitrix24: user.get: {_error_text(answer, 'users')}")
        users = [to_user(row) for row in answer.results.get("users") or []]
        if answer.nexts.get("users"):
            params = {"sort": "ID", "order": "ASC"}
            for page in self.client.pages("user.get", params, start=answer.nexts["users"]):
                users.extend(to_user(row) for row in page.result or [])
        yield PullBatch(
            users=users, stages=to_stages(self.portal.categories, self.portal.statuses), cursor=dict(cursor)
        )

        def first(key: str) -> Any:
            return answer.results.get(key) if answer.ok(key) else None

        for kind in PULLED_KINDS:
            if kind == "lead" and self.portal.mode == "simple":
                continue
            yield from self._pull_kind(kind, cursor, first(kind))
        yield from self._pull_tasks(cursor, first("task"))
        yield from self._pull_history(cursor, first("history"))

    def _kind_params(self, kind: str, cursor: dict[str, Any]) -> dict[str, Any]:
        state, since = self._increment(cursor, kind)
        flt = {">=DATE_MODIFY": since} if since else {}
        return self.client.fast_params(
            {"select": ENTITY_SELECT, "filter": flt}, after_id=int(state.get("after") or 0)
        )

    def _task_params(self, cursor: dict[str, Any]) -> dict[str, Any]:
        state, since = self._increment(cursor, "task")
        flt = {">=CHANGED_DATE": since} if since else {}
        return self.client.fast_params(
            {"select": TASK_SELECT, "filter": flt}, after_id=int(state.get("after") or 0), count=True
        )

    def _history_params(self, cursor: dict[str, Any]) -> dict[str, Any]:
        return self.client.fast_params(
            {"entityTypeId": 2, "select": HISTORY_SELECT}, after_id=int(cursor.get("history_after") or 0)
        )

    def _increment(self, cursor: dict[str, Any], key: str) -> tuple[dict[str, Any], str | None]:
        state = dict(cursor.get(key) or {})
        since = _when(state.get("since"))
        return state, _iso(since - OVERLAP) if since else None

    def _pull_kind(self, kind: str, cursor: dict[str, Any], first: Any = None) -> Iterator[PullBatch]:
        state, since = self._increment(cursor, kind)
        flt = {">=DATE_MODIFY": since} if since else {}
        newest = state.get("newest") or state.get("since")
        for rows, last in self.client.fast_pages(
            f"crm.{kind}.list",
            {"select": ENTITY_SELECT, "filter": flt},
            after_id=int(state.get("after") or 0),
            first=first,
        ):
            for row in rows:
                stamp = _when(row.get("DATE_MODIFY"))
                if stamp and (newest is None or stamp > _when(newest)):  # type: ignore[operator]
                    newest = _iso(stamp)
            state = {**state, "after": last, "newest": newest}
            if len(rows) < 50:
                # The whole increment is read: the next run starts from its newest row.
                state = {"since": newest}
            cursor[kind] = state
            batch = PullBatch(cursor=dict(cursor))
            mapped = {
                "company": (batch.companies, to_company),
                "contact": (batch.contacts, to_contact),
                "lead": (batch.leads, to_lead),
                "deal": (batch.deals, to_deal),
            }[kind]
            mapped[0].extend(mapped[1](row) for row in rows)  # type: ignore[operator]
            yield batch

    def _pull_tasks(self, cursor: dict[str, Any], first: Any = None) -> Iterator[PullBatch]:
        state, since = self._increment(cursor, "task")
        flt = {">=CHANGED_DATE": since} if since else {}
        newest = state.get("newest") or state.get("since")
        for rows, last in self.client.fast_pages(
            "tasks.task.list",
            {"select": TASK_SELECT, "filter": flt},
            after_id=int(state.get("after") or 0),
            rows=lambda result: list((result or {}).get("tasks") or []),
            count=True,
            first=first,
        ):
            for row in rows:
                stamp = _when(row.get("changedDate"))
                if stamp and (newest is None or stamp > _when(newest)):  # type: ignore[operator]
                    newest = _iso(stamp)
            state = {**state, "after": last, "newest": newest}
            if len(rows) < 50:
                state = {"since": newest}
            cursor["task"] = state
            yield PullBatch(tasks=[to_task(row) for row in rows], cursor=dict(cursor))

    def _pull_history(self, cursor: dict[str, Any], first: Any = None) -> Iterator[PullBatch]:
        for rows, last in self.client.fast_pages(
            "crm.stagehistory.list",
            {"entityTypeId": 2, "select": HISTORY_SELECT},
            after_id=int(cursor.get("history_after") or 0),
            rows=lambda result: list((result or {}).get("items") or []),
            first=first,
        ):
            cursor["history_after"] = last
            yield PullBatch(stage_changes=[to_stage_change(row) for row in rows], cursor=dict(cursor))

    # ------------------------------------------------------------ evidence for identity resolution

    def duplicates_by_comm(
        self, phones: Sequence[str] = (), emails: Sequence[str] = (), entity_type: str | None = "CONTACT"
    ) -> dict[str, list[str]]:
        """Bitrix24's own duplicate index (crm.duplicate.findbycomm): {"CONTACT": [ids], "LEAD": ...}
        of cards sharing any of these phones or e-mails (up to 20 of each per call). Evidence for
        identity resolution, never a merge by itself: a shared switchboard matches many people."""
        commands: dict[str, Command] = {}
        for kind, values in (("PHONE", list(phones)), ("EMAIL", list(emails))):
            for start in range(0, len(values), 20):
                params: dict[str, Any] = {"type": kind, "values": values[start : start + 20]}
                if entity_type:
                    params["entity_type"] = entity_type
                commands[f"{kind.lower()}{start}"] = Command("crm.duplicate.findbycomm", params)
        found: dict[str, set[str]] = {}
        keys = list(commands)
        for start in range(0, len(keys), BATCH_MAX):
            answer = self.client.batch({k: commands[k] for k in keys[start : start + BATCH_MAX]})
            for result in answer.results.values():
                for entity, ids in (result or {}).items() if isinstance(result, dict) else ():
                    found.setdefault(entity, set()).update(str(i) for i in ids)
        return {entity: sorted(ids, key=int) for entity, ids in found.items()}

    # ------------------------------------------------------------ push

    def push(self, ops: Sequence[PendingOp], context: PushContext) -> list[PushResult]:
        self.mode()
        results: list[PushResult | None] = [None] * len(ops)
        found = self._recover(ops, context)
        current = self._read_current(ops, context)
        jobs: list[tuple[int, _Job]] = []
        for index, pending in enumerate(ops):
            try:
                outcome = self._job(pending, context, found.get(index), current.get(index))
            except OperationTimeLimit as exc:
                outcome = PushResult(outcome="retry", detail=str(exc), retry_after_s=exc.retry_after_s)
            except TransientSourceError as exc:
                # A read the operation needs first (its user fields) failed: this one waits.
                outcome = PushResult(outcome="retry", detail=str(exc))
            if isinstance(outcome, PushResult):
                results[index] = outcome
            else:
                jobs.append((index, outcome))
        self._run(jobs, results)
        return [
            r if r is not None else PushResult(outcome="retry", detail="not carried out") for r in results
        ]

    def _run(self, jobs: list[tuple[int, _Job]], results: list[PushResult | None]) -> None:
        """Pack the jobs into batches of at most 50 commands (a job's commands stay together:
        later ones use `$result[...]` of earlier ones) and read back every job's outcome."""
        batches: list[list[tuple[int, _Job]]] = []
        for item in jobs:
            if (
                not batches
                or sum(len(j.commands) for _, j in batches[-1]) + len(item[1].commands) > BATCH_MAX
            ):
                batches.append([])
            batches[-1].append(item)
        done_any = False
        for number, group in enumerate(batches):
            commands = {key: command for _, job in group for key, command in job.commands.items()}
            try:
                answer = self.client.batch(commands, write=True)
            except TransientSourceError as exc:
                if not done_any:
                    raise  # the portal is down or saturated: the pusher gives everything back
                retry_after = exc.retry_after_s if isinstance(exc, OperationTimeLimit) else None
                for later in batches[number:]:
                    for index, _ in later:
                        # The outcome of this batch is unknown: the next attempt looks before creating.
                        results[index] = PushResult(
                            outcome="retry", detail=str(exc), retry_after_s=retry_after
                        )
                return
            done_any = True
            for index, job in group:
                results[index] = job.finish(answer)

    # ------------------------------------------------------------ recovery: find what a lost answer created

    def _recover(self, ops: Sequence[PendingOp], context: PushContext) -> dict[int, dict[str, Any]]:
        commands: dict[str, Command] = {}
        for index, pending in enumerate(ops):
            if not pending.recovering:
                continue
            for name, command in self._lookups(pending, context).items():
                commands[f"r{index}_{name}"] = command
        found: dict[int, dict[str, Any]] = {}
        keys = list(commands)
        for start in range(0, len(keys), BATCH_MAX):
            answer = self.client.batch({k: commands[k] for k in keys[start : start + BATCH_MAX]})
            if answer.errors:
                raise TransientSourceError(
                    "Bitrix24: looking up what an interrupted push created failed: "
                    + "; ".join(_error_text(answer, k) for k in answer.errors)
                )
            for key, result in answer.results.items():
                index_text, _, name = key[1:].partition("_")
                found.setdefault(int(index_text), {})[name] = result
        return found

    def _lookups(self, pending: PendingOp, context: PushContext) -> dict[str, Command]:
        op = pending.op

        def by_origin(entity: str, hub_ref: str) -> Command:
            return Command(
                f"crm.{entity}.list",
                {
                    "filter": {"ORIGINATOR_ID": ORIGINATOR, "ORIGIN_ID": hub_ref},
                    "select": ["ID", "ASSIGNED_BY_ID", "CONTACT_ID"],
                },
            )

        if isinstance(op, CreateLead):
            lookups = {"lead": by_origin("deal" if self.mode() == "simple" else "lead", op.hub_ref)}
            if op.contact.ref.table == "crm_contacts":
                lookups["contact"] = by_origin("contact", _sibling_ref(op.hub_ref, op.contact.ref))
            return lookups
        if isinstance(op, CreateContact):
            return {"contact": by_origin("contact", op.hub_ref)}
        if isinstance(op, LogCall):
            return {
                "call": Command(
                    "voximplant.statistic.get", {"FILTER": {"EXTERNAL_CALL_ID": _call_key(op.hub_ref)}}
                )
            }
        if isinstance(op, CreateTask):
            return {
                "task": Command(
                    "tasks.task.list",
                    {
                        "filter": {"TITLE": _task_title(op.text)},
                        "select": TASK_SELECT,
                        "order": {"ID": "desc"},
                    },
                )
            }
        if isinstance(op, AddNote):
            target = self._target(context, op.target)
            if target:
                return {"note": _comment_lookup(*target)}
        if isinstance(op, FlagDuplicate):
            lookups = {}
            for name, ref in (("survivor", op.survivor), ("duplicate", op.duplicate)):
                target = self._target(context, ref)
                if target:
                    lookups[name] = _comment_lookup(*target)
            lookups["task"] = Command(
                "tasks.task.list",
                {"filter": {"TITLE": _duplicate_title()}, "select": TASK_SELECT, "order": {"ID": "desc"}},
            )
            return lookups
        return {}

    # ------------------------------------------------------------ three-way reads before conditional writes

    def _read_current(self, ops: Sequence[PendingOp], context: PushContext) -> dict[int, Any]:
        commands: dict[str, Command] = {}
        for index, pending in enumerate(ops):
            op = pending.op
            if isinstance(op, SetResponsible) and op.expected_responsible is not None:
                target = self._target(context, op.target)
                if target:
                    commands[f"g{index}"] = Command(f"crm.{target[0]}.get", {"id": target[1]})
            if isinstance(op, UpdateTask):
                task_id = context.crm_id(op.task)
                if task_id:
                    commands[f"g{index}"] = Command(
                        "tasks.task.get", {"taskId": task_id, "select": TASK_SELECT}
                    )
        current: dict[int, Any] = {}
        keys = list(commands)
        for start in range(0, len(keys), BATCH_MAX):
            answer = self.client.batch({k: commands[k] for k in keys[start : start + BATCH_MAX]})
            for key in keys[start : start + BATCH_MAX]:
                current[int(key[1:])] = (
                    answer.results.get(key) if answer.ok(key) else {"__error__": _error_text(answer, key)}
                )
        return current

    # ------------------------------------------------------------ operations

    def _target(self, context: PushContext, ref: Ref) -> tuple[str, str] | None:
        crm_id = context.crm_id(ref)
        entity = context.crm_entity(ref)
        if crm_id is None or entity is None:
            return None
        return str(entity), crm_id

    def _user(self, context: PushContext, ref: Ref | None) -> str | None:
        return context.crm_id(ref)

    def _job(
        self, pending: PendingOp, context: PushContext, found: dict[str, Any] | None, current: Any
    ) -> _Job | PushResult:
        op = pending.op
        key = pending.key
        prefix = "o" + hashlib.sha1(key.encode()).hexdigest()[:10]
        if isinstance(op, CreateLead):
            return self._create_lead(op, context, found or {}, prefix)
        if isinstance(op, CreateContact):
            return self._create_contact(op, context, found or {}, prefix)
        if isinstance(op, LogCall):
            return self._log_call(op, context, found or {}, prefix)
        if isinstance(op, CreateTask):
            return self._create_task(op, context, found or {}, prefix)
        if isinstance(op, UpdateTask):
            return self._update_task(op, context, current, prefix)
        if isinstance(op, AddNote):
            return self._add_note(op, context, found or {}, prefix)
        if isinstance(op, SetFields):
            return self._set_fields(op, context, prefix)
        if isinstance(op, SetResponsible):
            return self._set_responsible(op, context, current, prefix)
        if isinstance(op, FlagDuplicate):
            return self._flag_duplicate(op, context, found or {}, prefix)
        return PushResult(outcome="failed", detail=f"Bitrix24 backend cannot carry out {type(op).__name__}")

    def _person_fields(self, data: ContactData, context: PushContext) -> dict[str, Any]:
        first, last = _split_name(data.name)
        fields: dict[str, Any] = {"NAME": first or (data.phone or data.email or "?"), "LAST_NAME": last}
        if data.phone:
            fields["PHONE"] = [{"VALUE": data.phone, "VALUE_TYPE": "WORK"}]
        if data.email:
            fields["EMAIL"] = [{"VALUE": data.email, "VALUE_TYPE": "WORK"}]
        return fields

    def _contact_command(self, data: ContactData, hub_ref: str, context: PushContext) -> Command:
        fields = self._person_fields(data, context)
        owner = self._user(context, data.responsible)
        if owner:
            fields["ASSIGNED_BY_ID"] = owner
        if data.company:
            fields["COMMENTS"] = f"Company: {data.company}"
        fields |= {"ORIGINATOR_ID": ORIGINATOR, "ORIGIN_ID": hub_ref, "OPENED": "Y"}
        return Command("crm.contact.add", {"fields": fields, "params": {"REGISTER_SONET_EVENT": "N"}})

    def _create_contact(
        self, op: CreateContact, context: PushContext, found: dict[str, Any], prefix: str
    ) -> _Job | PushResult:
        ref = op.contact.ref
        owner = self._user(context, op.contact.responsible)
        existing = _first_id(found.get("contact"))
        if existing:
            return PushResult(
                outcome="done",
                links={ref.key(): ("contact", existing)},
                state={ref.key(): {"responsible": owner}},
            )
        key = f"{prefix}_c"

        def finish(answer: BatchAnswer) -> PushResult:
            if not answer.ok(key):
                return _failed_or_retry(answer, key, "the contact")
            return PushResult(
                outcome="done",
                links={ref.key(): ("contact", str(answer.results[key]))},
                state={ref.key(): {"responsible": owner}},
            )

        return _Job({key: self._contact_command(op.contact, op.hub_ref, context)}, finish)

    def _lead_fields(self, op: CreateLead, context: PushContext) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "TITLE": op.title,
            "SOURCE_ID": _source_id(op.source),
            "SOURCE_DESCRIPTION": op.channel or op.source,
            "ORIGINATOR_ID": ORIGINATOR,
            "ORIGIN_ID": op.hub_ref,
            "OPENED": "Y",
        }
        owner = self._user(context, op.responsible)
        if owner:
            fields["ASSIGNED_BY_ID"] = owner
        for name, value in op.utm.items():
            if name.startswith("utm_"):
                fields[name.upper()] = value
        comments = [
            text
            for text in (
                op.message,
                op.note,
                ", ".join(f"{k}={v}" for k, v in op.utm.items() if not k.startswith("utm_")),
                ("Tags: " + ", ".join(op.tags)) if op.tags else "",
            )
            if text
        ]
        if comments:
            fields["COMMENTS"] = "\n".join(comments)
        return fields

    def _create_lead(
        self, op: CreateLead, context: PushContext, found: dict[str, Any], prefix: str
    ) -> _Job | PushResult:
        simple = self.mode() == "simple"
        entity: CrmEntity = "deal" if simple else "lead"
        lead_key = op.lead.key()
        owner = self._user(context, op.responsible)
        contact_ref = op.contact.ref if op.contact.ref.table == "crm_contacts" else None
        contact_id = (
            context.crm_id(op.existing_contact)
            or context.crm_id(contact_ref)
            or _first_id(found.get("contact"))
        )
        links: dict[str, tuple[CrmEntity, str]] = {}
        if contact_ref is not None and contact_id:
            links[contact_ref.key()] = ("contact", contact_id)
        existing = _first_id(found.get("lead"))
        if existing:
            links[lead_key] = (entity, existing)
            return PushResult(outcome="done", links=links, state={lead_key: {"responsible": owner}})
        fields = self._lead_fields(op, context)
        commands: dict[str, Command] = {}
        contact_key = f"{prefix}_c"
        lead_cmd = f"{prefix}_l"
        if simple:
            category, stage = self._category_and_stage()
            fields["CATEGORY_ID"] = category
            if stage:
                fields["STAGE_ID"] = stage
            if contact_id:
                fields["CONTACT_ID"] = contact_id
            else:
                # A deal needs its person: the contact first, the deal names it by $result.
                contact_ref = contact_ref or op.contact.ref
                commands[contact_key] = self._contact_command(
                    op.contact, _sibling_ref(op.hub_ref, contact_ref), context
                )
                fields["CONTACT_ID"] = f"$result[{contact_key}]"
            commands[lead_cmd] = Command(
                "crm.deal.add", {"fields": fields, "params": {"REGISTER_SONET_EVENT": "Y"}}
            )
        else:
            # Classic mode: the lead carries the person; people convert it into contact and deal.
            person = self._person_fields(op.contact, context)
            fields |= {k: v for k, v in person.items() if k in ("NAME", "LAST_NAME", "PHONE", "EMAIL")}
            if op.contact.company:
                fields["COMPANY_TITLE"] = op.contact.company
            if contact_id:
                fields["CONTACT_ID"] = contact_id
            commands[lead_cmd] = Command(
                "crm.lead.add", {"fields": fields, "params": {"REGISTER_SONET_EVENT": "Y"}}
            )
        new_contact = contact_key in commands

        def finish(answer: BatchAnswer) -> PushResult:
            made = dict(links)
            if new_contact and answer.ok(contact_key) and contact_ref is not None:
                made[contact_ref.key()] = ("contact", str(answer.results[contact_key]))
            if not answer.ok(lead_cmd):
                failure = _failed_or_retry(
                    answer,
                    contact_key if new_contact and not answer.ok(contact_key) else lead_cmd,
                    f"the {entity}",
                )
                return failure.model_copy(update={"links": made})
            made[lead_key] = (entity, str(answer.results[lead_cmd]))
            return PushResult(outcome="done", links=made, state={lead_key: {"responsible": owner}})

        return _Job(commands, finish)

    def _log_call(
        self, op: LogCall, context: PushContext, found: dict[str, Any], prefix: str
    ) -> _Job | PushResult:
        call_key = op.call.key()
        logged = found.get("call")
        if isinstance(logged, list) and logged:
            return PushResult(
                outcome="done",
                links={call_key: ("call", str(logged[0].get("CRM_ACTIVITY_ID") or logged[0].get("CALL_ID")))},
            )
        target = self._target(context, op.target)
        if target is None:
            return PushResult(outcome="retry", detail="the call's contact is not in Bitrix24 yet")
        if not op.phone:
            return PushResult(
                outcome="failed", detail="a call without the client's number cannot be registered in Bitrix24"
            )
        user = self._user(context, op.responsible) or self._default_user()
        register, finish_key, attach = f"{prefix}_r", f"{prefix}_f", f"{prefix}_a"
        answered = op.disposition.lower() in ("answered", "completed", "200") or op.talk_s > 0
        commands = {
            register: Command(
                "telephony.externalcall.register",
                {
                    "USER_ID": user,
                    "PHONE_NUMBER": op.phone,
                    "TYPE": 1 if op.direction == "outbound" else 2,
                    "CALL_START_DATE": _iso(op.started_at),
                    "CRM_CREATE": 0,
                    "CRM_ENTITY_TYPE": target[0].upper(),
                    "CRM_ENTITY_ID": target[1],
                    "SHOW": 0,
                    "ADD_TO_CHAT": 0,
                    # Registered again with the same id, the portal answers the same call.
                    "EXTERNAL_CALL_ID": _call_key(op.hub_ref),
                },
            ),
            finish_key: Command(
                "telephony.externalcall.finish",
                {
                    "CALL_ID": f"$result[{register}][CALL_ID]",
                    "USER_ID": user,
                    "DURATION": op.talk_s if answered else 0,
                    "STATUS_CODE": "200"
                    if answered
                    else "486"
                    if "busy" in op.disposition.lower()
                    else "304",
                    "ADD_TO_CHAT": 0,
                },
            ),
        }
        if op.recording_url:
            commands[attach] = Command(
                "telephony.externalcall.attachRecord",
                {
                    "CALL_ID": f"$result[{register}][CALL_ID]",
                    "RECORD_URL": op.recording_url,
                    "FILENAME": "recording.mp3",
                },
            )

        def finish(answer: BatchAnswer) -> PushResult:
            for key, what in ((register, "the call"), (finish_key, "the call's end")):
                if not answer.ok(key):
                    return _failed_or_retry(answer, key, what)
            result = answer.results[finish_key] or {}
            detail = None
            if op.recording_url and not answer.ok(attach):
                detail = f"recording not attached: {_error_text(answer, attach)}"
            activity = str(
                result.get("CRM_ACTIVITY_ID")
                or result.get("CALL_ID")
                or answer.results[register].get("CALL_ID")
            )
            return PushResult(outcome="done", links={call_key: ("call", activity)}, detail=detail)

        return _Job(commands, finish)

    def _create_task(
        self, op: CreateTask, context: PushContext, found: dict[str, Any], prefix: str
    ) -> _Job | PushResult:
        task_key = op.task.key()
        owner = self._user(context, op.responsible) or self._default_user()
        existing = _task_with_ref(
            (found.get("task") or {}).get("tasks") if isinstance(found.get("task"), dict) else None,
            op.hub_ref,
        )
        state = {task_key: {"responsible": owner, "done": False}}
        if existing:
            return PushResult(outcome="done", links={task_key: ("task", existing)}, state=state)
        fields: dict[str, Any] = {
            "TITLE": _task_title(op.text),
            "DESCRIPTION": f"{op.text}\n\n{marker(op.hub_ref)}",
            "RESPONSIBLE_ID": owner,
            "XML_ID": op.hub_ref,
            "TAGS": ["hub", op.kind],
        }
        if op.due_at:
            fields["DEADLINE"] = _iso(op.due_at)
        if op.target is not None:
            target = self._target(context, op.target)
            if target:
                fields["UF_CRM_TASK"] = [f"{BINDING.get(target[0], 'C')}_{target[1]}"]
        key = f"{prefix}_t"

        def finish(answer: BatchAnswer) -> PushResult:
            if not answer.ok(key):
                return _failed_or_retry(answer, key, "the task")
            task = (answer.results[key] or {}).get("task") or {}
            return PushResult(outcome="done", links={task_key: ("task", str(task.get("id")))}, state=state)

        return _Job({key: Command("tasks.task.add", {"fields": fields})}, finish)

    def _update_task(
        self, op: UpdateTask, context: PushContext, current: Any, prefix: str
    ) -> _Job | PushResult:
        task_id = context.crm_id(op.task)
        task = (current or {}).get("task") if isinstance(current, dict) else None
        if not task_id or not isinstance(task, dict):
            return PushResult(
                outcome="retry",
                detail=f"the task could not be read: {(current or {}).get('__error__', 'no answer')}",
            )
        seen = _id(task.get("responsibleId"))
        new_owner = self._user(context, op.responsible)
        key_state: dict[str, Any] = {"responsible": seen, "done": str(task.get("status")) == "5"}
        commands: dict[str, Command] = {}
        if new_owner and new_owner != seen:
            if op.expected_responsible is not None and seen != op.expected_responsible:
                return PushResult(
                    outcome="skipped",
                    detail=f"reassigned in Bitrix24 meanwhile (to user {seen}): the person's choice stands",
                    state={op.task.key(): key_state},
                )
            commands[f"{prefix}_u"] = Command(
                "tasks.task.update", {"taskId": task_id, "fields": {"RESPONSIBLE_ID": new_owner}}
            )
            key_state["responsible"] = new_owner
        if op.done and not key_state["done"]:
            commands[f"{prefix}_d"] = Command("tasks.task.complete", {"taskId": task_id})
            key_state["done"] = True
        if not commands:
            return PushResult(outcome="done", state={op.task.key(): key_state})

        def finish(answer: BatchAnswer) -> PushResult:
            for key in commands:
                if not answer.ok(key):
                    return _failed_or_retry(answer, key, "the task update")
            return PushResult(outcome="done", state={op.task.key(): key_state})

        return _Job(commands, finish)

    def _add_note(
        self, op: AddNote, context: PushContext, found: dict[str, Any], prefix: str
    ) -> _Job | PushResult:
        target = self._target(context, op.target)
        if target is None:
            return PushResult(outcome="retry", detail="the note's card is not in Bitrix24 yet")
        if _has_marker(found.get("note"), op.hub_ref):
            return PushResult(outcome="done")
        key = f"{prefix}_n"

        def finish(answer: BatchAnswer) -> PushResult:
            return PushResult(outcome="done") if answer.ok(key) else _failed_or_retry(answer, key, "the note")

        return _Job({key: _comment(target, op.text, op.hub_ref)}, finish)

    def _ensure_fields(self, entity: str, codes: Sequence[str]) -> None:
        """The hub's user fields on this entity type, created on first use (found by code, never
        by a hard-coded id)."""
        known = self.portal.user_fields.get(entity)
        if known is None:
            rows = (
                self.client.call(
                    f"crm.{entity}.userfield.list", {"filter": {}, "order": {"SORT": "ASC"}}
                ).result
                or []
            )
            known = {str(r.get("FIELD_NAME")) for r in rows}
            self.portal.user_fields[entity] = known
        missing = [code for code in codes if user_field(code) not in known]
        if not missing:
            return
        answer = self.client.batch(
            {
                code: Command(
                    f"crm.{entity}.userfield.add",
                    {
                        "fields": {
                            "FIELD_NAME": code.upper(),
                            "USER_TYPE_ID": FIELD_TYPES.get(code, "string"),
                            "XML_ID": code,
                            "LABEL": FIELD_LABELS.get(code, code),
                            "EDIT_FORM_LABEL": FIELD_LABELS.get(code, code),
                            "LIST_COLUMN_LABEL": FIELD_LABELS.get(code, code),
                        }
                    },
                )
                for code in missing
            },
            write=True,
        )
        if answer.errors:
            # Made by a concurrent run, or refused: read the list again and see.
            rows = self.client.call(f"crm.{entity}.userfield.list", {"filter": {}}).result or []
            known = {str(r.get("FIELD_NAME")) for r in rows}
            self.portal.user_fields[entity] = known
            still = [code for code in missing if user_field(code) not in known]
            if still:
                raise TransientSourceError(
                    f"Bitrix24: cannot create the user fields {', '.join(user_field(c) for c in still)} on {entity}: "
                    + "; ".join(_error_text(answer, k) for k in answer.errors)
                    + " (the webhook's user needs the right to configure the CRM)"
                )
        else:
            known.update(user_field(code) for code in missing)

    def _set_fields(self, op: SetFields, context: PushContext, prefix: str) -> _Job | PushResult:
        target = self._target(context, op.target)
        if target is None:
            return PushResult(outcome="retry", detail="the card is not in Bitrix24 yet")
        self._ensure_fields(target[0], list(op.fields))
        values = {user_field(code): ("" if value is None else value) for code, value in op.fields.items()}
        key = f"{prefix}_s"
        digest = fields_digest(op.fields)

        def finish(answer: BatchAnswer) -> PushResult:
            if not answer.ok(key):
                return _failed_or_retry(answer, key, "the hub's fields")
            return PushResult(outcome="done", state={op.target.key(): {"fields_digest": digest}})

        return _Job(
            {
                key: Command(
                    f"crm.{target[0]}.update",
                    {"id": target[1], "fields": values, "params": {"REGISTER_SONET_EVENT": "N"}},
                )
            },
            finish,
        )

    def _set_responsible(
        self, op: SetResponsible, context: PushContext, current: Any, prefix: str
    ) -> _Job | PushResult:
        target = self._target(context, op.target)
        new_owner = self._user(context, op.responsible)
        if target is None or new_owner is None:
            return PushResult(outcome="retry", detail="the card or the rep is not in Bitrix24 yet")
        if op.expected_responsible is not None:
            if not isinstance(current, dict) or "__error__" in current:
                return PushResult(
                    outcome="retry", detail=f"the card could not be read: {(current or {}).get('__error__')}"
                )
            seen = _id(current.get("ASSIGNED_BY_ID"))
            if seen == new_owner:
                return PushResult(outcome="done", state={op.target.key(): {"responsible": new_owner}})
            if seen != op.expected_responsible:
                return PushResult(
                    outcome="skipped",
                    detail=f"reassigned in Bitrix24 meanwhile (to user {seen}): the person's choice stands",
                    state={op.target.key(): {"responsible": seen}},
                )
        key = f"{prefix}_a"

        def finish(answer: BatchAnswer) -> PushResult:
            if not answer.ok(key):
                return _failed_or_retry(answer, key, "the reassignment")
            return PushResult(outcome="done", state={op.target.key(): {"responsible": new_owner}})

        return _Job(
            {
                key: Command(
                    f"crm.{target[0]}.update", {"id": target[1], "fields": {"ASSIGNED_BY_ID": new_owner}}
                )
            },
            finish,
        )

    def _flag_duplicate(
        self, op: FlagDuplicate, context: PushContext, found: dict[str, Any], prefix: str
    ) -> _Job | PushResult:
        survivor = self._target(context, op.survivor)
        duplicate = self._target(context, op.duplicate)
        if survivor is None or duplicate is None:
            return PushResult(outcome="retry", detail="a card is not in Bitrix24 yet")
        owner = self._user(context, op.responsible) or self._default_user()
        commands: dict[str, Command] = {}
        tasks = (found.get("task") or {}).get("tasks") if isinstance(found.get("task"), dict) else None
        if not _task_with_ref(tasks, op.hub_ref):
            commands[f"{prefix}_t"] = Command(
                "tasks.task.add",
                {
                    "fields": {
                        "TITLE": _duplicate_title(),
                        "DESCRIPTION": f"{op.text}\n\n{marker(op.hub_ref)}",
                        "RESPONSIBLE_ID": owner,
                        "XML_ID": op.hub_ref,
                        "TAGS": ["hub", "review_duplicate"],
                        "UF_CRM_TASK": [f"C_{survivor[1]}", f"C_{duplicate[1]}"],
                    }
                },
            )
        for name, target in (("duplicate", duplicate), ("survivor", survivor)):
            if not _has_marker(found.get(name), op.hub_ref):
                commands[f"{prefix}_{name[0]}"] = _comment(target, f"{op.text} ({op.tag})", op.hub_ref)
        if not commands:
            return PushResult(outcome="done")

        def finish(answer: BatchAnswer) -> PushResult:
            for key in commands:
                if not answer.ok(key):
                    return _failed_or_retry(answer, key, "the duplicate flag")
            return PushResult(outcome="done")

        return _Job(commands, finish)

    # ------------------------------------------------------------ the rest of the interface

    def usage(self) -> BackendUsage:
        return BackendUsage(
            requests=self.client.requests_made,
            throttled=self.client.throttled,
            waited_s=self.client.waited_s,
            retries=self.client.retries,
        )

    def entity_url(self, entity: CrmEntity, crm_id: str) -> str | None:
        base = self.portal_url or _portal_of(self.client.auth.webhook_url)
        if not base:
            return None
        if entity in ("lead", "deal", "contact", "company"):
            return f"{base}/crm/{entity}/details/{crm_id}/"
        if entity == "task":
            return f"{base}/company/personal/user/{self._default_user()}/tasks/task/view/{crm_id}/"
        return None


def _portal_of(webhook_url: str) -> str:
    parts = urlsplit(webhook_url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


def _call_key(hub_ref: str) -> str:
    return hub_ref


def _task_title(text: str) -> str:
    return text.strip().splitlines()[0][:250] if text.strip() else "Hub task"


def _duplicate_title() -> str:
    return "Possible duplicate cards: check and merge"


def _first_id(result: Any) -> str | None:
    if isinstance(result, list) and result and isinstance(result[0], dict) and result[0].get("ID"):
        return str(result[0]["ID"])
    return None


def _task_with_ref(tasks: Any, hub_ref: str) -> str | None:
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        if task.get("xmlId") == hub_ref or marker(hub_ref) in str(task.get("description") or ""):
            return str(task.get("id"))
    return None


def _comment_lookup(entity: str, crm_id: str) -> Command:
    return Command(
        "crm.timeline.comment.list",
        {
            "filter": {"ENTITY_ID": crm_id, "ENTITY_TYPE": entity},
            "select": ["ID", "COMMENT"],
            "order": {"ID": "DESC"},
        },
    )


def _has_marker(comments: Any, hub_ref: str) -> bool:
    return any(
        marker(hub_ref) in str((c or {}).get("COMMENT") or "") for c in comments or [] if isinstance(c, dict)
    )


def _comment(target: tuple[str, str], text: str, hub_ref: str) -> Command:
    return Command(
        "crm.timeline.comment.add",
        {
            "fields": {
                "ENTITY_ID": target[1],
                "ENTITY_TYPE": target[0],
                "COMMENT": f"{text}\n{marker(hub_ref)}",
            }
        },
    )


# ---------------------------------------------------------------- building it from settings


def client_from_settings(settings: HubSettings, database_url: str) -> Bitrix24Client:
    cfg = settings.crm.bitrix24
    stored = load_tokens(database_url, NAME) if not cfg.webhook_url else {}
    auth = Bitrix24Auth(
        webhook_url=cfg.webhook_url,
        portal_url=cfg.portal_url,
        client_id=cfg.client_id,
        client_secret=cfg.client_secret,
        oauth_url=cfg.oauth_url,
        tokens=OAuthTokens.from_dict(stored) if stored.get("refresh_token") else None,
        save_tokens=lambda tokens: save_tokens(database_url, NAME, tokens.as_dict()),
        webhook_setting="HUB_CRM__BITRIX24__WEBHOOK_URL",
        oauth_setting="HUB_CRM__BITRIX24__PORTAL_URL, HUB_CRM__BITRIX24__CLIENT_ID and HUB_CRM__BITRIX24__CLIENT_SECRET",
    )
    return Bitrix24Client(
        auth,
        requests_per_second=cfg.requests_per_second,
        burst=cfg.burst,
        operating_limit_s=cfg.operating_limit_s,
        timeout_s=cfg.timeout_s,
        verify_tls=cfg.verify_tls,
    )


def build(settings: HubSettings, database_url: str) -> Bitrix24Backend:
    cfg = settings.crm.bitrix24
    return Bitrix24Backend(
        client_from_settings(settings, database_url),
        portal_url=cfg.portal_url,
        lead_pipeline=settings.crm.lead_pipeline,
        lead_stage=settings.crm.lead_stage,
    )


def connect(settings: HubSettings, database_url: str, code: str) -> OAuthTokens:
    """`hub crm connect bitrix24 CODE`: exchange the authorization code the portal gave the local
    application for the first token pair and keep it in the store."""
    return client_from_settings(settings, database_url).exchange_code(code)
