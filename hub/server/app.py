"""The Starlette app of `hub serve`, assembled in one place: every route comes from a builder in
ROUTE_BUILDERS, and the safety headers apply to every answer. A new endpoint (the ops UI, another
webhook) adds a builder; it gets the settings and the app's group committers from the context."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.settings import HubSettings, load_settings
from hub.store.group_commit import BatchWriter, GroupCommitter
from hub.store.health import store_problem

# Set on every answer unless the route set its own: no MIME sniffing, nothing cached by the
# browser or a proxy, no referrer leaked, never framed, no active content.
SAFETY_HEADERS: dict[str, str] = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


@dataclass
class ServerContext:
    """What route builders get: the settings, and group committers that the app closes
    (flushing what waits) when it shuts down."""

    settings: HubSettings
    committers: list[GroupCommitter[Any, Any]] = field(default_factory=list)

    def committer(self, name: str, write: BatchWriter[Any, Any], **options: Any) -> GroupCommitter[Any, Any]:
        committer: GroupCommitter[Any, Any] = GroupCommitter(
            self.settings.database_url, write, name=name, **options
        )
        self.committers.append(committer)
        return committer

    def close(self) -> None:
        for committer in self.committers:
            committer.close()


RouteBuilder = Callable[[ServerContext], Sequence[BaseRoute]]


class SafetyHeaders:
    """ASGI middleware adding SAFETY_HEADERS to every response that lacks them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [
                    (k.encode(), v.encode()) for k, v in SAFETY_HEADERS.items() if k.encode() not in present
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def health_routes(context: ServerContext) -> list[BaseRoute]:
    database_url = context.settings.database_url

    async def alive(_: Request) -> Response:
        """Liveness: the process answers (restart it when this fails)."""
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> Response:
        """Readiness: the store answers and has this release's schema (send no traffic otherwise)."""
        problem = await run_in_threadpool(store_problem, database_url)
        if problem is not None:
            return JSONResponse({"error": problem}, status_code=503, headers={"Retry-After": "5"})
        return JSONResponse({"status": "ready"})

    return [Route("/healthz", alive, methods=["GET"]), Route("/readyz", ready, methods=["GET"])]


def _route_builders() -> list[RouteBuilder]:
    from hub.ingest.mail_pixel import pixel_routes
    from hub.server.site_webhook import site_webhook_routes

    return [health_routes, site_webhook_routes, pixel_routes]


# Every route of `hub serve`, one builder per concern.
ROUTE_BUILDERS: list[RouteBuilder] = _route_builders()


async def _server_error(_: Request, __: Exception) -> Response:
    # The outermost handler answers before the middleware stack: it sets the headers itself.
    return JSONResponse({"error": "internal error"}, status_code=500, headers=SAFETY_HEADERS)


def create_app(settings: HubSettings) -> Starlette:
    context = ServerContext(settings)
    routes: list[BaseRoute] = []
    for build in ROUTE_BUILDERS:
        routes.extend(build(context))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(context.close)

    app = Starlette(
        routes=routes,
        middleware=[Middleware(SafetyHeaders)],
        exception_handlers={Exception: _server_error},
        lifespan=lifespan,
    )
    # A trailing-slash redirect would point at whatever Host the caller sent: 404 instead.
    app.router.redirect_slashes = False
    app.state.context = context
    return app


def app_from_environment() -> Starlette:
    """The app each uvicorn worker builds (`hub.server.app:app_from_environment`, a factory): the
    settings are read in the worker, from the environment `hub serve` checked before starting."""
    from hub.masking import install_log_masking

    install_log_masking()
    return create_app(load_settings())
