"""`hub serve` as the tests and benchmarks run it: the real command in its own process (and
process group, so its workers die with it) on a free loopback port, with a clean HUB_* env."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.local_server import free_port

PROJECT_DIR = Path(__file__).resolve().parents[2]
HUB = [sys.executable, "-m", "hub.cli"]


def hub_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any HUB_* variable, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(settings)
    return env


def run_hub(
    args: list[str], settings: Mapping[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run one `hub` command to its end (stdout and stderr captured as text)."""
    return subprocess.run(
        [*HUB, *args],
        env=hub_env(settings),
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class HubServe:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the server and its workers at once (no shutdown, no flush)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_hub_serve(
    settings: Mapping[str, str],
    log_path: Path,
    *args: str,
    wait: bool = True,
    command: list[str] | None = None,
) -> HubServe:
    """Start `hub serve --port <free port> *args`; with `wait`, return once it answers /healthz
    (RuntimeError with the end of its log when it exits or never answers)."""
    port = free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [*(command or HUB), "serve", "--port", str(port), *args],
        env=hub_env(settings),
        cwd=PROJECT_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    server = HubServe(process, port, log_path)
    if wait:
        wait_until_answering(server)
    return server


def wait_until_answering(server: HubServe, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"hub serve exited with {server.process.returncode}:\n{server.log()[-3000:]}")
        try:
            if requests.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"hub serve did not answer within {timeout_s}s:\n{server.log()[-3000:]}")


@contextmanager
def hub_serve(settings: Mapping[str, str], log_path: Path, *args: str) -> Iterator[HubServe]:
    """A running `hub serve` for the block; stopped (SIGTERM, then SIGKILL) afterwards."""
    server = start_hub_serve(settings, log_path, *args)
    try:
        yield server
    finally:
        server.stop()
