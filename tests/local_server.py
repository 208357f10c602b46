"""The suite's local HTTP server helper: the one in hub/demo/replay/server.py (the demo runs
its CRM replays outside the tests with it), re-exported under the name every test imports."""

from __future__ import annotations

from hub.demo.replay.server import LocalServer, QuietHttpServer, free_port, local_server

__all__ = ["LocalServer", "QuietHttpServer", "free_port", "local_server"]
