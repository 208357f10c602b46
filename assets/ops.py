"""The hub's operations layer in Dagster, applied across every domain's assets: a schedule per
source, automation and freshness, checks every asset gets, and run/check-failure alerts for ops."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    FreshnessPolicy,
    RunFailureSensorContext,
    RunStatusSensorContext,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    apply_freshness_policy,
    define_asset_job,
    map_asset_specs,
    multi_asset_check,
    run_failure_sensor,
    run_status_sensor,
    sensor,
)
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._utils.schedules import is_valid_cron_string

from assets.resources import HubSettingsResource, OpsAlertsResource, StoreResource
from assets.retries import TRANSIENT_RETRY_POLICY
from hub.ops.alerts import (
    CHECK_FAILED,
    RUN_FAILED,
    FailedCheck,
    OpsAlert,
    StepError,
    deliver_ops_alerts,
    enqueue_ops_alert,
)
from hub.ops.checks import (
    Verdict,
    quarantine_verdict,
    row_count_of,
    row_count_verdict,
    unassigned_leads_verdict,
)
from hub.settings import OpsSettings, SettingsError

ROW_COUNT_CHECK = "row_count_in_usual_range"
QUARANTINE_CHECK = "quarantine_share"
UNASSIGNED_LEADS_CHECK = "no_unassigned_leads_waiting"
SOURCE_TAG = "hub/source"


# ---------------------------------------------------------------- which asset belongs to which source


def _is_asset(definition: Any) -> bool:
    # load_assets_from_modules also returns asset checks (a subclass) and bare specs.
    return isinstance(definition, AssetsDefinition) and not isinstance(definition, AssetChecksDefinition)


def _specs(assets_defs: Iterable[Any]) -> list[AssetSpec]:
    return [spec for a in assets_defs if _is_asset(a) for spec in a.specs]


def source_of(spec: AssetSpec) -> str:
    """The source an ingest asset reads: its "source" tag, else its group."""
    return spec.tags.get("source") or spec.group_name or "default"


def root_keys(assets_defs: Iterable[AssetsDefinition]) -> set[AssetKey]:
    """Assets that read from the outside world: no upstream asset among the hub's own."""
    specs = _specs(assets_defs)
    own = {spec.key for spec in specs}
    return {spec.key for spec in specs if not any(dep.asset_key in own for dep in spec.deps)}


def sources(assets_defs: Iterable[AssetsDefinition]) -> dict[str, list[AssetKey]]:
    roots = root_keys(assets_defs)
    by_source: dict[str, list[AssetKey]] = defaultdict(list)
    for spec in _specs(assets_defs):
        if spec.key in roots:
            by_source[source_of(spec)].append(spec.key)
    return dict(sorted(by_source.items()))


# ---------------------------------------------------------------- automation and freshness


def with_automation(assets_defs: Sequence[AssetsDefinition], settings: OpsSettings) -> list[AssetsDefinition]:
    """Source assets get a freshness policy (late when not refreshed within the source's window);
    every downstream asset is kept up to date by `eager` automation instead of hand-wired jobs.
    An asset that declares its own condition or policy keeps it."""
    roots = root_keys(assets_defs)

    def apply(spec: AssetSpec) -> AssetSpec:
        if spec.key in roots:
            if spec.freshness_policy is not None:
                return spec
            late = settings.late_after_minutes.get(source_of(spec), settings.default_late_after_minutes)
            policy = FreshnessPolicy.time_window(
                fail_window=timedelta(minutes=late), warn_window=timedelta(minutes=late / 2)
            )
            return apply_freshness_policy(spec, policy, overwrite_existing=False)
        if spec.automation_condition is not None:
            return spec
        return spec.replace_attributes(automation_condition=AutomationCondition.eager())

    return [
        map_asset_specs(apply, [definition])[0] if _is_asset(definition) else definition
        for definition in assets_defs
    ]


