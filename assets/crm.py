"""Dagster assets of the CRM backend: `crm_pull` (the CRM into the crm_* mirror, before identity
and routing) and `crm_push` (what the hub decided, through the outbox, after routing, calls,
mail, receivables and attribution), with checks on the outbox and the mirror's freshness."""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
)

from assets.metadata import markdown_table
from assets.resources import HubSettingsResource, StoreResource
from assets.retries import TRANSIENT_RETRY_POLICY, fail_fast_on_permanent_errors
from hub.crm.registry import backend_spec, build_backend
from hub.crm.sync import crm_status, pull_crm, push_crm

GROUP = "crm"


def _not_external(backend: str) -> MaterializeResult | None:
    if backend_spec(backend).external:
        return None
    return MaterializeResult(
        metadata={
            "dagster/row_count": 0,
            "backend": backend,
            "note": MetadataValue.md("No external CRM: the store is the CRM (HUB_CRM__BACKEND)."),
        }
    )


@asset(
    group_name=GROUP,
    owners=["team:sales-ops"],
    kinds={"python", "sql"},
    tags={"source": "crm"},
    retry_policy=TRANSIENT_RETRY_POLICY,
    description="The company's CRM (HUB_CRM__BACKEND: amoCRM, Bitrix24) pulled into the crm_* mirror "
    "by modification time, each page committed with its cursor: users (reps), pipelines and stages, "
    "companies, contacts, deals and leads, tasks, stage changes. A responsible user changed by a "
    "person in the CRM is kept by routing as the new owner (docs/crm.md, field ownership).",
)
@fail_fast_on_permanent_errors
def crm_pull(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    settings = hub_settings.load()
    skipped = _not_external(settings.crm.backend)
    if skipped is not None:
        return skipped
    backend = build_backend(settings, store.database_url)
    result = pull_crm(store.database_url, backend, settings.default_region)
    mirror = result.mirror
    kinds = sorted({*mirror.created, *mirror.updated, *mirror.unchanged})
    context.log.info("crm_pull: %s entities in %s pages", mirror.total(), result.batches)
    return MaterializeResult(
        metadata={
            "dagster/row_count": sum(mirror.created.values()) + sum(mirror.updated.values()),
            "backend": settings.crm.backend,
            "pages": result.batches,
            "created": sum(mirror.created.values()),
            "updated": sum(mirror.updated.values()),
            "unchanged": sum(mirror.unchanged.values()),
            "reassigned_in_crm": mirror.reassigned_in_crm,
            "stage_moves": mirror.stage_moves,
            "entities": markdown_table(
                [
                    {
                        "entity": kind,
                        "created": mirror.created.get(kind, 0),
                        "updated": mirror.updated.get(kind, 0),
                        "unchanged": mirror.unchanged.get(kind, 0),
                    }
                    for kind in kinds
                ]
            ),
            **result.usage.as_dict(),
        }
    )


@asset(
    group_name=GROUP,
    owners=["team:sales-ops"],
    kinds={"python", "sql"},
    retry_policy=TRANSIENT_RETRY_POLICY,
    deps=[
        AssetKey("lead_assignments"),
        AssetKey("calls"),
        AssetKey("mail_receipts"),
        AssetKey("receivables"),
        AssetKey("lead_attribution"),
    ],
    description="What the hub decided, written into the CRM exactly once through hub_crm_outbox: new "
    "leads with their contact and routed rep, calls with recordings, call-now and call-back tasks, "
    "reassignments of a leaver's work, email-opened and invoice-paid notes, receivables and "
    "attribution fields, duplicates found. Planned from the store, pushed in batches within the "
    "CRM's rate limit; an operation whose answer was lost is found again by the hub's reference.",
)
@fail_fast_on_permanent_errors
def crm_push(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    settings = hub_settings.load()
    skipped = _not_external(settings.crm.backend)
    if skipped is not None:
        return skipped
    backend = build_backend(settings, store.database_url)
    result = push_crm(store.database_url, backend, settings)
    status = crm_status(store.database_url, settings.crm.backend)
    pushed = result.push
    if pushed.busy:
        context.log.info("crm_push: another push of %s is running; nothing done", settings.crm.backend)
    return MaterializeResult(
        metadata={
            "dagster/row_count": pushed.done,
            "backend": settings.crm.backend,
            "planned": result.plan.total(),
            **pushed.as_dict(),
            "backlog": status.pending,
            "failed_total": status.failed,
            "by_operation": markdown_table(
                [{"operation": op, "pushed": n} for op, n in sorted(pushed.by_op.items())]
            ),
            "errors": markdown_table([{"error": e} for e in pushed.errors[:10]]),
        }
    )


@asset_check(
    asset=crm_push,
    description="No push has failed, and nothing waits in the outbox longer than "
    "crm.outbox_max_age_minutes (a CRM that refuses, or a push that never runs).",
    blocking=False,
)
def crm_outbox_healthy(store: StoreResource, hub_settings: HubSettingsResource) -> AssetCheckResult:
    settings = hub_settings.load()
    status = crm_status(store.database_url, settings.crm.backend)
    age = status.oldest_pending_minutes()
    too_old = age is not None and age > settings.crm.outbox_max_age_minutes
    return AssetCheckResult(
        passed=status.failed == 0 and not too_old,
        severity=AssetCheckSeverity.ERROR if status.failed else AssetCheckSeverity.WARN,
        metadata={
            "backlog": status.pending,
            "failed": status.failed,
            "oldest_pending_minutes": round(age, 1) if age is not None else 0.0,
            "recent_errors": markdown_table([{"operation": k, "error": e} for k, e in status.recent_errors]),
        },
    )


@asset_check(
    asset=crm_pull,
    description="The mirror was pulled from the CRM within crm.mirror_max_age_minutes: routing and the "
    "funnel read a CRM that is not stale.",
    blocking=False,
)
def crm_mirror_fresh(store: StoreResource, hub_settings: HubSettingsResource) -> AssetCheckResult:
    settings = hub_settings.load()
    if not backend_spec(settings.crm.backend).external:
        return AssetCheckResult(passed=True, metadata={"backend": settings.crm.backend})
    status = crm_status(store.database_url, settings.crm.backend)
    age = status.last_pull_minutes()
    return AssetCheckResult(
        passed=age is not None and age <= settings.crm.mirror_max_age_minutes,
        severity=AssetCheckSeverity.WARN,
        metadata={"minutes_since_pull": round(age, 1) if age is not None else -1.0},
    )


CRM_CHECKS = [crm_outbox_healthy, crm_mirror_fresh]
