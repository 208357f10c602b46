"""The website's leads: its JSON API (cursor-paged), recorded API pages for offline use,
CSV exports (the site's own, and the form tools' and CRMs' of connectors/lead_exports.py), and the
HMAC signature of its webhook posts.

The site API, as the site documents it:
  GET {base}/api/v1/leads?since=<ISO 8601>&limit=<n>[&cursor=<opaque>]
  Authorization: Bearer <token>
  200 {"leads": [{id, name, phone, email, ..., submitted_at}, ...], "next_cursor": "..." | null}
Leads come in ascending (submitted_at, id) order; `since` is inclusive.

Webhook posts carry `X-Hub-Timestamp: <unix seconds>` and
`X-Hub-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + raw body>`."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from connectors.errors import PermanentSourceError
from connectors.http import HttpClient
from connectors.lead_exports import (
    DateOrder,
    ExportFormat,
    LeadMapping,
    RowReader,
    decide_day_first,
    recognize,
    zone_for,
)
from connectors.text import detect_file_encoding

LEADS_PATH = "api/v1/leads"
# Key of the record read_leads_csv yields for a row the csv module could not read.
UNREADABLE = "_unreadable"
SIGNATURE_HEADER = "X-Hub-Signature"
TIMESTAMP_HEADER = "X-Hub-Timestamp"


@dataclass
class LeadsPage:
    leads: list[Any]
    next_cursor: str | None


class LeadsSource(Protocol):
    """Anything that yields the site's leads page by page (the API or a recording of it)."""

    def pages(self, since: str | None, cursor: str | None = None) -> Iterator[LeadsPage]: ...


class SiteLeadsApi:
    def __init__(
        self,
        base_url: str,
        api_token: str,
        *,
        page_size: int = 100,
        timeout_s: float = 30.0,
        verify_tls: bool = True,
        **http_options: Any,
    ) -> None:
        self.page_size = page_size
        self.http = HttpClient(
            base_url,
            source="site leads API",
            credential_setting="HUB_SITE__API_TOKEN",
            headers={"Authorization": f"Bearer {api_token}"},
            timeout_s=timeout_s,
            verify_tls=verify_tls,
            **http_options,
        )

    def pages(self, since: str | None, cursor: str | None = None) -> Iterator[LeadsPage]:
        seen_cursors: set[str] = set()
        while True:
            params: dict[str, Any] = {"limit": self.page_size}
            if since:
                params["since"] = since
            if cursor:
                params["cursor"] = cursor
            body = self.http.get_json(LEADS_PATH, params)
            page = parse_page(body)
            yield page
            if not page.next_cursor or page.next_cursor in seen_cursors:
                return
            seen_cursors.add(page.next_cursor)
            cursor = page.next_cursor


def parse_page(body: Any) -> LeadsPage:
    if not isinstance(body, dict) or not isinstance(body.get("leads"), list):
        raise PermanentSourceError(
            "site leads API answered without a 'leads' list: the API is not the documented v1 leads API"
        )
    next_cursor = body.get("next_cursor")
    return LeadsPage(body["leads"], str(next_cursor) if next_cursor else None)