def hub_automation_sensor() -> AutomationConditionSensorDefinition:
    # On by default: downstream assets follow their sources without anyone toggling it in the UI.
    return AutomationConditionSensorDefinition(
        "hub_automation",
        target=AssetSelection.all(),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Evaluates the automation conditions of every asset: downstream assets are "
        "materialized as soon as their upstream sources have new data.",
    )


# ---------------------------------------------------------------- a schedule per source


def cron_for(source: str, settings: OpsSettings) -> str:
    cron = settings.schedules.get(source, settings.default_cron)
    if not is_valid_cron_string(cron):
        where = (
            f"HUB_OPS__SCHEDULES__{source.upper()}"
            if source in settings.schedules
            else "HUB_OPS__DEFAULT_CRON"
        )
        raise SettingsError(f"{where}: {cron!r} is not a cron expression such as '*/10 * * * *'")
    return cron


def source_jobs_and_schedules(
    assets_defs: Sequence[AssetsDefinition], settings: OpsSettings, timezone: str
) -> tuple[list[UnresolvedAssetJobDefinition], list[ScheduleDefinition]]:
    """One job and one schedule per source, with the cron from settings (HUB_OPS__SCHEDULES__<SOURCE>).
    Runs carry the source as a tag, so dagster.yaml can allow one run per source at a time."""
    jobs: list[UnresolvedAssetJobDefinition] = []
    schedules: list[ScheduleDefinition] = []
    for source, keys in sources(assets_defs).items():
        job = define_asset_job(
            f"{source}_sync",
            selection=AssetSelection.assets(*keys),
            description=f"Read the {source} source; downstream assets follow by automation.",
            tags={SOURCE_TAG: source},
            op_retry_policy=TRANSIENT_RETRY_POLICY,
        )
        jobs.append(job)
        schedules.append(
            ScheduleDefinition(
                name=f"{source}_schedule",
                cron_schedule=cron_for(source, settings),
                job=job,
                execution_timezone=timezone,
                default_status=DefaultScheduleStatus.RUNNING,
                description=f"Reads {source} on the cron of HUB_OPS__SCHEDULES__{source.upper()}.",
            )
        )
    return jobs, schedules


def main_job() -> UnresolvedAssetJobDefinition:
    return define_asset_job(
        "hub_main_job",
        selection="*",
        description="Materialize the whole hub graph",
        op_retry_policy=TRANSIENT_RETRY_POLICY,
    )


# ---------------------------------------------------------------- checks every asset gets


def _metadata_values(record: Any) -> dict[str, Any]:
    materialization = record.asset_materialization
    if materialization is None:
        return {}
    return {key: value.value for key, value in materialization.metadata.items()}


def _history(instance: DagsterInstance, key: AssetKey, limit: int) -> list[tuple[str, dict[str, Any]]]:
    """(run id, metadata values) of the asset's latest materializations, newest first."""
    records = instance.fetch_materializations(key, limit=limit).records
    return [(record.run_id, _metadata_values(record)) for record in records]


def _result(key: AssetKey, name: str, verdict: Verdict, severity: AssetCheckSeverity) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=key,
        check_name=name,
        passed=verdict.passed,
        severity=severity,
        description=verdict.description,
        metadata=dict(verdict.metadata),
    )


LEAD_ASSIGNMENTS = AssetKey("lead_assignments")


def _check_specs(key: AssetKey, is_source: bool) -> list[AssetCheckSpec]:
    # Runs launched by automation only execute checks that have a condition of their own:
    # eager evaluates each check right after (or with) every materialization of its asset.
    eager = AutomationCondition.eager()
    specs = [
        AssetCheckSpec(
            ROW_COUNT_CHECK,
            asset=key,
            automation_condition=eager,
            description="The run's row count (rows_in or dagster/row_count metadata) is within the "
            "usual range of the previous materializations (median ± k·MAD).",
        )
    ]
    if is_source:
        specs.append(
            AssetCheckSpec(
                QUARANTINE_CHECK,
                asset=key,
                automation_condition=eager,
                description="The share of input rows sent to quarantine stays below "
                "HUB_OPS__QUARANTINE_MAX_SHARE.",
            )
        )
    if key == LEAD_ASSIGNMENTS:
        specs.append(
            AssetCheckSpec(
                UNASSIGNED_LEADS_CHECK,
                asset=key,
                automation_condition=eager,
                description="No lead waits for a rep longer than HUB_OPS__UNASSIGNED_LEAD_MAX_MINUTES "
                "(counted from when the hub received it).",
            )
        )
    return specs


