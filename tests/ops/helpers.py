"""The hub's Dagster Definitions rebuilt from the current (test) environment, the way the
daemon evaluates a run-status sensor, reproduced for one run, and a DAGSTER_HOME with the
deployment's dagster.yaml on PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from dagster import DagsterEventType, DagsterInstance, Definitions, build_run_status_sensor_context
from sqlalchemy.engine import make_url

from assets import ops
from assets.resources import build_resources
from hub.settings import PROJECT_DIR, load_settings
from tests.conftest import POSTGRES_URL


def hub_definitions() -> Definitions:
    """The hub's assets, checks, main job and ops sensors with resources built from the
    environment the test has set (assets.definitions captured its own at import)."""
    from assets import definitions

    settings = load_settings()
    source_jobs, schedules = ops.source_jobs_and_schedules(
        definitions.all_assets, settings.ops, settings.timezone
    )
    return Definitions(
        assets=definitions.all_assets,
        asset_checks=ops.build_ops_checks(definitions.all_assets),
        jobs=[ops.main_job(), *source_jobs],
        schedules=schedules,
        sensors=[*ops.OPS_SENSORS, ops.hub_automation_sensor()],
        resources=build_resources(settings),
    )


def evaluate_run_sensor(
    sensor: Any, defs: Definitions, instance: DagsterInstance, run_id: str, failure: bool
) -> Any:
    """Call a run-status sensor on a finished run, with the Definitions' resources."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    wanted = DagsterEventType.RUN_FAILURE if failure else DagsterEventType.RUN_SUCCESS
    records = instance.get_records_for_run(run_id, of_type=wanted).records
    event = records[-1].event_log_entry.dagster_event
    context = build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources=defs.resources,
        repository_def=defs.get_repository_def(),
    )
    return sensor(context.for_run_failure() if failure else context)


def production_dagster_env(home: Path, database: str) -> dict[str, str]:
    """DAGSTER_HOME at `home` with deploy/dagster.yaml (PostgreSQL storage in `database` of the
    test server), and the DAGSTER_* variables that file reads."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_DIR / "deploy" / "dagster.yaml", home / "dagster.yaml")
    url = make_url(POSTGRES_URL)
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_DB": database,
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
    }
