"""Dagster assets of the website source: leads from the API, the webhook inbox and CSV."""

from dagster import AssetExecutionContext, MaterializeResult, RetryPolicy, asset

from assets.metadata import ingest_metadata
from assets.resources import HubSettingsResource, SiteResource, StoreResource
from assets.retries import fail_fast_on_permanent_errors
from hub.ingest.site import sync_csv_dir, sync_site_api, sync_webhook_inbox
from hub.ingest.stats import IngestStats


@asset(
    group_name="site",
    owners=["team:sales-ops"],
    kinds={"python", "sql"},
    tags={"source": "site"},
    retry_policy=RetryPolicy(max_retries=2, delay=30),
    description="Website form leads written to crm_leads from the site's API (cursor-paged), the signed "
    "webhook inbox and CSV exports. Invalid records go to hub_quarantine with a reason.",
)
@fail_fast_on_permanent_errors
def site_leads(
    context: AssetExecutionContext,
    store: StoreResource,
    site: SiteResource,
    hub_settings: HubSettingsResource,
) -> MaterializeResult:
    settings = hub_settings.load()
    region = settings.default_region
    total = IngestStats()
    per_way: dict[str, int] = {}
    source = site.leads_source()
    if source is not None:
        api = sync_site_api(store.database_url, source, region)
        per_way["api_written"] = api.written
        total.merge(api)
    inbox = sync_webhook_inbox(store.database_url, region, max_records=settings.site.webhook_max_records)
    per_way["webhook_written"] = inbox.written
    total.merge(inbox)
    if site.csv_dir:
        csv = sync_csv_dir(store.database_url, site.csv_dir, region, settings.timezone)
        per_way["csv_written"] = csv.written
        total.merge(csv)
    context.log.info("site leads: %s", total.as_dict())
    return MaterializeResult(metadata=ingest_metadata(total, **per_way))
