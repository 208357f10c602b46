"""The CRM seam itself, on both dialects: the mirror writer (links, newer-wins, people's
reassignments kept), the planner (idempotent, derives every operation kind), and the pusher's
exactly-once protocol across a lost answer, against an in-memory CRM that behaves like one
(creates entities, finds them by the reference stored in them, can lose an answer)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.crm.backend import BackendUsage, PendingOp, PushContext
from hub.crm.links import hub_ref, instance_id, parse_hub_ref, save_link
from hub.crm.mirror import apply_pull
from hub.crm.plan import plan_push
from hub.crm.push import push_pending
from hub.settings import CrmSettings
from hub.store.db import session_scope
from hub.store.models import (
    Activity,
    Contact,
    ContactReceivable,
    CrmLink,
    CrmOutbox,
    Deal,
    DealStageChange,
    Lead,
    PipelineStage,
    Rep,
    Task,
)
from schemas.crm import (
    CreateContact,
    CreateLead,
    CreateTask,
    CrmContact,
    CrmDeal,
    CrmStage,
    CrmStageChange,
    CrmTask,
    CrmUser,
    LogCall,
    PullBatch,
    PushResult,
    Ref,
)

BACKEND = "memorycrm"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _world(session: Any) -> dict[str, int]:
    anna = Rep(name="Анна Петрова", email="anna@sales.example.ru", created_at=T0)
    boris = Rep(name="Борис Орлов", email="boris@sales.example.ru", created_at=T0)
    session.add_all([anna, boris])
    session.flush()
    return {"anna": anna.id, "boris": boris.id}


def _pull_world() -> PullBatch:
    return PullBatch(
        users=[
            CrmUser(crm_id="u1", name="Анна Петрова", email="Anna@Sales.example.ru"),
            CrmUser(crm_id="u2", name="Борис Орлов", email="boris@sales.example.ru"),
        ],
        stages=[
            CrmStage(pipeline_id="p1", pipeline="Продажи", stage_id="s1", stage="Новая", position=0),
            CrmStage(pipeline_id="p1", pipeline="Продажи", stage_id="s2", stage="КП", position=1),
            CrmStage(
                pipeline_id="p1", pipeline="Продажи", stage_id="142", stage="Успешно", position=9, kind="won"
            ),
        ],
        contacts=[
            CrmContact(
                crm_id="c1",
                name="Иван Сидоров",
                phones=("+7 (916) 123-45-67", "8 495 111-22-33"),
                emails=("ivan@client.ru",),
                responsible_id="u1",
                updated_at=T0,
            )
        ],
        deals=[
            CrmDeal(
                entity="lead",
                crm_id="d1",
                title="Поставка",
                pipeline_id="p1",
                stage_id="s1",
                amount=Decimal("120000"),
                contact_id="c1",
                responsible_id="u1",
                created_at=T0,
                updated_at=T0,
            )
        ],
        tasks=[
            CrmTask(
                crm_id="t1",
                text="Перезвонить",
                responsible_id="u1",
                entity="contact",
                entity_id="c1",
                updated_at=T0,
            )
        ],
        stage_changes=[CrmStageChange(event_id="e1", deal_id="d1", pipeline_id="p1", stage_id="s1", at=T0)],
        cursor={"updated_at": T0.isoformat()},
    )


def test_a_pull_fills_the_mirror_links_reps_by_email_and_repeats_as_unchanged(store_url: str) -> None:
    with session_scope(store_url) as session:
        reps = _world(session)
        instance = instance_id(session)
    with session_scope(store_url) as session:
        stats = apply_pull(session, BACKEND, instance, "RU", _pull_world())
    assert stats.created == {"contacts": 1, "deals": 1, "tasks": 1}
    with session_scope(store_url) as session:
        assert session.scalar(select(func.count()).select_from(Rep)) == 2  # matched, not created
        contact = session.scalars(select(Contact)).one()
        assert (contact.phone_e164, contact.owner_rep_id, contact.owner_manual) == (
            "+79161234567",
            reps["anna"],
            True,
        )
        # Every phone of the card finds it.
        from hub.identity.resolve import find_contact

        assert find_contact(session, "phone", "+74951112233").id == contact.id
        deal = session.scalars(select(Deal)).one()
        assert (deal.pipeline, deal.stage, deal.rep_id, deal.contact_id) == (
            "Продажи",
            "Новая",
            reps["anna"],
            contact.id,
        )
        assert session.scalar(select(func.count()).select_from(PipelineStage)) == 3
        assert session.scalars(select(DealStageChange)).one().stage == "Новая"
        task = session.scalars(select(Task)).one()
        assert (task.contact_id, task.rep_id, task.done) == (contact.id, reps["anna"], False)
    with session_scope(store_url) as session:
        again = apply_pull(session, BACKEND, instance, "RU", _pull_world())
    assert again.created == {} and again.updated.get("contacts", 0) == 0
    assert again.unchanged == {"users": 2, "contacts": 1, "deals": 1, "tasks": 1}


def test_a_reassignment_and_a_stage_move_made_in_the_crm_are_taken_and_marked(store_url: str) -> None:
    with session_scope(store_url) as session:
        reps = _world(session)
        instance = instance_id(session)
    with session_scope(store_url) as session:
        apply_pull(session, BACKEND, instance, "RU", _pull_world())
    later = T0 + timedelta(hours=2)
    world = _pull_world()
    moved = PullBatch(
        users=world.users,
        contacts=[world.contacts[0].model_copy(update={"responsible_id": "u2", "updated_at": later})],
        deals=[
            world.deals[0].model_copy(update={"stage_id": "s2", "responsible_id": "u2", "updated_at": later})
        ],
        tasks=[world.tasks[0].model_copy(update={"done": True, "updated_at": later})],
    )
    with session_scope(store_url) as session:
        stats = apply_pull(session, BACKEND, instance, "RU", moved)
    assert stats.reassigned_in_crm == 2 and stats.stage_moves == 1
    with session_scope(store_url) as session:
        contact = session.scalars(select(Contact)).one()
        assert (contact.owner_rep_id, contact.owner_manual) == (reps["boris"], True)
        deal = session.scalars(select(Deal)).one()
        assert (deal.stage, deal.rep_id, deal.assignment_reason) == (
            "КП",
            reps["boris"],
            f"reassigned in {BACKEND}",
        )
        assert session.scalars(select(Task)).one().done is True


def test_hub_references_name_this_store_only() -> None:
    ref = Ref(table="crm_leads", id=42)
    assert parse_hub_ref(hub_ref("ab12cd34", ref), "ab12cd34") == ref
    assert parse_hub_ref(hub_ref("ab12cd34", ref), "00000000") is None
    assert parse_hub_ref("hub:ab12cd34:crm_secrets:1", "ab12cd34") is None
    assert parse_hub_ref(None, "ab12cd34") is None


def _hub_work(session: Any, reps: dict[str, int]) -> dict[str, int]:
    """What the hub decided after the CRM was connected: a routed lead with a new contact, a
    call of that contact, a call-back task, and receivables of a contact the CRM knows."""
    now = datetime.now(UTC)
    contact = Contact(
        source_system="lead",
        source_ref="site:1",
        name="Мария Ким",
        phone_e164="+79160000001",
        owner_rep_id=reps["boris"],
        created_at=now,
    )
    session.add(contact)
    session.flush()
    lead = Lead(
        source_system="site_webhook",
        source_ref="w1",
        name="Мария Ким",
        phone_e164="+79160000001",
        channel="yandex / cpc",
        utm_source="yandex",
        submitted_at=now,
        status="open",
        contact_id=contact.id,
        assigned_rep_id=reps["boris"],
        routing_reason="least loaded",
        created_at=now,
    )
    call = Activity(
        source_system="twilio",
        source_ref="CA1",
        kind="call",
        occurred_at=now,
        contact_id=contact.id,
        rep_id=reps["boris"],
        direction="inbound",
        from_addr="+79160000001",
        duration_s=61,
        talk_s=55,
        disposition="answered",
        recording_url="https://rec.example/CA1.mp3",
        created_at=now,
    )
    task = Task(
        source_system="hub",
        source_ref="call_back:1",
        kind="call_back",
        title="Перезвонить Марии",
        rep_id=reps["boris"],
        contact_id=contact.id,
        due_at=now,
        created_at=now,
    )
    done = Task(
        source_system="hub",
        source_ref="old:1",
        kind="call_back",
        title="Сделано",
        rep_id=reps["boris"],
        contact_id=contact.id,
        done=True,
        created_at=now,
    )
    session.add_all([lead, call, task, done])
    session.flush()
    return {"contact": contact.id, "lead": lead.id, "call": call.id, "task": task.id}


def _plan(store_url: str) -> dict[str, int]:
    with session_scope(store_url) as session:
        instance = instance_id(session)
        return plan_push(session, BACKEND, instance, T0, 0, ["hub"]).planned


def test_the_planner_plans_each_thing_once_and_nothing_twice(store_url: str) -> None:
    with session_scope(store_url) as session:
        reps = _world(session)
        work = _hub_work(session, reps)
        session.add(
            ContactReceivable(
                contact_id=work["contact"],
                as_of=date(2026, 11, 3),
                invoices=1,
                invoiced=Decimal("1000"),
                outstanding=Decimal("700"),
                current=Decimal("0"),
                days_1_30=Decimal("700"),
                days_31_60=Decimal("0"),
                days_61_90=Decimal("0"),
                days_90_plus=Decimal("0"),
                max_days_overdue=12,
                aging_bucket="1-30",
            )
        )
    first = _plan(store_url)
    # The contact rides with the lead (one creator), the call and task wait for it; the done task stays.
    assert first == {"create_lead": 1, "log_call": 1, "create_task": 1, "set_fields": 1}
    assert _plan(store_url) == {}
    with session_scope(store_url) as session:
        lead = session.scalars(select(CrmOutbox).where(CrmOutbox.op == "create_lead")).one()
        assert lead.payload["contact"]["ref"] == {"table": "crm_contacts", "id": work["contact"]}
        assert lead.payload["existing_contact"] is None
        assert lead.payload["utm"] == {"utm_source": "yandex"}


class MemoryCrm:
    """A CRM in memory: entities by id, each carrying the hub reference it was created with;
    `lose_answers` applies a batch and then dies before answering (the process is killed)."""

    name = BACKEND

    def __init__(self) -> None:
        self.entities: dict[str, dict[str, Any]] = {}
        self.lose_answers = 0
        self.calls = 0

    def _create(self, kind: str, hub_ref_value: str, **fields: Any) -> str:
        crm_id = f"{kind}{len(self.entities) + 1}"
        self.entities[crm_id] = {"kind": kind, "hub_ref": hub_ref_value, **fields}
        return crm_id

    def _find(self, hub_ref_value: str, kind: str) -> str | None:
        for crm_id, entity in self.entities.items():
            if entity["hub_ref"] == hub_ref_value and entity["kind"] == kind:
                return crm_id
        return None

    def _create_once(self, item: PendingOp, kind: str, **fields: Any) -> str:
        if item.recovering:
            found = self._find(item.op.hub_ref, kind)
            if found:
                return found
        return self._create(kind, item.op.hub_ref, **fields)

    def pull(self, cursor: dict[str, Any]) -> Any:
        return iter(())

    def push(self, ops: Sequence[PendingOp], context: PushContext) -> list[PushResult]:
        self.calls += 1
        results = []
        for item in ops:
            op = item.op
            if isinstance(op, CreateLead):
                contact_id = context.crm_id(op.existing_contact)
                links = {}
                if contact_id is None:
                    contact_id = self._create_once(item, "contact", name=op.contact.name)
                    links[op.contact.ref.key()] = ("contact", contact_id)
                lead_id = self._create_once(item, "lead", title=op.title, contact=contact_id)
                links[op.lead.key()] = ("lead", lead_id)
                results.append(PushResult(outcome="done", links=links))
            elif isinstance(op, CreateContact):
                crm_id = self._create_once(item, "contact", name=op.contact.name)
                results.append(PushResult(outcome="done", links={op.contact.ref.key(): ("contact", crm_id)}))
            elif isinstance(op, LogCall):
                crm_id = self._create_once(item, "call", on=context.crm_id(op.target), uniq=op.uniq)
                results.append(PushResult(outcome="done", links={op.call.key(): ("call", crm_id)}))
            elif isinstance(op, CreateTask):
                crm_id = self._create_once(item, "task", on=context.crm_id(op.target), text=op.text)
                results.append(
                    PushResult(
                        outcome="done",
                        links={op.task.key(): ("task", crm_id)},
                        state={op.task.key(): {"done": False}},
                    )
                )
            else:
                results.append(PushResult(outcome="done"))
        if self.lose_answers:
            self.lose_answers -= 1
            raise SystemExit("killed after the CRM applied the batch, before the hub committed")
        return results

    def usage(self) -> BackendUsage:
        return BackendUsage(requests=self.calls)

    def entity_url(self, entity: Any, crm_id: str) -> str | None:
        return None


def test_a_lost_answer_is_recovered_by_reference_and_nothing_is_created_twice(store_url: str) -> None:
    with session_scope(store_url) as session:
        reps = _world(session)
        _hub_work(session, reps)
    _plan(store_url)
    crm = MemoryCrm()
    crm.lose_answers = 1
    settings = CrmSettings(push_backoff_s=0)
    with pytest.raises(SystemExit):
        push_pending(store_url, crm, settings)
    with session_scope(store_url) as session:
        assert session.scalar(select(func.count()).select_from(CrmLink)) == 0  # nothing committed
        sending = session.scalars(select(CrmOutbox).where(CrmOutbox.status == "sending")).all()
        assert [row.op for row in sending] == ["create_lead"] and sending[0].attempts == 1
    stats = push_pending(store_url, crm, settings)
    assert stats.recovered == 1 and stats.failed == 0
    kinds = sorted(entity["kind"] for entity in crm.entities.values())
    assert kinds == ["call", "contact", "lead", "task"]  # one each: the lost create was found, not redone
    with session_scope(store_url) as session:
        assert {row.status for row in session.scalars(select(CrmOutbox))} == {"done"}
        assert session.scalar(select(func.count()).select_from(CrmLink)) == 4
    assert _plan(store_url) == {}
    assert push_pending(store_url, crm, settings).done == 0


def test_an_operation_waits_for_the_entity_it_hangs_on_without_using_attempts(store_url: str) -> None:
    with session_scope(store_url) as session:
        reps = _world(session)
        work = _hub_work(session, reps)
        # The lead is not routed yet: nothing brings its contact to the CRM but a CreateContact.
        session.get(Lead, work["lead"]).assigned_rep_id = None
    planned = _plan(store_url)
    assert planned == {"create_contact": 1, "log_call": 1, "create_task": 1}
    crm = MemoryCrm()
    stats = push_pending(store_url, crm, CrmSettings(push_backoff_s=0))
    assert stats.done == 3 and stats.deferred == 0
    with session_scope(store_url) as session:
        assert max(row.attempts for row in session.scalars(select(CrmOutbox))) == 1
        contact_link = session.scalars(select(CrmLink).where(CrmLink.hub_table == "crm_contacts")).one()
    call = next(e for e in crm.entities.values() if e["kind"] == "call")
    assert call["on"] == contact_link.crm_id


def test_the_hub_moving_a_task_is_planned_against_the_crms_last_known_responsible(store_url: str) -> None:
    with session_scope(store_url) as session:
        reps = _world(session)
        instance = instance_id(session)
    with session_scope(store_url) as session:
        apply_pull(session, BACKEND, instance, "RU", _pull_world())
    with session_scope(store_url) as session:
        task = session.scalars(select(Task)).one()
        task.rep_id = reps["boris"]  # the hub handed the leaver's task to Boris
    planned = _plan(store_url)
    assert planned == {"update_task": 1}
    with session_scope(store_url) as session:
        row = session.scalars(select(CrmOutbox)).one()
        assert row.payload["expected_responsible"] == "u1"
        assert row.payload["responsible"] == {"table": "crm_reps", "id": reps["boris"]}
        # Once the CRM shows Boris, nothing more is planned.
        save_link(
            session,
            BACKEND,
            Ref(table="crm_tasks", id=task.id),
            "task",
            "t1",
            {"responsible": "u2", "done": False},
        )
    assert _plan(store_url) == {}
