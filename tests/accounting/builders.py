"""Statement documents, invoices and payments as the tests need them."""

from __future__ import annotations

from datetime import date
from typing import Any

from hub.receivables.matching import InvoiceItem, PaymentItem
from schemas.accounting import with_inn_check_digits

OUR_ACCOUNT = "40702810900000000001"
INN_A = with_inn_check_digits("770123456")
INN_B = with_inn_check_digits("500100732")
INN_C = with_inn_check_digits("781000123")


def incoming(
    number: str,
    amount: str,
    purpose: str,
    payer_inn: str = INN_A,
    payer: str = 'ООО "Ромашка"',
    day: str = "05.03.2024",
    **extra: str,
) -> tuple[str, dict[str, str]]:
    fields = {
        "Номер": number,
        "Дата": day,
        "Сумма": amount,
        "ПлательщикСчет": "40702810400000012345",
        "Плательщик": f"ИНН {payer_inn} {payer}",
        "ПлательщикИНН": payer_inn,
        "ПлательщикКПП": "",
        "ПолучательСчет": OUR_ACCOUNT,
        "ДатаПоступило": day,
        "Получатель": 'ООО "Хаб"',
        "ПолучательИНН": INN_C,
        "НазначениеПлатежа": purpose,
    }
    fields.update(extra)
    return "Платежное поручение", fields


def header() -> dict[str, str]:
    return {
        "Отправитель": "Бухгалтерия",
        "Получатель": "",
        "ДатаСоздания": "06.03.2024",
        "ДатаНачала": "01.03.2024",
        "ДатаКонца": "06.03.2024",
        "РасчСчет": OUR_ACCOUNT,
        "Документ": "Платежное поручение",
    }


def invoice(
    key: Any,
    number: str,
    amount: int,
    tax_id: str | None = INN_A,
    issued: date = date(2024, 3, 1),
    due: date = date(2024, 3, 10),
    ref: str | None = None,
) -> InvoiceItem:
    return InvoiceItem(
        key=key,
        ref=ref or f"ref-{key}",
        number=number,
        issued_on=issued,
        due_on=due,
        amount=amount,
        tax_id=tax_id,
        name='ООО "Ромашка"',
    )


def payment(
    key: Any,
    amount: int,
    purpose: str = "",
    tax_id: str | None = INN_A,
    paid: date = date(2024, 3, 5),
    links: list[tuple[str, int | None]] | None = None,
    name: str | None = 'ООО "Ромашка"',
) -> PaymentItem:
    return PaymentItem(
        key=key, paid_on=paid, amount=amount, tax_id=tax_id, name=name, purpose=purpose, links=links or []
    )
