"""Website leads into the store by three ways: the site's API (cursor-paged), the webhook
inbox (posts the receiver stored), and CSV exports dropped in a folder. Each commits its
rows together with its cursor, so a crash and rerun neither loses nor repeats a lead."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from connectors.lead_exports import LeadMapping
from connectors.site import LeadsSource, open_leads_export
from hub.ingest.stats import IngestStats, note_http_usage
from hub.leads import write_web_leads
from hub.store.cursors import load_cursor, save_cursor
from hub.store.db import session_scope
from hub.store.models import WebhookInbox
from hub.store.quarantine import quarantine, storable
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


def accept_webhook(
    database_url: str, body: bytes, headers: dict[str, str], signature: str, endpoint: str = WEBHOOK_ENDPOINT
) -> int | None:
    """Store an authenticated post durably; a replay of the same signed post is stored once.
    Returns the inbox id, or None for a replay."""
    dedup_key = hashlib.sha256(signature.encode()).hexdigest()
    row = {
        "endpoint": endpoint,
        "dedup_key": dedup_key,
        "body": storable(body.decode("utf-8", errors="replace")),
        "headers": headers,
        "received_at": utcnow(),
    }
    with session_scope(database_url) as session:
        ids = upsert(session, WebhookInbox, [row], key=["dedup_key"], update=[], returning="id")
    return ids[0] if ids else None


def sync_webhook_inbox(database_url: str, default_region: str, batch: int = 500) -> IngestStats:
    """Turn stored webhook posts into leads; each post is marked processed in the same
    transaction as its leads."""
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
                records = _records_in_post(session, post)
                if records:
                    stats.merge(write_web_leads(session, WEBHOOK_SOURCE, records, default_region))
                post.processed_at = utcnow()
            stats.extra["posts"] = stats.extra.get("posts", 0) + len(posts)


def _records_in_post(session: Any, post: WebhookInbox) -> list[Any]:
    try:
        body = json.loads(post.body)
    except json.JSONDecodeError as exc:
        quarantine(session, WEBHOOK_SOURCE, post.body, f"webhook body is not JSON: {exc}", f"inbox:{post.id}")
        return []
    except RecursionError:
        # Hostile nesting must not leave the post unprocessed, blocking every later run.
        quarantine(
            session, WEBHOOK_SOURCE, post.body, "webhook body is nested too deeply", f"inbox:{post.id}"
        )
        return []
    if isinstance(body, dict) and isinstance(body.get("leads"), list):
        return body["leads"]
    if isinstance(body, dict):
        return [body]
    quarantine(
        session,
        WEBHOOK_SOURCE,
        post.body,
        'webhook body is neither a lead nor {"leads": [...]}',
        f"inbox:{post.id}",
    )
    return []


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
