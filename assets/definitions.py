"""The Dagster Definitions of the hub (workspace.yaml points here)."""

from __future__ import annotations

from dagster import Definitions, load_assets_from_modules

from assets import accounting, analytics, crm, leads, mail, ops, site, telephony
from assets.executor import build_executor
from assets.resources import build_resources
from hub.settings import load_settings

ASSET_MODULES = [crm, site, leads, analytics, telephony, accounting, mail]

settings = load_settings()

# Automation (eager downstream), freshness of sources, a schedule per source, the checks every
# asset gets and the ops alerts apply to every module's assets centrally (assets/ops.py).
all_assets = ops.with_automation(load_assets_from_modules(ASSET_MODULES), settings.ops)
source_jobs, source_schedules = ops.source_jobs_and_schedules(all_assets, settings.ops, settings.timezone)

# The main job: the whole asset graph, in dependency order.
hub_main_job = ops.main_job()

defs = Definitions(
    assets=all_assets,
    asset_checks=[
        *ops.build_ops_checks(all_assets),
        analytics.deals_move_only_forward,
        *accounting.ACCOUNTING_CHECKS,
        *crm.CRM_CHECKS,
        *mail.MAIL_CHECKS,
    ],
    jobs=[hub_main_job, *source_jobs],
    schedules=[*source_schedules],
    sensors=[
        *ops.OPS_SENSORS,
        ops.hub_automation_sensor(),
        *telephony.TELEPHONY_SENSORS,
        *accounting.ACCOUNTING_SENSORS,
        *mail.MAIL_SENSORS,
    ],
    resources=build_resources(settings),
    # Dagster's multiprocess default, or Celery workers (HUB_OPS__CELERY_CONFIG, docs/DEPLOYMENT.md).
    executor=build_executor(settings.ops),
)
