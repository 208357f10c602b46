"""The second open signal: a per-message tracking pixel served by `hub serve`. Fetches are
counted per email in one row; fetches by image proxies, privacy prefetchers, security scanners
or within seconds of sending are not opens, and the last such reason is kept with the count."""

from __future__ import annotations

import base64
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hub.ingest.mail import OpenEvent, record_open
from hub.settings import MailSettings
from hub.store.db import session_scope
from hub.store.group_commit import QueueFull
from hub.store.models import Activity, MailPixelHit, MailTrackingToken
from hub.store.upsert import upsert
from hub.timeutil import as_utc, utcnow

if TYPE_CHECKING:
    from hub.server.app import ServerContext

log = logging.getLogger("hub.server")

PIXEL_PATH = "/o/{token}.gif"
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

# User-agent fragments of machines that fetch images without a person reading the email.
MACHINE_AGENTS: tuple[tuple[str, str], ...] = (
    ("googleimageproxy", "image proxy: Gmail fetches and caches images, not a person's open"),
    ("yahoomailproxy", "image proxy: Yahoo Mail"),
    ("ymailproxy", "image proxy: Yahoo Mail"),
    ("bingpreview", "link/image previewer: Bing"),
    ("barracuda", "security scanner: Barracuda"),
    ("mimecast", "security scanner: Mimecast"),
    ("proofpoint", "security scanner: Proofpoint"),
    ("symantec", "security scanner: Symantec"),
    ("trend micro", "security scanner: Trend Micro"),
    ("forcepoint", "security scanner: Forcepoint"),
    ("kaspersky", "security scanner: Kaspersky"),
    ("safelinks", "security scanner: Microsoft Safe Links"),
    ("python-requests", "script, not a mail client"),
    ("curl/", "script, not a mail client"),
    ("wget/", "script, not a mail client"),
    ("go-http-client", "script, not a mail client"),
    ("bot", "crawler/bot"),
    ("spider", "crawler/bot"),
    ("crawler", "crawler/bot"),
)
# Apple Mail Privacy Protection prefetches from Apple's own network with a bare user agent.
APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")


def pixel_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + PIXEL_PATH.format(token=token)


def machine_reason(
    user_agent: str | None, remote_ip: str | None, fetched_at: datetime, sent_at: datetime, min_seconds: int
) -> str | None:
    """Why this fetch is not a person opening the email, or None when it may be one."""
    agent = (user_agent or "").strip()
    lowered = agent.lower()
    if not agent:
        return "no user agent: not a mail client"
    try:
        ip = ipaddress.ip_address(remote_ip) if remote_ip else None
    except ValueError:
        ip = None
    if ip is not None and ip.version == 4 and ip in APPLE_NETWORK:
        return "Apple Mail Privacy Protection prefetch (Apple network 17.0.0.0/8)"
    if agent == "Mozilla/5.0":
        return "Apple Mail Privacy Protection prefetch (bare 'Mozilla/5.0' agent)"
    for fragment, reason in MACHINE_AGENTS:
        if fragment in lowered:
            return reason
    elapsed = (as_utc(fetched_at) - as_utc(sent_at)).total_seconds()
    if elapsed < min_seconds:
        return f"fetched {elapsed:.0f}s after sending: a scanner or prefetch, not a reader"
    return None


@dataclass(frozen=True)
class PixelFetch:
    token: str
    user_agent: str | None
    remote_ip: str | None
    fetched_at: datetime
    method: str = "GET"


HEAD_REASON = "HEAD request: a link checker or proxy, not a mail client showing the image"


