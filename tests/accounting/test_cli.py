"""`hub receivables match/export` and `hub inspect statement` on real files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.bank_statement import render_statement
from hub.cli import main
from tests.accounting.builders import INN_A, INN_B, OUR_ACCOUNT, header, incoming


def _invoices_csv(path: Path) -> Path:
    rows = [
        ["Номер", "Дата", "Срок оплаты", "Сумма", "ИНН", "Контрагент"],
        ["0000-000128", "01.03.2024", "11.03.2024", "1000,00", INN_A, "Ромашка"],
        ["0000-000129", "02.03.2024", "12.03.2024", "500,00", INN_A, "Ромашка"],
        ["77", "02.03.2024", "12.03.2024", "800,00", INN_B, "Лютик"],
        ["78", "2024-03-05", "2024-03-01", "10", INN_B, "due before issue"],
    ]
    with open(path, "w", encoding="cp1251", newline="") as fh:
        csv.writer(fh, delimiter=";").writerows(rows)
    return path


def _statement(path: Path) -> Path:
    docs = [
        incoming("1", "1200.00", "Оплата по счетам № 128, 129"),
        incoming("2", "800.00", "оплата", payer_inn=INN_B, day="06.03.2024"),
        incoming("3", "50.00", "за услуги", payer_inn=INN_B, day="07.03.2024"),
        incoming("4", "70.00", "по сч. 128", payer_inn=INN_A, day="20.03.2024"),
    ]
    path.write_bytes(render_statement(header(), [], docs, "Windows"))
    return path


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh, delimiter=";"))


def test_match_on_files_writes_one_row_per_allocation_or_unmatched_payment(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        main,
        [
            "receivables",
            "match",
            "--invoices",
            str(_invoices_csv(tmp_path / "inv.csv")),
            "--payments",
            str(_statement(tmp_path / "kl_to_1c.txt")),
            "--as-of",
            "2024-03-10",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "due date 2024-03-01 is before the issue date" in result.output  # the bad invoice row is named
    rows = _read(out)
    placed = [(r["invoice_number"], r["allocated"], r["method"]) for r in rows]
    assert placed == [
        ("0000-000128", "1000.00", "purpose_number"),
        ("0000-000129", "200.00", "purpose_number"),
        ("77", "800.00", "tax_id_amount"),
        ("", "50.00", "unmatched"),
    ]  # the payment of 20.03 is after the as-of date
    assert "no open invoice" in rows[-1]["detail"]


def test_match_reads_payments_csv_and_fifo_switch(tmp_path: Path) -> None:
    payments = tmp_path / "payments.csv"
    payments.write_text(
        f"date,amount,inn,payer,purpose\n2024-03-06,1300.00,{INN_A},Ромашка,аванс\n", encoding="utf-8"
    )
    invoices = _invoices_csv(tmp_path / "inv.csv")
    for flag, expected in (("--no-fifo", ["unmatched"]), ("--fifo", ["fifo", "fifo"])):
        out = tmp_path / f"out{flag}.csv"
        result = CliRunner().invoke(
            main,
            [
                "receivables",
                "match",
                "--invoices",
                str(invoices),
                "--payments",
                str(payments),
                flag,
                "-o",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        assert [r["method"] for r in _read(out)] == expected


def test_inspect_statement_prints_payments_and_quarantine_reasons(tmp_path: Path) -> None:
    raw = render_statement(
        header(), [], [incoming("1", "10.00", "по сч. 1"), incoming("2", "x", "по сч. 2")], "DOS"
    )
    path = tmp_path / "st.txt"
    cut = "СекцияДокумент=Платежное поручение\r\nНомер=3\r\nКонецФайла".encode("cp866")
    path.write_bytes(raw.replace("КонецФайла".encode("cp866"), cut))
    result = CliRunner().invoke(main, ["inspect", "statement", str(path), "--account", OUR_ACCOUNT])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines[0]["quarantine"].startswith("section opened at line")
    assert (
        lines[1]["payer_tax_id"] == INN_A
        and lines[1]["amount"] == "10.00"
        and lines[1]["purpose"] == "по сч. 1"
    )
    assert "amount of money" in lines[2]["quarantine"]


def test_import_csv_then_export_the_aging_report_and_queue(
    sqlite_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import date

    from hub.receivables.ledger import reconcile
    from hub.store.db import session_scope

    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_store)
    payments = tmp_path / "payments.csv"
    payments.write_text(
        "id;Дата;Сумма;ИНН;Плательщик;Назначение платежа\n"
        f"b1;05.03.2024;1000,00;{INN_A};Ромашка;Оплата по счету № 128\n"
        "b2;06.03.2024;42,00;;Иванов И.И.;перевод\n",
        encoding="cp1251",
    )
    runner = CliRunner()
    imported = runner.invoke(
        main,
        [
            "receivables",
            "import-csv",
            "--invoices",
            str(_invoices_csv(tmp_path / "inv.csv")),
            "--payments",
            str(payments),
        ],
    )
    assert imported.exit_code == 0, imported.output
    counts = [json.loads(line) for line in imported.output.splitlines()]
    assert [(c["written"], c["quarantined"]) for c in counts] == [(3, 1), (2, 0)]
    with session_scope(sqlite_store) as session:
        reconcile(session, date(2024, 4, 1))
    out = tmp_path / "report"
    exported = runner.invoke(main, ["receivables", "export", "--as-of", "2024-04-01", "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    aging = {r["number"]: r for r in _read(out / "aging.csv")}
    assert (aging["0000-000128"]["outstanding"], aging["0000-000128"]["status"]) == ("0.00", "paid")
    assert (aging["77"]["outstanding"], aging["77"]["aging_bucket"]) == ("800.00", "1-30")
    assert (aging["0000-000129"]["days_overdue"], aging["0000-000129"]["aging_bucket"]) == ("20", "1-30")
    [queued] = _read(out / "unmatched.csv")
    assert queued["amount"] == "42.00" and "ИНН" in queued["reason"]
    by_client = _read(out / "aging_by_client.csv")
    assert {r["client"]: r["outstanding"] for r in by_client} == {"Лютик": "800.00", "Ромашка": "500.00"}
