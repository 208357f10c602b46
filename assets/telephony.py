"""Dagster assets of the telephony source: the `calls` asset (Twilio, Zadarma, Asterisk CDR
into the CRM timeline and phone leads) and a sensor for new or grown CDR files."""

import hashlib
import json

from dagster import (
    AssetExecutionContext,
    AssetKey,
    DefaultSensorStatus,
    MaterializeResult,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    sensor,
)

from assets.folders import file_sizes
from assets.metadata import ingest_metadata
from assets.resources import HubSettingsResource, StoreResource, TelephonyResource
from assets.retries import TRANSIENT_RETRY_POLICY, fail_fast_on_permanent_errors
from hub.ingest.stats import IngestStats
from hub.ingest.telephony import sync_telephony


@asset(
    group_name="telephony",
    owners=["team:sales-ops"],
    kinds={"python", "sql"},
    tags={"source": "telephony"},
    retry_policy=TRANSIENT_RETRY_POLICY,
    description="Calls from Twilio, Zadarma and Asterisk CDR files, one crm_activities row per call "
    "(idempotent on the provider's call id) with direction, E.164 numbers, UTC start, duration, talk "
    "time, normalized disposition, recording, rep and contact. Inbound calls from unknown numbers "
    "(missed ones too) become phone leads carrying the tracking number's channel; a known client's "
    "missed call becomes a call-back task for the owner. Bad records go to hub_quarantine.",
)
@fail_fast_on_permanent_errors
def calls(
    context: AssetExecutionContext,
    store: StoreResource,
    telephony: TelephonyResource,
    hub_settings: HubSettingsResource,
) -> MaterializeResult:
    settings = hub_settings.load()
    results = sync_telephony(
        store.database_url,
        telephony.effective(settings.telephony),
        settings.default_region,
        settings.timezone,
    )
    total = IngestStats()
    per_provider: dict[str, int] = {}
    for provider, stats in results.items():
        per_provider[f"{provider}_written"] = stats.written
        total.merge(stats)
    if not results:
        context.log.info("no telephony provider is configured (docs/telephony.md)")
    context.log.info("calls: %s", total.as_dict())
    return MaterializeResult(metadata=ingest_metadata(total, **per_provider))


@sensor(
    target=[AssetKey("calls")],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.STOPPED,
    description="Materializes `calls` when a CDR file appears in the Asterisk folder or grows. "
    "The hub's own cursor (byte offset per file) decides what is read, so a repeated tick is harmless.",
)
def cdr_files_sensor(
    context: SensorEvaluationContext, telephony: TelephonyResource
) -> RunRequest | SkipReason:
    state = file_sizes(telephony.cdr_dir, telephony.cdr_file_glob)
    if not state:
        return SkipReason("no CDR folder configured or no CDR files in it")
    previous = json.loads(context.cursor) if context.cursor else {}
    grown = sorted(name for name, size in state.items() if size > previous.get(name, -1))
    if not grown:
        return SkipReason("no CDR file is new or has grown")
    context.update_cursor(json.dumps(state))
    key = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]
    return RunRequest(run_key=f"cdr-{key}", tags={"cdr_files": ",".join(grown)[:200]})


TELEPHONY_SENSORS = [cdr_files_sensor]
