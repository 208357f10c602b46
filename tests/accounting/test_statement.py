"""1CClientBankExchange files in both encodings, with the edge cases real bank clients produce."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.bank_statement import parse_statement, render_statement, statement_payments
from hub.ingest.accounting import STATEMENT_SOURCE, new_statement_files, sync_statement_dir
from hub.store.db import session_scope
from hub.store.models import Payment, QuarantineRecord
from tests.accounting.builders import INN_A, INN_B, OUR_ACCOUNT, header, incoming


def _documents() -> list[tuple[str, dict[str, str]]]:
    split = incoming(
        "17",
        "2500.50",
        "",
        payer_inn=INN_B,
        НазначениеПлатежа1="Оплата по счету № 129",
        НазначениеПлатежа2="от 01.03.2024",
        НазначениеПлатежа3="НДС не облагается",
    )
    del split[1]["НазначениеПлатежа"]
    named_in_1 = incoming("18", "700", "по сч. 130", payer_inn=INN_B)
    named_in_1[1]["Плательщик"] = f"ИНН {INN_B}"
    named_in_1[1]["Плательщик1"] = "ИП Сидоров Петр Иванович"
    outgoing = incoming("19", "900", "Оплата поставщику за аренду")
    outgoing[1].update({"ПлательщикСчет": OUR_ACCOUNT, "ПолучательСчет": "40702810111111111111"})
    refund = incoming("20", "300.00", "Возврат переплаты по счету 128")
    refund[1].update(
        {
            "ПлательщикСчет": OUR_ACCOUNT,
            "ПолучательСчет": "40702810400000012345",
            "ПолучательИНН": INN_A,
            "Получатель1": 'ООО "Ромашка"',
        }
    )
    return [
        incoming("16", "1000.00", "Оплата по счету № 128 от 01.03.2024. Сумма 1000-00 без налога (НДС)"),
        split,
        named_in_1,
        outgoing,
        refund,
    ]


@pytest.mark.parametrize(("encoding", "codec"), [("Windows", "cp1251"), ("DOS", "cp866")])
def test_both_encodings_read_the_same_payments(encoding: str, codec: str) -> None:
    raw = render_statement(
        header(), [{"РасчСчет": OUR_ACCOUNT, "НачальныйОстаток": "0"}], _documents(), encoding
    )
    assert b"\r\n" in raw and "Плательщик".encode(codec) in raw
    statement = parse_statement(raw)
    assert statement.encoding == codec and statement.malformed == []
    payments = [p.record for p in statement_payments(statement)]
    assert all(payments)
    by_number = {p.source_ref.split("/")[1]: p for p in payments if p}
    assert sorted(by_number) == ["16", "17", "18", "20"]  # the supplier payment is not ours to match
    first = by_number["16"]
    assert (first.paid_on, first.amount, first.payer_tax_id, first.payer_name) == (
        date(2024, 3, 5),
        Decimal("1000.00"),
        INN_A,
        'ООО "Ромашка"',
    )
    assert by_number["17"].purpose == "Оплата по счету № 129 от 01.03.2024 НДС не облагается"
    assert by_number["18"].payer_name == "ИП Сидоров Петр Иванович"
    assert by_number["20"].amount == Decimal("-300.00") and by_number["20"].payer_tax_id == INN_A


def test_a_malformed_section_is_reported_and_the_rest_is_read() -> None:
    docs = _documents()
    raw = render_statement(header(), [], docs[:2]).decode("cp1251")
    broken = (
        "СекцияДокумент=Платежное поручение\r\nНомер=99\r\nэто не ключ и значение\r\nКонецДокумента\r\n"
        "СекцияДокумент=Платежное поручение\r\nНомер=100\r\n"
    )
    raw = raw.replace(
        "КонецФайла", broken + render_statement({}, [], docs[2:3]).decode("cp1251").split("\r\n", 3)[3]
    )
    statement = parse_statement(raw.encode("cp1251"))
    reasons = [m.reason for m in statement.malformed]
    assert len(reasons) == 2
    assert "not a key=value line" in reasons[0] and "not closed" in reasons[1]
    assert len([p for p in statement_payments(statement) if p.record]) == 3


def test_not_a_statement_and_bad_values_are_named() -> None:
    from connectors.errors import PermanentSourceError

    with pytest.raises(PermanentSourceError, match="1CClientBankExchange"):
        parse_statement("Дата;Сумма\r\n01.03.2024;100\r\n".encode("cp1251"))
    bad_date = incoming("21", "100", "по сч. 1", day="2024-03-05")
    bad_sum = incoming("22", "сто рублей", "по сч. 1")
    statement = parse_statement(render_statement(header(), [], [bad_date, bad_sum]))
    errors = [str(p.error) for p in statement_payments(statement)]
    assert "dd.MM.yyyy" in errors[0] and "amount of money" in errors[1]


def test_watched_folder_loads_new_files_once_and_quarantines_with_file_and_line(
    sqlite_store: str, tmp_path: Path
) -> None:
    folder = tmp_path / "statements"
    folder.mkdir()
    good = render_statement(header(), [], _documents(), "Windows")
    (folder / "kl_to_1c_0305.txt").write_bytes(good)
    bad_sum = incoming("23", "сто", "по сч. 1")
    (folder / "kl_to_1c_0306.txt").write_bytes(render_statement(header(), [], [bad_sum], "DOS"))
    (folder / "notes.txt").write_bytes(b"just some notes")
    first = sync_statement_dir(sqlite_store, folder, [OUR_ACCOUNT])
    assert first.written == 4 and first.quarantined == 2
    assert new_statement_files(sqlite_store, folder) == []
    again = sync_statement_dir(sqlite_store, folder, [OUR_ACCOUNT])
    assert again.rows_in == 0
    with session_scope(sqlite_store) as session:
        refs = session.scalars(
            select(Payment.source_ref).where(Payment.source_system == STATEMENT_SOURCE)
        ).all()
        quarantined = session.scalars(
            select(QuarantineRecord).where(QuarantineRecord.source == STATEMENT_SOURCE)
        ).all()
    assert len(refs) == 4
    errors = sorted(q.error for q in quarantined)
    assert errors[0].startswith("kl_to_1c_0306.txt line ") and "amount" in errors[0]
    assert errors[1].startswith("notes.txt") and "1CClientBankExchange" in errors[1]
    # The same file re-exported with one more payment: only the new one is written.
    more = render_statement(header(), [], [*_documents(), incoming("24", "50", "по сч. 5")], "Windows")
    (folder / "kl_to_1c_0305.txt").write_bytes(more)
    third = sync_statement_dir(sqlite_store, folder, [OUR_ACCOUNT])
    assert (third.rows_in, third.written, third.unchanged) == (5, 1, 4)
    with session_scope(sqlite_store) as session:
        assert len(session.scalars(select(Payment.id)).all()) == 5
