"""The 1C OData connector against a local server replaying the standard interface."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from connectors.errors import CredentialError, PermanentSourceError, TransientSourceError
from connectors.onec_odata import (
    COUNTERPARTIES,
    COUNTERPARTY_TYPE,
    EMPTY_DATE,
    EMPTY_GUID,
    INVOICE_TYPE,
    INVOICES,
    PAYMENTS,
    REQUIRED_FIELDS,
    OneCOData,
    OneCSnapshot,
)
from hub.demo.accounting import guid, render_metadata
from hub.ingest.accounting import ODATA_SOURCE, sync_odata
from hub.store.db import session_scope
from hub.store.models import Counterparty, Invoice, Payment, QuarantineRecord
from tests.accounting.builders import INN_A, INN_B
from tests.accounting.fake_onec import FakeOneC, serve


def _base_data() -> dict[str, list[dict[str, Any]]]:
    parties = [
        {
            "Ref_Key": guid(1, 1),
            "Description": "Ромашка",
            "ИНН": INN_A,
            "КПП": "770101001",
            "IsFolder": False,
        },
        {"Ref_Key": guid(1, 2), "Description": "Лютик", "ИНН": INN_B, "КПП": "", "IsFolder": False},
        {"Ref_Key": guid(1, 3), "Description": "Группа", "ИНН": "", "КПП": "", "IsFolder": True},
    ]
    invoices = []
    for n in range(1, 8):
        invoices.append(
            {
                "Ref_Key": guid(2, n),
                "Number": f"0000-{n:06d}",
                "Date": f"2024-03-{n:02d}T10:30:00",
                "Posted": True,
                "DeletionMark": False,
                "Контрагент_Key": guid(1, 1 + n % 2),
                "СуммаДокумента": 1234.1 * n,
                "СрокОплаты": f"2024-03-{n + 10:02d}T00:00:00",
            }
        )
    invoices[2]["СрокОплаты"] = EMPTY_DATE  # due after the default terms
    invoices[3]["Контрагент_Key"] = EMPTY_GUID  # no counterparty
    invoices.append({**invoices[0], "Ref_Key": guid(2, 50), "Number": "draft", "Posted": False})
    invoices.append({**invoices[0], "Ref_Key": guid(2, 51), "Number": "deleted", "DeletionMark": True})
    invoices.append({**invoices[0], "Ref_Key": guid(2, 52), "Number": "old", "Date": "2023-12-31T23:59:59"})
    invoices.append(
        {
            **invoices[0],
            "Ref_Key": guid(2, 53),
            "Number": "bad",
            "Date": "2024-03-09T00:00:00",
            "СуммаДокумента": "много",
        }
    )
    payments = [
        {
            "Ref_Key": guid(3, 1),
            "Number": "1",
            "Date": "2024-03-05T12:00:00",
            "Posted": True,
            "DeletionMark": False,
            "ВидОперации": "ОплатаПокупателя",
            "Контрагент": guid(1, 2),
            "Контрагент_Type": COUNTERPARTY_TYPE,
            "СуммаДокумента": 1234.1,
            "НазначениеПлатежа": "Оплата по счету 1",
            "РасшифровкаПлатежа": [
                {
                    "LineNumber": "1",
                    "СчетНаОплату_Key": guid(2, 1),
                    "Сделка": EMPTY_GUID,
                    "Сделка_Type": "StandardODATA.Undefined",
                    "СуммаПлатежа": 1000.0,
                },
                {
                    "LineNumber": "2",
                    "СчетНаОплату_Key": EMPTY_GUID,
                    "Сделка": guid(2, 3),
                    "Сделка_Type": INVOICE_TYPE,
                    "СуммаПлатежа": 234.1,
                },
            ],
        },
        {
            "Ref_Key": guid(3, 2),
            "Number": "2",
            "Date": "2024-03-06T09:00:00",
            "Posted": True,
            "DeletionMark": False,
            "ВидОперации": "ПолучениеКредитаВБанке",
            "Контрагент": guid(9, 1),
            "Контрагент_Type": "StandardODATA.Catalog_Банки",
            "СуммаДокумента": 1e6,
            "НазначениеПлатежа": "Кредит",
            "РасшифровкаПлатежа": [],
        },
        {
            "Ref_Key": guid(3, 3),
            "Number": "3",
            "Date": "2024-03-07T09:00:00",
            "Posted": True,
            "DeletionMark": False,
            "ВидОперации": "ОплатаПокупателя",
            "Контрагент": guid(7, 1),
            "Контрагент_Type": "StandardODATA.Catalog_ФизическиеЛица",
            "СуммаДокумента": 500.0,
            "НазначениеПлатежа": "по сч. 5",
            "РасшифровкаПлатежа": [],
        },
    ]
    # A payment whose lines are not objects: quarantined, the others load.
    payments.append({**payments[2], "Ref_Key": guid(3, 4), "Number": "4", "РасшифровкаПлатежа": ["oops"]})
    return {COUNTERPARTIES: parties, INVOICES: invoices, PAYMENTS: payments}


def _client(fake: FakeOneC, **options: Any) -> OneCOData:
    return OneCOData(
        fake.url,
        fake.user,
        fake.password,
        page_size=3,
        timeout_s=5,
        max_retries=3,
        backoff_factor=0.01,
        **options,
    )


def test_sync_pages_with_top_and_skip_and_maps_1c_fields(store_url: str) -> None:
    with serve(FakeOneC(_base_data())) as fake:
        stats = sync_odata(store_url, _client(fake), "2024-01-01")
    entity_requests = [r for r in fake.requests if "$metadata" not in r]
    assert not any("$inlinecount" in r for r in fake.requests)
    assert all("$top=3" in r and "$skip=" in r and "$format=json" in r for r in entity_requests)
    assert any("$skip=6" in r for r in entity_requests if INVOICES in r)  # 8 invoices in range: 3 pages
    assert "Date ge datetime'2024-01-01T00:00:00' and Posted eq true and DeletionMark eq false" in "".join(
        entity_requests
    )
    assert stats.quarantined == 2
    with session_scope(store_url) as session:
        invoices = {i.number: i for i in session.scalars(select(Invoice))}
        payments = session.scalars(select(Payment)).all()
        parties = session.scalars(select(Counterparty)).all()
        bad = session.scalars(select(QuarantineRecord).where(QuarantineRecord.source == ODATA_SOURCE)).all()
    assert len(parties) == 2  # the catalog's group is not a client
    assert sorted(invoices) == [f"0000-{n:06d}" for n in range(1, 8)]
    first = invoices["0000-000001"]
    assert first.amount == Decimal("1234.10")  # Edm.Double held as Decimal, not 1234.0999...
    assert (first.issued_on, first.due_on, first.counterparty_tax_id) == (
        date(2024, 3, 1),
        date(2024, 3, 11),
        INN_B,
    )
    assert invoices["0000-000003"].amount == Decimal("3702.30")
    assert invoices["0000-000003"].due_on == date(2024, 3, 8)  # empty 1C date: 5 days' default terms
    assert invoices["0000-000004"].counterparty_tax_id is None  # the empty GUID is no reference
    bad = sorted(bad, key=lambda b: b.source_ref or "")
    assert [b.source_ref for b in bad] == [guid(2, 53), guid(3, 4)] and "много" in bad[0].error
    assert len(payments) == 2  # the bank loan is not a client's payment
    linked = next(p for p in payments if p.source_ref == guid(3, 1))
    assert linked.payer_tax_id == INN_B and linked.payer_name == "Лютик"
    assert linked.linked_invoice_refs == [
        {"ref": guid(2, 1), "amount": "1000.00"},
        {"ref": guid(2, 3), "amount": "234.10"},
    ]
    person = next(p for p in payments if p.source_ref == guid(3, 3))
    assert person.payer_tax_id is None  # a composite field of another type is not a counterparty


def test_cursor_rereads_from_the_newest_date_and_writes_nothing_twice(sqlite_store: str) -> None:
    data = _base_data()
    with serve(FakeOneC(data)) as fake:
        sync_odata(sqlite_store, _client(fake), "2024-01-01")
        fake.requests.clear()
        again = sync_odata(sqlite_store, _client(fake), "2024-01-01")
        fake.requests.clear()
        # A document posted later with a past date is found by the look-back.
        fake.data[INVOICES].append(
            {**data[INVOICES][0], "Ref_Key": guid(2, 60), "Number": "late", "Date": "2024-03-04T09:00:00"}
        )
        late = sync_odata(sqlite_store, _client(fake), "2024-01-01", lookback_days=7)
    assert again.written == 0 and again.unchanged > 0
    assert any("datetime'2024-02-29T10:30:00'" in r for r in fake.requests if INVOICES in r)
    assert late.written == 1
    with session_scope(sqlite_store) as session:
        assert len(session.scalars(select(Invoice.id)).all()) == 8
        assert len(session.scalars(select(Payment.id)).all()) == 2


def test_pages_repeating_rows_of_the_previous_one_lose_and_double_none(sqlite_store: str) -> None:
    data = _base_data()
    with serve(FakeOneC(data, repeat_rows=2)) as fake:
        stats = sync_odata(sqlite_store, _client(fake), "2024-01-01", kinds=("invoices",))
    skips = [r.split("$skip=")[1].split("&")[0] for r in fake.requests if INVOICES in r]
    assert skips == [str(3 * n) for n in range(len(skips))]  # by $top, whatever a page holds
    in_range = [
        r for r in data[INVOICES] if r["Date"] >= "2024-01-01" and r["Posted"] and not r["DeletionMark"]
    ]
    parties = [r for r in data[COUNTERPARTIES] if not r.get("IsFolder")]
    assert stats.rows_in == len(parties) + len(in_range)  # each read once, repeated rows dropped
    with session_scope(sqlite_store) as session:
        stored = session.scalars(
            select(Invoice.source_ref).where(Invoice.source_system == ODATA_SOURCE)
        ).all()
        bad = session.scalars(select(QuarantineRecord.source_ref)).all()
    assert sorted([*stored, *bad]) == sorted(r["Ref_Key"] for r in in_range)


def test_the_retries_and_requests_spent_are_reported_with_the_sync(sqlite_store: str) -> None:
    with serve(FakeOneC(_base_data(), faults=["503", "429"])) as fake:
        client = _client(fake)
        stats = sync_odata(sqlite_store, client, "2024-01-01")
    assert stats.extra["http_retries"] == client.http.retries_used == 2
    assert stats.extra["http_requests"] == client.http.requests_made
    assert len(fake.requests) == client.http.requests_made + 2  # each retry is one more request


def test_html_login_page_with_status_200_is_a_credentials_error() -> None:
    with serve(FakeOneC(_base_data(), html_login=True)) as fake:
        client = _client(fake)
        with pytest.raises(CredentialError, match=r"HTML page.*HUB_ACCOUNTING__ODATA_USER"):
            client.validate()
        with pytest.raises(CredentialError, match="HTML page"):
            list(client.counterparties())


def test_wrong_password_names_the_setting() -> None:
    with serve(FakeOneC(_base_data())) as fake:
        client = OneCOData(fake.url, "odata", "wrong", timeout_s=5, max_retries=0)
        with pytest.raises(CredentialError, match="HUB_ACCOUNTING__ODATA_PASSWORD"):
            client.validate()


def test_missing_entity_or_field_in_metadata_fails_before_reading(sqlite_store: str) -> None:
    fields = {k: v for k, v in REQUIRED_FIELDS.items() if k != PAYMENTS}
    fields[INVOICES] = tuple(f for f in REQUIRED_FIELDS[INVOICES] if f != "СуммаДокумента")
    with (
        serve(FakeOneC(_base_data(), metadata_fields=fields)) as fake,
        pytest.raises(PermanentSourceError) as caught,
    ):
        sync_odata(sqlite_store, _client(fake), "2024-01-01")
    message = str(caught.value)
    assert f"entity {PAYMENTS} is not published" in message
    assert (
        f"{INVOICES} lacks СуммаДокумента" in message and "Настройка стандартного интерфейса OData" in message
    )
    assert all("$metadata" in r for r in fake.requests)


def test_5xx_429_and_cut_bodies_are_retried() -> None:
    with serve(FakeOneC(_base_data(), faults=["503", "429", "truncated"])) as fake:
        client = _client(fake)
        parties = list(client.counterparties())
    assert len(parties) == 2 and client.http.retries_used >= 3


def test_a_server_that_keeps_failing_is_a_transient_error() -> None:
    with serve(FakeOneC(_base_data(), faults=["503"] * 10)) as fake, pytest.raises(TransientSourceError):
        list(_client(fake).counterparties())


def test_recording_replays_the_same_records_as_the_server(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    data = _base_data()
    path = tmp_path / "onec.json"
    path.write_text(
        json.dumps({"$metadata": render_metadata(), **data}, ensure_ascii=False), encoding="utf-8"
    )
    snapshot = OneCSnapshot(path, page_size=3)
    snapshot.validate()
    parties = {p["source_ref"]: (p["tax_id"], p["name"]) for p in snapshot.counterparties()}
    with serve(FakeOneC(data)) as fake:
        live = _client(fake)
        live_invoices = [r for page in live.invoice_pages("2024-01-01", parties) for r in page.records]
    replayed = [r for page in snapshot.invoice_pages("2024-01-01", parties) for r in page.records]
    assert replayed == live_invoices and len(replayed) == 7


def test_an_odata_error_body_is_reported_with_1cs_message() -> None:
    with serve(FakeOneC(_base_data())) as fake:
        client = _client(fake)
        with pytest.raises(PermanentSourceError, match=r"HTTP 400.*Not found"):
            client.fetch("Document_НетТакого", None, "Ref_Key", 3, 0)


def test_a_timeout_is_retried() -> None:
    with serve(FakeOneC(_base_data(), faults=["slow"])) as fake:
        client = OneCOData(
            fake.url, fake.user, fake.password, page_size=3, timeout_s=0.3, max_retries=3, backoff_factor=0.01
        )
        parties = list(client.counterparties())
    assert len(parties) == 2 and client.http.retries_used >= 1