def _evaluate(
    instance: DagsterInstance, check_key: AssetCheckKey, settings: OpsSettings, store: StoreResource
) -> AssetCheckResult:
    key, name = check_key.asset_key, check_key.name
    if name == UNASSIGNED_LEADS_CHECK:
        with store.session() as session:
            verdict = unassigned_leads_verdict(
                session, timedelta(minutes=settings.unassigned_lead_max_minutes)
            )
        return _result(key, name, verdict, AssetCheckSeverity.ERROR)
    history = [m for _, m in _history(instance, key, settings.row_count_history + 1)]
    latest, previous = (history[0], history[1:]) if history else ({}, [])
    if name == ROW_COUNT_CHECK:
        counts = [c for c in (row_count_of(m) for m in previous) if c is not None]
        verdict = row_count_verdict(
            row_count_of(latest),
            counts,
            min_history=settings.row_count_min_history,
            tolerance=settings.row_count_tolerance,
            min_change=settings.row_count_min_change,
        )
        # A statistical signal, not proof of a fault: shown in the UI, not paged.
        return _result(key, name, verdict, AssetCheckSeverity.WARN)
    verdict = quarantine_verdict(
        latest, max_share=settings.quarantine_max_share, min_rows=settings.quarantine_min_rows
    )
    return _result(key, name, verdict, AssetCheckSeverity.ERROR)


def _group_checks(group: str, specs: list[AssetCheckSpec]) -> AssetChecksDefinition:
    """One check step per group: with the multiprocess executor every step is a process, so
    checks of a group share one (a run of a subset evaluates only the selected checks)."""

    @multi_asset_check(
        name=f"ops_checks_{group}",
        specs=specs,
        can_subset=True,
        compute_kind="python",
        description=f"Checks every asset gets (assets/ops.py), for the {group} group",
    )
    def _checks(
        context: AssetCheckExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
    ) -> Iterable[AssetCheckResult]:
        settings = hub_settings.load().ops
        for check_key in sorted(context.selected_asset_check_keys, key=str):
            yield _evaluate(context.instance, check_key, settings, store)

    return _checks


def build_ops_checks(assets_defs: Sequence[AssetsDefinition]) -> list[AssetChecksDefinition]:
    """The checks that apply across assets; each domain adds its own checks beside its assets."""
    roots = root_keys(assets_defs)
    specs_by_group: dict[str, list[AssetCheckSpec]] = defaultdict(list)
    for spec in _specs(assets_defs):
        specs_by_group[spec.group_name or "default"] += _check_specs(spec.key, spec.key in roots)
    return [_group_checks(group, specs) for group, specs in sorted(specs_by_group.items())]


# ---------------------------------------------------------------- alerts for ops


def _error_text(error: Any) -> str:
    """The error and its causes, without the stack traces (the run page has those)."""
    parts = []
    while error is not None:
        parts.append(error.message.strip())
        error = error.cause
    return "\n".join(p for p in parts if p)


def failed_checks(
    instance: DagsterInstance, run_id: str, severities: Iterable[str] = ("ERROR",)
) -> list[FailedCheck]:
    out = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data  # type: ignore[union-attr]
        if evaluation.passed or evaluation.severity.value not in severities:
            continue
        out.append(
            FailedCheck(
                asset=evaluation.asset_key.to_user_string(),
                check=evaluation.check_name,
                severity=evaluation.severity.value,
                description=evaluation.description or "",
            )
        )
    return out


