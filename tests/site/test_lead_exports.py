"""Lead exports of the common form tools and CRMs (tests/site/samples/README.md): each told from
its header, its dates read in the file's own order (said in the output), the file's time taken
when a row has none, a row with neither phone nor email refused for that reason, and a mapping
file for any other export."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connectors.lead_exports import LeadMapping, parse_export_datetime
from connectors.site import open_leads_export
from hub.cli import main
from hub.ingest.site import sync_csv_dir, sync_csv_file
from hub.store.cursors import save_cursor
from hub.store.db import session_scope
from hub.store.models import Lead, QuarantineRecord

SAMPLES = Path(__file__).parent / "samples"
MOSCOW = "Europe/Moscow"

# file: (tool, the date order the output says, leads, refused)
EXPECTED = {
    "google-forms-responses.csv": (
        "Google Forms",
        "month/day (decided by row 3: '3/25/2024 10:03:10')",
        3,
        1,
    ),
    "google-forms-ambiguous.csv": ("Google Forms", "month/day (no date of the file decides it", 2, 0),
    "google-forms-download.csv": ("Google Forms", "unambiguous", 2, 0),
    "meta-leads-center.csv": ("Meta Leads Center", "month/day (decided by row 2: '03/14/2024, 09:05')", 2, 0),
    "meta-lead-ads.tsv": ("Meta lead ads download", "unambiguous", 1, 1),
    "tilda-leads.csv": ("Tilda", "unambiguous", 2, 0),
    "flamingo-inbound.csv": ("Contact Form 7 (Flamingo)", "unambiguous", 2, 0),
    "bitrix24-leads.csv": ("Bitrix24", "unambiguous", 2, 1),
    "amocrm-export.csv": ("amoCRM", "unambiguous", 2, 0),
}


def _leads(url: str) -> dict[str, Lead]:
    with session_scope(url) as session:
        return {lead.name or "": lead for lead in session.scalars(select(Lead))}


def test_every_sample_is_described() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    names = [p.name for p in SAMPLES.iterdir() if p.suffix in (".csv", ".tsv")]
    assert sorted(names) == sorted([*EXPECTED, "custom-export.csv"])
    assert all(f"`{name}`" in readme for name in names)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_tool_is_told_from_its_header_and_its_rows_become_leads(
    name: str, sqlite_store: str, tmp_path: Path
) -> None:
    tool, dates, leads, refused = EXPECTED[name]
    export = open_leads_export(SAMPLES / name, local_zone=MOSCOW)
    assert export.describe()["format"] == tool
    assert export.describe()["dates"].startswith(dates)
    stats = sync_csv_file(sqlite_store, SAMPLES / name, "RU", local_zone=MOSCOW)
    assert (stats.written, stats.quarantined) == (leads, refused)
    assert stats.extra["csv_files"][0].startswith(name) and tool in stats.extra["csv_files"][0]
    again = sync_csv_file(sqlite_store, SAMPLES / name, "RU", local_zone=MOSCOW)
    assert again.rows_in == 0  # read to its end already


def test_google_forms_rows_in_the_forms_time_zone_with_answers_and_the_unreachable_row_refused(
    sqlite_store: str,
) -> None:
    sync_csv_file(sqlite_store, SAMPLES / "google-forms-responses.csv", "RU", local_zone=MOSCOW)
    leads = _leads(sqlite_store)
    anna = leads["Anna Smith"]
    assert (anna.phone_e164, anna.email) == ("+12025550143", "anna.smith@example.com")
    assert anna.submitted_at.replace(tzinfo=UTC) == datetime(2024, 3, 4, 6, 15, 2, tzinfo=UTC)  # 9:15 Moscow
    assert anna.message == "What do you need?: A quote for 20 units"
    assert leads["Олег Кузнецов"].phone_e164 == "+79165550177"
    with session_scope(sqlite_store) as session:
        [refused] = session.scalars(select(QuarantineRecord)).all()
    assert refused.source_ref == "google-forms-responses.csv:4" and "phone or an email" in refused.error


def test_dates_each_tool_writes() -> None:
    moscow = open_leads_export(SAMPLES / "tilda-leads.csv", local_zone=MOSCOW).zone
    cases = [
        ("2024/03/05 2:22:10 PM GMT+3", False, datetime(2024, 3, 5, 11, 22, 10, tzinfo=UTC)),
        ("03/05/2024, 14:22", False, datetime(2024, 3, 5, 11, 22, tzinfo=UTC)),
        ("3/5/2024 14:22:10", True, datetime(2024, 5, 3, 11, 22, 10, tzinfo=UTC)),
        ("05.03.2024 14:22:10", False, datetime(2024, 3, 5, 11, 22, 10, tzinfo=UTC)),  # dots: day first
        ("2024-03-05T13:22:10+00:00", True, datetime(2024, 3, 5, 13, 22, 10, tzinfo=UTC)),
        ("2024-03-05 14:22", True, datetime(2024, 3, 5, 11, 22, tzinfo=UTC)),
        ("12/31/2024 12:05:00 AM", False, datetime(2024, 12, 30, 21, 5, tzinfo=UTC)),
    ]
    for text, day_first, expected in cases:
        assert parse_export_datetime(text, day_first, moscow) == expected, text
    with pytest.raises(ValueError, match="not a date"):
        parse_export_datetime("вчера", True, moscow)


def test_day_first_is_decided_by_the_file_not_the_row(sqlite_store: str, tmp_path: Path) -> None:
    path = tmp_path / "uk-form.csv"
    path.write_text(
        "Timestamp,Email Address,Full Name\n"
        "04/03/2024 09:00:00,a@example.com,A\n"  # read 4 March, because of the next row
        "25/03/2024 10:00:00,b@example.com,B\n",
        encoding="utf-8",
    )
    export = open_leads_export(path, local_zone="UTC")
    assert export.describe()["dates"] == "day/month (decided by row 2: '25/03/2024 10:00:00')"
    sync_csv_file(sqlite_store, path, "GB", local_zone="UTC")
    leads = _leads(sqlite_store)
    assert leads["A"].submitted_at.replace(tzinfo=UTC) == datetime(2024, 3, 4, 9, tzinfo=UTC)


def test_a_row_without_a_time_takes_the_files(sqlite_store: str, tmp_path: Path) -> None:
    path = tmp_path / "flamingo.csv"
    path.write_bytes((SAMPLES / "flamingo-inbound.csv").read_bytes())
    stamp = datetime(2024, 3, 6, 8, 30, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    stats = sync_csv_file(sqlite_store, path, "PL")
    assert any("file's time" in w for w in stats.extra["warnings"])
    ewa = _leads(sqlite_store)["Ewa Kowalska"]
    assert ewa.submitted_at.replace(tzinfo=UTC) == datetime(2024, 3, 6, 8, 30, tzinfo=UTC)
    # Touching the file later (and reading it again from the start) makes no second lead of it.
    os.utime(path, (stamp + 3600, stamp + 3600))
    with session_scope(sqlite_store) as session:
        save_cursor(session, "site_csv", {})
    assert sync_csv_file(sqlite_store, path, "PL").written == 0


def test_crm_exports_compose_names_and_take_the_first_phone_and_email(sqlite_store: str) -> None:
    sync_csv_file(sqlite_store, SAMPLES / "bitrix24-leads.csv", "RU", local_zone=MOSCOW)
    sync_csv_file(sqlite_store, SAMPLES / "amocrm-export.csv", "RU", local_zone=MOSCOW)
    leads = _leads(sqlite_store)
    assert leads["Смирнов Алексей Петрович"].phone_e164 == "+79265551020"
    volkova = leads["Ирина Волкова"]
    assert (volkova.phone_e164, volkova.email, volkova.source_ref) == (
        "+74955553040",
        "volkova@example.ru",
        "102",
    )
    assert leads["Николай Орлов"].phone_e164 == "+79055557788"
    assert leads["Елена Морозова"].submitted_at.replace(tzinfo=UTC) == datetime(
        2024, 3, 7, 13, 45, tzinfo=UTC
    )


def test_meta_lead_ads_download_in_utf16_with_its_phone_prefix(sqlite_store: str) -> None:
    sync_csv_file(sqlite_store, SAMPLES / "meta-lead-ads.tsv", "RU")
    maria = _leads(sqlite_store)["Мария Соколова"]
    assert (maria.phone_e164, maria.source_ref, maria.utm_source, maria.form) == (
        "+79035551122",
        "l:1000000000000001",
        "facebook",
        "Spring form",
    )


def test_import_leads_with_a_mapping_file_and_only_the_file_given(
    sqlite_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_DATABASE_URL", sqlite_store)
    folder = tmp_path / "exports"
    folder.mkdir()
    target = folder / "custom-export.csv"
    target.write_bytes((SAMPLES / "custom-export.csv").read_bytes())
    (folder / "other.csv").write_bytes((SAMPLES / "tilda-leads.csv").read_bytes())  # not imported
    runner = CliRunner()
    args = ["import-leads", str(target), "--map", str(SAMPLES / "custom-export.map.yaml")]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["written"] == 2
    again = runner.invoke(main, args)
    assert json.loads(again.output)["rows_in"] == 0
    leads = _leads(sqlite_store)
    assert set(leads) == {"Виктор", "Дарья"}
    assert leads["Виктор"].submitted_at.replace(tzinfo=UTC) == datetime(2024, 3, 5, 11, 22, tzinfo=UTC)
    assert leads["Дарья"].utm_source == "выставка"
    inspected = runner.invoke(
        main, ["inspect", "leads-csv", str(target), "--map", str(SAMPLES / "custom-export.map.yaml")]
    )
    header = json.loads(inspected.output.splitlines()[0])
    assert header["format"] == "mapping file" and header["dates"].startswith("day/month")
    row = json.loads(inspected.output.splitlines()[1])
    assert row["match_on"] == {"phone_e164": "+79165550011", "email": None}


def test_a_bad_mapping_file_says_what_to_fix(tmp_path: Path) -> None:
    bad = tmp_path / "map.yaml"
    bad.write_text("columns:\n  Клиент: customer\n", encoding="utf-8")
    with pytest.raises(ValueError, match="customer is not a lead field"):
        LeadMapping.load(bad)
    result = CliRunner().invoke(
        main, ["inspect", "leads-csv", str(SAMPLES / "custom-export.csv"), "--map", str(bad)]
    )
    assert result.exit_code != 0 and "not a lead field" in result.output


def test_a_folder_of_exports_of_different_tools(sqlite_store: str, tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    for name in ("google-forms-responses.csv", "meta-lead-ads.tsv", "bitrix24-leads.csv"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    stats = sync_csv_dir(sqlite_store, folder, "RU", MOSCOW)
    assert (stats.written, stats.quarantined, stats.extra["files"]) == (6, 3, 3)
    assert len(stats.extra["csv_files"]) == 3


def test_the_sites_own_export_without_a_time_column_takes_the_files(
    sqlite_store: str, tmp_path: Path
) -> None:
    path = tmp_path / "old-landing.csv"
    path.write_text("Имя;Телефон\nБез даты;+79161234567\n", encoding="utf-8")
    stamp = datetime(2024, 3, 6, 8, 30, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    stats = sync_csv_file(sqlite_store, path, "RU")
    assert stats.written == 1 and "1 row(s) have no time" in stats.extra["warnings"][0]
    assert _leads(sqlite_store)["Без даты"].submitted_at.replace(tzinfo=UTC) == datetime(
        2024, 3, 6, 8, 30, tzinfo=UTC
    )
