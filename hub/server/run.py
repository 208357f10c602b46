"""Starting `hub serve`: the settings and the store are checked first (a broken one stops it
with one line naming the setting), then uvicorn runs the app factory in one or more workers."""

from __future__ import annotations

import copy
import functools
from typing import Any

from hub.server.protocol import ConnectionLimits, LimitedHttpProtocol
from hub.settings import HubSettings
from hub.store.health import check_store

# uvicorn imports this in every worker (it cannot pickle an app object to run several).
APP_FACTORY = "hub.server.app:app_from_environment"


def serve(settings: HubSettings, host: str, port: int, workers: int, limits: ConnectionLimits) -> None:
    """Run until stopped; raises StoreUnavailable before listening if the store cannot be used."""
    import uvicorn

    check_store(settings.database_url)
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=functools.partial(LimitedHttpProtocol, limits=limits),  # type: ignore[arg-type]
        log_config=_log_config(),
        log_level="info",
        access_log=False,
        proxy_headers=True,
        server_header=False,
        # Keep-alive connections idle longer than this are closed (the header timeout covers a
        # request that has started).
        timeout_keep_alive=5,
        timeout_graceful_shutdown=30,
    )


def _log_config() -> dict[str, Any]:
    """uvicorn's own logging, with the hub's loggers ("hub.*") written the same way."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["hub"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
