"""`hub serve`: the HTTP endpoints the outside world calls. Every accepted post is stored
durably in the webhook inbox before the answer, so a crash after 2xx loses nothing.

Routes are registered per concern (site webhook here; others add theirs via ROUTE_BUILDERS)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.site import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_webhook
from hub.ingest.mail_pixel import pixel_routes
from hub.ingest.site import accept_webhook
from hub.settings import HubSettings

log = logging.getLogger("hub.server")

# Headers kept with a post for later diagnosis; never the signature secret itself.
KEPT_HEADERS = ("content-type", "user-agent", "x-forwarded-for", TIMESTAMP_HEADER.lower())


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


def site_webhook_routes(settings: HubSettings) -> list[Route]:
    site = settings.site

    async def receive_site_lead(request: Request) -> Response:
        try:
            body = await read_limited_body(request, site.webhook_max_body_bytes)
        except BodyTooLarge:
            return JSONResponse(
                {"error": f"body larger than {site.webhook_max_body_bytes} bytes"}, status_code=413
            )
        signature = request.headers.get(SIGNATURE_HEADER)
        problem = verify_webhook(
            site.webhook_secret,
            request.headers.get(TIMESTAMP_HEADER),
            signature,
            body,
            time.time(),
            site.webhook_replay_window_s,
        )
        if problem is not None:
            log.warning(
                "refused site webhook post from %s: %s",
                request.client.host if request.client else "?",
                problem,
            )
            return JSONResponse({"error": problem}, status_code=401)
        headers = {k: v for k, v in request.headers.items() if k.lower() in KEPT_HEADERS}
        inbox_id = await run_in_threadpool(
            accept_webhook, settings.database_url, body, headers, signature or ""
        )
        return JSONResponse(
            {"status": "accepted" if inbox_id else "duplicate", "id": inbox_id}, status_code=202
        )

    return [Route("/webhooks/site/leads", receive_site_lead, methods=["POST"])]


async def health(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


ROUTE_BUILDERS: list[Callable[[HubSettings], list[Route]]] = [site_webhook_routes, pixel_routes]


def create_app(settings: HubSettings) -> Starlette:
    routes: list[Route] = [Route("/healthz", health)]
    for build in ROUTE_BUILDERS:
        routes.extend(build(settings))
    return Starlette(routes=routes)
