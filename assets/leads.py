"""Dagster assets common to every lead source: identity resolution and routing by load."""

from datetime import timedelta

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, MetadataValue, asset

from assets.metadata import markdown_table
from assets.resources import HubSettingsResource, StoreResource
from hub.identity.resolve import resolve_new_leads
from hub.leads import link_activities_to_lead_contacts
from hub.routing.router import route_open_leads

# Every asset that writes rows into crm_leads: resolution runs after each of them (the CRM pull
# too: leads people created in the CRM, and the mirror identity resolution matches against).
LEAD_SOURCE_ASSETS = [AssetKey("crm_pull"), AssetKey("site_leads"), AssetKey("calls")]


@asset(
    group_name="leads",
    owners=["team:sales-ops"],
    kinds={"python", "sql"},
    deps=LEAD_SOURCE_ASSETS,
    description="New leads matched incrementally to CRM contacts: strong keys (E.164 phone, email, "
    "personal ИНН) guarded against shared switchboards and role mailboxes, then names folded across "
    "Cyrillic/Latin with a corroborating field; otherwise a new contact. Contacts a lead proves to be "
    "one person are merged (hub_merge_log). Leads of one person within the window become one lead "
    "with all its touches.",
)
def resolved_leads(
    context: AssetExecutionContext, store: StoreResource, hub_settings: HubSettingsResource
) -> MaterializeResult:
    settings = hub_settings.load()
    with store.session() as session:
        stats = resolve_new_leads(
            session, timedelta(hours=settings.routing.duplicate_window_hours), identity=settings.identity
        )
        linked = link_activities_to_lead_contacts(session)
    return MaterializeResult(
        metadata={
            "dagster/row_count": stats.leads,
            "leads_resolved": stats.leads,
            "matched_existing": stats.matched,
            "contacts_created": stats.created,
            "duplicates": stats.duplicates,
            "contacts_merged": stats.merged_contacts,
            "shared_keys_not_trusted": stats.guarded,
            "activities_linked_to_contacts": linked,
            "reasons": markdown_table([{"reason": k, "leads": v} for k, v in stats.reasons.items()]),
        }
    )


@asset(
    group_name="leads",
    owners=["team:sales-ops"],
    kinds={"python", "sql"},
    deps=[resolved_leads],
    description="Open leads assigned to reps: a returning contact to its active owner, otherwise the "
    "qualified rep on shift with the lowest load (weighted open leads and deals / capacity), round-robin "
    "on ties; manual assignments kept. A deactivated rep's open leads, deals and contacts are "
    "redistributed the same way. Reason stored per lead; load per rep before and after.",
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
            sticky_owner_off_shift=settings.sticky_owner_off_shift,
            redistribute_inactive=settings.redistribute_inactive,
        )
    loads = [
        {"rep": rep, "load_before": stats.load_before.get(rep), "load_after": after}
        for rep, after in stats.load_after.items()
    ]
    return MaterializeResult(
        metadata={
            "dagster/row_count": stats.routed,
            "routed": stats.routed,
            "sticky_to_owner": stats.sticky,
            "unroutable": stats.unroutable,
            "routed_off_shift": stats.off_shift,
            "redistributed_leads": stats.redistributed_leads,
            "redistributed_deals": stats.redistributed_deals,
            "redistributed_contacts": stats.redistributed_contacts,
            "manual_assignments_kept": stats.manual_kept,
            "rep_load": markdown_table(loads),
            "max_relative_load": MetadataValue.float(max(stats.load_after.values(), default=0.0)),
            "min_relative_load": MetadataValue.float(min(stats.load_after.values(), default=0.0)),
        }
    )
