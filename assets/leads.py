"""Dagster assets common to every lead source: identity resolution and routing by load."""

from datetime import timedelta

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from assets.metadata import markdown_table
from assets.resources import HubSettingsResource, StoreResource
from hub.identity.resolve import resolve_new_leads
from hub.routing.router import route_open_leads

# Every asset that writes rows into crm_leads: resolution runs after each of them.
LEAD_SOURCE_ASSETS = [AssetKey("site_leads")]


@asset(
    group_name="leads",
    owners=["team:sales-ops"],
    kinds={"python", "sql"},
    deps=LEAD_SOURCE_ASSETS,
    description="New leads matched to CRM contacts by normalized phone (E.164) and email, or a new "
    "contact created; a repeated submission by the same person is marked a duplicate of the open lead.",
)
def resolved_leads(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    settings = hub_settings.load()
    with store.session() as session:
        stats = resolve_new_leads(session, timedelta(hours=settings.routing.duplicate_window_hours))
    return MaterializeResult(
        metadata={
            "leads_resolved": stats.leads,
            "matched_existing": stats.matched,
            "contacts_created": stats.created,
            "duplicates": stats.duplicates,
            "reasons": markdown_table([{"reason": k, "leads": v} for k, v in stats.reasons.items()]),
        }
    )


@asset(
    group_name="leads",
    owners=["team:sales-ops"],
    kinds={"python", "sql"},
    deps=[resolved_leads],
    description="Open leads assigned to reps: a returning contact to its active owner, otherwise the "
    "eligible rep with the lowest load relative to capacity (round-robin on ties). Reason stored per lead.",
)
def lead_assignments(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    settings = hub_settings.load().routing
    with store.session() as session:
        stats = route_open_leads(
            session,
            lead_weight=settings.lead_weight,
            deal_weight=settings.deal_weight,
            require_shift=settings.require_shift,
        )
    loads = [
        {"rep": rep, "load_before": stats.load_before.get(rep), "load_after": after}
        for rep, after in stats.load_after.items()
    ]
    return MaterializeResult(
        metadata={
            "routed": stats.routed,
            "sticky_to_owner": stats.sticky,
            "unroutable": stats.unroutable,
            "rep_load": markdown_table(loads),
            "max_relative_load": MetadataValue.float(max(stats.load_after.values(), default=0.0)),
        }
    )