def record_pixel_fetches(session: Session, fetches: Sequence[PixelFetch], mail: MailSettings) -> list[str]:
    """Count the fetches in their emails' rows and record the opens of people, in the caller's
    transaction. Per fetch: "open", "first_open", "machine" or "unknown_token" (no trace kept)."""
    tokens = {f.token for f in fetches}
    message_of: dict[str, str] = {
        token: message_id
        for token, message_id in session.execute(
            select(MailTrackingToken.token, MailTrackingToken.message_id).where(
                MailTrackingToken.token.in_(tokens)
            )
        )
    }
    sent_of = {
        sent.message_id: sent
        for sent in session.scalars(
            select(Activity).where(
                Activity.kind == "email_sent", Activity.message_id.in_(set(message_of.values()))
            )
        )
    }
    counts: dict[str, dict[str, Any]] = {}
    outcomes = []
    for fetch in fetches:
        message_id = message_of.get(fetch.token)
        sent = sent_of.get(message_id) if message_id is not None else None
        if message_id is None or sent is None:
            outcomes.append("unknown_token")
            continue
        reason = HEAD_REASON if fetch.method == "HEAD" else None
        reason = reason or machine_reason(
            fetch.user_agent,
            fetch.remote_ip,
            fetch.fetched_at,
            sent.occurred_at,
            mail.pixel_min_seconds_after_send,
        )
        row = counts.setdefault(
            message_id,
            {
                "message_id": message_id,
                "fetches": 0,
                "machine_fetches": 0,
                "first_fetched_at": fetch.fetched_at,
            },
        )
        row["fetches"] += 1
        row.update(
            last_fetched_at=fetch.fetched_at,
            remote_ip=(fetch.remote_ip or "")[:64] or None,
            user_agent=(fetch.user_agent or "")[:1000],
            created_at=utcnow(),
        )
        if reason is not None:
            row["machine_fetches"] += 1
            row["machine_reason"] = reason[:300]
            outcomes.append("machine")
            continue
        event = OpenEvent(message_id=message_id, opened_at=fetch.fetched_at, via="pixel", detail={})
        outcomes.append("first_open" if record_open(session, sent, event, mail) else "open")
    last = ["last_fetched_at", "remote_ip", "user_agent"]
    # A batch without a machine fetch leaves the stored reason of the last one as it is.
    with_reason = [r for r in counts.values() if "machine_reason" in r]
    without = [{**r, "machine_reason": None} for r in counts.values() if "machine_reason" not in r]
    for rows, update_columns in ((with_reason, [*last, "machine_reason"]), (without, last)):
        upsert(
            session,
            MailPixelHit,
            rows,
            key=["message_id"],
            update=update_columns,
            add=["fetches", "machine_fetches"],
        )
    return outcomes


def record_pixel_fetch(
    database_url: str,
    token: str,
    user_agent: str | None,
    remote_ip: str | None,
    mail: MailSettings,
    fetched_at: datetime | None = None,
) -> str:
    """One fetch in its own transaction (scripts, tests); `hub serve` batches them."""
    fetch = PixelFetch(token, user_agent, remote_ip, fetched_at or utcnow())
    with session_scope(database_url) as session:
        return record_pixel_fetches(session, [fetch], mail)[0]


# Fetches waiting to be recorded beyond this are dropped (a flood must not grow memory).
MAX_WAITING_FETCHES = 10_000
PIXEL_RECORD_DELAY_S = 0.05


def pixel_routes(context: ServerContext) -> list[BaseRoute]:
    mail = context.settings.mail
    recorder = context.committer(
        "pixel-fetches",
        lambda session, fetches: record_pixel_fetches(session, fetches, mail),
        max_waiting=MAX_WAITING_FETCHES,
        # Recorded a little later, in batches: the work a valid token causes never overlaps the
        # answer (on a busy host it would compete with it for the CPU and be measurable).
        linger_s=PIXEL_RECORD_DELAY_S,
        writers=1,  # opens update activities in fetch order: one writer, no lock-order deadlock
    )

    async def record_later(fetch: PixelFetch) -> None:
        try:
            recorder.submit_nowait(fetch)
        except QueueFull:
            log.warning(
                "pixel fetch not recorded: %d fetches already wait for the store", MAX_WAITING_FETCHES
            )

    async def serve_pixel(request: Request) -> Response:
        token = request.path_params["token"]
        # Tokens are url-safe base64 of 24 random bytes; anything else is not ours. Whatever the
        # token, the answer is the same image, sent before the fetch is handed to the recorder:
        # neither the answer nor its timing tells a valid token from a guess.
        later = None
        if 16 <= len(token) <= 64:
            fetch = PixelFetch(
                token,
                request.headers.get("user-agent"),
                request.client.host if request.client else None,
                utcnow(),
                request.method,
            )
            later = BackgroundTask(record_later, fetch)
        return Response(
            GIF,
            media_type="image/gif",
            headers={"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache"},
            background=later,
        )

    return [Route(PIXEL_PATH, serve_pixel, methods=["GET", "HEAD"])]
