"""Subprocess side of the crash harness: materialize the whole hub graph (every source
present) and SIGKILL the process right before the Nth SQL statement or COMMIT on the store.

    python -m tests.faults.crash_runner

imports the hub and Dagster once (seconds), then serves requests read from stdin as JSON
lines {"store", "dagster_home", "kill_in", "kill_at", "trace", "log"}: each is run in a
forked child, answered with {"returncode", "killed"}. Counting statements (not seconds) puts
kill points anywhere in the graph reproducibly: between pages, between a batch and its
cursor, inside a transaction, right before a commit. A run that ends writes the asset behind
each of its statements to "trace", one name a line."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

ASSETS_DIR = str(Path(__file__).resolve().parents[2] / "assets") + os.sep
# Helpers every asset calls: the asset is the caller further up.
NOT_ASSETS = ("resources.py", "metadata.py", "definitions.py")


def _asset_running(frame: FrameType | None) -> str:
    """The asset function on the stack (the innermost frame in assets/), or '-' outside any."""
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(ASSETS_DIR) and not filename.endswith(NOT_ASSETS):
            return frame.f_code.co_name
        frame = frame.f_back
    return "-"


def kill_this_process() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillSwitch:
    """Counts the store's statements per asset; calls `kill` (SIGKILL of this process unless
    told otherwise) at the `kill_at`-th statement of asset `kill_in` (or of the whole run when
    `kill_in` is None)."""

    def __init__(
        self,
        database: str,
        kill_in: str | None,
        kill_at: int | None,
        kill: Callable[[], None] = kill_this_process,
    ) -> None:
        self.database = database
        self.kill_in = kill_in
        self.kill_at = kill_at
        self.kill = kill
        self.trace: list[str] = []
        self.per_asset: dict[str, int] = {}

    def install(self) -> None:
        event.listen(Engine, "before_cursor_execute", self.on_statement)
        event.listen(Engine, "commit", self.on_commit)

    def _step(self, conn: Any) -> None:
        if conn.engine.url.database != self.database:
            return  # Dagster's own instance storage is not the hub's store
        asset = _asset_running(sys._getframe(2))
        self.trace.append(asset)
        self.per_asset[asset] = self.per_asset.get(asset, 0) + 1
        count = len(self.trace) if self.kill_in is None else self.per_asset.get(self.kill_in, 0)
        if count == self.kill_at and (self.kill_in is None or asset == self.kill_in):
            self.kill()

    def on_statement(self, conn: Any, *args: Any) -> None:
        self._step(conn)

    def on_commit(self, conn: Any) -> None:
        self._step(conn)


def run_once(request: dict[str, Any]) -> int:
    """In the forked child: run the graph once against the requested store."""
    os.environ["HUB_DATABASE_URL"] = request["store"]
    os.environ["DAGSTER_HOME"] = request["dagster_home"]
    database = make_url(request["store"]).database or ""
    switch = KillSwitch(database, request.get("kill_in"), request.get("kill_at"))
    switch.install()
    from assets.demo import materialize_all

    result = materialize_all()
    Path(request["trace"]).write_text("\n".join(switch.trace) + "\n")
    print(f"statements={len(switch.trace)} success={result.success}")
    for e in result.all_events:
        if e.event_type_value == "STEP_FAILURE":
            print(f"FAILED {e.step_key}: {e.event_specific_data.error.message.strip()[:2000]}")
    return 0 if result.success else 1


def serve() -> None:
    # Import once here, so each forked run starts at once.
    import assets.definitions  # noqa: F401
    import hub.demo.run  # noqa: F401

    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with open(request["log"], "a") as log:
                    os.dup2(log.fileno(), 1)
                    os.dup2(log.fileno(), 2)
                    code = run_once(request)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        code = os.waitstatus_to_exitcode(status)
        print(json.dumps({"returncode": code, "killed": killed}), flush=True)


if __name__ == "__main__":
    serve()
