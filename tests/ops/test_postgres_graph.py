"""The whole graph on production-like Dagster storage: deploy/dagster.yaml (PostgreSQL run, event
and schedule storage, queued coordinator) in a throwaway database, the multiprocess executor,
the demo sources, and the hub's store on PostgreSQL too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from dagster import AssetCheckSeverity, DagsterInstance, execute_job, reconstructable
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from hub.demo.run import set_up
from hub.store.db import session_scope
from hub.store.models import Lead
from tests.conftest import POSTGRES_URL
from tests.ops.graph_job import hub_main_job
from tests.ops.helpers import production_dagster_env

pytestmark = pytest.mark.postgres


@pytest.fixture
def production_instance(
    tmp_path: Path, dagster_database: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterInstance]:
    """DAGSTER_HOME with the deployment's dagster.yaml, the demo data, the store on PostgreSQL."""
    home = tmp_path / "var" / "dagster_home"
    for name, value in production_dagster_env(home, dagster_database).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HUB_CONFIG", str(tmp_path / "var" / "demo" / "hub.yaml"))
    monkeypatch.setenv("HUB_DATABASE_URL", postgres_url)
    set_up(project_dir=tmp_path, today=date.today())
    with DagsterInstance.get() as instance:
        yield instance


def test_whole_graph_on_postgres_storage_with_multiprocess_executor(
    production_instance: DagsterInstance, postgres_url: str, dagster_database: str
) -> None:
    instance = production_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"

    job = reconstructable(hub_main_job)
    with execute_job(
        job,
        instance=instance,
        run_config={
            "execution": {
                "config": {
                    "multiprocess": {
                        "max_concurrent": 2,
                        # Steps fork from a server that has imported dagster and the hub once,
                        # instead of each step paying for the imports (as in production).
                        "start_method": {"forkserver": {"preload_modules": ["assets.definitions"]}},
                    }
                }
            }
        },
        raise_on_error=False,
    ) as result:
        failures = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        status = instance.get_run_by_id(result.run_id).status  # type: ignore[union-attr]
        assert result.success, f"run {status}, failed steps: {failures}"
        engine_messages = " ".join(
            e.message or "" for e in result.all_events if e.event_type_value == "ENGINE_EVENT"
        )
        assert "multiprocess" in engine_messages.lower()
        run_id = result.run_id

        # Every asset of the graph was materialized in this run, with metadata ops can read.
        graph = hub_main_job().asset_layer.asset_graph
        expected = set(graph.executable_asset_keys)
        materialized = {}
        for event in result.get_asset_materialization_events():
            mat = event.event_specific_data.materialization  # type: ignore[union-attr]
            materialized[mat.asset_key] = mat.metadata
        assert set(materialized) == expected
        for key, metadata in materialized.items():
            numbers = [k for k, v in metadata.items() if isinstance(v.value, (int, float))]
            assert numbers, f"{key.to_user_string()}: report counts in MaterializeResult metadata"

        # Every check of the graph ran; none of ERROR severity failed. (The demo data holds
        # deliberate oddities, e.g. a deal moved back a stage, that WARN checks must show.)
        evaluations = result.get_asset_check_evaluations()
        assert {e.asset_check_key for e in evaluations} == set(graph.asset_check_keys)
        failed = [
            f"{e.asset_key.to_user_string()}.{e.check_name}: {e.description}"
            for e in evaluations
            if not e.passed and e.severity == AssetCheckSeverity.ERROR
        ]
        assert not failed

    # The run is recorded in PostgreSQL, readable by the webserver and the daemon.
    assert instance.get_run_by_id(run_id) is not None
    admin = create_engine(make_url(POSTGRES_URL).set(database=dagster_database))
    with admin.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM runs WHERE run_id = :r"), {"r": run_id}).scalar() == 1
    admin.dispose()
    with session_scope(postgres_url) as session:
        assert session.scalar(select(func.count()).select_from(Lead).where(Lead.assigned_rep_id.is_not(None)))
