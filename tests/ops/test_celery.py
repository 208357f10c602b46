"""The whole hub graph on dagster-celery's executor for real: RabbitMQ at 127.0.0.1:5672, two
worker processes started here from deploy/celery.yaml, Dagster's storage (deploy/dagster.yaml)
and the store on PostgreSQL. Steps must land on both workers and the store must equal the
in-process run's; a worker SIGKILLed mid-step hands its step to the other, and a rerun changes
nothing (the crash harness's comparator, tests/faults/store_compare.py)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from hub.processes import console_script
from hub.settings import PROJECT_DIR
from tests.faults.crash import DemoWorld, build_demo_world
from tests.faults.store_compare import StoreImage, image_differences, store_image
from tests.ops.celery_workers import CeleryWorkers, broker_reachable
from tests.ops.helpers import production_dagster_env

# Two whole-graph runs and a rerun on a loaded 2-core machine: above the suite default of 600 s.
pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1200)]

TODAY = date(2026, 11, 20)
STEADY = {"HUB_ROUTING__REQUIRE_SHIFT": "false"}
# Killed at its 3rd statement on the store: inside its transaction, rows read, none committed.
KILLED_ASSET, KILLED_AT = "resolved_leads", 3
RUN_TIMEOUT_S = 600


@dataclass
class CeleryRun:
    returncode: int
    output: str
    run_id: str
    status: DagsterRunStatus
    # step key -> the Celery worker hostname of each execution of the step, in order
    workers_by_step: dict[str, list[str]]
    pids: set[int]
    succeeded: set[str]


@dataclass
class CeleryCluster:
    """The demo world seeded into `new_store()`s, the baseline image of one in-process run, and
    how to run the graph through Celery (`dagster job execute`, the job's own executor)."""

    root: Path
    expected: StoreImage
    dagster_env: dict[str, str]
    new_store: Callable[[], tuple[DemoWorld, str]]

    def workers(self, world: DemoWorld) -> CeleryWorkers:
        """Workers with the world's settings (its store) and Dagster's storage."""
        return CeleryWorkers(self.root, {**world.env, **self.dagster_env})

    def run_graph(self, workers: CeleryWorkers) -> CeleryRun:
        """Run the whole graph with the settings the workers have."""
        env = workers.env
        with DagsterInstance.get() as instance:
            before = {run.run_id for run in instance.get_runs()}
        done = subprocess.run(
            [
                console_script("dagster"),
                "job",
                "execute",
                "-m",
                "assets.definitions",
                "-a",
                "defs",
                "-j",
                "hub_main_job",
            ],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        with DagsterInstance.get() as instance:
            (run,) = [run for run in instance.get_runs() if run.run_id not in before]
            workers_by_step: dict[str, list[str]] = {}
            pids: set[int] = set()
            succeeded: set[str] = set()
            for entry in instance.all_logs(run.run_id):
                event = entry.dagster_event
                if event is None:
                    continue
                metadata = event.engine_event_data.metadata if event.is_engine_event else {}
                if "Celery worker" in metadata:  # "Executing steps ... in celery worker"
                    hostname = metadata["Celery worker"].value
                    workers_by_step.setdefault(event.step_key or "", []).append(str(hostname))
                if event.event_type == DagsterEventType.STEP_START and event.pid is not None:
                    pids.add(event.pid)
                if event.event_type == DagsterEventType.STEP_SUCCESS:
                    succeeded.add(event.step_key or "")
        return CeleryRun(
            done.returncode,
            (done.stdout + done.stderr)[-4000:],
            run.run_id,
            run.status,
            workers_by_step,
            pids,
            succeeded,
        )


@pytest.fixture
def cluster(
    postgres_schemas: Callable[[], str], dagster_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CeleryCluster]:
    if not broker_reachable():
        if os.environ.get("CI"):
            raise RuntimeError("CI must have RabbitMQ at 127.0.0.1:5672")
        pytest.skip("RabbitMQ is not reachable at 127.0.0.1:5672")
    # A short folder keeps the demo's paths readable; every store is seeded from this one folder
    # (rebuilt in place, deterministically): folder sources' cursor names hold its path.
    with tempfile.TemporaryDirectory(prefix="hubq") as short:
        root = Path(short) / "w"
        dagster_env = production_dagster_env(Path(short) / "dagster_home", dagster_database)
        for name, value in dagster_env.items():
            monkeypatch.setenv(name, value)

        def new_store() -> tuple[DemoWorld, str]:
            url = postgres_schemas()
            return build_demo_world(root, TODAY, {**STEADY, "HUB_DATABASE_URL": url}), url

        baseline, baseline_url = new_store()
        folder = Path(short) / "in_process"
        (folder / "dagster_home").mkdir(parents=True)
        (folder / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        with baseline.runner() as runner:
            clean = runner.run_graph(baseline_url, folder)
        assert clean.returncode == 0, clean.output
        expected = store_image(baseline_url, baseline.seeding_started)
        yield CeleryCluster(Path(short), expected, dagster_env, new_store)


def _ran_in_workers(run: CeleryRun) -> str:
    return "; ".join(f"{step}: {hosts}" for step, hosts in sorted(run.workers_by_step.items()))


def test_whole_graph_on_two_celery_workers_equals_the_in_process_run(cluster: CeleryCluster) -> None:
    world, store_url = cluster.new_store()
    with cluster.workers(world) as workers:
        workers.start("w1")
        workers.start("w2")
        workers.wait_ready()
        run = cluster.run_graph(workers)
        assert run.returncode == 0 and run.status == DagsterRunStatus.SUCCESS, run.output
        # Every step of the run was executed by a Celery worker, and both workers took steps.
        assert run.succeeded and run.succeeded <= set(run.workers_by_step), _ran_in_workers(run)
        used = {host for hosts in run.workers_by_step.values() for host in hosts}
        assert used == {workers.hostname("w1"), workers.hostname("w2")}, _ran_in_workers(run)
        assert len(run.pids) >= 2, run.pids  # steps ran in more than one process
    assert image_differences(cluster.expected, store_image(store_url, world.seeding_started)) == {}


def test_a_worker_killed_mid_step_hands_the_step_to_the_other(cluster: CeleryCluster) -> None:
    world, store_url = cluster.new_store()
    marker = cluster.root / "killed"
    kill_switch = {
        "KILL_SWITCH_ASSET": KILLED_ASSET,
        "KILL_SWITCH_AT": str(KILLED_AT),
        "KILL_SWITCH_MARKER": str(marker),
    }
    with cluster.workers(world) as workers:
        for name in ("w1", "w2"):
            workers.start(name, kill_switch, includes=("tests.faults.celery_kill",))
        workers.wait_ready()
        run = cluster.run_graph(workers)
        assert marker.exists(), f"no worker reached {KILLED_ASSET}'s statement {KILLED_AT}"
        dead = [name for name in ("w1", "w2") if not workers.alive(name)]
        assert len(dead) == 1, dead
        (survivor,) = {"w1", "w2"} - set(dead)
        # The killed worker had not acknowledged the step (task_acks_late): the broker gave it to
        # the other worker, the step ran again from its start and the run went on.
        step = next(key for key in run.workers_by_step if key.endswith(KILLED_ASSET))
        assert run.workers_by_step[step] == [workers.hostname(dead[0]), workers.hostname(survivor)], (
            _ran_in_workers(run)
        )
        assert run.returncode == 0 and run.status == DagsterRunStatus.SUCCESS, run.output
        assert image_differences(cluster.expected, store_image(store_url, world.seeding_started)) == {}

        rerun = cluster.run_graph(workers)  # on the one worker left
        assert rerun.returncode == 0 and rerun.status == DagsterRunStatus.SUCCESS, rerun.output
        assert {h for hosts in rerun.workers_by_step.values() for h in hosts} == {workers.hostname(survivor)}
    assert image_differences(cluster.expected, store_image(store_url, world.seeding_started)) == {}
