"""CSV exports of website leads: delimiters, encodings, header spellings, files that grow."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from hub.ingest.site import sync_csv_dir
from hub.store.db import session_scope
from hub.store.models import Lead, QuarantineRecord


def _leads(url: str) -> dict[str, Lead]:
    with session_scope(url) as session:
        return {lead.name or "": lead for lead in session.scalars(select(Lead))}


def test_semicolon_cp1251_export_with_russian_headers(sqlite_store: str, tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    text = (
        "Имя;Телефон;E-mail;Дата\r\n"
        "Сергей Петров;8 (916) 123-45-67;;2026-11-20 10:00\r\n"
        "Ольга;;OLGA@Mail.RU ;2026-11-20 11:00\r\n"
    )
    (folder / "export.csv").write_bytes(text.encode("cp1251"))
    stats = sync_csv_dir(sqlite_store, folder, "RU")
    assert stats.written == 2
    leads = _leads(sqlite_store)
    assert leads["Сергей Петров"].phone_e164 == "+79161234567"
    assert leads["Ольга"].email == "olga@mail.ru"


def test_grown_file_is_read_from_where_it_stopped(sqlite_store: str, tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    path = folder / "leads.csv"
    path.write_text("name,phone,submitted_at\nA,+48601234567,2026-11-20T10:00:00Z\n", encoding="utf-8")
    assert sync_csv_dir(sqlite_store, folder, "PL").written == 1
    with path.open("a", encoding="utf-8") as fh:
        fh.write("B,+48601234568,2026-11-20T11:00:00Z\n")
    again = sync_csv_dir(sqlite_store, folder, "PL")
    assert again.rows_in == 1 and again.written == 1
    assert sync_csv_dir(sqlite_store, folder, "PL").rows_in == 0
    assert set(_leads(sqlite_store)) == {"A", "B"}


def test_bad_rows_are_quarantined_with_row_reference(sqlite_store: str, tmp_path: Path) -> None:
    folder = tmp_path / "csv"
    folder.mkdir()
    (folder / "x.csv").write_text(
        "name,phone,email,submitted_at\n"
        "ok,+79161234567,,2026-11-20T10:00:00Z\n"
        "no contact,,,2026-11-20T10:00:00Z\n"
        "bad date,+79161234568,,yesterday\n",
        encoding="utf-8",
    )
    stats = sync_csv_dir(sqlite_store, folder, "RU")
    assert stats.written == 1 and stats.quarantined == 2
    with session_scope(sqlite_store) as session:
        refs = sorted(q.source_ref or "" for q in session.scalars(select(QuarantineRecord)))
    assert refs == ["x.csv:2", "x.csv:3"]
