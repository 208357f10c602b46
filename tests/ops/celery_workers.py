"""Real dagster-celery workers for a test: each `dagster-celery worker start` in a session of its
own (so one can be killed whole, as a lost host), on a RabbitMQ queue named for the test alone, and
everything stopped and the queue deleted on the way out, even when the test fails."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from kombu import Connection

from hub.processes import console_script
from hub.settings import PROJECT_DIR
from tests.sessions import signal_session, start_session, stop_session

BROKER_URL = os.environ.get("HUB_TEST_CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
READY_TIMEOUT_S = 120


def broker_reachable() -> bool:
    try:
        with Connection(BROKER_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:
        return False


class CeleryWorkers:
    """Workers started from deploy/celery.yaml with only the queue renamed (parallel test runs on
    one broker must not take each other's steps)."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.queue = f"hub-test-{uuid.uuid4().hex[:10]}"
        document = yaml.safe_load((PROJECT_DIR / "deploy" / "celery.yaml").read_text())
        document["execution"]["config"]["config_source"]["task_default_queue"] = self.queue
        self.config = folder / "celery.yaml"
        self.config.write_text(yaml.safe_dump(document))
        bin_dir = str(Path(console_script("dagster-celery")).parent)
        self.env = {
            **env,
            "DAGSTER_CELERY_BROKER_URL": BROKER_URL,
            "HUB_OPS__CELERY_CONFIG": str(self.config),
            # `dagster-celery worker start` runs `celery` from PATH.
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', os.environ.get('PATH', ''))}",
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def start(
        self, name: str, extra_env: dict[str, str] | None = None, includes: tuple[str, ...] = ()
    ) -> None:
        """One worker process (one step at a time), importing the hub before it forks its pool."""
        command = [
            console_script("dagster-celery"),
            "worker",
            "start",
            "-A",
            "dagster_celery.app",
            "-y",
            str(self.config),
            "-q",
            self.queue,
            "-n",
            f"{self.queue}-{name}",
            "-i",
            "assets.definitions",
            *[arg for module in includes for arg in ("-i", module)],
            "--",
            "--concurrency=1",
        ]
        self.procs[name] = start_session(
            command, PROJECT_DIR, {**self.env, **(extra_env or {})}, self.folder / f"{name}.log"
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for name, proc in self.procs.items():
            while " ready." not in self.log(name):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Celery worker {name} did not start:\n{self.log(name)[-3000:]}")
                time.sleep(0.3)

    def hostname(self, name: str) -> str:
        return f"{self.queue}-{name}@{os.uname().nodename}"

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def stop(self) -> None:
        """Stop every worker (its pool too), then delete the test's queue on the broker."""
        for proc in self.procs.values():
            signal_session(proc, signal.SIGTERM)  # all at once: a warm shutdown each
        for proc in self.procs.values():
            stop_session(proc)
        with Connection(BROKER_URL, connect_timeout=5) as conn:
            channel = conn.channel()
            try:
                channel.queue_delete(self.queue)
            finally:
                channel.close()

    def __enter__(self) -> CeleryWorkers:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
