"""The second open signal: a per-message tracking pixel served by `hub serve`. Each fetch is
kept; fetches by image proxies, privacy prefetchers, security scanners or within seconds of
sending are not opens, and the reason is recorded with the fetch."""

from __future__ import annotations

import base64
import ipaddress
from datetime import datetime

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.ingest.mail import OpenEvent, record_open
from hub.settings import HubSettings, MailSettings
from hub.store.db import session_scope
from hub.store.models import Activity, MailPixelHit, MailTrackingToken
from hub.timeutil import as_utc, utcnow

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


def record_pixel_fetch(
    database_url: str,
    token: str,
    user_agent: str | None,
    remote_ip: str | None,
    mail: MailSettings,
    fetched_at: datetime | None = None,
) -> str:
    """Store the fetch and, for a person, record the open. Returns "open", "first_open",
    "machine" or "unknown_token"."""
    fetched_at = fetched_at or utcnow()
    with session_scope(database_url) as session:
        message_id = session.scalar(
            select(MailTrackingToken.message_id).where(MailTrackingToken.token == token)
        )
        if message_id is None:
            return "unknown_token"
        sent = session.scalar(
            select(Activity).where(Activity.kind == "email_sent", Activity.message_id == message_id)
        )
        if sent is None:
            return "unknown_token"
        reason = machine_reason(
            user_agent, remote_ip, fetched_at, sent.occurred_at, mail.pixel_min_seconds_after_send
        )
        session.add(
            MailPixelHit(
                message_id=message_id,
                fetched_at=fetched_at,
                remote_ip=remote_ip,
                user_agent=(user_agent or "")[:1000],
                machine_reason=reason,
                created_at=utcnow(),
            )
        )
        if reason is not None:
            return "machine"
        first = record_open(
            session,
            sent,
            OpenEvent(message_id=message_id, opened_at=fetched_at, via="pixel", detail={}),
            mail,
        )
        return "first_open" if first else "open"


def pixel_routes(settings: HubSettings) -> list[Route]:
    async def serve_pixel(request: Request) -> Response:
        token = request.path_params["token"]
        # Tokens are url-safe base64 of 24 random bytes; anything else is not ours.
        if 16 <= len(token) <= 64:
            await run_in_threadpool(
                record_pixel_fetch,
                settings.database_url,
                token,
                request.headers.get("user-agent"),
                request.client.host if request.client else None,
                settings.mail,
            )
        # The same image whatever the token: the answer never tells a token is valid.
        return Response(
            GIF,
            media_type="image/gif",
            headers={"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache"},
        )

    return [Route(PIXEL_PATH, serve_pixel, methods=["GET"])]
