"""Website leads into the store by three ways: the site's API (cursor-paged), the webhook
inbox (posts the receiver stored), and CSV exports dropped in a folder. Each commits its
rows together with its cursor, so a crash and rerun neither loses nor repeats a lead."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.lead_exports import LeadMapping
from connectors.site import LeadsSource, open_leads_export
from connectors.text import decode_bytes
from hub.ingest.stats import IngestStats, note_http_usage
from hub.leads import write_web_leads
from hub.settings import variable_of
from hub.store.cursors import load_cursor, save_cursor
from hub.store.db import session_scope
from hub.store.models import WebhookInbox
from hub.store.quarantine import quarantine
from hub.store.upsert import upsert
from hub.timeutil import utcnow

API_SOURCE = "site_api"
WEBHOOK_SOURCE = "site_webhook"
CSV_SOURCE = "site_csv"
WEBHOOK_ENDPOINT = "site/leads"
CSV_BATCH_ROWS = 2000


def sync_site_api(database_url: str, source: LeadsSource, default_region: str) -> IngestStats:
    """Read the API from the saved cursor. The cursor holds the high-water mark of a
    finished sync and, while one is under way, the page to resume from."""
    stats = IngestStats()
    with session_scope(database_url) as session:
        cursor = load_cursor(session, API_SOURCE)
    since = cursor.get("run_since", cursor.get("since"))
    max_seen = cursor.get("max_seen", cursor.get("since"))
    pages = 0
    for page in source.pages(since, cursor.get("page_cursor")):
        pages += 1
        with session_scope(database_url) as session:
            stats.merge(write_web_leads(session, API_SOURCE, page.leads, default_region))
            for record in page.leads:
                stamp = record.get("submitted_at") if isinstance(record, dict) else None
                if isinstance(stamp, str) and (max_seen is None or stamp > max_seen):
                    max_seen = stamp
            if page.next_cursor:
                state = {
                    "since": cursor.get("since"),
                    "run_since": since,
                    "page_cursor": page.next_cursor,
                    "max_seen": max_seen,
                }
            else:
                # `since` is inclusive: the boundary leads come again and are skipped by key.
                state = {"since": max_seen}
            save_cursor(session, API_SOURCE, state)
    stats.extra["pages"] = pages
    note_http_usage(stats, source)
    return stats


@dataclass(frozen=True)
class WebhookPost:
    """An authenticated post, as the receiver hands it to the inbox."""

    body: bytes
    timestamp: int  # the signed X-Hub-Timestamp
    headers: dict[str, str]
    endpoint: str = WEBHOOK_ENDPOINT


def inbox_key(timestamp: int, body: bytes) -> str:
    """The digest of what the signature covers: a replay has the same key however its headers
    are spelled (whitespace around the signature, leading zeros in the timestamp)."""
    return hashlib.sha256(f"{timestamp}.".encode() + body).hexdigest()


def store_webhook_posts(session: Session, posts: Sequence[WebhookPost]) -> list[int | None]:
    """Stage posts in the inbox, raw bytes as received, in the caller's transaction. Per post
    its inbox id, or None for a replay (stored before, or earlier in `posts`)."""
    keys = [inbox_key(post.timestamp, post.body) for post in posts]
    now = utcnow()
    rows = {}
    for key, post in zip(keys, posts, strict=True):
        rows.setdefault(
            key,
            {
                "endpoint": post.endpoint,
                "dedup_key": key,
                "raw": post.body,
                "headers": post.headers,
                "received_at": now,
            },
        )
    # In key order: concurrent transactions then take the unique index's locks in one order.
    ordered = [rows[key] for key in sorted(rows)]
    stored = upsert(
        session,
        WebhookInbox,
        ordered,
        key=["dedup_key"],
        update=[],
        returning=("dedup_key", "id"),
    )
    new_ids = dict(stored)
    return [new_ids.pop(key, None) for key in keys]


def accept_webhook(
    database_url: str, body: bytes, headers: dict[str, str], timestamp: int, endpoint: str = WEBHOOK_ENDPOINT
) -> int | None:
    """Store one authenticated post durably (its own transaction); a replay is stored once.
    Returns the inbox id, or None for a replay."""
    with session_scope(database_url) as session:
        return store_webhook_posts(session, [WebhookPost(body, timestamp, headers, endpoint)])[0]


def parse_post(raw: bytes | str, content_type: str | None) -> tuple[list[Any], str | None]:
    """The lead records of a post and, when it has none to give, why (for the quarantine).
    Bytes are decoded by the project's decoder (connectors.text: a BOM, else UTF-8 when they are
    UTF-8, else the charset the Content-Type declares, else Windows-1251); bytes that are not
    text in the encoding chosen are refused, not read with replacement characters."""
    if isinstance(raw, str):  # posts stored before the inbox kept bytes
        text = raw
    else:
        declared = _declared_charset(content_type)
        decoded = decode_bytes(raw, declared)
        try:
            raw.decode(decoded.encoding)
        except UnicodeDecodeError as exc:
            return [], (
                f"webhook body is not text: byte {exc.start} ({raw[exc.start : exc.start + 1]!r}) is not "
                f"{decoded.encoding} (Content-Type: {content_type!r}; {decoded.note or 'read by content'})"
            )
        text = decoded.text
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], f"webhook body is not JSON: {exc}"
    except RecursionError:
        # Hostile nesting must not leave the post unprocessed, blocking every later run.
        return [], "webhook body is nested too deeply"
    if isinstance(body, dict) and isinstance(body.get("leads"), list):
        return body["leads"], None
    if isinstance(body, dict):
        return [body], None
    return [], 'webhook body is neither a lead nor {"leads": [...]}'


def _declared_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    message = Message()
    message["content-type"] = content_type
    return message.get_content_charset()


def sync_webhook_inbox(
    database_url: str, default_region: str, batch: int = 500, max_records: int | None = None
) -> IngestStats:
    """Turn stored webhook posts into leads; each post is marked processed in the same
    transaction as its leads. A post with more than `max_records` leads (stored before the
    receiver refused such posts) is quarantined whole."""
    stats = IngestStats()
    while True:
        with session_scope(database_url) as session:
            posts = session.scalars(
                select(WebhookInbox)
                .where(WebhookInbox.endpoint == WEBHOOK_ENDPOINT, WebhookInbox.processed_at.is_(None))
                .order_by(WebhookInbox.id)
                .limit(batch)
            ).all()
            if not posts:
                return stats
            for post in posts:
                records = _records_in_post(session, post, max_records)
                if records:
                    stats.merge(write_web_leads(session, WEBHOOK_SOURCE, records, default_region))
                post.processed_at = utcnow()
            stats.extra["posts"] = stats.extra.get("posts", 0) + len(posts)


def _records_in_post(session: Session, post: WebhookInbox, max_records: int | None) -> list[Any]:
    stored: bytes | str = bytes(post.raw) if post.raw is not None else (post.body or "")
    records, problem = parse_post(stored, (post.headers or {}).get("content-type"))
    if problem is None and max_records is not None and len(records) > max_records:
        setting = variable_of("site", "webhook_max_records")
        problem = f"webhook post carries {len(records)} leads, more than {setting} ({max_records})"
    if problem is not None:
        quarantine(session, WEBHOOK_SOURCE, stored, problem, f"inbox:{post.id}")
        return []
    return records


def sync_csv_dir(
    database_url: str, csv_dir: str | Path, default_region: str, local_zone: str | None = None
) -> IngestStats:
    """Import every *.csv (and *.tsv) in the folder; a file that grew is read from the row it
    stopped at. `local_zone`: the zone of times a form tool writes without one (the hub's)."""
    stats = IngestStats()
    folder = Path(csv_dir)
    if not folder.is_dir():
        return stats
    files = 0
    for path in sorted([*folder.glob("*.csv"), *folder.glob("*.tsv")]):
        files += 1
        stats.merge(sync_csv_file(database_url, path, default_region, local_zone=local_zone))
    stats.extra["files"] = files
    return stats


def sync_csv_file(
    database_url: str,
    path: Path,
    default_region: str,
    mapping: LeadMapping | None = None,
    local_zone: str | None = None,
) -> IngestStats:
    """One export (a known tool's, or named by a mapping file), from the row its cursor is at; the
    stats say how it was read (tool, date order) and how many rows took the file's time."""
    stats = IngestStats()
    with session_scope(database_url) as session:
        done_rows = int(load_cursor(session, CSV_SOURCE).get(path.name, 0))
    export = open_leads_export(path, mapping, local_zone)
    described = export.describe()
    stats.extra["csv_files"] = [
        ", ".join(f"{k} {v}" if k != "file" else str(v) for k, v in described.items())
    ]
    batch: list[dict[str, Any]] = []
    refs: list[str | None] = []
    last_row = done_rows
    from_file_time = 0
    for row_number, record in export.rows(start_row=done_rows):
        if record.pop("_time_from_file", False):
            from_file_time += 1
        batch.append(record)
        refs.append(f"{path.name}:{row_number}")
        last_row = row_number
        if len(batch) >= CSV_BATCH_ROWS:
            stats.merge(_write_csv_batch(database_url, path.name, batch, refs, last_row, default_region))
            batch, refs = [], []
    if batch:
        stats.merge(_write_csv_batch(database_url, path.name, batch, refs, last_row, default_region))
    if from_file_time:
        stats.warn(
            f"{path.name}: {from_file_time} row(s) have no time of their own; the file's time "
            f"({export.file_time:%Y-%m-%d %H:%M} UTC) was taken"
        )
    return stats


def _write_csv_batch(
    database_url: str,
    file_name: str,
    batch: list[dict[str, Any]],
    refs: list[str | None],
    last_row: int,
    default_region: str,
) -> IngestStats:
    with session_scope(database_url) as session:
        result = write_web_leads(session, CSV_SOURCE, batch, default_region, source_refs=refs)
        cursor = load_cursor(session, CSV_SOURCE)
        cursor[file_name] = last_row
        save_cursor(session, CSV_SOURCE, cursor)
    return result