class SiteLeadsSnapshot:
    """Recorded API pages (a JSON list of page bodies) replayed as if from the API; the
    `since` filter is applied as the API would."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def pages(self, since: str | None, cursor: str | None = None) -> Iterator[LeadsPage]:
        bodies = json.loads(self.path.read_text(encoding="utf-8"))
        start = int(cursor) if cursor else 0
        for index in range(start, len(bodies)):
            page = parse_page(bodies[index])
            if since:
                page.leads = [
                    r
                    for r in page.leads
                    if not isinstance(r, dict) or str(r.get("submitted_at", "")) >= since
                ]
            page.next_cursor = str(index + 1) if index + 1 < len(bodies) else None
            yield page


# CSV exports name columns in many ways; map the common ones onto the WebLead fields.
CSV_COLUMN_ALIASES = {
    "имя": "name",
    "фио": "name",
    "full_name": "name",
    "imię i nazwisko": "name",
    "телефон": "phone",
    "tel": "phone",
    "telefon": "phone",
    "phone_number": "phone",
    "e-mail": "email",
    "почта": "email",
    "mail": "email",
    "компания": "company",
    "firma": "company",
    "сообщение": "message",
    "comment": "message",
    "комментарий": "message",
    "форма": "form",
    "page": "page_url",
    "url": "page_url",
    "страница": "page_url",
    "date": "submitted_at",
    "дата": "submitted_at",
    "created_at": "submitted_at",
    "created": "submitted_at",
    "lead_id": "id",
}


@dataclass
class LeadsExport:
    """A CSV (or TSV) export of leads: how it is read — encoding, delimiter, the tool it came from
    (or the mapping file naming its columns), the order of its dates — and its rows."""

    path: Path
    encoding: str
    delimiter: str
    headers: list[str]
    fmt: ExportFormat | None
    order: DateOrder | None
    file_time: datetime
    zone: Any = None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.path.name,
            "format": self.fmt.title if self.fmt else "CSV with common column names",
            "encoding": self.encoding,
            "delimiter": {"\t": "tab"}.get(self.delimiter, self.delimiter),
        }
        if self.order is not None:
            out["dates"] = self.order.describe()
        return out

    def _generic(self, row: dict[str | None, Any]) -> dict[str, Any]:
        record = _record(row)
        if not (isinstance(record.get("submitted_at"), str) and record["submitted_at"].strip()):
            # No time of its own: the file's (the import says how many rows took it).
            record["submitted_at"] = self.file_time.isoformat()
            record["_time_from_file"] = True
        return record

    def rows(self, start_row: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
        """(row number, record) from `start_row` on, streamed (a million-row export is not held
        in memory); a missing `id` is derived from the row's content so that importing the same
        export twice writes nothing new."""
        reader_of = None
        if self.fmt is not None and self.order is not None:
            reader_of = RowReader(self.fmt, self.headers, self.order, self.zone, self.file_time)
        with open(self.path, encoding=self.encoding, errors="replace", newline="") as fh:
            reader = csv.DictReader(fh, delimiter=self.delimiter)
            row_number = 0
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    # One broken row (e.g. a cell over csv's 128 KiB limit) must not stop the import:
                    # it is handed on to be quarantined with the reason, and reading goes on.
                    row_number += 1
                    if row_number > start_row:
                        yield row_number, {UNREADABLE: f"row {row_number} is not readable CSV: {exc}"}
                    continue
                row_number += 1
                if row_number > start_row:
                    yield row_number, _with_id(reader_of.record(row) if reader_of else self._generic(row))


def open_leads_export(
    path: str | Path, mapping: LeadMapping | None = None, local_zone: str | None = None
) -> LeadsExport:
    """Look at an export before reading it: its encoding (UTF-8, UTF-16 with BOM, cp1251), its
    delimiter (tab, semicolon or comma), its header — a known tool's, or the mapping file's — and,
    for those, the order of its dates, decided once for the file from its rows."""
    path = Path(path)
    encoding = detect_file_encoding(path)
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        sample = fh.read(4096)
    counts = {d: sample.count(d) for d in ("\t", ";", ",")}
    delimiter = max(counts, key=lambda d: (counts[d], d == ","))
    header_line = next(csv.reader(io.StringIO(sample), delimiter=delimiter), [])
    headers = [h.strip().lstrip("\ufeff") for h in header_line]
    fmt = mapping.as_format() if mapping is not None else recognize(headers)
    file_time = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    export = LeadsExport(path, encoding, delimiter, headers, fmt, None, file_time)
    if fmt is None:
        return export
    export.zone = zone_for(fmt, mapping, local_zone)
    if mapping is not None and mapping.day_first is not None:
        export.order = DateOrder(mapping.day_first, "as the mapping file says")
        return export
    date_headers = [h for h in headers if fmt.columns.get(h.lower()) == "submitted_at"]
    export.order = decide_day_first(_dates(export, date_headers), fmt.day_first, fmt.title)
    return export


def _dates(export: LeadsExport, date_headers: list[str]) -> Iterator[tuple[int, str]]:
    """The date cells of the file, row by row: only read until one decides the order."""
    if not date_headers:
        return
    with open(export.path, encoding=export.encoding, errors="replace", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=export.delimiter)
        row = 0
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error:
                row += 1
                continue
            row += 1
            for header in date_headers:
                value = record.get(header)
                if value:
                    yield row, value
                    break


def read_leads_csv(
    path: str | Path, start_row: int = 0, mapping: LeadMapping | None = None, local_zone: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a leads export as (row number, record), from `start_row` on (see open_leads_export)."""
    return open_leads_export(path, mapping, local_zone).rows(start_row)


def _record(row: dict[str | None, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for column, value in row.items():
        if column is None:  # more cells than headers
            record["_extra_cells"] = value
            continue
        key = column.strip().lower()
        record[CSV_COLUMN_ALIASES.get(key, key)] = value
    return record


def _with_id(record: dict[str, Any]) -> dict[str, Any]:
    if not record.get("id"):
        # A time taken from the file (its mtime) must not make the same row a new lead later.
        skip = {"id", "_time_from_file", *(("submitted_at",) if record.get("_time_from_file") else ())}
        content = json.dumps(
            sorted((k, str(v)) for k, v in record.items() if k not in skip), ensure_ascii=False
        )
        record["id"] = "sha1:" + hashlib.sha1(content.encode("utf-8")).hexdigest()
    return record


def sign_webhook(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_webhook(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: float,
    replay_window_s: int,
) -> str | None:
    """None when the post is authentic and fresh, else the reason to refuse it."""
    if not secret:
        return "webhook secret is not configured (HUB_SITE__WEBHOOK_SECRET)"
    if not signature_header or not timestamp_header:
        return f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header"
    try:
        timestamp = int(timestamp_header)
    except ValueError:
        return f"{TIMESTAMP_HEADER} is not a unix time"
    expected = sign_webhook(secret, timestamp, body)
    # Constant-time comparison: the time taken says nothing about how much matched.
    if not hmac.compare_digest(expected.encode(), signature_header.strip().encode()):
        return "signature does not match the body"
    if abs(now - timestamp) > replay_window_s:
        return f"timestamp is outside the {replay_window_s}s replay window"
    return None
