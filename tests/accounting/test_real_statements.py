"""Bank statements other people's systems wrote (tests/accounting/samples/README.md): read right
whatever `Кодировка=` claims, a file cut short or an ИНН failing its checksum said out loud, and
private payers without an ИНН matched by the invoice they name (or refused when the name differs)."""

from __future__ import annotations

import csv
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connectors.bank_statement import parse_statement, statement_payments, statement_summary
from hub.cli import main
from hub.ingest.accounting import STATEMENT_SOURCE, sync_csv_file, sync_statement_file
from hub.receivables.ledger import reconcile
from hub.store.db import session_scope
from hub.store.models import Payment, PaymentAllocation, UnmatchedPayment

SAMPLES = Path(__file__).parent / "samples"

# file: (documents, incoming, outgoing, other, malformed, encoding, complete)
EXPECTED = {
    "xini1-sample1.txt": (2, 0, 0, 2, 0, "utf-8", True),
    "xini1-sample2.txt": (1, 0, 1, 0, 0, "utf-8", True),
    "xini1-sample3.txt": (1, 0, 1, 0, 0, "utf-8", True),
    "xini1-sample4.txt": (1, 0, 1, 0, 0, "utf-8", True),
    "xini1-sample5.txt": (6, 0, 6, 0, 0, "utf-8", True),
    "condo-1CClientBankExchange.txt": (4, 2, 2, 0, 0, "utf-8", True),
    "condo-1CClientBankExchange-Invalid.txt": (0, 0, 0, 0, 0, "utf-8", False),
    "dronm-kl_to_1c.txt": (3, 0, 2, 1, 0, "cp1251", True),
    "dronm-to_bank.txt": (2, 0, 0, 2, 0, "cp1251", True),
    "andrey9129-kl_to_1c.txt": (14, 0, 14, 0, 0, "cp1251", True),
    "written-private-payers.txt": (3, 3, 0, 0, 0, "utf-8", True),
}


def test_every_sample_is_listed_with_its_origin() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    files = sorted(p.name for p in SAMPLES.iterdir() if p.suffix == ".txt")
    assert files == sorted(EXPECTED)
    assert all(f"`{name}`" in readme or name.startswith("xini1-sample") for name in files)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_statement_reads_with_its_counts_and_encoding(name: str) -> None:
    statement = parse_statement((SAMPLES / name).read_bytes())
    summary = statement_summary(statement)
    documents, incoming, outgoing, other, malformed, encoding, complete = EXPECTED[name]
    assert (
        summary["documents"],
        summary["incoming"],
        summary["outgoing"],
        summary["other"],
        summary["malformed"],
        summary["encoding"],
        summary["complete"],
    ) == (documents, incoming, outgoing, other, malformed, encoding, complete)
    # Keys read as Cyrillic, never mojibake: every document has its number and amount.
    assert all(d.fields.get("Номер") and d.fields.get("Сумма") for d in statement.documents)


def test_utf8_declared_windows_reads_the_private_payer_and_says_how_it_was_decided() -> None:
    statement = parse_statement((SAMPLES / "condo-1CClientBankExchange.txt").read_bytes())
    assert "UTF-8" in statement.encoding_note and "Windows" in statement.encoding_note
    payments = [p.record for p in statement_payments(statement)]
    assert [(p.payer_name, p.payer_tax_id, p.amount) for p in payments if p] == [
        ("Иванов Иван Иванович", None, Decimal("1052.98")),
        ("ПЕТРОВ ПЁТР ПЕТРОВИЧ", "667220109459", Decimal("1166.98")),
    ]


def test_a_file_cut_short_loads_with_a_warning() -> None:
    statement = parse_statement((SAMPLES / "condo-1CClientBankExchange-Invalid.txt").read_bytes())
    assert not statement.complete
    assert any("КонецФайла" in w and "cut short" in w for w in statement.warnings())


def test_a_legacy_file_with_one_utf8_line_and_kinds_named_in_the_header() -> None:
    statement = parse_statement((SAMPLES / "dronm-to_bank.txt").read_bytes())
    assert statement.complete  # its КонецФайла is the UTF-8 line
    assert "1 line(s) in UTF-8" in statement.encoding_note
    assert [d.kind for d in statement.documents] == ["Платежное поручение"] * 2
    assert statement.documents[0].fields["Получатель1"] == "ИП Иванов А.А."


