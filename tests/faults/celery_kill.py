"""Imported by the test's Celery workers (`dagster-celery worker start -i tests.faults.celery_kill`):
with KILL_SWITCH_ASSET set, the first worker to reach that asset's KILL_SWITCH_AT-th statement on
the store SIGKILLs its whole process group (the CLI, the Celery main process, its pool) mid-step,
as a lost host would; KILL_SWITCH_MARKER, created once, keeps every other worker alive."""

from __future__ import annotations

import os
import signal

from sqlalchemy.engine import make_url

from tests.faults.crash_runner import KillSwitch


def kill_this_worker_once() -> None:
    try:
        # O_EXCL: of the workers reaching the point, exactly one dies, once.
        os.close(os.open(os.environ["KILL_SWITCH_MARKER"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os.killpg(os.getpgrp(), signal.SIGKILL)


if os.environ.get("KILL_SWITCH_ASSET"):
    KillSwitch(
        database=make_url(os.environ["HUB_DATABASE_URL"]).database or "",
        kill_in=os.environ["KILL_SWITCH_ASSET"],
        kill_at=int(os.environ["KILL_SWITCH_AT"]),
        kill=kill_this_worker_once,
    ).install()
