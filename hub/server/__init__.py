"""`hub serve`: the HTTP endpoints the outside world calls (the site's lead webhook, the email
tracking pixel). app.py assembles the routes, protocol.py limits connections, run.py starts it."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # The app (Starlette, the routes) is imported when asked for, not by every `hub` command.
    if name in ("create_app", "ROUTE_BUILDERS"):
        from hub.server import app

        return getattr(app, name)
    raise AttributeError(name)
