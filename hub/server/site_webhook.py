"""The site's signed lead webhook: a post is checked (size, HMAC, timestamp window, records per
post) and stored in the inbox by the group committer before its 202, so a crash after the
answer loses nothing and posts arriving together share one durable commit."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connectors.site import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_webhook
from hub.ingest.site import WebhookPost, parse_post, store_webhook_posts
from hub.settings import variable_of
from hub.store.group_commit import QueueFull
from hub.store.health import error_line

if TYPE_CHECKING:
    from hub.server.app import ServerContext

log = logging.getLogger("hub.server")

PATH = "/webhooks/site/leads"
# Headers kept with a post for later diagnosis, each cut to KEPT_HEADER_CHARS; never the
# signature (it proves nothing once verified) nor anything a client may put credentials in.
KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for", TIMESTAMP_HEADER.lower())
KEPT_HEADER_CHARS = 512
# Posts waiting for the store beyond this are refused with 503 rather than held in memory.
MAX_WAITING_POSTS = 10_000
RETRY_AFTER_S = "5"


class BodyTooLarge(Exception):
    pass


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes without reading them all into memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def kept_headers(request: Request) -> dict[str, str]:
    return {
        name: request.headers[name][:KEPT_HEADER_CHARS] for name in KEPT_HEADERS if name in request.headers
    }


def _refusal(status: int, error: str, **headers: str) -> Response:
    return JSONResponse({"error": error}, status_code=status, headers=headers or None)


def site_webhook_routes(context: ServerContext) -> list[BaseRoute]:
    site = context.settings.site
    inbox = context.committer("webhook-inbox", store_webhook_posts, max_waiting=MAX_WAITING_POSTS)
    max_records_setting = variable_of("site", "webhook_max_records")

    async def receive_site_lead(request: Request) -> Response:
        try:
            body = await read_limited_body(request, site.webhook_max_body_bytes)
        except BodyTooLarge:
            # The rest of the body is not read: the connection is closed after the answer.
            return _refusal(413, f"body larger than {site.webhook_max_body_bytes} bytes", Connection="close")
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is there to read it
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        problem = verify_webhook(
            site.webhook_secret,
            timestamp,
            request.headers.get(SIGNATURE_HEADER),
            body,
            time.time(),
            site.webhook_replay_window_s,
        )
        if problem is not None:
            log.warning("refused site webhook post from %s: %s", _peer(request), problem)
            return _refusal(401, problem)
        records, _unreadable = parse_post(body, request.headers.get("content-type"))
        if len(records) > site.webhook_max_records:
            return _refusal(
                413,
                f"{len(records)} leads in one post, more than {max_records_setting} "
                f"({site.webhook_max_records}): send them in several posts",
            )
        post = WebhookPost(body=body, timestamp=int(timestamp or ""), headers=kept_headers(request))
        try:
            inbox_id = await inbox.submit(post)
        except QueueFull:
            log.warning("site webhook post refused: %d posts already wait for the store", MAX_WAITING_POSTS)
            return _refusal(
                503, "too many posts waiting for the store: retry", **{"Retry-After": RETRY_AFTER_S}
            )
        except SQLAlchemyError as exc:
            log.error(
                "store error: a site webhook post was not stored and was answered 503: %s", error_line(exc)
            )
            return _refusal(503, "the store is unavailable: retry", **{"Retry-After": RETRY_AFTER_S})
        return JSONResponse(
            {"status": "accepted" if inbox_id else "duplicate", "id": inbox_id}, status_code=202
        )

    return [Route(PATH, receive_site_lead, methods=["POST"])]


def _peer(request: Request) -> str:
    return request.client.host if request.client else "?"
