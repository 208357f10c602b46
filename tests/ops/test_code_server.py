"""Production's code location: `dagster code-server start -m assets.definitions` serves the hub's
definitions over gRPC, a real dagster-webserver loads it through deploy/workspace.grpc.yaml, and an
asset materialized through the webserver's GraphQL API (dagster-graphql's client) is taken from
the queue by a daemon loading the same workspace and lands in the store. Dagster's storage is
PostgreSQL (deploy/dagster.yaml), the store too."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests
import yaml
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient
from sqlalchemy import func, select

from hub.processes import console_script
from hub.settings import PROJECT_DIR
from hub.store.db import session_scope
from hub.store.models import Lead
from tests.faults.crash import build_demo_world
from tests.local_server import free_port
from tests.ops.helpers import production_dagster_env
from tests.sessions import signal_session, start_session, stop_session

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WORKSPACE = PROJECT_DIR / "deploy" / "workspace.grpc.yaml"
STARTUP_TIMEOUT_S = 120
LOCATION = yaml.safe_load(WORKSPACE.read_text())["load_from"][0]["grpc_server"]["location_name"]


def _wait(proc: subprocess.Popen[bytes], log: Path, ready: str | None = None, url: str | None = None) -> None:
    """Until the log says `ready` or `url` answers; fails with the log if the process dies."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        if ready is not None and ready in log.read_text(errors="replace"):
            return
        if url is not None:
            try:
                if requests.get(url, timeout=2).ok:
                    return
            except requests.ConnectionError:
                pass
        time.sleep(0.5)
    pytest.fail(f"not ready within {STARTUP_TIMEOUT_S} s: {log.read_text(errors='replace')[-3000:]}")


@pytest.fixture
def webserver_on_code_server(
    tmp_path: Path, postgres_url: str, dagster_database: str
) -> Iterator[tuple[str, int]]:
    """The code server and a webserver pointed at it; yields the webserver's host and port."""
    world = build_demo_world(tmp_path / "w", date.today(), {"HUB_DATABASE_URL": postgres_url})
    dagster_env = production_dagster_env(tmp_path / "dagster_home", dagster_database)
    grpc_port, web_port = free_port(), free_port()
    env = {
        **world.env,
        **dagster_env,
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(grpc_port),
    }
    code_server = start_session(
        [
            console_script("dagster"),
            "code-server",
            "start",
            "-m",
            "assets.definitions",
            "-a",
            "defs",
            "--location-name",
            LOCATION,
            "-h",
            "127.0.0.1",
            "-p",
            str(grpc_port),
        ],
        PROJECT_DIR,
        env,
        tmp_path / "code_server.log",
    )
    webserver = daemon = None
    try:
        _wait(code_server, tmp_path / "code_server.log", ready="Started Dagster code server")
        # The daemon takes a launched run from the queue (QueuedRunCoordinator, deploy/dagster.yaml)
        # and starts it through the code server.
        daemon = start_session(
            [console_script("dagster-daemon"), "run", "-w", str(WORKSPACE)],
            PROJECT_DIR,
            env,
            tmp_path / "daemon.log",
        )
        webserver = start_session(
            [
                console_script("dagster-webserver"),
                "-w",
                str(WORKSPACE),
                "-h",
                "127.0.0.1",
                "-p",
                str(web_port),
            ],
            PROJECT_DIR,
            env,
            tmp_path / "webserver.log",
        )
        _wait(webserver, tmp_path / "webserver.log", url=f"http://127.0.0.1:{web_port}/server_info")
        yield "127.0.0.1", web_port
    finally:
        # Each in a session of its own: the runs the code server started go with it.
        started = [proc for proc in (daemon, webserver, code_server) if proc is not None]
        for proc in started:
            signal_session(proc, signal.SIGTERM)  # all at once, then each waited for
        for proc in started:
            stop_session(proc)


def test_asset_materialized_through_graphql_on_the_code_server(
    webserver_on_code_server: tuple[str, int], postgres_url: str
) -> None:
    host, port = webserver_on_code_server
    client = DagsterGraphQLClient(host, port_number=port, timeout=60)
    locations = client._execute("{ workspaceOrError { ... on Workspace { locationEntries { name } } } }")
    assert [e["name"] for e in locations["workspaceOrError"]["locationEntries"]] == [LOCATION]

    with session_scope(postgres_url) as session:
        before = session.scalar(
            select(func.count()).select_from(Lead).where(Lead.source_system.like("site%"))
        )
    run_id = client.submit_job_execution(
        "hub_main_job",
        repository_location_name=LOCATION,
        repository_name="__repository__",
        asset_selection=[["site_leads"]],
    )
    deadline = time.monotonic() + 300
    status = client.get_run_status(run_id)
    while status not in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(1)
        status = client.get_run_status(run_id)
    assert status == DagsterRunStatus.SUCCESS, run_id

    with session_scope(postgres_url) as session:
        after = session.scalar(select(func.count()).select_from(Lead).where(Lead.source_system.like("site%")))
    assert after > before, (before, after)