def _run_assets(context: RunStatusSensorContext) -> list[str]:
    selection = context.dagster_run.asset_selection or set()
    return sorted(key.to_user_string() for key in selection)


def _send(store: StoreResource, ops_alerts: OpsAlertsResource, alert: OpsAlert) -> str:
    channels = ops_alerts.channels()
    if not channels.recipients():
        return (
            "no ops alert channel configured (HUB_OPS__SMTP_HOST + HUB_OPS__MAIL_TO, "
            "HUB_OPS__SLACK_WEBHOOK_URL, or HUB_OPS__TELEGRAM_BOT_TOKEN + HUB_OPS__TELEGRAM_CHAT_ID)"
        )
    with store.session() as session:
        new_rows = enqueue_ops_alert(session, alert, channels)
    stats = deliver_ops_alerts(store.database_url, channels)
    return f"{new_rows} new alert rows; sent {stats.sent}, retrying {stats.retried}, failed {stats.failed}"


@run_failure_sensor(
    name="ops_run_failure_alerts",
    default_status=DefaultSensorStatus.RUNNING,
    description="Tells ops by SMTP and chat webhook that a run failed: the assets, the error, a link "
    "to the run. Once per run (idempotent outbox rows).",
)
def ops_run_failure_alerts(
    context: RunFailureSensorContext, store: StoreResource, ops_alerts: OpsAlertsResource
) -> SkipReason:
    run = context.dagster_run
    errors = [
        StepError(step=event.step_key or "run", message=_error_text(event.step_failure_data.error))
        for event in context.get_step_failure_events()
        if event.step_failure_data.error is not None
    ]
    alert = OpsAlert(
        kind=RUN_FAILED,
        run_id=run.run_id,
        job_name=run.job_name,
        run_url=ops_alerts.run_url(run.run_id),
        assets=_run_assets(context),
        errors=errors,
        failed_checks=failed_checks(context.instance, run.run_id),
        run_error=context.failure_event.message or "",
    )
    outcome = _send(store, ops_alerts, alert)
    context.log.info("run %s failed: %s", run.run_id, outcome)
    return SkipReason(f"run {run.run_id} failed: {outcome}")


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    name="ops_check_failure_alerts",
    default_status=DefaultSensorStatus.RUNNING,
    description="Tells ops by SMTP and chat webhook that a run succeeded but an ERROR-severity asset "
    "check failed in it. Once per run.",
)
def ops_check_failure_alerts(
    context: RunStatusSensorContext, store: StoreResource, ops_alerts: OpsAlertsResource
) -> SkipReason:
    run = context.dagster_run
    checks = failed_checks(context.instance, run.run_id)
    if not checks:
        return SkipReason(f"run {run.run_id}: no failed checks")
    alert = OpsAlert(
        kind=CHECK_FAILED,
        run_id=run.run_id,
        job_name=run.job_name,
        run_url=ops_alerts.run_url(run.run_id),
        assets=_run_assets(context),
        failed_checks=checks,
    )
    outcome = _send(store, ops_alerts, alert)
    context.log.info("run %s had failed checks: %s", run.run_id, outcome)
    return SkipReason(f"run {run.run_id}: {len(checks)} failed checks: {outcome}")


@sensor(
    name="ops_alert_retries",
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description="Sends the ops alerts still waiting in the outbox (the mail server or chat API was "
    "down when the run failed), with backoff, until HUB_OPS__MAX_DELIVERY_ATTEMPTS.",
)
def ops_alert_retries(
    context: SensorEvaluationContext, store: StoreResource, ops_alerts: OpsAlertsResource
) -> SkipReason:
    channels = ops_alerts.channels()
    if not channels.recipients():
        return SkipReason("no ops alert channel configured")
    stats = deliver_ops_alerts(store.database_url, channels)
    return SkipReason(f"ops alerts: sent {stats.sent}, retrying {stats.retried}, failed {stats.failed}")


OPS_SENSORS = [ops_run_failure_alerts, ops_check_failure_alerts, ops_alert_retries]
