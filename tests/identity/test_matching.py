"""Pairwise matching and file deduplication: strong keys, the guards against shared phones and
role mailboxes, fuzzy names with corroboration, the cluster-level check, `hub dedupe`."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner

from hub.cli import main
from hub.identity.dedupe import blocking_keys, cluster_records
from hub.identity.match import MatchThresholds, compare, prepare_record

T = MatchThresholds()


def rec(ref: int, **fields: str) -> object:
    return prepare_record(ref, **fields)  # type: ignore[arg-type]


def test_same_phone_in_different_formats_links() -> None:
    a = prepare_record(1, name="Иванов Иван", phone="+7 (999) 123-45-67")
    b = prepare_record(2, name="IVANOV Ivan", phone="89991234567")
    link = compare(a, b, T)
    assert link is not None and link.reason == "same phone"


def test_switchboard_does_not_link_different_people() -> None:
    a = prepare_record(1, name="Петрова Мария", phone="+7 495 100-00-00")
    b = prepare_record(2, name="Сидоров Пётр", phone="8 (495) 100-00-00")
    assert compare(a, b, T) is None
    # Same switchboard, different extensions: two people even without names.
    c = prepare_record(3, phone="+7 495 100-00-00 доб. 12")
    d = prepare_record(4, phone="+7 495 100-00-00 доб. 34")
    assert compare(c, d, T) is None


def test_role_mailbox_needs_the_same_name() -> None:
    a = prepare_record(1, name="Петрова Мария", email="info@romashka.ru")
    b = prepare_record(2, name="Сидоров Пётр", email="INFO@romashka.ru")
    assert compare(a, b, T) is None
    c = prepare_record(3, name="Мария Петрова", email="info@romashka.ru")
    link = compare(a, c, T)
    assert link is not None and "shared mailbox" in link.reason


def test_a_phone_known_to_be_shared_links_nameless_records_no_more() -> None:
    a = prepare_record(1, phone="+79991234567")
    b = prepare_record(2, phone="89991234567")
    assert compare(a, b, T) is not None
    assert compare(a, b, T, shared={"+79991234567"}) is None


def test_personal_inn_links_but_company_inn_only_corroborates() -> None:
    a = prepare_record(1, name="Кравцов Андрей", tax_id="500100732259")
    b = prepare_record(2, name="Andrey Kravtsov", tax_id="ИНН 500100732259")
    assert compare(a, b, T).reason == "same personal ИНН"  # type: ignore[union-attr]
    c = prepare_record(3, name="Кравцов Андрей", tax_id="7707083893")
    d = prepare_record(4, name="Соколова Анна", tax_id="7707083893")
    assert compare(c, d, T) is None


def test_a_namesake_is_not_linked_by_name_alone() -> None:
    a = prepare_record(1, name="Иванов Иван", phone="+79991110000")
    b = prepare_record(2, name="Иванов Иван", phone="+79992220000")
    assert compare(a, b, T) is None
    c = prepare_record(3, name="Ivanov Ivan", phone="+79993330000", company="ООО «Ромашка»")
    d = prepare_record(4, name="Иван Иванов", phone="+79994440000", company="Romashka LLC")
    link = compare(c, d, T)
    assert link is not None and "same company" in link.reason


def test_different_patronymics_are_different_people() -> None:
    a = prepare_record(1, name="Иванов Иван Петрович", company="Ромашка")
    b = prepare_record(2, name="Иванов Иван Сергеевич", company="Ромашка")
    assert compare(a, b, T) is None


def test_cluster_check_stops_chaining_through_a_nameless_record() -> None:
    # Each of the two people links to the nameless record by a key; together they must not.
    records = [
        prepare_record(1, name="Петрова Мария", phone="+79161234567"),
        prepare_record(2, phone="+79161234567", email="m.p@corp.ru"),
        prepare_record(3, name="Сидоров Пётр", email="m.p@corp.ru"),
    ]
    result = cluster_records(records, T)
    assert result.cluster_of[0] != result.cluster_of[2]
    assert result.links_refused_by_cluster_check == 1


def test_blocking_keys_survive_a_typo_in_one_word() -> None:
    a = prepare_record(1, name="Кузнецов Алексей")
    b = prepare_record(2, name="Kuznetsof Aleksey")
    assert set(blocking_keys(a)) & set(blocking_keys(b))


def test_hub_dedupe_writes_cluster_and_reason(tmp_path: Path) -> None:
    source = tmp_path / "contacts.csv"
    rows = [
        ["ФИО", "Телефон", "E-mail", "Компания", "Город"],
        ["Иванов Иван Иванович", "+7 (999) 123-45-67", "ivan@mail.ru", "ООО «Ромашка»", "Москва"],
        ["IVANOV Ivan", "89991234567", "", "Romashka LLC", "Moscow"],
        ["Петрова Мария", "+7 495 100-00-00", "info@romashka.ru", "ООО Ромашка", "Москва"],
        ["Сидоров Пётр", "8 (495) 100-00-00", "info@romashka.ru", "ООО Ромашка", "Москва"],
        ["Мария Петрова", "", "MARIA.PETROVA@gmail.com", "", ""],
        ["Petrova Maria", "+7 916 555 44 33", "maria.petrova@gmail.com", "Ромашка", "Москва"],
    ]
    # Windows-1251 and semicolons, as Excel saves a Russian spreadsheet.
    with source.open("w", encoding="cp1251", newline="") as handle:
        csv.writer(handle, delimiter=";").writerows(rows)
    output = tmp_path / "out.csv"
    result = CliRunner().invoke(main, ["dedupe", str(source), "-o", str(output)])
    assert result.exit_code == 0, result.output
    with output.open(encoding="utf-8-sig", newline="") as handle:
        written = list(csv.DictReader(handle, delimiter=";"))
    clusters = [row["cluster_id"] for row in written]
    # Мария Петрова of Ромашка writing from info@ and later from her own gmail is one person;
    # Сидоров on the same switchboard and info@ is not.
    assert clusters == ["1", "1", "3", "4", "3", "3"]
    assert written[1]["match_reason"] == "row 1: same phone"
    assert written[5]["match_reason"].startswith("row 3: similar name (100) and same company")
    assert written[4]["match_reason"] == "row 6: same email"
    assert written[0]["match_reason"] == "" and written[3]["match_reason"] == ""
    assert written[0]["ФИО"] == "Иванов Иван Иванович"  # the original columns untouched


def test_hub_dedupe_columns_option_and_its_errors(tmp_path: Path) -> None:
    source = tmp_path / "list.csv"
    source.write_text("client,tel,dob\nJan Kowalski,601 234 567,1980-01-02\nKowalski Jan,+48601234567,\n")
    output = tmp_path / "out.csv"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "dedupe",
            str(source),
            "-o",
            str(output),
            "--columns",
            "name=client,phone=tel",
            "--columns",
            "extra=dob",
        ],
        env={"HUB_DEFAULT_REGION": "PL"},
    )
    assert result.exit_code == 0, result.output
    assert [r["cluster_id"] for r in csv.DictReader(output.open(encoding="utf-8-sig"))] == ["1", "1"]
    bad = runner.invoke(main, ["dedupe", str(source), "-o", str(output), "--columns", "name=ФИО"])
    assert bad.exit_code == 2 and "not in the file" in bad.output
    unknown = runner.invoke(main, ["dedupe", str(source), "-o", str(output), "--columns", "nick=client"])
    assert unknown.exit_code == 2 and "FIELD=COLUMN" in unknown.output
