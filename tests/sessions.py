"""Server processes a test starts (workers, code server, webserver, daemon), each in a session of
its own, so that stopping one stops its children too (pool processes, runs) even when a test fails."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

STOP_TIMEOUT_S = 30


def start_session(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `command` as the leader of a new session, its output into `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def signal_session(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)  # a session leader's pid is its process group's id


def stop_session(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the whole session (a clean shutdown), SIGKILL to whatever is left after a while."""
    signal_session(proc, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_TIMEOUT_S)
    signal_session(proc, signal.SIGKILL)  # children that outlived their parent too
    proc.wait(timeout=STOP_TIMEOUT_S)
