"""Crash-and-resume harness: a demo world (seeded store plus every source's demo data), the
whole graph run in a subprocess killed with SIGKILL before a chosen SQL statement or COMMIT,
and the rerun; the store is then compared with one clean run (tests.faults.store_compare)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from hub.store.db import dispose_engines
from hub.timeutil import utcnow

PROJECT_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class KillPoint:
    """The `statement`-th SQL statement or COMMIT on the store issued by `asset`."""

    asset: str
    statement: int


@dataclass
class RunOutcome:
    killed: bool
    returncode: int
    output: str
    # For a run that ended: the asset behind each store statement, in order.
    trace: list[str]


@dataclass
class DemoWorld:
    """A seeded store file and the demo sources; copies of the store are run and compared."""

    root: Path
    seed_store: Path
    env: dict[str, str]
    ready_at: datetime  # datetimes from here on were written by a run (the wall clock)
    # Datetimes from here on were written by the seeding or a run: two worlds seeded at
    # different times are compared with each masked from its own start.
    seeding_started: datetime

    def copy_store(self, name: str) -> tuple[str, Path]:
        """A fresh copy of the seeded store and its own DAGSTER_HOME (runs never share one:
        SQLite instance storage locks under concurrent runs)."""
        folder = self.root / name
        folder.mkdir()
        shutil.copy(self.seed_store, folder / "hub.db")
        (folder / "dagster_home").mkdir()
        (folder / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        return f"sqlite:///{folder / 'hub.db'}", folder

    def runner(self) -> GraphRunner:
        """A process that runs the graph on request (start one per parallel worker)."""
        return GraphRunner(self.env)


class GraphRunner:
    """Talks to tests.faults.crash_runner: the hub and Dagster imported once, each run forked."""

    def __init__(self, env: dict[str, str]) -> None:
        # A URL from the environment makes the store resource an EnvVar, read per run.
        env = {**env, "HUB_DATABASE_URL": "sqlite:///unset.db", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.crash_runner"],
            env=env,
            cwd=PROJECT_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run_graph(self, store_url: str, folder: Path, kill: KillPoint | None = None) -> RunOutcome:
        """Run the whole graph once; with `kill`, SIGKILL it at that statement."""
        log = folder / "runs.log"
        start = log.stat().st_size if log.exists() else 0
        request = {
            "store": store_url,
            "dagster_home": str(folder / "dagster_home"),
            "kill_in": kill.asset if kill else None,
            "kill_at": kill.statement if kill else None,
            "trace": str(folder / "trace.txt"),
            "log": str(log),
        }
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the graph runner died (exit {self.proc.wait()})")
        answer = json.loads(line)
        with open(log, errors="replace") as fh:
            fh.seek(start)
            output = fh.read()[-6000:]
        trace = (folder / "trace.txt").read_text().split() if not answer["killed"] else []
        return RunOutcome(answer["killed"], answer["returncode"], output, trace)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)

    def __enter__(self) -> GraphRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_demo_world(root: Path, today: date, extra_env: dict[str, str] | None = None) -> DemoWorld:
    """Seed a store (SQLite under `root`, or HUB_DATABASE_URL of `extra_env`) and write every
    registered source's demo data under `root`.
    Changes this process's DAGSTER_HOME/HUB_CONFIG (as `hub demo` does): callers restore them."""
    from hub.demo.run import set_up

    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_"))}
    env.update({"HUB_DATA_DIR": str(root / "var"), **(extra_env or {})})
    seeding_started = utcnow()
    saved = {
        k: os.environ.get(k)
        for k in [*env, "HUB_CONFIG", "DAGSTER_HOME"]
        if k.startswith(("HUB_", "DAGSTER_"))
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("HUB_")})
    try:
        paths = set_up(reset=True, project_dir=root, today=today)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        dispose_engines()
    env["HUB_CONFIG"] = str(paths["config"])
    seed_store = root / "seed.db"
    if "HUB_DATABASE_URL" not in env:  # the SQLite store can be copied per run
        shutil.copy(root / "var" / "hub.db", seed_store)
        if (root / "var" / "hub.db-wal").exists():
            raise RuntimeError("the seeded store still has a write-ahead log: a copy would miss rows")
    return DemoWorld(
        root=root, seed_store=seed_store, env=env, ready_at=utcnow(), seeding_started=seeding_started
    )
