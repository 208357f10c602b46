"""Demo data of accounting: a recording of a 1C base's OData answers (counterparties, invoices,
payments with their 1C links) and a cp1251 bank statement whose purposes spell invoice numbers
every way payers do, with a partial payment, an overpayment, a refund and a broken section."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.bank_statement import render_statement
from connectors.onec_odata import (
    COUNTERPARTIES,
    COUNTERPARTY_TYPE,
    EMPTY_DATE,
    EMPTY_GUID,
    INVOICE_TYPE,
    INVOICES,
    PAYMENT_LINES,
    PAYMENTS,
    REQUIRED_FIELDS,
)
from hub.identity.resolve import index_contact
from hub.store.models import Contact
from schemas.accounting import with_inn_check_digits

OUR_ACCOUNT = "40702810938000012345"
EDM_TYPES = {
    "Ref_Key": "Edm.Guid",
    "Date": "Edm.DateTime",
    "Posted": "Edm.Boolean",
    "DeletionMark": "Edm.Boolean",
    "IsFolder": "Edm.Boolean",
    "СуммаДокумента": "Edm.Double",
    "СуммаПлатежа": "Edm.Double",
    "СрокОплаты": "Edm.DateTime",
}


def render_metadata(fields: dict[str, tuple[str, ...]] | None = None) -> str:
    """An EDMX document as 1C publishes it, for the given entities and fields (tabular parts as
    "<Document>_<Part>_RowType" complex types)."""
    fields = dict(REQUIRED_FIELDS if fields is None else fields)
    extra = {
        COUNTERPARTIES: ("НаименованиеПолное", "IsFolder", "DeletionMark"),
        INVOICES: ("СрокОплаты",),
        PAYMENTS: ("ВидОперации",),
    }
    parts = []
    for entity, names in fields.items():
        props = list(dict.fromkeys([*names, *extra.get(entity, ())]))
        kind = "ComplexType" if entity == PAYMENT_LINES else "EntityType"
        name = f"{entity}_RowType" if entity == PAYMENT_LINES else entity
        body = "".join(
            f'<Property Name="{p}" Type="'
            + (
                f"Collection(StandardODATA.{PAYMENT_LINES}_RowType)"
                if p == "РасшифровкаПлатежа"
                else EDM_TYPES.get(p, "Edm.String")
            )
            + '" Nullable="true"/>'
            for p in props
        )
        key = '<Key><PropertyRef Name="Ref_Key"/></Key>' if kind == "EntityType" else ""
        parts.append(f'<{kind} Name="{name}">{key}{body}</{kind}>')
    sets = "".join(
        f'<EntitySet Name="{e}" EntityType="StandardODATA.{e}"/>' for e in fields if e != PAYMENT_LINES
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<edmx:Edmx xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" Version="1.0">'
        '<edmx:DataServices xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" '
        'm:DataServiceVersion="3.0">'
        '<Schema xmlns="http://schemas.microsoft.com/ado/2009/11/edm" Namespace="StandardODATA">'
        + "".join(parts)
        + f'<EntityContainer Name="StandardODATA" m:IsDefaultEntityContainer="true">{sets}</EntityContainer>'
        "</Schema></edmx:DataServices></edmx:Edmx>"
    )


def guid(kind: int, n: int) -> str:
    """Deterministic GUIDs so that the demo written twice is the same demo."""
    return f"{kind:08x}-0000-4000-8000-{n:012x}"


def _odata_date(day: date) -> str:
    return f"{day.isoformat()}T00:00:00"


def _clients(session: Session) -> list[tuple[Contact, str]]:
    """Six CRM client companies get their ИНН (as the CRM would hold it); 1C knows them by it."""
    contacts = session.scalars(
        select(Contact)
        .where(Contact.source_system == "crm", Contact.region == "RU")
        .order_by(Contact.id)
        .limit(6)
    ).all()
    clients = []
    for n, contact in enumerate(contacts):
        inn = with_inn_check_digits(f"77{n + 1:02d}{n * 731 % 100000:05d}")
        if contact.tax_id != inn:
            contact.tax_id = inn
        index_contact(session, contact)
        clients.append((contact, inn))
    return clients


def _online_bank_statement(day: Any, our_account: str) -> bytes:
    """The internet bank's export: UTF-8, although it says `Кодировка=Windows` (as most such files
    do), with card payments of private persons, no ИНН: one names her invoice ("ИМ-000201") and
    pays it exactly, one pays the other invoice's amount under a name that is not its customer's."""
    lines = [
        "1CClientBankExchange",
        "ВерсияФормата=1.03",
        "Кодировка=Windows",
        "Отправитель=Интернет-банк",
        "Получатель=1С:Предприятие",
        f"ДатаСоздания={day(0)}",
        f"ДатаНачала={day(5)}",
        f"ДатаКонца={day(0)}",
        f"РасчСчет={our_account}",
        "СекцияРасчСчет",
        f"РасчСчет={our_account}",
        "НачальныйОстаток=0.00",
        "КонецРасчСчет",
    ]
    for no, ago, amount, payer, account, purpose in (
        (
            901,
            3,
            "12400.00",
            "Смирнова Анна Сергеевна",
            "40817810099910004312",
            "Оплата по счету № ИМ-000201. Без НДС",
        ),
        (902, 2, "8000.00", "Кузнецов Олег Викторович", "40817810400030269771", "Оплата по сч. ИМ-000202"),
    ):
        lines += [
            "СекцияДокумент=Платежное поручение",
            f"Номер={no}",
            f"Дата={day(ago)}",
            f"Сумма={amount}",
            f"ПлательщикСчет={account}",
            f"Плательщик={payer}",
            "ПлательщикИНН=",
            f"Плательщик1={payer}",
            f"ПолучательСчет={our_account}",
            f"ДатаПоступило={day(ago)}",
            'Получатель1=ООО "Торговый дом"',
            f"НазначениеПлатежа={purpose}",
            "КонецДокумента",
        ]
    lines.append("КонецФайла")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def generate_accounting_demo(
    session: Session, demo_dir: Path, today: date, database_url: str
) -> dict[str, Any]:
    clients = _clients(session)
    parties = [
        (guid(1, n + 1), contact.company or contact.name or f"Клиент {n}", inn)
        for n, (contact, inn) in enumerate(clients)
    ]
    stranger_inn = with_inn_check_digits("540200771")
    parties.append((guid(1, 99), 'ООО "Неизвестный покупатель"', stranger_inn))
    # Private persons buying from the web shop: 1C knows them by name only, without an ИНН.
    persons = [(guid(1, 201), "Смирнова Анна Сергеевна", ""), (guid(1, 202), "Белова Ольга Николаевна", "")]
    parties += persons
    counterparty_rows: list[dict[str, Any]] = [
        {
            "Ref_Key": ref,
            "Description": name,
            "НаименованиеПолное": name,
            "ИНН": inn,
            "КПП": "770101001",
            "IsFolder": False,
            "DeletionMark": False,
        }
        for ref, name, inn in parties
    ]
    counterparty_rows.append(
        {
            "Ref_Key": guid(1, 500),
            "Description": "Покупатели",
            "ИНН": "",
            "КПП": "",
            "IsFolder": True,
            "DeletionMark": False,
        }
    )

    # Invoices spread over four months so that every aging bucket has something in it.
    invoices: list[dict[str, Any]] = []
    plan = [  # (party index, days ago issued, terms, amount)
        (0, 130, 10, 120000.0),
        (0, 40, 10, 45000.5),
        (1, 95, 14, 250000.0),
        (1, 20, 5, 99900.0),
        (2, 70, 10, 38000.0),
        (2, 8, 10, 61000.0),
        (3, 50, 30, 175000.0),
        (3, 12, 14, 12500.0),
        (4, 33, 5, 80000.0),
        (4, 3, 10, 22000.0),
        (5, 15, 10, 64000.0),
        (6, 25, 10, 15000.0),
    ]
    for n, (party, ago, terms, amount) in enumerate(plan, start=1):
        issued = today - timedelta(days=ago)
        invoices.append(
            {
                "Ref_Key": guid(2, n),
                "Number": f"0000-{120 + n:06d}",
                "Date": _odata_date(issued),
                "Posted": True,
                "DeletionMark": False,
                "Контрагент_Key": parties[party][0],
                "СуммаДокумента": amount,
                "СрокОплаты": _odata_date(issued + timedelta(days=terms)),
            }
        )
    # The web shop's invoices to those persons, numbered in their own series.
    shoppers = [parties.index(person) for person in persons]
    for n, (party, amount) in enumerate(((shoppers[0], 12400.0), (shoppers[1], 8000.0)), start=1):
        issued = today - timedelta(days=6)
        invoices.append(
            {
                "Ref_Key": guid(2, 200 + n),
                "Number": f"ИМ-{200 + n:06d}",
                "Date": _odata_date(issued),
                "Posted": True,
                "DeletionMark": False,
                "Контрагент_Key": parties[party][0],
                "СуммаДокумента": amount,
                "СрокОплаты": _odata_date(issued + timedelta(days=3)),
            }
        )
    # Not receivables: a draft and a deleted invoice; one without a due date takes the default terms.
    invoices.append({**invoices[0], "Ref_Key": guid(2, 90), "Number": "0000-000190", "Posted": False})
    invoices.append({**invoices[1], "Ref_Key": guid(2, 91), "Number": "0000-000191", "DeletionMark": True})
    invoices[9]["СрокОплаты"] = EMPTY_DATE

    def number(n: int) -> str:
        return invoices[n - 1]["Number"]

    payments = [
        # 1C's own link (РасшифровкаПлатежа): settles invoice 1 in full.
        {
            "Ref_Key": guid(3, 1),
            "Number": "0000-000051",
            "Date": _odata_date(today - timedelta(days=115)),
            "Posted": True,
            "DeletionMark": False,
            "ВидОперации": "ОплатаПокупателя",
            "Контрагент": parties[0][0],
            "Контрагент_Type": COUNTERPARTY_TYPE,
            "СуммаДокумента": 120000.0,
            "НазначениеПлатежа": "Оплата по договору поставки",
            "РасшифровкаПлатежа": [
                {
                    "LineNumber": "1",
                    "СчетНаОплату_Key": guid(2, 1),
                    "Сделка": EMPTY_GUID,
                    "Сделка_Type": "StandardODATA.Undefined",
                    "СуммаПлатежа": 120000.0,
                }
            ],
        },
        # Linked through the composite Сделка field instead.
        {
            "Ref_Key": guid(3, 2),
            "Number": "0000-000052",
            "Date": _odata_date(today - timedelta(days=60)),
            "Posted": True,
            "DeletionMark": False,
            "ВидОперации": "ОплатаПокупателя",
            "Контрагент": parties[2][0],
            "Контрагент_Type": COUNTERPARTY_TYPE,
            "СуммаДокумента": 38000.0,
            "НазначениеПлатежа": "Оплата",
            "РасшифровкаПлатежа": [
                {
                    "LineNumber": "1",
                    "СчетНаОплату_Key": EMPTY_GUID,
                    "Сделка": guid(2, 5),
                    "Сделка_Type": INVOICE_TYPE,
                    "СуммаПлатежа": 38000.0,
                }
            ],
        },
        # A bank loan is not a client's payment.
        {
            "Ref_Key": guid(3, 3),
            "Number": "0000-000053",
            "Date": _odata_date(today - timedelta(days=30)),
            "Posted": True,
            "DeletionMark": False,
            "ВидОперации": "ПолучениеКредитаВБанке",
            "Контрагент": guid(9, 1),
            "Контрагент_Type": "StandardODATA.Catalog_Банки",
            "СуммаДокумента": 1000000.0,
            "НазначениеПлатежа": "Кредит",
            "РасшифровкаПлатежа": [],
        },
    ]
    recording = {
        "$metadata": render_metadata(),
        COUNTERPARTIES: counterparty_rows,
        INVOICES: invoices,
        PAYMENTS: payments,
    }
    folder = demo_dir / "accounting"
    statements = folder / "statements"
    statements.mkdir(parents=True, exist_ok=True)
    snapshot = folder / "onec_odata.json"
    snapshot.write_text(json.dumps(recording, ensure_ascii=False, indent=1), encoding="utf-8")

    def day(ago: int) -> str:
        return (today - timedelta(days=ago)).strftime("%d.%m.%Y")

    def doc(
        no: int, ago: int, amount: str, party: int | None, purpose: str, **extra: str
    ) -> tuple[str, dict[str, str]]:
        inn = parties[party][2] if party is not None else ""
        name = parties[party][1] if party is not None else "Сидоров Петр Иванович"
        fields = {
            "Номер": str(no),
            "Дата": day(ago),
            "Сумма": amount,
            "ПлательщикСчет": f"4070281000000000{no:04d}",
            "Плательщик": f"ИНН {inn} {name}" if inn else name,
            "ПлательщикИНН": inn,
            "ПлательщикКПП": "",
            "Плательщик1": name,
            "ПолучательСчет": OUR_ACCOUNT,
            "ДатаПоступило": day(ago),
            "Получатель1": 'ООО "Торговый дом"',
            "ПолучательИНН": with_inn_check_digits("770700049"),
            "НазначениеПлатежа": purpose,
        }
        fields.update(extra)
        return "Платежное поручение", fields

    documents = [
        doc(
            311,
            90,
            "250000.00",
            1,
            f"Оплата по счету № {number(3)} от {day(95)}. Сумма 250000-00, в т.ч. НДС",
        ),
        doc(312, 45, "20000.00", 3, f"Частичная оплата по сч. {int(number(7)[-3:])}"),  # partial
        doc(313, 18, "99900.00", 1, "Оплата за товар"),  # ИНН + exact amount
        doc(314, 6, "70000.00", 2, f"Оплата по счету N{int(number(6)[-3:])}"),  # overpayment -> credit
        doc(
            315,
            5,
            "",
            4,
            "",
            НазначениеПлатежа1=f"Оплата по счетам № {number(9)},",
            НазначениеПлатежа2=f"№ {number(10)} НДС не облагается",
            Сумма="102000.00",
        ),
        doc(
            316, 4, "15000.00", None, f"oplata faktury FV/{today.year}/{int(number(12)[-3:])}"
        ),  # no ИНН -> queue
        doc(317, 2, "30000.00", 5, "Предоплата по договору 14"),  # nothing named, FIFO off -> queue
    ]
    refund = doc(318, 1, "9000.00", 2, "Возврат переплаты по счету " + number(6))
    refund[1].update(
        {
            "ПлательщикСчет": OUR_ACCOUNT,
            "ПолучательСчет": "40702810000000000314",
            "Получатель1": parties[2][1],
            "ПолучательИНН": parties[2][2],
        }
    )
    documents.append(refund)
    raw = render_statement(
        {
            "Отправитель": "Бухгалтерия",
            "ДатаСоздания": day(0),
            "ДатаНачала": day(120),
            "ДатаКонца": day(0),
            "РасчСчет": OUR_ACCOUNT,
            "Документ": "Платежное поручение",
        },
        [{"ДатаНачала": day(120), "ДатаКонца": day(0), "РасчСчет": OUR_ACCOUNT, "НачальныйОстаток": "0.00"}],
        documents,
        "Windows",
    )
    # A section cut short by a broken export: quarantined, the rest of the file still loads.
    broken = "СекцияДокумент=Платежное поручение\r\nНомер=319\r\nДата=".encode("cp1251")
    raw = raw.replace("КонецФайла".encode("cp1251"), broken + b"\r\n" + "КонецФайла".encode("cp1251"))
    (statements / "kl_to_1c.txt").write_bytes(raw)
    (statements / "online-bank.txt").write_bytes(_online_bank_statement(day, OUR_ACCOUNT))
    return {
        "accounting": {
            "odata_snapshot_file": str(snapshot),
            "odata_since": (today - timedelta(days=180)).isoformat(),
            "statements_dir": str(statements),
            "our_accounts": [OUR_ACCOUNT],
        }
    }
