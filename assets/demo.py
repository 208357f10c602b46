"""The demo's Dagster part: run the main job in process, recorded in the persistent instance,
and print what each asset did. (`hub/demo` prepares the store and the sources without Dagster.)"""

from collections.abc import Callable
from typing import Any

from dagster import DagsterInstance, ExecuteInProcessResult

from hub.demo.mail import alert_report
from hub.demo.run import demo_crm, describe_crm, prepare_environment, set_up, summary
from hub.masking import mask_url_password
from hub.settings import load_settings


def materialize_all() -> ExecuteInProcessResult:
    """Run the main job in this process, recorded in the persistent Dagster instance."""
    from assets.definitions import defs  # after prepare_environment(): definitions read the settings

    job = defs.resolve_job_def("hub_main_job")
    with DagsterInstance.get() as instance:
        # The summary says what happened; Dagster's step-by-step debug log is in the UI.
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        return job.execute_in_process(instance=instance, raise_on_error=False, run_config=quiet)


def run_demo(reset: bool = False, echo: Callable[[str], None] = print, crm: str | None = None) -> bool:
    paths = prepare_environment()
    echo(f"Store: {mask_url_password(load_settings().database_url)}")
    if crm and not reset:
        # The CRM's replay starts empty: links to a previous run's entities would point nowhere.
        echo(f"--crm {crm}: starting from a fresh store, as the CRM's replay starts empty")
        reset = True
    set_up(reset=reset)
    echo(f"Demo sources written to {paths['demo']}; running the whole asset graph...")
    if crm:
        with demo_crm(crm, load_settings().database_url) as replay:
            echo(f"{crm} replay on {replay.url} (a local server speaking its documented API)")
            result = materialize_all()
            echo(f"What the sales team now sees in {crm}:")
            for line in describe_crm(replay):
                echo(f"  {line}")
    else:
        result = materialize_all()
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            echo(f"  FAILED: {event.step_key}: {event.event_specific_data.error.message.strip()}")
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        numbers: dict[str, Any] = {
            k: v.value for k, v in mat.metadata.items() if isinstance(v.value, (int, float))
        }
        echo(f"  {mat.asset_key.to_user_string():<24} {numbers}")
    echo("Store after the run:")
    for label, value in summary(load_settings().database_url):
        echo(f"  {label:<32} {value}")
    settings = load_settings()
    for line in alert_report(settings.database_url, settings.mail):
        echo(f"  {line}" if line else "")
    echo(f"Runs are kept in {paths['dagster_home']}; open the UI on the same data with: hub ui")
    return bool(result.success)
