"""The matching rules on their own: most certain first, never invented, every kopeck accounted for."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from datetime import date, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hub.receivables.matching import (
    CREDIT,
    EXPLICIT,
    FIFO,
    PURPOSE,
    REFUND,
    TAX_ID_AMOUNT,
    MatchOptions,
    MatchResult,
    match,
)
from hub.receivables.purpose import invoice_references
from tests.accounting.builders import INN_A, INN_B, invoice, payment


@pytest.mark.parametrize(
    ("purpose", "numbers", "issued"),
    [
        ("Оплата по счету № 128 от 05.03.2024. Сумма 1000-00, в т.ч. НДС 166-67", ["128"], date(2024, 3, 5)),
        ("по сч. 128", ["128"], None),
        ("счет N128", ["128"], None),
        ("сч.№ 0000-000128", ["128"], None),
        ("oplata faktury FV/2024/03/128", ["128"], None),
        ("Оплата по счетам №№ 128, 129 и 130", ["128", "129", "130"], None),
        ("Оплата за товар по Счету на оплату № 0000-000045 от 5.3.24 г.", ["45"], date(2024, 3, 5)),
        ("Invoice #INV-0042 dd 01.02.2024", ["42"], date(2024, 2, 1)),
        ("ОПЛАТА ПО СЧЁТУ 128/2024", ["128"], None),
        ("oplata faktury FV/2024/03/1900", ["1900"], None),  # a number that looks like a year
        ("Оплата по счету-оферте № 45 от 01.02.2024", ["45"], date(2024, 2, 1)),
        ("Оплата по счету № 128 от 05.03.2024 и № 129 от 06.03.2024", ["128", "129"], date(2024, 3, 5)),
        ("Оплата по счету 128 от 05.03.2024, 1000-00 руб.", ["128"], date(2024, 3, 5)),
    ],
)
def test_invoice_numbers_are_read_in_every_spelling(
    purpose: str, numbers: list[str], issued: date | None
) -> None:
    refs = invoice_references(purpose)
    assert [r.number_key for r in refs] == numbers
    assert refs[0].issued_on == issued


@pytest.mark.parametrize(
    "purpose",
    [
        "Оплата по договору № 15 от 01.01.2024",
        "Оплата по счет-фактуре № 77 от 01.02.2024",
        "Опл. по сч.-ф. 77",
        "по сч/ф 77",
        "Аванс за поставку, НДС 20% 1666-67",
        "",
    ],
)
def test_contracts_tax_invoices_and_amounts_are_not_invoice_numbers(purpose: str) -> None:
    assert invoice_references(purpose) == []


def _methods(result: MatchResult) -> dict[object, list[tuple[object, int, str]]]:
    per: dict[object, list[tuple[object, int, str]]] = defaultdict(list)
    for a in result.allocations:
        per[a.payment_key].append((a.invoice_key, a.amount, a.method))
    return per


def test_explicit_link_comes_first_even_for_a_later_payment() -> None:
    inv = invoice(1, "128", 100_000, ref="guid-128")
    early = payment("p1", 100_000, "по сч. 128")
    late = payment("p2", 100_000, "", paid=date(2024, 3, 6), links=[("guid-128", None)])
    result = match([inv], [early, late])
    per = _methods(result)
    assert per["p2"] == [(1, 100_000, EXPLICIT)]
    # The purpose names an invoice the 1C link already settled: identified, so it is credit.
    assert per["p1"] == [(None, 100_000, CREDIT)]
    assert result.unmatched == []


def test_purpose_number_is_scoped_to_the_payers_inn() -> None:
    ours = invoice(1, "128", 50_000, tax_id=INN_A)
    theirs = invoice(2, "128", 50_000, tax_id=INN_B)
    result = match([ours, theirs], [payment("p", 50_000, "Оплата по счету № 128", tax_id=INN_B)])
    assert _methods(result)["p"] == [(2, 50_000, PURPOSE)]
    assert result.invoices[1].open == 50_000


def test_purpose_date_picks_between_invoices_with_the_same_number() -> None:
    last_year = invoice(1, "128", 70_000, issued=date(2023, 3, 5), due=date(2023, 3, 15))
    this_year = invoice(2, "128", 70_000, issued=date(2024, 3, 5), due=date(2024, 3, 15))
    result = match([last_year, this_year], [payment("p", 70_000, "Оплата по счету № 128 от 05.03.2024")])
    assert _methods(result)["p"] == [(2, 70_000, PURPOSE)]
    assert result.allocations[0].confidence == pytest.approx(0.95)


def test_payment_without_inn_is_never_matched_by_number_alone() -> None:
    inv = invoice(1, "128", 50_000)
    result = match([inv], [payment("p", 50_000, "Оплата по счету № 128", tax_id=None)])
    assert result.allocations == []
    [queued] = result.unmatched
    assert "ИНН" in queued.reason
    assert queued.candidates[0]["invoice_key"] == 1 and queued.candidates[0]["confidence"] < 0.9


def test_inn_and_exact_amount_only_when_one_invoice_fits() -> None:
    one = match([invoice(1, "1", 30_000), invoice(2, "2", 45_000)], [payment("p", 45_000, "за товар")])
    assert _methods(one)["p"] == [(2, 45_000, TAX_ID_AMOUNT)]
    two = match([invoice(1, "1", 45_000), invoice(2, "2", 45_000)], [payment("p", 45_000, "за товар")])
    assert two.allocations == []
    assert {c["invoice_key"] for c in two.unmatched[0].candidates} == {1, 2}


def test_fifo_by_due_date_only_where_enabled() -> None:
    invoices = [
        invoice(1, "1", 40_000, due=date(2024, 3, 20)),
        invoice(2, "2", 30_000, due=date(2024, 3, 8)),
        invoice(3, "3", 50_000, due=date(2024, 3, 12)),
    ]
    pay = payment("p", 60_000, "оплата за товар")
    off = match(invoices, [pay])
    assert off.allocations == [] and len(off.unmatched) == 1
    on = match(
        [invoice(i.key, i.number, i.amount, due=i.due_on) for i in invoices],
        [payment("p", 60_000, "оплата за товар")],
        MatchOptions(fifo=True),
    )
    assert _methods(on)["p"] == [(2, 30_000, FIFO), (3, 30_000, FIFO)]
    assert on.invoices[3].open == 20_000


def test_partial_payments_and_several_payments_for_one_invoice() -> None:
    inv = invoice(1, "128", 100_000)
    result = match(
        [inv],
        [
            payment("p1", 40_000, "Частичная оплата по счету 128"),
            payment("p2", 60_000, "Доплата по сч. 128", paid=date(2024, 3, 7)),
        ],
    )
    assert [(a.payment_key, a.amount) for a in result.allocations] == [("p1", 40_000), ("p2", 60_000)]
    assert result.invoices[1].open == 0


def test_one_payment_for_several_invoices_and_overpayment_as_credit() -> None:
    invoices = [invoice(1, "128", 30_000), invoice(2, "129", 20_000)]
    result = match(invoices, [payment("p", 55_000, "Оплата по счетам 128, 129")])
    assert _methods(result)["p"] == [(1, 30_000, PURPOSE), (2, 20_000, PURPOSE), (None, 5_000, CREDIT)]


def test_refund_draws_on_credit_then_reopens_the_named_invoice() -> None:
    invoices = [invoice(1, "128", 30_000)]
    payments = [
        payment("p", 35_000, "по сч. 128"),
        payment("r1", -5_000, "Возврат переплаты", paid=date(2024, 3, 9)),
        payment("r2", -10_000, "Возврат по счету 128", paid=date(2024, 3, 10)),
    ]
    result = match(invoices, payments)
    per = _methods(result)
    assert per["r1"] == [(None, -5_000, REFUND)]
    assert per["r2"] == [(1, -10_000, REFUND)]
    assert result.invoices[1].open == 10_000


def test_refund_with_nothing_to_charge_waits_in_the_queue() -> None:
    result = match([invoice(1, "5", 10_000)], [payment("r", -3_000, "Возврат")])
    assert result.allocations == [] and result.unmatched[0].amount == -3_000


def _check_books(result: MatchResult) -> None:
    per_payment: dict[object, int] = defaultdict(int)
    per_invoice: dict[object, int] = defaultdict(int)
    for a in result.allocations:
        per_payment[a.payment_key] += a.amount
        if a.invoice_key is not None:
            per_invoice[a.invoice_key] += a.amount
    for key, pay in result.payments.items():
        total = per_payment.get(key, 0)
        assert (0 <= total <= pay.amount) if pay.amount > 0 else (pay.amount <= total <= 0)
        assert pay.remaining == pay.amount - total
        queued = [u for u in result.unmatched if u.payment_key == key]
        assert (queued and queued[0].amount == pay.remaining) or pay.remaining == 0
    for key, inv in result.invoices.items():
        assert 0 <= per_invoice.get(key, 0) <= inv.amount
        assert inv.open == inv.amount - per_invoice.get(key, 0)


@pytest.mark.parametrize("fifo", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_books_hold_on_random_ledgers(seed: int, fifo: bool) -> None:
    """Whatever the data: no payment allocated beyond its amount, no invoice beyond its own, and
    what is not allocated waits in the queue."""
    rng = random.Random(seed)
    tax_ids = [INN_A, INN_B, None]
    invoices = []
    for n in range(60):
        issued = date(2024, 1, 1) + timedelta(days=rng.randint(0, 60))
        invoices.append(
            invoice(
                n,
                str(100 + n),
                rng.choice([10_000, 25_000, 99_900, 150_000]),
                tax_id=rng.choice(tax_ids),
                issued=issued,
                due=issued + timedelta(days=rng.choice([5, 10, 30])),
                ref=f"g{n}",
            )
        )
    payments = []
    for n in range(80):
        target = rng.choice(invoices)
        purpose = rng.choice(
            [
                f"по сч. {target.number}",
                f"Оплата по счетам {target.number}, {int(target.number) + 1}",
                "за товар",
                "Возврат",
                "",
            ]
        )
        amount = rng.choice([target.amount, target.amount // 2, target.amount + 5_000, 7_000])
        if purpose == "Возврат":
            amount = -amount
        links = [(target.ref, None)] if rng.random() < 0.1 else []
        payments.append(
            payment(
                f"p{n}",
                amount,
                purpose,
                tax_id=rng.choice(tax_ids),
                paid=date(2024, 1, 1) + timedelta(days=rng.randint(0, 90)),
                links=links,
            )
        )
    _check_books(match(invoices, payments, MatchOptions(fifo=fifo)))


@given(st.text(alphabet="0123456789 .,№N#-/абвгдежзийклмнопрдоговорфактура", max_size=60))
def test_text_without_an_invoice_word_names_no_invoice(purpose: str) -> None:
    assume(not re.search(r"сч|inv|fakt|rach|rech", purpose, re.IGNORECASE))
    assert invoice_references(purpose) == []


@settings(max_examples=300)
@given(
    st.integers(1, 999_999),
    st.sampled_from(
        [
            "Оплата по счету № {n}",
            "по сч. {n}",
            "счет N{n}",
            "сч.№ 0000-{n:06d}",
            "oplata faktury FV/2024/03/{n}",
        ]
    ),
)
def test_every_spelling_gives_the_same_number_key(number: int, spelling: str) -> None:
    [reference] = invoice_references(spelling.format(n=number))
    assert reference.number_key == str(number)


# ---------------------------------------------------------------- payers without an ИНН


def _person_invoice(key: int, number: str, amount: int, name: str | None, **kw: object) -> object:
    inv = invoice(key, number, amount, tax_id=None, **kw)  # type: ignore[arg-type]
    inv.name = name
    return inv


def test_private_payer_is_matched_by_the_invoice_named_for_exactly_its_amount() -> None:
    invoices = [
        _person_invoice(1, "ХИМ-ММР286", 1_240_000, "Смирнова А.С."),
        _person_invoice(2, "ХИМ-ММР287", 800_000, "Смирнова А.С."),
    ]
    pays = [
        payment(
            "named", 1_240_000, "Оплата по счету № ХИМ-ММР286", tax_id=None, name="СМИРНОВА АННА СЕРГЕЕВНА"
        ),
        payment("no name", 800_000, "по сч. ХИМ-ММР287", tax_id=None, name=None),
    ]
    result = match(invoices, pays)
    by_payment = {a.payment_key: a for a in result.allocations}
    assert (by_payment["named"].invoice_key, by_payment["named"].method) == (1, "invoice_amount_name")
    assert by_payment["named"].confidence == 0.8
    assert by_payment["no name"].invoice_key == 2 and by_payment["no name"].confidence == 0.7
    assert result.unmatched == []


def test_private_payer_whose_name_contradicts_the_customer_waits_with_the_reason() -> None:
    inv = _person_invoice(1, "ХИМ-ММР286", 500_000, "Белова Ольга")
    result = match([inv], [payment("p", 500_000, "по счету № ХИМ-ММР286", tax_id=None, name="Кузнецов Олег")])
    assert result.allocations == []
    [queued] = result.unmatched
    assert "is not its customer" in queued.reason and "Белова Ольга" in queued.reason
    assert queued.candidates[0]["invoice_key"] == 1  # shown to the person who decides


@pytest.mark.parametrize(
    ("purpose", "amount"),
    [
        ("Оплата по счету № 286", 400_000),  # not the exact amount
        ("Оплата по счету № АБВ-286", 500_000),  # another series with the same digits
        ("перевод", 500_000),  # names no invoice
    ],
)
def test_private_payer_is_never_matched_on_weaker_evidence(purpose: str, amount: int) -> None:
    inv = _person_invoice(1, "ХИМ-286", 500_000, "Смирнова Анна")
    result = match([inv], [payment("p", amount, purpose, tax_id=None, name="Смирнова Анна")])
    assert result.allocations == [] and len(result.unmatched) == 1


def test_private_payer_for_two_named_invoices_and_a_number_two_customers_share() -> None:
    invoices = [
        _person_invoice(1, "101", 30_000, "Орлов Иван"),
        _person_invoice(2, "102", 20_000, "Орлов Иван"),
        _person_invoice(3, "7", 10_000, "Орлов Иван"),
        _person_invoice(4, "7", 10_000, "Лисина Мария"),
    ]
    pays = [
        payment("both", 50_000, "по счетам № 101, 102", tax_id=None, name="Орлов Иван Петрович"),
        payment("ambiguous", 10_000, "по счету 7", tax_id=None, name="Орлов Иван Петрович"),
    ]
    result = match(invoices, pays)
    assert sorted((a.payment_key, a.invoice_key) for a in result.allocations) == [("both", 1), ("both", 2)]
    assert [u.payment_key for u in result.unmatched] == ["ambiguous"]


def test_a_company_invoice_is_not_settled_by_money_without_an_inn() -> None:
    company = invoice(1, "55", 70_000)  # a company's invoice (10-digit ИНН)
    result = match([company], [payment("p", 70_000, "по счету 55", tax_id=None, name='ООО "Ромашка"')])
    assert result.allocations == []
    assert "of a company" in result.unmatched[0].reason


def test_inn_scoped_rules_come_first() -> None:
    person = _person_invoice(1, "56", 70_000, "Орлов Иван")
    person.tax_id = "500100732259"  # a person's 12-digit ИНН
    pays = [
        payment("no inn", 70_000, "по счету 56", tax_id=None, name="Орлов И.", paid=date(2024, 3, 1)),
        payment(
            "inn", 70_000, "по счету 56", tax_id="500100732259", name="Орлов Иван", paid=date(2024, 3, 9)
        ),
    ]
    result = match([person], pays)
    assert [(a.payment_key, a.method) for a in result.allocations] == [("inn", PURPOSE)]
    assert [u.payment_key for u in result.unmatched] == ["no inn"]