def test_an_inn_failing_its_checksum_is_reported_and_the_payment_kept() -> None:
    statement = parse_statement((SAMPLES / "written-private-payers.txt").read_bytes())
    items = list(statement_payments(statement))
    assert all(item.record is not None for item in items)
    warned = [item for item in items if item.warnings]
    assert len(warned) == 1 and "7777777777" in warned[0].warnings[0]
    assert "checksum" in warned[0].warnings[0]
    assert warned[0].record is not None and warned[0].record.payer_tax_id is None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_statement_prints_a_summary_line_for_every_file(name: str) -> None:
    result = CliRunner().invoke(main, ["inspect", "statement", str(SAMPLES / name)])
    assert result.exit_code == 0, result.output
    last = json.loads(result.output.splitlines()[-1])
    documents, incoming, outgoing, _other, malformed, encoding, complete = EXPECTED[name]
    summary = last["summary"]
    assert (summary["documents"], summary["incoming"], summary["outgoing"], summary["malformed"]) == (
        documents,
        incoming,
        outgoing,
        malformed,
    )
    assert summary["encoding"] == encoding and summary["complete"] is complete
    if not complete:
        assert any("cut short" in w for w in last["warnings"])


def test_inspect_statement_shows_what_the_matching_will_use() -> None:
    result = CliRunner().invoke(main, ["inspect", "statement", str(SAMPLES / "written-private-payers.txt")])
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines[0]["match_on"] == {
        "payer_inn": None,
        "payer_name": "Смирнова Анна Сергеевна",
        "invoices": ["ХИМ-ММР286"],
    }
    assert "checksum" in lines[2]["warnings"][0]
    assert any("7777777777" in w for w in lines[-1]["warnings"])


def _invoices(path: Path) -> Path:
    rows = [
        ["Номер", "Дата", "Срок оплаты", "Сумма", "ИНН", "Контрагент"],
        ["ХИМ-ММР286", "01.03.2024", "11.03.2024", "12400,00", "", "Смирнова А. С."],
        ["ХИМ-ММР287", "01.03.2024", "11.03.2024", "8000,00", "", "Белова Ольга Николаевна"],
        ["ХИМ-ММР288", "02.03.2024", "12.03.2024", "5000,00", "", "Орлов Иван Петрович"],
        ["ЛАБ-286", "01.03.2024", "11.03.2024", "12400,00", "", "Смирнова А. С."],
    ]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, delimiter=";").writerows(rows)
    return path


def test_receivables_match_places_private_payers_by_invoice_and_refuses_a_contradicting_name(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        main,
        [
            "receivables",
            "match",
            "--invoices",
            str(_invoices(tmp_path / "inv.csv")),
            "--payments",
            str(SAMPLES / "written-private-payers.txt"),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "7777777777" in result.output and "checksum" in result.output  # said, not dropped
    with open(out, encoding="utf-8-sig", newline="") as fh:
        rows = {r["payer"]: r for r in csv.DictReader(fh, delimiter=";")}
    smirnova = rows["Смирнова Анна Сергеевна"]
    # "ЛАБ-286" has the same digits and amount, another series: not a second candidate.
    assert (smirnova["invoice_number"], smirnova["method"], smirnova["allocated"]) == (
        "ХИМ-ММР286",
        "invoice_amount_name",
        "12400.00",
    )
    assert float(smirnova["confidence"]) < 0.9  # below the ИНН-scoped rules
    kuznetsov = rows["Кузнецов Олег Викторович"]
    assert kuznetsov["method"] == "unmatched"
    assert "is not its customer" in kuznetsov["detail"] and "Белова" in kuznetsov["detail"]
    orlov = rows["Орлов Иван Петрович"]
    assert (orlov["invoice_number"], orlov["method"]) == ("ХИМ-ММР288", "invoice_amount_name")


def test_statement_into_the_store_then_reconcile(store_url: str, tmp_path: Path) -> None:
    stats = sync_statement_file(store_url, SAMPLES / "written-private-payers.txt", [])
    assert stats.written == 3 and stats.quarantined == 0
    assert any("7777777777" in w for w in stats.extra["warnings"])
    cut = sync_statement_file(store_url, SAMPLES / "condo-1CClientBankExchange-Invalid.txt", [])
    assert any("cut short" in w for w in cut.extra["warnings"])
    sync_csv_file(store_url, _invoices(tmp_path / "inv.csv"), "invoices")
    with session_scope(store_url) as session:
        reconcile(session, date(2024, 3, 31))
    with session_scope(store_url) as session:
        placed = {
            payer: method
            for payer, method in session.execute(
                select(Payment.payer_name, PaymentAllocation.method).join(
                    PaymentAllocation, PaymentAllocation.payment_id == Payment.id
                )
            )
        }
        waiting = session.execute(
            select(Payment.payer_name, UnmatchedPayment.reason).join(
                UnmatchedPayment, UnmatchedPayment.payment_id == Payment.id
            )
        ).all()
        assert session.scalar(select(Payment.source_system).limit(1)) == STATEMENT_SOURCE
    assert placed == {
        "Смирнова Анна Сергеевна": "invoice_amount_name",
        "Орлов Иван Петрович": "invoice_amount_name",
    }
    assert [payer for payer, _ in waiting] == ["Кузнецов Олег Викторович"]
    assert "is not its customer" in waiting[0][1]
