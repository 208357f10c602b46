"""Resolution of new leads against the contacts in the store: incremental (index lookups),
guards against shared keys, merges with survivorship and a log, unmerge, touches window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from sqlalchemy import func, select

from hub.cli import main
from hub.identity.merge import unmerge
from hub.identity.resolve import find_contact, index_contact, resolve_new_leads
from hub.store.db import session_scope
from hub.store.models import Activity, Contact, ContactIdentifier, Deal, Lead, MergeLog

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)


def _contact(session, ref: str, **fields) -> Contact:  # type: ignore[no-untyped-def]
    contact = Contact(source_system="crm", source_ref=ref, **fields)
    session.add(contact)
    session.flush()
    index_contact(session, contact)
    return contact


def _lead(session, ref: str, minutes: int, source: str = "site_api", **fields) -> Lead:  # type: ignore[no-untyped-def]
    lead = Lead(source_system=source, source_ref=ref, submitted_at=T0 + timedelta(minutes=minutes), **fields)
    session.add(lead)
    session.flush()
    return lead


def test_incremental_match_by_phone_email_and_folded_name(store_url: str) -> None:
    with session_scope(store_url) as session:
        ivan = _contact(
            session, "C-1", name="Иванов Иван", phone_e164="+79991234567", company="ООО «Ромашка»"
        )
        maria = _contact(session, "C-2", name="Петрова Мария", email="maria@corp.ru")
        _lead(session, "l1", 0, name="Ivan Ivanov", phone_e164="+79991234567")
        _lead(session, "l2", 60, name="Мария", email="maria@corp.ru")
        # No shared key, but the same person by name and company (transliterated, legal form).
        _lead(
            session,
            "l3",
            120,
            source="phone",
            name="IVANOV Ivan",
            phone_e164="+79160000001",
            company="Romashka LLC",
        )
        _lead(session, "l4", 180, name="Сидоров Пётр", phone_e164="+79160000002")
        stats = resolve_new_leads(session, WINDOW)
        ivan_id, maria_id = ivan.id, maria.id
    assert (stats.leads, stats.matched, stats.created) == (4, 3, 1)
    with session_scope(store_url) as session:
        leads = {lead.source_ref: lead for lead in session.scalars(select(Lead))}
        assert leads["l1"].contact_id == ivan_id and "same phone" in leads["l1"].resolution_reason
        assert leads["l2"].contact_id == maria_id and "same email" in leads["l2"].resolution_reason
        assert leads["l3"].contact_id == ivan_id and "same company" in leads["l3"].resolution_reason
        assert (
            leads["l4"].contact_id not in (ivan_id, maria_id)
            and leads["l4"].resolution_reason == "new contact"
        )
        # The call the same morning is another touch of Ivan's form lead, not a new lead.
        assert leads["l3"].status == "duplicate" and leads["l3"].duplicate_of_id == leads["l1"].id
        assert "another touch (phone)" in leads["l3"].resolution_reason
        assert [t["source_ref"] for t in leads["l1"].touches] == ["l1", "l3"]
        # The new phone is indexed under Ivan: the next batch finds him by it without a rescan.
        assert find_contact(session, "phone", "+79160000001").id == ivan_id  # type: ignore[union-attr]


def test_repeat_submission_and_window(sqlite_store: str) -> None:
    with session_scope(sqlite_store) as session:
        _lead(session, "a", 0, name="Анна", email="anna@x.ru", form="callback")
        _lead(session, "b", 30, name="Анна", email="anna@x.ru", form="callback")
        _lead(session, "c", 60 * 30, name="Анна", email="anna@x.ru", form="callback")  # next day
        stats = resolve_new_leads(session, WINDOW)
    assert stats.duplicates == 1
    with session_scope(sqlite_store) as session:
        leads = {lead.source_ref: lead for lead in session.scalars(select(Lead))}
        assert leads["b"].status == "duplicate" and "repeat submission" in leads["b"].resolution_reason
        assert leads["c"].status == "open" and leads["c"].duplicate_of_id is None


def test_shared_switchboard_in_the_store_is_not_trusted(sqlite_store: str) -> None:
    with session_scope(sqlite_store) as session:
        _contact(session, "C-1", name="Петрова Мария", phone_e164="+74951000000")
        _contact(session, "C-2", name="Сидоров Пётр", phone_e164="+74951000000")
        _lead(session, "nameless", 0, phone_e164="+74951000000")
        _lead(session, "other", 10, name="Козлов Андрей", phone_e164="+74951000000")
        _lead(session, "maria", 20, name="Мария Петрова", phone_e164="+74951000000")
        stats = resolve_new_leads(session, WINDOW)
    with session_scope(sqlite_store) as session:
        leads = {lead.source_ref: lead for lead in session.scalars(select(Lead))}
        contacts = {c.source_ref: c.id for c in session.scalars(select(Contact))}
    assert leads["nameless"].contact_id not in (contacts["C-1"], contacts["C-2"])
    assert "shared phone" in leads["nameless"].resolution_reason
    assert leads["other"].contact_id not in (contacts["C-1"], contacts["C-2"])
    assert leads["maria"].contact_id == contacts["C-1"]
    assert stats.guarded >= 2


def test_role_mailbox_does_not_merge_colleagues(sqlite_store: str) -> None:
    with session_scope(sqlite_store) as session:
        _contact(session, "C-1", name="Петрова Мария", email="info@romashka.ru")
        _lead(session, "l", 0, name="Сидоров Пётр", email="INFO@romashka.ru")
        resolve_new_leads(session, WINDOW)
        lead = session.scalars(select(Lead)).one()
        assert lead.resolution_reason.startswith("new contact")


def test_a_lead_proving_two_contacts_one_person_merges_them_and_unmerge_restores(store_url: str) -> None:
    with session_scope(store_url) as session:
        old = _contact(
            session,
            "C-1",
            name="Иванов Иван",
            phone_e164="+79991234567",
            created_at=T0 - timedelta(days=300),
            updated_at=T0 - timedelta(days=300),
        )
        young = _contact(
            session,
            "C-2",
            name="Иванов Иван Петрович",
            email="ivan@corp.ru",
            phone_e164="+79165550000",
            updated_at=T0 - timedelta(days=10),
        )
        session.add(Deal(source_ref="D-1", stage="new", contact_id=young.id, opened_at=T0))
        session.add(
            Activity(
                source_system="pbx", source_ref="call-1", kind="call", occurred_at=T0, contact_id=young.id
            )
        )
        _lead(session, "l1", 0, name="Ivan Ivanov", phone_e164="+79991234567", email="ivan@corp.ru")
        stats = resolve_new_leads(session, WINDOW)
        old_id, young_id = old.id, young.id
    assert stats.merged_contacts == 1
    with session_scope(store_url) as session:
        survivor = session.get(Contact, old_id)
        merged = session.get(Contact, young_id)
        assert merged.merged_into_id == old_id  # the younger goes into the older
        # Survivorship: the most complete name, the newest valid phone, every email kept.
        assert survivor.name == "Иванов Иван Петрович"
        assert survivor.phone_e164 == "+79165550000"
        assert survivor.email == "ivan@corp.ru"
        assert session.scalar(select(Deal.contact_id)) == old_id
        assert session.scalar(select(Activity.contact_id)) == old_id
        log = session.scalars(select(MergeLog)).one()
        assert "lead" in log.reason and log.evidence["lead_id"]
        assert find_contact(session, "email", "ivan@corp.ru").id == old_id  # type: ignore[union-attr]
    result = CliRunner().invoke(
        main, ["contacts", "unmerge", str(young_id)], env={"HUB_DATABASE_URL": store_url}
    )
    assert result.exit_code == 0, result.output
    with session_scope(store_url) as session:
        survivor = session.get(Contact, old_id)
        merged = session.get(Contact, young_id)
        assert merged.merged_into_id is None
        assert (survivor.name, survivor.phone_e164, survivor.email) == ("Иванов Иван", "+79991234567", None)
        assert session.scalar(select(Deal.contact_id)) == young_id
        assert session.scalar(select(Activity.contact_id)) == young_id
        assert session.scalars(select(MergeLog)).one().undone_at is not None
        # The keys copied to the survivor are gone; the merged contact's own remain.
        holders = session.scalars(
            select(ContactIdentifier.contact_id).where(ContactIdentifier.value == "ivan@corp.ru")
        ).all()
        assert young_id in holders
    again = CliRunner().invoke(
        main, ["contacts", "unmerge", str(young_id)], env={"HUB_DATABASE_URL": store_url}
    )
    assert again.exit_code == 1 and "no merge to undo" in again.output


def test_unmerge_of_a_contact_never_merged(sqlite_store: str) -> None:
    with session_scope(sqlite_store) as session:
        contact = _contact(session, "C-1", name="Анна")
        contact_id = contact.id
    with session_scope(sqlite_store) as session:
        try:
            unmerge(session, contact_id)
        except ValueError as exc:
            assert "no merge to undo" in str(exc)
        else:
            raise AssertionError("unmerge of a never-merged contact must fail")
        assert session.scalar(select(func.count()).select_from(MergeLog)) == 0
